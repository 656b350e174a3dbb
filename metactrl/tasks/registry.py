"""Task registry in the style of timm: ``@register_task`` on a factory, ``make_task`` with overrides.

A factory is a function whose keyword arguments (all with defaults) are the task's configuration;
``make_task(name, **overrides)`` validates the overrides against that signature and calls it.
A user registers their own task in a few lines::

    @register_task("my-task")
    def my_task(*, epochs: int = 5, lr: float = 1e-3) -> Task:
        return Task(name="my-task", model_fn=lambda: MyNet(), load_data=lambda: make_splits(...),
                    kind="classification", num_classes=10, epochs=epochs, lr=lr)
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import ConfigError, MetactrlError, TaskNotFound, suggest


@dataclass
class Splits:
    """Train / validation / test tensors. Validation is carved from training data, never from test."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def to(self, device) -> Splits:
        return Splits(*(t.to(device) for t in self.tensors()))

    def tensors(self):
        return (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test)


@dataclass
class Task:
    """Everything needed to train one model on one dataset.

    Attributes:
        name: registry name.
        model_fn: builds a freshly initialised model (the engine seeds torch before calling it).
        load_data: returns the Splits (called lazily, once).
        kind: "classification" (y is [N]) or "lm" (x, y are [N, T] token ids, y = next tokens).
        num_classes: classes, or vocabulary size for "lm".
        epochs, batch_size, optimizer, lr, weight_decay, momentum: the default budget that trains well.
        config: the resolved factory arguments (they determine the task; used in cache keys).
        source: where the data comes from (shown by ``metactrl tasks``).
    """

    name: str
    model_fn: Callable[[], nn.Module]
    load_data: Callable[[], Splits]
    kind: str = "classification"
    num_classes: int = 10
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    config: dict = field(default_factory=dict)
    source: str = "embedded"
    available: Callable[[], bool] = lambda: True
    optimizer_fn: Callable | None = None  # params -> Optimizer; overrides optimizer/lr/... when given
    _splits: Splits | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind not in ("classification", "lm"):
            raise ConfigError(f"Task.kind must be 'classification' or 'lm', got {self.kind!r}.")

    def data(self) -> Splits:
        """Load (once) and return the splits."""
        if self._splits is None:
            splits = self.load_data()
            _check_splits(self, splits)
            self._splits = splits
        return self._splits

    @property
    def chance(self) -> float:
        """Metric of a uniform guess: the floor used to normalise metrics across tasks."""
        return 1.0 / self.num_classes


def _check_splits(task: Task, s: Splits) -> None:
    if not isinstance(s, Splits):
        raise MetactrlError(f"task '{task.name}': load_data must return a Splits, got {type(s).__name__}.")
    for nm, x, y in (("train", s.x_train, s.y_train), ("val", s.x_val, s.y_val), ("test", s.x_test, s.y_test)):
        if len(x) != len(y):
            raise MetactrlError(f"task '{task.name}': {nm} has {len(x)} inputs but {len(y)} targets.")
        if len(x) == 0:
            raise MetactrlError(f"task '{task.name}': the {nm} split is empty.")


_REGISTRY: dict[str, Callable[..., Task]] = {}
_META: dict[str, dict] = {}


def register_task(name: str, **meta) -> Callable:
    """Decorator registering a task factory under ``name``; ``meta`` is free-form (family, size...)."""

    def deco(fn: Callable[..., Task]) -> Callable[..., Task]:
        params = inspect.signature(fn).parameters.values()
        missing = [p.name for p in params if p.default is inspect.Parameter.empty and p.kind != p.VAR_KEYWORD]
        if missing:
            raise MetactrlError(f"task factory '{name}' must give every argument a default; missing: {missing}.")
        _REGISTRY[name] = fn
        _META[name] = dict(meta)
        return fn

    return deco


def list_tasks(pattern: str = "*") -> list[str]:
    """Registered task names matching an fnmatch pattern, sorted."""
    _ensure_builtin()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern))


def task_defaults(name: str) -> dict:
    """The configuration a task gets with no overrides."""
    fn = _lookup(name)
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.kind != p.VAR_KEYWORD}


def task_meta(name: str) -> dict:
    _lookup(name)
    return dict(_META[name])


def make_task(name: str, **overrides) -> Task:
    """Build task ``name`` with its registered defaults, then ``overrides`` (unknown keys are an error)."""
    fn = _lookup(name)
    defaults = task_defaults(name)
    accepts_any = any(p.kind == p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())
    unknown = [k for k in overrides if k not in defaults]
    if unknown and not accepts_any:
        raise ConfigError(
            f"task '{name}' has no setting {unknown}. Its settings are: {sorted(defaults)}."
        )
    cfg = {**defaults, **overrides}
    task = fn(**cfg)
    task.name = name
    task.config = {k: v for k, v in cfg.items() if k not in ("data_dir", "download")}  # where, not what
    return task


def _lookup(name: str) -> Callable[..., Task]:
    _ensure_builtin()
    if name not in _REGISTRY:
        raise TaskNotFound(suggest(name, _REGISTRY, what="task", hint="`metactrl tasks` lists them"))
    return _REGISTRY[name]


def _ensure_builtin() -> None:
    # Import for the side effect of registration; late so that user code can import the registry alone.
    from . import embedded, text, vision  # noqa: F401
