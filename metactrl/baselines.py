"""Published baselines as schedules: the same interface as a learned policy, so anything that runs one runs all.

Specs (``make_schedule``) and what each epoch t of T does:

=====================  ==============================================================================
``pdd-srd[:γ]``        Progressive Data Dropout, scalar random dropout (Gowda et al. 2025): ⌈γ^(t−1)·N⌉
                       random samples in epoch t < T; the last epoch (the paper's revision epoch) uses all N.
``pdd-dbpd[:τ]``       PDD, difficulty-based: a counted no-grad scoring pass over all N, then every sample
                       whose true-class probability is below τ; all N in the revision epoch (no scoring).
``pdd-smrd[:τ]``       PDD, schedule-matched random: the same counted scoring pass, then as many random
                       samples as DBPD would keep on that state; all N in the revision epoch.
``infobatch[:r]``      InfoBatch (Qin et al. 2024): well-learned samples (last loss below the mean) dropped with
                       probability r, the kept ones' loss scaled by 1/(1−r); the last ⌈T/8⌉ epochs use all
                       data with no rescaling (the paper's annealing).
``lazy``               Lazy learning (Pache & van Rossum): only misclassified samples give gradient; a batch
                       with no mistakes costs no backward pass and no update.
``topk:Q``             Full data, only the top fraction Q of weights change at each step.
``topk-anneal:Q``      As ``topk`` with the fraction annealed log-linearly from 1 (epoch 1) to Q (epoch T):
                       update_t = Q^((t−1)/(T−1)), i.e. geometric steps, the same factor every epoch.
``random``             Uniform keep in [0.05, 1] and log-uniform update in [0.01, 1] each epoch, from a generator
                       seeded by the engine's seed: a sanity floor for any learned policy, deterministic per seed.
=====================  ==============================================================================

Defaults are the papers': γ = 0.95, τ = 0.3, r = 0.5. A schedule's ``name`` is the spec it was made from.
"""

from __future__ import annotations

import math
import time

import numpy as np

from .errors import InvalidSchedule
from .schedules import Decision, register_schedule

GAMMA, TAU, RATIO = 0.95, 0.3, 0.5
INFOBATCH_FULL_TAIL = 0.125  # InfoBatch trains on all data for the last 12.5% of epochs
RANDOM_KEEP = (0.05, 1.0)
RANDOM_UPDATE = (0.01, 1.0)


def _full() -> Decision:
    """All N samples, no loss weights, every weight free to change (the revision / annealing epochs)."""
    return Decision(1.0, 1.0, select="random")


def _spec(prefix: str, arg: str) -> str:
    return f"{prefix}:{arg}" if arg else prefix


def _param(prefix: str, arg: str, default: float | None, *, what: str, low: float, high: float,
           low_open: bool, high_open: bool, example: str) -> float:
    """Parse the numeric argument of ``prefix:arg`` and check it lies in its interval."""
    if not arg:
        if default is None:
            raise InvalidSchedule(f"'{prefix}' needs {what}, e.g. {example}; got '{prefix}'.")
        return default
    try:
        v = float(arg)
    except ValueError:
        v = math.nan
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if not (lo_ok and hi_ok):  # NaN fails both
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise InvalidSchedule(f"'{prefix}' expects {what} in {interval}, e.g. {example}; got '{prefix}:{arg}'.")
    return v


def _no_arg(prefix: str, arg: str) -> None:
    if arg:
        raise InvalidSchedule(f"'{prefix}' takes no argument, e.g. {prefix}; got '{prefix}:{arg}'.")


class _Base:
    """Remembers the run length; ``reset`` is called by the runner before epoch 1."""

    name = "base"

    def __init__(self) -> None:
        self.epochs = 0

    def reset(self, engine, epochs: int) -> None:
        self.epochs = int(epochs)

    def is_last(self, epoch: int) -> bool:
        return epoch >= self.epochs


class ScalarRandomDropout(_Base):
    """PDD-SRD: ⌈γ^(t−1)·N⌉ random samples in epoch t, all N in the final (revision) epoch."""

    def __init__(self, gamma: float = GAMMA, name: str = "pdd-srd"):
        super().__init__()
        self.gamma, self.name = gamma, name

    def decide(self, engine, epoch: int) -> Decision:
        if self.is_last(epoch):
            return _full()
        return Decision(keep=self.gamma ** (epoch - 1), update=1.0, select="random")


class DifficultyDropout(_Base):
    """PDD-DBPD: rescore all N (counted), keep p_true < τ; all N in the revision epoch."""

    def __init__(self, tau: float = TAU, name: str = "pdd-dbpd"):
        super().__init__()
        self.tau, self.name = tau, name

    def decide(self, engine, epoch: int) -> Decision:
        if self.is_last(epoch):
            return _full()
        return Decision(keep=1.0, update=1.0, select="threshold", tau=self.tau, rescore=True)


class MatchedRandomDropout(_Base):
    """PDD-SMRD: as many random samples as DBPD would keep on the same state; all N in the revision epoch.

    ``decide`` runs the same counted scoring pass DBPD does (``engine.score_all``: forward samples,
    scoring samples and FLOPs), counts p_true < τ, and asks for that many random samples. The pass
    happens before ``run_epoch`` starts its clock, so its time is added to the meter here; its samples
    appear in the run totals but not in the following epoch's record.
    """

    def __init__(self, tau: float = TAU, name: str = "pdd-smrd"):
        super().__init__()
        self.tau, self.name = tau, name
        self.counts: list[int] = []

    def reset(self, engine, epochs: int) -> None:
        super().reset(engine, epochs)
        self.counts = []

    def decide(self, engine, epoch: int) -> Decision:
        if self.is_last(epoch):
            return _full()
        t0 = time.perf_counter()
        engine.score_all()
        engine.meter.wall_s += time.perf_counter() - t0
        n = len(engine.memory)
        count = int((engine.memory.prob < self.tau).sum())
        # DBPD falls back to one sample when nothing is below τ; match it.
        count = max(1, count)
        self.counts.append(count)
        return Decision(keep=count / n, update=1.0, select="random")


