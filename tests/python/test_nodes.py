"""The node functions against NumPy float64 references."""

import numpy as np
import pytest

import libvib
from reference import softplus, sigmoid

RNG = np.random.default_rng(11)
R, KK, C = 5, 4, 3


def f32(*shape, lo=None):
    a = RNG.standard_normal(shape)
    if lo is not None:
        a = np.abs(a) + lo
    return a.astype(np.float32)


def d(a):
    return a.astype(np.float64)


def close(got, want, rtol=1e-5, atol=1e-6):
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_reparam():
    mu, sigma, v = f32(R, KK), f32(R, KK, lo=0.1), f32(R, KK)
    z = libvib.reparam_forward(mu, sigma, v)
    close(z, d(mu) + d(sigma) * d(v))
    out = np.empty_like(mu)
    assert libvib.reparam_forward(mu, sigma, v, out=out) is out
    libvib.reparam_forward(mu, sigma, v, out=mu)  # an output may alias an input
    close(mu, z)
    dz = f32(R, KK)
    dmu, dsig = libvib.reparam_backward(dz, v)
    close(dmu, d(dz))
    close(dsig, d(dz) * d(v))
    acc = np.ones((R, KK), np.float32)
    dmu2, _ = libvib.reparam_backward(dz, v, dmu=acc)
    assert dmu2 is acc
    close(acc, 1 + d(dz))  # accumulated
    with pytest.raises(libvib.InvalidArgumentError, match="sigma"):
        libvib.reparam_forward(mu, -sigma, v)
    with pytest.raises(libvib.ArrayShapeError):
        libvib.reparam_forward(mu, sigma[:2], v)
    with pytest.raises(ValueError, match="overlap"):
        libvib.reparam_backward(dz, v, dmu=dz)


def test_kl_std_normal():
    mu, sigma = f32(R, KK), f32(R, KK, lo=0.2)
    kl = libvib.kl_std_normal(mu, sigma)
    want = 0.5 * np.sum(d(mu) ** 2 + d(sigma) ** 2 - 2 * np.log(d(sigma)) - 1, axis=1)
    close(kl, want)
    dkl = f32(R)
    dmu, dsig = libvib.kl_std_normal_backward(mu, sigma, dkl)
    close(dmu, d(dkl)[:, None] * d(mu))
    close(dsig, d(dkl)[:, None] * (d(sigma) - 1 / d(sigma)), rtol=1e-5, atol=1e-5)
    with pytest.raises(libvib.ArrayShapeError):
        libvib.kl_std_normal(mu.ravel(), sigma.ravel())
    with pytest.raises(libvib.ArrayShapeError):
        libvib.kl_std_normal_backward(mu, sigma, dkl[:-1])
    bad = mu.copy()
    bad[1, 1] = np.inf
    with pytest.raises(libvib.NumericError):
        libvib.kl_std_normal(bad, sigma)


def test_kl_diag_gauss():
    mp, sp, mq, sq = f32(KK), f32(KK, lo=0.3), f32(KK), f32(KK, lo=0.3)
    got = libvib.kl_diag_gauss(mp, sp, mq, sq)
    want = np.sum(np.log(d(sq) / d(sp)) + (d(sp) ** 2 + (d(mp) - d(mq)) ** 2)
                  / (2 * d(sq) ** 2) - 0.5)
    assert isinstance(got, float) and got == pytest.approx(want, rel=1e-6)


def test_sigma_head():
    rho = f32(R, KK)
    sigma, log_sigma = libvib.sigma_head_forward(rho, -1.5)
    close(sigma, softplus(d(rho) - 1.5))
    close(log_sigma, np.log(softplus(d(rho) - 1.5)))
    far = np.array([-200.0, 0.0], np.float32)
    s, ls = libvib.sigma_head_forward(far, 0.0)
    assert s[0] == 0.0 and ls[0] == pytest.approx(-200.0)  # stable log
    ds, dls = f32(R, KK), f32(R, KK)
    drho = libvib.sigma_head_backward(rho, -1.5, dsigma=ds, dlog_sigma=dls)
    sg = sigmoid(d(rho) - 1.5)
    close(drho, d(ds) * sg + d(dls) * sg / softplus(d(rho) - 1.5))
    close(libvib.sigma_head_backward(rho, -1.5, dsigma=ds), d(ds) * sg)
    with pytest.raises(TypeError, match="dsigma or dlog_sigma"):
        libvib.sigma_head_backward(rho, -1.5)


def test_relu():
    x = f32(R, KK)
    close(libvib.relu_forward(x), np.maximum(d(x), 0))
    dy = f32(R, KK)
    close(libvib.relu_backward(x, dy), d(dy) * (x > 0))


