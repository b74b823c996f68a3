"""Optimizers, the learning-rate staircase and the moving average of weights."""

import ctypes

import numpy as np

from . import _lib
from ._lib import LIB, check, fp, array, size


def _length(n):
    """n as an int, or a Model's num_params."""
    if hasattr(n, "num_params"):
        return n.num_params
    return size(n, "n")


class Optimizer(_lib.Owned):
    """An optimizer (vib_optim) over flat float32 arrays of `size` values. Its state is
    allocated at creation; a step allocates nothing."""

    _what = "optimizer"

    def step(self, params, grads, ema=None):
        """One update of params (float32 [size], written in place, e.g. Model.params)
        from grads (float32 [size], not overlapping params); with ema, also the average's
        update of the new parameters, in one pass. A non-finite gradient, one so large
        the state would overflow, or a step that would make a parameter infinite is
        NumericError, and then params, the state and the average are unchanged."""
        n = self.size
        params = array(params, "params", np.float32, (n,), writable=True)
        grads = array(grads, "grads", np.float32, (n,))
        _lib.no_alias("grads", grads, [("params", params)])
        if ema is None:
            check(LIB.optim_step(self._ptr, fp(params), fp(grads)))
        else:
            check(LIB.optim_step_ema(self._ptr, fp(params), fp(grads),
                                     _lib.handle_of(ema, EMA, "ema")))

    @property
    def lr(self):
        """The learning rate of the following steps (> 0)."""
        return LIB.optim_lr(self._ptr)

    @lr.setter
    def lr(self, value):
        check(LIB.optim_set_lr(self._ptr, float(value)))

    @property
    def steps(self):
        """Steps taken so far."""
        return LIB.optim_steps(self._ptr)

    @property
    def size(self):
        """The length of the arrays it updates."""
        return LIB.optim_size(self._ptr)

    def __repr__(self):
        if self.closed:
            return "<libvib.%s (closed)>" % type(self).__name__
        return "<libvib.%s size=%d lr=%g steps=%d>" % (type(self).__name__, self.size,
                                                       self.lr, self.steps)


class Adam(Optimizer):
    """Adam with bias correction: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
    p -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). Requires lr > 0,
    0 <= beta1 < 1, 0 <= beta2 < 1, eps > 0. n: an int or a Model (its num_params)."""

    def __init__(self, n, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self._handle = _lib.create(LIB.adam_create, LIB.optim_free, _length(n), float(lr),
                                   float(beta1), float(beta2), float(eps))


class SGD(Optimizer):
    """SGD with heavy-ball momentum: u = momentum u + g, p -= lr u. Requires lr > 0 and
    0 <= momentum < 1. n: an int or a Model (its num_params)."""

    def __init__(self, n, lr, momentum=0.0):
        self._handle = _lib.create(LIB.sgd_create, LIB.optim_free, _length(n), float(lr),
                                   float(momentum))


class EMA(_lib.Owned):
    """Exponential moving average of parameters (vib_ema): avg = d avg + (1 - d) params
    with d = min(decay, (1 + t) / (10 + t)) at update t. EMA(init_params, decay) starts
    at a copy of init_params (float32 1-D, e.g. Model.params); 0 < decay < 1."""

    _what = "average"

    def __init__(self, init_params, decay):
        init = array(init_params, "init_params", np.float32, (None,))
        self._handle = _lib.create(LIB.ema_create, LIB.ema_free, init.shape[0], float(decay),
                                   fp(init))

    @property
    def size(self):
        return LIB.ema_size(self._ptr)

    @property
    def values(self):
        """The averaged values, float32 [size]: a read-only view of the average's memory
        (it changes with each update) that keeps that memory alive."""
        h = self._handle
        return _lib.view(_lib.address(LIB.ema_values(self._ptr)), (self.size,), np.float32,
                         False, h)

    def update(self, params):
        """One update from params (float32 [size]). NumericError if params holds a NaN or
        an infinity (and the average is unchanged)."""
        params = array(params, "params", np.float32, (self.size,))
        check(LIB.ema_update(self._ptr, fp(params)))

    def __repr__(self):
        if self.closed:
            return "<libvib.EMA (closed)>"
        return "<libvib.EMA size=%d>" % self.size


def lr_staircase(lr0, rate, decay_steps, step):
    """lr0 * rate^floor(step / decay_steps), as float32. Requires lr0 > 0, 0 < rate <= 1,
    decay_steps > 0."""
    lr = ctypes.c_float()
    check(LIB.lr_staircase(float(lr0), float(rate), size(decay_steps, "decay_steps"),
                           size(step, "step"), ctypes.byref(lr)))
    return lr.value
