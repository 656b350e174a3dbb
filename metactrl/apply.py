"""``metactrl apply``: a learned policy against full training on the same task and seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import config as C

FIELDS = ("final_val_metric", "test_metric", "metabolic", "metabolic_ratio", "weight_writes", "forward_samples",
          "backward_samples", "flops", "wall_s")


@dataclass
class ApplyConfig:
    """``metactrl apply``: train a task with a learned policy and with full training, same seeds."""

    policy: str = C.field("policies/default", "policy bundle folder")
    task: str = C.field("digits-vit", "task name (`metactrl tasks` lists them)")
    seeds: int = C.field(3, "number of seeds (0..seeds-1)")
    epochs: int = C.field(0, "epochs (0: the task's default budget)")
    device: str = C.field("auto", "auto, cpu or cuda")
    data_dir: str = C.field("", "folder with the real datasets")
    set: list = C.field([], "task override key=value (repeatable)")
    json: str = C.field("", "write {policy, full} summaries to this JSON file")
    runs_dir: str = C.field("runs", "TensorBoard root folder")
    threads: int = C.field(0, "torch CPU threads (0: torch's default)")


def flat(summary: dict) -> dict:
    """The comparable figures of one run summary."""
    e = summary["energy"]
    return {"final_val_metric": summary["final_val_metric"], "test_metric": summary.get("test_metric", math.nan),
            **{k: e[k] for k in ("metabolic", "metabolic_min", "metabolic_ratio", "weight_writes", "forward_samples",
                                 "backward_samples", "flops", "wall_s")}}


def aggregate(runs: list[dict]) -> dict:
    """Means over seeds in the shape of a ``run --json`` summary, with the per-seed values alongside."""
    rows = [flat(r) for r in runs]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    std = {k: float(np.std([r[k] for r in rows])) for k in rows[0]}
    energy_keys = [k for k in rows[0] if k not in ("final_val_metric", "test_metric")]
    return {"task": runs[0]["task"], "epochs": runs[0]["epochs"], "schedule": runs[0].get("schedule"),
            "seeds": [r["seed"] for r in runs], "final_val_metric": mean["final_val_metric"],
            "test_metric": mean["test_metric"], "energy": {k: mean[k] for k in energy_keys},
            "std": std, "per_seed": rows}


def compare_table(policy: dict, full: dict) -> str:
    lines = [f"{'':<18} {'policy':>24} {'full':>24} {'policy/full':>12}"]
    for k in FIELDS:
        p = policy["per_seed"]
        f = full["per_seed"]
        pm, ps = np.mean([r[k] for r in p]), np.std([r[k] for r in p])
        fm, fs = np.mean([r[k] for r in f]), np.std([r[k] for r in f])
        ratio = pm / fm if fm else math.nan
        lines.append(f"{k:<18} {_pm(pm, ps):>24} {_pm(fm, fs):>24} {ratio:>12.3f}")
    return "\n".join(lines)


def _pm(m: float, s: float) -> str:
    if abs(m) >= 1e4:
        return f"{m:.3g} ± {s:.2g}"
    return f"{m:.4f} ± {s:.4f}"


def apply_policy(cfg: ApplyConfig, *, log: bool = True) -> dict:
    from . import tb
    from .cli import task_from_name
    from .controller import PolicySchedule, load_bundle
    from .runner import run_schedule
    from .schedules import Constant

    bundle = load_bundle(cfg.policy)
    task = task_from_name(cfg.task, cfg.data_dir, C.parse_overrides(cfg.set))
    out: dict[str, list] = {"policy": [], "full": []}
    for seed in range(cfg.seeds):
        for kind, sched in (("policy", PolicySchedule(bundle)), ("full", Constant(1.0, 1.0, name="full"))):
            w = tb.writer(tb.run_dir(cfg.runs_dir, cfg.task, f"apply-{kind}", seed)) if log else None
            s = run_schedule(task, sched, seed=seed, device=cfg.device, epochs=cfg.epochs or None,
                             threads=cfg.threads or None,
                             on_epoch=(lambda rec, w=w: tb.write_epoch(w, rec)) if w else None)
            if w:
                tb.write_summary(w, s)
                w.close()
            print(f"seed {seed} {kind:<6} val {s['final_val_metric']:.4f}  M1 {s['energy']['metabolic']:.3f}  "
                  f"bwd {s['energy']['backward_samples']:,}  wall {s['energy']['wall_s']:.1f}s")
            out[kind].append(s)
    return {"policy": aggregate(out["policy"]), "full": aggregate(out["full"]), "policy_path": str(bundle.path)}


def cmd_apply(cfg: ApplyConfig) -> int:
    from .cli import write_json

    print(C.format_config(cfg))
    res = apply_policy(cfg)
    print(f"\n{cfg.task}, {cfg.seeds} seeds, mean ± std:")
    print(compare_table(res["policy"], res["full"]))
    if cfg.json:
        write_json(cfg.json, res)
        print(f"written to {cfg.json}")
    return 0
