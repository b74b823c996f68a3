/* fuzz_options.c - libFuzzer target: examples/train_mnist's option parsing (parse_args,
 * with die() and --help returning here instead of ending the process).
 *
 * The input is the command line: arguments separated by NUL bytes (at most 40).
 * Oracle, when the parse accepts the line:
 *   - every setting lies in its documented range (the usage text's);
 *   - every size-valued option's value, the last one given, is what a reference reader
 *     written here makes of it (optional white space and '+', then decimal digits, in
 *     range, no overflow), and a value that reader refuses was never accepted;
 *   - the settings, written back as a command line, parse again to the same settings
 *     (the doubles through %.17g, which round-trips exactly).
 * When it refuses the line, it did so through die() (status 2) or --help (status 0),
 * never by crashing. ASan and UBSan watch the parser throughout. */
#define _POSIX_C_SOURCE 200809L /* as train_mnist.c: sigaction, clock_gettime */
#define FUZZ_PROGRAM "../../examples/train_mnist.c"
#include "fuzz_options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const flags[] = {"--paper", "--deterministic", "--overlap", "--help",
                                    "-h"};

static void in_range(const options *o)
{
#define RANGE FUZZ_RANGE
    RANGE(o->epochs <= 100000, "epochs");
    RANGE(o->latent >= 1 && o->latent <= 1 << 16, "latent");
    RANGE(o->batch >= 1 && o->batch <= 60000, "batch");
    RANGE(o->samples <= 1000, "samples");
    RANGE(o->train_samples >= 1 && o->train_samples <= 1024, "train-samples");
    RANGE(o->mixture <= 1024, "mixture");
    RANGE(o->objective == VIB_OBJECTIVE_MEAN || o->objective == VIB_OBJECTIVE_LOGMEANEXP,
          "objective");
    RANGE(o->threads <= 1024, "threads");
    RANGE(o->n_enc <= 8 && o->n_dec <= 8, "the layer lists");
    for (size_t k = 0; k < o->n_enc; k++)
        RANGE(o->enc[k] >= 1 && o->enc[k] <= 1 << 16, "an encoder size");
    for (size_t k = 0; k < o->n_dec; k++)
        RANGE(o->dec[k] >= 1 && o->dec[k] <= 1 << 16, "a decoder size");
    RANGE(o->beta >= 0 && o->beta <= 1e6, "beta");
    RANGE(o->lr >= 1e-12 && o->lr <= 1e6, "lr");
    RANGE(o->beta1 >= 0 && o->beta1 <= 0.999999, "beta1");
    RANGE(o->lr_decay >= 1e-6 && o->lr_decay <= 1, "lr-decay");
    RANGE(o->decay_epochs >= 1e-3 && o->decay_epochs <= 1e6, "decay-epochs");
    RANGE(o->ema >= 0 && o->ema <= 0.999999, "ema");
#undef RANGE
}

/* The settings as a command line, into argv (strings in buf). */
static int render(const options *o, char **argv, char *buf, size_t cap)
{
    int argc = 0;
    size_t used = 0;
#define ARG(...)                                                                            \
    do {                                                                                    \
        const int w_ = snprintf(buf + used, cap - used, __VA_ARGS__);                       \
        if (w_ < 0 || (size_t)w_ >= cap - used)                                             \
            fuzz_fail("render: out of room");                                               \
        argv[argc++] = buf + used;                                                          \
        used += (size_t)w_ + 1;                                                             \
    } while (0)
    ARG("train_mnist");
    const char *const *strs[] = {&o->data, &o->save, &o->load, &o->csv, &o->plot,
                                 &o->checkpoint, &o->resume};
    static const char *const names[] = {"--data", "--save", "--load", "--csv", "--plot",
                                        "--checkpoint", "--resume"};
    for (size_t k = 0; k < 7; k++)
        if (*strs[k] != NULL) {
            ARG("%s", names[k]);
            argv[argc++] = (char *)*strs[k];
        }
    ARG("--epochs");
    ARG("%zu", o->epochs);
    ARG("--latent");
    ARG("%zu", o->latent);
    ARG("--batch");
    ARG("%zu", o->batch);
    ARG("--samples");
    ARG("%zu", o->samples);
    if (o->train_samples_set) {
        ARG("--train-samples");
        ARG("%zu", o->train_samples);
    }
    if (o->mixture) {
        ARG("--mixture");
        ARG("%zu", o->mixture);
    }
    if (o->objective_set) {
        ARG("--objective");
        ARG("%s", o->objective == VIB_OBJECTIVE_MEAN ? "mean" : "logmeanexp");
    }
    if (o->threads) {
        ARG("--threads");
        ARG("%zu", o->threads);
    }
    if (o->train_limit) {
        ARG("--train-limit");
        ARG("%zu", o->train_limit);
    }
    ARG("--seed");
    ARG("%llu", (unsigned long long)o->seed);
    if (o->beta_set) {
        ARG("--beta");
        ARG("%.17g", o->beta);
    }
    ARG("--lr");
    ARG("%.17g", o->lr);
    ARG("--beta1");
    ARG("%.17g", o->beta1);
    ARG("--lr-decay");
    ARG("%.17g", o->lr_decay);
    ARG("--decay-epochs");
    ARG("%.17g", o->decay_epochs);
    ARG("--ema");
    ARG("%.17g", o->ema);
    for (int side = 0; side < 2; side++) {
        const size_t n = side ? o->n_dec : o->n_enc;
        const size_t *v = side ? o->dec : o->enc;
        ARG("%s", side ? "--decoder-hidden" : "--hidden");
        char list[8 * 8 + 8] = "none";
        size_t at = 0;
        for (size_t k = 0; k < n; k++)
            at += (size_t)snprintf(list + at, sizeof list - at, "%s%zu", k ? "," : "", v[k]);
        ARG("%s", list);
    }
    ARG("--inputs");
    ARG("%s", o->pm1 ? "pm1" : "unit");
    if (o->deterministic)
        ARG("--deterministic");
#undef ARG
    return argc;
}

