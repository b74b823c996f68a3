/* fuzz_options_robustness.c - libFuzzer target: examples/robustness's option parsing
 * (parse_args, with die() and --help returning here). The input is the command line,
 * arguments separated by NUL bytes. Oracle, when the line is accepted: every setting in
 * its documented range; 1 to 32 betas in [1e-30, 1e6] and epsilons in [0, 2]; two
 * integer encoder widths; the L2 attack's images no more than the attacked ones; the
 * directories not empty; every size-valued option what the reference reader makes of
 * its last value. A refused line ends through the usage error or --help. */
#define _POSIX_C_SOURCE 200809L /* as robustness.c */
#define FUZZ_PROGRAM "../../examples/robustness.c"
#include "fuzz_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[FUZZ_MAX_ARGS + 2], *copy;
    options o;
    const int argc = fuzz_accepted(data, size, "robustness", argv, &copy, &o);
    if (argc == 0)
        return 0;
    FUZZ_RANGE(o.n_betas >= 1 && o.n_betas <= MAX_LIST, "the number of betas");
    for (size_t k = 0; k < o.n_betas; k++)
        FUZZ_RANGE(o.betas[k] >= 1e-30 && o.betas[k] <= 1e6, "a beta");
    FUZZ_RANGE(o.n_eps >= 1 && o.n_eps <= MAX_LIST, "the number of epsilons");
    for (size_t k = 0; k < o.n_eps; k++)
        FUZZ_RANGE(o.eps[k] >= 0.0 && o.eps[k] <= 2.0, "an epsilon");
    for (int k = 0; k < 2; k++)
        FUZZ_RANGE(o.enc[k] >= 1 && o.enc[k] <= 65536, "an encoder width");
    FUZZ_RANGE(o.latent >= 1 && o.latent <= 4096, "latent");
    FUZZ_RANGE(o.epochs >= 1 && o.epochs <= 100000, "epochs");
    FUZZ_RANGE(o.samples >= 1 && o.samples <= 1000, "samples");
    FUZZ_RANGE(o.attack_n >= 1 && o.attack_n <= 10000, "attack-n");
    FUZZ_RANGE(o.l2_n <= o.attack_n, "l2-n (above attack-n)");
    FUZZ_RANGE(o.pgd_iters >= 1 && o.l2_iters >= 1 && o.l2_searches >= 1, "an iteration count");
    FUZZ_RANGE(o.l2_c >= 1e-6 && o.l2_c <= 1e6, "l2-c");
    FUZZ_RANGE(o.l2_kappa >= 0.0 && o.l2_kappa <= 0.99, "l2-kappa");
    FUZZ_RANGE(o.threads <= 1024, "threads");
    FUZZ_RANGE(o.data[0] && o.fashion[0] && o.out[0], "a directory");
    static const char *const flags[] = {"--unit",   "--reuse",          "--no-attacks",
                                        "--no-ood", "--no-deterministic", "--help", "-h"};
    const fuzz_size_option sizes[] = {
        {"--latent", 1, 4096, &o.latent, 0},
        {"--epochs", 1, 100000, &o.epochs, 0},
        {"--train-limit", 1, SIZE_MAX, &o.train_limit, 0},
        {"--samples", 1, 1000, &o.samples, 0},
        {"--attack-n", 1, 10000, &o.attack_n, 0},
        {"--pgd-iters", 1, 10000, &o.pgd_iters, 0},
        {"--l2-n", 0, 10000, &o.l2_n, 0},
        {"--l2-iters", 1, 100000, &o.l2_iters, 0},
        {"--l2-searches", 1, 100, &o.l2_searches, 0},
        {"--threads", 1, 1024, &o.threads, 0},
        {"--seed", 0, SIZE_MAX, &o.seed, 1},
    };
    fuzz_check_sizes(argc, argv, flags, sizeof flags / sizeof flags[0], sizes,
                     sizeof sizes / sizeof sizes[0]);
    free(copy);
    return 0;
}
