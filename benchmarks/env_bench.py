"""Environment benchmark, measured side by side in one run.

  1. env steps/s against the bare engine training the same epochs  (overhead target <= 5%)
  2. steps/s with 2 subprocess envs against 1                       (target >= 1.6x on 2 cores)

Usage: python benchmarks/env_bench.py [--suite envs/default.toml] [--episodes 4]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from metactrl.engine import Engine
from metactrl.env import TrainingEnv


def env_episodes(env: TrainingEnv, episodes: int, action) -> tuple[float, int]:
    steps, t0 = 0, time.perf_counter()
    for ep in range(episodes):
        env.reset(seed=ep, options={"instance": 0})
        done = False
        while not done:
            _, _, term, trunc, _ = env.step(action)
            steps += 1
            done = term or trunc
    return time.perf_counter() - t0, steps


def bare_episodes(env: TrainingEnv, episodes: int, keep: float, update: float) -> float:
    _, task, epochs, _ = env.instance_setup(0)
    t0 = time.perf_counter()
    for ep in range(episodes):
        e = Engine(task, seed=ep, device="cpu")
        e.evaluate("val")  # the env's reset evaluates the untrained model too (a feature)
        for _ in range(epochs):
            e.run_epoch(keep, update)
    return time.perf_counter() - t0


def vec_steps_per_s(suite: str, n_envs: int, steps: int) -> float:
    from stable_baselines3.common.vec_env import SubprocVecEnv

    from metactrl.controller import BudgetIsTerminal

    def make(rank):
        return lambda: BudgetIsTerminal(TrainingEnv(suite, threads=1))

    venv = SubprocVecEnv([make(i) for i in range(n_envs)], start_method="spawn")
    venv.seed(0)
    venv.reset()
    act = np.zeros((n_envs, 2), dtype=np.float32)
    for _ in range(3):
        venv.step(act)  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps // n_envs):
        venv.step(act)
    dt = time.perf_counter() - t0
    venv.close()
    return (steps // n_envs) * n_envs / dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="envs/default.toml")
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--vec-steps", type=int, default=80)
    a = ap.parse_args()
    torch.set_num_threads(1)
    env = TrainingEnv(a.suite, threads=1)
    action = np.zeros(2, dtype=np.float32)
    from metactrl.env import action_to_schedule

    keep, update = action_to_schedule(action, env.suite.action)
    env_episodes(env, 1, action)
    e_t, e_steps, b_t = [], 0, []
    for _ in range(3):  # interleaved
        t, e_steps = env_episodes(env, a.episodes, action)
        e_t.append(t)
        b_t.append(bare_episodes(env, a.episodes, keep, update))
    overhead = min(e_t) / min(b_t) - 1.0
    s1 = vec_steps_per_s(a.suite, 1, a.vec_steps)
    s2 = vec_steps_per_s(a.suite, 2, a.vec_steps)
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s) per env; suite {a.suite}, "
          f"instance {env.instance.label}, action keep={keep:.3f} update={update:.3f}")
    print(f"{'ratio':<44} {'measured':>9} {'target':>8}")
    print(f"{'env overhead over the bare engine':<44} {overhead * 100:>8.1f}% {'<= 5%':>8} "
          f"{'ok' if overhead <= 0.05 else 'MISSED'}  ({e_steps / min(e_t):.2f} vs "
          f"{e_steps / min(b_t):.2f} steps/s)")
    verdict = "ok" if s2 / s1 >= 1.6 else "MISSED"
    print(f"{'2 subprocess envs / 1 (steps/s)':<44} {s2 / s1:>9.2f} {'>= 1.6':>8} {verdict}"
          f"  ({s2:.2f} vs {s1:.2f} steps/s)")


if __name__ == "__main__":
    main()
