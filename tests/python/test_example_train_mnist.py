"""examples/python/train_mnist.py against examples/train_mnist, on tiny synthetic IDX files.

The Python program makes the C program's library calls in the same order, so with the
same options and one thread both print the same lines (the seconds aside) and save the
same model, byte for byte; a checkpoint of one resumes in the other. The C program must
be built (make examples; make check builds it before these tests run).
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

import libvib
from conftest import ROOT

C_PROG = os.path.join(ROOT, "examples", "train_mnist")
PY_PROG = os.path.join(ROOT, "examples", "python", "train_mnist.py")
N_TRAIN, N_TEST = 300, 120


def write_idx(path, array):
    """An IDX file of unsigned bytes: magic 0 0 8 ndim, big-endian u32 sizes, data."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    with open(path, "wb") as f:
        f.write(bytes([0, 0, 8, a.ndim]))
        f.write(np.array(a.shape, dtype=">u4").tobytes())
        f.write(a.tobytes())


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A directory in MNIST's layout: 28x28 images, each class a brighter stripe."""
    d = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(5)
    for split, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        y = (np.arange(n) * 7 % 10).astype(np.uint8)
        x = rng.integers(0, 120, size=(n, 28, 28))
        for i, c in enumerate(y):
            x[i, 2 * c:2 * c + 3, :] += 130
        write_idx(str(d / ("%s-images-idx3-ubyte" % split)), x)
        write_idx(str(d / ("%s-labels-idx1-ubyte" % split)), y)
    return str(d)


def run(cmd, tmp):
    """cmd in the directory tmp, with this package and the library these tests loaded
    (LIBVIB_PATH may be relative to the directory make runs in)."""
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    if os.sep in libvib.library_path:
        env["LIBVIB_PATH"] = os.path.abspath(libvib.library_path)
    return subprocess.run(cmd, cwd=str(tmp), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=300)


def c_cmd(tmp, *args):
    if not os.access(C_PROG, os.X_OK):
        pytest.skip("examples/train_mnist is not built (make examples)")
    return [C_PROG, "--csv", str(tmp / "c.csv"), "--plot", str(tmp / "c.png")] + list(args)


def py_cmd(*args):
    return [sys.executable, PY_PROG] + list(args)


def comparable(stdout):
    """The lines both programs print, the times masked; the C program's own lines (the
    learning curve) and the saved file's name left out."""
    out = []
    for line in stdout.splitlines():
        if line.startswith(("learning curve:", "saved ")):
            continue
        line = re.sub(r"^(epoch +\d+) +[0-9.]+s ", r"\1 <t>s ", line)
        out.append(re.sub(r"seconds=[0-9.]+$", "seconds=<t>", line))
    return out


def common(data, *extra):
    return ["--data", data, "--threads", "1", "--batch", "64", "--seed", "3"] + list(extra)


def test_same_lines_and_model_as_the_c_program(mnist_dir, tmp_path):
    args = common(mnist_dir, "--epochs", "3")
    c = run(c_cmd(tmp_path, *(args + ["--save", "c.vibm"])), tmp_path)
    assert c.returncode == 0, c.stderr
    p = run(py_cmd(*(args + ["--save", "py.vibm"])), tmp_path)
    assert p.returncode == 0, p.stderr
    assert comparable(p.stdout) == comparable(c.stdout)
    assert sum(line.startswith("epoch ") for line in comparable(p.stdout)) == 3
    with open(str(tmp_path / "c.vibm"), "rb") as f1, open(str(tmp_path / "py.vibm"), "rb") as f2:
        assert f1.read() == f2.read()


def test_checkpoints_resume_across_the_two_programs(mnist_dir, tmp_path):
    # 1 epoch in C, then resumed to 3 in Python; 2 in Python, then resumed to 3 in C:
    # both save the model 3 epochs in one run save.
    one = run(py_cmd(*common(mnist_dir, "--epochs", "3", "--save", "one.vibm")), tmp_path)
    assert one.returncode == 0, one.stderr
    r = run(c_cmd(tmp_path, *common(mnist_dir, "--epochs", "1", "--checkpoint", "c.ckpt")),
            tmp_path)
    assert r.returncode == 0, r.stderr
    r = run(py_cmd(*common(mnist_dir, "--epochs", "3", "--resume", "c.ckpt",
                           "--save", "py_resumed.vibm")), tmp_path)
    assert r.returncode == 0, r.stderr
    assert "resumed c.ckpt: 1 epochs and 0 steps done" in r.stdout
    r = run(py_cmd(*common(mnist_dir, "--epochs", "2", "--checkpoint", "py.ckpt")), tmp_path)
    assert r.returncode == 0, r.stderr
    r = run(c_cmd(tmp_path, *common(mnist_dir, "--epochs", "3", "--resume", "py.ckpt",
                                    "--save", "c_resumed.vibm")), tmp_path)
    assert r.returncode == 0, r.stderr
    want = (tmp_path / "one.vibm").read_bytes()
    assert (tmp_path / "py_resumed.vibm").read_bytes() == want
    assert (tmp_path / "c_resumed.vibm").read_bytes() == want


def test_bad_use_is_reported(tmp_path):
    r = run(py_cmd("--data", str(tmp_path / "none")), tmp_path)
    assert r.returncode == 1
    assert "no train images file" in r.stderr and "make data" in r.stderr
    r = run(py_cmd("--epochs", "0"), tmp_path)
    assert r.returncode == 2 and "--epochs 0 only makes sense with --resume" in r.stderr
    r = run(py_cmd("--batch", "0"), tmp_path)
    assert r.returncode == 2 and "--batch" in r.stderr
