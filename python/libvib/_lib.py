"""The shared library: loading, the version check, errors, handles and array checks.

Internal to the package; the public names are re-exported by libvib/__init__.py.
"""

import ctypes
import ctypes.util
import os

import numpy as np

from . import _decls

C = _decls.CONSTANTS
WANT_MAJOR, WANT_MINOR = 0, 2

# ---- errors --------------------------------------------------------------------------


class LibvibError(Exception):
    """A libvib call returned a negative status. .status is the VIB_ERR_* code and
    .message the library's detail (vib_last_error of the failing call's thread)."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message


class InvalidArgumentError(LibvibError, ValueError):
    """VIB_ERR_INVALID_ARG (-1): a bad size, a value out of its domain."""


class OutOfMemoryError(LibvibError, MemoryError):
    """VIB_ERR_NOMEM (-2): an allocation failed or the object asked for is too large."""


class LibvibIOError(LibvibError, OSError):
    """VIB_ERR_IO (-3): a file could not be opened, read or written."""

    def __init__(self, status, message):
        OSError.__init__(self, message)
        self.status = status
        self.message = message

    def __str__(self):
        return self.message


class FormatError(LibvibError, ValueError):
    """VIB_ERR_FORMAT (-4): a file or buffer is malformed, truncated or corrupted."""


class NumericError(LibvibError, ArithmeticError):
    """VIB_ERR_NUMERIC (-5): a NaN or infinity in the input, or one would be produced."""


class ArrayShapeError(TypeError, ValueError):
    """An array of the wrong shape or length for the call (both a TypeError, as every
    array the package refuses, and a ValueError, as a wrong size is in Python)."""


ERRORS = {
    C["VIB_ERR_INVALID_ARG"]: InvalidArgumentError,
    C["VIB_ERR_NOMEM"]: OutOfMemoryError,
    C["VIB_ERR_IO"]: LibvibIOError,
    C["VIB_ERR_FORMAT"]: FormatError,
    C["VIB_ERR_NUMERIC"]: NumericError,
}

# ---- loading -------------------------------------------------------------------------

HERE = os.path.dirname(os.path.abspath(__file__))


def _candidates():
    """Where the library is looked for, in order: LIBVIB_PATH (a file; nothing else is
    tried if it is set), the build tree this package sits in (python/libvib/../../lib),
    then the system's loader."""
    env = os.environ.get("LIBVIB_PATH")
    if env:
        return [env], True
    out = []
    tree = os.path.normpath(os.path.join(HERE, "..", "..", "lib", "libvib.so.0"))
    if os.path.exists(tree):
        out.append(tree)
    found = ctypes.util.find_library("vib")
    if found:
        out.append(found)
    out.append("libvib.so.0")
    return out, False


def _load():
    names, from_env = _candidates()
    errors = []
    for name in names:
        try:
            dll = ctypes.CDLL(name)
        except OSError as e:
            errors.append("%s: %s" % (name, e))
            continue
        return dll, name
    if from_env:
        raise ImportError("libvib: cannot load LIBVIB_PATH=%s: %s" % (names[0], errors[0]))
    raise ImportError("libvib: the shared library libvib.so.0 was not found (tried %s). "
                      "Build it (make lib), install it (make install), or set LIBVIB_PATH "
                      "to its file." % "; ".join(errors))


class _Lib(object):
    """The loaded library with every function of vib.h declared from _decls."""

    def __init__(self):
        dll, path = _load()
        self.dll = dll
        self.path = path
        try:
            number = dll.vib_version_number
        except AttributeError:
            raise ImportError("libvib: %s is not libvib (no vib_version_number)" % path)
        number.restype = ctypes.c_uint32
        number.argtypes = []
        v = number()
        major, minor = v // 10000, (v // 100) % 100
        if major != WANT_MAJOR or minor < WANT_MINOR:
            raise ImportError(
                "libvib: %s is libvib %d.%d.%d; this package needs %d.x with x >= %d "
                "(set LIBVIB_PATH to a newer library)"
                % (path, major, minor, v % 100, WANT_MAJOR, WANT_MINOR))
        self.loaded_version = v
        for name, (restype, argtypes) in _decls.FUNCTIONS.items():
            try:
                fn = getattr(dll, name)
            except AttributeError:
                raise ImportError("libvib: %s (version %d) lacks %s, which vib.h declares"
                                  % (path, v, name))
            fn.restype = restype
            fn.argtypes = argtypes
            short = name[len("vib_"):]
            if short in self.__dict__:  # a new vib_* function whose name is taken here
                raise ImportError("libvib: %s clashes with _Lib.%s" % (name, short))
            setattr(self, short, fn)

    def error_message(self):
        return self.dll.vib_last_error().decode("utf-8", "replace")


