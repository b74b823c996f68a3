"""The VIB classifier: libvib.Model over vib_model."""

import collections
import ctypes

import numpy as np

from . import _lib
from ._lib import LIB, C, check, fp, i32p, array, size

Block = collections.namedtuple("Block", "name offset shape kind role index")
Block.__doc__ = """One parameter block of a model: name ("encoder.0.weight", "head.bias",
"prior.means", ...), offset into Model.params, shape ((in, out) for a weight, (out,) for a
bias; (M, K) for a mixture marginal's means and raw scales, (M,) for its logits), kind
("weight", "bias", "means", "scales" or "logits"), role ("encoder", "head", "prior",
"decoder" or "output") and index (the layer's number within its role, 0 for the head, the
marginal and the output layer)."""

Evaluation = collections.namedtuple("Evaluation", "error ce_bits kl_bits izy_bits")
Evaluation.__doc__ = """Model.evaluate's result: the error rate, the mean cross-entropy in
bits, the mean rate in bits (the KL to the marginal: to N(0, I) in closed form, to a learned
mixture estimated from 4 draws per row; an upper bound on I(Z;X)) and H(Y) - ce_bits (a
lower bound on I(Z;Y))."""

_ROLES = {C["VIB_LAYER_ENCODER"]: "encoder", C["VIB_LAYER_HEAD"]: "head",
          C["VIB_LAYER_DECODER"]: "decoder", C["VIB_LAYER_OUTPUT"]: "output",
          C["VIB_LAYER_PRIOR"]: "prior"}
_KINDS = {C["VIB_BLOCK_WEIGHTS"]: "weight", C["VIB_BLOCK_BIAS"]: "bias",
          C["VIB_BLOCK_PRIOR_MEANS"]: "means", C["VIB_BLOCK_PRIOR_SCALES"]: "scales",
          C["VIB_BLOCK_PRIOR_LOGITS"]: "logits"}


def _sizes(seq, name):
    if isinstance(seq, (int, np.integer)):
        raise TypeError("libvib: %s must be a sequence of ints, e.g. (%d,)" % (name, seq))
    seq = tuple(seq)
    return (ctypes.c_size_t * max(len(seq), 1))(*[size(s, name) for s in seq]), len(seq)


def _snprintf(fn, *args):
    """A string from a function written like snprintf (vib_backend_info, describe)."""
    n = check(fn(*(args + (None, 0))))
    buf = ctypes.create_string_buffer(n + 1)
    check(fn(*(args + (buf, n + 1))))
    return buf.value.decode("utf-8", "replace")