static int same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void same_options(const options *a, const options *b)
{
    const int same =
        same_str(a->data, b->data) && same_str(a->save, b->save) && same_str(a->load, b->load) &&
        same_str(a->csv, b->csv) && same_str(a->plot, b->plot) &&
        same_str(a->checkpoint, b->checkpoint) && same_str(a->resume, b->resume) &&
        a->epochs == b->epochs && a->latent == b->latent && a->batch == b->batch &&
        a->samples == b->samples && a->threads == b->threads &&
        a->train_samples == b->train_samples && a->objective == b->objective &&
        a->mixture == b->mixture &&
        a->train_samples_set == b->train_samples_set && a->objective_set == b->objective_set &&
        a->train_limit == b->train_limit && a->n_enc == b->n_enc && a->n_dec == b->n_dec &&
        memcmp(a->enc, b->enc, a->n_enc * sizeof(size_t)) == 0 &&
        memcmp(a->dec, b->dec, a->n_dec * sizeof(size_t)) == 0 &&
        memcmp(&a->beta, &b->beta, sizeof(double)) == 0 &&
        memcmp(&a->lr, &b->lr, sizeof(double)) == 0 &&
        memcmp(&a->beta1, &b->beta1, sizeof(double)) == 0 &&
        memcmp(&a->beta2, &b->beta2, sizeof(double)) == 0 &&
        memcmp(&a->lr_decay, &b->lr_decay, sizeof(double)) == 0 &&
        memcmp(&a->decay_epochs, &b->decay_epochs, sizeof(double)) == 0 &&
        memcmp(&a->ema, &b->ema, sizeof(double)) == 0 && a->seed == b->seed &&
        a->deterministic == b->deterministic && a->pm1 == b->pm1 && a->beta_set == b->beta_set;
    if (!same)
        fuzz_fail("the settings, written back as a command line, parse to other settings");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *argv[FUZZ_MAX_ARGS + 2], *copy;
    options o;
    const int argc = fuzz_accepted(data, size, "train_mnist", argv, &copy, &o);
    if (argc == 0)
        return 0;
    in_range(&o);
    const fuzz_size_option sizes[] = {
        {"--epochs", 0, 100000, &o.epochs, 0},
        {"--latent", 1, 1 << 16, &o.latent, 0},
        {"--batch", 1, 60000, &o.batch, 0},
        {"--samples", 0, 1000, &o.samples, 0},
        {"--train-samples", 1, 1024, &o.train_samples, 0},
        {"--mixture", 0, 1024, &o.mixture, 0},
        {"--threads", 1, 1024, &o.threads, 0},
        {"--train-limit", 1, SIZE_MAX, &o.train_limit, 0},
        {"--seed", 0, SIZE_MAX, &o.seed, 1},
    };
    fuzz_check_sizes(argc, argv, flags, sizeof flags / sizeof flags[0], sizes,
                     sizeof sizes / sizeof sizes[0]);
    /* written back, parsed again: the same settings */
    char buf[8192], *argv2[96];
    const int argc2 = render(&o, argv2, buf, sizeof buf);
    argv2[argc2] = NULL;
    options o2;
    const int ended2 = fuzz_parse(argc2, argv2, &o2);
    if (ended2)
        fuzz_fail("the settings written back were refused (status %d)", ended2 - 1);
    same_options(&o, &o2);
    free(copy);
    return 0;
}