def test_softmax_xent():
    logits = f32(R, C) * 10
    labels = np.array([0, 2, 1, 1, 0], np.int32)
    loss, prob = libvib.softmax_xent_forward(logits, labels)
    l64 = d(logits)
    lse = np.log(np.sum(np.exp(l64 - l64.max(1, keepdims=True)), 1)) + l64.max(1)
    close(loss, lse - l64[np.arange(R), labels])
    close(prob, np.exp(l64 - lse[:, None]))
    dloss = f32(R)
    onehot = np.eye(C)[labels]
    close(libvib.softmax_xent_backward(prob, labels, dloss),
          d(dloss)[:, None] * (d(prob) - onehot))
    with pytest.raises(libvib.InvalidArgumentError, match="label"):
        libvib.softmax_xent_forward(logits, np.array([0, 3, 0, 0, 0], np.int32))
    with pytest.raises(TypeError, match="int32"):
        libvib.softmax_xent_forward(logits, labels.astype(np.int64))


def tri(k):
    return [(i, j) for i in range(k) for j in range(i + 1)]


def unpack(l, k):
    L = np.zeros((l.shape[0], k, k))
    for p, (i, j) in enumerate(tri(k)):
        L[:, i, j] = l[:, p]
    return L


def test_chol_nodes():
    k = 3
    assert libvib.chol_size(k) == 6
    mu, v = f32(R, k), f32(R, k)
    l = f32(R, 6)
    for p, (i, j) in enumerate(tri(k)):
        if i == j:
            l[:, p] = np.abs(l[:, p]) + 0.5
    L = unpack(d(l), k)
    z = libvib.chol_reparam_forward(mu, l, v)
    close(z, d(mu) + np.einsum("rij,rj->ri", L, d(v)))
    dz = f32(R, k)
    dmu, dl = libvib.chol_reparam_backward(dz, v)
    close(dmu, d(dz))
    close(dl, np.stack([d(dz)[:, i] * d(v)[:, j] for i, j in tri(k)], 1))
    kl = libvib.kl_chol_std_normal(mu, l)
    diag = np.stack([L[:, i, i] for i in range(k)], 1)
    want = 0.5 * (np.sum(L ** 2, (1, 2)) + np.sum(d(mu) ** 2, 1) - k
                  - 2 * np.sum(np.log(diag), 1))
    close(kl, want)
    dkl = f32(R)
    dmu, dl = libvib.kl_chol_std_normal_backward(mu, l, dkl)
    close(dmu, d(dkl)[:, None] * d(mu))
    want = np.stack([d(dkl) * (L[:, i, j] - (1 / L[:, i, i] if i == j else 0))
                     for i, j in tri(k)], 1)
    close(dl, want, atol=1e-5)
    with pytest.raises(libvib.ArrayShapeError, match=r"\(5, 6\)"):
        libvib.kl_chol_std_normal(mu, l[:, :5].copy())
    bad = l.copy()
    bad[0, 0] = -1.0
    with pytest.raises(libvib.InvalidArgumentError):
        libvib.kl_chol_std_normal(mu, bad)


def test_array_checks():
    a = f32(R, KK)
    with pytest.raises(TypeError, match="float32"):
        libvib.relu_forward(d(a))
    with pytest.raises(TypeError, match="C-contiguous"):
        libvib.relu_forward(a.T)
    with pytest.raises(TypeError, match="ndarray"):
        libvib.relu_forward([1.0, 2.0])
    with pytest.raises(TypeError, match="writable"):
        ro = np.zeros_like(a)
        ro.flags.writeable = False
        libvib.relu_forward(a, out=ro)
    empty = np.zeros((0, KK), np.float32)
    assert libvib.kl_std_normal(empty, empty).shape == (0,)  # a zero count is a no-op


def test_outputs_that_partly_overlap_an_input_are_refused():
    """An output may be an input exactly (in place) but not overlap one partly: the
    library would read values it had already overwritten."""
    buf = np.linspace(0.1, 1.1, 11, dtype=np.float32)
    s = np.full(10, 0.5, np.float32)
    v = np.ones(10, np.float32)
    with pytest.raises(ValueError, match="overlaps"):
        libvib.reparam_forward(buf[:10], s, v, out=buf[1:])
    with pytest.raises(ValueError, match="overlaps"):
        libvib.relu_forward(buf[:10], out=buf[1:])
    mu = buf[:10].copy()
    want = mu + s * v
    assert np.array_equal(libvib.reparam_forward(mu, s, v, out=mu), want)  # in place
