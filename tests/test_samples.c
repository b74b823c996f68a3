/* test_samples.c - training with several posterior draws per example
 * (vib_model_set_train_samples): both objectives' gradients against finite differences
 * (diagonal and full covariance), the mean objective as the average of one-draw steps
 * on the same noise, the log-mean-exp objective against a hand computation and below the
 * mean (Jensen), one draw as the default bit for bit, shards summing to the whole batch,
 * input gradients, saving (version 1 kept for the default), checkpoints, bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model.h"
#include "tests.h"

enum { IN = 5, K = 3, C = 3, B = 4 };

static const size_t ENC[] = {6}, DEC[] = {4};

typedef struct {
    vib_model *m;
    float x[B * IN];
    int32_t y[B];
} ctx;

static void make(ctx *p, uint32_t flags, size_t n_dec, size_t samples, int objective)
{
    ck_assert_ok(vib_model_create_ex(IN, 1, ENC, K, n_dec, DEC, C, flags, 3, &p->m));
    fill_normal(4, B * IN, 0.0f, 1.0f, p->x);
    for (int r = 0; r < B; r++)
        p->y[r] = r % C;
    /* sigma ~ 0.7 and a visible KL, as the one-draw gradient checks */
    ck_assert_ok(vib_model_set_sigma_offset(p->m, 0.0f));
    ck_assert_ok(vib_model_set_beta(p->m, 0.5f));
    ck_assert_ok(vib_model_set_train_samples(p->m, samples, objective));
}

static double loss_at(void *c)
{
    ctx *p = c;
    double loss;
    ck_assert_ok(vib_model_reseed(p->m, 77));
    ck_assert_ok(vib_model_gradients(p->m, B, p->x, p->y, NULL, NULL, &loss));
    return loss;
}

/* got[0..n) against want within 1e-5 of want's largest entry, which must not be 0 (the
 * draws' gradients against their combination by hand: float sums in another order). */
static void check_near(const char *what, const float *got, const double *want, size_t n)
{
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    ck_assert_msg(scale > 0 && worst <= 1e-5 * scale, "%s: %g off, the largest %g", what, worst,
                  scale);
}

static void check_fd(ctx *p, double h)
{
    const size_t n = vib_model_num_params(p->m);
    float *g = malloc(n * sizeof *g);
    loss_at(p);
    memcpy(g, vib_model_grads(p->m), n * sizeof *g);
    check_gradient("dparams", loss_at, p, vib_model_params(p->m), n, g, h, 1e-2, 2e-4);
    free(g);
}

START_TEST(gradients_match_finite_differences)
{
    for (int objective = 0; objective < 2; objective++)
        for (int n_dec = 0; n_dec < 2; n_dec++) {
            ctx p;
            make(&p, 0, (size_t)n_dec, 5, objective);
            check_fd(&p, 1e-2);
            vib_model_free(p.m);
        }
}
END_TEST

START_TEST(full_covariance_gradients_match_finite_differences)
{
    for (int objective = 0; objective < 2; objective++) {
        ctx p;
        make(&p, VIB_MODEL_FULL_COV, 1, 4, objective);
        float *w = vib_model_params(p.m); /* off-diagonal weights start at 0: give some */
        for (size_t i = 0; i < vib_model_num_params(p.m); i++)
            if (w[i] == 0.0f)
                w[i] = 0.3f * (float)((i * 7) % 5) - 0.6f;
        check_fd(&p, 2e-3);
        vib_model_free(p.m);
    }
}
END_TEST

/* The mean objective with S draws is the average of S one-draw steps that see the same
 * noise (the draws come from the stream in that order): gradients and losses. */
