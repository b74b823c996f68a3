"""libvib.Dataset on small IDX files written here."""

import gc
import gzip
import struct
import weakref

import numpy as np
import pytest

import libvib


def idx(values, shape):
    return bytes([0, 0, 8, len(shape)]) + b"".join(struct.pack(">I", s) for s in shape) \
        + bytes(values)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(5)
    pix = rng.integers(0, 256, size=(10, 2, 3), dtype=np.uint8)
    lab = (np.arange(10) % 4).astype(np.uint8)
    img_path = tmp_path / "train-images-idx3-ubyte"
    lab_path = tmp_path / "train-labels-idx1-ubyte"
    img_path.write_bytes(idx(pix.ravel(), pix.shape))
    lab_path.write_bytes(idx(lab, lab.shape))
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(idx(pix[:4].ravel(), (4, 2, 3)))
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(idx(lab[:4], (4,)))
    return tmp_path, img_path, lab_path, pix, lab


def test_load(files):
    d, img, lab, pix, labels = files
    ds = libvib.Dataset.load(img, str(lab), lo=-1.0, hi=1.0)
    assert (len(ds), ds.dim, ds.classes) == (10, 6, 4)
    assert ds.images.dtype == np.float32 and ds.images.shape == (10, 6)
    want = -1 + 2 * pix.reshape(10, 6).astype(np.float64) / 255.0
    np.testing.assert_allclose(ds.images, want, rtol=1e-6, atol=1e-7)
    assert ds.labels.dtype == np.int32 and np.array_equal(ds.labels, labels)
    assert not ds.images.flags.writeable and not ds.labels.flags.writeable
    assert "10 items" in repr(ds)


def test_mnist_layout_and_gzip(files):
    d, _, _, pix, labels = files
    tr = libvib.Dataset.mnist(d)
    te = libvib.Dataset.mnist(str(d), split="t10k")
    assert (len(tr), len(te)) == (10, 4)
    np.testing.assert_allclose(te.images, pix[:4].reshape(4, 6) / 255.0, rtol=1e-6)
    assert np.array_equal(te.labels, labels[:4])


def test_subset_and_views_keep_it_alive(files):
    _, img, lab, pix, labels = files
    ds = libvib.Dataset.load(img, lab)
    sub = ds.subset(3, 5)
    assert len(sub) == 5 and sub.classes == 4
    assert np.array_equal(sub.labels, labels[3:8])
    assert np.array_equal(sub.images, ds.images[3:8])
    images, want = ds.images, ds.images.copy()
    handle = weakref.ref(ds._handle)
    del ds
    gc.collect()
    assert handle() is not None and np.array_equal(images, want)
    del images
    gc.collect()
    assert handle() is None
    with pytest.raises(libvib.InvalidArgumentError):
        sub.subset(4, 2)


def test_errors(files, tmp_path):
    d, img, lab, _, _ = files
    with pytest.raises(TypeError):
        libvib.Dataset()
    with pytest.raises(libvib.LibvibIOError, match="nothing-here"):
        libvib.Dataset.load(tmp_path / "nothing-here", lab)
    with pytest.raises(libvib.LibvibIOError):
        libvib.Dataset.load(d, lab)  # a directory
    short = tmp_path / "short-labels"
    short.write_bytes(idx(range(7), (7,)))
    with pytest.raises(libvib.FormatError, match="short-labels"):
        libvib.Dataset.load(img, short)
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01xxxx")
    with pytest.raises(libvib.FormatError, match="bad"):
        libvib.Dataset.load(bad, lab)
    ds = libvib.Dataset.load(img, lab)
    ds.close()
    with pytest.raises(ValueError, match="dataset is closed"):
        len(ds)


def test_train_on_a_dataset(files):
    _, img, lab, _, _ = files
    ds = libvib.Dataset.load(img, lab)
    m = libvib.Model(ds.dim, 2, ds.classes, encoder=(5,), seed=1)
    tr = libvib.Trainer(m, libvib.Adam(m, 1e-2), len(ds), 4, seed=2)
    ce, kl, loss = tr.epoch(ds)
    assert np.isfinite(loss) and tr.epochs_done == 1
    tr.step(ds)
    assert tr.steps == 4
    with pytest.raises(TypeError):
        tr.epoch(ds, ds.labels)
    ev = m.evaluate(ds.images, ds.labels, samples=2)
    assert 0.0 <= ev.error <= 1.0
