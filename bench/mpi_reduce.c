/* bench/mpi_reduce.c - libvib-mpi's gradient reduction against Open MPI's own, on the
 * gradients of train_mnist's default network (730,890 floats) and of the paper's
 * (2,380,810 floats: 9.52 MB):
 *   ring          libvib-mpi's reduction (a ring reduce-scatter then allgather over
 *                 MPI_Sendrecv: every rank the same bits);
 *   allreduce     MPI_Allreduce (MPI_SUM), which does not promise the same bits;
 *   reduce+bcast  MPI_Reduce to rank 0 then MPI_Bcast (libvib-mpi's scheme before the
 *                 ring).
 * The three run in turns, ROUNDS rounds of REPS calls each; printed: the median and the
 * best round's milliseconds a call, and the bus bandwidth 2 (P - 1) / P x bytes / time
 * (the data a rank of a ring moves). Also checks that the ring leaves every rank the
 * same bits, within float rounding of reduce+bcast. Not a test: `make bench-mpi`.
 *
 *     mpirun --allow-run-as-root --oversubscribe -np 2 bench/mpi_reduce
 *
 * Compiled together with mpi/vib_mpi.c, to time its static ring as the library runs it. */
#include "../mpi/vib_mpi.c"

#include <math.h>

enum { ROUNDS = 5, REPS = 20, MODES = 3 };

static const char *const mode_name[MODES] = {"ring", "allreduce", "reduce+bcast"};

static int run(vib_mpi *c, int mode, float *buf, size_t n)
{
    if (mode == 0)
        return sum(c, buf, n);
    if (mode == 1)
        return MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c->comm);
    if (c->rank == 0 ? MPI_Reduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, 0, c->comm)
                     : MPI_Reduce(buf, NULL, (int)n, MPI_FLOAT, MPI_SUM, 0, c->comm))
        return 2;
    return MPI_Bcast(buf, (int)n, MPI_FLOAT, 0, c->comm);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t fnv(const float *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *b = (const unsigned char *)p;
    for (size_t i = 0; i < n * sizeof(float); i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    vib_mpi c = {.comm = MPI_COMM_WORLD};
    MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c.size);
    const size_t sizes[] = {730890, 2380810};
    const size_t most = sizes[1];
    float *buf = malloc(most * sizeof(float)), *ref = malloc(most * sizeof(float));
    c.scratch = malloc(PIECE * sizeof(float));
    if (buf == NULL || ref == NULL || c.scratch == NULL)
        MPI_Abort(MPI_COMM_WORLD, 1);
    if (c.rank == 0)
        printf("mpi_reduce: %d ranks; %d rounds of %d calls, the three in turns\n", c.size,
               ROUNDS, REPS);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const size_t n = sizes[k];
        /* the same values on every call (a sum of values in [0, 1e-3)) */
        for (size_t i = 0; i < n; i++)
            buf[i] = (float)((i * 7919 + (size_t)c.rank * 104729) % 1000) * 1e-6f;
        memcpy(ref, buf, n * sizeof(float));
        double t[MODES][ROUNDS];
        for (int r = 0; r < ROUNDS; r++)
            for (int m = 0; m < MODES; m++) {
                MPI_Barrier(MPI_COMM_WORLD);
                const double t0 = MPI_Wtime();
                for (int i = 0; i < REPS; i++) {
                    memcpy(buf, ref, n * sizeof(float)); /* the next call sums the same */
                    if (run(&c, m, buf, n) != 0)
                        MPI_Abort(MPI_COMM_WORLD, 1);
                }
                double dt = (MPI_Wtime() - t0) / REPS;
                MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
                t[m][r] = dt;
            }
        /* the time of the copy that precedes every call, to take off */
        const double c0 = MPI_Wtime();
        for (int i = 0; i < REPS; i++)
            memcpy(buf, ref, n * sizeof(float));
        const double copy = (MPI_Wtime() - c0) / REPS;
        const double moved = 2.0 * (c.size - 1) / c.size * (double)(n * sizeof(float));
        for (int m = 0; m < MODES && c.rank == 0; m++) {
            qsort(t[m], ROUNDS, sizeof(double), cmp_double);
            const double med = t[m][ROUNDS / 2] - copy, best = t[m][0] - copy;
            printf("  %9zu floats (%5.2f MB)  %-12s  median %6.2f ms  best %6.2f ms  "
                   "bus %5.2f GB/s\n", n, (double)(n * sizeof(float)) / 1e6, mode_name[m],
                   med * 1e3, best * 1e3, moved / best / 1e9);
        }
        /* the ring: the same bits on every rank, and reduce+bcast's sum to rounding */
        memcpy(buf, ref, n * sizeof(float));
        if (sum(&c, buf, n) != 0 || run(&c, 2, ref, n) != 0)
            MPI_Abort(MPI_COMM_WORLD, 1);
        uint64_t h = fnv(buf, n), lo, hi;
        MPI_Allreduce(&h, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&h, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
        double worst = 0.0;
        for (size_t i = 0; i < n; i++)
            worst = fmax(worst, fabs((double)buf[i] - ref[i]));
        MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (c.rank == 0)
            printf("  the ring: every rank the same bits: %s; against reduce+bcast: within "
                   "%.3g\n", lo == hi ? "yes" : "NO", worst);
    }
    free(c.scratch), free(ref), free(buf);
    MPI_Finalize();
    return 0;
}
