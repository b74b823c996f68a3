"""Labelled datasets read from IDX files (the MNIST format)."""

import numpy as np

from . import _lib
from ._lib import LIB, size


class Dataset(_lib.Owned):
    """A labelled dataset (vib_dataset): images float32 [n, dim] and labels int32 [n],
    owned by the library and exposed as read-only views that keep it alive. Pixels p in
    0..255 become lo + (hi - lo) p / 255. Build one with Dataset.load or Dataset.mnist."""

    _what = "dataset"

    def __init__(self, *args, **kwargs):
        raise TypeError("libvib: use Dataset.load(images, labels) or Dataset.mnist(dir)")

    @classmethod
    def _wrap(cls, handle):
        d = cls.__new__(cls)
        d._handle = handle
        return d

    @classmethod
    def load(cls, images_path, labels_path, lo=0.0, hi=1.0):
        """Read an IDX file of n items of any shape (flattened to dim values each) and an
        IDX file of n labels (plain or gzip'd). FormatError for a malformed file or
        mismatched counts, LibvibIOError for one that cannot be read."""
        return cls._wrap(_lib.create(LIB.dataset_load, LIB.dataset_free,
                                     _lib.fspath(images_path), _lib.fspath(labels_path),
                                     float(lo), float(hi)))

    @classmethod
    def mnist(cls, dir, split="train", lo=0.0, hi=1.0):
        """A split ("train" or "t10k") of an MNIST-layout directory: <split>-images-idx3-
        ubyte and <split>-labels-idx1-ubyte, each tried as it is, then with ".gz"."""
        return cls._wrap(_lib.create(LIB.dataset_load_mnist, LIB.dataset_free,
                                     _lib.fspath(dir), split.encode(), float(lo), float(hi)))

    def subset(self, first, count):
        """A new dataset holding a copy of items [first, first + count)."""
        return Dataset._wrap(_lib.create(LIB.dataset_subset, LIB.dataset_free, self._ptr,
                                         size(first, "first"), size(count, "count")))

    def __len__(self):
        return LIB.dataset_size(self._ptr)

    @property
    def dim(self):
        """Values per item."""
        return LIB.dataset_dim(self._ptr)

    @property
    def classes(self):
        """The largest label + 1 of the files loaded (a subset keeps its source's)."""
        return LIB.dataset_classes(self._ptr)

    @property
    def images(self):
        """float32 [len, dim], read-only view."""
        h = self._handle
        return _lib.view(_lib.address(LIB.dataset_images(self._ptr)), (len(self), self.dim),
                         np.float32, False, h)

    @property
    def labels(self):
        """int32 [len], read-only view."""
        h = self._handle
        return _lib.view(_lib.address(LIB.dataset_labels(self._ptr)), (len(self),),
                         np.int32, False, h)

    def __repr__(self):
        if self.closed:
            return "<libvib.Dataset (closed)>"
        return "<libvib.Dataset %d items of %d values, %d classes>" % (
            len(self), self.dim, self.classes)
