"""Offline readers for real dataset files: IDX (Fashion-MNIST), CIFAR-10 pickles and JPEG tarballs, text.

Nothing here downloads anything or writes into the data directory. Decoded arrays that are slow to rebuild
(CIFAR-10 JPEGs) are cached as ``.npz`` under :func:`cache_dir`, keyed by the source files' sizes and mtimes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import os
import pickle
import tarfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import DatasetMissing
from .splits import DATA_SEED

CACHE_ENV_VAR = "METACTRL_CACHE"
VAL_FRACTION = 0.15  # matches carve_validation's default, so pools sized here leave max_train after carving
_CACHE_VERSION = 1  # bump when the cached array layout changes


# ----------------------------------------------------------------------------------------------- errors


def missing(dataset: str, looked: list[Path], expected: str, how: str) -> DatasetMissing:
    """Build a DatasetMissing that names every path looked at, the files expected, and how to get them.

    Args:
        dataset: human name of the dataset.
        looked: every path that was checked.
        expected: description of the files that should be there.
        how: how to obtain them.

    Returns:
        The exception (the caller raises it).
    """
    paths = "\n".join(f"  - {p}" for p in looked)
    return DatasetMissing(f"{dataset} not found. Looked at:\n{paths}\nExpected {expected}.\nTo fix: {how}")


# ------------------------------------------------------------------------------------------------ cache


def cache_dir() -> Path:
    """Folder for decoded-data caches: ``$METACTRL_CACHE`` or ``~/.cache/metactrl``."""
    env = os.environ.get(CACHE_ENV_VAR)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "metactrl"


def file_signature(paths: list[Path]) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of each file: cheap to compute and changes whenever a file is replaced."""
    out = []
    for p in paths:
        st = p.stat()
        out.append((p.name, st.st_size, st.st_mtime_ns))
    return out


def cached_arrays(prefix: str, key: dict, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Return ``build()``'s arrays, from ``<cache_dir>/<prefix>-<hash(key)>.npz`` when present.

    Args:
        prefix: file-name prefix naming the dataset.
        key: JSON-serialisable description of everything the arrays depend on.
        build: computes the arrays on a cache miss.

    Returns:
        Mapping of array name to array.
    """
    digest = hashlib.sha256(json.dumps({"v": _CACHE_VERSION, **key}, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / f"{prefix}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError):
            pass  # a truncated or corrupt cache is rebuilt below
    arrays = build()
    _save_npz(path, arrays)
    return arrays


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # Write-then-rename so that a concurrent reader never sees a half-written file. A read-only cache
    # location only costs speed, so it is a warning, not an error.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"could not write the data cache {path}: {e}. Set ${CACHE_ENV_VAR} to a writable folder.",
                      stacklevel=3)


# -------------------------------------------------------------------------------------------------- IDX

FASHION_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte")


def find_blob(folder: Path, name: str) -> list[Path] | None:
    """Locate ``name``, ``name.gz``, or the split pieces ``name[.gz].partNN`` in ``folder``.

    Returns:
        The file(s) to concatenate, in order, or None if absent.
    """
    for base in (name, name + ".gz"):
        if (folder / base).is_file():
            return [folder / base]
        parts = sorted(p for p in folder.glob(base + ".part*") if p.is_file())
        if parts:
            return parts
    return None


def read_blob(paths: list[Path]) -> bytes:
    """Join pieces in memory (never on disk) and gunzip if the result is gzip data."""
    raw = b"".join(p.read_bytes() for p in paths)
    # Detect gzip by its magic bytes, not the name: torchvision keeps both packed and unpacked copies.
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def parse_idx(raw: bytes) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (the MNIST-family format) into an array.

    Args:
        raw: the uncompressed file content.

    Returns:
        uint8 array of the shape stored in the header.

    Raises:
        ValueError: if the header is not an unsigned-byte IDX header or the size does not match.
    """
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    if len(raw) - offset != math.prod(dims):
        raise ValueError(f"IDX header says {dims} but the file holds {len(raw) - offset} values")
    # Copy: frombuffer views are read-only, and torch warns when wrapping them.
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims).copy()


def fashion_folders(root: Path) -> list[Path]:
    """The folders searched for Fashion-MNIST: torchvision's layout first, then the plain one."""
    return [root / "FashionMNIST" / "raw", root / "fashion-mnist"]


