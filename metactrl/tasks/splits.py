"""Turning raw arrays into Splits: seeded validation carving, sequence chunking for language models."""

from __future__ import annotations

import torch

from .registry import Splits

DATA_SEED = 12345  # fixed so that every run of a task sees the same train/val partition


def carve_validation(x: torch.Tensor, y: torch.Tensor, x_test, y_test, *, val_fraction: float = 0.15,
                     max_train: int | None = None, max_test: int | None = None) -> Splits:
    """Split (x, y) into train and validation with a fixed seed; optionally subsample train and test."""
    g = torch.Generator().manual_seed(DATA_SEED)
    perm = torch.randperm(len(x), generator=g)
    n_val = max(1, int(round(val_fraction * len(x))))
    val, train = perm[:n_val], perm[n_val:]
    if max_train is not None:
        train = train[:max_train]
        val = val[: max(1, int(round(val_fraction / (1 - val_fraction) * len(train))))]
    if max_test is not None and len(x_test) > max_test:
        keep = torch.randperm(len(x_test), generator=g)[:max_test]
        x_test, y_test = x_test[keep], y_test[keep]
    return Splits(x[train], y[train], x[val], y[val], x_test, y_test)


def chunk_tokens(ids: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-overlapping (input, next-token target) windows of length seq_len from a 1-D id stream."""
    n = (len(ids) - 1) // seq_len
    x = ids[: n * seq_len].view(n, seq_len)
    y = ids[1 : n * seq_len + 1].view(n, seq_len)
    return x.contiguous(), y.contiguous()


def lm_splits(ids: torch.Tensor, seq_len: int, *, test_ids: torch.Tensor | None = None,
              val_fraction: float = 0.1, test_fraction: float = 0.1, max_train: int | None = None) -> Splits:
    """Contiguous stream split for LMs: the tail is test (unless given), validation comes from training text."""
    if test_ids is None:
        cut = int(len(ids) * (1 - test_fraction))
        ids, test_ids = ids[:cut], ids[cut:]
    x, y = chunk_tokens(ids, seq_len)
    xt, yt = chunk_tokens(test_ids, seq_len)
    return carve_validation(x, y, xt, yt, val_fraction=val_fraction, max_train=max_train,
                            max_test=None if max_train is None else max(1, max_train // 4))
