#!/usr/bin/env python3
"""tests/ffi_ctypes.py - libvib through Python's ctypes, as an FFI user sees it.

    python3 tests/ffi_ctypes.py LIBRARY [C_REFERENCE]

LIBRARY is the built shared library (make passes lib/libvib.so.0); C_REFERENCE is
build/ffi_ref, built from tests/ffi/ref.c (default: build/ffi_ref next to this tree).

Checks the version and status functions, an error path, each node function against a
float64 reference computed here, the functions added in 0.2 (parameter blocks, handle
sizes, input gradients, evaluation) on a tiny model, then trains a tiny model for a few
Adam steps and predicts, and requires every number of that sequence to be bit-identical
to what the same sequence gives in C (the reference program prints them as hex floats).

Python 3 standard library only (no numpy); runs on any python3 >= 3.8. Prints one line
per failure and closes with "N passed, M failed"; exits non-zero on any failure.
"""

import ctypes
import math
import os
import re
import struct
import subprocess
import sys

from ctypes import POINTER, byref, c_char_p, c_double, c_float, c_int, c_int32, c_size_t
from ctypes import c_uint, c_uint64, c_void_p

# The status codes of vib.h (an anonymous enum: an FFI user has to copy the numbers).
VIB_OK = 0
VIB_ERR_INVALID_ARG = -1
VIB_ERR_NOMEM = -2
VIB_ERR_IO = -3
VIB_ERR_FORMAT = -4
VIB_ERR_NUMERIC = -5
STATUS_STRINGS = {
    VIB_OK: "ok",
    VIB_ERR_INVALID_ARG: "invalid argument",
    VIB_ERR_NOMEM: "out of memory",
    VIB_ERR_IO: "input/output error",
    VIB_ERR_FORMAT: "bad format",
    VIB_ERR_NUMERIC: "numeric error",
}

# The model sequence; must match tests/ffi/ref.c.
IN, HID, K, CLASSES, BATCH, STEPS = 6, 8, 3, 3, 12, 5
SEED, RESEED = 7, 11
BETA, LR = 1e-2, 5e-2

FP = POINTER(c_float)
DP = POINTER(c_double)
I32P = POINTER(c_int32)
SZP = POINTER(c_size_t)
VPP = POINTER(c_void_p)

# name: (restype, argtypes); every function this test calls is declared here.
PROTOTYPES = {
    "vib_version_number": (c_uint, []),
    "vib_version_string": (c_char_p, []),
    "vib_status_string": (c_char_p, [c_int]),
    "vib_last_error": (c_char_p, []),
    "vib_set_num_threads": (c_int, [c_int]),
    "vib_num_threads": (c_int, []),
    "vib_backend_info": (c_int, [c_char_p, c_size_t]),
    "vib_rng_create": (c_int, [c_uint64, VPP]),
    "vib_rng_free": (None, [c_void_p]),
    "vib_rng_seed": (c_int, [c_void_p, c_uint64]),
    "vib_rng_u64": (c_int, [c_void_p, POINTER(c_uint64)]),
    "vib_reparam_forward": (c_int, [c_size_t, FP, FP, FP, FP]),
    "vib_reparam_backward": (c_int, [c_size_t, FP, FP, FP, FP]),
    "vib_kl_std_normal": (c_int, [c_size_t, c_size_t, FP, FP, FP]),
    "vib_kl_std_normal_backward": (c_int, [c_size_t, c_size_t, FP, FP, FP, FP, FP]),
    "vib_kl_diag_gauss": (c_int, [c_size_t, FP, FP, FP, FP, DP]),
    "vib_sigma_head_forward": (c_int, [c_size_t, FP, c_float, FP, FP]),
    "vib_sigma_head_backward": (c_int, [c_size_t, FP, c_float, FP, FP, FP]),
    "vib_relu_forward": (c_int, [c_size_t, FP, FP]),
    "vib_relu_backward": (c_int, [c_size_t, FP, FP, FP]),
    "vib_softmax_xent_forward": (c_int, [c_size_t, c_size_t, FP, I32P, FP, FP]),
    "vib_softmax_xent_backward": (c_int, [c_size_t, c_size_t, FP, I32P, FP, FP]),
    "vib_adam_create": (c_int, [c_size_t, c_float, c_float, c_float, c_float, VPP]),
    "vib_optim_free": (None, [c_void_p]),
    "vib_optim_step": (c_int, [c_void_p, FP, FP]),
    "vib_optim_lr": (c_float, [c_void_p]),
    "vib_optim_steps": (c_uint64, [c_void_p]),
    "vib_model_create": (c_int, [c_size_t, c_size_t, SZP, c_size_t, c_size_t, SZP,
                                 c_size_t, c_uint64, VPP]),
    "vib_model_free": (None, [c_void_p]),
    "vib_model_set_beta": (c_int, [c_void_p, c_float]),
    "vib_model_reseed": (c_int, [c_void_p, c_uint64]),
    "vib_model_beta": (c_float, [c_void_p]),
    "vib_model_sigma_offset": (c_float, [c_void_p]),
    "vib_model_deterministic": (c_int, [c_void_p]),
    "vib_model_input_dim": (c_size_t, [c_void_p]),
    "vib_model_latent_dim": (c_size_t, [c_void_p]),
    "vib_model_classes": (c_size_t, [c_void_p]),
    "vib_model_num_params": (c_size_t, [c_void_p]),
    "vib_model_describe": (c_int, [c_void_p, c_char_p, c_size_t]),
    "vib_model_params": (FP, [c_void_p]),
    "vib_model_grads": (FP, [c_void_p]),
    "vib_model_gradients": (c_int, [c_void_p, c_size_t, FP, I32P, DP, DP, DP]),
    "vib_model_predict": (c_int, [c_void_p, c_size_t, FP, c_size_t, FP]),
    "vib_ema_values": (FP, [c_void_p]),
    "vib_trainer_create": (c_int, [c_void_p, c_void_p, c_void_p, c_size_t, c_size_t, c_uint64,
                                   VPP]),
    "vib_trainer_free": (None, [c_void_p]),
    "vib_trainer_set_schedule": (c_int, [c_void_p, c_float, c_float, c_uint64]),
    "vib_trainer_set_callback": (c_int, [c_void_p, c_void_p, c_void_p]),
    "vib_trainer_step": (c_int, [c_void_p, FP, I32P, DP, DP, DP]),
    "vib_trainer_epoch": (c_int, [c_void_p, FP, I32P, DP, DP, DP]),
    "vib_trainer_epochs_done": (c_uint64, [c_void_p]),
    "vib_trainer_step_in_epoch": (c_uint64, [c_void_p]),
    "vib_trainer_steps_per_epoch": (c_uint64, [c_void_p]),
    "vib_trainer_steps": (c_uint64, [c_void_p]),
    "vib_trainer_stopped": (c_int, [c_void_p]),
    "vib_trainer_lr": (c_float, [c_void_p]),
    "vib_trainer_save": (c_int, [c_void_p, c_char_p]),
    "vib_trainer_load": (c_int, [c_void_p, c_char_p]),
    # added in 0.2 (symbol version LIBVIB_0.2)
    "vib_sgd_create": (c_int, [c_size_t, c_float, c_float, VPP]),
    "vib_optim_size": (c_size_t, [c_void_p]),
    "vib_ema_create": (c_int, [c_size_t, c_float, FP, VPP]),
    "vib_ema_free": (None, [c_void_p]),
    "vib_ema_update": (c_int, [c_void_p, FP]),
    "vib_ema_size": (c_size_t, [c_void_p]),
    "vib_model_num_blocks": (c_size_t, [c_void_p]),
    "vib_model_block": (c_int, [c_void_p, c_size_t, SZP, SZP, SZP, POINTER(c_int),
                                POINTER(c_int), SZP]),
    "vib_model_input_gradients": (c_int, [c_void_p, c_size_t, FP, I32P, c_size_t, FP, DP]),
    "vib_model_evaluate": (c_int, [c_void_p, c_void_p, c_size_t, FP, I32P, c_size_t, DP, DP,
                                   DP, DP]),
}

