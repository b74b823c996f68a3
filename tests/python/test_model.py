"""libvib.Model: configuration, parameter views and their lifetime, state_dict, files,
and the computations against a NumPy float64 reference."""

import gc
import weakref

import numpy as np
import pytest

import libvib
import reference
from conftest import IN, K, CLASSES, N


def flat(grads, model):
    return np.concatenate([grads[b.name].ravel() for b in model.blocks()])


# ---- configuration -------------------------------------------------------------------

def test_configuration(model):
    assert (model.input_dim, model.latent_dim, model.classes) == (IN, K, CLASSES)
    assert model.num_params == IN * 8 + 8 + 8 * 2 * K + 2 * K + K * CLASSES + CLASSES
    assert not model.full_cov and not model.deterministic
    assert model.beta == pytest.approx(1e-3) and model.sigma_offset == -5.0
    model.beta = 0.5
    model.sigma_offset = -2
    model.deterministic = True
    assert (model.beta, model.sigma_offset, model.deterministic) == (0.5, -2.0, True)
    assert model.describe().startswith("6-8 | K=3")
    assert "K=3" in repr(model)
    with pytest.raises(libvib.InvalidArgumentError, match="beta"):
        model.beta = -1.0
    with pytest.raises(libvib.NumericError):
        model.sigma_offset = float("inf")
    assert model.beta == 0.5 and model.sigma_offset == -2.0


def test_train_samples(tmp_path):
    m = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=2)
    assert (m.train_samples, m.train_objective) == (1, "mean")
    m.set_train_samples(12, "logmeanexp")
    assert (m.train_samples, m.train_objective) == (12, "logmeanexp")
    assert "12 train samples, log-mean-exp" in m.describe()
    with pytest.raises(libvib.InvalidArgumentError, match="samples = 0"):
        m.set_train_samples(0)
    with pytest.raises(libvib.InvalidArgumentError, match="1025"):
        m.set_train_samples(1025)
    with pytest.raises(ValueError, match="objective"):
        m.set_train_samples(2, "median")
    with pytest.raises(TypeError):
        m.set_train_samples(2.0)
    assert (m.train_samples, m.train_objective) == (12, "logmeanexp")  # unchanged
    m.save(tmp_path / "m.vibm")
    with libvib.Model.load(tmp_path / "m.vibm") as back:
        assert (back.train_samples, back.train_objective) == (12, "logmeanexp")
    m.close()


def test_mixture_marginal(tmp_path):
    """Model(components=M): the count, the three blocks after the head (names, shapes,
    offsets, their starting values), the description, a file round trip, gradients that
    reach the marginal, and the range of M."""
    plain = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=2)
    m = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=2, components=5)
    assert (plain.prior_components, m.prior_components) == (0, 5)
    bl = m.blocks()
    assert [b.name for b in bl] == [
        "encoder.0.weight", "encoder.0.bias", "head.weight", "head.bias", "prior.means",
        "prior.scales", "prior.logits", "output.weight", "output.bias"]
    assert [(b.shape, b.kind, b.role, b.index) for b in bl[4:7]] == [
        ((5, K), "means", "prior", 0), ((5, K), "scales", "prior", 0),
        ((5,), "logits", "prior", 0)]
    assert m.num_params == plain.num_params + 2 * 5 * K + 5
    assert bl[4].offset == bl[3].offset + 2 * K and bl[7].offset == bl[6].offset + 5
    sd, sd_plain = m.state_dict(), plain.state_dict()
    for name in sd_plain:  # the layers are the plain model's, seed for seed
        np.testing.assert_array_equal(sd[name], sd_plain[name])
    # unit scales (softplus(raw) = 1), equal weights, means drawn from N(0, I)
    np.testing.assert_allclose(np.log1p(np.exp(sd["prior.scales"].astype(np.float64))), 1.0,
                               rtol=1e-6)
    assert not sd["prior.logits"].any()
    assert 0.2 < sd["prior.means"].std() < 3.0 and len(np.unique(sd["prior.means"])) == 5 * K
    assert "r(z): 5-Gaussian mixture" in m.describe()

    rng = np.random.default_rng(0)
    x = rng.random((N, IN), dtype=np.float32)
    y = rng.integers(0, CLASSES, N).astype(np.int32)
    m.set_train_samples(3)
    ce, kl, loss = m.gradients(x, y)
    assert np.isfinite(kl) and loss == pytest.approx(ce + m.beta * kl, rel=1e-6)
    g = m.grads
    for b in bl[4:7]:
        assert np.abs(g[b.offset:b.offset + int(np.prod(b.shape))]).max() > 0, b.name
    assert np.isfinite(m.evaluate(x, y, samples=2).kl_bits)

    m.save(tmp_path / "mix.vibm")
    with libvib.Model.load(tmp_path / "mix.vibm") as back:
        assert back.prior_components == 5 and back.train_samples == 3
        np.testing.assert_array_equal(back.params, m.params)
    with pytest.raises(libvib.InvalidArgumentError, match="1025"):
        libvib.Model(IN, K, CLASSES, encoder=(8,), components=1025)
    with pytest.raises(ValueError):
        libvib.Model(IN, K, CLASSES, encoder=(8,), components=-1)
    m.close()
    plain.close()


