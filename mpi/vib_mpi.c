/* vib_mpi.c - libvib-mpi: a vib_trainer's reduction and shard over MPI, and the
 * collective calls around them (vib_mpi.h). Only libvib's public API is used.
 *
 * The agreement. Every collective here that a rank may fail alone ends in one
 * MPI_Allreduce of the pair {key, status} with MPI_MINLOC, key the rank's number if its
 * status is not VIB_OK and the communicator's size otherwise: the minimum key is the
 * lowest failing rank (size if none), and MINLOC's second int, among the pairs of that
 * key (there is one), is its status. That rank then broadcasts its message.
 *
 * A step. The reduction (called by the trainer between the gradients and the optimizer)
 * first runs that allreduce with an OK status; a rank whose step failed before its
 * reduction runs the same allreduce with its failure (in vib_mpi_step), so the ranks
 * waiting in their reduction see it and fail their step. Whether this rank's failing
 * step reached its reduction is read off the counts: every successful step calls the
 * reduction once, so reductions entered minus steps done is 1 exactly when the failing
 * step entered it. */
#include "vib_mpi.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MSG_LEN = 512, QUEUE = 8 };

/* The ring's pieces: at most this many floats a message (4 MiB), the context's scratch. */
#define PIECE ((size_t)1 << 20)

/* The overlapped reduction (vib_mpi_set_overlap): the trainer's parts are queued to a
 * communication thread, which makes every MPI call of the step's reduction while the
 * training thread computes; the training thread makes none until the wait has seen the
 * queue drained, so the two never call MPI at once (MPI_THREAD_SERIALIZED suffices). */
typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    struct {
        float *p;
        size_t len;
        int first; /* the step's first part: the ranks' agreement runs before it */
    } q[QUEUE];
    unsigned head, tail; /* parts finished, parts queued (head == tail: idle) */
    int step_rc;         /* the step's reduction so far: 0, 1 another rank failed, 2 MPI */
    int quit;
} overlap;

struct vib_mpi {
    vib_trainer *trainer;
    MPI_Comm comm; /* the library's duplicate, MPI_ERRORS_RETURN */
    int rank, size;
    uint64_t reductions; /* reductions entered */
    int peer_failed;     /* the last reduction stopped for another rank's failure */
    overlap *ov;         /* NULL: the reduction runs at once, after the backward pass */
    float *scratch;      /* PIECE floats: a piece of the ring's incoming chunk */
};

static _Thread_local char last_error[MSG_LEN];

const char *vib_mpi_last_error(void)
{
    return last_error;
}

static int fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