# The trainer's callback type: int (*)(void *user, uint64_t epoch, uint64_t step,
# uint64_t steps_per_epoch, double ce, double kl, double loss).
TRAIN_CALLBACK = ctypes.CFUNCTYPE(c_int, c_void_p, c_uint64, c_uint64, c_uint64, c_double,
                                  c_double, c_double)

# vib.h's enums of the parameter blocks
VIB_BLOCK_WEIGHTS, VIB_BLOCK_BIAS = 0, 1
VIB_LAYER_ENCODER, VIB_LAYER_HEAD, VIB_LAYER_DECODER, VIB_LAYER_OUTPUT = 0, 1, 2, 3


class Lib(object):
    """The shared library with every used function declared."""

    def __init__(self, path):
        self.dll = ctypes.CDLL(path)
        for name, (restype, argtypes) in PROTOTYPES.items():
            fn = getattr(self.dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name[len("vib_"):], fn)

    def error_text(self):
        return self.dll.vib_last_error().decode("utf-8", "replace")


# ---- bookkeeping -------------------------------------------------------------------

passed = 0
failed = 0


def check(ok, name, detail=""):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s%s" % (name, (": " + detail) if detail else ""))
    return ok


def check_status(got, want, name):
    return check(got == want, name, "status %d (%s), wanted %d; last error: %r"
                 % (got, STATUS_STRINGS.get(got, "?"), want, LIB.error_text()))


def close(got, want, rtol=1e-5, atol=1e-6):
    return math.isfinite(got) and abs(got - want) <= atol + rtol * abs(want)


def check_close(name, got, want, rtol=1e-5, atol=1e-6):
    """Elementwise comparison of two sequences of numbers within a float32 tolerance."""
    got, want = list(got), list(want)
    if len(got) != len(want):
        return check(False, name, "%d values, wanted %d" % (len(got), len(want)))
    bad = [i for i in range(len(got)) if not close(got[i], want[i], rtol, atol)]
    return check(not bad, name, "; ".join("[%d] %r, wanted %r" % (i, got[i], want[i])
                                          for i in bad[:5]))


def f32(x):
    """x rounded to float32, as a Python float."""
    return struct.unpack("f", struct.pack("f", x))[0]


def farr(values):
    values = list(values)
    return (c_float * max(len(values), 1))(*values)


def iarr(values):
    values = list(values)
    return (c_int32 * max(len(values), 1))(*values)