def test_create_errors():
    with pytest.raises(libvib.InvalidArgumentError, match="vib_model_create"):
        libvib.Model(IN, K, 0)
    with pytest.raises(ValueError):
        libvib.Model(IN, K, CLASSES, encoder=(-1,))
    with pytest.raises(TypeError):
        libvib.Model(IN, 2.5, CLASSES)
    with pytest.raises(libvib.OutOfMemoryError) as e:
        libvib.Model(IN, K, CLASSES, encoder=(8,)).reserve(2 ** 40)
    assert isinstance(e.value, MemoryError) and e.value.status == -2


def test_blocks_and_names():
    m = libvib.Model(IN, K, CLASSES, encoder=(8, 5), decoder=(4,), seed=2)
    bl = m.blocks()
    assert [b.name for b in bl] == [
        "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "head.weight", "head.bias", "decoder.0.weight", "decoder.0.bias",
        "output.weight", "output.bias"]
    assert [b.shape for b in bl] == [(6, 8), (8,), (8, 5), (5,), (5, 6), (6,), (3, 4), (4,),
                                     (4, 3), (3,)]
    off = 0
    for b in bl:
        assert b.offset == off
        off += int(np.prod(b.shape))
        assert b.kind == ("weight" if b.name.endswith("weight") else "bias")
    assert off == m.num_params
    assert (bl[2].role, bl[2].index, bl[8].role) == ("encoder", 1, "output")
    full = libvib.Model(IN, 2, CLASSES, encoder=(), full_cov=True)
    assert full.full_cov
    assert full.blocks()[0].shape == (IN, 2 + 3)  # mu and the packed factor
    assert full.blocks()[0].name == "head.weight"


# ---- views and lifetime --------------------------------------------------------------

def test_params_are_views(model):
    p, g = model.params, model.grads
    assert p.dtype == np.float32 and p.shape == (model.num_params,) and p.flags.writeable
    assert g.shape == p.shape
    sd = model.state_dict()
    p[0] = 42.0
    assert sd["encoder.0.weight"][0, 0] == 42.0
    sd["output.bias"][:] = 7.0
    assert np.all(model.params[-CLASSES:] == 7.0)
    assert np.shares_memory(model.params, p)


def test_views_keep_the_model_alive(data):
    x, y = data
    m = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=3)
    m.gradients(x, y)
    want_p, want_g = m.params.copy(), m.grads.copy()
    p, g, sd = m.params, m.grads, m.state_dict()
    handle = weakref.ref(m._handle)
    del m
    gc.collect()
    junk = [libvib.Model(IN, K, CLASSES, encoder=(8,), seed=s) for s in range(5)]  # reuse
    assert handle() is not None
    assert np.array_equal(p, want_p) and np.array_equal(g, want_g)
    assert np.array_equal(sd["output.bias"], want_p[-CLASSES:])
    p[:] = 1.0  # still the model's memory, still writable
    del p, g
    gc.collect()
    assert handle() is not None  # the state_dict views still hold it
    del sd
    gc.collect()
    assert handle() is None  # freed with the last view
    del junk


