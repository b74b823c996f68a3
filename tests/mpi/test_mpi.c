/* tests/mpi/test_mpi.c - libvib-mpi under mpirun (make check-mpi, 2 and 3 ranks).
 *
 * Each rank trains the one-process reference itself (the whole global batches), then
 * the same run as its rank's shard, and checks: (a) after 100 steps of global batches
 * of 100 the parameters are the reference's within float rounding; (b) every rank holds
 * the same bits after every step (a hash compared across the ranks); (c) checkpoints
 * cross topologies both ways; (d) a rank that fails alone makes every rank fail, with
 * its status, and changes nothing (a hang is caught by make's timeout); (e) the same
 * with the reduction overlapped with the backward pass, and a last batch with fewer
 * rows than ranks. Exits 0 when all
 * pass; a failure prints the rank, line and condition, and aborts every rank. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vib_mpi.h"

enum { N = 1000, IN = 20, HID = 32, K = 4, C = 5, BATCH = 100, STEPS = 100, MORE = 20 };

static int rank, ranks;
static float xs[N * IN];
static int32_t ys[N];

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "test_mpi: rank %d, line %d: %s: ", rank, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, " [%s | %s]\n", vib_mpi_last_error(), vib_last_error());          \
            MPI_Abort(MPI_COMM_WORLD, 1);                                                     \
        }                                                                                     \
    } while (0)
#define OK(call) CHECK((call) == VIB_OK, "%s", "failed")

typedef struct {
    vib_model *m;
    vib_optim *opt;
    vib_ema *ema;
    vib_trainer *t;
} rig;

static void rig_make_n(rig *r, size_t n)
{
    const size_t enc[] = {HID};
    OK(vib_model_create(IN, 1, enc, K, 0, NULL, C, 5, &r->m));
    const size_t P = vib_model_num_params(r->m);
    OK(vib_adam_create(P, 1e-2f, 0.9f, 0.999f, 1e-8f, &r->opt));
    OK(vib_ema_create(P, 0.9f, vib_model_params(r->m), &r->ema));
    OK(vib_trainer_create(r->m, r->opt, r->ema, n, BATCH, 11, &r->t));
    OK(vib_trainer_set_schedule(r->t, 1e-2f, 0.5f, 40));
}

static void rig_make(rig *r)
{
    rig_make_n(r, N);
}

static void rig_free(rig *r)
{
    vib_trainer_free(r->t);
    vib_ema_free(r->ema);
    vib_optim_free(r->opt);
    vib_model_free(r->m);
}

/* Synthetic data: Gaussian features, the class the argmax of a fixed linear map. */
static void data(void)
{
    vib_rng *rng = NULL;
    float w[IN * C];
    OK(vib_rng_create(71, &rng));
    OK(vib_rng_normal(rng, N * IN, 0.0f, 1.0f, xs));
    OK(vib_rng_normal(rng, IN * C, 0.0f, 1.0f, w));
    vib_rng_free(rng);
    for (int i = 0; i < N; i++) {
        float best = -INFINITY;
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int j = 0; j < IN; j++)
                s += xs[i * IN + j] * w[j * C + c];
            if (s > best)
                best = s, ys[i] = c;
        }
    }
}

/* FNV-1a over the bytes of the parameters and the average. */
static uint64_t hash(const rig *r)
{
    uint64_t h = 1469598103934665603ull;
    const size_t P = vib_model_num_params(r->m);
    const unsigned char *b[2] = {(const unsigned char *)vib_model_params(r->m),
                                 (const unsigned char *)vib_ema_values(r->ema)};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < P * sizeof(float); i++)
            h = (h ^ b[k][i]) * 1099511628211ull;
    return h;
}

