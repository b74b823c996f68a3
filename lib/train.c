/*
 * train.c - the trainer: seeded-shuffled minibatches over a training set, the staircase
 * learning rate, one optimizer step and average update per batch, and checkpoints that
 * resume bit for bit.
 *
 * The shuffle: a Fisher-Yates pass over the row order (a permutation kept from epoch to
 * epoch), drawing j = u mod (i + 1) from a generator seeded with seed ^ 0x5deece66d, at
 * the start of every epoch. The pass for epoch e + 1 is made by the last step of epoch
 * e, so a step never shuffles after failing: a failed step leaves everything as it was.
 *
 * Checkpoint file, version 1, little-endian, fields in this order:
 *   "VIBCKPT1", u32 version (1), u32 flags (bit 0: an average follows),
 *   u64 m, then m bytes: the model's file, exactly as vib_model_save writes it;
 *   trainer: u64 n, u64 batch, u64 epochs done, u64 step in epoch, u64 steps,
 *            f32 lr0, f32 rate, u64 decay_steps, f32 last lr,
 *            u64[4] shuffle generator, u64[4] training noise, u64[4] prediction noise,
 *            u64[n] the row order;
 *   optimizer: u32 kind (1 Adam, 2 SGD), u64 length, f32 lr, f32 beta1, f32 beta2,
 *            f32 eps, f32 momentum, f64 state bound, u64 steps, f32[length] s1,
 *            f32[length] s2 (Adam only);
 *   average (if flagged): u64 length, f32 decay, u64 updates, f32[length] values;
 *   u32 CRC-32 of every byte before it.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"

#define SHUFFLE_SEED(seed) ((seed) ^ 0x5deece66dULL)
#define CKPT_VERSION 1
#define CKPT_HEAD VIBI_CKPT_HEAD /* magic, version, flags, m */

struct vib_trainer {
    vib_model *model;
    vib_optim *opt;
    vib_ema *ema; /* NULL: none */
    size_t n, batch, steps_per_epoch;
    uint64_t epochs_done, step_in_epoch, steps;
    float lr0, rate, last_lr;
    uint64_t decay_steps;
    vib_rng *shuffle;
    size_t *order; /* n */
    float *xb;     /* batch x input_dim */
    int32_t *yb;   /* batch */
    vib_train_callback cb;
    void *user;
    int stopped;
    vib_reduce_callback reduce; /* NULL: none */
    vib_reduce_part_callback part; /* the overlapped reduction (NULL: none) */
    vib_reduce_wait_callback wait;
    void *reduce_user;
    size_t rank, ranks; /* this worker's share of each global batch (ranks 1: all) */
};

/* ---- creation ------------------------------------------------------------------- */

static void shuffle_order(vib_trainer *t)
{
    for (size_t i = t->n - 1; i > 0; i--) { /* Fisher-Yates */
        uint64_t u;
        (void)vib_rng_u64(t->shuffle, &u); /* cannot fail: the generator exists */
        const size_t j = (size_t)(u % (i + 1)), k = t->order[i];
        t->order[i] = t->order[j], t->order[j] = k;
    }
}

void vib_trainer_free(vib_trainer *trainer)
{
    if (trainer == NULL)
        return;
    vib_rng_free(trainer->shuffle);
    free(trainer);
}