START_TEST(mean_is_the_average_of_one_draw_steps)
{
    enum { S = 6 };
    ctx p;
    make(&p, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    const size_t n = vib_model_num_params(p.m);
    double *avg = calloc(n, sizeof *avg);
    double ce1 = 0, kl1 = 0, loss1 = 0;
    ck_assert_ok(vib_model_reseed(p.m, 9));
    for (int s = 0; s < S; s++) {
        double ce, kl, loss;
        ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, &ce, &kl, &loss));
        for (size_t i = 0; i < n; i++)
            avg[i] += vib_model_grads(p.m)[i] / S;
        ce1 += ce / S, kl1 += kl / S, loss1 += loss / S;
    }
    ck_assert_ok(vib_model_set_train_samples(p.m, S, VIB_OBJECTIVE_MEAN));
    ck_assert_ok(vib_model_reseed(p.m, 9));
    double ce, kl, loss;
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, &ce, &kl, &loss));
    ck_assert_double_eq_tol(ce, ce1, 1e-6 * fabs(ce1));
    ck_assert_double_eq_tol(kl, kl1, 1e-6 * fabs(kl1));
    ck_assert_double_eq_tol(loss, loss1, 1e-6 * fabs(loss1));
    check_near("S draws vs S one-draw steps", vib_model_grads(p.m), avg, n);
    /* and the stream moved on by exactly S one-draw steps: the next draw agrees too */
    ck_assert_ok(vib_model_set_train_samples(p.m, 1, VIB_OBJECTIVE_MEAN));
    double next_a, next_b;
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, NULL, NULL, &next_a));
    ck_assert_ok(vib_model_reseed(p.m, 9));
    for (int s = 0; s <= S; s++)
        ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, NULL, NULL, &next_b));
    ck_assert_double_eq(next_a, next_b);
    free(avg);
    vib_model_free(p.m);
}
END_TEST

/* The log-mean-exp objective by hand, on one row: S one-draw steps from the same noise
 * give each draw's CE, ce_s = -log q(y | z_s), and gradient g_s (of ce_s + beta KL); the
 * S-draw step must give CE = -log((1/S) sum_s e^(-ce_s)) and the gradient sum_s w_s g_s,
 * w = softmax(-ce) (the KL's gradient is the same in every g_s and the w sum to 1). It is
 * below the mean objective's CE on the same draws (Jensen), and equal to it at S = 1. */
START_TEST(logmeanexp_by_hand_and_below_the_mean)
{
    enum { S = 5 };
    ctx p;
    make(&p, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    const size_t n = vib_model_num_params(p.m);
    double ce_s[S], kl_s[S];
    float *g = malloc(S * n * sizeof *g);
    ck_assert_ok(vib_model_reseed(p.m, 21));
    for (int d = 0; d < S; d++) {
        ck_assert_ok(vib_model_gradients(p.m, 1, p.x, p.y, &ce_s[d], &kl_s[d], NULL));
        memcpy(g + d * n, vib_model_grads(p.m), n * sizeof *g);
    }
    double mx = -ce_s[0], sum = 0.0, mean = 0.0;
    for (int d = 1; d < S; d++)
        mx = fmax(mx, -ce_s[d]);
    for (int d = 0; d < S; d++)
        sum += exp(-ce_s[d] - mx), mean += ce_s[d] / S;
    const double want = -(mx + log(sum)) + log((double)S);

    ck_assert_ok(vib_model_set_train_samples(p.m, S, VIB_OBJECTIVE_LOGMEANEXP));
    ck_assert_uint_eq(vib_model_train_samples(p.m), S);
    ck_assert_int_eq(vib_model_train_objective(p.m), VIB_OBJECTIVE_LOGMEANEXP);
    double ce, kl;
    ck_assert_ok(vib_model_reseed(p.m, 21));
    ck_assert_ok(vib_model_gradients(p.m, 1, p.x, p.y, &ce, &kl, NULL));
    ck_assert_double_eq_tol(ce, want, 1e-6 * fmax(1.0, fabs(want)));
    ck_assert_double_eq_tol(kl, kl_s[0], 1e-9 * kl_s[0]);
    ck_assert_msg(ce < mean, "log-mean-exp %g is not below the mean %g", ce, mean);
    double *h = calloc(n, sizeof *h);
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < S; d++)
            h[i] += exp(-ce_s[d] - mx) / sum * g[d * n + i];
    check_near("weighted one-draw gradients", vib_model_grads(p.m), h, n);
    free(h);

    /* S = 1: the two objectives are the same loss */
    double a, b;
    ck_assert_ok(vib_model_set_train_samples(p.m, 1, VIB_OBJECTIVE_LOGMEANEXP));
    ck_assert_ok(vib_model_reseed(p.m, 5));
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, NULL, NULL, &a));
    ck_assert_ok(vib_model_set_train_samples(p.m, 1, VIB_OBJECTIVE_MEAN));
    ck_assert_ok(vib_model_reseed(p.m, 5));
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, NULL, NULL, &b));
    ck_assert_double_eq(a, b);
    free(g);
    vib_model_free(p.m);
}
END_TEST