LIB = _Lib()


def check(status):
    """Raise the exception of a negative status, with the library's message."""
    if status < 0:
        message = LIB.error_message() or LIB.status_string(status).decode()
        raise ERRORS.get(status, LibvibError)(status, message)
    return status


# ---- handles -------------------------------------------------------------------------


class Handle(object):
    """One C handle and its free function. The handle is freed when this object goes
    (garbage collection) or by release(); Python objects that need the handle (a model,
    its views, a trainer) hold a reference to this object, so the C memory outlives
    every one of them. `deps` are the Handles this one uses (a trainer's model,
    optimizer and average): they are released only after this one is freed."""

    __slots__ = ("ptr", "_free", "deps", "__weakref__")

    def __init__(self, ptr, free, deps=()):
        self.ptr = ptr
        self._free = free
        self.deps = tuple(deps)

    @property
    def _as_parameter_(self):
        # Passed to ctypes as the pointer itself; the call's argument tuple then holds
        # this Handle, so a close() from another thread cannot free the C object while
        # the call runs (Owned._ptr returns the Handle, not the bare address).
        return ctypes.c_void_p(self.ptr)

    def release(self):
        ptr, self.ptr = self.ptr, None
        if ptr:
            self._free(ptr)
        self.deps = ()

    def __del__(self):
        try:
            self.release()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass


def create(fn, free, *args, **kw):
    """Call a vib_*_create(..., T **out) function and wrap the result in a Handle
    (keyword deps: passed on to the Handle)."""
    out = ctypes.c_void_p()
    check(fn(*(args + (ctypes.byref(out),))))
    return Handle(out.value, free, kw.get("deps", ()))


class Owned(object):
    """A Python object over a Handle: close() drops its reference (the C object is freed
    then, unless views or a trainer still hold the Handle: then when the last of them
    goes); any later call raises ValueError."""

    _what = "object"
    _handle = None

    @property
    def _ptr(self):
        """The Handle, which ctypes passes as the C pointer (Handle._as_parameter_) and
        which stays referenced while a call that was given it runs."""
        h = self._handle
        if h is None or h.ptr is None:
            raise ValueError("libvib: this %s is closed" % self._what)
        return h

    @property
    def closed(self):
        """True after close()."""
        return self._handle is None or self._handle.ptr is None

    def close(self):
        """Release this object's reference to the C object. The memory is freed now if
        nothing else (a view of its arrays, a trainer) holds it, else when the last such
        reference goes; calling close() again does nothing."""
        self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def handle_of(obj, cls, name, optional=False):
    """The C pointer of `obj`, which must be a `cls` (or None if optional)."""
    if obj is None and optional:
        return None
    if not isinstance(obj, cls):
        raise TypeError("libvib: %s must be a libvib.%s, not %s"
                        % (name, cls.__name__, type(obj).__name__))
    return obj._ptr


# ---- views ---------------------------------------------------------------------------


class _ViewBase(object):
    """The base object of a NumPy view of library memory: it describes the memory by the
    array interface and holds a reference to the owner, so the memory stays valid for
    as long as any array derived from the view exists."""

    __slots__ = ("__array_interface__", "owner")

    def __init__(self, addr, shape, typestr, writable, owner):
        self.__array_interface__ = {
            "shape": tuple(shape), "typestr": typestr, "version": 3,
            "data": (addr, not writable),
        }
        self.owner = owner


