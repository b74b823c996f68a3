"""PyTorch as an external oracle of libvib's model.

For small models (a diagonal and a full-covariance head, encoders of 0 to 2 hidden
layers, decoders with and without a hidden layer, beta > 0, deterministic mode), the
same network is built in PyTorch from the model's state_dict (torch.nn.Linear layers
holding the same float32 weights, transposed to torch's [out, in]) and run on the same
batch with the same noise v. libvib's loss (Model.gradients), every parameter gradient
(Model.grads, block by block through Model.blocks) and the input gradient
(Model.input_gradients) must agree with torch.autograd's; so must those of several
draws per example (Model.set_train_samples, both objectives), on the same draws, and
those of a model whose marginal is a learned mixture (Model(components=M)), where the
rate is the draws' estimate log e(z|x) - log r(z) and the mixture's means, scales and
logits are parameters too.

The noise: a model draws its training noise with vib_rng_normal from its own stream,
seeded NOISE_SEED(seed) = seed ^ 0x6a09e667f3bcc909 by vib_model_reseed (lib/model.c).
The package has no generator of its own, so training_noise() below makes the same draw
through the library's vib_rng_create and vib_rng_normal by ctypes;
test_training_noise_is_the_models_draw reads the noise a model used back from its
gradients (no decoder hidden layer, batches of one row) and checks that it is that draw.

The oracle runs in float64 on the same float32 weights, inputs and noise, so it is the
model's exact math at those values and a difference measures libvib's float32 rounding
alone. That rounding is that of dot products of a few dozen terms through a few layers:
a few float32 ulps of the largest gradients (measured here: at most 3e-7 of a block's
largest entry, and torch's own float32 run is off by as much). The tests allow
GRAD_TOL = 1e-5 of the largest entry of each block (each half of the head's: the mean
columns, and the scale's, whose gradients can be orders of magnitude smaller), so a
different kernel set or thread count cannot trip them, while a wrong term of the chain
rule stands far above that line (tried by breaking the library: a KL gradient weighted
1% off, the KL's backward or its d log sigma term left out, a full head's off-diagonal
gradient left out: each fails here). The losses are sums in double of float32 values:
LOSS_RTOL = 1e-6 (measured: below 1e-7).

The training run in Python against the same run in C is test_train_c.py.

Debian's python3-torch serves the system interpreter (/usr/bin/python3). Without torch
these tests are skipped, except under CI (CI set, as .ci/run runs), where .ci/deps has
installed it: there a missing torch is an error, not a silent skip.
"""

import ctypes
import os

import numpy as np
import pytest

import libvib

try:
    import torch
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("PyTorch is not installed (Debian: python3-torch for /usr/bin/python3)",
                allow_module_level=True)
F = torch.nn.functional

GRAD_TOL = 1e-5
LOSS_RTOL = 1e-6

# lib/model.c: #define NOISE_SEED(seed) ((seed) ^ 0x6a09e667f3bcc909ULL)
NOISE_XOR = 0x6A09E667F3BCC909


# ---- the library itself, for what the package does not wrap --------------------------

def library_path():
    """The file the package loaded the shared library from (a bare name when the system's
    loader found it)."""
    return libvib.library_path


_rng_lib = None


def _rng_functions():
    """vib_rng_create/normal/free by ctypes (dlopen of the same file gives the same
    loaded library the package uses)."""
    global _rng_lib
    if _rng_lib is None:
        lib = ctypes.CDLL(library_path())
        lib.vib_rng_create.restype = ctypes.c_int
        lib.vib_rng_create.argtypes = [ctypes.c_uint64, ctypes.POINTER(ctypes.c_void_p)]
        lib.vib_rng_normal.restype = ctypes.c_int
        lib.vib_rng_normal.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_float,
                                       ctypes.c_float, ctypes.c_void_p]
        lib.vib_rng_free.restype = None
        lib.vib_rng_free.argtypes = [ctypes.c_void_p]
        _rng_lib = lib
    return _rng_lib


def training_noise(seed, count):
    """The first `count` normals a model's training draws after model.reseed(seed): the
    stream of lib/model.c's NOISE_SEED(seed), drawn as vib_model_gradients draws it (one
    vib_rng_normal call of batch * K values per call; the generator carries nothing
    between calls, so consecutive calls continue one sequence)."""
    lib = _rng_functions()
    rng = ctypes.c_void_p()
    assert lib.vib_rng_create((seed ^ NOISE_XOR) & (2**64 - 1), ctypes.byref(rng)) == 0
    try:
        out = np.empty(count, dtype=np.float32)
        assert lib.vib_rng_normal(rng, count, 0.0, 1.0,
                                  out.ctypes.data_as(ctypes.c_void_p)) == 0
    finally:
        lib.vib_rng_free(rng)
    return out


