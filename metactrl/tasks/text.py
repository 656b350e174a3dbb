"""Real-data language-model tasks: Tiny Shakespeare (characters) and WikiText-2 (words).

Factories only describe where the data is; the files are read by the Task's ``load_data`` closure. Since the
Task needs its vocabulary size before any file is read, both vocabularies have a size fixed by configuration:
a fixed printable-ASCII alphabet for characters, and ``vocab_size`` most frequent words for WikiText-2.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from . import data
from .datadir import data_dir as resolve_data_dir
from .embedded import CharVocab
from .models import TransformerLM
from .registry import Splits, Task, register_task
from .splits import lm_splits

UNK = "<unk>"
EOS = "<eos>"
# "\0" sorts first, so CharVocab gives it index 0 = the id of any character outside the alphabet.
ASCII_ALPHABET = "\0\t\n" + "".join(chr(c) for c in range(32, 127))

# -------------------------------------------------------------------------------------------- Shakespeare


def shakespeare_paths(root: Path) -> list[Path]:
    """Where Tiny Shakespeare is looked for, in order."""
    return [root / "tinyshakespeare" / "input.txt", root / "tinyshakespeare.txt"]


def load_shakespeare(root: Path, *, seq_len: int = 64, max_chars: int | None = 200_000) -> Splits:
    """Character-level Tiny Shakespeare: the last 10% is test, validation is carved from the rest.

    Raises:
        DatasetMissing: no candidate file exists.
    """
    path = data.first_file(shakespeare_paths(root))
    if path is None:
        raise data.missing(
            "Tiny Shakespeare", shakespeare_paths(root), "the 1.1 MB plain-text file input.txt",
            "download https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt "
            "into <data_dir>/tinyshakespeare/ and point at <data_dir> with `--data-dir` / data_dir= or $METACTRL_DATA")
    vocab = CharVocab(ASCII_ALPHABET)
    return lm_splits(vocab.encode(data.read_text(path, max_chars)), seq_len)


@register_task("shakespeare-charlm", family="charlm", data="tinyshakespeare")
def shakespeare_charlm(*, data_dir: str | None = None, seq_len: int = 64, dim: int = 64, depth: int = 2,
                       heads: int = 4, max_chars: int | None = 200_000, epochs: int = 6, batch_size: int = 32,
                       lr: float = 2e-3, optimizer: str = "adamw", weight_decay: float = 1e-4) -> Task:
    """Character-level language model on Tiny Shakespeare (first ``max_chars`` characters)."""
    root = resolve_data_dir(data_dir)
    n_vocab = len(CharVocab(ASCII_ALPHABET))
    return Task("shakespeare-charlm",
                lambda: TransformerLM(n_vocab, seq_len, dim=dim, depth=depth, heads=heads),
                lambda: load_shakespeare(root, seq_len=seq_len, max_chars=max_chars),
                kind="lm", num_classes=n_vocab, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                weight_decay=weight_decay, available=lambda: data.first_file(shakespeare_paths(root)) is not None,
                source=f"Tiny Shakespeare text at {root}/tinyshakespeare/input.txt")


# -------------------------------------------------------------------------------------------- WikiText-2


class WordVocab:
    """The ``size - 1`` most frequent words of a token list, plus ``<unk>`` (index 0) for all others.

    Ties are broken alphabetically so that the vocabulary depends only on the text.
    """

    def __init__(self, tokens: list[str], size: int):
        counts = Counter(t for t in tokens if t != UNK)
        ranked = sorted(counts, key=lambda w: (-counts[w], w))[: max(0, size - 1)]
        self.words = [UNK, *ranked]
        self.index = {w: i for i, w in enumerate(self.words)}

    def encode(self, tokens: list[str]) -> torch.Tensor:
        """Token ids (unknown words -> 0)."""
        return torch.tensor([self.index.get(t, 0) for t in tokens], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.words)


_WIKI_NAMES = {"train": ("wiki.train.tokens", "train.txt"), "valid": ("wiki.valid.tokens", "valid.txt"),
               "test": ("wiki.test.tokens", "test.txt")}


def wikitext_file(root: Path, split: str) -> Path | None:
    """The WikiText-2 file of ``split`` (train/valid/test) in either naming, or None."""
    return data.first_file([root / "wikitext-2" / n for n in _WIKI_NAMES[split]])


def wikitext_available(root: Path) -> bool:
    """Test split plus a training source (train, or valid standing in for it)."""
    return wikitext_file(root, "test") is not None and (
        wikitext_file(root, "train") is not None or wikitext_file(root, "valid") is not None)


def load_wikitext2(root: Path, *, seq_len: int = 32, vocab_size: int = 3000, max_tokens: int | None = 120_000,
                   max_test_tokens: int | None = 50_000) -> Splits:
    """Word-level WikiText-2.

    Training text is ``wiki.train.tokens``; when it is absent (as in the shared snapshot) ``wiki.valid.tokens``
    stands in. Validation is always carved from the training text and test always comes from ``wiki.test.tokens``.

    Args:
        root: data folder holding ``wikitext-2/``.
        seq_len: tokens per sequence.
        vocab_size: vocabulary size including ``<unk>``, built from the training text only.
        max_tokens: cap on training-text tokens (the first ones), None for all.
        max_test_tokens: cap on test tokens, None for all.

    Raises:
        DatasetMissing: the test file or every training source is absent.
    """
    train_path = wikitext_file(root, "train") or wikitext_file(root, "valid")
    test_path = wikitext_file(root, "test")
    if train_path is None or test_path is None:
        looked = [root / "wikitext-2" / n for split in ("train", "valid", "test") for n in _WIKI_NAMES[split]]
        raise data.missing(
            "WikiText-2", looked, "wiki.test.tokens and wiki.train.tokens (or wiki.valid.tokens in its place)",
            "get the tokenised WikiText-2 (v1) files, e.g. pytorch/examples word_language_model/data/wikitext-2/, "
            "into <data_dir>/wikitext-2/ and point at <data_dir> with `--data-dir` / data_dir= or $METACTRL_DATA")
    train_tokens = data.read_word_tokens(train_path, max_tokens)
    vocab = WordVocab(train_tokens, vocab_size)
    test_ids = vocab.encode(data.read_word_tokens(test_path, max_test_tokens))
    return lm_splits(vocab.encode(train_tokens), seq_len, test_ids=test_ids)


@register_task("wikitext2-lm", family="wordlm", data="wikitext2")
def wikitext2_lm(*, data_dir: str | None = None, seq_len: int = 32, vocab_size: int = 3000, dim: int = 64,
                 depth: int = 2, heads: int = 4, max_tokens: int | None = 120_000,
                 max_test_tokens: int | None = 50_000, epochs: int = 6, batch_size: int = 32, lr: float = 2e-3,
                 optimizer: str = "adamw", weight_decay: float = 1e-4) -> Task:
    """Word-level language model on WikiText-2 (``vocab_size`` words, first ``max_tokens`` training tokens)."""
    root = resolve_data_dir(data_dir)
    return Task("wikitext2-lm",
                lambda: TransformerLM(vocab_size, seq_len, dim=dim, depth=depth, heads=heads),
                lambda: load_wikitext2(root, seq_len=seq_len, vocab_size=vocab_size, max_tokens=max_tokens,
                                       max_test_tokens=max_test_tokens),
                kind="lm", num_classes=vocab_size, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                weight_decay=weight_decay, available=lambda: wikitext_available(root),
                source=f"WikiText-2 tokens in {root}/wikitext-2 (valid file stands in for a missing train file)")