int vib_trainer_create(vib_model *model, vib_optim *opt, vib_ema *ema, size_t n, size_t batch,
                       uint64_t seed, vib_trainer **out)
{
    static const char fn[] = "vib_trainer_create";
    TRY(VIBI_CHECK_PTRS(fn, "model opt out", model, opt, out));
    const size_t P = model->arch.num_params, dim = model->arch.input_dim;
    if (vib_optim_size(opt) != P)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: the optimizer holds %zu values, the model %zu",
                         fn, vib_optim_size(opt), P);
    if (ema != NULL && vib_ema_size(ema) != P)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: the average holds %zu values, the model %zu",
                         fn, vib_ema_size(ema), P);
    if (n == 0 || batch == 0)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: n = %zu and batch = %zu must be positive", fn,
                         n, batch);
    batch = batch < n ? batch : n;
    size_t obytes, xbytes;
    if (!vibi_mul_size(n, sizeof(size_t), &obytes) || !vibi_mul_size(batch, dim, &xbytes) ||
        !vibi_mul_size(xbytes, sizeof(float), &xbytes))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: n = %zu or batch = %zu is too large", fn, n,
                         batch);
    TRY(vibi_model_reserve_train(model, fn, batch, vibi_model_draws(model)));
    void *p[4];
    vib_trainer *t = vibi_alloc_parts(
        4, (const size_t[]){sizeof(vib_trainer), obytes, xbytes, batch * sizeof(int32_t)}, p);
    if (t == NULL)
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate a trainer for %zu rows", fn, n);
    memset(t, 0, sizeof *t);
    int rc = vib_rng_create(SHUFFLE_SEED(seed), &t->shuffle);
    if (rc != VIB_OK) {
        free(t);
        return rc;
    }
    t->model = model, t->opt = opt, t->ema = ema;
    t->n = n, t->batch = batch, t->steps_per_epoch = (n + batch - 1) / batch;
    t->order = p[1], t->xb = p[2], t->yb = p[3];
    t->lr0 = vib_optim_lr(opt), t->rate = 1.0f, t->decay_steps = 1, t->last_lr = t->lr0;
    t->rank = 0, t->ranks = 1;
    for (size_t i = 0; i < n; i++)
        t->order[i] = i;
    shuffle_order(t); /* epoch 0's order */
    vibi_model_trained(model, batch); /* a later change of the draws makes room at once */
    *out = t;
    return VIB_OK;
}

int vib_trainer_set_schedule(vib_trainer *trainer, float lr0, float rate, uint64_t decay_steps)
{
    static const char fn[] = "vib_trainer_set_schedule";
    TRY(vibi_check_ptr(fn, "trainer", trainer));
    float lr; /* vib_lr_staircase checks the settings */
    TRY(vib_lr_staircase(lr0, rate, decay_steps, 0, &lr));
    trainer->lr0 = lr0, trainer->rate = rate, trainer->decay_steps = decay_steps;
    if (trainer->steps == 0)
        trainer->last_lr = lr;
    return VIB_OK;
}

int vib_trainer_set_callback(vib_trainer *trainer, vib_train_callback cb, void *user)
{
    TRY(vibi_check_ptr("vib_trainer_set_callback", "trainer", trainer));
    trainer->cb = cb, trainer->user = user;
    return VIB_OK;
}

int vib_trainer_set_reduce(vib_trainer *trainer, vib_reduce_callback cb, void *user)
{
    TRY(vibi_check_ptr("vib_trainer_set_reduce", "trainer", trainer));
    trainer->reduce = cb, trainer->reduce_user = user;
    trainer->part = NULL, trainer->wait = NULL;
    return VIB_OK;
}

int vib_trainer_set_reduce_overlap(vib_trainer *trainer, vib_reduce_part_callback part,
                                   vib_reduce_wait_callback wait, void *user)
{
    static const char fn[] = "vib_trainer_set_reduce_overlap";
    TRY(vibi_check_ptr(fn, "trainer", trainer));
    if (part != NULL && wait == NULL)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: wait is NULL (part needs it)", fn);
    trainer->part = part, trainer->wait = part != NULL ? wait : NULL;
    trainer->reduce_user = part != NULL ? user : NULL;
    trainer->reduce = NULL;
    return VIB_OK;
}

int vib_trainer_set_shard(vib_trainer *trainer, size_t rank, size_t ranks)
{
    static const char fn[] = "vib_trainer_set_shard";
    TRY(vibi_check_ptr(fn, "trainer", trainer));
    if (ranks == 0 || rank >= ranks)
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: rank %zu of %zu: need rank < ranks", fn, rank,
                         ranks);
    if (ranks > trainer->batch)
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: %zu ranks for batches of %zu rows: a rank would have none", fn,
                         ranks, trainer->batch);
    trainer->rank = rank, trainer->ranks = ranks;
    return VIB_OK;
}

