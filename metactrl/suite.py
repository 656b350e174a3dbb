"""Environment suites: TOML files listing training and held-out task instances plus reward settings.

Example (``envs/default.toml``)::

    name = "default"
    [reward]
    mode = "constraint"      # or "tradeoff"
    lam = 0.5                # weight of the energy ratio
    eps = 0.01               # allowed metric shortfall against full training (constraint mode)
    kappa = 10.0             # penalty per unit of normalised shortfall beyond eps
    energy = { metabolic = 0.5, backward = 0.5 }
    reference_seeds = 3      # full-training reference = mean of this many seeds
    shaping = true           # constraint mode: dense potential-based penalty (same return)
    [action]
    keep_min = 0.05
    update_min = 0.01
    [[train]]
    task = "digits-cnn"
    [[heldout]]
    task = "digits-vit"
    epochs = 10
    overrides = { dim = 32 }
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ._compat import tomllib
from .errors import ConfigError, InvalidValue, MetactrlError, suggest
from .tasks.registry import Task, make_task, task_defaults

REWARD_MODES = ("tradeoff", "constraint")
ENERGY_KINDS = ("metabolic", "backward", "flops", "weight_writes")


@dataclass(frozen=True)
class Instance:
    """One task instance: a task name, an optional epoch budget and task overrides."""

    task: str
    epochs: int | None = None
    overrides: tuple = ()

    def make(self, data_dir: str | None = None) -> Task:
        kw = dict(self.overrides)
        if data_dir and "data_dir" in task_defaults(self.task):
            kw.setdefault("data_dir", data_dir)
        return make_task(self.task, **kw)

    @property
    def label(self) -> str:
        """``task[k=v,...]``, with the epoch budget first when the instance sets one (labels stay distinct)."""
        items = ([("epochs", self.epochs)] if self.epochs else []) + list(self.overrides)
        extra = ",".join(f"{k}={v}" for k, v in items)
        return self.task + (f"[{extra}]" if extra else "")

    def key(self) -> str:
        return json.dumps({"task": self.task, "epochs": self.epochs, "overrides": list(self.overrides)})


@dataclass
class RewardConfig:
    """Reward settings (see TrainingEnv's docstring for the formulas)."""

    mode: str = "constraint"
    lam: float = 0.5
    eps: float = 0.01
    kappa: float = 10.0
    energy: dict = field(default_factory=lambda: {"metabolic": 0.5, "backward": 0.5})
    diverge_penalty: float = 2.0
    reference_seeds: int = 3
    shaping: bool = True

    def __post_init__(self):
        if isinstance(self.reference_seeds, bool) or int(self.reference_seeds) != self.reference_seeds \
                or self.reference_seeds < 1:
            raise InvalidValue(f"reward.reference_seeds must be an integer >= 1, got {self.reference_seeds!r}.")
        if not isinstance(self.shaping, bool):
            raise InvalidValue(f"reward.shaping must be true or false, got {self.shaping!r}.")
        if self.mode not in REWARD_MODES:
            raise ConfigError(suggest(self.mode, REWARD_MODES, what="reward mode", hint=f"one of {REWARD_MODES}"))
        for k, v in self.energy.items():
            if k not in ENERGY_KINDS:
                raise ConfigError(suggest(k, ENERGY_KINDS, what="energy kind", hint=f"one of {ENERGY_KINDS}"))
            _finite(f"reward.energy.{k}", v, low=0)
        for k in ("lam", "eps", "kappa", "diverge_penalty"):
            _finite(f"reward.{k}", getattr(self, k), low=0)


@dataclass
class ActionConfig:
    """Action bounds: keep in [keep_min, 1] (linear), update in [update_min, 1] (log scale)."""

    keep_min: float = 0.05
    update_min: float = 0.01

    def __post_init__(self):
        for k in ("keep_min", "update_min"):
            v = _finite(f"action.{k}", getattr(self, k), low=0)
            if not 0 < v <= 1:
                raise InvalidValue(f"action.{k} must be in (0, 1], got {v}.")


@dataclass
class EpisodeConfig:
    """Decision interval: ``decisions_per_epoch`` > 1 splits each epoch into that many steps."""

    decisions_per_epoch: int = 1

    def __post_init__(self):
        if int(self.decisions_per_epoch) != self.decisions_per_epoch or self.decisions_per_epoch < 1:
            raise InvalidValue(f"episode.decisions_per_epoch must be an integer >= 1, got {self.decisions_per_epoch}.")


@dataclass
class Suite:
    name: str
    train: list[Instance]
    heldout: list[Instance]
    reward: RewardConfig = field(default_factory=RewardConfig)
    action: ActionConfig = field(default_factory=ActionConfig)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    data_dir: str | None = None
    path: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "path": self.path, "train": [i.label for i in self.train],
                "heldout": [i.label for i in self.heldout], "reward": asdict(self.reward),
                "action": asdict(self.action), "episode": asdict(self.episode)}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]


def _finite(name: str, v, low=None) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InvalidValue(f"{name} must be a number, got {v!r}.") from None
    if not math.isfinite(f) or (low is not None and f < low):
        raise InvalidValue(f"{name} must be a finite number >= {low}, got {v!r}.")
    return f


def _instances(items, where: str) -> list[Instance]:
    out = []
    for i, it in enumerate(items or []):
        if isinstance(it, str):
            it = {"task": it}
        unknown = set(it) - {"task", "epochs", "overrides"}
        if unknown or "task" not in it:
            raise ConfigError(f"{where}[{i}] must have 'task' and optionally 'epochs', 'overrides'; got keys "
                              f"{sorted(it)}.")
        task_defaults(it["task"])  # unknown task names fail here, with a suggestion
        ov = tuple(sorted((it.get("overrides") or {}).items()))
        out.append(Instance(it["task"], int(it["epochs"]) if it.get("epochs") else None, ov))
    return out


def load_suite(path: str | Path, *, data_dir: str | None = None) -> Suite:
    """Read a suite TOML. Unknown keys, unknown tasks and bad values are errors that name the place."""
    p = Path(path)
    if not p.is_file():
        alt = Path(__file__).resolve().parents[1] / "envs" / p.name
        if alt.is_file():
            p = alt
        else:
            raise MetactrlError(f"suite file {path} not found. Suites live in envs/ (e.g. envs/default.toml).")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"suite {p} is not valid TOML: {e}") from None
    unknown = set(raw) - {"name", "train", "heldout", "reward", "action", "episode", "data_dir"}
    if unknown:
        raise ConfigError(f"suite {p}: unknown keys {sorted(unknown)}; allowed: name, train, heldout, reward, "
                          f"action, episode, data_dir.")
    train = _instances(raw.get("train"), "train")
    if not train:
        raise ConfigError(f"suite {p} has no [[train]] instances.")
    try:
        reward = RewardConfig(**raw.get("reward", {}))
        action = ActionConfig(**raw.get("action", {}))
        episode = EpisodeConfig(**raw.get("episode", {}))
    except TypeError as e:
        raise ConfigError(f"suite {p}: {e}") from None
    return Suite(raw.get("name", p.stem), train, _instances(raw.get("heldout"), "heldout"), reward, action,
                 episode, data_dir or raw.get("data_dir"), str(p))