def view(addr, shape, dtype, writable, owner):
    """A NumPy array over `addr` (shape, dtype) that keeps `owner` alive."""
    dtype = np.dtype(dtype)
    if not addr:
        if int(np.prod(shape)) == 0:
            return np.zeros(shape, dtype)
        raise ValueError("libvib: the library returned no memory")
    a = np.asarray(_ViewBase(addr, shape, dtype.str, writable, owner))
    if not writable:
        a.flags.writeable = False
    return a


def address(p):
    """The address held by a ctypes pointer (0 for NULL)."""
    return ctypes.cast(p, ctypes.c_void_p).value or 0


# ---- array checks --------------------------------------------------------------------

FP = ctypes.POINTER(ctypes.c_float)
I32P = ctypes.POINTER(ctypes.c_int32)
NULL = None


def _describe(a):
    return "%s array of shape %s" % (a.dtype, a.shape)


def array(a, name, dtype=np.float32, shape=None, writable=False):
    """Check that `a` is an ndarray of `dtype`, C-contiguous, of `shape` (a tuple whose
    None entries match any size), and writable if asked; return it. Nothing is ever
    converted: a float64 or a strided array is refused, so the library never reads or
    writes a silent copy."""
    dtype = np.dtype(dtype)
    if not isinstance(a, np.ndarray):
        raise TypeError("libvib: %s must be a numpy.ndarray of %s, not %s (use "
                        "np.asarray(..., dtype=np.%s))"
                        % (name, dtype, type(a).__name__, dtype.name))
    if a.dtype != dtype:
        raise TypeError("libvib: %s must have dtype %s, got a %s (convert it explicitly "
                        "with .astype(np.%s))" % (name, dtype, _describe(a), dtype.name))
    if not a.flags.c_contiguous:
        raise TypeError("libvib: %s must be C-contiguous, got a strided %s (use "
                        "np.ascontiguousarray)" % (name, _describe(a)))
    if writable and not a.flags.writeable:
        raise TypeError("libvib: %s must be writable, got a read-only %s"
                        % (name, _describe(a)))
    if shape is not None:
        ok = a.ndim == len(shape) and all(w is None or w == g for w, g in zip(shape, a.shape))
        if not ok:
            want = "(%s)" % ", ".join("*" if w is None else str(w) for w in shape)
            if len(shape) == 1:
                want = want[:-1] + ",)"
            raise ArrayShapeError("libvib: %s must have shape %s, got a %s"
                                  % (name, want, _describe(a)))
    return a


def fp(a):
    """A float * to an array's data (NULL for None)."""
    return NULL if a is None else a.ctypes.data_as(FP)


def i32p(a):
    return NULL if a is None else a.ctypes.data_as(I32P)


def out_array(out, name, shape, dtype=np.float32, inputs=()):
    """`out` checked as a writable output of `shape`, or a new zeroed array. An output
    may be one of `inputs` exactly (the elementwise nodes allow it) but must not overlap
    one partly: the library would read values it has already overwritten."""
    if out is None:
        return np.zeros(shape, dtype)
    a = array(out, name, dtype, shape, writable=True)
    for in_name, b in inputs:
        if (b is not None and np.may_share_memory(a, b) and
                not (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
                     and a.nbytes == b.nbytes)):
            raise ValueError("libvib: %s overlaps %s without being the same array"
                             % (name, in_name))
    return a


def no_alias(name, a, others):
    """Gradient buffers must not overlap each other or the inputs (vib.h): refuse it
    here, since the library would compute a wrong answer rather than fail."""
    for other_name, b in others:
        if b is not None and a is not None and np.may_share_memory(a, b):
            raise ValueError("libvib: %s must not overlap %s" % (name, other_name))


def fspath(path):
    return os.fsencode(os.fspath(path))


def size(n, name):
    """A nonnegative int argument (bool refused) for a size_t or uint64_t parameter;
    ctypes would wrap a value past 2^64 - 1 silently, so that is refused too."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError("libvib: %s must be an int, got %s" % (name, type(n).__name__))
    n = int(n)
    if n < 0 or n >= 1 << (8 * ctypes.sizeof(ctypes.c_size_t)) or n >= 1 << 64:
        raise ValueError("libvib: %s must be in [0, 2^64), got %d" % (name, n))
    return n