/* ---- training ------------------------------------------------------------------- */

/* One step of the current epoch; on failure nothing of the trainer, model (but its
 * gradient array), optimizer or average has changed. *rows_out: the batch's rows. */
static int step(vib_trainer *t, const char *fn, const float *x, const int32_t *labels,
                double *ce, double *kl, double *loss, size_t *rows_out)
{
    TRY(VIBI_CHECK_PTRS(fn, "x labels", x, labels));
    vib_model *m = t->model;
    const size_t dim = m->arch.input_dim, first = (size_t)t->step_in_epoch * t->batch;
    const size_t rows = t->n - first < t->batch ? t->n - first : t->batch;
    /* this worker's rows of the global batch: [lo, hi) of its `rows` */
    const size_t lo = rows * t->rank / t->ranks, hi = rows * (t->rank + 1) / t->ranks;
    for (size_t r = lo; r < hi; r++) {
        const size_t i = t->order[first + r];
        memcpy(t->xb + (r - lo) * dim, x + i * dim, dim * sizeof(float));
        t->yb[r - lo] = labels[i];
    }
    /* The rate of this step; no optimizer accepts 0, which many decays reach. */
    float lr;
    TRY(vib_lr_staircase(t->lr0, t->rate, t->decay_steps, t->steps, &lr));
    lr = lr > 1e-30f ? lr : 1e-30f;
    const float lr_was = vib_optim_lr(t->opt);
    vibi_rng_state noise_was;
    vibi_rng_save(m->noise, &noise_was);
    TRY(vib_optim_set_lr(t->opt, lr));
    /* a failing gradient call puts the noise back itself */
    const size_t np = m->arch.num_params;
    vibi_ready ready = {.part = t->part, .user = t->reduce_user, .hi = np, .failed = 0};
    int rc = t->ranks == 1 && t->part == NULL
                 ? vib_model_gradients(m, rows, t->xb, t->yb, ce, kl, loss)
                 : vibi_model_shard_gradients(m, fn, hi - lo, t->xb, t->yb, rows, lo,
                                              t->part != NULL ? &ready : NULL, ce, kl, loss);
    /* the workers' gradients summed, in place: at once, or what the parts began */
    int r = 0;
    if (t->reduce != NULL && rc == VIB_OK)
        r = t->reduce(t->reduce_user, m->grads, np);
    else if (t->part != NULL && ready.hi < np) { /* the backward pass began the parts */
        r = t->wait(t->reduce_user, m->grads, np);
        r = ready.failed != 0 ? ready.failed : r;
    }
    if (r != 0 && rc == VIB_OK)
        rc = vibi_fail(VIB_ERR_IO, "%s: the gradient reduction failed (it returned %d)", fn, r);
    if (rc == VIB_OK)
        rc = vib_optim_step_ema(t->opt, m->params, m->grads, t->ema);
    if (rc != VIB_OK) {
        vibi_rng_restore(m->noise, &noise_was);
        (void)vib_optim_set_lr(t->opt, lr_was); /* was accepted before */
        return rc;
    }
    t->last_lr = lr;
    t->steps++;
    if (++t->step_in_epoch == t->steps_per_epoch) {
        t->step_in_epoch = 0;
        t->epochs_done++;
        shuffle_order(t); /* the next epoch's order */
    }
    *rows_out = hi - lo;
    return VIB_OK;
}

int vib_trainer_step(vib_trainer *trainer, const float *x, const int32_t *labels, double *ce,
                     double *kl, double *loss)
{
    static const char fn[] = "vib_trainer_step";
    TRY(vibi_check_ptr(fn, "trainer", trainer));
    double c, k, l;
    size_t rows;
    TRY(step(trainer, fn, x, labels, &c, &k, &l, &rows));
    if (ce) *ce = c;
    if (kl) *kl = k;
    if (loss) *loss = l;
    return VIB_OK;
}

