"""Task-agnostic observation features, shared by the environment and a learned policy applied elsewhere.

Each feature is scaled so its range means the same on every architecture and dataset; normalisation
comes from the instance's reference run (full data, full updates). The list is versioned: the version
travels with every saved policy, and a policy trained on another version is refused.
"""

from __future__ import annotations

import math

import numpy as np

FEATURES_VERSION = 2

FEATURES: tuple[tuple[str, str], ...] = (
    ("progress", "decision steps done / steps in the budget"),
    ("loss_rel", "last training loss / first epoch's training loss, clipped to [0, 2]"),
    ("metric_norm", "(val metric − chance) / (reference final − chance), clipped to [−1, 2]"),
    ("metric_delta", "change of metric_norm over the last step, clipped to [−1, 1]"),
    ("metric_gap", "metric_norm − the reference run's metric_norm at the same epoch, clipped to [−1, 1]"),
    ("learned", "fraction of training samples predicted correctly when last seen"),
    ("energy_spent", "metabolic energy so far / reference run's total, clipped to [0, 3]"),
    ("backward_spent", "backward sample passes so far / reference run's total, clipped to [0, 3]"),
    ("ref_energy_at_t", "reference run's metabolic energy by this epoch / its total"),
    ("last_keep", "previous action's keep coordinate in [−1, 1]"),
    ("last_update", "previous action's update coordinate in [−1, 1]"),
    ("ref_remaining", "1 − the reference run's metric_norm now: what full training still gains from here, in [−1, 1]"),
)
N_FEATURES = len(FEATURES)


def normalised_metric(metric: float, ref: dict) -> float:
    span = max(ref["final_val_metric"] - ref["chance"], 1e-6)
    return (metric - ref["chance"]) / span


def reference_norm_at(ref: dict, epochs: float) -> float:
    """The reference run's normalised metric after ``epochs`` (fractional: linear between epochs; 0 at start)."""
    curve = ref["curve"]
    if epochs <= 0:
        return 0.0
    if epochs >= len(curve):
        return normalised_metric(curve[-1]["val_metric"], ref)
    lo = int(math.floor(epochs))
    a = normalised_metric(curve[lo - 1]["val_metric"], ref) if lo > 0 else 0.0
    b = normalised_metric(curve[lo]["val_metric"], ref)
    return a + (epochs - lo) * (b - a)


class FeatureTracker:
    """Builds the observation vector from an engine's history and its reference run."""

    def __init__(self, ref: dict, epochs: int, per_epoch: int = 1):
        self.ref, self.epochs, self.per_epoch = ref, epochs, per_epoch
        self.reset(initial_metric=ref["chance"])

    def reset(self, initial_metric: float) -> None:
        self.metric_norm = normalised_metric(initial_metric, self.ref)
        self.prev_metric_norm = self.metric_norm
        self.first_loss: float | None = None
        self.last_loss: float | None = None
        self.learned = 0.0
        self.metabolic = 0.0
        self.backward = 0.0
        self.t = 0
        self.last_action = np.ones(2, dtype=np.float32)

    def update(self, rec: dict, action: np.ndarray) -> None:
        self.t += 1
        self.prev_metric_norm = self.metric_norm
        if math.isfinite(rec["val_metric"]):
            self.metric_norm = normalised_metric(rec["val_metric"], self.ref)
        if self.first_loss is None:
            self.first_loss = max(rec["train_loss"], 1e-8)
        self.last_loss = rec["train_loss"]
        self.learned = rec["learned_fraction"]
        self.metabolic += rec["metabolic"]
        self.backward += rec["backward_samples"]
        self.last_action = np.asarray(action, dtype=np.float32)

    def observe(self) -> np.ndarray:
        ref, t = self.ref, self.t
        curve = ref["curve"]
        ep = min(-(-t // self.per_epoch), len(curve))  # the reference epoch this step falls in
        ref_norm = normalised_metric(curve[ep - 1]["val_metric"], ref) if t > 0 else self.prev_metric_norm
        ref_e = curve[ep - 1]["metabolic"] / ref["energy"]["metabolic"] if t > 0 else 0.0
        loss_rel = 1.0 if not self.first_loss or self.last_loss is None else self.last_loss / self.first_loss
        obs = [
            t / (self.epochs * self.per_epoch),
            _clip(loss_rel, 0, 2),
            _clip(self.metric_norm, -1, 2),
            _clip(self.metric_norm - self.prev_metric_norm, -1, 1),
            _clip(self.metric_norm - ref_norm, -1, 1),
            self.learned,
            _clip(self.metabolic / max(ref["energy"]["metabolic"], 1e-12), 0, 3),
            _clip(self.backward / max(ref["energy"]["backward"], 1.0), 0, 3),
            ref_e,
            float(self.last_action[0]),
            float(self.last_action[1]),
            _clip(1.0 - reference_norm_at(ref, t / self.per_epoch), -1, 1),
        ]
        return np.nan_to_num(np.asarray(obs, dtype=np.float32), nan=0.0)


def _clip(v: float, lo: float, hi: float) -> float:
    if not math.isfinite(v):
        return hi if v > 0 else lo
    return min(max(v, lo), hi)
