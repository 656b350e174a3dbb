"""Use a schedule (a learned policy or a baseline) on your own model, in two styles.

1. ``EnergyAwareTrainer`` owns the loop: give it a model, an optimizer, data and epochs; ``fit()``.
2. ``EnergyHooks`` fits into a loop you keep: it says each epoch's keep and update, gives the sample
   indices to train on, records per-sample losses, and wraps ``optimizer.step()`` with the update mask
   and the energy accounting.

Both run the engine's own selection, masking and energy code. A learned policy's features are
normalised by a full-training reference run of the same model: the trainer runs it (on a copy of the
model's initial state); with hooks, record one with ``EnergyHooks(..., schedule="full")`` and pass its
``reference()`` to later runs.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
from dataclasses import dataclass

import torch
from torch import nn

from .energy import EnergyMeter
from .engine import Engine, EngineOptions, per_sample_stats, resolve_device
from .errors import InvalidValue, MetactrlError, PolicyMismatch
from .plasticity import PlasticityGate
from .reference import reference_from_history, reference_run
from .schedules import Decision, Schedule, make_schedule
from .selection import SampleMemory, select
from .tasks.registry import Splits, Task


def as_tensors(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) from a pair of tensors, a Dataset of (x, y) items, or a DataLoader of (x, y) batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    elif isinstance(data, torch.utils.data.DataLoader):
        xs, ys = zip(*[(b[0], b[1]) for b in data])
        x, y = torch.cat(xs), torch.cat(ys)
    elif isinstance(data, torch.utils.data.Dataset):
        items = [data[i] for i in range(len(data))]
        x, y = torch.stack([torch.as_tensor(i[0]) for i in items]), torch.as_tensor([i[1] for i in items])
    else:
        raise InvalidValue(f"{name} must be (x, y) tensors, a Dataset or a DataLoader of (x, y); got "
                           f"{type(data).__name__}.")
    if len(x) != len(y) or len(x) == 0:
        raise InvalidValue(f"{name}: {len(x)} inputs and {len(y)} targets; they must match and be non-empty.")
    return x, y


def _schedule(policy) -> Schedule:
    if isinstance(policy, str):
        return make_schedule(policy if ":" in policy or policy in ("full", "lazy", "random") or policy.startswith(
            ("pdd", "infobatch", "topk")) else f"policy:{policy}")
    return policy


@dataclass
class FitResult:
    """What ``EnergyAwareTrainer.fit`` returns."""

    history: list[dict]
    energy: dict
    summary: dict
    reference: dict | None


class EnergyAwareTrainer:
    """Train your own model with a schedule deciding keep and update each epoch.

    Args:
        model: your ``nn.Module`` (trained in place).
        optimizer: its optimizer; the full-training reference uses a fresh one of the same class and settings.
        train_data, val_data: (x, y) tensors, a Dataset or a DataLoader; test_data optional (reported only).
        policy: a policy bundle path, ``"policy:PATH"``, a baseline spec (``"pdd-dbpd"``) or a Schedule.
        epochs, batch_size: the budget.
        kind: ``"classification"`` (logits [B, C]) or ``"lm"`` (logits [B, T, V]).
        num_classes: inferred from the model's output when None.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, train_data, val_data, *,
                 policy="policies/default", epochs: int = 10, batch_size: int = 64, kind: str = "classification",
                 num_classes: int | None = None, test_data=None, device: str = "auto", seed: int = 0,
                 options: EngineOptions | None = None):
        if not any(p.requires_grad for p in model.parameters()):
            raise MetactrlError("the model has no trainable parameters; nothing to train.")
        x, y = as_tensors(train_data, "train_data")
        xv, yv = as_tensors(val_data, "val_data")
        xt, yt = as_tensors(test_data, "test_data") if test_data is not None else (xv, yv)
        self.initial_state = copy.deepcopy(model.state_dict())
        try:
            with torch.no_grad():
                out = model(x[:2])
        except Exception as e:
            raise InvalidValue(f"the model cannot take the training inputs of shape {tuple(x.shape[1:])} "
                               f"({type(e).__name__}: {e}).") from None
        ncls = num_classes or out.shape[-1]
        opt_cls = type(optimizer)
        # defaults can hold keys the constructor does not take (AdamW's decoupled_weight_decay): keep the rest
        accepted = inspect.signature(opt_cls).parameters
        opt_defaults = {k: v for k, v in optimizer.defaults.items() if k in accepted}
        splits = Splits(x, y, xv, yv, xt, yt)
        digest = hashlib.sha256(repr(model).encode() + str(tuple(x.shape)).encode()
                                + str(float(x.float().sum())).encode()).hexdigest()[:12]
        self.task = Task("custom", lambda: self._fresh_model(model), lambda: splits, kind=kind, num_classes=ncls,
                         epochs=epochs, batch_size=batch_size, optimizer_fn=lambda ps: opt_cls(ps, **opt_defaults),
                         config={"model_digest": digest, "batch_size": batch_size, "opt": repr(opt_defaults)},
                         source="user data")
        self.model, self.optimizer, self.policy = model, optimizer, policy
        self.epochs, self.device, self.seed, self.options = epochs, device, seed, options

    def _fresh_model(self, model: nn.Module) -> nn.Module:
        m = copy.deepcopy(model)
        m.load_state_dict(self.initial_state)
        return m

    def fit(self) -> FitResult:
        sched = _schedule(self.policy)
        ref = None
        if hasattr(sched, "start"):  # a learned policy: its features need the full-training reference
            ref = reference_run(self.task, self.epochs, options=self.options, device=str(resolve_device(self.device)),
                                seed=self.seed, seeds=getattr(sched, "reference_seeds", 1))
        eng = Engine(self.task, seed=self.seed, device=self.device, options=self.options, model=self.model,
                     optimizer=self.optimizer)
        sched.reset(eng, self.epochs) if ref is None else sched.start(ref, self.epochs, eng.evaluate("val")["metric"])
        for epoch in range(1, self.epochs + 1):
            d = sched.decide(eng, epoch)
            eng.run_epoch(d.keep, d.update, **d.kwargs())
            if eng.diverged:
                break
        summary = eng.summary()
        return FitResult(eng.history, summary["energy"], summary, ref)


