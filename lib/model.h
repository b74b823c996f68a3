/*
 * model.h - what the model's files (model.c, model_pass.c, model_head.c) and io.c share:
 * the architecture as one value, the model's struct and its workspace. Internal.
 *
 * Layers, in the order their parameters sit in the flat arrays (each W then b):
 *   encoder hidden layers (ReLU, He init), the head [h -> head_out] giving [mu | rho]
 *   (diagonal) or [mu | packed raw L] (full covariance) (LeCun), decoder hidden layers
 *   (ReLU, He), the output layer [-> classes] (LeCun). The decoder reads z (K values),
 *   not the head's outputs. A model with a mixture marginal r(z) of M components holds
 *   its blocks between the head's b and the decoder: the means [M x K], the scales' raw
 *   values [M x K] (scale = softplus(raw)) and the logits of the weights [M]. There the
 *   backward finishes them with the head (vib_trainer_set_reduce_overlap's ranges).
 */
#ifndef VIB_MODEL_H
#define VIB_MODEL_H

#include "internal.h"

/* The limits of an architecture, checked in one place (vibi_arch_check): at most 64
 * hidden layers per side, and no size past 2^24, no layer width anyone trains here,
 * which keeps every product of two sizes well inside size_t. A full factor has
 * K(K+1)/2 entries per row: K <= 4096 keeps that a sane layer width. */
#define VIBI_MAX_HIDDEN 64
#define VIBI_MAX_DIM ((size_t)1 << 24)
#define VIBI_MAX_FULL_K 4096
/* The most posterior draws per example a training pass takes. */
#define VIBI_MAX_TRAIN_SAMPLES 1024
/* The most components a mixture marginal r(z) has (vib_model_create_mixture). */
#define VIBI_MAX_COMPONENTS 1024

/* An architecture: what vib_model_create_ex is given, then (vibi_arch_check) what
 * follows from it. */
typedef struct vibi_arch {
    size_t input_dim, k, classes;
    size_t n_enc, n_dec;
    size_t enc[VIBI_MAX_HIDDEN], dec[VIBI_MAX_HIDDEN];
    uint32_t flags; /* VIB_MODEL_* */
    size_t components; /* the marginal r(z)'s mixture components, 0: r = N(0, I) */
    /* filled by vibi_arch_check */
    size_t head_out;   /* 2K, or K + K(K+1)/2 with a full covariance */
    size_t n_layers;   /* n_enc + 1 (head) + n_dec + 1 (output) */
    size_t num_params; /* every W and b, and the marginal's blocks */
    size_t prior_at;   /* where the marginal's blocks start: right after the head's b */
    size_t max_width;  /* the widest side of any layer */
} vibi_arch;

/* Fill a->head_out ... a->max_width if the sizes and flags in *a are a valid
 * architecture, else an error under fn's name: VIB_ERR_INVALID_ARG (VIB_ERR_NOMEM for
 * too many parameters) or, with from_file, VIB_ERR_FORMAT for every reason (the file
 * describes an impossible model). n_enc and n_dec must already be at most
 * VIBI_MAX_HIDDEN: the sizes are read from the arrays. */
int vibi_arch_check(const char *fn, bool from_file, vibi_arch *a);

/* Layer l's input and output sizes. */
void vibi_arch_layer(const vibi_arch *a, size_t l, size_t *in, size_t *out);

static inline size_t vibi_arch_head(const vibi_arch *a)
{
    return a->n_enc;
}

static inline bool vibi_arch_full(const vibi_arch *a)
{
    return (a->flags & VIB_MODEL_FULL_COV) != 0;
}

/* The parameters of a mixture marginal of the architecture's components: M (2K + 1). */
static inline size_t vibi_arch_prior_params(const vibi_arch *a)
{
    return a->components * (2 * a->k + 1);
}

/* The mixture marginal's views into the bound parameters and the gradients, and the
 * constants a forward pass computes from them for its backward (model_prior.c). */
typedef struct vibi_prior {
    const float *c, *raw, *logit; /* means [M x K], raw scales [M x K], logits [M] */
    float *dc, *draw, *dlogit;
    float *s, *inv_s2;            /* softplus(raw) and 1 / s^2, [M x K] */
    double *log_w;                /* log pi_m - sum_k log s_mk, [M] */
    double *log_pi;               /* log pi_m, [M] */
} vibi_prior;

