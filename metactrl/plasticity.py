"""Sparse synapse updates: only the top ``update`` fraction of weights, by an informativeness score, change.

The mask is applied to the *realized* update: the optimizer steps normally (its state—momentum, Adam
moments—keeps evolving for every weight), then the weights outside the mask are restored from a
snapshot taken just before the step, so they are bit-identical before and after it whatever the
optimizer, weight decay included.

Scores (per weight):
    ``grad``          |∂L/∂w|
    ``grad_x_weight`` |∂L/∂w · w|   (first-order estimate of the loss change of removing w)
    ``update``        |Δw| proposed by the optimizer (default: the quantity the energy counts)
Scopes: ``global`` (one threshold over all weights), ``tensor`` (per parameter tensor), ``neuron``
(per output neuron: each row of a weight matrix keeps its own top fraction; 1-D tensors per tensor).

Exact top-k over millions of weights at every step is too costly, so the global and tensor thresholds
are estimated from a random sample of at most ``sample_size`` scores and reused for ``refresh`` steps;
the realized fraction is measured and reported at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .energy import EnergyMeter
from .errors import InvalidValue, check_fraction, suggest

SCORES = ("update", "grad", "grad_x_weight")
SCOPES = ("global", "tensor", "neuron")


@dataclass
class StepReport:
    """What one optimizer step did: the requested and realized update fractions."""

    requested: float
    realized: torch.Tensor  # 0-d tensor on the parameters' device (read lazily: no sync per step)


class UpdateMasker:
    """Computes the keep-mask of a step from scores, with sampled thresholds reused for a few steps."""

    def __init__(self, params: list[torch.Tensor], *, score: str = "update", scope: str = "global",
                 sample_size: int = 65536, refresh: int = 8, seed: int = 0):
        if score not in SCORES:
            raise InvalidValue(suggest(score, SCORES, what="update score", hint=f"choose one of {SCORES}"))
        if scope not in SCOPES:
            raise InvalidValue(suggest(scope, SCOPES, what="update scope", hint=f"choose one of {SCOPES}"))
        self.params, self.score, self.scope = params, score, scope
        self.sample_size, self.refresh = int(sample_size), max(1, int(refresh))
        self.n_params = sum(p.numel() for p in params)
        self._gen = torch.Generator(device=params[0].device).manual_seed(seed)
        self._thr: list[torch.Tensor] | torch.Tensor | None = None
        self._thr_key: tuple | None = None
        self._age = 0

    def scores(self, old: list[torch.Tensor], new: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.score == "update":
            return torch._foreach_abs(torch._foreach_sub(new, old))
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        if self.score == "grad":
            return torch._foreach_abs(grads)
        return torch._foreach_abs(torch._foreach_mul(grads, old))

    def _kth_largest(self, flat: torch.Tensor, fraction: float) -> torch.Tensor:
        if flat.numel() > self.sample_size:
            idx = torch.randint(flat.numel(), (self.sample_size,), generator=self._gen, device=flat.device)
            flat = flat[idx]
        k = max(1, int(round(fraction * flat.numel())))
        return torch.kthvalue(flat, flat.numel() - k + 1).values

    def _thresholds(self, scores: list[torch.Tensor], fraction: float):
        key = (fraction,)
        if self._thr is not None and self._thr_key == key and self._age < self.refresh:
            self._age += 1
            return self._thr
        if self.scope == "global":
            if self.n_params <= self.sample_size:
                flat = torch.cat([s.reshape(-1) for s in scores])
            else:  # sample each tensor in proportion to its size, without concatenating everything
                flat = torch.cat([s.reshape(-1)[torch.randint(s.numel(), (max(1, s.numel() * self.sample_size
                                  // self.n_params),), generator=self._gen, device=s.device)] for s in scores])
            thr = self._kth_largest(flat, fraction)
        else:
            thr = [self._kth_largest(s.reshape(-1), fraction) for s in scores]
        self._thr, self._thr_key, self._age = thr, key, 1
        return thr

    def masks(self, scores: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
        if self.scope == "neuron":
            return [_row_topk(s, fraction) if s.dim() >= 2 else self._fill_ties([s], self._kth_largest(
                s.reshape(-1), fraction), fraction)[0] for s in scores]
        thr = self._thresholds(scores, fraction)
        if self.scope == "global":
            return self._fill_ties(scores, thr, fraction)
        return [self._fill_ties([s], t, fraction)[0] for s, t in zip(scores, thr)]

    def _fill_ties(self, scores: list[torch.Tensor], thr: torch.Tensor, fraction: float) -> list[torch.Tensor]:
        """Weights above the threshold, plus a random share of those exactly at it.

        Ties are common (Adam's first steps move every weight by exactly lr), and admitting all of them
        would overshoot the fraction. A zero threshold admits only weights that actually move.
        """
        gt = [s > thr for s in scores]
        if float(thr) <= 0:
            return gt
        eq = [s == thr for s in scores]
        n_eq = sum(e.sum() for e in eq)
        if int(n_eq) == 0:
            return gt
        room = fraction * sum(s.numel() for s in scores) - sum(g.sum() for g in gt)
        p = (room / n_eq).clamp(0.0, 1.0)
        return [g | (e & (torch.rand(e.shape, generator=self._gen, device=e.device) < p)) for g, e in zip(gt, eq)]


def _row_topk(s: torch.Tensor, fraction: float) -> torch.Tensor:
    """Exactly the top ``fraction`` of each output neuron's incoming weights (ties broken by index)."""
    rows = s.reshape(s.shape[0], -1)
    k = max(1, int(round(fraction * rows.shape[1])))
    mask = torch.zeros_like(rows, dtype=torch.bool)
    mask.scatter_(1, torch.topk(rows, k, dim=1).indices, True)
    return (mask & (rows > 0)).reshape(s.shape)


class PlasticityGate:
    """Wraps ``optimizer.step()``: snapshot, step, mask the realized update, account its energy.

    The same object serves the engine and a user's own loop::

        gate = PlasticityGate(model.parameters(), meter)
        loss.backward(); gate.step(optimizer, update=0.1); optimizer.zero_grad()
    """

    def __init__(self, params, meter: EnergyMeter, *, score: str = "update", scope: str = "global",
                 sample_size: int = 65536, refresh: int = 8, seed: int = 0):
        self.params = [p for p in params if p.requires_grad]
        self.meter = meter
        self.masker = UpdateMasker(self.params, score=score, scope=scope, sample_size=sample_size,
                                   refresh=refresh, seed=seed)
        self._old = [p.detach().clone() for p in self.params]
        self._one = torch.ones((), device=self.params[0].device)

    @torch.no_grad()
    def step(self, optimizer: torch.optim.Optimizer, update: float = 1.0, closure=None) -> StepReport:
        update = check_fraction("update", update)
        live = [p.detach() for p in self.params]
        torch._foreach_copy_(self._old, live)
        with torch.enable_grad():
            optimizer.step(closure) if closure is not None else optimizer.step()
        if update < 1.0:
            masks = self.masker.masks(self.masker.scores(self._old, live), update)
            for p, old, m in zip(live, self._old, masks):
                p.copy_(torch.where(m, p, old))
        deltas = torch._foreach_sub(live, self._old)
        self.meter.record_step(deltas)
        realized = sum(m.sum() for m in masks) / self.meter.n_params if update < 1.0 else self._one
        return StepReport(update, realized)