def test_close(data):
    x, y = data
    m = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=3)
    p = m.params
    want = p.copy()
    handle = weakref.ref(m._handle)
    m.close()
    assert m.closed
    m.close()  # twice is fine
    for call in (lambda: m.beta, lambda: m.params, lambda: m.predict(x),
                 lambda: m.state_dict(), lambda: m.save("/tmp/never")):
        with pytest.raises(ValueError, match="model is closed"):
            call()
    assert repr(m) == "<libvib.Model (closed)>"
    gc.collect()
    assert handle() is not None and np.array_equal(p, want)  # deferred: p holds it
    del p
    gc.collect()
    assert handle() is None
    with libvib.Model(IN, K, CLASSES, encoder=(8,)) as m2:
        h2 = weakref.ref(m2._handle)
        m2.predict(x)
    assert m2.closed
    gc.collect()
    assert h2() is None  # no view: freed by close itself


# ---- state_dict and files ------------------------------------------------------------

def test_state_dict_round_trip(model, data):
    x, y = data
    other = libvib.Model(IN, K, CLASSES, encoder=(8,), seed=99)
    assert not np.array_equal(other.params, model.params)
    sd = {k: v.copy() for k, v in model.state_dict().items()}
    other.load_state_dict(sd)
    assert np.array_equal(other.params, model.params)
    other.deterministic = model.deterministic = True
    assert np.array_equal(other.predict(x), model.predict(x))


def test_load_state_dict_errors(model):
    sd = {k: v.copy() for k, v in model.state_dict().items()}
    before = model.params.copy()
    bad = dict(sd)
    del bad["head.bias"]
    with pytest.raises(ValueError, match="missing.*head.bias"):
        model.load_state_dict(bad)
    bad = dict(sd, extra=np.zeros(1, np.float32))
    with pytest.raises(ValueError, match="unexpected.*extra"):
        model.load_state_dict(bad)
    bad = dict(sd)
    bad["head.weight"] = np.zeros((6, 8), np.float32)
    with pytest.raises(libvib.ArrayShapeError, match="head.weight") as e:
        model.load_state_dict(bad)
    assert isinstance(e.value, ValueError) and isinstance(e.value, TypeError)
    bad = dict(sd)
    bad["output.bias"] = np.zeros(CLASSES, np.float64)
    with pytest.raises(TypeError, match="float32"):
        model.load_state_dict(bad)
    bad["output.bias"] = [0.0, 0.0, 0.0]
    with pytest.raises(TypeError):
        model.load_state_dict(bad)
    assert np.array_equal(model.params, before)  # nothing written on error
    # a strided or Fortran-ordered array of the right dtype and shape is copied
    sd["encoder.0.weight"] = np.asfortranarray(sd["encoder.0.weight"] + 1)
    model.load_state_dict(sd)
    assert np.array_equal(model.state_dict()["encoder.0.weight"], sd["encoder.0.weight"])


def test_save_and_load(model, data, tmp_path):
    x, _ = data
    model.beta = 0.25
    path = tmp_path / "m.vibm"
    model.save(path)
    m2 = libvib.Model.load(str(path))
    assert np.array_equal(m2.params, model.params)
    assert (m2.beta, m2.latent_dim, m2.describe()) == (0.25, K, model.describe())
    model.deterministic = m2.deterministic = True
    assert np.array_equal(m2.predict(x), model.predict(x))
    with pytest.raises(libvib.LibvibIOError) as e:
        libvib.Model.load(tmp_path / "missing.vibm")
    assert isinstance(e.value, OSError) and "missing.vibm" in str(e.value)
    assert e.value.status == -3
    junk = tmp_path / "junk.vibm"
    junk.write_bytes(b"not a model file at all" * 10)
    with pytest.raises(libvib.FormatError, match="junk.vibm") as e:
        libvib.Model.load(junk)
    assert isinstance(e.value, ValueError) and e.value.status == -4
    with pytest.raises(libvib.LibvibIOError):
        model.save(tmp_path / "no" / "such" / "dir.vibm")


# ---- computations against NumPy ------------------------------------------------------

