"""One training run, epoch by epoch, each epoch told its data-keep ratio and synapse-update fraction.

Per epoch: select data (selection.py) -> forward/backward -> masked update (plasticity.py) -> energy (energy.py).
The same three modules serve the Gymnasium env, ``apply``, ``compare`` and a user's own loop.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import selection as sel
from .energy import CachingConfig, EnergyMeter, NvmlJoules
from .errors import InvalidValue, MetactrlError, check_fraction, suggest
from .plasticity import PlasticityGate
from .tasks.registry import Task

OPTIMIZERS = ("sgd", "adam", "adamw")


@dataclass
class EngineOptions:
    """How the engine selects, masks and counts (everything but the per-epoch keep/update).

    Attributes:
        select: data-selection strategy for keep < 1: random, hardest, infobatch.
        score: synapse informativeness score: update, grad, grad_x_weight.
        scope: where the top fraction is taken: global, tensor, neuron.
        alpha: exponent of the metabolic energy M1 = Σ|Δw|^α.
        refresh: steps a sampled global/tensor threshold is reused for.
        sample_size: scores sampled to estimate a threshold.
        caching: synaptic-caching energy model settings (None: off).
        eval_batch: batch size of evaluation passes.
    """

    select: str = "random"
    score: str = "update"
    scope: str = "global"
    alpha: float = 1.0
    refresh: int = 8
    sample_size: int = 65536
    caching: CachingConfig | None = None
    eval_batch: int = 512


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available; asking for CUDA without it is an error that says so."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidValue(f"device '{device}' was asked for but CUDA is not available here. Use --device cpu or auto.")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise InvalidValue(suggest(name, OPTIMIZERS, what="optimizer", hint=f"choose one of {OPTIMIZERS}"))


def per_sample_stats(kind: str, logits: torch.Tensor, y: torch.Tensor, learn_from: str = "all"):
    """Per-sample loss (the training objective's terms), true-class probability and correctness.

    For language models a sample is a sequence: its loss is the mean token loss, its probability the
    geometric mean of the true-token probabilities, and it counts as correct when most tokens are.
    ``learn_from='mistakes'`` (lazy learning) zeroes the loss of correctly predicted samples (tokens for LMs).
    Returns (objective_terms, loss, prob, correct).
    """
    if kind == "classification":
        loss = F.cross_entropy(logits, y, reduction="none")
        correct = logits.argmax(1) == y
        terms = loss * (~correct) if learn_from == "mistakes" else loss
    else:
        tok = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view(y.shape)
        tok_ok = logits.argmax(-1) == y
        loss = tok.mean(1)
        correct = tok_ok.float().mean(1) >= 0.5
        terms = (tok * (~tok_ok)).mean(1) if learn_from == "mistakes" else loss
    return terms, loss, torch.exp(-loss.detach()), correct


def measure_flops(model: nn.Module, kind: str, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Forward and backward FLOPs per sample, measured once with torch.utils.flop_counter.

    Measured on a copy so that the model's own state (BatchNorm statistics, grads) is untouched.
    """
    import copy

    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model)
    try:
        with FlopCounterMode(display=False) as fc:
            out = model(x)
        fwd = fc.get_total_flops()
        terms = per_sample_stats(kind, out, y)[0].mean()
        with FlopCounterMode(display=False) as fc:
            terms.backward()
        bwd = fc.get_total_flops()
    finally:
        model.zero_grad(set_to_none=True)
    return fwd / len(x), bwd / len(x)