struct vib_model {
    vibi_arch arch;
    vibi_layer *layers; /* arch.n_layers views into params and grads */
    vibi_prior prior;   /* arch.components > 0 only */
    void *prior_buf;    /* the block prior.s ... prior.log_pi point into */
    float *params, *grads;
    float beta, offset;
    int deterministic;
    /* Training's posterior draws per example and how their losses combine
     * (vib_model_set_train_samples): 1 and VIB_OBJECTIVE_MEAN unless set. */
    size_t train_samples;
    int objective;
    uint64_t seed;
    vib_rng *noise;         /* training's draws */
    vib_rng *predict_noise; /* prediction's draws */
    /* Workspace for up to cap_rows rows, grown on demand (vibi_model_reserve): after
     * the first batch of a given size, steps allocate nothing. */
    size_t cap_rows;
    size_t train_batch; /* the largest batch trained (or reserved for) so far (0: none) */
    float *ws;
};

/* A model of architecture a (checked) with every buffer allocated, the weights
 * uninitialized and the gradients 0, the noise streams seeded from `seed`. */
int vibi_model_alloc(const char *fn, const vibi_arch *a, uint64_t seed, vib_model **out);

/* Point every layer's W and b views at `params`, an array of num_params floats in the
 * flat layout: the model's own (as vibi_model_alloc does), or, for the length of one call
 * that only reads the weights, another such array (vib_model_evaluate's average). The
 * gradient views stay on the model's grads. */
void vibi_model_bind(vib_model *m, const float *params);

/* Make room for `rows` rows in the workspace (no-op if there is). */
int vibi_model_reserve(vib_model *m, const char *fn, size_t rows);

/* The draws per example a training pass takes: the model's train_samples, 1 for a
 * deterministic model (z = mu: every draw would be the same). */
static inline size_t vibi_model_draws(const vib_model *m)
{
    return m->deterministic ? 1 : m->train_samples;
}

/* Room for a pass over `batch` examples with `draws` draws each: batch x draws rows (the
 * encoder uses the first batch of them). */
int vibi_model_reserve_train(vib_model *m, const char *fn, size_t batch, size_t draws);

/* A training pass (vib_model_gradients, a shard, a trainer) over `batch` examples
 * succeeded, or a trainer was made for it: remembered, so that a later
 * vib_model_set_train_samples or a switch back from deterministic makes room for the
 * draws of that batch at once. Input gradients, prediction and evaluation do not count. */
void vibi_model_trained(vib_model *m, size_t batch);

/* Per-call views into the workspace for `rows` rows. */
typedef struct vibi_views {
    float **act;     /* act[l]: output of layer l, [rows x out_l] */
    float *v, *z;    /* noise and sample, [rows x K] */
    float *dz;       /* dL/dz, [rows x K] */
    float *ga, *gb;  /* ping-pong gradients, [rows x max_width] */
    float *sigma;    /* the diagonal head's sigma, [rows x K] */
    float *aux;      /* log sigma, then d log sigma, [rows x K] */
    float *dsigma;   /* [rows x K] */
    float *dx;       /* dL/d(head) averaged over draws (vib_model_input_gradients),
                      * [rows x max(input_dim, head_out)] */
    float *gamma;    /* the mixture marginal's responsibilities, [rows x M] (M = 0: none) */
    float *scratch;  /* one row of the full-covariance head: 2 K(K+1)/2 + 4K (0 if diagonal) */
} vibi_views;

/* Views for `rows` <= cap_rows rows; act must have n_layers slots. */
vibi_views vibi_model_views(const vib_model *m, size_t rows, float **act);

/* The most layers a model has, for the callers' act[] arrays. */
#define VIBI_MAX_LAYERS (2 * VIBI_MAX_HIDDEN + 2)

/* model_pass.c: the training noise of a loss evaluation: draw_rows rows of it drawn
 * from the training stream (0: none, z = mu), of which the rows evaluated are those from
 * `offset`; the gradient is that of the mean over norm_rows rows. One process: all three
 * the batch. A shard of a global batch: draw_rows = norm_rows = the global batch, offset
 * the shard's first row in it. */
typedef struct vibi_noise {
    size_t draw_rows, offset, norm_rows;
} vibi_noise;

/* A backward pass's announcements of the gradient ranges it has finished
 * (vib_trainer_set_reduce_overlap): part(user, grads, n, lo, hi) once per layer, from the
 * last to the first, with grads[lo, hi) final; `hi` is the previous call's lo (n before
 * the first), `failed` the first nonzero return (the calls go on after one). */
typedef struct vibi_ready {
    vib_reduce_part_callback part;
    void *user;
    size_t hi;
    int failed;
} vibi_ready;

