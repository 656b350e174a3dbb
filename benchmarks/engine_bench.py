"""Engine benchmark: ratios measured side by side in one run (interleaved repeats, medians).

  1. engine at keep=1, update=1 against a plain hand-written PyTorch loop   (target <= 1.05x wall time)
  2. engine wall time at keep=0.25 against keep=1                          (target <= 0.30x)
  3. engine time per optimizer step at update=0.1 against update=1         (target <= 1.15x)

Usage: python benchmarks/engine_bench.py [--task digits-cnn] [--epochs 3] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from metactrl.engine import Engine, make_optimizer, seed_everything
from metactrl.tasks import make_task


def plain_loop(task, epochs: int, seed: int) -> float:
    """What a user writes by hand: shuffled mini-batches, AdamW, cross-entropy, a validation pass per epoch."""
    seed_everything(seed)
    model = task.model_fn()
    opt = make_optimizer(task.optimizer, model.parameters(), task.lr, task.weight_decay, task.momentum)
    d = task.data()
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(d.x_train), generator=g)
        for i in range(0, len(perm), task.batch_size):
            idx = perm[i:i + task.batch_size]
            out = model(d.x_train[idx])
            loss = F.cross_entropy(out.flatten(0, -2) if task.kind == "lm" else out, d.y_train[idx].flatten()
                                   if task.kind == "lm" else d.y_train[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        model.eval()
        with torch.no_grad():
            for i in range(0, len(d.x_val), 512):
                model(d.x_val[i:i + 512])
    return time.perf_counter() - t0


def engine_run(task, epochs: int, seed: int, keep: float, update: float) -> tuple[float, int]:
    e = Engine(task, seed=seed, device="cpu")
    t0 = time.perf_counter()
    for _ in range(epochs):
        e.run_epoch(keep, update)
    return time.perf_counter() - t0, e.meter.steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="digits-cnn")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    task = make_task(a.task)
    task.data()
    engine_run(task, 1, 0, 1.0, 1.0)  # warm-up (allocator, kernels)
    plain_loop(task, 1, 0)
    r = {"plain": [], "full": [], "keep25": [], "upd10_step": [], "upd100_step": []}
    for rep in range(a.repeats):  # interleaved so that machine noise hits every variant alike
        r["plain"].append(plain_loop(task, a.epochs, rep))
        t, steps = engine_run(task, a.epochs, rep, 1.0, 1.0)
        r["full"].append(t)
        r["upd100_step"].append(t / steps)
        r["keep25"].append(engine_run(task, a.epochs, rep, 0.25, 1.0)[0])
        t, steps = engine_run(task, a.epochs, rep, 1.0, 0.1)
        r["upd10_step"].append(t / steps)
    med = {k: statistics.median(v) for k, v in r.items()}
    print(f"machine: {platform.machine()} {platform.processor() or ''}, torch {torch.__version__}, "
          f"{a.threads} thread(s); task {a.task}, {a.epochs} epochs, {a.repeats} interleaved repeats (medians)")
    rows = [("engine keep=1,update=1 / plain PyTorch loop", med["full"] / med["plain"], 1.05),
            ("engine keep=0.25 / keep=1 (wall time)", med["keep25"] / med["full"], 0.30),
            ("engine update=0.1 / update=1 (per step)", med["upd10_step"] / med["upd100_step"], 1.15)]
    print(f"{'ratio':<46} {'measured':>9} {'target':>8}")
    for name, v, target in rows:
        print(f"{name:<46} {v:>9.3f} {'<= ' + str(target):>8} {'ok' if v <= target else 'MISSED'}")
    print(f"(plain loop {med['plain']:.3f}s, engine full {med['full']:.3f}s, keep=0.25 {med['keep25']:.3f}s, "
          f"per step {med['upd100_step'] * 1e3:.2f}ms vs {med['upd10_step'] * 1e3:.2f}ms)")


if __name__ == "__main__":
    main()
