"""The node functions: pure functions on float32 arrays.

Forward functions return new arrays (or write `out=`, checked like an input and
writable). Backward functions ACCUMULATE (+=) into the gradient arrays they are given,
as in C, or into new zero-initialised ones when given None; gradient arrays must not
overlap each other or the inputs (ValueError). Non-finite inputs are NumericError,
values out of domain (sigma <= 0, a label out of range) InvalidArgumentError; nothing is
written on error. Math: docs/math.md.
"""

import ctypes

import numpy as np

from . import _lib
from ._lib import LIB, check, fp, i32p, array, out_array, no_alias

F32 = np.float32


def _same(a, name, like):
    return array(a, name, F32, like.shape)


def _grad(g, name, shape, inputs):
    g = out_array(g, name, shape)
    no_alias(name, g, inputs)
    return g


def _rows(a, name, cols=None):
    return array(a, name, F32, (None, cols))


# ---- reparameterization --------------------------------------------------------------

def reparam_forward(mu, sigma, v, out=None):
    """z = mu + sigma * v elementwise (any shape, all alike). Requires sigma > 0."""
    mu = array(mu, "mu", F32)
    sigma, v = _same(sigma, "sigma", mu), _same(v, "v", mu)
    z = out_array(out, "out", mu.shape, inputs=[("mu", mu), ("sigma", sigma), ("v", v)])
    check(LIB.reparam_forward(mu.size, fp(mu), fp(sigma), fp(v), fp(z)))
    return z


def reparam_backward(dz, v, dmu=None, dsigma=None):
    """dmu += dz, dsigma += dz * v. Returns (dmu, dsigma)."""
    dz = array(dz, "dz", F32)
    v = _same(v, "v", dz)
    ins = [("dz", dz), ("v", v)]
    dmu = _grad(dmu, "dmu", dz.shape, ins)
    dsigma = _grad(dsigma, "dsigma", dz.shape, ins + [("dmu", dmu)])
    check(LIB.reparam_backward(dz.size, fp(dz), fp(v), fp(dmu), fp(dsigma)))
    return dmu, dsigma


# ---- KL to the standard normal -------------------------------------------------------

def kl_std_normal(mu, sigma, out=None):
    """KL(N(mu, diag sigma^2) || N(0, I)) in nats per row of mu, sigma [rows, k]:
    0.5 sum_j (mu^2 + sigma^2 - 2 log sigma - 1), accumulated in double. Returns
    kl [rows]. Requires sigma > 0."""
    mu = _rows(mu, "mu")
    sigma = _same(sigma, "sigma", mu)
    kl = out_array(out, "out", (mu.shape[0],), inputs=[("mu", mu), ("sigma", sigma)])
    check(LIB.kl_std_normal(mu.shape[0], mu.shape[1], fp(mu), fp(sigma), fp(kl)))
    return kl


def kl_std_normal_backward(mu, sigma, dkl, dmu=None, dsigma=None):
    """dmu += dkl[r] mu, dsigma += dkl[r] (sigma - 1/sigma). Returns (dmu, dsigma)."""
    mu = _rows(mu, "mu")
    sigma = _same(sigma, "sigma", mu)
    dkl = array(dkl, "dkl", F32, (mu.shape[0],))
    ins = [("mu", mu), ("sigma", sigma), ("dkl", dkl)]
    dmu = _grad(dmu, "dmu", mu.shape, ins)
    dsigma = _grad(dsigma, "dsigma", mu.shape, ins + [("dmu", dmu)])
    check(LIB.kl_std_normal_backward(mu.shape[0], mu.shape[1], fp(mu), fp(sigma), fp(dkl),
                                     fp(dmu), fp(dsigma)))
    return dmu, dsigma


def kl_diag_gauss(mu_p, sigma_p, mu_q, sigma_q):
    """KL(P || Q) in nats of two diagonal Gaussians over k dimensions (1-D arrays of k),
    computed in double; returns a float."""
    mu_p = array(mu_p, "mu_p", F32, (None,))
    sigma_p, mu_q, sigma_q = [_same(a, n, mu_p) for a, n in
                              ((sigma_p, "sigma_p"), (mu_q, "mu_q"), (sigma_q, "sigma_q"))]
    kl = ctypes.c_double()
    check(LIB.kl_diag_gauss(mu_p.shape[0], fp(mu_p), fp(sigma_p), fp(mu_q), fp(sigma_q),
                            ctypes.byref(kl)))
    return kl.value


# ---- sigma head, ReLU ----------------------------------------------------------------

def sigma_head_forward(rho, offset):
    """sigma = softplus(rho + offset) and log(sigma) (computed stably where softplus
    underflows). Returns (sigma, log_sigma), each shaped like rho."""
    rho = array(rho, "rho", F32)
    sigma = np.empty(rho.shape, F32)
    log_sigma = np.empty(rho.shape, F32)
    check(LIB.sigma_head_forward(rho.size, fp(rho), float(offset), fp(sigma), fp(log_sigma)))
    return sigma, log_sigma


def sigma_head_backward(rho, offset, dsigma=None, dlog_sigma=None, drho=None):
    """drho += dsigma sigmoid(rho + offset) + dlog_sigma sigmoid(rho + offset) / sigma;
    dsigma or dlog_sigma may be None (not both). Returns drho."""
    rho = array(rho, "rho", F32)
    if dsigma is None and dlog_sigma is None:
        raise TypeError("libvib: sigma_head_backward needs dsigma or dlog_sigma")
    if dsigma is not None:
        dsigma = _same(dsigma, "dsigma", rho)
    if dlog_sigma is not None:
        dlog_sigma = _same(dlog_sigma, "dlog_sigma", rho)
    drho = _grad(drho, "drho", rho.shape,
                 [("rho", rho), ("dsigma", dsigma), ("dlog_sigma", dlog_sigma)])
    check(LIB.sigma_head_backward(rho.size, fp(rho), float(offset), fp(dsigma),
                                  fp(dlog_sigma), fp(drho)))
    return drho