/* The gradients (written into the model's array) of rows rows of x that are rows
 * [offset, offset + rows) of a global batch of `total` rows: the noise those rows get in
 * a one-process run of the global batch, the gradient of the global mean (so the sum of
 * the shards' gradients is the global batch's). rows may be 0 (the gradient is 0, the
 * stream advances as the others' do). ready (NULL: none) hears of each layer's gradient
 * as the backward pass finishes it, on every path that reaches the backward (rows 0
 * too). ce, kl, loss: the means over these rows. */
int vibi_model_shard_gradients(vib_model *m, const char *fn, size_t rows, const float *x,
                               const int32_t *labels, size_t total, size_t offset,
                               vibi_ready *ready, double *ce, double *kl, double *loss);

/* model_head.c: the Gaussian head over a batch, from the head layer's outputs -------- */

/* z = mu + sigma v or mu + L v from the head's `rows` rows and the noise v, `draws` of
 * them per row: row r's draw d is row d rows + r of v and z. The scale and the KL are
 * computed once per row; returns the summed KL to N(0, I) of the rows, in nats. The
 * sigma of each row stays in w->sigma for the backward. With a mixture marginal r the
 * rate is the draws' estimate instead: the sum over rows of the mean over the row's
 * draws of log e(z|x) - log r(z), the responsibilities in w->gamma. */
double vibi_model_head_forward(const vib_model *m, size_t rows, size_t draws,
                               const float *head, const float *v, float *z, const vibi_views *w);

/* dL/d(head outputs) of each row into dhead (written, `rows` rows) from dL/dz of every
 * draw (their shares summed in draw order) and the KL with weight kl_w = beta / batch
 * (once per row), after vibi_model_head_forward on the same rows and draws. With a
 * mixture marginal, dz must already hold the rate's share through z
 * (vibi_prior_backward); the rest of the rate's gradient, -1 per log sigma_k, is added
 * here. */
void vibi_model_head_backward(const vib_model *m, size_t rows, size_t draws,
                              const float *head, const float *v, const float *dz, double kl_w,
                              const vibi_views *w, float *dhead);

/* The posterior's scale for each row: the packed factor L (K(K+1)/2 per row) when
 * `packed` or the model is full-covariance, else sigma (K per row). */
void vibi_model_scale(const vib_model *m, size_t rows, const float *head, bool packed,
                      const vibi_views *w, float *out);

/* z = mu + scale v for each row, scale as vibi_model_scale(packed = false) gave it. */
void vibi_model_sample(const vib_model *m, size_t rows, const float *head, const float *scale,
                       const float *v, float *z);

/* model_prior.c: the mixture marginal r(z) ------------------------------------------ */

/* Compute the marginal's constants (vibi_prior's s, inv_s2, log_w) from the bound
 * parameters: before a forward pass that takes the rate against r. */
void vibi_prior_prepare(const vib_model *m);

/* The sum over `n` rows of z of -log r(z) (leaving out the K/2 log 2 pi that log e(z|x)
 * also leaves out), each row's responsibilities gamma_m = pi_m N(z; c_m, s_m) / r(z)
 * into gamma [n x M] for the backward. After vibi_prior_prepare. */
double vibi_prior_neg_log(const vib_model *m, size_t n, const float *z, float *gamma);

/* The backward of wt times the sum over n rows of -log r(z): the rows' gradients ADDED
 * into dz, and with `params` the marginal's gradients WRITTEN (a deterministic model's:
 * 0, and nothing else happens). After vibi_prior_neg_log on the same rows. */
void vibi_prior_backward(const vib_model *m, size_t n, const float *z, const float *gamma,
                         double wt, bool params, float *dz);

/* io.c: the model file -------------------------------------------------------------- */

/* The model's file image (what vib_model_save writes) in a new buffer *out of *len bytes
 * (the caller frees it); VIB_ERR_NUMERIC for a non-finite parameter. */
int vibi_model_image(const char *fn, const vib_model *model, unsigned char **out, size_t *len);

/* Check a model file image of len bytes and build the model from it (errors name fn and
 * path). */
int vibi_model_parse(const char *fn, const char *path, const unsigned char *b, size_t len,
                     vib_model **out);

/* The length of architecture a's model file in the longer format (version 2): a bound. */
uint64_t vibi_model_file_bytes(const vibi_arch *a);

/* train.c: a checkpoint's magic and header (magic, version, flags, the model part's
 * length m), the model file following it. vibi_checkpoint_header checks the first hlen
 * bytes of a checkpoint of `size` bytes and gives m. */
#define VIBI_CKPT_MAGIC "VIBCKPT1"
#define VIBI_CKPT_HEAD 24
int vibi_checkpoint_header(const char *fn, const char *path, const unsigned char *h,
                           size_t hlen, uint64_t size, uint64_t *m);

#endif /* VIB_MODEL_H */