# ---- the same network in PyTorch ------------------------------------------------------

class TorchVIB(torch.nn.Module):
    """libvib's model in PyTorch (docs/math.md, "The VIB model" and "Full covariance"):
    encoder ReLU layers, the head [-> K + S] giving mu and the scale's raw values,
    z = mu + sigma v (sigma = softplus(rho + offset)) or mu + L v (L packed by rows,
    i(i+1)/2 + j, its diagonal through the same softplus), decoder ReLU layers reading z,
    the output layer; loss = mean over rows of CE + beta KL, KL to N(0, I) in closed form,
    or, with a mixture marginal r(z) (docs/math.md, "A learned mixture marginal"), the
    draws' mean of log e(z|x) - log r(z), both densities without K/2 log 2 pi."""

    def __init__(self, model, dtype):
        super().__init__()
        sd = model.state_dict()
        self.k = model.latent_dim
        self.full = model.full_cov
        self.beta = float(model.beta)
        self.offset = float(model.sigma_offset)
        self.deterministic = bool(model.deterministic)
        self.components = model.prior_components
        if self.components:
            # r(z) = sum_m softmax(logits)_m N(z; means_m, diag softplus(scales_m)^2)
            self.prior = torch.nn.ParameterDict({
                part: torch.nn.Parameter(torch.tensor(np.asarray(sd["prior." + part]),
                                                      dtype=dtype))
                for part in ("means", "scales", "logits")})

        def linears(prefix):
            layers, i = [], 0
            while f"{prefix}.{i}.weight" in sd:
                layers.append(self._linear(sd, f"{prefix}.{i}", dtype))
                i += 1
            return torch.nn.ModuleList(layers)

        self.encoder = linears("encoder")
        self.head = self._linear(sd, "head", dtype)
        self.decoder = linears("decoder")
        self.output = self._linear(sd, "output", dtype)
        if self.full:
            rows, cols = np.tril_indices(self.k)  # row-major: index i(i+1)/2 + j
            self.register_buffer("on_diag", torch.tensor(rows == cols))
            # L [K x K] gathered from the packed values and one zero past their end
            where = np.full((self.k, self.k), len(rows))
            where[rows, cols] = np.arange(len(rows))
            self.register_buffer("gather", torch.tensor(where.ravel()))

    @staticmethod
    def _linear(sd, name, dtype):
        w = np.asarray(sd[name + ".weight"])  # libvib: [in x out], y = x W + b
        layer = torch.nn.Linear(w.shape[0], w.shape[1], dtype=dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(w.T.copy(), dtype=dtype))
            layer.bias.copy_(torch.tensor(np.asarray(sd[name + ".bias"]), dtype=dtype))
        return layer

    def named_grads(self):
        """Each parameter's gradient under libvib's block name, in libvib's shape."""
        out = {}
        for prefix, layers in (("encoder", self.encoder), ("decoder", self.decoder)):
            for i, layer in enumerate(layers):
                out[f"{prefix}.{i}.weight"] = layer.weight.grad.T
                out[f"{prefix}.{i}.bias"] = layer.bias.grad
        for name in ("head", "output"):
            layer = getattr(self, name)
            out[name + ".weight"] = layer.weight.grad.T
            out[name + ".bias"] = layer.bias.grad
        if self.components:
            for part, p in self.prior.items():
                # a deterministic model leaves the marginal out of the loss
                out["prior." + part] = p.grad if p.grad is not None else torch.zeros_like(p)
        return {name: g.detach().numpy() for name, g in out.items()}

    def log_r(self, z):
        """log r(z) [batch] of the mixture, without K/2 log 2 pi."""
        c, s = self.prior["means"], F.softplus(self.prior["scales"])
        a = (F.log_softmax(self.prior["logits"], 0) - torch.log(s).sum(1)
             - 0.5 * (((z.unsqueeze(1) - c) / s) ** 2).sum(2))  # [batch x M]
        return torch.logsumexp(a, 1)

    def forward(self, x, labels, v, objective="mean"):
        """(ce, kl, loss): the batch means; v [batch x K] (ignored when deterministic), or
        [S x batch x K]: S draws per row, the row's CE the draws' mean or log-mean-exp
        (Model.set_train_samples)."""
        if v.dim() == 3:
            draws = [self._ce_kl(x, labels, v[d]) for d in range(v.shape[0])]
            ce_d = torch.stack([c for c, _ in draws])  # [S x batch]
            kl = torch.stack([k for _, k in draws]).mean(0)  # the same S times in closed form
            if objective == "mean":
                ce = ce_d.mean(0)
            else:
                ce = -(torch.logsumexp(-ce_d, 0) - np.log(v.shape[0]))
        else:
            ce, kl = self._ce_kl(x, labels, v)
        beta = 0.0 if self.deterministic else self.beta
        return ce.mean(), kl.mean(), (ce + beta * kl).mean()

    def _ce_kl(self, x, labels, v):
        """Each row's CE and KL for one draw v [batch x K]."""
        h = x
        for layer in self.encoder:
            h = F.relu(layer(h))
        head = self.head(h)
        mu, raw = head[:, :self.k], head[:, self.k:]
        if self.deterministic:
            z, kl = mu, torch.zeros(len(x), dtype=x.dtype)
        elif not self.full:
            sigma = F.softplus(raw + self.offset)
            z = mu + sigma * v
            if self.components:
                kl = -torch.log(sigma).sum(1) - 0.5 * (v**2).sum(1) - self.log_r(z)
            else:
                kl = 0.5 * (mu**2 + sigma**2 - 2 * torch.log(sigma) - 1).sum(1)
        else:
            packed = torch.where(self.on_diag, F.softplus(raw + self.offset), raw)
            padded = torch.cat([packed, torch.zeros(len(x), 1, dtype=x.dtype)], 1)
            chol = padded[:, self.gather].reshape(len(x), self.k, self.k)
            z = mu + (chol @ v.unsqueeze(2)).squeeze(2)
            log_diag = torch.log(packed[:, self.on_diag]).sum(1)
            if self.components:
                kl = -log_diag - 0.5 * (v**2).sum(1) - self.log_r(z)
            else:
                # 0.5 (tr L L^T + mu^T mu - K - log det L L^T), tr L L^T: L's squares
                kl = 0.5 * ((packed**2).sum(1) + (mu**2).sum(1) - self.k - 2 * log_diag)
        h = z
        for layer in self.decoder:
            h = F.relu(layer(h))
        return F.cross_entropy(self.output(h), labels, reduction="none"), kl


