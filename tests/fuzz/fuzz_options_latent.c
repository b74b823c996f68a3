/* fuzz_options_latent.c - libFuzzer target: examples/latent2d's option parsing
 * (parse_args, with die() and --help returning here). The input is the command line,
 * arguments separated by NUL bytes. Oracle, when the line is accepted: every setting in
 * its documented range; 2 to 10 distinct digits in 0..9; 1 to 64 distinct betas in
 * [0, 1e6]; 1 to 8 hidden sizes in [1, 65536]; an output prefix of 1 to 4000
 * characters; every size-valued option what the reference reader makes of its last
 * value. A refused line ends through the usage error or --help. */
#define _POSIX_C_SOURCE 200809L /* as latent2d.c */
#define FUZZ_PROGRAM "../../examples/latent2d.c"
#include "fuzz_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[FUZZ_MAX_ARGS + 2], *copy;
    options o;
    const int argc = fuzz_accepted(data, size, "latent2d", argv, &copy, &o);
    if (argc == 0)
        return 0;
    FUZZ_RANGE(o.epochs >= 1 && o.epochs <= 100000, "epochs");
    FUZZ_RANGE(o.threads <= 1024, "threads");
    FUZZ_RANGE(o.n_digits >= 2 && o.n_digits <= 10, "the number of digits");
    for (size_t k = 0; k < o.n_digits; k++) {
        FUZZ_RANGE(o.digits[k] >= 0 && o.digits[k] <= 9, "a digit");
        for (size_t j = 0; j < k; j++)
            if (o.digits[j] == o.digits[k])
                fuzz_fail("digit %d twice", o.digits[k]);
    }
    FUZZ_RANGE(o.n_betas >= 1 && o.n_betas <= MAX_BETAS, "the number of betas");
    for (size_t k = 0; k < o.n_betas; k++) {
        FUZZ_RANGE(o.betas[k] >= 0 && o.betas[k] <= 1e6, "a beta");
        for (size_t j = 0; j < k; j++)
            if (o.betas[j] == o.betas[k])
                fuzz_fail("beta %g twice", o.betas[k]);
    }
    FUZZ_RANGE(o.n_enc >= 1 && o.n_enc <= 8, "the number of hidden layers");
    for (size_t k = 0; k < o.n_enc; k++)
        FUZZ_RANGE(o.enc[k] >= 1 && o.enc[k] <= 1 << 16, "a hidden size");
    FUZZ_RANGE(o.out[0] != '\0' && strlen(o.out) <= 4000, "the output prefix");
    static const char *const flags[] = {"--help", "-h"};
    const fuzz_size_option sizes[] = {
        {"--epochs", 1, 100000, &o.epochs, 0},
        {"--threads", 1, 1024, &o.threads, 0},
        {"--seed", 0, SIZE_MAX, &o.seed, 1},
    };
    fuzz_check_sizes(argc, argv, flags, sizeof flags / sizeof flags[0], sizes,
                     sizeof sizes / sizeof sizes[0]);
    free(copy);
    return 0;
}
