"""A short training run driven from Python gives the same bits as the same run in C.

A trainer with Adam, a moving average and a staircase schedule, over epochs whose last
batch is short (three single steps, the rest of the first epoch, a second epoch), then
evaluation with the average and with the weights, for a diagonal and a full-covariance
model with a decoder hidden layer: through the package's Model, Adam, EMA and Trainer
here, and through the public header and the shared library in tests/python/ref_train.c,
compiled here against the library the package loaded (on the same thread count), which
prints every number as a hex float. Every loss, the trainer's position and learning rate,
every parameter and averaged value, and every evaluation figure must be equal, bit for bit.
"""

import os
import shutil
import subprocess

import numpy as np
import pytest

import libvib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

# tests/python/ref_train.c's constants
IN, HID, LAT, DEC, CLASSES, N, BATCH = 6, 10, 3, 7, 4, 50, 8
MODEL_SEED, TRAIN_SEED, BETA, OFFSET = 5, 3, 1e-2, -2.0


def train_data():
    """ref_train.c's rows: dyadic values, exact in float32."""
    i = np.arange(N)[:, None]
    j = np.arange(IN)[None, :]
    x = ((i * 7 + j * 3) % 13 - 6) / 8.0 + (j % CLASSES == i % CLASSES)
    return x.astype(np.float32), (np.arange(N) % CLASSES).astype(np.int32)


def train_python(full_cov):
    """ref_train.c's run through the package, as the same records."""
    x, labels = train_data()
    rec = {"step": [], "epoch": [], "eval": []}
    with libvib.Model(IN, LAT, CLASSES, encoder=(HID,), decoder=(DEC,), seed=MODEL_SEED,
                      full_cov=full_cov) as model:
        model.beta = BETA
        model.sigma_offset = OFFSET
        opt = libvib.Adam(model, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8)
        ema = libvib.EMA(model.params, 0.9)
        tr = libvib.Trainer(model, opt, N, BATCH, seed=TRAIN_SEED, ema=ema)
        tr.set_schedule(2e-2, 0.5, 4)
        for _ in range(3):
            rec["step"].append(list(tr.step(x, labels)))
        for _ in range(2):
            rec["epoch"].append(list(tr.epoch(x, labels)))
        rec["position"] = [tr.epochs_done, tr.step_in_epoch, tr.steps, tr.lr]
        rec["params"] = model.params.copy()
        rec["ema"] = np.array(ema.values, copy=True)
        for e in (model.evaluate(x, labels, samples=3, ema=ema),
                  model.evaluate(x, labels, samples=0)):
            rec["eval"].append([e.error, e.ce_bits, e.kl_bits, e.izy_bits])
    return rec


def parse_c(text):
    """ref_train's records: Python floats (float.fromhex is exact), the arrays as float32
    (each value was a float: exact too)."""
    rec = {}
    for line in text.splitlines():
        key, *vals = line.split()
        if key == "position":
            rec[key] = [int(v) for v in vals[:3]] + [float.fromhex(vals[3])]
        elif key in ("params", "ema"):
            rec[key] = np.array([float.fromhex(v) for v in vals], dtype=np.float32)
        else:
            rec.setdefault(key, []).append([float.fromhex(v) for v in vals])
    return rec


@pytest.fixture(scope="module")
def ref_train(tmp_path_factory):
    """ref_train.c built as a user of the library would build it, against the library
    the package loaded."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    lib = libvib.library_path  # a bare name when the system's loader found it
    exe = str(tmp_path_factory.mktemp("ref_train") / "ref_train")
    # the very file the package loaded (and found at run time), else the system's -lvib
    link = [lib, "-Wl,-rpath," + os.path.dirname(os.path.abspath(lib))] \
        if os.path.sep in lib else ["-lvib"]
    cmd = [cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-I" + os.path.join(REPO, "include"),
           os.path.join(HERE, "ref_train.c")] + link + ["-lm", "-o", exe]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stderr}"
    return exe


@pytest.mark.parametrize("full_cov", [False, True], ids=["diag", "full"])
def test_training_in_python_gives_the_bits_of_c(ref_train, full_cov):
    threads = libvib.num_threads()
    proc = subprocess.run([ref_train, str(int(full_cov)), str(threads)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    want = parse_c(proc.stdout)
    got = train_python(full_cov)
    assert got["step"] == want["step"]
    assert got["epoch"] == want["epoch"]
    assert got["position"] == want["position"]
    for key in ("params", "ema"):
        assert got[key].dtype == np.float32 and got[key].shape == want[key].shape, key
        assert np.array_equal(got[key].view(np.uint32), want[key].view(np.uint32)), key
    assert got["eval"] == want["eval"]
    assert want["position"][:3] == [2, 0, 14], "two epochs of ceil(50 / 8) = 7 steps"
