"""libvib from Python: Deep Variational Information Bottleneck models (ctypes + NumPy).

The shared library is found through LIBVIB_PATH (a file path), else the build tree this
package sits in (python/libvib/../../lib/libvib.so.0), else the system's loader; it must
be libvib 0.x with x >= 2 (ImportError otherwise). libvib.library_path says which file
was loaded.

Arrays: float32 (labels int32), C-contiguous, of the documented shape, passed to the
library without copies. Anything else is refused with TypeError (ArrayShapeError, also
a ValueError, for a wrong shape): nothing is converted silently. Outputs are new arrays
unless out= is given (checked the same way, and writable).

Errors: a failed call raises the LibvibError subclass of its status, with the library's
message (vib_last_error): InvalidArgumentError, OutOfMemoryError, LibvibIOError,
FormatError, NumericError.

Handles (Model, Adam, SGD, EMA, Dataset, Trainer) are freed by close(), the with block
or garbage collection. Views of library memory (Model.params, .grads, state_dict(),
EMA.values, Dataset.images, .labels) and a Trainer hold a reference to the memory they
use: close() only drops the object's own reference, so the memory is freed when the
last view or trainer using it goes, never under them; a closed object's methods raise
ValueError.
"""

from ._lib import (LIB as _LIB, check as _check, LibvibError, InvalidArgumentError,
                   OutOfMemoryError, LibvibIOError, FormatError, NumericError,
                   ArrayShapeError)
from ._model import Model, Block, Evaluation, _snprintf
from ._optim import Optimizer, Adam, SGD, EMA, lr_staircase
from ._data import Dataset
from ._train import Trainer
from ._nodes import (reparam_forward, reparam_backward, kl_std_normal, kl_std_normal_backward,
                     kl_diag_gauss, sigma_head_forward, sigma_head_backward, relu_forward,
                     relu_backward, softmax_xent_forward, softmax_xent_backward, chol_size,
                     chol_reparam_forward, chol_reparam_backward, kl_chol_std_normal,
                     kl_chol_std_normal_backward)

from . import _decls

__version__ = "0.2.0"

#: The file the shared library was loaded from.
library_path = _LIB.path

MAX_THREADS = _decls.CONSTANTS["VIB_MAX_THREADS"]


def library_version():
    """The loaded library's version, "MAJOR.MINOR.PATCH"."""
    return _LIB.version_string().decode()


def library_version_number():
    """The loaded library's MAJOR*10000 + MINOR*100 + PATCH."""
    return _LIB.loaded_version


def set_num_threads(n):
    """Threads for the calls that follow (process-wide): 1..1024, or 0 for the default
    (BLIS_NUM_THREADS, else OMP_NUM_THREADS, else the CPUs available). Results are
    bit-identical for the same inputs and the same thread count."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError("libvib: set_num_threads takes an int")
    _check(_LIB.set_num_threads(n))


def num_threads():
    """The thread count the next call will use (>= 1)."""
    return _LIB.num_threads()


def backend_info():
    """A one-line description of the backend: BLIS version, kernel set, threads,
    product paths."""
    return _snprintf(_LIB.backend_info)


def status_string(status):
    """The short fixed description of a status code ("invalid argument", ...)."""
    return _LIB.status_string(int(status)).decode()


__all__ = [
    "LibvibError", "InvalidArgumentError", "OutOfMemoryError", "LibvibIOError", "FormatError",
    "NumericError", "ArrayShapeError", "Model", "Block", "Evaluation", "Optimizer", "Adam",
    "SGD", "EMA", "lr_staircase", "Dataset", "Trainer", "reparam_forward", "reparam_backward",
    "kl_std_normal", "kl_std_normal_backward", "kl_diag_gauss", "sigma_head_forward",
    "sigma_head_backward", "relu_forward", "relu_backward", "softmax_xent_forward",
    "softmax_xent_backward", "chol_size", "chol_reparam_forward", "chol_reparam_backward",
    "kl_chol_std_normal", "kl_chol_std_normal_backward", "library_version",
    "library_version_number", "library_path", "set_num_threads", "num_threads",
    "backend_info", "status_string", "MAX_THREADS",
]
