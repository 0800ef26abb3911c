"""Offline datasets: conventions, stratified splits, the mnist5k cache, local-file loaders and their errors."""

import gzip
import pickle

import numpy as np
import pytest
import torch

from fedkd.data import DATASETS, ImageDataset, datasets, font_digits, load_dataset, register_dataset
from fedkd.data.font_digits import render_font_digits
from fedkd.data.local_files import read_idx
from fedkd.errors import ConfigError, DataError


@pytest.mark.parametrize("name, size, count", [("digits", 8, 1797), ("digits28", 28, 1797), ("mnist5k", 28, 5000),
                                               ("fonts16", 16, 21 * 10 * datasets.FONT_COPIES)])
def test_builtin_sets_follow_the_image_convention(name, size, count):
    ds = load_dataset(name)
    assert ds.x.shape == (count, 1, size, size) and ds.x.dtype == np.float32
    assert ds.y.dtype == np.int64 and set(np.unique(ds.y)) == set(range(10))
    assert ds.x.min() == -1.0 and ds.x.max() == 1.0
    assert (ds.channels, ds.image_size, ds.n_classes, len(ds), ds.name) == (1, size, 10, count, name)
    assert name in DATASETS


def test_mnist5k_has_500_real_images_per_class():
    ds = load_dataset("mnist5k")
    assert np.bincount(ds.y).tolist() == [500] * 10
    # A real digit is mostly background (-1) with some ink; noise or a blank image would not be.
    background = (ds.x == -1.0).mean()
    assert 0.7 < background < 0.95


def test_font_digits_are_balanced_varied_and_the_same_on_every_draw():
    ds = load_dataset("fonts16")
    assert np.bincount(ds.y).tolist() == [21 * datasets.FONT_COPIES] * 10
    again, _ = render_font_digits(16, per_font=datasets.FONT_COPIES, seed=0)
    np.testing.assert_array_equal(again, ds.x)
    other, _ = render_font_digits(16, per_font=datasets.FONT_COPIES, seed=1)
    assert not np.array_equal(other, ds.x)
    # The copies of one glyph differ (the variations act), and each fills the frame along its longer side.
    first_font_zero = ds.x[:datasets.FONT_COPIES, 0]
    assert len({im.tobytes() for im in first_font_zero}) == datasets.FONT_COPIES
    ink = ds.x[:, 0] > -0.9
    spans = np.maximum(ink.any(axis=1).sum(axis=1), ink.any(axis=2).sum(axis=1))
    assert spans.min() >= 15
    # Sharp strokes: most ink pixels are near full intensity, unlike an upsampled 8x8 scan.
    assert np.mean(ds.x[ds.x > -0.9] > 0.5) > 0.5


def test_font_digits_refuse_a_matplotlib_without_the_fonts(monkeypatch, tmp_path):
    monkeypatch.setattr(font_digits, "font_dir", lambda: tmp_path)
    with pytest.raises(DataError, match="DejaVuSans.ttf.*reinstall matplotlib"):
        render_font_digits(16, per_font=1)


def test_digits28_is_a_bilinear_upsampling_of_digits():
    small, big = load_dataset("digits"), load_dataset("digits28")
    np.testing.assert_array_equal(small.y, big.y)
    # Averaging the 28x28 image back down to 8x8 gives (a slightly blurred) original.
    back = torch.nn.functional.interpolate(torch.from_numpy(big.x.copy()), size=(8, 8), mode="area").numpy()
    assert np.corrcoef(back.ravel(), small.x.ravel())[0, 1] > 0.95


def test_cached_datasets_are_read_only_and_shared():
    ds = load_dataset("digits")
    assert load_dataset("digits") is ds
    with pytest.raises(ValueError):
        ds.x[0, 0, 0, 0] = 0.0


def test_mnist5k_cache_is_written_once_and_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FEDKD_CACHE", str(tmp_path))
    pixels, labels = datasets._mnist5k_raw()
    assert (tmp_path / "mnist5k.npz").is_file()
    again_pixels, again_labels = datasets._mnist5k_raw()
    np.testing.assert_array_equal(pixels, again_pixels)
    np.testing.assert_array_equal(labels, again_labels)
    (tmp_path / "mnist5k.npz").write_bytes(b"not an npz")
    rebuilt, _ = datasets._mnist5k_raw()
    np.testing.assert_array_equal(rebuilt, pixels)


def test_split_is_stratified_disjoint_and_seeded():
    ds = load_dataset("mnist5k")
    train, test = ds.split(test_fraction=0.2, seed=0)
    assert (len(train), len(test)) == (4000, 1000)
    assert np.bincount(test.y).tolist() == [100] * 10
    train_again, test_again = ds.split(test_fraction=0.2, seed=0)
    np.testing.assert_array_equal(test.x, test_again.x)
    _, test_other = ds.split(test_fraction=0.2, seed=1)
    assert not np.array_equal(test.y, test_other.y)
    # Disjoint: no image of the test part appears in the train part.
    train_rows = {row.tobytes() for row in train.x}
    assert sum(row.tobytes() in train_rows for row in test.x) < 5  # MNIST holds a few exact duplicates at most
    assert not np.all(np.diff(train.y) >= 0), "train part should come back shuffled, not sorted by class"


