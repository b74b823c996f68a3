"""Loading the library, its version, the process-wide settings and the public names."""

import os
import shutil
import subprocess
import sys

import pytest

import libvib
from conftest import ROOT

PYDIR = os.path.join(ROOT, "python")


def run_python(code, env_extra, unset=()):
    env = dict(os.environ)
    for k in unset:
        env.pop(k, None)
    env.update(env_extra)
    env["PYTHONPATH"] = PYDIR
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60)


def test_versions():
    assert libvib.__version__ == "0.2.0"
    assert libvib.library_version() == "0.2.0"
    assert libvib.library_version_number() == 200
    c = libvib._decls.CONSTANTS
    assert libvib.library_version() == "%d.%d.%d" % (
        c["VIB_VERSION_MAJOR"], c["VIB_VERSION_MINOR"], c["VIB_VERSION_PATCH"])


def test_library_path_is_libvib_path():
    want = os.environ.get("LIBVIB_PATH")
    if want:
        assert libvib.library_path == want
    assert os.path.basename(libvib.library_path).startswith("libvib.so")


def test_build_tree_is_found_without_libvib_path():
    r = run_python("import libvib; print(libvib.library_path)", {}, unset=["LIBVIB_PATH"])
    assert r.returncode == 0, r.stderr
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(
        os.path.join(ROOT, "lib", "libvib.so.0"))


def test_bad_libvib_path_is_an_import_error():
    r = run_python("import libvib", {"LIBVIB_PATH": "/nonexistent/libvib.so.0"})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "/nonexistent/libvib.so.0" in r.stderr


def test_old_library_is_refused(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a stand-in for libvib 0.1")
    src = tmp_path / "old.c"
    src.write_text("unsigned vib_version_number(void) { return 100; }\n")
    so = tmp_path / "libold.so"
    subprocess.run([cc, "-shared", "-fPIC", str(src), "-o", str(so)], check=True)
    r = run_python("import libvib", {"LIBVIB_PATH": str(so)})
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "0.1.0" in r.stderr and "x >= 2" in r.stderr


def test_threads_and_backend():
    before = libvib.num_threads()
    try:
        libvib.set_num_threads(1)
        assert libvib.num_threads() == 1
        with pytest.raises(libvib.InvalidArgumentError, match="vib_set_num_threads"):
            libvib.set_num_threads(libvib.MAX_THREADS + 1)
        assert libvib.num_threads() == 1
        with pytest.raises(TypeError):
            libvib.set_num_threads(1.5)
    finally:
        libvib.set_num_threads(0)
    assert libvib.num_threads() == before
    info = libvib.backend_info()
    assert info.startswith("BLIS") and "thread" in info


def test_status_strings():
    assert libvib.status_string(0) == "ok"
    assert libvib.status_string(-1) == "invalid argument"
    assert libvib.status_string(-99) == "unknown status"


def test_public_names():
    for name in ["Model", "Adam", "SGD", "EMA", "Dataset", "Trainer", "lr_staircase",
                 "reparam_forward", "reparam_backward", "kl_std_normal",
                 "kl_std_normal_backward", "sigma_head_forward", "sigma_head_backward",
                 "softmax_xent_forward", "softmax_xent_backward", "chol_reparam_forward",
                 "chol_reparam_backward", "kl_chol_std_normal", "kl_chol_std_normal_backward",
                 "set_num_threads", "num_threads", "backend_info", "library_version",
                 "LibvibError", "InvalidArgumentError", "OutOfMemoryError", "LibvibIOError",
                 "FormatError", "NumericError", "Block", "Evaluation"]:
        assert hasattr(libvib, name), name
    assert set(libvib.__all__) <= set(dir(libvib))