def torch_run(model, x, labels, v, dtype=torch.float64, draws=0, objective="mean"):
    """The oracle's (ce, kl, loss) and its gradients: by block name, and for x. draws > 0:
    v holds that many draws of every row, draw after draw."""
    net = TorchVIB(model, dtype)
    xt = torch.tensor(x, dtype=dtype, requires_grad=True)
    shape = (draws, len(x), model.latent_dim) if draws else (len(x), model.latent_dim)
    vt = torch.tensor(v.reshape(shape), dtype=dtype)
    ce, kl, loss = net(xt, torch.tensor(labels, dtype=torch.long), vt, objective)
    loss.backward()
    return (ce.item(), kl.item(), loss.item()), net.named_grads(), xt.grad.numpy()


# ---- comparisons ----------------------------------------------------------------------

def assert_grad_close(name, got, want):
    """|got - want| <= GRAD_TOL * max |want|, over the block (see the module's comment)."""
    assert got.shape == want.shape, name
    scale = np.abs(want).max()
    err = np.abs(got.astype(np.float64) - want).max()
    assert err <= GRAD_TOL * scale, f"{name}: max error {err:.3g}, largest gradient {scale:.3g}"


def check_grads(model, grads, want):
    """Every block of libvib's flat gradient array against the oracle's, the head's mean
    columns and scale columns apart."""
    k = model.latent_dim
    names = set()
    for b in model.blocks():
        size = int(np.prod(b.shape))
        got = grads[b.offset:b.offset + size].reshape(b.shape)
        names.add(b.name)
        if b.name.startswith("head."):
            assert_grad_close(b.name + " (mu)", got[..., :k], want[b.name][..., :k])
            assert_grad_close(b.name + " (scale)", got[..., k:], want[b.name][..., k:])
        else:
            assert_grad_close(b.name, got, want[b.name])
    assert names == set(want), "the blocks are the torch network's parameters"


def assert_loss_close(what, got, want):
    assert got == pytest.approx(want, rel=LOSS_RTOL, abs=1e-12), what


# ---- the models -----------------------------------------------------------------------

D, K, C, B = 10, 4, 5, 7
NOISE_SEED = 11