def test_deterministic_against_numpy(model, data):
    x, y = data
    model.deterministic = True
    ce, kl, loss, prob, grads, dx = reference.forward(model, x, y)
    got = model.gradients(x, y)
    assert got[1] == 0.0
    assert got[0] == pytest.approx(ce, rel=1e-5) and got[2] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(model.grads, flat(grads, model), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, samples=0), prob, rtol=1e-5, atol=1e-7)
    gbefore = model.grads.copy()
    pbefore = model.params.copy()
    dxl, l2 = model.input_gradients(x, y, samples=0)
    assert dxl.shape == x.shape and dxl.dtype == np.float32
    assert l2 == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(dxl, dx, rtol=1e-4, atol=1e-7)
    assert np.array_equal(model.grads, gbefore) and np.array_equal(model.params, pbefore)
    mu, sigma = model.encode(x)
    assert np.all(sigma == 0)
    ev = model.evaluate(x, y, samples=0)
    assert ev.error == pytest.approx(np.mean(prob.argmax(1) != y))
    assert ev.ce_bits == pytest.approx(ce / np.log(2), rel=1e-5)
    assert ev.kl_bits == 0.0
    hy = np.log2(CLASSES)  # the labels are balanced
    assert ev.izy_bits == pytest.approx(hy - ev.ce_bits, rel=1e-5)


def test_stochastic_against_numpy(model, data):
    x, y = data
    model.beta = 0.1
    model.sigma_offset = -1.0
    mu, sigma = model.encode(x)
    L = reference.layers(model)
    h = np.maximum(x.astype(np.float64) @ L[0][1] + L[0][2], 0) @ L[1][1] + L[1][2]
    np.testing.assert_allclose(mu, h[:, :K], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, reference.softplus(h[:, K:] - 1.0), rtol=1e-5)
    mu2, chol = model.encode_chol(x)
    assert np.array_equal(mu2, mu) and chol.shape == (N, 6)
    assert np.array_equal(chol[:, [0, 2, 5]], sigma) and np.all(chol[:, [1, 3, 4]] == 0)
    # the KL does not depend on the noise: the batch mean of the reference's rows
    _, kl, _, _, _, _ = reference.forward(model, x, y)
    ce1, kl1, loss1 = model.gradients(x, y)
    assert kl1 == pytest.approx(kl, rel=1e-5)
    assert loss1 == pytest.approx(ce1 + 0.1 * kl1, rel=1e-6)
    ev = model.evaluate(x, y, samples=4)
    assert ev.kl_bits == pytest.approx(kl / np.log(2), rel=1e-5)
    # the same seed, the same draws: bit for bit
    model.reseed(5)
    a = model.gradients(x, y), model.grads.copy(), model.predict(x, samples=3)
    model.reseed(5)
    b = model.gradients(x, y), model.grads.copy(), model.predict(x, samples=3)
    assert a[0] == b[0] and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    prob = model.predict(x)
    assert prob.shape == (N, CLASSES)
    np.testing.assert_allclose(prob.sum(1), 1.0, rtol=1e-5)
    out = np.empty((N, CLASSES), np.float32)
    assert model.predict(x, samples=0, out=out) is out
    dx, loss = model.input_gradients(x, y, samples=3)
    assert dx.shape == x.shape and np.isfinite(loss)


def test_full_cov_model(data):
    x, y = data
    m = libvib.Model(IN, 2, CLASSES, encoder=(8,), full_cov=True, seed=4)
    mu, chol = m.encode_chol(x)
    assert mu.shape == (N, 2) and chol.shape == (N, 3)
    assert np.all(chol[:, [0, 2]] > 0)
    _, sigma = m.encode(x)
    np.testing.assert_allclose(sigma[:, 1], np.sqrt(chol[:, 1] ** 2 + chol[:, 2] ** 2),
                               rtol=1e-5)
    ce, kl, loss = m.gradients(x, y)
    kl_rows = libvib.kl_chol_std_normal(mu, chol)
    assert kl == pytest.approx(float(np.mean(kl_rows.astype(np.float64))), rel=1e-5)


