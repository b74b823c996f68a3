#!/usr/bin/env python3
"""train_mnist.py - examples/train_mnist's default recipe, from Python.

    PYTHONPATH=python python3 examples/python/train_mnist.py [options]   (from the repo root)

A VIB classifier on MNIST with the C program's defaults: inputs in [0, 1], a 784-512-512
encoder, K = 64, a linear softmax decoder, beta 1e-3, batch 100, Adam (lr 1e-3, beta1
0.9, beta2 0.999) decayed by 0.97 every 2 epochs, an exponential moving average (0.999)
of the weights for evaluation, 10 epochs, 12 posterior samples at test time, seed 1.
The library calls are the C program's, in the same order, so with the same seed and
thread count both print the same numbers (the seconds aside). Each epoch prints the
training loss, cross-entropy, the KL rate in bits (an upper bound on I(Z;X)), the lower
bound H(Y) - CE on I(Z;Y) in bits, and the test error with one posterior sample and with
12; the last line is
    result test_error_pct=<x> epochs=<n> beta=<b> seconds=<s>
(The C program's other options, its CSV and its learning curve are not repeated here.)
"""

import argparse
import math
import os
import signal
import sys
import time

import numpy as np

import libvib

PROG = "train_mnist.py"

# examples/train_mnist's defaults
LATENT = 64
ENCODER = (512, 512)
BETA = 1e-3
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
LR_DECAY, DECAY_EPOCHS = 0.97, 2.0
EMA_DECAY = 0.999
SAMPLES = 12


def bounded_int(lo, hi):
    """An argparse type: an integer in [lo, hi] (the C program's limits)."""
    def parse(s):
        try:
            v = int(s, 10)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:
            raise argparse.ArgumentTypeError("needs an integer in [%d, %d], got '%s'"
                                              % (lo, hi, s))
        return v
    return parse


def parse_args():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    ap.add_argument("--data", metavar="DIR", default="data/mnist",
                    help="MNIST directory (default data/mnist; `make data` fetches it)")
    ap.add_argument("--epochs", metavar="N", type=bounded_int(0, 100000), default=10,
                    help="training epochs (default 10; 0 with --resume: evaluate only)")
    ap.add_argument("--batch", metavar="N", type=bounded_int(1, 60000), default=100,
                    help="batch size (default 100)")
    ap.add_argument("--seed", metavar="N", type=bounded_int(0, 2**64 - 1), default=1,
                    help="seed of the weights, the noise and the shuffling (default 1)")
    ap.add_argument("--threads", metavar="N", type=bounded_int(1, 1024), default=0,
                    help="threads (default: BLIS_NUM_THREADS, else all CPUs)")
    ap.add_argument("--checkpoint", metavar="FILE",
                    help="save the whole training state there after every epoch, and on "
                         "Ctrl-C (SIGINT) at the end of the current step")
    ap.add_argument("--resume", metavar="FILE",
                    help="continue the run a --checkpoint file holds (give the same "
                         "options as the run that wrote it)")
    ap.add_argument("--save", metavar="FILE",
                    help="save the evaluated model (the averaged weights) at the end")
    ap.add_argument("--progress", action="store_true",
                    help="a progress bar per epoch on stderr (needs tqdm: "
                         "apt-get install python3-tqdm)")
    o = ap.parse_args()
    if o.epochs == 0 and o.resume is None:
        ap.error("--epochs 0 only makes sense with --resume FILE")
    return o


def fail(what, err):
    """End the program with libvib's own detail, as the C program's check() does."""
    sys.stderr.write("%s: %s: %s\n" % (PROG, what, err))
    sys.exit(1)


def label_entropy_bits(labels):
    """H(Y) in bits of the empirical distribution of the labels (the C program's sum,
    term by term in the same order, so the printed bound is the same)."""
    counts = np.bincount(labels, minlength=1)
    n, h = float(len(labels)), 0.0
    for c in counts:
        if c > 0:
            h -= float(c) / n * math.log2(float(c) / n)
    return h


