"""Real-dataset loaders: file formats, layouts, splits, caching and missing-data errors.

Tests that read the shared data use ``$METACTRL_TEST_DATA`` or ``<repo>/../shared/data`` and are skipped when
that folder is absent. Format/layout tests build tiny synthetic files under tmp_path and always run.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from metactrl.errors import DatasetMissing
from metactrl.tasks import data, make_task, task_defaults
from metactrl.tasks.text import WordVocab, load_wikitext2
from metactrl.tasks.vision import load_fashion

SHARED = Path(os.environ.get("METACTRL_TEST_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared dataset folder {SHARED} is absent "
                                  "(set METACTRL_TEST_DATA to a folder holding fashion-mnist/, cifar10-jpg/, ...)")
REAL_TASKS = ["fashion-cnn", "fashion-vit", "cifar10-cnn", "cifar10-vit", "shakespeare-charlm", "wikitext2-lm"]
SMALL = {"fashion": {"max_train": 300, "max_test": 100}, "cifar10": {"max_train": 200, "max_test": 100},
         "shakespeare": {"max_chars": 20_000}, "wikitext2": {"max_tokens": 20_000, "max_test_tokens": 5_000}}


@pytest.fixture(scope="module")
def module_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _tmp_cache(module_cache, monkeypatch):
    # Keep decoded-data caches out of the user's home; shared within this module so cifar10-cnn and
    # cifar10-vit decode their (identical) subset once.
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(module_cache))


def small(name: str) -> dict:
    return dict(SMALL[name.split("-")[0]])


def rows(t: torch.Tensor) -> set[bytes]:
    return {r.numpy().tobytes() for r in t.reshape(len(t), -1)}


def write_idx(path: Path, arr: np.ndarray, *, compress: bool) -> None:
    raw = bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}i", *arr.shape) + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


# ------------------------------------------------------------------------------------------ shared data


@needs_shared
@pytest.mark.parametrize("name", REAL_TASKS)
def test_real_task_loads(name):
    task = make_task(name, data_dir=str(SHARED), **small(name))
    assert task.available()
    s = task.data()
    if task.kind == "classification":
        c, hw = (1, 28) if name.startswith("fashion") else (3, 32)
        for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
            assert x.dtype == torch.float32 and tuple(x.shape[1:]) == (c, hw, hw)
            assert y.dtype == torch.long and 0 <= int(y.min()) and int(y.max()) < 10
        assert len(s.x_train) == small(name)["max_train"] and len(s.x_test) == small(name)["max_test"]
        assert abs(float(s.x_train.mean())) < 0.5  # normalised
    else:
        for x, y in ((s.x_train, s.y_train), (s.x_val, s.y_val), (s.x_test, s.y_test)):
            assert x.dtype == torch.long and x.shape == y.shape and x.ndim == 2
            assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one token
            assert 0 <= int(x.min()) and int(x.max()) < task.num_classes
    assert not rows(s.x_val) & rows(s.x_test), "validation and test overlap"
    assert not rows(s.x_val) & rows(s.x_train), "validation and train overlap"
    with torch.no_grad():
        out = task.model_fn()(s.x_val[:2])
    assert out.shape[-1] == task.num_classes


@needs_shared
def test_fashion_idx_on_joined_parts():
    files = data.find_fashion(SHARED)
    assert files is not None and len(files["train-images-idx3-ubyte"]) > 1  # the split .partNN form
    xtr, ytr, xte, yte = data.load_fashion_arrays(files)
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28)
    assert ytr.shape == (60000,) and yte.shape == (10000,)
    assert np.bincount(ytr).tolist() == [6000] * 10 and np.bincount(yte).tolist() == [1000] * 10


@needs_shared
def test_cifar_jpeg_balanced_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv(data.CACHE_ENV_VAR, str(tmp_path / "cache"))
    files = data.cifar_jpeg_files(SHARED)
    if files is None:
        pytest.skip("cifar10-jpg archives absent (the train_*.tar.gz files are optional in shared/)")
    x, y, xt, yt = data.load_cifar_jpegs(files, 200, 100)
    assert x.shape == (200, 3, 32, 32) and x.dtype == np.uint8 and xt.shape == (100, 3, 32, 32)
    assert np.bincount(y).tolist() == [20] * 10 and np.bincount(yt).tolist() == [10] * 10
    assert len(list((tmp_path / "cache").glob("cifar10-jpg-*.npz"))) == 1

    def no_decoding(*_a, **_k):
        raise AssertionError("second load should come from the cache")

    monkeypatch.setattr(data, "_decode_subset", no_decoding)
    x2, y2, xt2, yt2 = data.load_cifar_jpegs(files, 200, 100)
    assert np.array_equal(x, x2) and np.array_equal(y, y2) and np.array_equal(xt, xt2) and np.array_equal(yt, yt2)


@needs_shared
def test_wikitext_shared_uses_valid_for_training():
    assert data.first_file([SHARED / "wikitext-2" / "wiki.train.tokens"]) is None, "shared data gained a train split"
    s = make_task("wikitext2-lm", data_dir=str(SHARED), **small("wikitext2")).data()
    tokens = data.read_word_tokens(SHARED / "wikitext-2" / "wiki.valid.tokens", small("wikitext2")["max_tokens"])
    stream = WordVocab(tokens, task_defaults("wikitext2-lm")["vocab_size"]).encode(tokens)
    windows = rows(stream[: (len(stream) - 1) // 32 * 32].view(-1, 32))
    assert rows(s.x_train) | rows(s.x_val) <= windows  # train and validation both come from the valid file


# ---------------------------------------------------------------------------------- synthetic layouts


@pytest.mark.parametrize("layout,compress", [("FashionMNIST/raw", False), ("fashion-mnist", True)])
def test_fashion_layouts(tmp_path, layout, compress):
    folder = tmp_path / layout
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 10)):
        suffix = ".gz" if compress else ""
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 28, 28)), compress=compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", np.arange(n) % 10, compress=compress)
    task = make_task("fashion-cnn", data_dir=str(tmp_path), max_train=None, max_test=None)
    assert task.available()
    s = task.data()
    assert len(s.x_train) + len(s.x_val) == 40 and len(s.x_test) == 10
    assert s.x_train.shape[1:] == (1, 28, 28)


def test_split_parts_joined_in_sorted_order(tmp_path):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    arr = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 251
    write_idx(tmp_path / "whole.gz", arr, compress=True)
    blob = (tmp_path / "whole.gz").read_bytes()
    cut = len(blob) // 3
    for i, piece in enumerate((blob[:cut], blob[cut : 2 * cut], blob[2 * cut :])):
        (folder / f"train-images-idx3-ubyte.gz.part{i:02d}").write_bytes(piece)
    parts = data.find_blob(folder, "train-images-idx3-ubyte")
    assert [p.name[-2:] for p in parts] == ["00", "01", "02"]
    assert np.array_equal(data.parse_idx(data.read_blob(parts)), arr)
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in parts]  # nothing written


def test_parse_idx_rejects_garbage():
    with pytest.raises(ValueError, match="IDX"):
        data.parse_idx(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="holds"):
        data.parse_idx(bytes([0, 0, 8, 1]) + struct.pack(">i", 5) + b"abc")


def test_balanced_indices_deterministic():
    labels = np.repeat(np.arange(4), [50, 30, 20, 10])
    a, b = data.balanced_indices(labels, 22), data.balanced_indices(labels, 22)
    assert np.array_equal(a, b)
    assert np.bincount(labels[a]).tolist() == [6, 6, 5, 5]
    assert len(data.balanced_indices(labels, None)) == len(labels)


def _wikitext(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "wikitext-2"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return tmp_path


def test_wikitext_falls_back_to_valid(tmp_path):
    root = _wikitext(tmp_path, {"wiki.valid.tokens": "a b c a\n" * 200, "wiki.test.tokens": "a x y\n" * 50})
    s = load_wikitext2(root, seq_len=8, vocab_size=10, max_tokens=None, max_test_tokens=None)
    vocab = WordVocab(["a", "b", "c", "a", "<eos>"], 10)
    assert set(s.x_train.unique().tolist()) == set(range(1, 5))  # a, b, c, <eos>: all from valid
    assert set(s.x_test.unique().tolist()) == {0, vocab.index["a"], vocab.index["<eos>"]}  # x, y are <unk>


def test_wikitext_prefers_train(tmp_path):
    root = _wikitext(tmp_path, {"train.txt": "p q\n" * 200, "valid.txt": "a b c\n" * 200, "test.txt": "p a\n" * 50})
    s = load_wikitext2(root, seq_len=8, vocab_size=10, max_tokens=None, max_test_tokens=None)
    assert set(s.x_train.unique().tolist()) == {1, 2, 3}  # <eos>, p, q: the valid file is not used
    assert 0 in s.x_test.unique().tolist()  # "a" is unknown to a vocabulary built from train


def test_word_vocab_caps_and_unk():
    v = WordVocab("a a a b b c d <unk>".split(), 3)
    assert v.words == ["<unk>", "a", "b"] and v.encode(["c", "a", "<unk>"]).tolist() == [0, 1, 0]


# -------------------------------------------------------------------------------------------- missing


@pytest.mark.parametrize("name", REAL_TASKS)
def test_missing_data_is_lazy_and_explained(tmp_path, name):
    empty = tmp_path / "nothing-here"
    task = make_task(name, data_dir=str(empty))  # the factory reads no file, so this must not raise
    assert not task.available()
    assert str(empty) in task.source
    with pytest.raises(DatasetMissing) as err:
        task.data()
    msg = str(err.value)
    assert str(empty) in msg and "METACTRL_DATA" in msg and "--data-dir" in msg
    assert not empty.exists()  # nothing downloaded or created without download=True


def test_missing_fashion_names_every_folder(tmp_path):
    with pytest.raises(DatasetMissing) as err:
        load_fashion(tmp_path)
    for folder in data.fashion_folders(tmp_path):
        assert str(folder) in str(err.value)
    assert "download=True" in str(err.value) and "zalandoresearch" in str(err.value)


def test_download_only_when_asked(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeFashionMNIST:  # stands in for the network: writes what torchvision's download would
        def __init__(self, root: str, download: bool = False):
            calls.append(download)
            raw = Path(root) / "FashionMNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            for split, n in (("train", 20), ("t10k", 10)):
                write_idx(raw / f"{split}-images-idx3-ubyte", np.zeros((n, 28, 28)), compress=False)
                write_idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10, compress=False)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)
    with pytest.raises(DatasetMissing):
        make_task("fashion-cnn", data_dir=str(tmp_path)).data()
    assert calls == []
    s = make_task("fashion-cnn", data_dir=str(tmp_path), download=True, max_train=None, max_test=None).data()
    assert calls == [True] and len(s.x_test) == 10