int vib_trainer_epoch(vib_trainer *trainer, const float *x, const int32_t *labels, double *ce,
                      double *kl, double *loss)
{
    static const char fn[] = "vib_trainer_epoch";
    TRY(vibi_check_ptr(fn, "trainer", trainer));
    vib_trainer *t = trainer;
    t->stopped = 0;
    const uint64_t epoch = t->epochs_done;
    double sum_ce = 0.0, sum_kl = 0.0, sum_loss = 0.0;
    size_t total = 0;
    while (t->epochs_done == epoch) {
        double c, k, l;
        size_t rows;
        TRY(step(t, fn, x, labels, &c, &k, &l, &rows));
        sum_ce += c * (double)rows, sum_kl += k * (double)rows, sum_loss += l * (double)rows;
        total += rows;
        const uint64_t done = t->epochs_done == epoch ? t->step_in_epoch : t->steps_per_epoch;
        if (t->cb != NULL && t->cb(t->user, epoch, done, t->steps_per_epoch, c, k, l) != 0) {
            t->stopped = 1; /* also after the epoch's last step: the caller asked to stop */
            break;
        }
    }
    const double rows = total > 0 ? (double)total : 1.0; /* a shard may have trained none */
    if (ce) *ce = sum_ce / rows;
    if (kl) *kl = sum_kl / rows;
    if (loss) *loss = sum_loss / rows;
    return VIB_OK;
}

uint64_t vib_trainer_epochs_done(const vib_trainer *trainer)
{
    return trainer ? trainer->epochs_done : 0;
}

uint64_t vib_trainer_step_in_epoch(const vib_trainer *trainer)
{
    return trainer ? trainer->step_in_epoch : 0;
}

uint64_t vib_trainer_steps_per_epoch(const vib_trainer *trainer)
{
    return trainer ? trainer->steps_per_epoch : 0;
}

uint64_t vib_trainer_steps(const vib_trainer *trainer)
{
    return trainer ? trainer->steps : 0;
}

int vib_trainer_stopped(const vib_trainer *trainer)
{
    return trainer ? trainer->stopped : 0;
}

float vib_trainer_lr(const vib_trainer *trainer)
{
    return trainer ? trainer->last_lr : 0.0f;
}

/* ---- checkpoints ---------------------------------------------------------------- */

/* Bytes of the sections after the model for this trainer. */
static size_t state_bytes(const vib_trainer *t)
{
    vibi_optim_state o;
    vibi_optim_view(t->opt, &o);
    size_t b = 6 * 8 + 3 * 4 + 3 * 32 + 8 * t->n;            /* trainer */
    b += 4 + 8 + 5 * 4 + 8 + 8 + 4 * o.n * (o.s2 ? 2 : 1); /* optimizer */
    if (t->ema != NULL)
        b += 8 + 4 + 8 + 4 * vib_ema_size(t->ema); /* average */
    return b;
}

static unsigned char *put_rng(unsigned char *p, const vib_rng *rng)
{
    vibi_rng_state s;
    vibi_rng_save(rng, &s);
    for (int i = 0; i < 4; i++)
        p = vibi_put_u64(p, s.s[i]);
    return p;
}

static unsigned char *put_floats(unsigned char *p, size_t n, const float *x)
{
    for (size_t i = 0; i < n; i++)
        p = vibi_put_f32(p, x[i]);
    return p;
}

