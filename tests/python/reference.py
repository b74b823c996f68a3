"""NumPy float64 references of the VIB classifier and the node functions."""

import numpy as np


def softplus(x):
    return np.logaddexp(0.0, x)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def layers(model):
    """The model's layers in order as (role, W float64 (in, out), b float64 (out,))."""
    sd = model.state_dict()
    blocks = model.blocks()
    out = []
    for i in range(0, len(blocks), 2):
        w, b = blocks[i], blocks[i + 1]
        out.append((w.role, sd[w.name].astype(np.float64), sd[b.name].astype(np.float64)))
    return out


def forward(model, x, labels, v=None):
    """The batch-mean training loss of a diagonal model at noise v (None: z = mu) and its
    gradients with respect to the parameters (dict name -> array) and to x, all in
    float64. Returns (ce, kl, loss, prob, grads, dx)."""
    L = layers(model)
    K = model.latent_dim
    off = float(model.sigma_offset)
    beta = 0.0 if model.deterministic else float(model.beta)
    n = x.shape[0]
    acts = [x.astype(np.float64)]
    h = acts[0]
    pre = []
    for role, W, b in L:
        a = h @ W + b
        pre.append(a)
        if role == "head":
            mu, rho = a[:, :K], a[:, K:]
            sigma = softplus(rho + off)
            z = mu if (v is None or model.deterministic) else mu + sigma * v
            h = z
        elif role == "output":
            h = a
        else:
            h = np.maximum(a, 0.0)
        acts.append(h)
    logits = h
    m = logits.max(axis=1, keepdims=True)
    e = np.exp(logits - m)
    prob = e / e.sum(axis=1, keepdims=True)
    ce_rows = -np.log(prob[np.arange(n), labels])
    kl_rows = 0.5 * np.sum(mu ** 2 + sigma ** 2 - 2 * np.log(sigma) - 1, axis=1)
    ce, kl = ce_rows.mean(), kl_rows.mean()
    loss = ce + beta * kl
    # backward of the batch mean
    g = prob.copy()
    g[np.arange(n), labels] -= 1.0
    g /= n
    grads = {}
    names = [b.name for b in model.blocks()]
    for li in range(len(L) - 1, -1, -1):
        role, W, b = L[li]
        if role == "head":
            dz = g
            dmu = dz + beta * mu / n
            dsig = (dz * v if (v is not None and not model.deterministic) else 0.0) \
                + beta * (sigma - 1.0 / sigma) / n
            drho = dsig * sigmoid(rho + off)
            if model.deterministic:
                drho = np.zeros_like(rho)
            g = np.concatenate([dmu, drho], axis=1)
        elif role != "output":
            g = g * (pre[li] > 0)
        grads[names[2 * li]] = acts[li].T @ g
        grads[names[2 * li + 1]] = g.sum(axis=0)
        g = g @ W.T
    return ce, kl, loss, prob, grads, g
