"""Real-data vision tasks: Fashion-MNIST (1x28x28) and CIFAR-10 (3x32x32), each with a CNN and a ViT.

Factories only describe where the data is; the files are read by the Task's ``load_data`` closure.
Defaults are sized for 2 CPU cores (a few thousand training images); raise ``max_train`` / model sizes for GPUs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import data
from .datadir import data_dir as resolve_data_dir
from .models import CNN, ViT
from .registry import Splits, Task, register_task
from .splits import carve_validation

FASHION_MEAN, FASHION_STD = (0.2860,), (0.3530,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)

_FASHION_HOW = ("put the four files train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                "t10k-labels-idx1-ubyte (optionally .gz, or split into .gz.partNN pieces) in <data_dir>/fashion-mnist/ "
                "from https://github.com/zalandoresearch/fashion-mnist (or `apt-get install dataset-fashion-mnist`); "
                "point at the folder above it with `--data-dir` / data_dir= or $METACTRL_DATA; or pass download=True "
                "to fetch it with torchvision")
_CIFAR_HOW = ("put torchvision's cifar-10-batches-py/ (from https://www.cs.toronto.edu/~kriz/cifar.html) or the JPEG "
              "archives cifar10-jpg/test.tar.gz + train_<class>.tar.gz in the data folder; point at it with "
              "`--data-dir` / data_dir= or $METACTRL_DATA; or pass download=True to fetch it with torchvision")


def to_float_images(x: np.ndarray | torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...],
                    image_size: int | None = None) -> torch.Tensor:
    """uint8 images [N, C, H, W] -> normalised float32 tensor, optionally resized to image_size x image_size."""
    t = torch.as_tensor(np.asarray(x)).float().div_(255.0)
    if image_size is not None and t.shape[-1] != image_size:
        t = F.interpolate(t, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return (t - m) / s


def _image_splits(x, y, xt, yt, *, mean, std, image_size: int, max_train: int | None,
                  max_test: int | None) -> Splits:
    # Carve and subsample while the pixels are still uint8 (4x less memory), then normalise only what is kept.
    s = carve_validation(torch.as_tensor(x), torch.as_tensor(y, dtype=torch.long), torch.as_tensor(xt),
                         torch.as_tensor(yt, dtype=torch.long), max_train=max_train, max_test=max_test)
    return Splits(to_float_images(s.x_train, mean, std, image_size), s.y_train,
                  to_float_images(s.x_val, mean, std, image_size), s.y_val,
                  to_float_images(s.x_test, mean, std, image_size), s.y_test)


# ------------------------------------------------------------------------------------------ Fashion-MNIST


def load_fashion(root: Path, *, download: bool = False, max_train: int | None = 6000,
                 max_test: int | None = 2000, image_size: int = 28) -> Splits:
    """Fashion-MNIST splits: validation carved from the training files, test from the t10k files.

    Args:
        root: data folder holding ``fashion-mnist/`` or torchvision's ``FashionMNIST/raw/``.
        download: fetch with torchvision into ``root`` when the files are missing (off by default).
        max_train: training images kept (None: all 51000 left after validation is carved off).
        max_test: test images kept (None: all 10000).
        image_size: side of the (square) images the model sees; 28 is native.

    Raises:
        DatasetMissing: the files are absent and ``download`` is False.
    """
    files = data.find_fashion(root)
    if files is None and download:
        _torchvision_download("FashionMNIST", root)
        files = data.find_fashion(root)
    if files is None:
        raise data.missing("Fashion-MNIST", data.fashion_folders(root),
                           "the IDX files " + ", ".join(data.FASHION_FILES), _FASHION_HOW)
    x, y, xt, yt = data.load_fashion_arrays(files)
    return _image_splits(x[:, None], y, xt[:, None], yt, mean=FASHION_MEAN, std=FASHION_STD,
                         image_size=image_size, max_train=max_train, max_test=max_test)


def _torchvision_download(cls_name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    try:
        getattr(tvd, cls_name)(root=str(root), download=True)
    except Exception as e:  # network errors come in many types; all mean "still missing"
        raise data.missing(cls_name, [root], "torchvision to download the dataset",
                           f"the download failed ({e}); fetch the files by hand") from e


def _fashion_task(name: str, model_fn: Callable[[], nn.Module], data_dir: str | None, download: bool,
                  max_train: int | None, max_test: int | None, image_size: int, **budget) -> Task:
    root = resolve_data_dir(data_dir)
    return Task(name, model_fn,
                lambda: load_fashion(root, download=download, max_train=max_train, max_test=max_test,
                                     image_size=image_size),
                available=lambda: data.find_fashion(root) is not None,
                source=f"Fashion-MNIST IDX files in {root}/fashion-mnist or {root}/FashionMNIST/raw", **budget)


@register_task("fashion-cnn", family="cnn", data="fashion-mnist")
def fashion_cnn(*, data_dir: str | None = None, download: bool = False, max_train: int | None = 6000,
                max_test: int | None = 2000, image_size: int = 28, width: int = 16, depth: int = 2,
                epochs: int = 4, batch_size: int = 64, lr: float = 2e-3, optimizer: str = "adamw",
                weight_decay: float = 1e-4) -> Task:
    """Fashion-MNIST with a small CNN (defaults: 6000 training images, ~85% validation accuracy on 2 cores)."""
    return _fashion_task("fashion-cnn", lambda: CNN(1, 10, image_size, width=width, depth=depth), data_dir,
                         download, max_train, max_test, image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                         optimizer=optimizer, weight_decay=weight_decay)


@register_task("fashion-vit", family="vit", data="fashion-mnist")
def fashion_vit(*, data_dir: str | None = None, download: bool = False, max_train: int | None = 6000,
                max_test: int | None = 2000, image_size: int = 28, patch: int = 7, dim: int = 64, depth: int = 2,
                heads: int = 4, epochs: int = 6, batch_size: int = 64, lr: float = 2e-3, optimizer: str = "adamw",
                weight_decay: float = 1e-4) -> Task:
    """Fashion-MNIST with a small Vision Transformer (16 patches of 7x7 by default)."""
    return _fashion_task("fashion-vit",
                         lambda: ViT(1, 10, image_size, patch=patch, dim=dim, depth=depth, heads=heads), data_dir,
                         download, max_train, max_test, image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                         optimizer=optimizer, weight_decay=weight_decay)


# ----------------------------------------------------------------------------------------------- CIFAR-10


def cifar_available(root: Path) -> bool:
    """Whether either CIFAR-10 layout (torchvision pickles or JPEG archives) is complete under ``root``."""
    return data.cifar_pickle_files(root) is not None or data.cifar_jpeg_files(root) is not None


def load_cifar10(root: Path, *, download: bool = False, max_train: int | None = 5000,
                 max_test: int | None = 2000, image_size: int = 32) -> Splits:
    """CIFAR-10 splits from torchvision's pickles if present, else from the JPEG archives.

    A class-balanced, seeded subset of just enough training images is decoded for ``max_train`` to remain
    after validation is carved off; decoded JPEGs are cached (see :func:`metactrl.tasks.data.cache_dir`).

    Args:
        root: data folder holding ``cifar-10-batches-py/`` or ``cifar10-jpg/``.
        download: fetch with torchvision into ``root`` when both layouts are missing (off by default).
        max_train: training images kept (None: all 42500 left after validation is carved off).
        max_test: test images kept, class-balanced (None: all 10000).
        image_size: side of the (square) images the model sees; 32 is native.

    Raises:
        DatasetMissing: neither layout is present and ``download`` is False.
    """
    if not cifar_available(root) and download:
        _torchvision_download("CIFAR10", root)
    n_pool = data.pool_size(max_train)
    if (pickles := data.cifar_pickle_files(root)) is not None:
        x, y, xt, yt = data.load_cifar_pickles(pickles, n_pool, max_test)
    elif (jpegs := data.cifar_jpeg_files(root)) is not None:
        x, y, xt, yt = data.load_cifar_jpegs(jpegs, n_pool, max_test)
    else:
        looked = [root / data.CIFAR_PICKLE_DIR, root / data.CIFAR_JPEG_DIR]
        expected = ("cifar-10-batches-py/data_batch_1..5 + test_batch, or cifar10-jpg/test.tar.gz + "
                    + " + ".join(f"train_{c}.tar.gz" for c in data.CIFAR10_CLASSES))
        raise data.missing("CIFAR-10", looked, expected, _CIFAR_HOW)
    return _image_splits(x, y, xt, yt, mean=CIFAR_MEAN, std=CIFAR_STD, image_size=image_size,
                         max_train=max_train, max_test=None)


def _cifar_task(name: str, model_fn: Callable[[], nn.Module], data_dir: str | None, download: bool,
                max_train: int | None, max_test: int | None, image_size: int, **budget) -> Task:
    root = resolve_data_dir(data_dir)
    return Task(name, model_fn,
                lambda: load_cifar10(root, download=download, max_train=max_train, max_test=max_test,
                                     image_size=image_size),
                available=lambda: cifar_available(root),
                source=f"CIFAR-10 from {root}/{data.CIFAR_PICKLE_DIR} or {root}/{data.CIFAR_JPEG_DIR} (JPEG)",
                **budget)


@register_task("cifar10-cnn", family="cnn", data="cifar10")
def cifar10_cnn(*, data_dir: str | None = None, download: bool = False, max_train: int | None = 5000,
                max_test: int | None = 2000, image_size: int = 32, width: int = 16, depth: int = 4,
                epochs: int = 6, batch_size: int = 64, lr: float = 2e-3, optimizer: str = "adamw",
                weight_decay: float = 1e-4) -> Task:
    """CIFAR-10 with a small CNN (defaults: 5000 training images, ~50% validation accuracy on 2 cores)."""
    return _cifar_task("cifar10-cnn", lambda: CNN(3, 10, image_size, width=width, depth=depth), data_dir,
                       download, max_train, max_test, image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                       optimizer=optimizer, weight_decay=weight_decay)


@register_task("cifar10-vit", family="vit", data="cifar10")
def cifar10_vit(*, data_dir: str | None = None, download: bool = False, max_train: int | None = 5000,
                max_test: int | None = 2000, image_size: int = 32, patch: int = 4, dim: int = 64, depth: int = 2,
                heads: int = 4, epochs: int = 6, batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adamw",
                weight_decay: float = 1e-4) -> Task:
    """CIFAR-10 with a small Vision Transformer (64 patches of 4x4 by default)."""
    return _cifar_task("cifar10-vit",
                       lambda: ViT(3, 10, image_size, patch=patch, dim=dim, depth=depth, heads=heads), data_dir,
                       download, max_train, max_test, image_size, epochs=epochs, batch_size=batch_size, lr=lr,
                       optimizer=optimizer, weight_decay=weight_decay)