/* The agreement of the header comment; msg is this rank's message if it failed. */
static int agree(int status, const char *msg, MPI_Comm comm, const char *fn)
{
    int rank, size;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Comm_rank or MPI_Comm_size failed", fn);
    int in[2] = {status != VIB_OK ? rank : size, status}, res[2];
    if (MPI_Allreduce(in, res, 1, MPI_2INT, MPI_MINLOC, comm) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Allreduce of the ranks' statuses failed", fn);
    if (res[0] == size)
        return VIB_OK;
    char buf[MSG_LEN] = {0};
    if (rank == res[0])
        snprintf(buf, sizeof buf, "rank %d: %s", rank, msg);
    if (MPI_Bcast(buf, MSG_LEN, MPI_CHAR, res[0], comm) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: rank %d failed (%d); the broadcast of its message failed",
                    fn, res[0], res[1]);
    buf[MSG_LEN - 1] = '\0';
    return fail(res[1], "%s", buf);
}

int vib_mpi_agree(int status, MPI_Comm comm)
{
    if (comm == MPI_COMM_NULL)
        return fail(VIB_ERR_INVALID_ARG, "vib_mpi_agree: comm is MPI_COMM_NULL");
    return agree(status, vib_last_error(), comm, "vib_mpi_agree");
}

/* MPI counts are int: arrays go in chunks of at most 2^30 floats. */
#define CHUNK ((size_t)1 << 30)

static int bcast_floats(float *p, size_t n, MPI_Comm comm)
{
    for (size_t off = 0; off < n; off += CHUNK) {
        const int count = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (MPI_Bcast(p + off, count, MPI_FLOAT, 0, comm) != MPI_SUCCESS)
            return -1;
    }
    return 0;
}

/* The ranks' agreement that all reached the step's reduction: 0, 1 when another rank
 * failed before it (it joins with its failure: vib_mpi_step), 2 on an MPI error. */
static int reached(const vib_mpi *c)
{
    int in[2] = {c->size, VIB_OK}, res[2];
    if (MPI_Allreduce(in, res, 1, MPI_2INT, MPI_MINLOC, c->comm) != MPI_SUCCESS)
        return 2;
    return res[0] != c->size;
}

/* Chunk k of P of [0, n): [n k / P, n (k + 1) / P). */
static void chunk(size_t n, int k, int size, size_t *lo, size_t *len)
{
    *lo = n * (size_t)k / (size_t)size;
    *len = n * (size_t)(k + 1) / (size_t)size - *lo;
}

/* buf[0, n) replaced by its sum over the ranks, the same bits on every rank: a ring
 * reduce-scatter, then a ring allgather. The buffer is cut into P chunks; in step s of
 * the first phase rank r sends its running sum of chunk r - s to rank r + 1 and adds
 * the chunk r - s - 1 it receives from rank r - 1 (mod P), so after P - 1 steps rank r
 * holds chunk r + 1 summed over all ranks, each element added in a fixed order at that
 * one rank; the second phase passes the summed chunks round the ring as they are. Each
 * rank sends and receives 2 (P - 1) / P of the buffer, the least an allreduce can, and
 * every rank ends with copies of the same sums (MPI_Allreduce does not promise that:
 * its algorithms may add in another order on another rank). Messages are pieces of at
 * most PIECE floats, received into the context's scratch. 0, or 2 on an MPI error. */
static int sum(const vib_mpi *c, float *buf, size_t n)
{
    const int P = c->size, r = c->rank, right = (r + 1) % P, left = (r + P - 1) % P;
    /* every chunk's pieces in as many messages on every rank (the last may be empty):
     * each send meets its receive */
    const size_t most = (n + (size_t)P - 1) / (size_t)P;
    for (int s = 0; s < P - 1; s++) {
        size_t slo, slen, rlo, rlen;
        chunk(n, (r - s + P) % P, P, &slo, &slen);
        chunk(n, (r - s - 1 + 2 * P) % P, P, &rlo, &rlen);
        for (size_t off = 0; off < most; off += PIECE) {
            const size_t sn = off < slen ? (slen - off < PIECE ? slen - off : PIECE) : 0;
            const size_t rn = off < rlen ? (rlen - off < PIECE ? rlen - off : PIECE) : 0;
            if (MPI_Sendrecv(buf + slo + (sn ? off : 0), (int)sn, MPI_FLOAT, right, 0,
                             c->scratch, (int)rn, MPI_FLOAT, left, 0, c->comm,
                             MPI_STATUS_IGNORE) != MPI_SUCCESS)
                return 2;
            float *restrict d = buf + rlo + off;
            const float *restrict in = c->scratch;
            for (size_t i = 0; i < rn; i++)
                d[i] += in[i];
        }
    }
    for (int s = 0; s < P - 1; s++) {
        size_t slo, slen, rlo, rlen;
        chunk(n, (r + 1 - s + P) % P, P, &slo, &slen);
        chunk(n, (r - s + P) % P, P, &rlo, &rlen);
        for (size_t off = 0; off < most; off += PIECE) {
            const size_t sn = off < slen ? (slen - off < PIECE ? slen - off : PIECE) : 0;
            const size_t rn = off < rlen ? (rlen - off < PIECE ? rlen - off : PIECE) : 0;
            if (MPI_Sendrecv(buf + slo + (sn ? off : 0), (int)sn, MPI_FLOAT, right, 1,
                             buf + rlo + (rn ? off : 0), (int)rn, MPI_FLOAT, left, 1, c->comm,
                             MPI_STATUS_IGNORE) != MPI_SUCCESS)
                return 2;
        }
    }
    return 0;
}

/* The reduction given to the trainer: the ranks agree that all reached it, then the sum.
 * Returns 1 when another rank failed, 2 on an MPI error. */
static int reduce(void *user, float *buf, size_t n)
{
    vib_mpi *c = user;
    c->reductions++;
    int r = reached(c);
    c->peer_failed = r == 1;
    return r != 0 ? r : sum(c, buf, n);
}

/* ---- the overlapped reduction ------------------------------------------------------ */

/* The communication thread: each queued part in order; the step's first is preceded by
 * the agreement, and once the step's reduction has failed its other parts are skipped
 * (on every rank alike when the cause is another rank's). */
static void *comm_thread(void *arg)
{
    vib_mpi *c = arg;
    overlap *o = c->ov;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (o->head == o->tail && !o->quit)
            pthread_cond_wait(&o->work, &o->mu);
        if (o->head == o->tail)
            break; /* quit, and nothing left */
        const unsigned i = o->head % QUEUE;
        float *p = o->q[i].p;
        const size_t len = o->q[i].len;
        int r = o->q[i].first ? 0 : o->step_rc;
        pthread_mutex_unlock(&o->mu);
        if (o->q[i].first)
            r = reached(c);
        if (r == 0)
            r = sum(c, p, len);
        pthread_mutex_lock(&o->mu);
        o->step_rc = r;
        o->head++;
        pthread_cond_signal(&o->done);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

/* The trainer's part: queued for the communication thread (waiting for room when the
 * queue is full: no allocation, and no failure that would leave the ranks apart). */
static int part(void *user, float *buf, size_t n, size_t lo, size_t hi)
{
    vib_mpi *c = user;
    overlap *o = c->ov;
    const int first = hi == n;
    if (first)
        c->reductions++;
    pthread_mutex_lock(&o->mu);
    while (o->tail - o->head == QUEUE)
        pthread_cond_wait(&o->done, &o->mu);
    const unsigned i = o->tail % QUEUE;
    o->q[i].p = buf + lo, o->q[i].len = hi - lo, o->q[i].first = first;
    o->tail++;
    pthread_cond_signal(&o->work);
    pthread_mutex_unlock(&o->mu);
    return 0;
}

/* The trainer's wait: until the communication thread has done every queued part. */
static int wait_parts(void *user, float *buf, size_t n)
{
    vib_mpi *c = user;
    overlap *o = c->ov;
    (void)buf, (void)n;
    pthread_mutex_lock(&o->mu);
    while (o->head != o->tail)
        pthread_cond_wait(&o->done, &o->mu);
    const int r = o->step_rc;
    pthread_mutex_unlock(&o->mu);
    c->peer_failed = r == 1;
    return r;
}

/* Stop and free the communication thread (idle between steps: nothing is queued). */
static void overlap_stop(vib_mpi *c)
{
    overlap *o = c->ov;
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->quit = 1;
    pthread_cond_signal(&o->work);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    pthread_cond_destroy(&o->done);
    pthread_cond_destroy(&o->work);
    pthread_mutex_destroy(&o->mu);
    free(o);
    c->ov = NULL;
}

/* A communication thread for c, or VIB_ERR_NOMEM (nothing left behind). */
static int overlap_start(vib_mpi *c)
{
    overlap *o = calloc(1, sizeof *o);
    if (o == NULL)
        return VIB_ERR_NOMEM;
    if (pthread_mutex_init(&o->mu, NULL) != 0) {
        free(o);
        return VIB_ERR_NOMEM;
    }
    int made = 0;
    if (pthread_cond_init(&o->work, NULL) == 0 && ++made && pthread_cond_init(&o->done, NULL) == 0 &&
        ++made) {
        c->ov = o;
        if (pthread_create(&o->thread, NULL, comm_thread, c) == 0)
            return VIB_OK;
        c->ov = NULL;
    }
    if (made == 2)
        pthread_cond_destroy(&o->done);
    if (made >= 1)
        pthread_cond_destroy(&o->work);
    pthread_mutex_destroy(&o->mu);
    free(o);
    return VIB_ERR_NOMEM;
}

int vib_mpi_set_overlap(vib_mpi *ctx, int on)
{
    static const char fn[] = "vib_mpi_set_overlap";
    if (ctx == NULL)
        return fail(VIB_ERR_INVALID_ARG, "%s: ctx is NULL", fn);
    vib_mpi *c = ctx;
    on = on != 0;
    /* every rank the same choice: a rank summing by parts and one summing at once would
     * call different collectives */
    int mine[2] = {on, -on}, all[2];
    if (MPI_Allreduce(mine, all, 2, MPI_INT, MPI_MIN, c->comm) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Allreduce of the ranks' choices failed", fn);
    const int was = c->ov != NULL;
    int st = VIB_OK;
    if (all[0] != -all[1])
        st = fail(VIB_ERR_INVALID_ARG, "%s: the ranks disagree (some on, some off)", fn);
    int level = MPI_THREAD_SINGLE;
    if (st == VIB_OK && on && (MPI_Query_thread(&level) != MPI_SUCCESS ||
                               level < MPI_THREAD_SERIALIZED))
        st = fail(VIB_ERR_INVALID_ARG,
                  "%s: MPI gives thread level %d; the communication thread needs "
                  "MPI_THREAD_SERIALIZED or more (MPI_Init_thread)",
                  fn, level);
    if (st == VIB_OK && on && c->ov == NULL && overlap_start(c) != VIB_OK)
        st = fail(VIB_ERR_NOMEM, "%s: could not start the communication thread", fn);
    char msg[MSG_LEN];
    memcpy(msg, last_error, sizeof msg);
    st = agree(st, msg, c->comm, fn);
    if (st != VIB_OK) { /* as it was: a thread started by this call is stopped */
        if (!was)
            overlap_stop(c);
        return st;
    }
    if (on) {
        (void)vib_trainer_set_reduce_overlap(c->trainer, part, wait_parts, c);
    } else {
        (void)vib_trainer_set_reduce(c->trainer, reduce, c);
        overlap_stop(c);
    }
    return VIB_OK;
}

int vib_mpi_attach(vib_trainer *trainer, MPI_Comm comm, vib_mpi **out)
{
    static const char fn[] = "vib_mpi_attach";
    int init = 0, done = 0;
    if (comm == MPI_COMM_NULL)
        return fail(VIB_ERR_INVALID_ARG, "%s: comm is MPI_COMM_NULL", fn);
    if (MPI_Initialized(&init) != MPI_SUCCESS || !init || MPI_Finalized(&done) != MPI_SUCCESS ||
        done)
        return fail(VIB_ERR_INVALID_ARG, "%s: MPI is not initialized, or finalized", fn);
    int rank, size;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Comm_rank or MPI_Comm_size failed", fn);
    int st = VIB_OK;
    if (trainer == NULL || out == NULL)
        st = fail(VIB_ERR_INVALID_ARG, "%s: %s is NULL", fn, trainer == NULL ? "trainer" : "out");
    MPI_Comm dup = MPI_COMM_NULL;
    if (MPI_Comm_dup(comm, &dup) != MPI_SUCCESS) {
        dup = MPI_COMM_NULL;
        if (st == VIB_OK)
            st = fail(VIB_ERR_IO, "%s: MPI_Comm_dup failed", fn);
    } else if (MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN) != MPI_SUCCESS && st == VIB_OK) {
        st = fail(VIB_ERR_IO, "%s: MPI_Comm_set_errhandler failed", fn);
    }
    vib_mpi *c = st == VIB_OK ? calloc(1, sizeof *c) : NULL;
    float *scratch = st == VIB_OK ? malloc(PIECE * sizeof(float)) : NULL;
    if (st == VIB_OK && (c == NULL || scratch == NULL))
        st = fail(VIB_ERR_NOMEM, "%s: out of memory for the context", fn);
    int shard_set = 0;
    if (st == VIB_OK) {
        st = vib_trainer_set_shard(trainer, (size_t)rank, (size_t)size);
        if (st != VIB_OK)
            fail(st, "%s", vib_last_error());
        shard_set = st == VIB_OK;
    }
    char msg[MSG_LEN];
    memcpy(msg, last_error, sizeof msg);
    st = agree(st, msg, comm, fn);
    if (st != VIB_OK) {
        if (shard_set) /* only when the trainers are built unalike (vib_mpi.h) */
            (void)vib_trainer_set_shard(trainer, 0, 1);
        free(c);
        free(scratch);
        if (dup != MPI_COMM_NULL)
            MPI_Comm_free(&dup);
        return st;
    }
    *c = (vib_mpi){.trainer = trainer, .comm = dup, .rank = rank, .size = size,
                   .scratch = scratch};
    (void)vib_trainer_set_reduce(trainer, reduce, c); /* cannot fail: trainer is not NULL */
    *out = c;
    return VIB_OK;
}

void vib_mpi_detach(vib_mpi *ctx)
{
    if (ctx == NULL)
        return;
    (void)vib_trainer_set_reduce(ctx->trainer, NULL, NULL);
    (void)vib_trainer_set_shard(ctx->trainer, 0, 1);
    overlap_stop(ctx);
    MPI_Comm_free(&ctx->comm);
    free(ctx->scratch);
    free(ctx);
}

/* vib_mpi_step and vib_mpi_epoch: see the header comment. */
static int train(vib_mpi *c, int epoch, const float *x, const int32_t *labels, double *ce,
                 double *kl, double *loss)
{
    const char *fn = epoch ? "vib_mpi_epoch" : "vib_mpi_step";
    if (c == NULL)
        return fail(VIB_ERR_INVALID_ARG, "%s: ctx is NULL", fn);
    const uint64_t reductions = c->reductions, steps = vib_trainer_steps(c->trainer);
    int rc = epoch ? vib_trainer_epoch(c->trainer, x, labels, ce, kl, loss)
                   : vib_trainer_step(c->trainer, x, labels, ce, kl, loss);
    if (rc == VIB_OK)
        return VIB_OK;
    /* Every rank's step failed (one rank's failure fails all: below, and in reduce; a
     * failure after the reduction is on the same bits everywhere, so everywhere). */
    char msg[MSG_LEN];
    snprintf(msg, sizeof msg, "%s", vib_last_error());
    const uint64_t entered = c->reductions - reductions - (vib_trainer_steps(c->trainer) - steps);
    int own = rc;
    if (entered == 0) { /* failed before its reduction: meet the others' there */
        int in[2] = {c->rank, rc}, res[2];
        if (MPI_Allreduce(in, res, 1, MPI_2INT, MPI_MINLOC, c->comm) != MPI_SUCCESS) {
            own = VIB_ERR_IO;
            snprintf(msg, sizeof msg, "%s: MPI_Allreduce of the ranks' statuses failed", fn);
        }
    } else if (c->peer_failed) {
        own = VIB_OK; /* the cause is another rank's */
    }
    return agree(own, msg, c->comm, fn);
}

int vib_mpi_step(vib_mpi *ctx, const float *x, const int32_t *labels, double *ce, double *kl,
                 double *loss)
{
    return train(ctx, 0, x, labels, ce, kl, loss);
}

int vib_mpi_epoch(vib_mpi *ctx, const float *x, const int32_t *labels, double *ce, double *kl,
                  double *loss)
{
    return train(ctx, 1, x, labels, ce, kl, loss);
}

int vib_mpi_broadcast_params(vib_model *model, MPI_Comm comm)
{
    static const char fn[] = "vib_mpi_broadcast_params";
    if (comm == MPI_COMM_NULL)
        return fail(VIB_ERR_INVALID_ARG, "%s: comm is MPI_COMM_NULL", fn);
    int rank;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Comm_rank failed", fn);
    int st = model == NULL ? fail(VIB_ERR_INVALID_ARG, "%s: model is NULL", fn) : VIB_OK;
    const unsigned long long mine = model != NULL ? (unsigned long long)vib_model_num_params(model)
                                                  : 0;
    unsigned long long n = mine;
    if (MPI_Bcast(&n, 1, MPI_UNSIGNED_LONG_LONG, 0, comm) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Bcast of the parameter count failed", fn);
    if (st == VIB_OK && n != mine)
        st = fail(VIB_ERR_INVALID_ARG, "%s: rank 0's model has %llu parameters, this one %llu",
                  fn, n, mine);
    float *tmp = NULL; /* the values land here first: nothing is written unless all got them */
    if (st == VIB_OK && rank != 0 && (tmp = malloc((size_t)n * sizeof(float) + 1)) == NULL)
        st = fail(VIB_ERR_NOMEM, "%s: out of memory for %llu parameters", fn, n);
    char msg[MSG_LEN];
    memcpy(msg, last_error, sizeof msg);
    st = agree(st, msg, comm, fn);
    if (st == VIB_OK) {
        float *p = rank == 0 ? vib_model_params(model) : tmp;
        st = bcast_floats(p, (size_t)n, comm) == 0
                 ? VIB_OK
                 : fail(VIB_ERR_IO, "%s: MPI_Bcast of the parameters failed", fn);
        memcpy(msg, last_error, sizeof msg);
        st = agree(st, msg, comm, fn);
    }
    if (st == VIB_OK && rank != 0)
        memcpy(vib_model_params(model), tmp, (size_t)n * sizeof(float));
    free(tmp);
    return st;
}

int vib_mpi_save(const vib_trainer *trainer, const char *path, MPI_Comm comm)
{
    static const char fn[] = "vib_mpi_save";
    if (comm == MPI_COMM_NULL)
        return fail(VIB_ERR_INVALID_ARG, "%s: comm is MPI_COMM_NULL", fn);
    int rank;
    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Comm_rank failed", fn);
    struct {
        int status;
        char msg[MSG_LEN];
    } r = {VIB_OK, {0}};
    if (rank == 0) {
        r.status = vib_trainer_save(trainer, path);
        if (r.status != VIB_OK)
            snprintf(r.msg, sizeof r.msg, "rank 0: %s", vib_last_error());
    }
    if (MPI_Bcast(&r, (int)sizeof r, MPI_BYTE, 0, comm) != MPI_SUCCESS)
        return fail(VIB_ERR_IO, "%s: MPI_Bcast of rank 0's status failed", fn);
    if (r.status == VIB_OK)
        return VIB_OK;
    r.msg[MSG_LEN - 1] = '\0';
    return fail(r.status, "%s", r.msg);
}