class Model(_lib.Owned):
    """A VIB classifier (vib_model): x -> encoder MLP (ReLU) -> Gaussian head
    [mu | rho], sigma = softplus(rho + offset) -> z = mu + sigma v -> decoder -> softmax.
    Loss per batch: L = CE + beta KL(N(mu, sigma^2) || N(0, I)), in nats.

    Model(input_dim, latent, classes, encoder=(1024, 1024), decoder=(), seed=1,
    full_cov=False, components=0): ReLU layers start He-initialized, linear ones LeCun,
    biases 0; beta 1e-3, sigma offset -5, stochastic. `seed` drives the weights and both
    noise streams (training and prediction). full_cov: a full-covariance posterior
    N(mu, L L^T). components = M > 0 (at most 1024): a learned marginal r(z), a mixture of
    M diagonal Gaussians (means, softplus scales and softmax weights are parameters, the
    blocks "prior.means", "prior.scales", "prior.logits"), in place of N(0, I); the rate
    KL(e(z|x) || r(z)) is then estimated from the training draws. At most 64 hidden layers
    per side, every size at most 2^24.

    One thread at a time per model. close() (or the with block, or garbage collection)
    releases it; views from params, grads and state_dict() keep its memory alive."""

    _what = "model"

    def __init__(self, input_dim, latent, classes, encoder=(1024, 1024), decoder=(), seed=1,
                 full_cov=False, components=0):
        enc, n_enc = _sizes(encoder, "encoder sizes")
        dec, n_dec = _sizes(decoder, "decoder sizes")
        flags = C["VIB_MODEL_FULL_COV"] if full_cov else 0
        self._handle = _lib.create(
            LIB.model_create_mixture, LIB.model_free, size(input_dim, "input_dim"), n_enc,
            enc, size(latent, "latent"), n_dec, dec, size(classes, "classes"), flags,
            size(components, "components"), size(seed, "seed"))

    @classmethod
    def _wrap(cls, handle):
        m = cls.__new__(cls)
        m._handle = handle
        return m

    @classmethod
    def load(cls, path):
        """Load a model file written by save(), or the model part of a trainer's
        checkpoint. Every field is checked: FormatError for a damaged or foreign file,
        LibvibIOError for one that cannot be read (or is not a regular file)."""
        return cls._wrap(_lib.create(LIB.model_load, LIB.model_free, _lib.fspath(path)))

    def save(self, path):
        """Save (versioned, CRC-checked, written atomically: a temporary file renamed)."""
        check(LIB.model_save(self._ptr, _lib.fspath(path)))

    # ---- configuration -----------------------------------------------------------------

    @property
    def input_dim(self):
        return LIB.model_input_dim(self._ptr)

    @property
    def latent_dim(self):
        return LIB.model_latent_dim(self._ptr)

    @property
    def classes(self):
        return LIB.model_classes(self._ptr)

    @property
    def num_params(self):
        return LIB.model_num_params(self._ptr)

    @property
    def full_cov(self):
        return bool(LIB.model_flags(self._ptr) & C["VIB_MODEL_FULL_COV"])

    @property
    def prior_components(self):
        """The learned marginal's components M; 0 for the standard normal N(0, I)."""
        return LIB.model_prior_components(self._ptr)

    @property
    def beta(self):
        """The KL weight (>= 0, finite)."""
        return LIB.model_beta(self._ptr)

    @beta.setter
    def beta(self, value):
        check(LIB.model_set_beta(self._ptr, float(value)))

    @property
    def sigma_offset(self):
        """The sigma head's offset: sigma = softplus(rho + offset) (finite)."""
        return LIB.model_sigma_offset(self._ptr)

    @sigma_offset.setter
    def sigma_offset(self, value):
        check(LIB.model_set_sigma_offset(self._ptr, float(value)))

    @property
    def deterministic(self):
        """True: z = mu and no KL (the baseline)."""
        return bool(LIB.model_deterministic(self._ptr))

    @deterministic.setter
    def deterministic(self, value):
        check(LIB.model_set_deterministic(self._ptr, 1 if value else 0))

    _OBJECTIVES = {"mean": "VIB_OBJECTIVE_MEAN", "logmeanexp": "VIB_OBJECTIVE_LOGMEANEXP"}

    @property
    def train_samples(self):
        """Posterior draws per example in training (1 unless set_train_samples)."""
        return LIB.model_train_samples(self._ptr)

    @property
    def train_objective(self):
        """How the draws' losses combine: "mean" or "logmeanexp"."""
        code = LIB.model_train_objective(self._ptr)
        return next(k for k, v in self._OBJECTIVES.items() if C[v] == code)

    def set_train_samples(self, samples, objective="mean"):
        """Train with `samples` draws of z per example (1 to 1024): objective "mean"
        averages the draws' cross-entropies, "logmeanexp" takes the cross-entropy of
        their averaged prediction, -log((1/S) sum_s q(y|z_s)). The encoder runs once per
        row; saved with the model."""
        if objective not in self._OBJECTIVES:
            raise ValueError("objective must be 'mean' or 'logmeanexp', not %r" % (objective,))
        check(LIB.model_set_train_samples(self._ptr, size(samples, "samples"),
                                          C[self._OBJECTIVES[objective]]))

    def reseed(self, seed):
        """Restart both noise streams (weights untouched): same seed, same samples."""
        check(LIB.model_reseed(self._ptr, size(seed, "seed")))

    def reserve(self, max_batch):
        """Grow the workspace for batches of up to max_batch rows now."""
        check(LIB.model_reserve(self._ptr, size(max_batch, "max_batch")))

    def describe(self):
        """A one-line description, e.g. "784-1024-1024 | K=256 | decoder 10 | beta=0.001"."""
        return _snprintf(LIB.model_describe, self._ptr)

    def __repr__(self):
        if self.closed:
            return "<libvib.Model (closed)>"
        return "<libvib.Model %s>" % self.describe()

    # ---- parameters --------------------------------------------------------------------

    @property
    def params(self):
        """The flat parameter array, float32 [num_params]: a writable view of the
        model's memory (writing it loads weights) that keeps the model's memory alive."""
        h = self._handle
        return _lib.view(_lib.address(LIB.model_params(self._ptr)), (self.num_params,),
                         np.float32, True, h)

    @property
    def grads(self):
        """The gradient array, same layout as params, a writable view like params."""
        h = self._handle
        return _lib.view(_lib.address(LIB.model_grads(self._ptr)), (self.num_params,),
                         np.float32, True, h)

    def blocks(self):
        """The parameter blocks in params' order (each layer's weights, then its bias,
        from the input; a mixture marginal's means, scales and logits right after the
        head's bias): a list of Block."""
        ptr = self._ptr
        out = []
        off, rows, cols = ctypes.c_size_t(), ctypes.c_size_t(), ctypes.c_size_t()
        kind, role, index = ctypes.c_int(), ctypes.c_int(), ctypes.c_size_t()
        for b in range(LIB.model_num_blocks(ptr)):
            check(LIB.model_block(ptr, b, ctypes.byref(off), ctypes.byref(rows),
                                  ctypes.byref(cols), ctypes.byref(kind), ctypes.byref(role),
                                  ctypes.byref(index)))
            k, r = _KINDS[kind.value], _ROLES[role.value]
            shape = (cols.value,) if k in ("bias", "logits") else (rows.value, cols.value)
            prefix = r if r in ("head", "output", "prior") else "%s.%d" % (r, index.value)
            out.append(Block("%s.%s" % (prefix, k), off.value, shape, k, r, index.value))
        return out

    def state_dict(self):
        """name -> a writable view of that block of params (weights (in, out), biases
        (out,)), in params' order; the views keep the model's memory alive."""
        p = self.params
        d = collections.OrderedDict()
        for b in self.blocks():
            n = int(np.prod(b.shape))
            d[b.name] = p[b.offset:b.offset + n].reshape(b.shape)
        return d

    def load_state_dict(self, d):
        """Copy the arrays of d (names and shapes as state_dict's, float32) into params.
        Everything is checked first: a missing or unknown name, or a wrong shape, is
        ArrayShapeError/ValueError, a wrong dtype TypeError, and then nothing is written."""
        blocks = self.blocks()
        names = [b.name for b in blocks]
        missing = [n for n in names if n not in d]
        extra = [n for n in d if n not in names]
        if missing or extra:
            raise ValueError("libvib: load_state_dict: missing %s, unexpected %s"
                             % (missing or "nothing", extra or "nothing"))
        for b in blocks:
            a = d[b.name]
            if not isinstance(a, np.ndarray) or a.dtype != np.float32:
                raise TypeError("libvib: load_state_dict: %s must be a float32 ndarray, got %s"
                                % (b.name, getattr(a, "dtype", type(a).__name__)))
            if a.shape != b.shape:
                raise _lib.ArrayShapeError("libvib: load_state_dict: %s must have shape %s, "
                                           "got %s" % (b.name, b.shape, a.shape))
        dst = self.state_dict()
        for name in names:
            np.copyto(dst[name], d[name])

    # ---- computation -------------------------------------------------------------------

    def _batch(self, x, labels=None):
        x = array(x, "x", np.float32, (None, self.input_dim))
        if x.shape[0] == 0:
            raise _lib.ArrayShapeError("libvib: x must have at least one row")
        if labels is not None:
            labels = array(labels, "labels", np.int32, (x.shape[0],))
        return x, labels

    def gradients(self, x, labels):
        """Forward and backward of one batch (x float32 [batch, input_dim], labels int32
        [batch] in [0, classes)): OVERWRITES grads with dL/dparams of the batch-mean
        loss, draws fresh training noise, returns the batch means (ce, kl, loss) in nats.
        The parameters are not changed."""
        x, labels = self._batch(x, labels)
        ce, kl, loss = ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
        check(LIB.model_gradients(self._ptr, x.shape[0], fp(x), i32p(labels),
                                  ctypes.byref(ce), ctypes.byref(kl), ctypes.byref(loss)))
        return ce.value, kl.value, loss.value

    def input_gradients(self, x, labels, samples=1, out=None):
        """dL/dx [batch, input_dim] of the batch-mean training loss, and L (averaged
        over `samples` noise draws from the training stream; 0: z = mu). Neither params
        nor grads are touched. Returns (dx, loss)."""
        x, labels = self._batch(x, labels)
        dx = _lib.out_array(out, "out", x.shape)
        loss = ctypes.c_double()
        check(LIB.model_input_gradients(self._ptr, x.shape[0], fp(x), i32p(labels),
                                        size(samples, "samples"), fp(dx), ctypes.byref(loss)))
        return dx, loss.value

    def encode(self, x):
        """The posterior of each row: (mu, sigma), float32 [batch, K] each (sigma 0 when
        deterministic; the marginal standard deviation with full_cov)."""
        x, _ = self._batch(x)
        k = self.latent_dim
        mu = np.empty((x.shape[0], k), np.float32)
        sigma = np.empty((x.shape[0], k), np.float32)
        check(LIB.model_encode(self._ptr, x.shape[0], fp(x), fp(mu), fp(sigma)))
        return mu, sigma

    def encode_chol(self, x):
        """(mu [batch, K], chol [batch, K(K+1)/2]): the packed Cholesky factor (row i,
        column j <= i at i(i+1)/2 + j); diagonal sigma unless full_cov."""
        x, _ = self._batch(x)
        k = self.latent_dim
        mu = np.empty((x.shape[0], k), np.float32)
        chol = np.empty((x.shape[0], LIB.chol_size(k)), np.float32)
        check(LIB.model_encode_chol(self._ptr, x.shape[0], fp(x), fp(mu), fp(chol)))
        return mu, chol

    def predict(self, x, samples=12, out=None):
        """Class probabilities float32 [batch, classes], averaged over `samples` draws
        from the prediction stream (at z = mu for 0 or a deterministic model)."""
        x, _ = self._batch(x)
        prob = _lib.out_array(out, "out", (x.shape[0], self.classes))
        check(LIB.model_predict(self._ptr, x.shape[0], fp(x), size(samples, "samples"),
                                fp(prob)))
        return prob

    def evaluate(self, x, labels, samples=12, ema=None):
        """Evaluation(error, ce_bits, kl_bits, izy_bits) over the rows of x with their
        labels, with `samples` draws per row from the prediction stream, with the model's
        weights or the averaged ones of `ema` (an EMA of num_params values)."""
        x, labels = self._batch(x, labels)
        e = [ctypes.c_double() for _ in range(4)]
        from ._optim import EMA
        ema_ptr = _lib.handle_of(ema, EMA, "ema", optional=True)
        check(LIB.model_evaluate(self._ptr, ema_ptr, x.shape[0], fp(x), i32p(labels),
                                 size(samples, "samples"), *[ctypes.byref(v) for v in e]))
        return Evaluation(*[v.value for v in e])
