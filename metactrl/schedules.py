"""Schedules decide each epoch's (keep, update) from the run's statistics.

Baselines and learned policies share one protocol, so anything that can run one can run all:

    class Schedule(Protocol):
        name: str
        def reset(self, engine, epochs) -> None        # a new run starts (engine is fresh)
        def decide(self, engine, epoch) -> Decision    # epoch: 1-based index of the epoch about to run

Specs (``make_schedule``): ``full``, ``constant:K,Q``, plus those registered with ``@register_schedule``
(baselines in ``baselines.py``; ``policy:PATH`` for a learned policy bundle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .errors import InvalidSchedule, check_fraction, suggest


@dataclass
class Decision:
    """One epoch's instructions to the engine (see ``Engine.run_epoch`` for the fields)."""

    keep: float = 1.0
    update: float = 1.0
    select: str | None = None
    ratio: float | None = None
    tau: float = 0.3
    rescore: bool = False
    learn_from: str = "all"

    def __post_init__(self):
        try:
            self.keep = check_fraction("keep", self.keep)
            self.update = check_fraction("update", self.update)
        except ValueError as e:
            raise InvalidSchedule(str(e)) from None

    def kwargs(self) -> dict:
        return {"select": self.select, "ratio": self.ratio, "tau": self.tau, "rescore": self.rescore,
                "learn_from": self.learn_from}


class Schedule(Protocol):
    name: str

    def reset(self, engine, epochs: int) -> None: ...

    def decide(self, engine, epoch: int) -> Decision: ...


class Constant:
    """Fixed keep and update every epoch (``full`` is keep = update = 1)."""

    def __init__(self, keep: float = 1.0, update: float = 1.0, name: str | None = None):
        self.decision = Decision(keep, update)
        self.name = name or f"constant:{keep:g},{update:g}"

    def reset(self, engine, epochs: int) -> None:
        pass

    def decide(self, engine, epoch: int) -> Decision:
        return self.decision


_SCHEDULES: dict[str, Callable[[str], Schedule]] = {}


def register_schedule(prefix: str):
    """Register a factory ``f(arg: str) -> Schedule`` for specs ``prefix`` or ``prefix:arg``."""

    def deco(fn):
        _SCHEDULES[prefix] = fn
        return fn

    return deco


@register_schedule("full")
def _full(arg: str) -> Schedule:
    if arg:
        raise InvalidSchedule(f"'full' takes no argument, got 'full:{arg}'.")
    return Constant(1.0, 1.0, name="full")


@register_schedule("constant")
def _constant(arg: str) -> Schedule:
    try:
        k, q = (float(v) for v in arg.split(","))
    except ValueError:
        raise InvalidSchedule(f"constant schedules look like 'constant:KEEP,UPDATE' e.g. constant:0.5,0.1; "
                              f"got 'constant:{arg}'.") from None
    return Constant(k, q)


def make_schedule(spec: str) -> Schedule:
    """Build a schedule from its spec string, e.g. ``full``, ``constant:0.5,0.1``, ``pdd-dbpd``, ``topk:0.1``."""
    _ensure_builtin()
    prefix, _, arg = spec.partition(":")
    if prefix not in _SCHEDULES:
        raise InvalidSchedule(suggest(prefix, _SCHEDULES, what="schedule",
                                      hint=f"known: {', '.join(sorted(_SCHEDULES))}"))
    return _SCHEDULES[prefix](arg)


def list_schedules() -> list[str]:
    _ensure_builtin()
    return sorted(_SCHEDULES)


def _ensure_builtin() -> None:
    from . import baselines, controller  # noqa: F401  (they register baselines and policy:PATH)
