"""The generated declarations (python/libvib/_decls.py) against include/vib.h, so the
two cannot drift, and the header through cffi's cdef after the same preprocessing."""

import ctypes
import glob
import os
import re
import sys

import numpy as np
import pytest

import libvib
from libvib import _decls
from conftest import ROOT

HEADER = os.path.join(ROOT, "include", "vib.h")
sys.path.insert(0, os.path.join(ROOT, "python"))
import gen_decls  # noqa: E402


def header():
    with open(HEADER) as f:
        return f.read()


def declared_in_header():
    """Every VIB_API function of vib.h found as make check-abi finds them (the joined
    text, 'VIB_API ... name('), independently of gen_decls's parser."""
    text = header().replace("\n", " ")
    return sorted(set(re.findall(r"VIB_API [^(]*?\b(vib_[a-z0-9_]+)\s*\(", text)))


def test_committed_file_is_the_generated_one():
    with open(os.path.join(ROOT, "python", "libvib", "_decls.py")) as f:
        committed = f.read()
    assert committed == gen_decls.generate(header()), \
        "python/libvib/_decls.py is stale: run `make python` and commit it"


def test_every_function_is_declared_and_exported():
    names = declared_in_header()
    assert len(names) > 100
    assert sorted(_decls.FUNCTIONS) == names
    for name in names:
        fn = getattr(libvib._lib.LIB, name[len("vib_"):])
        assert fn.argtypes == _decls.FUNCTIONS[name][1]


def test_argument_counts_match_the_header():
    text = gen_decls.strip_comments(header()).replace("\n", " ")
    for name, (restype, argtypes) in _decls.FUNCTIONS.items():
        args = re.search(r"\b" + name + r"\s*\(([^)]*)\)", text).group(1).strip()
        n = 0 if args == "void" else args.count(",") + 1
        assert len(argtypes) == n, name


def test_some_types():
    F = _decls.FUNCTIONS
    FP = ctypes.POINTER(ctypes.c_float)
    assert F["vib_model_params"] == (FP, [ctypes.c_void_p])
    assert F["vib_version_number"] == (ctypes.c_uint32, [])
    assert F["vib_model_create"][1][-1] == ctypes.POINTER(ctypes.c_void_p)
    assert F["vib_model_block"][1][2] == ctypes.POINTER(ctypes.c_size_t)
    assert F["vib_dataset_labels"][0] == ctypes.POINTER(ctypes.c_int32)
    assert F["vib_idx_data"][0] == ctypes.POINTER(ctypes.c_uint8)
    assert F["vib_kl_diag_gauss"][1][-1] == ctypes.POINTER(ctypes.c_double)
    assert F["vib_trainer_set_callback"][1][1] is _decls.vib_train_callback
    assert F["vib_model_free"][0] is None
    assert _decls.CONSTANTS["VIB_ERR_NUMERIC"] == -5
    assert _decls.CONSTANTS["VIB_LAYER_OUTPUT"] == 3
    assert "vib_trainer" in _decls.HANDLES


def test_unknown_types_are_refused():
    with pytest.raises(ValueError, match="teach"):
        gen_decls.generate("VIB_API int vib_new(struct foo *f);")
    with pytest.raises(ValueError, match="teach"):
        gen_decls.generate("VIB_API long vib_new(void);")


def test_package_declares_nothing_by_hand():
    for path in glob.glob(os.path.join(ROOT, "python", "libvib", "*.py")):
        if path.endswith("_decls.py"):
            continue
        with open(path) as f:
            src = f.read()
        assert "CFUNCTYPE(" not in src, path
        for m in re.finditer(r"\.(argtypes|restype) = (.*)", src):
            # the one exception: vib_version_number, declared before the version check
            assert "_lib.py" in path and m.group(2) in ("argtypes", "restype",
                                                        "ctypes.c_uint32", "[]"), m.group(0)


def test_cffi_parses_the_preprocessed_header():
    cffi = pytest.importorskip("cffi", reason="python3-cffi is not installed "
                                              "(apt-get install python3-cffi)")
    src = gen_decls.cdef_source(header())
    assert "VIB_API" not in src and "#include" not in src and "extern" not in src
    ffi = cffi.FFI()
    ffi.cdef(src)
    lib = ffi.dlopen(libvib.library_path)
    for name in declared_in_header():
        assert hasattr(lib, name), name
    assert lib.vib_version_number() == 200
    assert lib.VIB_ERR_FORMAT == -4 and lib.VIB_MAX_THREADS == 1024
    mu = np.arange(6, dtype=np.float32)
    sigma = np.full(6, 0.5, np.float32)
    v = np.linspace(-1, 1, 6).astype(np.float32)
    z = np.empty(6, np.float32)

    def ptr(a):
        return ffi.cast("float *", ffi.from_buffer(a))
    assert lib.vib_reparam_forward(6, ptr(mu), ptr(sigma), ptr(v), ptr(z)) == 0
    assert np.array_equal(z, libvib.reparam_forward(mu, sigma, v))
    assert lib.vib_reparam_forward(6, ptr(mu), ptr(-sigma), ptr(v), ptr(z)) == -1
    assert b"sigma" in ffi.string(lib.vib_last_error())