int vib_trainer_save(const vib_trainer *trainer, const char *path)
{
    static const char fn[] = "vib_trainer_save";
    TRY(VIBI_CHECK_PTRS(fn, "trainer path", trainer, path));
    const vib_trainer *t = trainer;
    vibi_optim_state o;
    vibi_ema_state e;
    vibi_optim_view(t->opt, &o);
    if (t->ema != NULL)
        vibi_ema_view(t->ema, &e);
    unsigned char *model;
    size_t mlen;
    TRY(vibi_model_image(fn, t->model, &model, &mlen));
    const size_t total = CKPT_HEAD + mlen + state_bytes(t) + 4;
    unsigned char *buf = malloc(total);
    if (buf == NULL) {
        free(model);
        return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, total);
    }
    unsigned char *p = buf;
    memcpy(p, VIBI_CKPT_MAGIC, 8), p += 8;
    p = vibi_put_u32(p, CKPT_VERSION);
    p = vibi_put_u32(p, t->ema != NULL ? 1u : 0u);
    p = vibi_put_u64(p, mlen);
    memcpy(p, model, mlen), p += mlen;
    free(model);
    p = vibi_put_u64(p, t->n);
    p = vibi_put_u64(p, t->batch);
    p = vibi_put_u64(p, t->epochs_done);
    p = vibi_put_u64(p, t->step_in_epoch);
    p = vibi_put_u64(p, t->steps);
    p = vibi_put_f32(p, t->lr0);
    p = vibi_put_f32(p, t->rate);
    p = vibi_put_u64(p, t->decay_steps);
    p = vibi_put_f32(p, t->last_lr);
    p = put_rng(p, t->shuffle);
    p = put_rng(p, t->model->noise);
    p = put_rng(p, t->model->predict_noise);
    for (size_t i = 0; i < t->n; i++)
        p = vibi_put_u64(p, t->order[i]);
    p = vibi_put_u32(p, (uint32_t)o.kind);
    p = vibi_put_u64(p, o.n);
    p = vibi_put_f32(p, *o.lr);
    p = vibi_put_f32(p, o.beta1);
    p = vibi_put_f32(p, o.beta2);
    p = vibi_put_f32(p, o.eps);
    p = vibi_put_f32(p, o.momentum);
    p = vibi_put_f64(p, *o.s1max);
    p = vibi_put_u64(p, *o.steps);
    p = put_floats(p, o.n, o.s1);
    if (o.s2 != NULL)
        p = put_floats(p, o.n, o.s2);
    if (t->ema != NULL) {
        p = vibi_put_u64(p, e.n);
        p = vibi_put_f32(p, e.decay);
        p = vibi_put_u64(p, *e.updates);
        p = put_floats(p, e.n, e.avg);
    }
    vibi_put_u32(p, vibi_crc32(buf, (size_t)(p - buf)));
    const int rc = vibi_write_file(fn, path, buf, total);
    free(buf);
    return rc;
}

int vibi_checkpoint_header(const char *fn, const char *path, const unsigned char *h,
                           size_t hlen, uint64_t size, uint64_t *m)
{
    if (hlen < CKPT_HEAD || memcmp(h, VIBI_CKPT_MAGIC, 8) != 0)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: not a libvib checkpoint (%llu bytes)", fn,
                         path, (unsigned long long)size);
    const uint32_t version = vibi_get_u32(h + 8), flags = vibi_get_u32(h + 12);
    if (version != CKPT_VERSION)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: checkpoint version %u, this libvib reads %d",
                         fn, path, version, CKPT_VERSION);
    if (flags & ~1u)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: unknown checkpoint flags 0x%x", fn, path, flags);
    *m = vibi_get_u64(h + 16);
    if (size < CKPT_HEAD + 4 || *m > size - CKPT_HEAD - 4)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: the model part (%llu bytes) runs past the end",
                         fn, path, (unsigned long long)*m);
    return VIB_OK;
}

/* A reader over the state sections that refuses to run past their end. */
typedef struct {
    const unsigned char *p, *end;
    bool short_;
} reader;

static const unsigned char *take(reader *r, size_t n)
{
    if (r->short_ || (size_t)(r->end - r->p) < n) {
        r->short_ = true;
        return NULL;
    }
    const unsigned char *q = r->p;
    r->p += n;
    return q;
}

static uint64_t rd_u64(reader *r)
{
    const unsigned char *q = take(r, 8);
    return q ? vibi_get_u64(q) : 0;
}

static uint32_t rd_u32(reader *r)
{
    const unsigned char *q = take(r, 4);
    return q ? vibi_get_u32(q) : 0;
}

static float rd_f32(reader *r)
{
    const unsigned char *q = take(r, 4);
    return q ? vibi_get_f32(q) : 0.0f;
}

static void rd_rng(reader *r, vibi_rng_state *s)
{
    for (int i = 0; i < 4; i++)
        s->s[i] = rd_u64(r);
}