def find_fashion(root: Path) -> dict[str, list[Path]] | None:
    """The four Fashion-MNIST IDX files (each as its list of pieces) from the first folder holding all four."""
    for folder in fashion_folders(root):
        found = {name: find_blob(folder, name) for name in FASHION_FILES}
        if all(found.values()):
            return found
    return None


def load_fashion_arrays(files: dict[str, list[Path]]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Decode the Fashion-MNIST files found by :func:`find_fashion`.

    Returns:
        (x_train [60000, 28, 28] uint8, y_train [60000] uint8, x_test [10000, 28, 28], y_test [10000]).
    """
    xtr, ytr, xte, yte = (parse_idx(read_blob(files[n])) for n in FASHION_FILES)
    if len(xtr) != len(ytr) or len(xte) != len(yte):
        raise ValueError(f"Fashion-MNIST images and labels disagree: {len(xtr)}/{len(ytr)}, {len(xte)}/{len(yte)}")
    return xtr, ytr, xte, yte


# ---------------------------------------------------------------------------------------------- CIFAR-10

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_PICKLE_DIR = "cifar-10-batches-py"
CIFAR_JPEG_DIR = "cifar10-jpg"


def cifar_pickle_files(root: Path) -> list[Path] | None:
    """torchvision's CIFAR-10 layout: ``data_batch_1..5`` then ``test_batch``, or None if incomplete."""
    folder = root / CIFAR_PICKLE_DIR
    files = [folder / f"data_batch_{i}" for i in range(1, 6)] + [folder / "test_batch"]
    return files if all(p.is_file() for p in files) else None


def cifar_jpeg_files(root: Path) -> list[Path] | None:
    """The JPEG archives: ``test.tar.gz`` then ``train_<class>.tar.gz`` in class order, or None if incomplete."""
    folder = root / CIFAR_JPEG_DIR
    files = [folder / "test.tar.gz"] + [folder / f"train_{c}.tar.gz" for c in CIFAR10_CLASSES]
    return files if all(p.is_file() for p in files) else None


def balanced_indices(labels: np.ndarray, n: int | None, seed: int = DATA_SEED) -> np.ndarray:
    """Pick ``n`` indices with (near-)equal counts per class, at random within each class, deterministically.

    Args:
        labels: integer class of each item.
        n: how many to keep; None (or >= len(labels)) keeps all.
        seed: random seed of the choice within each class.

    Returns:
        Sorted int64 indices into ``labels``.
    """
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    chosen = []
    for i, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        k = n // len(classes) + (1 if i < n % len(classes) else 0)
        chosen.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(chosen))


def pool_size(max_train: int | None, val_fraction: float = VAL_FRACTION) -> int | None:
    """How many training-file items to draw so that ``max_train`` remain after validation is carved off."""
    return None if max_train is None else math.ceil(max_train / (1.0 - val_fraction))


def load_cifar_pickles(files: list[Path], n_train: int | None, n_test: int | None):
    """Read torchvision's CIFAR-10 batches and keep a class-balanced subset.

    Returns:
        (x_train [N, 3, 32, 32] uint8, y_train [N] int64, x_test, y_test).
    """
    def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")  # the official files are Python 2 pickles
        return np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(d["labels"], np.int64)

    parts = [read(p) for p in files[:-1]]
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    xt, yt = read(files[-1])
    tr, te = balanced_indices(y, n_train), balanced_indices(yt, n_test)
    return x[tr], y[tr], xt[te], yt[te]


def load_cifar_jpegs(files: list[Path], n_train: int | None, n_test: int | None):
    """Decode a class-balanced subset of the CIFAR-10 JPEG archives, cached under :func:`cache_dir`.

    Args:
        files: from :func:`cifar_jpeg_files` (test archive first).
        n_train: training-file images to decode (None: all 50000).
        n_test: test images to decode (None: all 10000).

    Returns:
        (x_train [N, 3, 32, 32] uint8, y_train [N] int64, x_test, y_test).
    """
    key = {"files": file_signature(files), "n_train": n_train, "n_test": n_test, "seed": DATA_SEED}

    def build() -> dict[str, np.ndarray]:
        xt, yt = _decode_subset(files[:1], n_test)
        x, y = _decode_subset(files[1:], n_train)
        return {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}

    a = cached_arrays("cifar10-jpg", key, build)
    return a["x_train"], a["y_train"], a["x_test"], a["y_test"]