# ---- float64 references ------------------------------------------------------------

def softplus(x):
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


def sigmoid(x):
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# ---- the checks --------------------------------------------------------------------

def test_version_and_status():
    num = LIB.version_number()
    s = LIB.version_string().decode()
    want = "%d.%d.%d" % (num // 10000, num // 100 % 100, num % 100)
    check(s == want, "vib_version_string", "%r, vib_version_number %d gives %r" % (s, num, want))
    check(re.match(r"^\d+\.\d+\.\d+$", s) is not None, "version form", repr(s))
    for code, text in sorted(STATUS_STRINGS.items()):
        got = LIB.status_string(code).decode()
        check(got == text, "vib_status_string(%d)" % code, "%r, wanted %r" % (got, text))
    for code in (1, -6, -1000, 2 ** 31 - 1, -2 ** 31):
        got = LIB.status_string(code)
        check(got == b"unknown status", "vib_status_string(%d)" % code, repr(got))


def test_backend():
    """The backend line through ctypes: snprintf-like sizing, and the thread count."""
    n = LIB.backend_info(None, 0)
    check(n > 20, "vib_backend_info(NULL, 0)", str(n))
    buf = ctypes.create_string_buffer(n + 1)
    check(LIB.backend_info(buf, n + 1) == n, "vib_backend_info length")
    text = buf.value.decode()
    check(text.startswith("BLIS ") and "kernels " in text, "vib_backend_info text", text)
    check_status(LIB.backend_info(None, 4), -1, "vib_backend_info(NULL, 4)")
    default = LIB.num_threads()
    check(default >= 1, "vib_num_threads default", str(default))
    check_status(LIB.set_num_threads(1), 0, "vib_set_num_threads(1)")
    check(LIB.num_threads() == 1, "vib_num_threads after set", str(LIB.num_threads()))
    check_status(LIB.set_num_threads(-3), -1, "vib_set_num_threads(-3)")
    check_status(LIB.set_num_threads(0), 0, "vib_set_num_threads(0)")
    check(LIB.num_threads() == default, "vib_num_threads back to the default")


def test_errors():
    n = 3
    mu, v = farr([0.5, -1.0, 2.0]), farr([1.0, 1.0, 1.0])
    sigma = farr([1.0, -1.0, 1.0])
    z = farr([7.0] * n)
    st = LIB.reparam_forward(n, mu, sigma, v, z)
    err = LIB.error_text()
    check_status(st, VIB_ERR_INVALID_ARG, "reparam_forward with sigma[1] = -1")
    check(err.startswith("vib_reparam_forward:") and "sigma" in err,
          "vib_last_error names the function and the argument", repr(err))
    check(list(z) == [7.0] * n, "failed call left its output untouched", repr(list(z)))

    st = LIB.reparam_forward(n, None, sigma, v, z)
    err = LIB.error_text()
    check_status(st, VIB_ERR_INVALID_ARG, "reparam_forward with mu NULL")
    check(err.startswith("vib_reparam_forward:"), "NULL: vib_last_error", repr(err))

    st = LIB.reparam_forward(n, farr([0.0, float("nan"), 0.0]), farr([1.0] * n), v, z)
    err = LIB.error_text()
    check_status(st, VIB_ERR_NUMERIC, "reparam_forward with a NaN")
    check(err.startswith("vib_reparam_forward:"), "NaN: vib_last_error", repr(err))

    check_status(LIB.reparam_forward(0, None, None, None, None), VIB_OK,
                 "n = 0 with NULL buffers is a no-op")

    loss = farr([5.0])
    st = LIB.softmax_xent_forward(1, 3, farr([0.0, 1.0, 2.0]), iarr([3]), loss, None)
    err = LIB.error_text()
    check_status(st, VIB_ERR_INVALID_ARG, "softmax_xent_forward with label 3 of 3 classes")
    check(err.startswith("vib_softmax_xent_forward:"), "label: vib_last_error", repr(err))
    check(loss[0] == 5.0, "label: loss untouched", repr(loss[0]))

    opt = c_void_p(None)
    st = LIB.adam_create(4, -1.0, 0.9, 0.999, 1e-8, byref(opt))
    err = LIB.error_text()
    check_status(st, VIB_ERR_INVALID_ARG, "adam_create with lr -1")
    check(err.startswith("vib_adam_create:"), "adam: vib_last_error", repr(err))
    check(opt.value is None, "adam: *out untouched on error", repr(opt.value))


def test_rng():
    rng = c_void_p(None)
    check_status(LIB.rng_create(2 ** 64 - 1, byref(rng)), VIB_OK, "vib_rng_create")
    check(rng.value is not None, "vib_rng_create gives a handle")
    a, b = c_uint64(), c_uint64()
    draws = []
    for _ in range(3):
        check_status(LIB.rng_u64(rng, byref(a)), VIB_OK, "vib_rng_u64")
        draws.append(a.value)
    check_status(LIB.rng_seed(rng, 2 ** 64 - 1), VIB_OK, "vib_rng_seed")
    again = []
    for _ in range(3):
        LIB.rng_u64(rng, byref(b))
        again.append(b.value)
    check(draws == again and len(set(draws)) == 3, "same seed, same uint64 stream",
          "%r vs %r" % (draws, again))
    LIB.rng_free(rng)
    LIB.rng_free(None)


def test_reparam():
    mu = farr([0.5, -1.25, 3.0, 0.0, -7.5])
    sigma = farr([1.0, 0.1, 2.5, 1e-3, 0.75])
    v = farr([0.3, -1.7, 0.0, 2.2, -0.4])
    n = 5
    z = farr([0.0] * n)
    check_status(LIB.reparam_forward(n, mu, sigma, v, z), VIB_OK, "vib_reparam_forward")
    check_close("vib_reparam_forward", z, [mu[i] + sigma[i] * v[i] for i in range(n)])

    dz = farr([1.0, -0.5, 2.0, 0.25, -3.0])
    dmu, dsigma = farr([0.5] * n), farr([-0.25] * n)
    check_status(LIB.reparam_backward(n, dz, v, dmu, dsigma), VIB_OK, "vib_reparam_backward")
    check_close("vib_reparam_backward dmu (accumulated)", dmu, [0.5 + dz[i] for i in range(n)])
    check_close("vib_reparam_backward dsigma (accumulated)", dsigma,
                [-0.25 + dz[i] * v[i] for i in range(n)])

    # in place: z may alias mu
    zz = farr(list(mu)[:n])
    check_status(LIB.reparam_forward(n, zz, sigma, v, zz), VIB_OK, "reparam in place")
    check_close("reparam in place", zz, [mu[i] + sigma[i] * v[i] for i in range(n)])


def test_kl():
    rows, k = 2, 3
    mu = farr([0.0, 0.5, -1.0, 2.0, -0.25, 0.125])
    sigma = farr([1.0, 0.5, 2.0, 0.1, 1.5, 0.9])
    kl = farr([0.0] * rows)
    check_status(LIB.kl_std_normal(rows, k, mu, sigma, kl), VIB_OK, "vib_kl_std_normal")
    want = []
    for r in range(rows):
        acc = 0.0
        for j in range(k):
            m, s = mu[r * k + j], sigma[r * k + j]
            acc += m * m + s * s - 2.0 * math.log(s) - 1.0
        want.append(0.5 * acc)
    check_close("vib_kl_std_normal", kl, want)

    dkl = farr([1.0, -0.5])
    dmu, dsigma = farr([0.125] * (rows * k)), farr([0.0] * (rows * k))
    check_status(LIB.kl_std_normal_backward(rows, k, mu, sigma, dkl, dmu, dsigma), VIB_OK,
                 "vib_kl_std_normal_backward")
    check_close("vib_kl_std_normal_backward dmu", dmu,
                [0.125 + dkl[i // k] * mu[i] for i in range(rows * k)])
    check_close("vib_kl_std_normal_backward dsigma", dsigma,
                [dkl[i // k] * (sigma[i] - 1.0 / sigma[i]) for i in range(rows * k)])

    # P = N(0, 1), Q = N(0, 4): KL(P||Q) = log 2 - 3/8, KL(Q||P) = 3/2 - log 2.
    zero, one, two = farr([0.0]), farr([1.0]), farr([2.0])
    out = c_double(-1.0)
    check_status(LIB.kl_diag_gauss(1, zero, one, zero, two, byref(out)), VIB_OK,
                 "vib_kl_diag_gauss")
    check_close("KL(N(0,1) || N(0,4))", [out.value], [0.3181471805599453], 1e-12, 0.0)
    check_status(LIB.kl_diag_gauss(1, zero, two, zero, one, byref(out)), VIB_OK,
                 "vib_kl_diag_gauss reversed")
    check_close("KL(N(0,4) || N(0,1))", [out.value], [0.8068528194400547], 1e-12, 0.0)

    k = 4
    mp, sp = farr([0.5, -1.0, 0.0, 2.0]), farr([1.0, 0.5, 3.0, 0.25])
    mq, sq = farr([0.0, 1.0, -0.5, 2.0]), farr([2.0, 1.0, 0.75, 0.25])
    check_status(LIB.kl_diag_gauss(k, mp, sp, mq, sq, byref(out)), VIB_OK,
                 "vib_kl_diag_gauss k = 4")
    want = sum(math.log(sq[j] / sp[j]) + (sp[j] ** 2 + (mp[j] - mq[j]) ** 2)
               / (2.0 * sq[j] ** 2) - 0.5 for j in range(k))
    check_close("vib_kl_diag_gauss k = 4", [out.value], [want], 1e-12, 1e-15)


def test_sigma_head():
    rho = farr([-3.0, 0.0, 2.5, 5.0, 9.0, -40.0])
    n, offset = 6, -5.0
    sigma, log_sigma = farr([0.0] * n), farr([0.0] * n)
    check_status(LIB.sigma_head_forward(n, rho, offset, sigma, log_sigma), VIB_OK,
                 "vib_sigma_head_forward")
    xs = [rho[i] + offset for i in range(n)]
    check_close("vib_sigma_head_forward sigma", sigma, [softplus(x) for x in xs], 1e-5, 0.0)
    check_close("vib_sigma_head_forward log_sigma", log_sigma,
                [math.log(softplus(x)) for x in xs])

    dsigma = farr([1.0, -2.0, 0.5, 0.25, 1.5, 3.0])
    dlog = farr([0.5, 0.5, -1.0, 2.0, 0.0, 1.0])
    drho = farr([0.25] * n)
    check_status(LIB.sigma_head_backward(n, rho, offset, dsigma, dlog, drho), VIB_OK,
                 "vib_sigma_head_backward")
    check_close("vib_sigma_head_backward", drho,
                [0.25 + dsigma[i] * sigmoid(xs[i]) + dlog[i] * sigmoid(xs[i]) / softplus(xs[i])
                 for i in range(n)])

    drho = farr([0.0] * n)
    check_status(LIB.sigma_head_backward(n, rho, offset, None, dlog, drho), VIB_OK,
                 "vib_sigma_head_backward, dsigma NULL")
    check_close("vib_sigma_head_backward, dsigma NULL", drho,
                [dlog[i] * sigmoid(xs[i]) / softplus(xs[i]) for i in range(n)])
    check_status(LIB.sigma_head_backward(n, rho, offset, None, None, drho),
                 VIB_ERR_INVALID_ARG, "vib_sigma_head_backward, both NULL")


def test_relu():
    xs = [-2.0, -0.0, 0.0, 1e-30, 0.5, 3.25, -1e-3]
    n = len(xs)
    x, y = farr(xs), farr([9.0] * n)
    check_status(LIB.relu_forward(n, x, y), VIB_OK, "vib_relu_forward")
    check(list(y) == [max(f32(v), 0.0) for v in xs], "vib_relu_forward", repr(list(y)))
    dy = farr([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    dx = farr([0.5] * n)
    check_status(LIB.relu_backward(n, x, dy, dx), VIB_OK, "vib_relu_backward")
    check(list(dx) == [0.5 + (dy[i] if x[i] > 0 else 0.0) for i in range(n)],
          "vib_relu_backward", repr(list(dx)))


def test_softmax_xent():
    rows, classes = 3, 4
    logits = farr([0.0, 1.0, 2.0, 3.0,
                   -1.5, 0.25, 0.25, 4.0,
                   80.0, 100.0, 90.0, -50.0])   # large: the max-shift must hold
    labels = iarr([3, 0, 2])
    loss, prob = farr([0.0] * rows), farr([0.0] * (rows * classes))
    check_status(LIB.softmax_xent_forward(rows, classes, logits, labels, loss, prob), VIB_OK,
                 "vib_softmax_xent_forward")
    want_loss, want_prob = [], []
    for r in range(rows):
        row = [logits[r * classes + c] for c in range(classes)]
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        want_loss.append(lse - row[labels[r]])
        want_prob.extend(math.exp(v - lse) for v in row)
    check_close("vib_softmax_xent_forward loss", loss, want_loss)
    check_close("vib_softmax_xent_forward prob", prob, want_prob)

    dloss = farr([1.0, 0.5, -2.0])
    dlogits = farr([0.125] * (rows * classes))
    check_status(LIB.softmax_xent_backward(rows, classes, prob, labels, dloss, dlogits), VIB_OK,
                 "vib_softmax_xent_backward")
    check_close("vib_softmax_xent_backward", dlogits,
                [0.125 + dloss[i // classes] * (prob[i] - (1.0 if i % classes == labels[i // classes]
                                                           else 0.0))
                 for i in range(rows * classes)])


# ---- the model, against the C path -------------------------------------------------

def batch():
    """The batch of tests/ffi/ref.c: dyadic values, exact in float and double."""
    x, labels = [], []
    for i in range(BATCH):
        labels.append(i % CLASSES)
        for j in range(IN):
            x.append(((i * 5 + j * 3) % 11 - 5) / 8.0 + (1.0 if j % CLASSES == i % CLASSES else 0.0))
    return x, labels


def run_python():
    """The model sequence through ctypes; the same records as ffi_ref prints."""
    out = {}
    xs, ys = batch()
    x, labels = farr(xs), iarr(ys)
    enc = (c_size_t * 1)(HID)
    m = c_void_p(None)
    check_status(LIB.model_create(IN, 1, enc, K, 0, None, CLASSES, SEED, byref(m)), VIB_OK,
                 "vib_model_create")
    if m.value is None:
        return None
    opt = c_void_p(None)
    try:
        check_status(LIB.model_set_beta(m, BETA), VIB_OK, "vib_model_set_beta")
        n = LIB.model_num_params(m)
        out["num_params"] = [n]
        check(LIB.model_input_dim(m) == IN and LIB.model_latent_dim(m) == K
              and LIB.model_classes(m) == CLASSES, "model size getters")
        check(LIB.model_beta(m) == f32(BETA), "vib_model_beta", repr(LIB.model_beta(m)))
        check(LIB.model_sigma_offset(m) == -5.0 and LIB.model_deterministic(m) == 0,
              "model default settings")
        buf = ctypes.create_string_buffer(128)
        n_desc = LIB.model_describe(m, buf, len(buf))
        desc = buf.value.decode()
        check(n_desc == len(desc) and LIB.model_describe(m, None, 0) == n_desc,
              "vib_model_describe returns the line's length", str(n_desc))
        check(desc.startswith("%d-%d | K=%d" % (IN, HID, K)), "vib_model_describe", repr(desc))

        check_status(LIB.adam_create(n, LR, 0.9, 0.999, 1e-8, byref(opt)), VIB_OK,
                     "vib_adam_create")
        params, grads = LIB.model_params(m), LIB.model_grads(m)
        ce, kl, loss = c_double(), c_double(), c_double()
        for s in range(STEPS):
            check_status(LIB.model_gradients(m, BATCH, x, labels, byref(ce), byref(kl),
                                             byref(loss)), VIB_OK, "vib_model_gradients")
            check_status(LIB.optim_step(opt, params, grads), VIB_OK, "vib_optim_step")
            out["step %d" % s] = [ce.value, kl.value, loss.value]
        check(LIB.optim_steps(opt) == STEPS, "vib_optim_steps", repr(LIB.optim_steps(opt)))
        check(LIB.optim_lr(opt) == f32(LR), "vib_optim_lr", repr(LIB.optim_lr(opt)))
        out["params"] = params[:n]

        prob = farr([0.0] * (BATCH * CLASSES))
        check_status(LIB.model_reseed(m, RESEED), VIB_OK, "vib_model_reseed")
        check_status(LIB.model_predict(m, BATCH, x, 0, prob), VIB_OK, "vib_model_predict 0")
        out["prob0"] = list(prob)
        check_status(LIB.model_predict(m, BATCH, x, 4, prob), VIB_OK, "vib_model_predict 4")
        out["prob4"] = list(prob)

        # python-side consistency: samples 0 uses no noise; reseeding replays the samples
        check_status(LIB.model_predict(m, BATCH, x, 0, prob), VIB_OK, "vib_model_predict 0 again")
        check(list(prob) == out["prob0"], "predict with samples 0 is deterministic")
        LIB.model_reseed(m, RESEED)
        LIB.model_predict(m, BATCH, x, 0, prob)
        check_status(LIB.model_predict(m, BATCH, x, 4, prob), VIB_OK, "vib_model_predict 4 again")
        check(list(prob) == out["prob4"], "reseed replays the samples of predict")
    finally:
        LIB.optim_free(opt)
        LIB.model_free(m)
    return out


def run_c(ref):
    """Run the C reference; its records as {key: [floats]}, or None."""
    try:
        proc = subprocess.run([ref], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as e:
        check(False, "run the C reference %s" % ref, str(e))
        return None
    if not check(proc.returncode == 0, "C reference exits 0",
                 "status %d; stderr: %s" % (proc.returncode, proc.stderr.strip())):
        return None
    out = {}
    for line in proc.stdout.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "step":
            key, vals = "step " + words[1], words[2:]
        else:
            key, vals = words[0], words[1:]
        out[key] = [int(v) if key == "num_params" else float.fromhex(v) for v in vals]
    return out


def hexes(vals):
    return [v.hex() if isinstance(v, float) else str(v) for v in vals]


def test_model(ref):
    py = run_python()
    c = run_c(ref)
    if py is None or c is None:
        return
    keys = ["num_params"] + ["step %d" % s for s in range(STEPS)] + ["params", "prob0", "prob4"]
    for key in keys:
        if key not in c:
            check(False, "C reference prints %r" % key)
            continue
        a, b = hexes(py[key]), hexes(c[key])
        bad = [i for i in range(min(len(a), len(b))) if a[i] != b[i]]
        check(len(a) == len(b) and not bad, "ctypes == C, bit for bit: %s" % key,
              "%d vs %d values; " % (len(a), len(b)) +
              "; ".join("[%d] ctypes %s, C %s" % (i, a[i], b[i]) for i in bad[:5]))

    losses = [py["step %d" % s][2] for s in range(STEPS)]
    check(all(math.isfinite(v) for v in losses) and losses[-1] < losses[0],
          "the loss decreases over %d Adam steps" % STEPS, repr(losses))
    for s in range(STEPS):
        ce, kl, loss = py["step %d" % s]
        check(close(loss, ce + f32(BETA) * kl, 1e-9, 1e-12), "step %d: loss = ce + beta kl" % s,
              "%r vs %r + %r * %r" % (loss, ce, f32(BETA), kl))
    for key in ("prob0", "prob4"):
        p = py[key]
        rows = [sum(p[r * CLASSES:(r + 1) * CLASSES]) for r in range(BATCH)]
        check(all(0.0 <= v <= 1.0 for v in p) and all(abs(t - 1.0) < 1e-5 for t in rows),
              "%s rows are distributions" % key, repr(rows))


def make_trainer(n):
    """A model, Adam, an average and a trainer over n rows in batches of 5."""
    m, opt, ema, t = c_void_p(), c_void_p(), c_void_p(), c_void_p()
    enc = (c_size_t * 1)(HID)
    check_status(LIB.model_create(IN, 1, enc, K, 0, None, CLASSES, SEED, byref(m)), VIB_OK,
                 "vib_model_create (trainer)")
    P = LIB.model_num_params(m)
    check_status(LIB.adam_create(P, LR, 0.9, 0.999, 1e-8, byref(opt)), VIB_OK, "Adam (trainer)")
    check_status(LIB.ema_create(P, 0.9, LIB.model_params(m), byref(ema)), VIB_OK,
                 "vib_ema_create")
    check_status(LIB.trainer_create(m, opt, ema, n, 5, 3, byref(t)), VIB_OK,
                 "vib_trainer_create")
    check_status(LIB.trainer_set_schedule(t, LR, 0.5, 2), VIB_OK, "vib_trainer_set_schedule")
    return m, opt, ema, t, P


def free_trainer(m, opt, ema, t):
    LIB.trainer_free(t)
    LIB.ema_free(ema)
    LIB.optim_free(opt)
    LIB.model_free(m)


def test_trainer():
    """The trainer through ctypes: a Python callback that stops an epoch, the epoch's
    means, and a checkpoint that resumes bit for bit."""
    xs, ys = batch()
    n = len(ys)
    x, labels = farr(xs), iarr(ys)
    m, opt, ema, t, P = make_trainer(n)
    check(LIB.trainer_steps_per_epoch(t) == 3, "vib_trainer_steps_per_epoch",
          str(LIB.trainer_steps_per_epoch(t)))
    seen = []

    def on_step(user, epoch, step, steps, ce, kl, loss):
        seen.append((epoch, step, steps))
        return 1 if step == 2 else 0

    cb = TRAIN_CALLBACK(on_step)  # kept alive while the trainer may call it
    check_status(LIB.trainer_set_callback(t, cb, None), VIB_OK, "vib_trainer_set_callback")
    ce, kl, loss = c_double(), c_double(), c_double()
    check_status(LIB.trainer_epoch(t, x, labels, byref(ce), byref(kl), byref(loss)), VIB_OK,
                 "vib_trainer_epoch (stopped)")
    check(seen == [(0, 1, 3), (0, 2, 3)], "the callback's arguments", repr(seen))
    check(LIB.trainer_stopped(t) == 1 and LIB.trainer_step_in_epoch(t) == 2,
          "the callback stopped the epoch after step 2")
    check(math.isfinite(ce.value) and ce.value > 0 and loss.value >= ce.value,
          "the epoch's means", "%r %r %r" % (ce.value, kl.value, loss.value))
    check_status(LIB.trainer_set_callback(t, None, None), VIB_OK, "callback removed")
    path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "ffi_ctypes_%d.ckpt" % os.getpid())
    check_status(LIB.trainer_save(t, path.encode()), VIB_OK, "vib_trainer_save")
    for _ in range(4):
        check_status(LIB.trainer_step(t, x, labels, None, None, None), VIB_OK, "vib_trainer_step")
    want = bytes(ctypes.string_at(LIB.model_params(m), 4 * P))
    want_avg = bytes(ctypes.string_at(LIB.ema_values(ema), 4 * P))
    m2, opt2, ema2, t2, _ = make_trainer(n)
    check_status(LIB.trainer_load(t2, path.encode()), VIB_OK, "vib_trainer_load")
    for _ in range(4):
        LIB.trainer_step(t2, x, labels, None, None, None)
    check(bytes(ctypes.string_at(LIB.model_params(m2), 4 * P)) == want and
          bytes(ctypes.string_at(LIB.ema_values(ema2), 4 * P)) == want_avg,
          "a checkpoint resumes bit for bit")
    check(LIB.trainer_epochs_done(t2) == 2 and LIB.trainer_steps(t2) == 6,
          "the position after resuming", "%d %d" % (LIB.trainer_epochs_done(t2),
                                                   LIB.trainer_steps(t2)))
    check_status(LIB.trainer_load(t2, b"/nonexistent/x.ckpt"), VIB_ERR_IO,
                 "vib_trainer_load of a missing file")
    os.unlink(path)
    free_trainer(m, opt, ema, t)
    free_trainer(m2, opt2, ema2, t2)
def test_api_02():
    """The functions added in 0.2 on a tiny model: the block layout, the handles' sizes,
    input gradients and an evaluation."""
    xs, ys = batch()
    x, labels = farr(xs), iarr(ys)
    enc = (c_size_t * 1)(HID)
    m = c_void_p(None)
    if not check_status(LIB.model_create(IN, 1, enc, K, 0, None, CLASSES, SEED, byref(m)),
                        VIB_OK, "0.2: vib_model_create"):
        return
    opt, ema = c_void_p(None), c_void_p(None)
    try:
        n = LIB.model_num_params(m)
        # the blocks: W [in x out] then b [1 x out] per layer, back to back, ending at n
        nb = LIB.model_num_blocks(m)
        check(nb == 6, "vib_model_num_blocks", str(nb))
        check(LIB.model_num_blocks(None) == 0, "vib_model_num_blocks(NULL)")
        want = [(VIB_BLOCK_WEIGHTS, VIB_LAYER_ENCODER, IN, HID),
                (VIB_BLOCK_BIAS, VIB_LAYER_ENCODER, 1, HID),
                (VIB_BLOCK_WEIGHTS, VIB_LAYER_HEAD, HID, 2 * K),
                (VIB_BLOCK_BIAS, VIB_LAYER_HEAD, 1, 2 * K),
                (VIB_BLOCK_WEIGHTS, VIB_LAYER_OUTPUT, K, CLASSES),
                (VIB_BLOCK_BIAS, VIB_LAYER_OUTPUT, 1, CLASSES)]
        off, rows, cols, index = c_size_t(), c_size_t(), c_size_t(), c_size_t()
        kind, role = c_int(), c_int()
        total = 0
        for b in range(nb):
            st = LIB.model_block(m, b, byref(off), byref(rows), byref(cols), byref(kind),
                                 byref(role), byref(index))
            check_status(st, VIB_OK, "vib_model_block(%d)" % b)
            got = (kind.value, role.value, rows.value, cols.value)
            check(got == want[b] and off.value == total and index.value == 0,
                  "vib_model_block(%d) layout" % b,
                  "%r at %d, wanted %r at %d" % (got, off.value, want[b], total))
            total += rows.value * cols.value
        check(total == n, "the blocks cover the parameters", "%d of %d" % (total, n))
        check_status(LIB.model_block(m, nb, None, None, None, None, None, None),
                     VIB_ERR_INVALID_ARG, "vib_model_block out of range")
        check(LIB.error_text().startswith("vib_model_block:"), "vib_model_block: last error",
              LIB.error_text())

        # the handles' lengths
        check_status(LIB.sgd_create(n, 0.1, 0.5, byref(opt)), VIB_OK, "vib_sgd_create")
        check(LIB.optim_size(opt) == n and LIB.optim_size(None) == 0, "vib_optim_size",
              str(LIB.optim_size(opt)))
        check_status(LIB.ema_create(n, 0.5, LIB.model_params(m), byref(ema)), VIB_OK,
                     "vib_ema_create")
        check(LIB.ema_size(ema) == n and LIB.ema_size(None) == 0, "vib_ema_size",
              str(LIB.ema_size(ema)))

        # input gradients: [BATCH x IN], finite, the parameter gradients untouched
        grads = LIB.model_grads(m)
        for i in range(n):
            grads[i] = 0.25
        dx, loss = farr([float("nan")] * (BATCH * IN)), c_double(-1.0)
        for samples in (0, 3):
            check_status(LIB.model_input_gradients(m, BATCH, x, labels, samples, dx,
                                                   byref(loss)), VIB_OK,
                         "vib_model_input_gradients, %d samples" % samples)
            check(len(dx) == BATCH * IN and all(math.isfinite(v) for v in dx)
                  and any(v != 0.0 for v in dx), "input gradients finite, not all 0",
                  repr(list(dx)[:6]))
            check(math.isfinite(loss.value) and loss.value > 0.0, "input gradients' loss",
                  repr(loss.value))
        check(all(grads[i] == 0.25 for i in range(n)), "input gradients leave grads alone")
        kept = list(dx)
        check_status(LIB.model_input_gradients(m, BATCH, x, labels, 1, None, None),
                     VIB_ERR_INVALID_ARG, "vib_model_input_gradients, dx NULL")
        check(list(dx) == kept, "a refused call leaves dx alone")

        # evaluation: with the model's weights and with an average that differs
        err, ce, kl, izy = c_double(), c_double(), c_double(), c_double()
        check_status(LIB.model_evaluate(m, None, BATCH, x, labels, 0, byref(err), byref(ce),
                                        byref(kl), byref(izy)), VIB_OK, "vib_model_evaluate")
        hy = math.log2(CLASSES)  # the labels i % 3 over 12 rows: uniform
        check(0.0 <= err.value <= 1.0 and ce.value > 0.0 and kl.value > 0.0
              and close(izy.value, hy - ce.value, 1e-12, 1e-12),
              "vib_model_evaluate's numbers", "%r %r %r %r" % (err.value, ce.value, kl.value,
                                                              izy.value))
        own = ce.value
        params = LIB.model_params(m)
        before = params[:n]
        moved = farr([params[i] + (0.5 if i % 2 else -0.5) for i in range(n)])
        check_status(LIB.ema_update(ema, moved), VIB_OK, "vib_ema_update")
        check_status(LIB.model_evaluate(m, ema, BATCH, x, labels, 2, None, byref(ce), None,
                                        None), VIB_OK, "vib_model_evaluate with an average")
        check(math.isfinite(ce.value) and ce.value != own, "the average's weights are used",
              "%r vs %r" % (ce.value, own))
        check(params[:n] == before, "evaluate leaves the parameters alone")
        bad = iarr([CLASSES] + ys[1:])
        check_status(LIB.model_evaluate(m, None, BATCH, x, bad, 0, byref(err), None, None,
                                        None), VIB_ERR_INVALID_ARG, "vib_model_evaluate, bad label")
        check("labels[0]" in LIB.error_text(), "evaluate names the row", LIB.error_text())
        check_status(LIB.model_evaluate(m, None, 0, x, labels, 0, None, None, None, None),
                     VIB_ERR_INVALID_ARG, "vib_model_evaluate, n = 0")
    finally:
        LIB.ema_free(ema)
        LIB.optim_free(opt)
        LIB.model_free(m)


def main(argv):
    global LIB
    if len(argv) < 2:
        sys.stderr.write("usage: %s LIBRARY [C_REFERENCE]\n" % argv[0])
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    ref = argv[2] if len(argv) > 2 else os.path.join(here, os.pardir, "build", "ffi_ref")
    try:
        LIB = Lib(os.path.abspath(argv[1]))
    except (OSError, AttributeError) as e:
        check(False, "load %s" % argv[1], str(e))
    else:
        for test in (test_version_and_status, test_backend, test_errors, test_rng, test_reparam, test_kl,
                     test_sigma_head, test_relu, test_softmax_xent, test_api_02,
                     test_trainer):
            test()
        test_model(os.path.abspath(ref))
    print("ffi_ctypes: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


LIB = None

if __name__ == "__main__":
    sys.exit(main(sys.argv))