/* n floats at the reader into dst (if not NULL), all finite (and >= 0 if nonneg); the
 * largest magnitude into *absmax if not NULL. */
static bool rd_floats(reader *r, size_t n, float *dst, bool nonneg, float *absmax)
{
    size_t bytes;
    if (!vibi_mul_size(n, 4, &bytes))
        return false;
    const unsigned char *q = take(r, bytes);
    if (q == NULL)
        return false;
    float mx = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const float v = vibi_get_f32(q + 4 * i);
        if (!isfinite(v) || (nonneg && v < 0.0f))
            return false;
        mx = fabsf(v) > mx ? fabsf(v) : mx;
        if (dst != NULL)
            dst[i] = v;
    }
    if (absmax != NULL)
        *absmax = mx;
    return true;
}

static bool same_arch(const vibi_arch *a, const vibi_arch *b)
{
    if (a->input_dim != b->input_dim || a->k != b->k || a->classes != b->classes ||
        a->n_enc != b->n_enc || a->n_dec != b->n_dec || a->flags != b->flags)
        return false;
    for (size_t i = 0; i < a->n_enc; i++)
        if (a->enc[i] != b->enc[i])
            return false;
    for (size_t i = 0; i < a->n_dec; i++)
        if (a->dec[i] != b->dec[i])
            return false;
    return true;
}

/* Check the state sections against trainer t, reading them twice: first to check
 * (commit false: nothing written), then to restore (commit true). */
