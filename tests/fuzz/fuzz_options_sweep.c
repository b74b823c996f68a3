/* fuzz_options_sweep.c - libFuzzer target: examples/beta_sweep's option parsing
 * (parse_args, with die() and --help returning here). The input is the command line,
 * arguments separated by NUL bytes. Oracle, when the line is accepted: every setting in
 * its documented range; the beta grid sorted, free of duplicates (each more than 1e-9
 * above the one before, named apart at 6 digits), 1 to 64 values in [1e-30, 1e6]; the
 * seeds sorted and distinct, 1 to 32 of them, --seed's alone; --time-limit only with
 * --state; the names not empty; every size-valued option what the reference reader
 * makes of its last value. A refused line ends through the usage error or --help. */
#define _POSIX_C_SOURCE 200809L /* as beta_sweep.c */
#define FUZZ_PROGRAM "../../examples/beta_sweep.c"
#include "fuzz_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[FUZZ_MAX_ARGS + 2], *copy;
    options o;
    const int argc = fuzz_accepted(data, size, "beta_sweep", argv, &copy, &o);
    if (argc == 0)
        return 0;
    FUZZ_RANGE(o.epochs <= 100000 && (o.epochs >= 1 || !o.epochs_set), "epochs");
    FUZZ_RANGE(o.samples >= 1 && o.samples <= 1000, "samples");
    FUZZ_RANGE(o.threads <= 1024, "threads");
    FUZZ_RANGE(o.train_limit <= N_TRAIN, "train-limit");
    FUZZ_RANGE(o.n_betas >= 1 && o.n_betas <= MAX_BETAS, "the number of betas");
    for (size_t k = 0; k < o.n_betas; k++) {
        FUZZ_RANGE(o.betas[k] >= 1e-30 && o.betas[k] <= 1e6, "a beta");
        if (k > 0 && !(o.betas[k] > o.betas[k - 1] * (1.0 + 1e-9)))
            fuzz_fail("betas %g and %g: not sorted, or a duplicate", o.betas[k - 1], o.betas[k]);
    }
    for (size_t k = 1; k < o.n_betas; k++) { /* sorted: equal names would be neighbours */
        run_files a, b;
        run_paths("d", o.betas[k - 1], 1, &a);
        run_paths("d", o.betas[k], 1, &b);
        if (strcmp(a.name, b.name) == 0)
            fuzz_fail("betas %.17g and %.17g share the run name %s", o.betas[k - 1],
                      o.betas[k], a.name);
    }
    FUZZ_RANGE(o.csv[0] && o.error_plot[0] && o.plane_plot[0] && o.summary[0], "a file name");
    FUZZ_RANGE(o.state == NULL || o.state[0], "the state directory");
    FUZZ_RANGE(!o.time_limit_set || o.state != NULL, "--time-limit without --state");
    FUZZ_RANGE(!(o.seed_set && o.n_seeds > 1), "--seed with --seeds");
    FUZZ_RANGE(o.n_seeds >= 1 && o.n_seeds <= MAX_SEEDS, "the number of seeds");
    for (size_t k = 1; k < o.n_seeds; k++)
        if (!(o.seeds[k] > o.seeds[k - 1]))
            fuzz_fail("seeds %llu and %llu: not sorted, or a duplicate",
                      (unsigned long long)o.seeds[k - 1], (unsigned long long)o.seeds[k]);
    if (o.seed_set) /* --seed N alone: the one seed trained */
        FUZZ_RANGE(o.n_seeds == 1 && o.seeds[0] == o.seed, "--seed's run");
    static const char *const flags[] = {"--full", "--help", "-h"};
    const fuzz_size_option sizes[] = {
        {"--epochs", 1, 100000, &o.epochs, 0},
        {"--samples", 1, 1000, &o.samples, 0},
        {"--threads", 1, 1024, &o.threads, 0},
        {"--train-limit", 1, N_TRAIN, &o.train_limit, 0},
        {"--seed", 0, SIZE_MAX, &o.seed, 1},
        {"--time-limit", 0, 100000000, &o.time_limit, 0},
    };
    fuzz_check_sizes(argc, argv, flags, sizeof flags / sizeof flags[0], sizes,
                     sizeof sizes / sizeof sizes[0]);
    free(copy);
    return 0;
}