def _decode_subset(archives: list[Path], n: int | None) -> tuple[np.ndarray, np.ndarray]:
    # Each archive is unpacked into memory once (a few MB); only the chosen members are JPEG-decoded.
    members = [m for a in archives for m in _jpeg_members(a)]
    labels = np.array([label for _, label, _ in members], dtype=np.int64)
    keep = balanced_indices(labels, n)
    x = np.stack([_decode_jpeg(members[i][2]) for i in keep])
    return x, labels[keep]


def _jpeg_members(archive: Path) -> list[tuple[str, int, bytes]]:
    """(name, label, bytes) of each ``<split>/<class>/<file>.jpg`` member, sorted by name for determinism."""
    index = {c: i for i, c in enumerate(CIFAR10_CLASSES)}
    out = []
    for name, blob in _tar_files(archive):
        parts = name.split("/")
        if not name.lower().endswith(".jpg") or len(parts) < 2:
            continue
        if parts[-2] not in index:
            raise ValueError(f"{archive}: member {name} is in unknown class folder '{parts[-2]}'")
        out.append((name, index[parts[-2]], blob))
    return sorted(out, key=lambda m: m[0])


def _tar_files(archive: Path) -> list[tuple[str, bytes]]:
    """(name, content) of the regular files in a .tar.gz.

    Python's tarfile spends ~0.15 ms per header in pure Python (about 8 s for the 60k CIFAR members), so plain
    ustar/GNU headers are parsed directly; any extended header (long names, pax) falls back to tarfile.
    """
    buf = gzip.decompress(archive.read_bytes())
    try:
        return _parse_plain_tar(buf)
    except _ExtendedTar:
        with tarfile.open(fileobj=io.BytesIO(buf)) as tf:
            return [(m.name, tf.extractfile(m).read()) for m in tf.getmembers() if m.isfile()]


class _ExtendedTar(Exception):
    """A tar feature the fast parser leaves to tarfile."""


def _parse_plain_tar(buf: bytes) -> list[tuple[str, bytes]]:
    out, pos = [], 0
    while pos + 512 <= len(buf):
        hdr = buf[pos : pos + 512]
        if hdr.count(0) == 512:  # end-of-archive marker
            break
        flag, size_field = hdr[156:157], hdr[124:136]
        if flag not in (b"0", b"\0", b"5", b"1", b"2") or size_field[0] & 0x80:
            raise _ExtendedTar
        name = hdr[:100].split(b"\0", 1)[0].decode("utf-8")
        prefix = hdr[345:500].split(b"\0", 1)[0] if hdr[257:263] == b"ustar\0" else b""
        if prefix:  # POSIX ustar splits long paths into prefix + name
            name = prefix.decode("utf-8") + "/" + name
        size = int(size_field.split(b"\0", 1)[0].strip() or b"0", 8)
        pos += 512
        if flag in (b"0", b"\0"):
            out.append((name, buf[pos : pos + size]))
        pos += -(-size // 512) * 512
    return out


def _decode_jpeg(blob: bytes) -> np.ndarray:
    from PIL import Image  # imported here so that tasks not using JPEGs need no Pillow

    with Image.open(io.BytesIO(blob)) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)


# ------------------------------------------------------------------------------------------------- text


def first_file(candidates: list[Path]) -> Path | None:
    """The first existing file among ``candidates``."""
    return next((p for p in candidates if p.is_file()), None)


def read_text(path: Path, max_chars: int | None = None) -> str:
    """Read UTF-8 text (undecodable bytes replaced), keeping at most ``max_chars`` characters."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text if max_chars is None else text[:max_chars]


def read_word_tokens(path: Path, max_tokens: int | None = None) -> list[str]:
    """Whitespace tokens of each line followed by ``<eos>`` (the WikiText / pytorch-examples convention)."""
    tokens: list[str] = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            tokens.extend(line.split())
            tokens.append("<eos>")
            if max_tokens is not None and len(tokens) >= max_tokens:
                return tokens[:max_tokens]
    return tokens