static int read_state(const char *fn, const char *path, vib_trainer *t, const unsigned char *p,
                      const unsigned char *end, bool has_ema, bool commit)
{
    reader r = {p, end, false};
    vibi_optim_state o;
    vibi_ema_state e;
    vibi_optim_view(t->opt, &o);
    if (t->ema != NULL)
        vibi_ema_view(t->ema, &e);
    const uint64_t n = rd_u64(&r), batch = rd_u64(&r);
    if (!r.short_ && (n != t->n || batch != t->batch))
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: %s: a trainer of %llu rows in batches of %llu, this one %zu and %zu",
                         fn, path, (unsigned long long)n, (unsigned long long)batch, t->n,
                         t->batch);
    const uint64_t epochs = rd_u64(&r), in_epoch = rd_u64(&r), steps = rd_u64(&r);
    const float lr0 = rd_f32(&r), rate = rd_f32(&r);
    const uint64_t decay_steps = rd_u64(&r);
    const float last_lr = rd_f32(&r);
    vibi_rng_state shuffle, noise, predict;
    rd_rng(&r, &shuffle);
    rd_rng(&r, &noise);
    rd_rng(&r, &predict);
    float unused;
    const bool zero_rng = (shuffle.s[0] | shuffle.s[1] | shuffle.s[2] | shuffle.s[3]) == 0 ||
                          (noise.s[0] | noise.s[1] | noise.s[2] | noise.s[3]) == 0 ||
                          (predict.s[0] | predict.s[1] | predict.s[2] | predict.s[3]) == 0;
    if (!r.short_ && (in_epoch >= t->steps_per_epoch || zero_rng ||
                      epochs > (UINT64_MAX - in_epoch) / t->steps_per_epoch ||
                      steps != epochs * t->steps_per_epoch + in_epoch ||
                      vib_lr_staircase(lr0, rate, decay_steps, 0, &unused) != VIB_OK ||
                      !(last_lr > 0.0f) || !isfinite(last_lr)))
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: the trainer's position or schedule is corrupted", fn, path);
    const unsigned char *order = take(&r, 8 * t->n);
    if (order != NULL && !commit) { /* a permutation of 0..n-1 */
        unsigned char *seen = calloc(t->n, 1);
        if (seen == NULL)
            return vibi_fail(VIB_ERR_NOMEM, "%s: cannot allocate %zu bytes", fn, t->n);
        bool ok = true;
        for (size_t i = 0; ok && i < t->n; i++) {
            const uint64_t v = vibi_get_u64(order + 8 * i);
            ok = v < t->n && !seen[v];
            if (ok)
                seen[v] = 1;
        }
        free(seen);
        if (!ok)
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: the row order is not a permutation: corrupted", fn, path);
    }
    const uint32_t kind = rd_u32(&r);
    const uint64_t on = rd_u64(&r);
    const float olr = rd_f32(&r), b1 = rd_f32(&r), b2 = rd_f32(&r), eps = rd_f32(&r),
                mom = rd_f32(&r);
    const unsigned char *s1max = take(&r, 8);
    const uint64_t osteps = rd_u64(&r);
    if (!r.short_ && ((int)kind != o.kind || on != o.n))
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: %s: saved with %s over %llu values, this trainer has %s over %zu",
                         fn, path, kind == 1 ? "Adam" : kind == 2 ? "SGD" : "an unknown optimizer",
                         (unsigned long long)on, o.kind == 1 ? "Adam" : "SGD", o.n);
    if (!r.short_ && (b1 != o.beta1 || b2 != o.beta2 || eps != o.eps || mom != o.momentum))
        return vibi_fail(VIB_ERR_INVALID_ARG,
                         "%s: %s: the optimizer's settings differ from this one's "
                         "(beta1 %g, beta2 %g, eps %g, momentum %g saved)",
                         fn, path, (double)b1, (double)b2, (double)eps, (double)mom);
    if (!r.short_ && (!(olr > 0.0f) || !isfinite(olr) || !(vibi_get_f64(s1max) >= 0.0)))
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: the optimizer's state is corrupted", fn, path);
    /* The moments must be finite, Adam's second one not negative: a step trusts both. */
    float s1abs = 0.0f;
    if (!r.short_ && (!rd_floats(&r, o.n, commit ? o.s1 : NULL, false, &s1abs) ||
                      (o.s2 != NULL && !rd_floats(&r, o.n, commit ? o.s2 : NULL, true, NULL))))
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: the optimizer's moments are %s", fn, path,
                         r.short_ ? "cut short" : "not finite, or a second moment negative");
    if (has_ema != (t->ema != NULL))
        return vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s: saved %s a moving average, this trainer %s",
                         fn, path, has_ema ? "with" : "without", t->ema ? "has one" : "has none");
    uint64_t updates = 0;
    if (has_ema) {
        const uint64_t en = rd_u64(&r);
        const float decay = rd_f32(&r);
        updates = rd_u64(&r);
        if (!r.short_ && (en != e.n || decay != e.decay))
            return vibi_fail(VIB_ERR_INVALID_ARG,
                             "%s: %s: the average (%llu values, decay %g) differs from this "
                             "trainer's (%zu, %g)",
                             fn, path, (unsigned long long)en, (double)decay, e.n,
                             (double)e.decay);
        if (!r.short_ && !rd_floats(&r, e.n, commit ? e.avg : NULL, false, NULL))
            return vibi_fail(VIB_ERR_FORMAT, "%s: %s: the average is %s", fn, path, r.short_ ? "cut short" : "not finite");
    }
    if (r.short_ || r.p != end)
        return vibi_fail(VIB_ERR_FORMAT, "%s: %s: the trainer's state is %s", fn, path,
                   r.short_ ? "cut short" : "followed by unexpected bytes");
    if (!commit)
        return VIB_OK;
    t->epochs_done = epochs, t->step_in_epoch = in_epoch, t->steps = steps;
    t->lr0 = lr0, t->rate = rate, t->decay_steps = decay_steps, t->last_lr = last_lr;
    vibi_rng_restore(t->shuffle, &shuffle);
    vibi_rng_restore(t->model->noise, &noise);
    vibi_rng_restore(t->model->predict_noise, &predict);
    for (size_t i = 0; i < t->n; i++)
        t->order[i] = (size_t)vibi_get_u64(order + 8 * i);
    *o.lr = olr;
    /* The bound the optimizer keeps on |s1| decides only between its fast and its full
     * overflow check; it must hold, whatever the file says. */
    const double saved_max = vibi_get_f64(s1max);
    *o.s1max = saved_max > (double)s1abs ? saved_max : (double)s1abs;
    *o.steps = osteps;
    if (has_ema)
        *e.updates = updates;
    return VIB_OK;
}

