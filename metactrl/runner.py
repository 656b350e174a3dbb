"""Drive the engine with a schedule for a whole run: used by ``run``, ``apply``, ``compare`` and the user API."""

from __future__ import annotations

from collections.abc import Callable

from .engine import Engine, EngineOptions
from .schedules import Schedule
from .tasks.registry import Task


def run_schedule(task: Task, schedule: Schedule, *, seed: int = 0, device: str = "auto", epochs: int | None = None,
                 options: EngineOptions | None = None, on_epoch: Callable[[dict], None] | None = None,
                 threads: int | None = None) -> dict:
    """Train ``task`` for ``epochs`` (default: its budget) with ``schedule`` deciding every epoch.

    Returns the engine summary, with the schedule's name under ``schedule``. Stops early if the run diverges.
    """
    engine = Engine(task, seed=seed, device=device, options=options, threads=threads)
    epochs = int(epochs or task.epochs)
    schedule.reset(engine, epochs)
    for epoch in range(1, epochs + 1):
        d = schedule.decide(engine, epoch)
        rec = engine.run_epoch(d.keep, d.update, **d.kwargs())
        if on_epoch is not None:
            on_epoch(rec)
        if engine.diverged:
            break
    out = engine.summary()
    out["schedule"] = schedule.name
    return out
