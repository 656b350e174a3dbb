"""Metabolic energy of learning (Li & van Rossum, eLife 2020) and compute counters.

Energy is measured from the parameters themselves, after every optimizer step, whatever the optimizer:

* M1 = Σ_steps Σ_i |Δw_i|^α        metabolic energy, the path length of the weights (α = 1 by default)
* M0 = Σ_steps #{i : Δw_i ≠ 0}     number of weight writes
* M_min = Σ_i |w_i(T) − w_i(0)|^α  the floor: the straight path from initial to final weights; M1 ≥ M_min for α = 1

The synaptic-caching variant keeps changes in a transient store that decays with time constant τ and
costs c per unit magnitude per step to maintain; a synapse whose transient exceeds θ is consolidated
into the persistent weight at a cost of |transient|^α.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class CachingConfig:
    """Synaptic caching (Li & van Rossum 2020).

    Attributes:
        theta: consolidation threshold on |transient| per synapse.
        tau: transient decay time constant in optimizer steps (inf: no decay).
        c: maintenance cost per unit |transient| per step.
    """

    theta: float = 1e-3
    tau: float = math.inf
    c: float = 0.0


class SynapticCache:
    """Transient + persistent weight stores; decay is applied to the live weights, so it shapes learning."""

    def __init__(self, params: list[torch.Tensor], cfg: CachingConfig, alpha: float):
        self.cfg, self.alpha = cfg, alpha
        self.transient = [torch.zeros_like(p) for p in params]
        self.consolidation = torch.zeros((), dtype=torch.float64, device=params[0].device)
        self.maintenance = torch.zeros((), dtype=torch.float64, device=params[0].device)
        self.decay = 0.0 if math.isinf(cfg.tau) else 1.0 - math.exp(-1.0 / cfg.tau)

    @torch.no_grad()
    def record(self, params: list[torch.Tensor], deltas: list[torch.Tensor]) -> None:
        torch._foreach_add_(self.transient, deltas)
        if self.decay:
            lost = torch._foreach_mul(self.transient, self.decay)
            torch._foreach_sub_(params, lost)
            torch._foreach_sub_(self.transient, lost)
        if self.cfg.c:
            self.maintenance += self.cfg.c * torch.stack(torch._foreach_norm(self.transient, 1)).double().sum()
        for t in self.transient:
            big = t.abs() > self.cfg.theta
            self.consolidation += t[big].abs().pow(self.alpha).double().sum()
            t.masked_fill_(big, 0.0)

    @torch.no_grad()
    def finalize(self) -> None:
        """Consolidate everything still transient (the end of learning keeps what was learned)."""
        for t in self.transient:
            self.consolidation += t.abs().pow(self.alpha).double().sum()
            t.zero_()

    def energy(self) -> dict:
        return {"caching_consolidation": float(self.consolidation), "caching_maintenance": float(self.maintenance),
                "caching_total": float(self.consolidation + self.maintenance)}


class EnergyMeter:
    """Accumulates metabolic energy and compute for one training run.

    Counters live on the parameters' device and are read only at epoch ends, so recording a step
    never forces a device sync.
    """

    def __init__(self, params: list[torch.Tensor], *, alpha: float = 1.0, caching: CachingConfig | None = None):
        if not params:
            raise ValueError("EnergyMeter needs at least one trainable parameter.")
        self.params = params
        self.alpha = float(alpha)
        dev = params[0].device
        self.w0 = [p.detach().clone() for p in params]
        self._m1 = torch.zeros((), dtype=torch.float64, device=dev)
        self._m0 = torch.zeros((), dtype=torch.int64, device=dev)
        self._step_m1: list[torch.Tensor] = []
        self.n_params = sum(p.numel() for p in params)
        self.steps = 0
        self.forward_samples = 0
        self.backward_samples = 0
        self.scoring_samples = 0  # forward passes spent only on scoring data (counted in forward_samples too)
        self.flops = 0.0
        self.wall_s = 0.0
        self.cache = SynapticCache(params, caching, self.alpha) if caching else None

    @torch.no_grad()
    def record_step(self, deltas: list[torch.Tensor]) -> None:
        """Account one applied update; ``deltas`` are w_after − w_before per parameter."""
        if self.alpha == 1.0:
            m1 = torch.stack(torch._foreach_norm(deltas, 1)).double().sum()
        else:
            m1 = torch.stack([d.abs().pow(self.alpha).sum() for d in deltas]).double().sum()
        self._m1 += m1
        self._m0 += torch.stack(torch._foreach_norm(deltas, 0)).sum().long()  # L0 norm = nonzero count
        self._step_m1.append(m1)
        self.steps += 1
        if self.cache is not None:
            self.cache.record(self.params, deltas)

    def count_passes(self, forward: int, backward: int, fwd_flops: float, bwd_flops: float, scoring: bool = False):
        self.forward_samples += forward
        self.backward_samples += backward
        self.flops += forward * fwd_flops + backward * bwd_flops
        if scoring:
            self.scoring_samples += forward

    def pop_step_energies(self) -> list[float]:
        """Per-step M1 since the last call (one device sync)."""
        out = torch.stack(self._step_m1).tolist() if self._step_m1 else []
        self._step_m1 = []
        return out

    @torch.no_grad()
    def metabolic_min(self) -> float:
        diffs = torch._foreach_sub([p.detach() for p in self.params], self.w0)
        if self.alpha == 1.0:
            return float(torch.stack(torch._foreach_norm(diffs, 1)).double().sum())
        return float(sum(d.abs().pow(self.alpha).double().sum() for d in diffs))

    def report(self) -> dict:
        """The run's energy so far, as plain numbers (the ``energy`` object of a summary)."""
        m1, mmin = float(self._m1), self.metabolic_min()
        out = {
            "metabolic": m1,
            "metabolic_min": mmin,
            "metabolic_ratio": m1 / mmin if mmin > 0 else float("inf"),
            "weight_writes": int(self._m0),
            "steps": self.steps,
            "forward_samples": self.forward_samples,
            "backward_samples": self.backward_samples,
            "scoring_samples": self.scoring_samples,
            "flops": self.flops,
            "wall_s": self.wall_s,
        }
        if self.cache is not None:
            out.update(self.cache.energy())
        return out


class NvmlJoules:
    """GPU energy from NVML's total-energy counter; ``None`` readings where NVML or CUDA is absent."""

    def __init__(self, device: torch.device):
        self.handle = None
        if device.type != "cuda":
            return
        try:
            import pynvml

            pynvml.nvmlInit()
            idx = device.index if device.index is not None else torch.cuda.current_device()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(idx)
            self._nvml = pynvml
            self.start = self._read()
        except Exception:  # NVML missing or the counter unsupported: joules are simply not reported
            self.handle = None

    def _read(self) -> float:
        return self._nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0

    def joules(self) -> float | None:
        if self.handle is None:
            return None
        torch.cuda.synchronize()
        return self._read() - self.start