# id: (encoder, decoder, full_cov, beta, sigma_offset, deterministic)
CASES = {
    "diag-enc1": ((16,), (), False, 1e-2, -1.0, False),
    "diag-enc2": ((16, 12), (), False, 0.5, 0.0, False),
    "diag-dec1": ((12,), (10,), False, 0.1, -1.0, False),
    "diag-enc0-dec1": ((), (8,), False, 0.1, 0.0, False),
    "diag-paper-offset": ((16,), (), False, 1e-3, -5.0, False),
    "full-enc1": ((16,), (), True, 0.1, -1.0, False),
    "full-enc2-dec1": ((16, 12), (9,), True, 0.3, 0.0, False),
    "diag-deterministic": ((16,), (8,), False, 0.1, 0.0, True),
    "full-deterministic": ((16,), (8,), True, 0.1, 0.0, True),
}


def make_model(encoder, decoder, full_cov, beta, offset, deterministic, seed=3,
               components=0):
    """A model with its weights moved off their initialization (biases start at 0, and a
    full head's off-diagonal weights too, and a mixture's scales and logits start equal:
    an oracle agreeing there would not see those paths), and a batch."""
    model = libvib.Model(D, K, C, encoder=encoder, decoder=decoder, seed=seed,
                         full_cov=full_cov, components=components)
    model.beta = beta
    model.sigma_offset = offset
    model.deterministic = deterministic
    rng = np.random.default_rng(seed)
    model.params[:] += (0.1 * rng.standard_normal(model.num_params)).astype(np.float32)
    x = rng.standard_normal((B, D)).astype(np.float32)
    labels = rng.integers(0, C, B).astype(np.int32)
    return model, x, labels


@pytest.mark.parametrize("case", list(CASES))
def test_loss_and_gradients_match_torch(case):
    model, x, labels = make_model(*CASES[case])
    with model:
        model.reseed(NOISE_SEED)
        ce, kl, loss = model.gradients(x, labels)
        grads = model.grads.copy()
        v = training_noise(NOISE_SEED, B * K)
        (t_ce, t_kl, t_loss), t_grads, t_dx = torch_run(model, x, labels, v)
        assert_loss_close("ce", ce, t_ce)
        assert_loss_close("kl", kl, t_kl)
        assert_loss_close("loss", loss, t_loss)
        if model.deterministic:
            assert kl == 0.0
        check_grads(model, grads, t_grads)

        # the input gradient of the same draw: the same loss, to the bit (the same pass)
        model.reseed(NOISE_SEED)
        dx, dx_loss = model.input_gradients(x, labels, samples=1)
        assert dx_loss == loss
        assert_grad_close("dx", dx, t_dx)
        assert np.array_equal(model.grads, grads), "input_gradients leaves the grads alone"


@pytest.mark.parametrize("objective", ["mean", "logmeanexp"])
@pytest.mark.parametrize("case", ["diag-enc1", "diag-dec1", "full-enc2-dec1"])
def test_several_draws_match_torch(case, objective):
    """Model.set_train_samples(5, objective): the loss and every gradient of the 5-draw
    objective against torch's on the same 5 x B x K normals (the model draws them in the
    order of 5 one-draw steps), and the input gradient of one evaluation of it."""
    S = 5
    model, x, labels = make_model(*CASES[case])
    with model:
        model.set_train_samples(S, objective)
        assert (model.train_samples, model.train_objective) == (S, objective)
        model.reseed(NOISE_SEED)
        ce, kl, loss = model.gradients(x, labels)
        grads = model.grads.copy()
        v = training_noise(NOISE_SEED, S * B * K)
        (t_ce, t_kl, t_loss), t_grads, t_dx = torch_run(model, x, labels, v, draws=S,
                                                        objective=objective)
        assert_loss_close("ce", ce, t_ce)
        assert_loss_close("kl", kl, t_kl)
        assert_loss_close("loss", loss, t_loss)
        check_grads(model, grads, t_grads)
        model.reseed(NOISE_SEED)
        dx, dx_loss = model.input_gradients(x, labels, samples=1)
        assert dx_loss == loss
        assert_grad_close("dx", dx, t_dx)


MIXTURE_M = 3


@pytest.mark.parametrize("draws,objective", [(1, "mean"), (5, "mean"), (5, "logmeanexp")])
@pytest.mark.parametrize("case", ["diag-enc1", "diag-dec1", "diag-paper-offset",
                                  "full-enc2-dec1", "diag-deterministic"])
