"""A policy bundle against every constant (keep, update) pair, on a suite's held-out instances.

The same seeds for the policy and for every constant pair; the best pair is picked after the fact on
those same seeds (which favours the constants). Prints one table: per held-out instance the return,
final metric and energy ratios of the policy, of full training (1, 1) and of the best pair, then the
means and the verdict. This is the comparison `metactrl train` makes at its end, with more seeds.

Usage: python benchmarks/controller_eval.py --policy policies/default [--suite envs/default.toml]
       [--seeds 8] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from metactrl.controller import CONSTANT_GRID, constant_grid, evaluate_actor, load_bundle, policy_actor
from metactrl.env import TrainingEnv


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="policies/default")
    ap.add_argument("--suite", default="", help="default: the suite named on the policy's card")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="processes for the constant grid")
    ap.add_argument("--json", default="")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    b = load_bundle(a.policy)
    suite = a.suite or b.card["suite"]["path"]
    env = TrainingEnv(suite, "heldout")
    t0 = time.time()
    pol = evaluate_actor(env, policy_actor(b.model, b.obs_rms), a.seeds)
    grid = constant_grid(env, a.seeds, workers=a.workers)  # every pair on the same seeds, per instance too
    full, best = _as_result(grid["grid"]["1,1"]), _as_result(grid["grid"][grid["best"]])
    print(f"policy {a.policy} (card: {b.card['timesteps']} steps, seed {b.card['seed']}); suite {env.suite.path}; "
          f"{a.seeds} seeds per instance; {len(CONSTANT_GRID)} constant pairs; {time.time() - t0:.0f}s")
    head = f"{'held-out instance':<52} {'schedule':<16} {'return':>7} {'metric':>7} {'ref':>7} {'M1':>6} {'bwd':>6}"
    print(head + "\n" + "-" * len(head))
    rows = (("policy", pol), ("full (1,1)", full), (f"best ({grid['best']})", best))
    for inst in pol["per_instance"]:
        for name, res in rows:
            r = res["per_instance"][inst]
            print(f"{inst:<52} {name:<16} {r['return']:>7.3f} {r['final_val_metric']:>7.4f} "
                  f"{r['ref_val_metric']:>7.4f} {r['metabolic_ratio']:>6.3f} {r['backward_ratio']:>6.3f}")
    for name, res in rows:
        print(f"{'mean':<52} {name:<16} {res['mean']['return']:>7.3f}")
    margin = pol["mean"]["return"] - grid["best_return"]
    per_seed = _per_seed_margin(pol, best)
    print(f"\npolicy − best constant: {margin:+.3f} on the mean return; per seed (mean over instances): "
          f"{', '.join(f'{m:+.3f}' for m in per_seed)}; the policy is ahead on {sum(m > 0 for m in per_seed)}"
          f"/{len(per_seed)} seeds")
    out = {"policy": pol, "full": full, "grid": grid, "margin": margin, "per_seed_margin": per_seed}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
    return out


def _as_result(entry: dict) -> dict:
    """A grid entry in ``evaluate_actor``'s layout: ``{"mean": ..., "per_instance": ...}``."""
    return {"mean": {k: v for k, v in entry.items() if k != "per_instance"}, "per_instance": entry["per_instance"]}


def _per_seed_margin(a: dict, b: dict) -> list[float]:
    """Per seed: mean over instances of a's return minus b's (same seeds, same instances)."""
    diffs = [np.subtract(a["per_instance"][k]["returns"], b["per_instance"][k]["returns"]) for k in a["per_instance"]]
    return [float(v) for v in np.mean(diffs, axis=0)]


if __name__ == "__main__":
    main()