def relu_forward(x, out=None):
    """y = max(x, 0) elementwise (out may be x: in place)."""
    x = array(x, "x", F32)
    y = out_array(out, "out", x.shape, inputs=[("x", x)])
    check(LIB.relu_forward(x.size, fp(x), fp(y)))
    return y


def relu_backward(x, dy, dx=None):
    """dx += dy where x > 0 (x the forward's input or output). Returns dx."""
    x = array(x, "x", F32)
    dy = _same(dy, "dy", x)
    dx = _grad(dx, "dx", x.shape, [("x", x), ("dy", dy)])
    check(LIB.relu_backward(x.size, fp(x), fp(dy), fp(dx)))
    return dx


# ---- softmax cross-entropy -----------------------------------------------------------

def softmax_xent_forward(logits, labels):
    """loss[r] = -log softmax(logits[r])[labels[r]] in nats (log-sum-exp) for logits
    [rows, classes] and int32 labels [rows] in [0, classes). Returns (loss [rows],
    prob [rows, classes])."""
    logits = _rows(logits, "logits")
    rows, classes = logits.shape
    labels = array(labels, "labels", np.int32, (rows,))
    loss = np.empty(rows, F32)
    prob = np.empty((rows, classes), F32)
    check(LIB.softmax_xent_forward(rows, classes, fp(logits), i32p(labels), fp(loss),
                                   fp(prob)))
    return loss, prob


def softmax_xent_backward(prob, labels, dloss, dlogits=None):
    """dlogits[r][c] += dloss[r] (prob[r][c] - [c == labels[r]]), prob from the forward
    (each in [0, 1]). Returns dlogits [rows, classes]."""
    prob = _rows(prob, "prob")
    rows, classes = prob.shape
    labels = array(labels, "labels", np.int32, (rows,))
    dloss = array(dloss, "dloss", F32, (rows,))
    dlogits = _grad(dlogits, "dlogits", prob.shape, [("prob", prob), ("dloss", dloss)])
    check(LIB.softmax_xent_backward(rows, classes, fp(prob), i32p(labels), fp(dloss),
                                    fp(dlogits)))
    return dlogits


# ---- full covariance -----------------------------------------------------------------

def chol_size(k):
    """k(k+1)/2, the packed size of a k x k lower-triangular factor."""
    return LIB.chol_size(_lib.size(k, "k"))


def _chol(mu, l):
    mu = _rows(mu, "mu")
    l = array(l, "l", F32, (mu.shape[0], chol_size(mu.shape[1])))
    return mu, l


def chol_reparam_forward(mu, l, v, out=None):
    """z = mu + L v per row: mu, v [rows, k], l [rows, k(k+1)/2] packed by rows (L[i][j],
    j <= i, at i(i+1)/2 + j). Requires L[i][i] > 0."""
    mu, l = _chol(mu, l)
    v = _same(v, "v", mu)
    z = out_array(out, "out", mu.shape, inputs=[("mu", mu), ("l", l), ("v", v)])
    check(LIB.chol_reparam_forward(mu.shape[0], mu.shape[1], fp(mu), fp(l), fp(v), fp(z)))
    return z


def chol_reparam_backward(dz, v, dmu=None, dl=None):
    """dmu += dz, dl[i][j] += dz[i] v[j] (j <= i). Returns (dmu, dl)."""
    dz = _rows(dz, "dz")
    v = _same(v, "v", dz)
    rows, k = dz.shape
    ins = [("dz", dz), ("v", v)]
    dmu = _grad(dmu, "dmu", dz.shape, ins)
    dl = _grad(dl, "dl", (rows, chol_size(k)), ins + [("dmu", dmu)])
    check(LIB.chol_reparam_backward(rows, k, fp(dz), fp(v), fp(dmu), fp(dl)))
    return dmu, dl


def kl_chol_std_normal(mu, l, out=None):
    """KL(N(mu, L L^T) || N(0, I)) in nats per row:
    0.5 (sum_ij L[i][j]^2 + |mu|^2 - k - 2 sum_i log L[i][i]). Returns kl [rows]."""
    mu, l = _chol(mu, l)
    kl = out_array(out, "out", (mu.shape[0],), inputs=[("mu", mu), ("l", l)])
    check(LIB.kl_chol_std_normal(mu.shape[0], mu.shape[1], fp(mu), fp(l), fp(kl)))
    return kl


def kl_chol_std_normal_backward(mu, l, dkl, dmu=None, dl=None):
    """dmu += dkl[r] mu, dl[i][j] += dkl[r] (L[i][j] - [i == j] / L[i][i]).
    Returns (dmu, dl)."""
    mu, l = _chol(mu, l)
    dkl = array(dkl, "dkl", F32, (mu.shape[0],))
    ins = [("mu", mu), ("l", l), ("dkl", dkl)]
    dmu = _grad(dmu, "dmu", mu.shape, ins)
    dl = _grad(dl, "dl", l.shape, ins + [("dmu", dmu)])
    check(LIB.kl_chol_std_normal_backward(mu.shape[0], mu.shape[1], fp(mu), fp(l), fp(dkl),
                                          fp(dmu), fp(dl)))
    return dmu, dl