def test_mixture_marginal_matches_torch(case, draws, objective):
    """Model(components=3): the loss, the rate estimate, every gradient (the mixture's
    means, raw scales and logits among them) and the input gradient against torch's, on
    the same draws."""
    model, x, labels = make_model(*CASES[case], components=MIXTURE_M)
    with model:
        assert model.prior_components == MIXTURE_M
        model.set_train_samples(draws, objective)
        model.reseed(NOISE_SEED)
        ce, kl, loss = model.gradients(x, labels)
        grads = model.grads.copy()
        v = training_noise(NOISE_SEED, draws * B * K)
        (t_ce, t_kl, t_loss), t_grads, t_dx = torch_run(
            model, x, labels, v, draws=draws if draws > 1 else 0, objective=objective)
        assert_loss_close("ce", ce, t_ce)
        assert_loss_close("loss", loss, t_loss)
        if model.deterministic:
            assert kl == 0.0
            for b in model.blocks():
                if b.role == "prior":
                    assert not grads[b.offset:b.offset + int(np.prod(b.shape))].any()
        else:
            assert_loss_close("kl", kl, t_kl)
            # the estimate is not the closed form to N(0, I): this checks the mixture
            with libvib_without_prior(model) as plain:
                closed = torch_run(plain, x, labels, v, draws=draws if draws > 1 else 0)
            assert abs(kl - closed[0][1]) > 1e-3
        check_grads(model, grads, t_grads)
        model.reseed(NOISE_SEED)
        dx, dx_loss = model.input_gradients(x, labels, samples=1)
        assert dx_loss == loss
        assert_grad_close("dx", dx, t_dx)


def libvib_without_prior(model):
    """The same network with the closed-form KL to N(0, I), for the oracle."""
    plain = libvib.Model(D, K, C, encoder=[b.shape[1] for b in model.blocks()
                                           if b.role == "encoder" and b.kind == "weight"],
                         decoder=[b.shape[1] for b in model.blocks()
                                  if b.role == "decoder" and b.kind == "weight"],
                         full_cov=model.full_cov)
    plain.beta, plain.sigma_offset = model.beta, model.sigma_offset
    sd = model.state_dict()
    plain.load_state_dict({n: a for n, a in sd.items() if not n.startswith("prior.")})
    return plain


@pytest.mark.parametrize("case", ["diag-dec1", "full-enc2-dec1"])
def test_input_gradients_at_the_mean_match_torch(case):
    """samples = 0: z = mu (v = 0) with the KL kept."""
    model, x, labels = make_model(*CASES[case])
    with model:
        dx, loss = model.input_gradients(x, labels, samples=0)
        (_, _, t_loss), _, t_dx = torch_run(model, x, labels, np.zeros(B * K, np.float32))
        assert_loss_close("loss", loss, t_loss)
        assert_grad_close("dx", dx, t_dx)


def test_the_noise_matters():
    """The comparison is sensitive to v: with another draw the oracle disagrees."""
    model, x, labels = make_model(*CASES["diag-enc2"])
    with model:
        model.reseed(NOISE_SEED)
        _, _, loss = model.gradients(x, labels)
        (_, _, other), _, _ = torch_run(model, x, labels, training_noise(NOISE_SEED + 1, B * K))
        assert abs(other - loss) > 1e3 * LOSS_RTOL * abs(loss)


def test_training_noise_is_the_models_draw():
    """Read v back from libvib alone. Without a decoder hidden layer and with batches of
    one row, the output layer's gradients are dW[j, c] = z_j g_c and db[c] = g_c
    (g = dL/dlogits), so z_j = dW[j, c] / db[c]; with mu and sigma from encode,
    v = (z - mu) / sigma. Rows one at a time draw K normals each, the same sequence as
    one draw of B * K."""
    model, x, labels = make_model((16,), (), False, 0.1, 0.0, False)
    with model:
        blocks = {b.name: b for b in model.blocks()}
        w, b = blocks["output.weight"], blocks["output.bias"]
        mu, sigma = model.encode(x)
        model.reseed(NOISE_SEED)
        got = np.empty((B, K))
        for r in range(B):
            model.gradients(x[r:r + 1], labels[r:r + 1])
            g = model.grads
            dw = g[w.offset:w.offset + K * C].reshape(K, C).astype(np.float64)
            db = g[b.offset:b.offset + C].astype(np.float64)
            c = int(np.argmax(np.abs(db)))
            z = dw[:, c] / db[c]
            got[r] = (z - mu[r]) / sigma[r]
        want = training_noise(NOISE_SEED, B * K).reshape(B, K)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
