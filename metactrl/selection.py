"""Which training samples an epoch backpropagates: strategies and the per-sample memory they read.

Per-sample difficulty comes from losses the training forward passes already computed (``SampleMemory``);
a strategy that wants fresh scores over the whole set asks the engine for a scoring pass, which is
counted as forward compute.

Strategies (``keep`` is the data-keep ratio in (0, 1]):
    ``random``     ⌈keep·N⌉ samples uniformly at random (Progressive Data Dropout's SRD).
    ``hardest``    the ⌈keep·N⌉ samples with the lowest true-class probability (highest loss); samples
                   never seen count as hardest (PDD's difficulty-based variant).
    ``infobatch``  InfoBatch (Qin et al. 2024): well-learned samples (last loss below the mean) are dropped
                   with probability r and the kept ones' loss is rescaled by 1/(1−r). Given ``keep`` only,
                   r is chosen so that the expected kept fraction is ``keep``.
    ``threshold``  every sample whose true-class probability is below ``tau`` (PDD's DBPD); ``keep`` is ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .errors import InvalidValue, check_fraction, suggest

STRATEGIES = ("random", "hardest", "infobatch", "threshold")


class SampleMemory:
    """Last loss, true-class probability and correctness of every training sample (NaN/False if unseen)."""

    def __init__(self, n: int, device):
        self.loss = torch.full((n,), float("nan"), device=device)
        self.correct = torch.zeros(n, dtype=torch.bool, device=device)

    def __len__(self) -> int:
        return len(self.loss)

    # The true-class probability is exp(−loss) (exactly, for cross-entropy) and "seen" is "has a loss":
    # both are derived rather than written at every step, which keeps the training loop lean.
    @property
    def prob(self) -> torch.Tensor:
        return torch.exp(-self.loss)

    @property
    def seen(self) -> torch.Tensor:
        return ~torch.isnan(self.loss)

    @torch.no_grad()
    def update(self, idx: torch.Tensor, loss: torch.Tensor, prob: torch.Tensor | None, correct: torch.Tensor) -> None:
        """Record a batch's per-sample losses and correctness (``prob`` is implied by the loss)."""
        self.loss[idx] = loss.detach().float()
        self.correct[idx] = correct

    def learned_fraction(self) -> float:
        return float(self.correct.float().mean())


@dataclass
class Selection:
    """The epoch's samples and, for InfoBatch, each one's loss weight."""

    indices: torch.Tensor
    weights: torch.Tensor | None = None


def kept_count(keep: float, n: int) -> int:
    return min(n, max(1, math.ceil(keep * n - 1e-9)))


def select(strategy: str, keep: float, memory: SampleMemory, gen: torch.Generator, *,
           ratio: float | None = None, tau: float = 0.3) -> Selection:
    """Choose the epoch's training samples.

    Args:
        strategy: one of STRATEGIES.
        keep: data-keep ratio in (0, 1].
        memory: per-sample statistics from earlier passes.
        gen: the run's seeded generator (the only source of randomness here).
        ratio: InfoBatch prune probability r; derived from ``keep`` when None.
        tau: probability threshold of ``threshold``.
    """
    keep = check_fraction("keep", keep)
    n, dev = len(memory), memory.loss.device
    if strategy == "random":
        return Selection(_randperm(n, gen, dev)[: kept_count(keep, n)])
    if strategy == "hardest":
        return Selection(_hardest(memory, kept_count(keep, n), gen))
    if strategy == "infobatch":
        return _infobatch(memory, keep, ratio, gen)
    if strategy == "threshold":
        prob = torch.nan_to_num(memory.prob, nan=0.0)
        idx = torch.nonzero(prob < tau).flatten()
        return Selection(idx if len(idx) else _randperm(n, gen, dev)[:1])
    raise InvalidValue(suggest(strategy, STRATEGIES, what="selection strategy", hint=f"choose one of {STRATEGIES}"))


def _randperm(n: int, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randperm(n, generator=gen).to(device)


def _hardest(memory: SampleMemory, k: int, gen: torch.Generator) -> torch.Tensor:
    # Random tie-breaking (unseen samples all tie at +inf) by sorting a shuffled view.
    perm = _randperm(len(memory), gen, memory.loss.device)
    loss = torch.nan_to_num(memory.loss[perm], nan=float("inf"))
    order = torch.argsort(loss, descending=True, stable=True)
    return perm[order[:k]]


def _infobatch(memory: SampleMemory, keep: float, ratio: float | None, gen: torch.Generator) -> Selection:
    n, dev = len(memory), memory.loss.device
    seen = memory.seen
    if not bool(seen.any()):
        return Selection(torch.arange(n, device=dev), torch.ones(n, device=dev))
    mean = memory.loss[seen].mean()
    well = seen & (memory.loss < mean)
    frac_well = float(well.float().mean())
    if ratio is None:
        ratio = min(1.0, (1.0 - keep) / frac_well) if frac_well > 0 else 0.0
    ratio = float(ratio)
    if not 0.0 <= ratio < 1.0:
        # r = 1 would drop every well-learned sample and make the rescale infinite.
        ratio = min(max(ratio, 0.0), 0.99) if math.isfinite(ratio) else 0.0
    u = torch.rand(n, generator=gen).to(dev)
    drop = well & (u < ratio)
    idx = torch.nonzero(~drop).flatten()
    weights = torch.where(well[idx], torch.full_like(idx, 1, dtype=torch.float32) / (1.0 - ratio),
                          torch.ones(len(idx), device=dev))
    return Selection(idx, weights)