class Engine:
    """A training run of ``task`` driven one epoch at a time by (keep, update).

    Args:
        task: a Task (see ``metactrl.tasks``).
        seed: seeds model initialisation, data order and selection; same seed, same run (on CPU).
        device: ``auto``, ``cpu`` or ``cuda[:i]``.
        options: EngineOptions (selection strategy, mask score/scope, energy exponent...).
        model, optimizer: bring your own instead of the task's (the user API does).
        threads: torch intra-op threads (None: leave as is).
    """

    def __init__(self, task: Task, *, seed: int = 0, device: str = "auto", options: EngineOptions | None = None,
                 model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                 threads: int | None = None):
        self.task, self.seed = task, int(seed)
        self.opt = options or EngineOptions()
        if self.opt.select not in ("random", "hardest", "infobatch"):
            raise InvalidValue(suggest(self.opt.select, ("random", "hardest", "infobatch"),
                                       what="selection strategy", hint="choose random, hardest or infobatch"))
        if threads:
            torch.set_num_threads(int(threads))
        self.device = resolve_device(device)
        seed_everything(self.seed)
        self.model = (model if model is not None else task.model_fn()).to(self.device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise MetactrlError(f"the model of task '{task.name}' has no trainable parameters; nothing to train.")
        if optimizer is None and task.optimizer_fn is not None:
            optimizer = task.optimizer_fn(params)
        self.optimizer = optimizer or make_optimizer(task.optimizer, params, task.lr, task.weight_decay,
                                                     task.momentum)
        self.data = task.data().to(self.device)
        self.n_train = len(self.data.x_train)
        self.gen = torch.Generator().manual_seed(self.seed + 1)
        self.memory = sel.SampleMemory(self.n_train, self.device)
        self.meter = EnergyMeter(params, alpha=self.opt.alpha, caching=self.opt.caching)
        self.gate = PlasticityGate(params, self.meter, score=self.opt.score, scope=self.opt.scope,
                                   sample_size=self.opt.sample_size, refresh=self.opt.refresh, seed=self.seed)
        b = min(task.batch_size, self.n_train)
        self.fwd_flops, self.bwd_flops = measure_flops(self.model, task.kind, self.data.x_train[:b],
                                                       self.data.y_train[:b])
        self.joules = NvmlJoules(self.device)
        self.epoch = 0
        self.history: list[dict] = []
        self.diverged = False
        self.initial_loss: float | None = None

    # ------------------------------------------------------------------ training
    def run_epoch(self, keep: float = 1.0, update: float = 1.0, *, select: str | None = None,
                  ratio: float | None = None, tau: float = 0.3, rescore: bool = False,
                  learn_from: str = "all", portion: float = 1.0) -> dict:
        """Train one epoch (or a ``portion`` of one) and return its record (also appended to ``history``).

        Args:
            keep: data-keep ratio in (0, 1].
            update: synapse-update fraction in (0, 1].
            select: strategy for this epoch (default: ``options.select``; ``threshold`` keeps p_true < tau).
            ratio: InfoBatch prune probability (None: derived from keep).
            tau: threshold of the ``threshold`` strategy.
            rescore: run a no-grad scoring pass over all training data first (counted as forward compute).
            learn_from: ``all`` or ``mistakes`` (lazy learning: correct samples contribute no gradient).
            portion: fraction of an epoch this call trains (decision intervals shorter than an epoch): the
                selection is made as for a whole epoch, then ⌈portion·selected⌉ of it is trained
                (``random``/``hardest`` select ⌈keep·portion·N⌉ directly).
        """
        keep, update = check_fraction("keep", keep), check_fraction("update", update)
        portion = check_fraction("portion", portion)
        if learn_from not in ("all", "mistakes"):
            raise InvalidValue(f"learn_from must be 'all' or 'mistakes', got {learn_from!r}.")
        if self.diverged:
            raise MetactrlError("this run diverged (non-finite loss); start a new Engine to train again.")
        t0 = time.perf_counter()
        m_before = self.meter.report()
        if rescore:
            self.score_all()
        strategy = select or (self.opt.select if keep < 1.0 or self.opt.select == "infobatch" else "random")
        if portion < 1.0 and strategy in ("random", "hardest"):
            chosen = sel.select(strategy, keep * portion, self.memory, self.gen)
        else:
            chosen = sel.select(strategy, keep, self.memory, self.gen, ratio=ratio, tau=tau)
            if portion < 1.0:
                part = torch.randperm(len(chosen.indices), generator=self.gen)[: sel.kept_count(portion, len(
                    chosen.indices))].to(self.device)
                chosen = sel.Selection(chosen.indices[part], None if chosen.weights is None else chosen.weights[part])
        stats = self._train_on(chosen, update, learn_from)
        self.meter.wall_s += time.perf_counter() - t0
        rec = self._record(keep, update, strategy, len(chosen.indices), stats, m_before)
        self.history.append(rec)
        return rec

    def _train_on(self, chosen: sel.Selection, update: float, learn_from: str) -> dict:
        self.model.train()
        perm = torch.randperm(len(chosen.indices), generator=self.gen).to(self.device)
        order = chosen.indices[perm]
        weights = chosen.weights[perm] if chosen.weights is not None else None
        x_all, y_all, bs = self.data.x_train, self.data.y_train, self.task.batch_size
        loss_sum = torch.zeros((), device=self.device)
        realized, steps, fwd, bwd = [], 0, 0, 0
        for start in range(0, len(order), bs):
            idx = order[start:start + bs]
            terms, loss, prob, correct = per_sample_stats(self.task.kind, self.model(x_all[idx]), y_all[idx],
                                                          learn_from)
            fwd += len(idx)
            self.memory.update(idx, loss, prob, correct)
            loss_sum += loss.detach().sum()
            if weights is not None:
                terms = terms * weights[start:start + bs]
            objective = terms.mean()
            if not math.isfinite(objective.item()):
                self.diverged = True
                break
            if learn_from == "mistakes" and bool(correct.all()):
                continue  # lazy learning: nothing wrong in this batch, no backward and no update
            objective.backward()
            bwd += len(idx)
            realized.append(self.gate.step(self.optimizer, update).realized)
            self.optimizer.zero_grad(set_to_none=True)
            steps += 1
        self.meter.count_passes(fwd, bwd, self.fwd_flops, self.bwd_flops)
        return {"loss_sum": loss_sum, "forward": fwd, "steps": steps, "realized": realized}

    @torch.no_grad()
    def score_all(self) -> None:
        """Forward every training sample (no gradient) to refresh the sample memory; counted as compute."""
        self.model.eval()
        x, y, b = self.data.x_train, self.data.y_train, self.opt.eval_batch
        for start in range(0, self.n_train, b):
            idx = torch.arange(start, min(start + b, self.n_train), device=self.device)
            _, loss, prob, correct = per_sample_stats(self.task.kind, self.model(x[idx]), y[idx])
            self.memory.update(idx, loss, prob, correct)
        self.meter.count_passes(self.n_train, 0, self.fwd_flops, 0.0, scoring=True)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def evaluate(self, split: str = "val") -> dict:
        """Loss and metric on ``val`` (decisions) or ``test`` (reported only). LMs add perplexity."""
        if split not in ("val", "test", "train"):
            raise InvalidValue(f"split must be val, test or train, got {split!r}.")
        x, y = getattr(self.data, f"x_{split}"), getattr(self.data, f"y_{split}")
        self.model.eval()
        loss_sum, hits, count = 0.0, 0.0, 0
        for start in range(0, len(x), self.opt.eval_batch):
            logits, yb = self.model(x[start:start + self.opt.eval_batch]), y[start:start + self.opt.eval_batch]
            if self.task.kind == "classification":
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                hits += float((logits.argmax(1) == yb).sum())
                count += len(yb)
            else:
                loss_sum += float(F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="sum"))
                hits += float((logits.argmax(-1) == yb).sum())
                count += yb.numel()
        loss = loss_sum / count
        out = {"loss": loss, "metric": hits / count}
        if self.task.kind == "lm":
            out["perplexity"] = math.exp(min(loss, 50.0))
        return out

    def _record(self, keep, update, strategy, kept, stats, m_before) -> dict:
        self.epoch += 1
        m = self.meter.report()
        val = self.evaluate("val") if not self.diverged else {"loss": float("nan"), "metric": float("nan")}
        train_loss = float(stats["loss_sum"]) / max(1, stats["forward"])
        if self.initial_loss is None:
            self.initial_loss = train_loss
        realized = torch.stack(stats["realized"]).tolist() if stats["realized"] else []
        rec = {
            "epoch": self.epoch, "keep": keep, "update": update, "select": strategy, "kept": kept,
            "train_loss": train_loss, "val_loss": val["loss"], "val_metric": val["metric"],
            "learned_fraction": self.memory.learned_fraction(), "steps": stats["steps"],
            "realized_update": float(np.mean(realized)) if realized else 0.0,
            "max_realized_update": float(np.max(realized)) if realized else 0.0,
            "diverged": self.diverged,
            "step_metabolic": self.meter.pop_step_energies(),
        }
        if "perplexity" in val:
            rec["val_perplexity"] = val["perplexity"]
        for k in ("metabolic", "weight_writes", "forward_samples", "backward_samples", "scoring_samples",
                  "flops", "wall_s"):
            rec[k] = m[k] - m_before[k]
        rec["metabolic_min"] = m["metabolic_min"]
        j = self.joules.joules()
        if j is not None:
            rec["joules_cum"] = j
        return rec

    # ------------------------------------------------------------------ reporting
    def summary(self, *, test: bool = True) -> dict:
        """The run so far: final validation (and test) metric, energy totals, the per-epoch records."""
        energy = self.meter.report()
        j = self.joules.joules()
        if j is not None:
            energy["joules"] = j
        last = self.history[-1] if self.history else {}
        out = {
            "task": self.task.name, "kind": self.task.kind, "seed": self.seed, "device": str(self.device),
            "epochs": self.epoch, "diverged": self.diverged,
            "final_val_metric": last.get("val_metric", float("nan")),
            "energy": energy,
            "per_epoch": [{k: v for k, v in r.items() if k != "step_metabolic"} for r in self.history],
        }
        if test and not self.diverged:
            t = self.evaluate("test")
            out["test_metric"] = t["metric"]
            if "perplexity" in t:
                out["test_perplexity"] = t["perplexity"]
                out["final_val_perplexity"] = last.get("val_perplexity")
        return out