@dataclass
class EpochPlan:
    """This epoch's instructions: keep/update fractions and the sample indices to train on (shuffled)."""

    keep: float
    update: float
    indices: torch.Tensor
    weights: torch.Tensor | None

    @property
    def sampler(self) -> list[int]:
        """Pass as ``DataLoader(dataset, sampler=plan.sampler)`` (the order is already shuffled)."""
        return self.indices.tolist()


class EnergyHooks:
    """Schedule, data selection, update masking and energy accounting for a training loop you keep.

    Args:
        model, optimizer: yours.
        n_train: number of training samples (indices 0..n_train-1).
        schedule: a policy bundle path / spec / Schedule (default: the shipped policy).
        epochs: the budget the schedule plans for.
        reference: a full-training reference (``EnergyHooks(...schedule="full").reference()`` from an earlier
            run of the same model and budget); required by learned policies.
        kind: ``"classification"`` or ``"lm"``.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, n_train: int, *,
                 schedule="policies/default", epochs: int = 10, reference: dict | None = None,
                 kind: str = "classification", num_classes: int | None = None, seed: int = 0,
                 select_strategy: str = "random", score: str = "update", scope: str = "global"):
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise MetactrlError("the model has no trainable parameters; nothing to train.")
        if n_train < 1:
            raise InvalidValue(f"n_train must be >= 1, got {n_train}.")
        self.model, self.optimizer, self.kind, self.epochs = model, optimizer, kind, epochs
        self.seed, self.n_train = seed, n_train
        self.meter = EnergyMeter(params)
        self.gate = PlasticityGate(params, self.meter, score=score, scope=scope, seed=seed)
        self.memory = SampleMemory(n_train, params[0].device)
        self.gen = torch.Generator().manual_seed(seed + 1)
        self.schedule, self.strategy = _schedule(schedule), select_strategy
        self.history: list[dict] = []
        self.num_classes = num_classes
        if hasattr(self.schedule, "start"):
            if reference is None:
                raise PolicyMismatch("a learned policy needs a full-training reference of this model: run your loop "
                                     "once with EnergyHooks(..., schedule='full') and pass its .reference() here.")
            self.schedule.start(reference, epochs, reference.get("chance", 0.0))
        else:
            self.schedule.reset(self, epochs)
        self._plan: EpochPlan | None = None

    def begin_epoch(self) -> EpochPlan:
        d: Decision = self.schedule.decide(self, len(self.history) + 1)
        strategy = d.select or (self.strategy if d.keep < 1 else "random")
        chosen = select(strategy, d.keep, self.memory, self.gen, ratio=d.ratio, tau=d.tau)
        perm = torch.randperm(len(chosen.indices), generator=self.gen).to(chosen.indices.device)
        w = chosen.weights[perm] if chosen.weights is not None else None
        self._plan = EpochPlan(d.keep, d.update, chosen.indices[perm], w)
        # per-sample loss weights looked up by sample index in observe() (InfoBatch rescaling)
        self._weight_of = None
        if w is not None:
            self._weight_of = torch.ones(self.n_train, device=w.device)
            self._weight_of[self._plan.indices] = w
        self._start = self.meter.report()
        self._loss_sum, self._seen = 0.0, 0
        return self._plan

    def observe(self, indices: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Record the batch's per-sample statistics; returns the per-sample losses (weighted for InfoBatch)."""
        terms, loss, prob, correct = per_sample_stats(self.kind, output, target)
        self.memory.update(indices, loss, prob, correct)
        self._loss_sum += float(loss.detach().sum())
        self._seen += len(indices)
        self.meter.count_passes(len(indices), len(indices), 0.0, 0.0)
        if self._plan is not None and self._weight_of is not None:
            terms = terms * self._weight_of[indices]
        return terms

    def step(self):
        """``optimizer.step()`` with this epoch's update mask and energy accounting."""
        if self._plan is None:
            raise MetactrlError("call begin_epoch() before step().")
        return self.gate.step(self.optimizer, self._plan.update)

    def end_epoch(self, val_metric: float) -> dict:
        m = self.meter.report()
        rec = {"epoch": len(self.history) + 1, "keep": self._plan.keep, "update": self._plan.update,
               "val_metric": float(val_metric), "train_loss": self._loss_sum / max(1, self._seen),
               "learned_fraction": self.memory.learned_fraction(),
               **{k: m[k] - self._start[k] for k in ("metabolic", "weight_writes", "forward_samples",
                                                       "backward_samples")}}
        self.history.append(rec)
        self._plan = None
        return rec

    def report(self) -> dict:
        return self.meter.report()

    def reference(self, chance: float | None = None) -> dict:
        """This run as a full-training reference for later policy runs (format of ``reference_run``)."""
        if not self.history:
            raise MetactrlError("no epochs recorded yet.")
        ch = chance if chance is not None else (1.0 / self.num_classes if self.num_classes else 0.0)
        return reference_from_history(self.history, "custom", ch)