/* (b): the same bits on every rank, and the same position. */
static void same_on_every_rank(const rig *r, const char *when, int step)
{
    uint64_t v[2] = {hash(r), vib_trainer_steps(r->t)}, lo[2], hi[2];
    MPI_Allreduce(v, lo, 2, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(v, hi, 2, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    CHECK(lo[0] == hi[0] && lo[1] == hi[1], "%s, step %d: the ranks differ", when, step);
}

/* The largest difference of the parameters and averages, relative to the largest
 * parameter of the reference. */
static double max_diff(const rig *a, const rig *ref, double *scale_out)
{
    const size_t P = vib_model_num_params(a->m);
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < P; i++) {
        worst = fmax(worst, fabs((double)vib_model_params(a->m)[i] - vib_model_params(ref->m)[i]));
        worst = fmax(worst, fabs((double)vib_ema_values(a->ema)[i] - vib_ema_values(ref->ema)[i]));
        scale = fmax(scale, fabs((double)vib_model_params(ref->m)[i]));
    }
    *scale_out = scale;
    return worst;
}

static int same_bits(const rig *a, const rig *b)
{
    const size_t P = vib_model_num_params(a->m);
    return memcmp(vib_model_params(a->m), vib_model_params(b->m), P * sizeof(float)) == 0 &&
           memcmp(vib_ema_values(a->ema), vib_ema_values(b->ema), P * sizeof(float)) == 0 &&
           vib_trainer_steps(a->t) == vib_trainer_steps(b->t);
}

/* The tolerance of (a) and (c), relative to the largest parameter. The shards' sum adds
 * each gradient entry in another order than one process does, so the runs differ by
 * float rounding, which the steps carry forward. Measured over 100 steps, 2 and 3
 * ranks: 1.6e-7 and 1.5e-7 of a largest parameter of 1.89 (about one float ulp there),
 * and 6e-8 for 20 steps from either checkpoint. 1e-5 of the scale leaves room for
 * rounding to grow with other MPI reduction orders and stays far below a real error
 * (the shards given the wrong noise or weights differ by ~1e-1). */
#define TOL 1e-5

static char path_base[256];

int main(int argc, char **argv)
{
    int level; /* vib_mpi_set_overlap's communication thread needs SERIALIZED */
    MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &level);
    CHECK(level >= MPI_THREAD_SERIALIZED, "thread level %d", level);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    OK(vib_set_num_threads(1));
    data();
    {   /* a directory of rank 0's, for the checkpoints (the ranks share the machine) */
        if (rank == 0) {
            snprintf(path_base, sizeof path_base, "/tmp/vib_mpi_test_%ld", (long)getpid());
        }
        MPI_Bcast(path_base, sizeof path_base, MPI_CHAR, 0, MPI_COMM_WORLD);
    }
    char ckpt_p[300], ckpt_1[300];
    snprintf(ckpt_p, sizeof ckpt_p, "%s_p.ckpt", path_base);
    snprintf(ckpt_1, sizeof ckpt_1, "%s_1.ckpt", path_base);

    /* vib_mpi_broadcast_params: rank 0's weights everywhere */
    rig ref, dist;
    rig_make(&ref);
    rig_make(&dist);
    const size_t P = vib_model_num_params(ref.m);
    if (rank != 0)
        memset(vib_model_params(dist.m), 0, P * sizeof(float));
    OK(vib_mpi_broadcast_params(dist.m, MPI_COMM_WORLD));
    CHECK(memcmp(vib_model_params(dist.m), vib_model_params(ref.m), P * sizeof(float)) == 0,
          "%s", "broadcast_params did not give rank 0's weights");

    /* (a), (b): 100 steps, the one-process reference and this rank's shard */
    for (int s = 0; s < STEPS; s++)
        OK(vib_trainer_step(ref.t, xs, ys, NULL, NULL, NULL));
    vib_mpi *ctx = NULL;
    OK(vib_mpi_attach(dist.t, MPI_COMM_WORLD, &ctx));
    for (int s = 0; s < STEPS; s++) {
        OK(vib_mpi_step(ctx, xs, ys, NULL, NULL, NULL));
        same_on_every_rank(&dist, "training", s + 1);
    }
    double scale, diff = max_diff(&dist, &ref, &scale);
    if (rank == 0)
        printf("test_mpi: %d ranks, %d steps of %d rows: parameters within %.3g of one "
               "process (largest parameter %.3g, tolerance %.3g)\n",
               ranks, STEPS, BATCH, diff, scale, TOL * scale);
    CHECK(diff <= TOL * scale, "%d ranks: off by %g (scale %g)", ranks, diff, scale);

    /* (c) the P-rank checkpoint resumes in one process, the same state, and continues
     * as the P ranks do */
    OK(vib_mpi_save(dist.t, ckpt_p, MPI_COMM_WORLD));
    rig one;
    rig_make(&one);
    OK(vib_mpi_agree(vib_trainer_load(one.t, ckpt_p), MPI_COMM_WORLD));
    CHECK(same_bits(&one, &dist), "%s", "the P-rank checkpoint loaded to another state");
    /* the one-process checkpoint, loaded into every rank's P-rank trainer */
    if (rank == 0)
        OK(vib_trainer_save(ref.t, ckpt_1));
    MPI_Barrier(MPI_COMM_WORLD);
    rig dist2;
    rig_make(&dist2);
    vib_mpi *ctx2 = NULL;
    OK(vib_mpi_attach(dist2.t, MPI_COMM_WORLD, &ctx2));
    OK(vib_mpi_agree(vib_trainer_load(dist2.t, ckpt_1), MPI_COMM_WORLD));
    CHECK(same_bits(&dist2, &ref), "%s", "the one-process checkpoint loaded to another state");
    for (int s = 0; s < MORE; s++) {
        OK(vib_trainer_step(one.t, xs, ys, NULL, NULL, NULL)); /* from the P-rank state */
        OK(vib_mpi_step(ctx, xs, ys, NULL, NULL, NULL));
        OK(vib_trainer_step(ref.t, xs, ys, NULL, NULL, NULL));
        OK(vib_mpi_step(ctx2, xs, ys, NULL, NULL, NULL));  /* from the one-process state */
        same_on_every_rank(&dist, "after the checkpoint", s + 1);
        same_on_every_rank(&dist2, "after the one-process checkpoint", s + 1);
    }
    double d1 = max_diff(&one, &dist, &scale), d2 = max_diff(&dist2, &ref, &scale);
    if (rank == 0)
        printf("test_mpi: %d more steps from each checkpoint: within %.3g and %.3g\n", MORE, d1,
               d2);
    CHECK(d1 <= TOL * scale && d2 <= TOL * scale, "after the checkpoints: off by %g, %g", d1,
          d2);
    vib_mpi_detach(ctx2);
    rig_free(&dist2);
    rig_free(&one);

    /* (d) a rank that fails alone: every rank fails with its status, nothing changes */
    const int last = ranks - 1;
    const uint64_t h = hash(&dist), steps = vib_trainer_steps(dist.t);
    int rc = vib_mpi_step(ctx, rank == last ? NULL : xs, ys, NULL, NULL, NULL);
    CHECK(rc == VIB_ERR_INVALID_ARG, "NULL x on rank %d: status %d", last, rc);
    char want[64];
    snprintf(want, sizeof want, "rank %d: vib_trainer_step", last);
    CHECK(strstr(vib_mpi_last_error(), want) != NULL, "message without '%s'", want);
    CHECK(hash(&dist) == h && vib_trainer_steps(dist.t) == steps, "%s",
          "a failed step changed the state");
    static int32_t bad[N];
    memcpy(bad, ys, sizeof bad);
    for (int i = 0; i < N; i++)
        bad[i] = C + 3; /* every row: the next step's shard holds one */
    rc = vib_mpi_step(ctx, xs, rank == last ? bad : ys, NULL, NULL, NULL);
    CHECK(rc == VIB_ERR_INVALID_ARG, "bad labels on rank %d: status %d", last, rc);
    CHECK(hash(&dist) == h, "%s", "a failed step changed the parameters");
    /* an epoch failing part-way on one rank: its steps before stand, on every rank */
    memcpy(bad, ys, sizeof bad);
    bad[N / 2] = -1;
    rc = vib_mpi_epoch(ctx, xs, rank == 0 ? bad : ys, NULL, NULL, NULL);
    CHECK(rc == VIB_ERR_INVALID_ARG, "a bad label in rank 0's epoch: status %d", rc);
    same_on_every_rank(&dist, "after a failed epoch", 0);
    /* the training goes on, the same on every rank */
    OK(vib_mpi_step(ctx, xs, ys, NULL, NULL, NULL));
    same_on_every_rank(&dist, "after the failures", 1);
    /* vib_mpi_save: a path rank 0 cannot write fails every rank */
    rc = vib_mpi_save(dist.t, "/nonexistent-dir/x.ckpt", MPI_COMM_WORLD);
    CHECK(rc == VIB_ERR_IO, "save to a bad path: status %d", rc);
    CHECK(strstr(vib_mpi_last_error(), "rank 0: ") != NULL, "%s", "save's message");
    /* vib_mpi_agree: the lowest failing rank's status */
    rc = vib_mpi_agree(rank == last ? VIB_ERR_FORMAT : VIB_OK,
                       MPI_COMM_WORLD);
    CHECK(rc == VIB_ERR_FORMAT, "agree: %d", rc);
    rc = vib_mpi_agree(rank >= 1 ? (rank == 1 ? VIB_ERR_NUMERIC : VIB_ERR_NOMEM) : VIB_OK,
                       MPI_COMM_WORLD);
    CHECK(rc == VIB_ERR_NUMERIC, "agree, rank 1 first: %d", rc);
    CHECK(vib_mpi_agree(VIB_OK, MPI_COMM_WORLD) == VIB_OK, "%s", "agree on success");
    /* a model of another size refuses rank 0's parameters, on every rank */
    vib_model *other = NULL;
    const size_t enc[] = {rank == last ? HID + 1 : HID};
    OK(vib_model_create(IN, 1, enc, K, 0, NULL, C, 5, &other));
    rc = vib_mpi_broadcast_params(other, MPI_COMM_WORLD);
    CHECK(rc == VIB_ERR_INVALID_ARG, "broadcast to a model of another size: %d", rc);
    vib_model_free(other);

    vib_mpi_detach(ctx);
    rig_free(&dist);
    rig_free(&ref);

    /* (f) a model whose gradient's ring chunks span several messages of the reduction
     * (over 2^20 floats a chunk on 2 and 3 ranks): 3 steps, the ranks the same bits and
     * one process's run within TOL */
    {
        const size_t wide[] = {200000};
        rig big[2];
        for (int k = 0; k < 2; k++) {
            OK(vib_model_create(IN, 1, wide, K, 0, NULL, C, 5, &big[k].m));
            const size_t Pb = vib_model_num_params(big[k].m);
            /* SGD: linear in the gradient, so the sums' rounding stays rounding (Adam's
             * g / sqrt(v) turns a rounding of a near-zero g into up to lr a step) */
            OK(vib_sgd_create(Pb, 1e-2f, 0.5f, &big[k].opt));
            OK(vib_ema_create(Pb, 0.9f, vib_model_params(big[k].m), &big[k].ema));
            OK(vib_trainer_create(big[k].m, big[k].opt, big[k].ema, N, BATCH, 11, &big[k].t));
        }
        CHECK(vib_model_num_params(big[0].m) / (size_t)ranks > ((size_t)1 << 20), "%s",
              "the wide model's chunks fit one message");
        vib_mpi *cb = NULL;
        OK(vib_mpi_attach(big[1].t, MPI_COMM_WORLD, &cb));
        for (int s = 0; s < 3; s++) {
            OK(vib_trainer_step(big[0].t, xs, ys, NULL, NULL, NULL));
            OK(vib_mpi_step(cb, xs, ys, NULL, NULL, NULL));
            same_on_every_rank(&big[1], "a wide model", s + 1);
        }
        const double d = max_diff(&big[1], &big[0], &scale);
        if (rank == 0)
            printf("test_mpi: a model of %zu parameters, 3 steps: within %.3g of one process\n",
                   vib_model_num_params(big[0].m), d);
        CHECK(d <= TOL * scale, "a wide model: off by %g (scale %g)", d, scale);
        vib_mpi_detach(cb);
        rig_free(&big[0]);
        rig_free(&big[1]);
    }

    /* (e) the reduction overlapped with the backward pass, on a communication thread:
     * over 3 epochs of 2 global batches and a last one of ranks - 1 rows (so one rank's
     * shard of it is empty, and announces its layers all the same), the ranks hold the
     * same bits after every epoch and one process's run within TOL */
    {
        const size_t n_short = 2 * BATCH + (size_t)ranks - 1;
        rig r1, ro;
        rig_make_n(&r1, n_short);
        rig_make_n(&ro, n_short);
        vib_mpi *co = NULL;
        OK(vib_mpi_attach(ro.t, MPI_COMM_WORLD, &co));
        OK(vib_mpi_set_overlap(co, 1));
        OK(vib_mpi_set_overlap(co, 1)); /* again: no second thread */
        for (int e = 0; e < 3; e++) {
            OK(vib_trainer_epoch(r1.t, xs, ys, NULL, NULL, NULL));
            OK(vib_mpi_epoch(co, xs, ys, NULL, NULL, NULL));
            same_on_every_rank(&ro, "overlapped, a short last batch", e + 1);
        }
        double d = max_diff(&ro, &r1, &scale);
        if (rank == 0)
            printf("test_mpi: overlapped, 3 epochs with a last batch of %d rows: within %.3g "
                   "of one process\n", ranks - 1, d);
        CHECK(d <= TOL * scale, "overlapped: off by %g (scale %g)", d, scale);
        /* a rank failing before its backward pass fails every rank's overlapped step */
        const uint64_t h0 = hash(&ro);
        rc = vib_mpi_step(co, rank == 0 ? NULL : xs, ys, NULL, NULL, NULL);
        CHECK(rc == VIB_ERR_INVALID_ARG, "overlapped, NULL x on rank 0: status %d", rc);
        CHECK(strstr(vib_mpi_last_error(), "rank 0: vib_trainer_step") != NULL, "%s",
              "overlapped failure's message");
        CHECK(hash(&ro) == h0, "%s", "a failed overlapped step changed the state");
        /* the ranks disagreeing: refused on every rank, the overlap still on */
        rc = vib_mpi_set_overlap(co, rank == last ? 0 : 1);
        CHECK(rc == VIB_ERR_INVALID_ARG, "set_overlap, ranks disagreeing: %d", rc);
        CHECK(vib_mpi_set_overlap(NULL, 1) == VIB_ERR_INVALID_ARG, "%s", "set_overlap(NULL)");
        for (int s = 0; s < 3; s++) { /* then off again: at once, the same on every rank */
            OK(vib_trainer_step(r1.t, xs, ys, NULL, NULL, NULL));
            OK(vib_mpi_step(co, xs, ys, NULL, NULL, NULL));
            if (s == 0)
                OK(vib_mpi_set_overlap(co, 0));
            same_on_every_rank(&ro, "overlap on, then off", s + 1);
        }
        d = max_diff(&ro, &r1, &scale);
        CHECK(d <= TOL * scale, "overlap on, then off: off by %g (scale %g)", d, scale);
        vib_mpi_detach(co);
        rig_free(&ro);
        rig_free(&r1);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        unlink(ckpt_p), unlink(ckpt_1);
        printf("test_mpi: %d ranks: all passed\n", ranks);
    }
    MPI_Finalize();
    return 0;
}