def test_evaluate_with_ema(model, data):
    x, y = data
    ema = libvib.EMA(model.params, 0.99)
    a = model.evaluate(x, y, samples=0)
    b = model.evaluate(x, y, samples=0, ema=ema)
    assert a == b
    model.params[:] = 0.0  # the average still holds the old weights
    assert model.evaluate(x, y, samples=0, ema=ema) == a
    with pytest.raises(libvib.InvalidArgumentError):
        model.evaluate(x, y, ema=libvib.EMA(np.zeros(3, np.float32), 0.9))


# ---- array checks and errors ---------------------------------------------------------

def test_array_checks(model, data):
    x, y = data
    with pytest.raises(TypeError, match="dtype float32.*float64"):
        model.gradients(x.astype(np.float64), y)
    with pytest.raises(TypeError, match="C-contiguous"):
        model.predict(np.asfortranarray(np.ones((4, IN), np.float32)))
    with pytest.raises(TypeError, match="C-contiguous"):
        model.predict(np.ones((8, IN), np.float32)[::2])
    with pytest.raises(libvib.ArrayShapeError, match=r"\(\*, 6\)"):
        model.predict(np.ones((4, IN + 1), np.float32))
    with pytest.raises(libvib.ArrayShapeError):
        model.predict(np.ones(IN, np.float32))
    with pytest.raises(libvib.ArrayShapeError, match="at least one row"):
        model.predict(np.ones((0, IN), np.float32))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        model.predict(x.tolist())
    with pytest.raises(TypeError, match="int32"):
        model.gradients(x, y.astype(np.int64))
    with pytest.raises(libvib.ArrayShapeError, match="labels"):
        model.gradients(x, y[:-1])
    ro = np.empty((N, CLASSES), np.float32)
    ro.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        model.predict(x, out=ro)
    with pytest.raises(libvib.ArrayShapeError):
        model.predict(x, out=np.empty((N, CLASSES + 1), np.float32))
    # a read-only input is fine: the library only reads it
    xr = x.copy()
    xr.flags.writeable = False
    model.predict(xr)


def test_library_errors(model, data):
    x, y = data
    bad = y.copy()
    bad[3] = CLASSES
    with pytest.raises(libvib.InvalidArgumentError, match="label") as e:
        model.gradients(x, bad)
    assert e.value.status == -1 and e.value.message == str(e.value)
    xn = x.copy()
    xn[2, 1] = np.nan
    before = model.grads.copy()
    with pytest.raises(libvib.NumericError) as e:
        model.predict(xn)
    assert isinstance(e.value, ArithmeticError) and e.value.status == -5
    with pytest.raises(libvib.InvalidArgumentError, match="samples"):
        model.predict(x, samples=100001)
    assert np.array_equal(model.grads, before)


def test_integer_arguments():
    with pytest.raises(TypeError, match=r"sequence of ints, e.g. \(8,\)"):
        libvib.Model(IN, K, CLASSES, encoder=8)
    with pytest.raises(ValueError, match="2\\^64"):
        libvib.Model(IN, K, CLASSES, encoder=(8,), seed=2 ** 64)
    with pytest.raises(TypeError):
        libvib.Model(IN, K, CLASSES, encoder=(8,), seed=True)
    m = libvib.Model(IN, K, CLASSES, encoder=(np.int64(8),), seed=2 ** 64 - 1)
    m.reseed(np.uint64(3))


def test_close_from_another_thread_during_a_call():
    """close() while another thread's call runs frees nothing under it: the call holds
    the handle until it returns."""
    import threading
    import time
    m = libvib.Model(784, 16, 10, encoder=(256,), seed=3)
    x = np.random.default_rng(1).random((20000, 784), dtype=np.float32)
    got = []
    calling = threading.Event()

    def worker():
        calling.set()
        got.append(m.predict(x, samples=4))  # about 0.1 s in the library

    t = threading.Thread(target=worker)
    t.start()
    calling.wait()
    time.sleep(0.02)  # inside the C call by now
    m.close()
    gc.collect()
    t.join()
    assert got and got[0].shape == (20000, 10)
    assert np.allclose(got[0].sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError):
        m.predict(x[:1])