class InfoBatch(_Base):
    """InfoBatch with prune probability r; full data, no rescaling, for the last ⌈T/8⌉ epochs."""

    def __init__(self, ratio: float = RATIO, name: str = "infobatch"):
        super().__init__()
        self.ratio, self.name = ratio, name

    def full_from(self) -> int:
        """First epoch (1-based) of the full-data tail."""
        return self.epochs - math.ceil(INFOBATCH_FULL_TAIL * self.epochs) + 1

    def decide(self, engine, epoch: int) -> Decision:
        if epoch >= self.full_from():
            return _full()  # select='random' with keep 1: all samples, no loss weights
        return Decision(keep=1.0, update=1.0, select="infobatch", ratio=self.ratio)


class Lazy(_Base):
    """Lazy learning: full data, gradient only from misclassified samples."""

    name = "lazy"

    def decide(self, engine, epoch: int) -> Decision:
        return Decision(keep=1.0, update=1.0, learn_from="mistakes")


class TopK(_Base):
    """Full data, a fixed fraction Q of weights updated per step."""

    def __init__(self, fraction: float, name: str):
        super().__init__()
        self.fraction, self.name = fraction, name

    def decide(self, engine, epoch: int) -> Decision:
        return Decision(keep=1.0, update=self.fraction)


class TopKAnneal(TopK):
    """Full data, update fraction Q^((t−1)/(T−1)): 1 in epoch 1, Q in epoch T, geometric in between."""

    def update_at(self, epoch: int) -> float:
        if self.epochs <= 1:
            return self.fraction
        return self.fraction ** ((epoch - 1) / (self.epochs - 1))

    def decide(self, engine, epoch: int) -> Decision:
        return Decision(keep=1.0, update=self.update_at(epoch))


class RandomActions(_Base):
    """Uniform keep in [0.05, 1], log-uniform update in [0.01, 1], seeded from the engine's seed."""

    name = "random"
    SALT = 0x5EED  # keeps this stream apart from the engine's own generators seeded with the same seed

    def __init__(self) -> None:
        super().__init__()
        self.rng = np.random.default_rng([0, self.SALT])

    def reset(self, engine, epochs: int) -> None:
        super().reset(engine, epochs)
        self.rng = np.random.default_rng([int(engine.seed), self.SALT])

    def decide(self, engine, epoch: int) -> Decision:
        keep = float(self.rng.uniform(*RANDOM_KEEP))
        lo, hi = (math.log10(v) for v in RANDOM_UPDATE)
        update = float(10.0 ** self.rng.uniform(lo, hi))
        return Decision(keep=keep, update=min(1.0, update), select="random")


@register_schedule("pdd-srd")
def _pdd_srd(arg: str) -> ScalarRandomDropout:
    g = _param("pdd-srd", arg, GAMMA, what="a decay factor γ", low=0, high=1, low_open=True, high_open=True,
               example="pdd-srd:0.95")
    return ScalarRandomDropout(g, name=_spec("pdd-srd", arg))


@register_schedule("pdd-dbpd")
def _pdd_dbpd(arg: str) -> DifficultyDropout:
    t = _param("pdd-dbpd", arg, TAU, what="a probability threshold τ", low=0, high=1, low_open=True,
               high_open=False, example="pdd-dbpd:0.3")
    return DifficultyDropout(t, name=_spec("pdd-dbpd", arg))


@register_schedule("pdd-smrd")
def _pdd_smrd(arg: str) -> MatchedRandomDropout:
    t = _param("pdd-smrd", arg, TAU, what="a probability threshold τ", low=0, high=1, low_open=True,
               high_open=False, example="pdd-smrd:0.3")
    return MatchedRandomDropout(t, name=_spec("pdd-smrd", arg))


@register_schedule("infobatch")
def _infobatch(arg: str) -> InfoBatch:
    r = _param("infobatch", arg, RATIO, what="a prune probability r", low=0, high=1, low_open=False,
               high_open=True, example="infobatch:0.5")
    return InfoBatch(r, name=_spec("infobatch", arg))


@register_schedule("lazy")
def _lazy(arg: str) -> Lazy:
    _no_arg("lazy", arg)
    return Lazy()


@register_schedule("topk")
def _topk(arg: str) -> TopK:
    q = _param("topk", arg, None, what="an update fraction Q", low=0, high=1, low_open=True, high_open=False,
               example="topk:0.1")
    return TopK(q, name=_spec("topk", arg))


@register_schedule("topk-anneal")
def _topk_anneal(arg: str) -> TopKAnneal:
    q = _param("topk-anneal", arg, None, what="a final update fraction Q", low=0, high=1, low_open=True,
               high_open=False, example="topk-anneal:0.1")
    return TopKAnneal(q, name=_spec("topk-anneal", arg))


@register_schedule("random")
def _random(arg: str) -> RandomActions:
    _no_arg("random", arg)
    return RandomActions()