/* The log-mean-exp objective by hand over a batch of B rows, so the weights must be
 * grouped by row: row r's draw d alone is a shard of one row (offset r of the global
 * batch of B) taking the d-th of the one-draw steps' noise; its CE is ce_rd and its
 * gradient g_rd, (grad ce_rd + beta grad KL_r) / B. The S-draw step must give
 * CE = (1/B) sum_r -log((1/S) sum_d e^(-ce_rd)) and the gradient
 * sum_r sum_d w_rd g_rd, w_r = softmax_d(-ce_rd). */
START_TEST(logmeanexp_by_hand_over_rows)
{
    enum { S = 4 };
    ctx p;
    make(&p, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    const size_t n = vib_model_num_params(p.m);
    double ce_rd[B][S];
    float *g = malloc((size_t)B * S * n * sizeof *g);
    for (int r = 0; r < B; r++)
        for (int d = 0; d < S; d++) {
            double c, k, l;
            ck_assert_ok(vib_model_reseed(p.m, 41));
            for (int skip = 0; skip < d; skip++) /* the earlier steps' draws */
                ck_assert_ok(vibi_model_shard_gradients(p.m, "test", 1, p.x, p.y, B, 0, NULL, &c,
                                                        &k, &l));
            ck_assert_ok(vibi_model_shard_gradients(p.m, "test", 1, p.x + r * IN, p.y + r, B,
                                                    (size_t)r, NULL, &ce_rd[r][d], &k, &l));
            memcpy(g + ((size_t)r * S + (size_t)d) * n, vib_model_grads(p.m), n * sizeof *g);
        }
    double want = 0.0;
    double w[B][S];
    for (int r = 0; r < B; r++) {
        double mx = -ce_rd[r][0], sum = 0.0;
        for (int d = 1; d < S; d++)
            mx = fmax(mx, -ce_rd[r][d]);
        for (int d = 0; d < S; d++)
            sum += exp(-ce_rd[r][d] - mx);
        for (int d = 0; d < S; d++)
            w[r][d] = exp(-ce_rd[r][d] - mx) / sum;
        want += (-(mx + log(sum)) + log((double)S)) / B;
    }
    ck_assert_ok(vib_model_set_train_samples(p.m, S, VIB_OBJECTIVE_LOGMEANEXP));
    ck_assert_ok(vib_model_reseed(p.m, 41));
    double ce;
    ck_assert_ok(vib_model_gradients(p.m, B, p.x, p.y, &ce, NULL, NULL));
    ck_assert_double_eq_tol(ce, want, 1e-6 * fmax(1.0, fabs(want)));
    double *h = calloc(n, sizeof *h);
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < B; r++)
            for (int d = 0; d < S; d++)
                h[i] += w[r][d] * g[((size_t)r * S + (size_t)d) * n + i];
    check_near("rows' weighted one-draw gradients", vib_model_grads(p.m), h, n);
    free(h);
    free(g);
    vib_model_free(p.m);
}
END_TEST