def test_split_rejects_fractions_outside_0_1():
    with pytest.raises(ConfigError, match="test_fraction"):
        load_dataset("digits").split(1.0, seed=0)


def test_subset_and_tensors():
    ds = load_dataset("digits")
    part = ds.subset(np.array([3, 1]))
    np.testing.assert_array_equal(part.y, ds.y[[3, 1]])
    x, y = part.tensors()
    assert x.shape == (2, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    x[0] = 0.0  # tensors are copies: the shared dataset is not touched
    assert ds.x[3].min() == -1.0


def test_image_dataset_validates_its_arrays():
    x = np.zeros((2, 1, 4, 4), np.float32)
    with pytest.raises(DataError, match="int64"):
        ImageDataset(x, np.zeros(2, np.int32), 3, "t")
    with pytest.raises(DataError, match="0..2"):
        ImageDataset(x, np.array([0, 3]), 3, "t")
    with pytest.raises(DataError, match="square"):
        ImageDataset(np.zeros((2, 1, 4, 5), np.float32), np.zeros(2, np.int64), 3, "t")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="mnist5k"):
        load_dataset("imagenet")


def test_builtin_set_refuses_a_path():
    with pytest.raises(ConfigError, match="takes no path"):
        load_dataset("digits", path="/tmp")


def test_register_dataset_adds_a_name(monkeypatch):
    monkeypatch.setattr(datasets, "_LOADERS", dict(datasets._LOADERS))
    monkeypatch.setattr(datasets, "DATASETS", dict(datasets.DATASETS))
    tiny = ImageDataset(np.zeros((4, 1, 2, 2), np.float32), np.array([0, 1, 0, 1]), 2, "tiny")
    datasets.register_dataset("tiny", lambda path=None: tiny, "four blank images")
    assert datasets.load_dataset("tiny") is tiny and "tiny" in datasets.DATASETS
    with pytest.raises(ConfigError, match="already registered"):
        register_dataset("digits", lambda path=None: tiny, "again")


def _write_idx(path, array, gz=False):
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_folder_loads_train_and_test(tmp_path, gz):
    rng = np.random.default_rng(0)
    train_x, train_y = rng.integers(0, 256, (6, 28, 28)), np.arange(6) % 10
    test_x, test_y = rng.integers(0, 256, (4, 28, 28)), np.array([9, 8, 7, 6])
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", train_x, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", train_y, gz)
    _write_idx(tmp_path / f"t10k-images-idx3-ubyte{suffix}", test_x, gz)
    _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}", test_y, gz)
    ds = load_dataset("mnist-idx", str(tmp_path))
    assert ds.x.shape == (10, 1, 28, 28) and ds.n_classes == 10
    np.testing.assert_array_equal(ds.y, np.concatenate([train_y, test_y]))
    np.testing.assert_allclose(ds.x[0, 0], train_x[0] / 255 * 2 - 1, atol=1e-6)


def test_idx_reader_rejects_other_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x12\x34\x56\x78rest")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "bad")


def test_cifar10_batches_load_channel_major(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    with open(tmp_path / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": data, b"labels": [0, 1, 2, 3, 9]}, handle)
    ds = load_dataset("cifar10-batches", str(tmp_path))
    assert ds.x.shape == (5, 3, 32, 32) and ds.n_classes == 10
    # The first 1024 bytes of a row are the red plane, row by row.
    np.testing.assert_allclose(ds.x[0, 0].ravel(), data[0, :1024] / 255 * 2 - 1, atol=1e-6)


def test_npz_accepts_channels_last_uint8_and_channels_first_floats(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", x=images, y=np.array([0, 2, 1]))
    ds = load_dataset("npz", str(tmp_path / "a.npz"))
    assert ds.x.shape == (3, 3, 8, 8) and ds.n_classes == 3
    np.testing.assert_allclose(ds.x[1, 2], images[1, :, :, 2] / 255 * 2 - 1, atol=1e-6)
    np.savez(tmp_path / "b.npz", images=np.full((2, 1, 4, 4), 0.5), labels=np.array([1, 0]))
    assert load_dataset("npz", str(tmp_path / "b.npz")).x.max() == 0.0


def test_npz_with_wrong_keys_names_them(tmp_path):
    np.savez(tmp_path / "c.npz", pictures=np.zeros((2, 4, 4)), y=np.array([0, 1]))
    with pytest.raises(DataError, match="pictures"):
        load_dataset("npz", str(tmp_path / "c.npz"))


@pytest.mark.parametrize("name, expected", [("mnist-idx", "train-images-idx3-ubyte"),
                                            ("cifar10-batches", "data_batch_1"),
                                            ("npz", ".npz")])
def test_file_loaders_name_the_missing_path_and_expected_files(tmp_path, name, expected):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere") as err:
        load_dataset(name, str(missing))
    assert expected in str(err.value)
    with pytest.raises(DataError, match="needs a path"):
        load_dataset(name)


def test_empty_folder_says_which_files_it_wanted(tmp_path):
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist-idx", str(tmp_path))