int vib_trainer_load(vib_trainer *trainer, const char *path)
{
    static const char fn[] = "vib_trainer_load";
    TRY(VIBI_CHECK_PTRS(fn, "trainer path", trainer, path));
    vib_trainer *t = trainer;
    int fd;
    uint64_t size;
    TRY(vibi_open_regular(fn, path, &fd, &size));
    unsigned char *b = NULL;
    size_t got = 0;
    int rc = VIB_OK;
    /* A checkpoint of this trainer has a known length. One of another optimizer kind or
     * average is at most twice or half as long, and is read to say what differs; a file
     * far longer is refused before it is read (a forged length costs no memory). */
    const uint64_t own =
        CKPT_HEAD + vibi_model_file_bytes(&t->model->arch) + state_bytes(t) + 4;
    if (size > 4 * own + ((uint64_t)1 << 20))
        rc = vibi_fail(VIB_ERR_FORMAT,
                       "%s: %s: %llu bytes, far more than a checkpoint of this trainer (%llu): "
                       "another model or data size, or not a checkpoint",
                       fn, path, (unsigned long long)size, (unsigned long long)own);
    else if ((b = malloc((size_t)size + 1)) == NULL)
        rc = vibi_fail(VIB_ERR_NOMEM, "%s: %s: cannot allocate %llu bytes", fn, path,
                       (unsigned long long)size + 1);
    else
        rc = vibi_read_fd(fn, path, fd, b, (size_t)size + 1, &got);
    (void)close(fd);
    const size_t off = CKPT_HEAD;
    uint64_t m64 = 0;
    if (rc == VIB_OK)
        rc = vibi_checkpoint_header(fn, path, b, got, got, &m64);
    if (rc == VIB_OK && vibi_get_u32(b + got - 4) != vibi_crc32(b, got - 4))
        rc = vibi_fail(VIB_ERR_FORMAT, "%s: %s: CRC mismatch (stored %08x, computed %08x): corrupted",
                       fn, path, vibi_get_u32(b + got - 4), vibi_crc32(b, got - 4));
    const size_t mlen = (size_t)m64;
    vib_model *m = NULL;
    if (rc == VIB_OK)
        rc = vibi_model_parse(fn, path, b + off, mlen, &m);
    if (rc == VIB_OK && !same_arch(&m->arch, &t->model->arch)) {
        char want[256], have[256];
        vib_model_describe(m, have, sizeof have);
        vib_model_describe(t->model, want, sizeof want);
        rc = vibi_fail(VIB_ERR_INVALID_ARG, "%s: %s: a checkpoint of %s, the trainer's model is %s",
                       fn, path, have, want);
    }
    /* the state's bytes, [st, end): formed only for a checked header, whose model
     * length lies within the file (a forged one would point past the buffer) */
    const unsigned char *st = NULL, *end = NULL;
    if (rc == VIB_OK)
        st = b + off + mlen, end = b + got - 4;
    const bool has_ema = rc == VIB_OK && (vibi_get_u32(b + 12) & 1u);
    if (rc == VIB_OK)
        rc = read_state(fn, path, t, st, end, has_ema, false);
    /* room for the checkpoint's draws per example before anything changes (a no-op when
     * there is room) */
    if (rc == VIB_OK)
        rc = vibi_model_reserve_train(t->model, fn, t->batch, vibi_model_draws(m));
    if (rc == VIB_OK) { /* everything checked: restore */
        (void)read_state(fn, path, t, st, end, has_ema, true);
        memcpy(t->model->params, m->params, m->arch.num_params * sizeof(float));
        t->model->beta = m->beta;
        t->model->offset = m->offset;
        t->model->deterministic = m->deterministic;
        t->model->train_samples = m->train_samples;
        t->model->objective = m->objective;
        t->model->seed = m->seed;
    }
    vib_model_free(m);
    free(b);
    return rc;
}