/* One draw with the mean objective, set explicitly, is the default bit for bit, and a
 * deterministic model ignores the setting (z = mu: no draws, the stream untouched). */
START_TEST(one_draw_is_the_default)
{
    ctx a, b;
    make(&a, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    ck_assert_ok(vib_model_create_ex(IN, 1, ENC, K, 1, DEC, C, 0, 3, &b.m));
    ck_assert_ok(vib_model_set_sigma_offset(b.m, 0.0f));
    ck_assert_ok(vib_model_set_beta(b.m, 0.5f));
    ck_assert_ok(vib_model_set_train_samples(b.m, 7, VIB_OBJECTIVE_LOGMEANEXP));
    ck_assert_ok(vib_model_set_train_samples(b.m, 1, VIB_OBJECTIVE_MEAN));
    const size_t n = vib_model_num_params(a.m);
    for (int step = 0; step < 3; step++) {
        double la, lb;
        ck_assert_ok(vib_model_gradients(a.m, B, a.x, a.y, NULL, NULL, &la));
        ck_assert_ok(vib_model_gradients(b.m, B, a.x, a.y, NULL, NULL, &lb));
        ck_assert_double_eq(la, lb);
        ck_assert_mem_eq(vib_model_grads(a.m), vib_model_grads(b.m), n * sizeof(float));
    }
    /* deterministic: 9 draws or 1, the same gradient */
    ck_assert_ok(vib_model_set_deterministic(a.m, 1));
    ck_assert_ok(vib_model_set_deterministic(b.m, 1));
    ck_assert_ok(vib_model_set_train_samples(b.m, 9, VIB_OBJECTIVE_LOGMEANEXP));
    double la, lb;
    ck_assert_ok(vib_model_gradients(a.m, B, a.x, a.y, NULL, NULL, &la));
    ck_assert_ok(vib_model_gradients(b.m, B, a.x, a.y, NULL, NULL, &lb));
    ck_assert_double_eq(la, lb);
    ck_assert_mem_eq(vib_model_grads(a.m), vib_model_grads(b.m), n * sizeof(float));
    vib_model_free(a.m);
    vib_model_free(b.m);
}
END_TEST

/* Two shards of a global batch with S draws each sum to the whole batch's gradient
 * (each takes its rows' share of every one of the S global draws). */
START_TEST(shards_sum_to_the_batch)
{
    enum { N = 10, S = 3 };
    for (int objective = 0; objective < 2; objective++) {
        vib_model *whole, *part;
        ck_assert_ok(vib_model_create(IN, 1, ENC, K, 0, NULL, C, 3, &whole));
        ck_assert_ok(vib_model_create(IN, 1, ENC, K, 0, NULL, C, 3, &part));
        float x[N * IN];
        int32_t y[N];
        fill_normal(6, N * IN, 0.0f, 1.0f, x);
        for (int r = 0; r < N; r++)
            y[r] = (r * 2) % C;
        ck_assert_ok(vib_model_set_sigma_offset(whole, 0.0f));
        ck_assert_ok(vib_model_set_sigma_offset(part, 0.0f));
        ck_assert_ok(vib_model_set_train_samples(whole, S, objective));
        ck_assert_ok(vib_model_set_train_samples(part, S, objective));
        const size_t n = vib_model_num_params(whole);
        double ce, kl, loss;
        ck_assert_ok(vib_model_gradients(whole, N, x, y, &ce, &kl, &loss));
        double *sum = calloc(n, sizeof *sum);
        double ce_sum = 0.0;
        const size_t cut = 4;
        for (int sh = 0; sh < 2; sh++) {
            const size_t lo = sh ? cut : 0, rows = sh ? N - cut : cut;
            double c, k, l;
            ck_assert_ok(vib_model_reseed(part, 3));
            ck_assert_ok(vibi_model_shard_gradients(part, "test", rows, x + lo * IN, y + lo, N, lo,
                                                    NULL, &c, &k, &l));
            for (size_t i = 0; i < n; i++)
                sum[i] += vib_model_grads(part)[i];
            ce_sum += c * (double)rows / N;
        }
        ck_assert_double_eq_tol(ce_sum, ce, 1e-6 * ce);
        check_near(objective ? "log-mean-exp: whole batch vs shards" : "mean: whole batch vs shards",
                   vib_model_grads(whole), sum, n);
        free(sum);
        vib_model_free(whole);
        vib_model_free(part);
    }
}
END_TEST

/* Input gradients differentiate the S-draw training loss: against finite differences in
 * x, both objectives. */
static double input_loss(void *c)
{
    ctx *p = c;
    double loss;
    float dx[B * IN];
    ck_assert_ok(vib_model_reseed(p->m, 31));
    ck_assert_ok(vib_model_input_gradients(p->m, B, p->x, p->y, 2, dx, &loss));
    return loss;
}

START_TEST(input_gradients_of_the_sample_objective)
{
    for (int objective = 0; objective < 2; objective++) {
        ctx p;
        make(&p, 0, 1, 4, objective);
        float dx[B * IN];
        ck_assert_ok(vib_model_reseed(p.m, 31));
        ck_assert_ok(vib_model_input_gradients(p.m, B, p.x, p.y, 2, dx, NULL));
        check_gradient("dx", input_loss, &p, p.x, B * IN, dx, 1e-2, 1e-2, 2e-4);
        vib_model_free(p.m);
    }
}
END_TEST

/* Saving: the default stays a version 1 file; draws or the objective make it version 2,
 * which loads with them (and a checkpoint restores them into its trainer). */
START_TEST(saved_with_the_model)
{
    char path[] = "/tmp/libvib_samples_XXXXXX";
    const int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ctx p;
    make(&p, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    unsigned char head[12];
    FILE *f;
    ck_assert_ok(vib_model_save(p.m, path));
    f = fopen(path, "rb");
    ck_assert_uint_eq(fread(head, 1, 12, f), 12);
    fclose(f);
    ck_assert_uint_eq(head[8], 1);
    ck_assert_ok(vib_model_set_train_samples(p.m, 12, VIB_OBJECTIVE_LOGMEANEXP));
    ck_assert_ok(vib_model_save(p.m, path));
    f = fopen(path, "rb");
    ck_assert_uint_eq(fread(head, 1, 12, f), 12);
    fclose(f);
    ck_assert_uint_eq(head[8], 2);
    vib_model *q;
    ck_assert_ok(vib_model_load(path, &q));
    ck_assert_uint_eq(vib_model_train_samples(q), 12);
    ck_assert_int_eq(vib_model_train_objective(q), VIB_OBJECTIVE_LOGMEANEXP);
    char d[256];
    vib_model_describe(q, d, sizeof d);
    ck_assert_ptr_nonnull(strstr(d, "12 train samples, log-mean-exp"));
    vib_model_free(q);

    /* a checkpoint: written by a trainer of the 12-draw model, loaded into one whose
     * model has 1 draw */
    vib_optim *o1, *o2;
    vib_trainer *t1, *t2;
    ck_assert_ok(vib_adam_create(vib_model_num_params(p.m), 1e-3f, 0.9f, 0.999f, 1e-8f, &o1));
    ck_assert_ok(vib_trainer_create(p.m, o1, NULL, B, 2, 1, &t1));
    ck_assert_ok(vib_trainer_step(t1, p.x, p.y, NULL, NULL, NULL));
    ck_assert_ok(vib_trainer_save(t1, path));
    ctx r;
    make(&r, 0, 1, 1, VIB_OBJECTIVE_MEAN);
    ck_assert_ok(vib_adam_create(vib_model_num_params(r.m), 1e-3f, 0.9f, 0.999f, 1e-8f, &o2));
    ck_assert_ok(vib_trainer_create(r.m, o2, NULL, B, 2, 1, &t2));
    ck_assert_ok(vib_trainer_load(t2, path));
    ck_assert_uint_ge(r.m->cap_rows, 12 * 2); /* room made by the load (batch 2): steps allocate nothing */
    ck_assert_uint_eq(vib_model_train_samples(r.m), 12);
    ck_assert_int_eq(vib_model_train_objective(r.m), VIB_OBJECTIVE_LOGMEANEXP);
    /* the two go on alike */
    double l1, l2;
    ck_assert_ok(vib_trainer_step(t1, p.x, p.y, NULL, NULL, &l1));
    ck_assert_ok(vib_trainer_step(t2, p.x, p.y, NULL, NULL, &l2));
    ck_assert_double_eq(l1, l2);
    vib_trainer_free(t1), vib_trainer_free(t2);
    vib_optim_free(o1), vib_optim_free(o2);
    vib_model_free(r.m);
    vib_model_free(p.m);
    unlink(path);
}
END_TEST

/* The workspace follows training's batches, not other calls': a trainer's batch gets
 * room for new draws at once (so its steps allocate nothing), input gradients on a large
 * batch do not count, and a switch back from deterministic makes room for the draws. */
START_TEST(room_for_the_draws)
{
    ctx p;
    make(&p, 0, 0, 1, VIB_OBJECTIVE_MEAN);
    vib_optim *o;
    vib_trainer *t;
    ck_assert_ok(vib_adam_create(vib_model_num_params(p.m), 1e-3f, 0.9f, 0.999f, 1e-8f, &o));
    ck_assert_ok(vib_trainer_create(p.m, o, NULL, B, B, 1, &t));
    ck_assert_uint_eq(p.m->train_batch, B);
    ck_assert_ok(vib_model_set_train_samples(p.m, 12, VIB_OBJECTIVE_MEAN));
    ck_assert_uint_ge(p.m->cap_rows, 12 * B);
    /* input gradients of 300 rows: room for them, but no training batch of 300 */
    float *x = calloc(300 * IN, sizeof *x), *dx = malloc(300 * IN * sizeof *dx);
    int32_t *y = calloc(300, sizeof *y);
    ck_assert_ok(vib_model_input_gradients(p.m, 300, x, y, 0, dx, NULL));
    ck_assert_uint_eq(p.m->train_batch, B);
    const size_t cap = p.m->cap_rows;
    ck_assert_ok(vib_model_set_train_samples(p.m, 1000, VIB_OBJECTIVE_MEAN));
    ck_assert_uint_ge(p.m->cap_rows, 1000 * B);
    ck_assert_uint_lt(p.m->cap_rows, 300 * 1000); /* not the input gradients' batch */
    (void)cap;
    /* deterministic: no room made for the draws; back to sampling: made then */
    vib_model *d;
    ck_assert_ok(vib_model_create(IN, 1, ENC, K, 0, NULL, C, 3, &d));
    ck_assert_ok(vib_model_set_deterministic(d, 1));
    ck_assert_ok(vib_model_gradients(d, B, p.x, p.y, NULL, NULL, NULL));
    ck_assert_ok(vib_model_set_train_samples(d, 50, VIB_OBJECTIVE_MEAN));
    ck_assert_uint_lt(d->cap_rows, 50 * B);
    ck_assert_ok(vib_model_set_deterministic(d, 0));
    ck_assert_uint_ge(d->cap_rows, 50 * B);
    vib_model_free(d);
    vib_trainer_free(t);
    vib_optim_free(o);
    free(x), free(dx), free(y);
    vib_model_free(p.m);
}
END_TEST

/* Version 2's fields are checked: draws 0 or above 1024, an unknown objective, and
 * version 1's settings in a version 2 file are refused, naming the file. */
START_TEST(version_2_fields_checked)
{
    char path[] = "/tmp/libvib_v2_XXXXXX";
    const int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ctx p;
    make(&p, 0, 1, 7, VIB_OBJECTIVE_LOGMEANEXP);
    ck_assert_ok(vib_model_save(p.m, path));
    FILE *f = fopen(path, "rb");
    unsigned char buf[4096];
    const size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    ck_assert_uint_lt(len, sizeof buf);
    const size_t at = 56 + 8 * 2 + 16; /* one encoder and one decoder layer; after seed */
    ck_assert_uint_eq(vibi_get_u32(buf + at), 7);
    ck_assert_uint_eq(vibi_get_u32(buf + at + 4), VIB_OBJECTIVE_LOGMEANEXP);
    static const uint32_t bad[][2] = {{0, 0}, {1025, 0}, {3, 2}, {1, 0}};
    static const char *const said[] = {"training draws", "training draws", "objective",
                                       "version 1's training settings"};
    for (size_t i = 0; i < 4; i++) {
        unsigned char b[4096];
        memcpy(b, buf, len);
        vibi_put_u32(b + at, bad[i][0]);
        vibi_put_u32(b + at + 4, bad[i][1]);
        vibi_put_u32(b + len - 4, vibi_crc32(b, len - 4));
        f = fopen(path, "wb");
        ck_assert_uint_eq(fwrite(b, 1, len, f), len);
        fclose(f);
        vib_model *q = NULL;
        ck_assert_int_eq(vib_model_load(path, &q), VIB_ERR_FORMAT);
        ck_assert_ptr_null(q);
        ck_assert_msg(strstr(vib_last_error(), path) && strstr(vib_last_error(), said[i]),
                      "case %zu: %s", i, vib_last_error());
    }
    vib_model_free(p.m);
    unlink(path);
}
END_TEST

START_TEST(bad_arguments)
{
    ctx p;
    make(&p, 0, 0, 3, VIB_OBJECTIVE_MEAN);
    ck_assert_int_eq(vib_model_set_train_samples(NULL, 2, 0), VIB_ERR_INVALID_ARG);
    ck_assert_int_eq(vib_model_set_train_samples(p.m, 0, 0), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(vib_last_error(), "samples = 0"));
    ck_assert_int_eq(vib_model_set_train_samples(p.m, 1025, 0), VIB_ERR_INVALID_ARG);
    ck_assert_int_eq(vib_model_set_train_samples(p.m, 2, 2), VIB_ERR_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(vib_last_error(), "objective = 2"));
    ck_assert_int_eq(vib_model_set_train_samples(p.m, 2, -1), VIB_ERR_INVALID_ARG);
    /* unchanged by the failures */
    ck_assert_uint_eq(vib_model_train_samples(p.m), 3);
    ck_assert_int_eq(vib_model_train_objective(p.m), VIB_OBJECTIVE_MEAN);
    ck_assert_uint_eq(vib_model_train_samples(NULL), 0);
    ck_assert_int_eq(vib_model_train_objective(NULL), 0);
    vib_model_free(p.m);
}
END_TEST

Suite *make_samples_suite(void)
{
    Suite *s = suite_create("samples");
    TCase *tc = tcase_create("samples");
    tcase_add_test(tc, gradients_match_finite_differences);
    tcase_add_test(tc, full_covariance_gradients_match_finite_differences);
    tcase_add_test(tc, mean_is_the_average_of_one_draw_steps);
    tcase_add_test(tc, logmeanexp_by_hand_and_below_the_mean);
    tcase_add_test(tc, logmeanexp_by_hand_over_rows);
    tcase_add_test(tc, one_draw_is_the_default);
    tcase_add_test(tc, shards_sum_to_the_batch);
    tcase_add_test(tc, input_gradients_of_the_sample_objective);
    tcase_add_test(tc, saved_with_the_model);
    tcase_add_test(tc, room_for_the_draws);
    tcase_add_test(tc, version_2_fields_checked);
    tcase_add_test(tc, bad_arguments);
    tcase_set_timeout(tc, 120);
    suite_add_tcase(s, tc);
    return s;
}
