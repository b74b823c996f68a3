#!/usr/bin/env python3
"""seed_table.py - the over-seeds table of docs/results.md from train_mnist's per-epoch CSVs.

    python3 examples/python/seed_table.py docs/data/seeds

reads every NAME_seedN.csv in the directory (train_mnist --csv: one line per epoch, the
S-sample test error last), groups the files by NAME (the variant) and prints one
Markdown row per variant: the seeds, the final epoch's test error (mean, sample standard
deviation, best), the mean of each run's last 10 epochs (mean and standard deviation
over the seeds), and the epochs each run reached. A run that has not reached the most
epochs of its variant is left out of the row, and named.

If the directory holds evals.csv (columns variant, seed, z_mu_pct, samples100_pct: the
saved models evaluated again with train_mnist --load FILE --epochs 0 --samples 0, i.e.
z = the posterior mean, and --samples 100), two more columns give their means over the
seeds (each value listed by seed); an empty cell is a run not evaluated that way.
"""

import csv
import os
import re
import statistics
import sys


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [float(r["test_error_s_pct"]) for r in rows]


def load_evals(path):
    """{(variant, seed): (z_mu, samples100)}, a missing value None."""
    out = {}
    if not os.path.exists(path):
        return out
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            cell = lambda k: float(r[k]) if r[k].strip() else None
            out[(r["variant"], int(r["seed"]))] = (cell("z_mu_pct"), cell("samples100_pct"))
    return out


def fmt_evals(values):
    """'mean (v1, v2, ...)' over the seeds that have a value."""
    have = [v for v in values if v is not None]
    if not have:
        return "-"
    return "%.3f%% (%s)" % (statistics.fmean(have), ", ".join(
        "%.2f" % v if v is not None else "-" for v in values))


def fmt_sd(values):
    return "%.3f" % statistics.stdev(values) if len(values) > 1 else "-"


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: seed_table.py DIR")
    runs = {}
    for name in sorted(os.listdir(argv[1])):
        m = re.fullmatch(r"(.+)_seed(\d+)\.csv", name)
        if m:
            runs.setdefault(m.group(1), {})[int(m.group(2))] = load(os.path.join(argv[1], name))
    evals = load_evals(os.path.join(argv[1], "evals.csv"))
    extra = " z = mu: mean (by seed) | 100 samples: mean (by seed) |" if evals else ""
    print("| variant | seeds | epochs | final error: mean | sd | best | last-10 mean: mean | sd |"
          + extra)
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if evals else ""))
    for variant, by_seed in runs.items():
        epochs = max(len(e) for e in by_seed.values())
        done = {s: e for s, e in by_seed.items() if len(e) == epochs}
        short = sorted(set(by_seed) - set(done))
        final = [e[-1] for e in done.values()]
        last10 = [statistics.fmean(e[-10:]) for e in done.values()]
        row = "| %s | %s | %d | %.3f%% | %s | %.2f%% | %.3f%% | %s |" % (
            variant, ",".join(str(s) for s in sorted(done)), epochs, statistics.fmean(final),
            fmt_sd(final), min(final), statistics.fmean(last10), fmt_sd(last10))
        if evals:
            ev = [evals.get((variant, s), (None, None)) for s in sorted(done)]
            row += " %s | %s |" % (fmt_evals([e[0] for e in ev]), fmt_evals([e[1] for e in ev]))
        print(row)
        if short:
            print("(%s: seeds %s stopped early, left out)" % (variant, short), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
