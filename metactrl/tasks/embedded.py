"""Embedded tasks: no files needed. Digits (scikit-learn's bundled copy) and Python's own pydoc text."""

from __future__ import annotations

import torch

from .models import CNN, MLP, TransformerLM, ViT
from .registry import Task, register_task
from .splits import carve_validation, lm_splits


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(0)  # fixed test hold-out of 20%; validation is carved from the rest
    perm = torch.randperm(len(x), generator=g)
    n_test = len(x) // 5
    te, tr = perm[:n_test], perm[n_test:]
    return carve_validation(x[tr], y[tr], x[te], y[te])


@register_task("digits-cnn", family="cnn", data="digits")
def digits_cnn(*, width: int = 16, depth: int = 2, epochs: int = 12, batch_size: int = 32, lr: float = 2e-3,
               optimizer: str = "adamw", weight_decay: float = 1e-4) -> Task:
    return Task("digits-cnn", lambda: CNN(1, 10, 8, width=width, depth=depth), _digits,
                epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                source="scikit-learn bundled digits (1797 8x8 images)")


@register_task("digits-mlp", family="mlp", data="digits")
def digits_mlp(*, width: int = 128, depth: int = 2, epochs: int = 12, batch_size: int = 32, lr: float = 2e-3,
               optimizer: str = "adamw", weight_decay: float = 1e-4) -> Task:
    return Task("digits-mlp", lambda: MLP(64, 10, width=width, depth=depth), _digits,
                epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                source="scikit-learn bundled digits (1797 8x8 images)")


@register_task("digits-vit", family="vit", data="digits")
def digits_vit(*, dim: int = 48, depth: int = 2, heads: int = 4, patch: int = 2, epochs: int = 12,
               batch_size: int = 32, lr: float = 2e-3, optimizer: str = "adamw", weight_decay: float = 1e-4) -> Task:
    return Task("digits-vit", lambda: ViT(1, 10, 8, patch=patch, dim=dim, depth=depth, heads=heads), _digits,
                epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                source="scikit-learn bundled digits (1797 8x8 images)")


def pydoc_text() -> str:
    """The English text of Python's own documentation topics (``pydoc_data.topics``), ~465k chars."""
    from pydoc_data.topics import topics

    return "".join(topics[k] for k in sorted(topics))


class CharVocab:
    """Character vocabulary built from a text; unknown characters map to index 0."""

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.index.get(c, 0) for c in text], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.chars)


@register_task("pydoc-charlm", family="charlm", data="pydoc")
def pydoc_charlm(*, seq_len: int = 64, dim: int = 64, depth: int = 2, heads: int = 4, max_chars: int = 160_000,
                 epochs: int = 8, batch_size: int = 32, lr: float = 2e-3, optimizer: str = "adamw",
                 weight_decay: float = 1e-4) -> Task:
    text = pydoc_text()[:max_chars]
    vocab = CharVocab(text)
    return Task("pydoc-charlm", lambda: TransformerLM(len(vocab), seq_len, dim=dim, depth=depth, heads=heads),
                lambda: lm_splits(vocab.encode(text), seq_len), kind="lm", num_classes=len(vocab),
                epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, weight_decay=weight_decay,
                source=f"Python's pydoc_data topics ({len(text)} chars)")
