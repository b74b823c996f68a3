"""Minibatch training: libvib.Trainer over vib_trainer."""

import ctypes
import signal
import threading
import sys

import numpy as np

from . import _lib, _decls
from ._lib import LIB, check, fp, i32p, array, size
from ._data import Dataset
from ._model import Model
from ._optim import EMA, Optimizer


def _flat(buf, n):
    """The library's gradient buffer as a float32 view of n values."""
    return np.ctypeslib.as_array(buf, shape=(n,))


def _guarded(failed, fn, *args):
    """fn(*args) for a reduction callback: 0, or 1 with its exception kept in failed, to
    be raised by step/epoch once the library has returned."""
    try:
        fn(*args)
        return 0
    except BaseException as e:  # noqa: B902 - re-raised by step/epoch
        failed.append(e)
        return 1


class Trainer(_lib.Owned):
    """Minibatch training (vib_trainer) of `model` with `optimizer` (and an optional
    EMA of the weights, updated after each step) over a fixed training set of n rows,
    in seeded-shuffled minibatches of `batch` rows (the last one of an epoch shorter if
    batch does not divide n); one optimizer step per minibatch. The learning rate
    follows set_schedule's staircase (by default the optimizer's rate, constant).

    The trainer keeps the model's, optimizer's and average's memory alive (closing
    those Python objects does not free what it uses), not the data: every call that
    trains is given x float32 [n, input_dim] and labels int32 [n] (or a Dataset)."""

    _what = "trainer"

    def __init__(self, model, optimizer, n, batch, seed=1, ema=None):
        ptrs = (_lib.handle_of(model, Model, "model"),
                _lib.handle_of(optimizer, Optimizer, "optimizer"),
                _lib.handle_of(ema, EMA, "ema", optional=True))
        deps = [model._handle, optimizer._handle] + ([ema._handle] if ema is not None else [])
        self._handle = _lib.create(LIB.trainer_create, LIB.trainer_free, *(ptrs + (
            size(n, "n"), size(batch, "batch"), size(seed, "seed"))), deps=deps)
        self.n = int(n)
        self.batch = int(batch)
        self.input_dim = model.input_dim
        self._in_epoch = False

    def _busy(self, what):
        if self._in_epoch:
            raise RuntimeError("libvib: Trainer.%s called from the running epoch's callback "
                               "(a callback may read the position and save(), nothing else)"
                               % what)

    def close(self):
        self._busy("close")
        _lib.Owned.close(self)

    def set_schedule(self, lr0, rate=1.0, decay_steps=1):
        """The learning rate lr0 * rate^floor(step / decay_steps) (floored at 1e-30).
        Requires lr0 > 0, 0 < rate <= 1, decay_steps > 0."""
        self._busy("set_schedule")
        check(LIB.trainer_set_schedule(self._ptr, float(lr0), float(rate),
                                       size(decay_steps, "decay_steps")))

    def set_shard(self, rank, ranks):
        """Data-parallel training: this worker trains its rows [rows*rank/ranks,
        rows*(rank+1)/ranks) of every global batch, with the noise a one-process run
        gives them and the global mean's weighting. Every worker's trainer must be built
        alike (the same n, batch, seed, and a model of the same weights). ranks 1: one
        process (the default)."""
        self._busy("set_shard")
        check(LIB.trainer_set_shard(self._ptr, size(rank, "rank"), size(ranks, "ranks")))

    def set_reduce(self, reduce):
        """The reduction of data-parallel training (None: none): reduce(grad), called
        once per step with the model's flat gradient (a float32 view), must replace it in
        place by its sum over the workers, the same bits on every worker (for example
        with mpi4py: comm.Allreduce(MPI.IN_PLACE, grad), then comm.Bcast(grad, root=0)).
        An exception in it fails the step (LibvibIOError, then the exception is raised),
        which changes nothing."""
        self._busy("set_reduce")
        if reduce is None:
            check(LIB.trainer_set_reduce(self._ptr, _decls.vib_reduce_callback(), None))
            self._reduce = None
            return
        failed = []
        cb = _decls.vib_reduce_callback(
            lambda user, buf, n: _guarded(failed, reduce, _flat(buf, n)))
        check(LIB.trainer_set_reduce(self._ptr, cb, None))
        self._reduce = (cb, failed)  # kept alive while the library may call it

    def set_reduce_overlap(self, part, wait):
        """The reduction overlapped with the backward pass, in place of set_reduce's
        (None: none). part(grad, lo, hi) is called from the stepping thread as soon as
        the backward pass has finished a layer's gradient: grad is a float32 view of the
        flat gradient's [lo, hi), which part may start summing over the workers (and
        write) while the pass computes the layers below; the calls cover the gradient
        from the top down, one per layer, alike on every worker. wait(grad), with the
        whole gradient, then returns once it holds the sum over the workers, the same
        bits on every worker. With mpi4py: part starts comm.Iallreduce(MPI.IN_PLACE,
        grad) and keeps the request; wait calls MPI.Request.Waitall on them, then
        comm.Bcast(grad, root=0) (an allreduce does not promise the same bits). An
        exception in either fails the step (raised after it), which changes nothing;
        the remaining parts and the wait are still called."""
        self._busy("set_reduce_overlap")
        if part is None:
            check(LIB.trainer_set_reduce_overlap(self._ptr, _decls.vib_reduce_part_callback(),
                                                 _decls.vib_reduce_wait_callback(), None))
            self._reduce = None
            return
        if not callable(part) or not callable(wait):
            raise TypeError("libvib: set_reduce_overlap takes two callables, part and wait")
        failed = []
        cbs = (_decls.vib_reduce_part_callback(
                   lambda user, buf, n, lo, hi: _guarded(failed, part, _flat(buf, n)[lo:hi],
                                                         lo, hi)),
               _decls.vib_reduce_wait_callback(
                   lambda user, buf, n: _guarded(failed, wait, _flat(buf, n))))
        check(LIB.trainer_set_reduce_overlap(self._ptr, cbs[0], cbs[1], None))
        self._reduce = (cbs, failed)  # kept alive while the library may call them

    def _reraise_reduce(self):
        r = getattr(self, "_reduce", None)
        if r is not None and r[1]:
            e = r[1][0]  # the first: a part's exception, not the wait's after it
            r[1].clear()
            raise e

    def _data(self, x, labels):
        if isinstance(x, Dataset):
            if labels is not None:
                raise TypeError("libvib: give a Dataset alone, or x and labels")
            x, labels = x.images, x.labels
        if labels is None:
            raise TypeError("libvib: labels missing (give x and labels, or a Dataset)")
        x = array(x, "x", np.float32, (self.n, self.input_dim))
        labels = array(labels, "labels", np.int32, (self.n,))
        return x, labels

    def step(self, x, labels=None):
        """One step: the next minibatch of the current epoch (its last step reshuffles
        for the next). Returns the batch means (ce, kl, loss) in nats. A failed step
        changes nothing the run depends on (the model's grads are scratch)."""
        self._busy("step")
        x, labels = self._data(x, labels)
        ce, kl, loss = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        status = LIB.trainer_step(self._ptr, fp(x), i32p(labels), ctypes.byref(ce),
                                  ctypes.byref(kl), ctypes.byref(loss))
        self._reraise_reduce()  # a reduction's own exception, rather than its VIB_ERR_IO
        check(status)
        return ce.value, kl.value, loss.value

    def epoch(self, x, labels=None, callback=None, progress=False):
        """The rest of the current epoch (all of it from its start). Returns the means
        (ce, kl, loss) over the rows trained.

        callback(epoch, step, steps_per_epoch, ce, kl, loss), called after each step
        (epoch from 0, step from 1, the step's batch means), returns something truthy to
        stop after that step (then `stopped` is True). An exception raised in it (also
        KeyboardInterrupt from Ctrl-C under Python's default SIGINT handler, checked at
        each step) stops the epoch after that step and is
        re-raised when the epoch has returned; the trainer is then at a step boundary and
        can go on or be saved. The callback may read the position and call save(); it
        must not train, load, close or change the schedule (RuntimeError).
        progress=True shows a tqdm bar when tqdm is installed, else a line on stderr."""
        self._busy("epoch")
        x, labels = self._data(x, labels)
        raised = []
        bar = _Progress(self) if progress else None

        def hook(user, epoch, step, steps_per_epoch, ce, kl, loss):
            try:
                if bar is not None:
                    bar.update(epoch, step, steps_per_epoch, loss)
                if callback is not None:
                    return 1 if callback(epoch, step, steps_per_epoch, ce, kl, loss) else 0
                return 0
            except BaseException as e:  # stop the epoch; re-raised below
                raised.append(e)
                return 1

        # Ctrl-C: while the C loop runs, Python's default handler would raise
        # KeyboardInterrupt at whatever bytecode runs next, perhaps in the hook before its
        # try, where ctypes can only print and drop it. In the main thread a handler that
        # notes the signal takes its place for the epoch; the hook stops at the next step
        # boundary and KeyboardInterrupt is raised when the epoch has returned. Only
        # Python's default handler is replaced: a SIGINT the program ignores (SIG_IGN, as
        # a background job under nohup starts) or handles itself stays as it is.
        interrupted = []
        old_sigint = None
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            try:
                old_sigint = signal.signal(signal.SIGINT, lambda s, f: interrupted.append(s))
            except ValueError:  # not the main interpreter
                old_sigint = None

        def guarded(user, epoch, step, steps_per_epoch, ce, kl, loss):
            r = hook(user, epoch, step, steps_per_epoch, ce, kl, loss)
            if interrupted and not raised:
                raised.append(KeyboardInterrupt())
                r = 1
            return r

        cb = _decls.vib_train_callback(guarded)
        ce, kl, loss = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        ptr = self._ptr
        try:
            check(LIB.trainer_set_callback(ptr, cb, None))
            self._in_epoch = True
            status = LIB.trainer_epoch(ptr, fp(x), i32p(labels), ctypes.byref(ce),
                                       ctypes.byref(kl), ctypes.byref(loss))
        finally:
            self._in_epoch = False
            LIB.trainer_set_callback(ptr, _decls.vib_train_callback(), None)  # NULL
            if old_sigint is not None:
                signal.signal(signal.SIGINT, old_sigint)
            if bar is not None:
                bar.close()
        if interrupted and not raised:  # after the epoch's last step
            raised.append(KeyboardInterrupt())
        self._reraise_reduce()
        if raised:
            raise raised[0]
        check(status)
        return ce.value, kl.value, loss.value

    @property
    def epochs_done(self):
        return LIB.trainer_epochs_done(self._ptr)

    @property
    def step_in_epoch(self):
        """Steps done in the current epoch."""
        return LIB.trainer_step_in_epoch(self._ptr)

    @property
    def steps_per_epoch(self):
        return LIB.trainer_steps_per_epoch(self._ptr)

    @property
    def steps(self):
        """Steps done in all."""
        return LIB.trainer_steps(self._ptr)

    @property
    def stopped(self):
        """Whether the last epoch() was stopped by its callback."""
        return bool(LIB.trainer_stopped(self._ptr))

    @property
    def lr(self):
        """The learning rate of the last step (the schedule's first before any)."""
        return LIB.trainer_lr(self._ptr)

    def save(self, path):
        """A checkpoint: the model, the optimizer's state, the average, both noise
        streams and the position, in one versioned, CRC-checked file written atomically
        (Model.load reads its model part)."""
        check(LIB.trainer_save(self._ptr, _lib.fspath(path)))

    def load(self, path):
        """Restore a checkpoint into this trainer, built like the one saved (same
        architecture, optimizer kind and length, average or not, n and batch): training
        continues bit for bit. A mismatch or a damaged file is an error (FormatError,
        InvalidArgumentError, LibvibIOError) and changes nothing."""
        self._busy("load")
        check(LIB.trainer_load(self._ptr, _lib.fspath(path)))

    def __repr__(self):
        if self.closed:
            return "<libvib.Trainer (closed)>"
        return "<libvib.Trainer n=%d batch=%d epoch %d step %d/%d>" % (
            self.n, self.batch, self.epochs_done, self.step_in_epoch, self.steps_per_epoch)


class _Progress(object):
    """A progress bar of one epoch: tqdm when importable, else a line on stderr."""

    def __init__(self, trainer):
        self.total = trainer.steps_per_epoch
        self.epoch = trainer.epochs_done
        start = trainer.step_in_epoch
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self.bar = None
        self.last = None
        if tqdm is not None:
            self.bar = tqdm(total=self.total, initial=start, desc="epoch %d" % self.epoch,
                            unit="step", leave=True)

    def update(self, epoch, step, steps_per_epoch, loss):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss="%.4f" % loss, refresh=False)
        else:
            self.last = step
            sys.stderr.write("\repoch %d: step %d/%d loss %.4f" % (epoch, step,
                                                                 steps_per_epoch, loss))
            sys.stderr.flush()

    def close(self):
        if self.bar is not None:
            self.bar.close()
        elif self.last is not None:
            sys.stderr.write("\n")
            sys.stderr.flush()
