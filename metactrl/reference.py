"""Reference runs: full data, full updates, same instance and budget; computed once and cached on disk.

They normalise metric and energy so that a reward means the same thing on every task. The cache key
hashes everything that determines the run (task name and configuration, epochs, engine options, seed,
package version); the cache folder is ``$METACTRL_CACHE/references`` (default ``~/.cache/metactrl``).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .engine import Engine, EngineOptions
from .errors import MetactrlError
from .tasks.registry import Task

REF_SEED = 0


def cache_dir() -> Path:
    return Path(os.environ.get("METACTRL_CACHE") or Path.home() / ".cache" / "metactrl")


def reference_key(task: Task, epochs: int, options: EngineOptions, seed: int = REF_SEED, seeds: int = 1) -> str:
    from . import __version__

    d = {"task": task.name, "config": task.config, "epochs": epochs, "seed": seed, "options": repr(options),
         "version": __version__}
    if seeds > 1:
        d["seeds"] = seeds
    blob = json.dumps(d, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def reference_run(task: Task, epochs: int, *, options: EngineOptions | None = None, device: str = "cpu",
                  seed: int = REF_SEED, seeds: int = 1) -> dict:
    """The full-training curve of ``task``: per-epoch val metric and cumulative energy, cached.

    With ``seeds`` > 1 the curve is the mean of that many runs (seeds ``seed``, ``seed+1``, ...): the
    expected full-training metric, not one lucky or unlucky initialisation. On small validation sets
    one seed's final accuracy can sit a point or more away from the mean, and a constraint measured
    against it would be unreachable (or free) on that instance.
    """
    options = options or EngineOptions()
    if int(seeds) != seeds or seeds < 1:
        raise MetactrlError(f"reference seeds must be an integer >= 1, got {seeds!r}.")
    path = cache_dir() / "references" / f"{task.name}__{reference_key(task, epochs, options, seed, seeds)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            pass  # a corrupt cache entry is recomputed
    runs = []
    for s in range(seed, seed + int(seeds)):
        eng = Engine(task, seed=s, device=device, options=options)
        for _ in range(epochs):
            eng.run_epoch(1.0, 1.0)
            if eng.diverged:
                raise MetactrlError(f"the full-training reference run of task '{task.name}' (seed {s}) diverged "
                                    f"(non-finite loss) in epoch {eng.epoch}; it cannot normalise rewards. Lower the "
                                    f"task's lr (e.g. overrides = {{ lr = {task.lr / 10:g} }}) or fix the model.")
        runs.append(reference_from_history(eng.history, task.name, task.chance))
    ref = mean_reference(runs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ref))
    tmp.replace(path)
    return ref


def reference_from_history(history: list[dict], task: str, chance: float) -> dict:
    """A full-training run's epoch records in the reference format: the val curve and cumulative energies."""
    cum = {"metabolic": 0.0, "backward": 0.0, "flops": 0.0, "weight_writes": 0.0}
    curve = []
    for r in history:
        cum = {"metabolic": cum["metabolic"] + r["metabolic"], "backward": cum["backward"] + r["backward_samples"],
               "flops": cum["flops"] + r.get("flops", 0.0), "weight_writes": cum["weight_writes"] + r["weight_writes"]}
        curve.append({"val_metric": r["val_metric"], "train_loss": r["train_loss"], **cum})
    return {"task": task, "epochs": len(history), "final_val_metric": history[-1]["val_metric"], "chance": chance,
            "energy": dict(cum), "curve": curve, "diverged": bool(history[-1].get("diverged", False))}


def mean_reference(runs: list[dict]) -> dict:
    """The element-wise mean of reference runs of one instance (same epochs); one run is returned as is."""
    if len(runs) == 1:
        return runs[0]
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    curve = [{k: mean([r["curve"][e][k] for r in runs]) for k in runs[0]["curve"][e]}
             for e in range(len(runs[0]["curve"]))]
    return {**runs[0], "final_val_metric": curve[-1]["val_metric"], "curve": curve,
            "energy": {k: mean([r["energy"][k] for r in runs]) for k in runs[0]["energy"]},
            "seeds": len(runs), "final_val_metric_per_seed": [r["final_val_metric"] for r in runs]}