def mkdir_for(path):
    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)


def main():
    o = parse_args()
    if o.threads:
        libvib.set_num_threads(o.threads)
    print("backend: %s" % libvib.backend_info())

    try:
        train = libvib.Dataset.mnist(o.data, "train", lo=0.0, hi=1.0)
        test = libvib.Dataset.mnist(o.data, "t10k", lo=0.0, hi=1.0)
    except libvib.LibvibError as e:
        sys.stderr.write("%s: %s\n" % (PROG, e.message))
        if isinstance(e, libvib.LibvibIOError):
            sys.stderr.write("%s: fetch MNIST with `make data`, or pass --data DIR\n" % PROG)
        return 1
    n_train, dim, classes = len(train), train.dim, train.classes
    if test.dim != dim:
        sys.stderr.write("%s: train images have %d values, test images %d\n"
                         % (PROG, dim, test.dim))
        return 1

    m = libvib.Model(dim, LATENT, classes, encoder=ENCODER, decoder=(), seed=o.seed)
    m.deterministic = False
    # The model's classes come from the training labels: say now, not after training, if
    # the test set holds a label beyond them.
    bad = np.flatnonzero((test.labels < 0) | (test.labels >= m.classes))
    if bad.size:
        sys.stderr.write("%s: test set item %d: label %d is outside the model's %d classes\n"
                         % (PROG, bad[0], test.labels[bad[0]], m.classes))
        return 1
    m.beta = BETA
    m.reseed(o.seed)  # the noise streams, as the C program seeds them

    opt = libvib.Adam(m, lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS)
    ema = libvib.EMA(m.params, EMA_DECAY)
    # The library's trainer: seeded shuffling, the staircase rate (decayed every
    # DECAY_EPOCHS epochs of steps), one Adam step and average update per batch.
    tr = libvib.Trainer(m, opt, n_train, o.batch, seed=o.seed, ema=ema)
    decay_steps = max(1.0, DECAY_EPOCHS * tr.steps_per_epoch)
    tr.set_schedule(LR, LR_DECAY, int(decay_steps))
    if o.resume:
        try:
            tr.load(o.resume)
        except libvib.LibvibError as e:
            fail("resume", e)
        print("resumed %s: %d epochs and %d steps done; the weights, the model's settings "
              "(beta, sigma offset), the optimizer's state and rate, the schedule and the "
              "shuffle come from it, not from the options"
              % (o.resume, tr.epochs_done, tr.step_in_epoch))

    # Ctrl-C with --checkpoint: the callback asks the trainer to stop after the current
    # step, then the state is saved. The handler is removed once it has fired, so a
    # second Ctrl-C ends the program at once (KeyboardInterrupt).
    interrupted = []
    if o.checkpoint:
        mkdir_for(o.checkpoint)

        def on_sigint(sig, frame):
            interrupted.append(sig)
            signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGINT, on_sigint)

    tqdm = None
    if o.progress:
        try:
            from tqdm import tqdm
        except ImportError:
            sys.stderr.write("%s: --progress needs tqdm (apt-get install python3-tqdm)\n"
                             % PROG)
            return 2

    print("libvib %s | model %s | %d parameters"
          % (libvib.library_version(), m.describe(), m.num_params))
    print("data %s: %d train, %d test, %d classes, inputs in [%g, 1] | batch %d, Adam lr %g "
          "beta1 %g, decay %g every %g epochs, EMA %g, %d test samples"
          % (o.data, n_train, len(test), classes, 0.0, o.batch, LR, BETA1, LR_DECAY,
             DECAY_EPOCHS, EMA_DECAY, SAMPLES))
    if o.save:
        mkdir_for(o.save)
    sys.stdout.flush()

    def save_and_leave():
        """After Ctrl-C: save the state and say how to continue; the exit status is 130."""
        try:
            tr.save(o.checkpoint)
        except libvib.LibvibError as e:
            fail("checkpoint", e)
        sys.stderr.write("\n%s: interrupted after %d epochs and %d steps; state saved in %s "
                         "(continue with --resume %s)\n"
                         % (PROG, tr.epochs_done, tr.step_in_epoch, o.checkpoint,
                            o.checkpoint))
        return 130

    def test_error(with_ema, samples):
        """Test error (%) with `samples` draws (0: at the posterior mean), with the
        averaged weights if with_ema (the model's own stay as they are)."""
        return 100.0 * m.evaluate(test.images, test.labels, samples=samples,
                                  ema=ema if with_ema else None).error

    h_y = label_entropy_bits(train.labels[:n_train])
    one = 0 if m.deterministic else 1
    t_start = time.monotonic()
    err1 = errs = 0.0
    trained = 0  # epochs trained by this run
    for epoch in range(tr.epochs_done + 1, o.epochs + 1):
        t0 = time.monotonic()
        resumed_at = tr.step_in_epoch  # > 0: a partial epoch
        bar = None
        if tqdm is not None:
            bar = tqdm(total=tr.steps_per_epoch, initial=resumed_at, leave=False,
                       desc="epoch %d/%d" % (epoch, o.epochs), unit="step", file=sys.stderr)

        # The trainer calls this after every step: it draws the bar, and returns
        # true to stop the epoch after this step (Ctrl-C with --checkpoint).
        def callback(ep, step, steps, ce, kl, loss):
            if bar is not None:
                bar.update(step - bar.n)
                bar.set_postfix(loss="%.4f" % loss, refresh=False)
            return bool(interrupted)

        try:
            mean_ce, mean_kl, mean_loss = tr.epoch(
                train.images, train.labels,
                callback=callback if (bar is not None or o.checkpoint) else None)
        except libvib.LibvibError as e:
            fail("train", e)
        finally:
            if bar is not None:
                bar.close()
        # Ctrl-C: the state, then out; an epoch that ended is reported first
        stop = tr.stopped or bool(interrupted)
        if stop and tr.step_in_epoch != 0:
            return save_and_leave()
        trained += 1
        n = float(n_train)
        sum_loss, sum_ce, sum_kl = mean_loss * n, mean_ce * n, mean_kl * n
        lr = tr.lr
        train_s = time.monotonic() - t0
        # the averaged weights evaluated; training goes on with the model's
        err1 = test_error(True, one)
        errs = test_error(True, SAMPLES)
        ce, kl_bits = sum_ce / n, sum_kl / n / math.log(2.0)
        izy = h_y - ce / math.log(2.0)
        # the checkpoint before the line: a crash between them loses a line, never
        # writes one twice
        if o.checkpoint:
            try:
                tr.save(o.checkpoint)
            except libvib.LibvibError as e:
                fail("checkpoint", e)
        line = ("epoch %3d  %6.1fs  lr %.3g  loss %.4f  ce %.4f  kl %.2f bits  I(Z;Y) >= %.3f "
                "bits  test error %.2f%% (1 sample)  %.2f%% (%d samples)"
                % (epoch, train_s, lr, sum_loss / n, ce, kl_bits, izy, err1, errs, SAMPLES))
        if resumed_at > 0:  # the means and time of the steps this run took
            line += "  (resumed after step %d)" % resumed_at
        print(line, flush=True)
        if stop:
            return save_and_leave()

    m.params[:] = ema.values  # from here on the model is the one evaluated
    if trained == 0:  # nothing trained: evaluate what was resumed
        err1 = test_error(False, one)
        errs = test_error(False, SAMPLES)
        print("evaluation of %s: test error %.2f%% (1 sample)  %.2f%% (%d samples)"
              % (o.resume, err1, errs, SAMPLES))
    if o.save:
        try:
            m.save(o.save)
        except libvib.LibvibError as e:
            fail("save", e)
        print("saved %s" % o.save)
    print("result test_error_pct=%.2f epochs=%d beta=%g seconds=%.1f"
          % (errs, o.epochs, 0.0 if m.deterministic else m.beta, time.monotonic() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
