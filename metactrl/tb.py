"""Run folders and TensorBoard writing shared by every command.

Run folders name themselves ``runs/{task-or-suite}__{name}__{seed}__{timestamp}`` (CleanRL); tags live in
namespaces: ``inner/`` (the trained network), ``energy/``, ``schedule/``, ``meta/`` (the controller).
"""

from __future__ import annotations

import time
from pathlib import Path

from .config import as_dict

INNER = ("train_loss", "val_loss", "val_metric", "val_perplexity", "learned_fraction")
ENERGY = ("metabolic", "weight_writes", "forward_samples", "backward_samples", "flops", "wall_s")
SCHEDULE = ("keep", "update", "kept", "realized_update", "max_realized_update")


def run_dir(root: str | Path, subject: str, name: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    subject = Path(str(subject)).stem if str(subject).endswith(".toml") else str(subject)
    d = Path(root) / f"{subject}__{name}__{seed}__{stamp}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def writer(path: str | Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def write_config(w, cfg) -> None:
    table = "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in as_dict(cfg).items())
    w.add_text("hyperparameters", table)


def write_epoch(w, rec: dict, *, prefix: str = "", step: int | None = None) -> None:
    """Write one engine epoch record under inner/, energy/ and schedule/."""
    step = rec["epoch"] if step is None else step
    for ns, keys in (("inner", INNER), ("energy", ENERGY), ("schedule", SCHEDULE)):
        for k in keys:
            if k in rec and rec[k] is not None:
                w.add_scalar(f"{ns}/{prefix}{k}", float(rec[k]), step)
    if "metabolic_min" in rec:
        w.add_scalar(f"energy/{prefix}metabolic_min", float(rec["metabolic_min"]), step)


def write_summary(w, summary: dict, *, prefix: str = "") -> None:
    e = summary["energy"]
    for k in ("metabolic", "metabolic_min", "metabolic_ratio", "weight_writes", "backward_samples", "flops"):
        w.add_scalar(f"energy/{prefix}total_{k}", float(e[k]), summary["epochs"])
    w.add_scalar(f"inner/{prefix}final_val_metric", float(summary["final_val_metric"]), summary["epochs"])
    if "test_metric" in summary:
        w.add_scalar(f"inner/{prefix}test_metric", float(summary["test_metric"]), summary["epochs"])
