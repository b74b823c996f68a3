"""Adam, SGD, EMA and the learning-rate staircase against NumPy references."""

import gc
import weakref

import numpy as np
import pytest

import libvib


def arrays(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(n).astype(np.float32),
            [rng.standard_normal(n).astype(np.float32) for _ in range(4)])


def test_adam_against_numpy():
    p, gs = arrays()
    opt = libvib.Adam(p.size, lr=0.01, beta1=0.8, beta2=0.99, eps=1e-6)
    assert (opt.size, opt.steps) == (50, 0) and opt.lr == pytest.approx(0.01)
    ref = p.astype(np.float64)
    m = np.zeros(50)
    v = np.zeros(50)
    for t, g in enumerate(gs, 1):
        opt.step(p, g)
        g = g.astype(np.float64)
        m = 0.8 * m + 0.2 * g
        v = 0.99 * v + 0.01 * g * g
        ref -= 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.99 ** t)) + 1e-6)
    assert opt.steps == 4
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-6)
    opt.lr = 0.5
    assert opt.lr == 0.5
    with pytest.raises(libvib.InvalidArgumentError, match="lr"):
        opt.lr = 0.0
    assert "Adam" in repr(opt)


def test_sgd_against_numpy():
    p, gs = arrays(seed=1)
    opt = libvib.SGD(p.size, lr=0.1, momentum=0.9)
    ref = p.astype(np.float64)
    u = np.zeros(50)
    for g in gs:
        opt.step(p, g)
        u = 0.9 * u + g
        ref -= 0.1 * u
    np.testing.assert_allclose(p, ref, rtol=1e-5, atol=1e-6)
    plain = libvib.SGD(p.size, 0.5)
    q = p.copy()
    plain.step(q, gs[0])
    np.testing.assert_allclose(q, p - np.float32(0.5) * gs[0], rtol=1e-6)


def test_optimizer_of_a_model(model, data):
    x, y = data
    opt = libvib.Adam(model, lr=1e-2)
    assert opt.size == model.num_params
    before = model.params.copy()
    model.gradients(x, y)
    opt.step(model.params, model.grads)
    assert not np.array_equal(model.params, before)


def test_optimizer_errors():
    with pytest.raises(libvib.InvalidArgumentError, match="vib_adam_create"):
        libvib.Adam(10, lr=-1.0)
    with pytest.raises(libvib.InvalidArgumentError, match="momentum"):
        libvib.SGD(10, 0.1, momentum=1.0)
    with pytest.raises(libvib.OutOfMemoryError):
        libvib.Adam(2 ** 61)
    opt = libvib.Adam(10)
    p = np.ones(10, np.float32)
    g = np.ones(10, np.float32)
    with pytest.raises(TypeError, match="float32"):
        opt.step(p.astype(np.float64), g)
    with pytest.raises(libvib.ArrayShapeError):
        opt.step(p, np.ones(11, np.float32))
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        opt.step(ro, g)
    with pytest.raises(ValueError, match="overlap"):
        opt.step(p, p)
    bad = g.copy()
    bad[4] = np.inf
    with pytest.raises(libvib.NumericError):
        opt.step(p, bad)
    assert np.all(p == 1.0) and opt.steps == 0  # refused before anything was written
    opt.close()
    with pytest.raises(ValueError, match="optimizer is closed"):
        opt.step(p, g)


def test_ema_against_numpy():
    p, gs = arrays(seed=2)
    ema = libvib.EMA(p, 0.9)
    assert ema.size == 50
    vals = ema.values
    assert not vals.flags.writeable and np.array_equal(vals, p)
    ref = p.astype(np.float64)
    for t, g in enumerate(gs):
        ema.update(g)
        d = min(0.9, (1 + t) / (10 + t))
        ref = d * ref + (1 - d) * g
    np.testing.assert_allclose(ema.values, ref, rtol=1e-5, atol=1e-6)
    assert np.shares_memory(vals, ema.values)  # the view follows the updates
    with pytest.raises(ValueError):
        vals[0] = 1.0
    handle = weakref.ref(ema._handle)
    want = vals.copy()
    ema.close()
    gc.collect()
    assert handle() is not None and np.array_equal(vals, want)
    del vals
    gc.collect()
    assert handle() is None


def test_ema_errors():
    with pytest.raises(libvib.InvalidArgumentError, match="decay"):
        libvib.EMA(np.zeros(4, np.float32), 1.0)
    with pytest.raises(TypeError):
        libvib.EMA(np.zeros(4), 0.5)
    with pytest.raises(libvib.ArrayShapeError):
        libvib.EMA(np.zeros((2, 2), np.float32), 0.5)
    ema = libvib.EMA(np.zeros(4, np.float32), 0.5)
    with pytest.raises(libvib.NumericError):
        ema.update(np.array([0, np.nan, 0, 0], np.float32))
    assert np.all(ema.values == 0)
    with pytest.raises(libvib.ArrayShapeError):
        ema.update(np.zeros(5, np.float32))


def test_step_with_ema_is_step_then_update():
    p, gs = arrays(seed=3)
    q = p.copy()
    a, b = libvib.Adam(50, 0.01), libvib.Adam(50, 0.01)
    ea, eb = libvib.EMA(p, 0.95), libvib.EMA(p, 0.95)
    for g in gs:
        a.step(p, g, ema=ea)
        b.step(q, g)
        eb.update(q)
    assert np.array_equal(p, q) and np.array_equal(ea.values, eb.values)
    with pytest.raises(libvib.InvalidArgumentError):
        a.step(p, gs[0], ema=libvib.EMA(np.zeros(3, np.float32), 0.5))


def test_lr_staircase():
    assert libvib.lr_staircase(1e-3, 0.5, 10, 9) == pytest.approx(1e-3)
    assert libvib.lr_staircase(1e-3, 0.5, 10, 10) == pytest.approx(5e-4)
    assert libvib.lr_staircase(1e-4, 0.97, 1200, 3600) == pytest.approx(1e-4 * 0.97 ** 3,
                                                                         rel=1e-6)
    with pytest.raises(libvib.InvalidArgumentError):
        libvib.lr_staircase(1e-3, 1.5, 10, 0)
    with pytest.raises(libvib.InvalidArgumentError):
        libvib.lr_staircase(1e-3, 0.5, 0, 0)
    with pytest.raises(ValueError):
        libvib.lr_staircase(1e-3, 0.5, 10, -1)
