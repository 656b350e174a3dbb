"""Compare schedules on tasks and seeds: a result cache, then CSV, markdown, Pareto plots and TensorBoard.

Every (task instance, schedule, seed) is one ``run_schedule`` call, run in parallel across processes. Each
finished run is written atomically to ``OUT/cache/<task>__<schedule>__<seed>__<hash>.json``, where the hash
covers everything that determines the run (task configuration, epochs, engine options, schedule spec,
device type, package version), so re-running adds only what is missing and an interrupted comparison
resumes where it stopped. Reports are rebuilt from the cache every time:

    OUT/results.csv         one row per run
    OUT/results.md          per task: mean ± std over seeds, and each relative to ``full``; starts with the command
    OUT/pareto_<task>.png   final validation metric against metabolic energy (log x), one marker per schedule
    RUNS/<subject>__compare__<seeds>__<stamp>/   TensorBoard scalars under ``compare/<task>/<schedule>/...``
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import multiprocessing as mp
import os
import platform
import re
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from . import config as C
from .errors import ConfigError, MetactrlError

DEFAULT_SCHEDULES = "full,pdd-srd,pdd-dbpd,infobatch,lazy,topk:0.1,random"


@dataclass
class CompareConfig:
    """``metactrl compare``: run schedules on tasks and seeds, then tabulate and plot them side by side."""

    suite: str = C.field("", "suite TOML (e.g. envs/default.toml); its [[train]] and [[heldout]] tasks are used")
    task: str = C.field("", "comma-separated task names, instead of --suite, e.g. digits-cnn,digits-mlp")
    schedules: str = C.field(DEFAULT_SCHEDULES, "comma-separated schedule specs, e.g. full,pdd-dbpd,topk:0.1")
    seeds: int = C.field(3, "seeds per task and schedule (seeds 0 .. seeds-1)")
    epochs: int = C.field(0, "epochs per run (0: the suite instance's or the task's default budget)")
    device: str = C.field("auto", "auto, cpu or cuda")
    data_dir: str = C.field("", "folder with the real datasets (default: $METACTRL_DATA or ./data)")
    out: str = C.field("results/compare", "output folder: cache/, results.csv, results.md, pareto_*.png")
    workers: int = C.field(2, "runs in parallel (processes, one torch thread each)")
    runs_dir: str = C.field("runs", "TensorBoard root folder")
    report_only: bool = C.field(False, "write the tables from the cached runs only, listing the missing ones")


# Columns of the markdown table: (summary key, header, kind); kind picks the number format.
TABLE = (("final_val_metric", "val metric", "metric"), ("test_metric", "test metric", "metric"),
         ("metabolic", "M1", "num"), ("metabolic_ratio", "M1/M_min", "num"), ("weight_writes", "writes", "num"),
         ("backward_samples", "bwd samples", "num"), ("forward_samples", "fwd samples", "num"),
         ("flops", "FLOPs", "num"), ("wall_s", "wall s", "num"))
ENERGY_KEYS = ("metabolic", "metabolic_min", "metabolic_ratio", "weight_writes", "backward_samples",
               "forward_samples", "scoring_samples", "flops", "wall_s")
CSV_COLUMNS = ("task", "instance", "schedule", "seed", "epochs", "diverged", "final_val_metric", "test_metric",
               "final_val_perplexity", "test_perplexity", *ENERGY_KEYS, "config_hash")


@dataclass(frozen=True)
class Instance:
    """One task configuration of a comparison: a task name, an optional epoch budget and overrides."""

    task: str
    epochs: int | None = None
    overrides: tuple = ()  # sorted (key, value) pairs, hashable so instances dedupe

    @property
    def label(self) -> str:
        """``task``, or ``task[k=v,...]@Nep`` when the instance sets overrides or epochs."""
        s = self.task
        if self.overrides:
            s += "[" + ",".join(f"{k}={v}" for k, v in self.overrides) + "]"
        if self.epochs:
            s += f"@{self.epochs}ep"
        return s


@dataclass
class Job:
    """One run to do: everything a worker process needs, and where its result goes."""

    instance: Instance
    schedule: str
    seed: int
    epochs: int
    device: str
    data_dir: str
    options: dict
    key: str
    path: str


@dataclass
class CompareResult:
    """What ``compare`` did: the runs it made, those found in the cache, failures, and the files written."""

    jobs: list[Job]
    ran: list[Job]
    cached: list[Job]
    errors: dict[str, str]
    skipped: list[str]
    rows: list[dict]
    markdown: str
    files: dict[str, str]


# ---------------------------------------------------------------------------------------------- planning
def slug(text: str) -> str:
    """A file- and tag-safe form of a spec or label: ``topk:0.1`` -> ``topk_0.1``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def parse_list(text: str, what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise ConfigError(f"--{what} needs at least one comma-separated name, got {text!r}.")
    return list(dict.fromkeys(items))  # dedupe, keep order


def load_instances(cfg: CompareConfig) -> tuple[list[Instance], str]:
    """The task instances of ``--suite`` (train and heldout, deduped) or ``--task``, and the data folder.

    The data folder is ``--data-dir``, else the suite's own ``data_dir`` setting, else the default ("").
    """
    if bool(cfg.suite) == bool(cfg.task):
        raise ConfigError("compare needs exactly one of --suite envs/default.toml or --task digits-cnn,... "
                          f"(got suite={cfg.suite!r}, task={cfg.task!r}).")
    if cfg.task:
        return [Instance(t) for t in parse_list(cfg.task, "task")], cfg.data_dir
    entries, suite_dir = _suite_entries(cfg.suite)
    instances = [_instance(e, cfg.suite) for e in entries]
    return list(dict.fromkeys(instances)), cfg.data_dir or suite_dir or ""


def _suite_entries(path: str) -> tuple[list, str | None]:
    try:  # the suite module is the authority on suite files when present
        from .suite import load_suite
    except ImportError:
        return _read_suite_toml(path), None
    suite = load_suite(path)
    return [*_member(suite, "train"), *_member(suite, "heldout")], getattr(suite, "data_dir", None)


def _member(obj, name: str) -> list:
    return list((obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)) or [])


def _read_suite_toml(path: str) -> list[dict]:
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"suite file {path!r} not found; suites live in envs/, e.g. --suite envs/default.toml.")
    data = tomllib.loads(p.read_text())
    entries = [*data.get("train", []), *data.get("heldout", [])]
    if not entries:
        raise ConfigError(f"suite {path!r} has no [[train]] or [[heldout]] instances; each needs task = \"name\".")
    return entries


def _instance(entry, path: str) -> Instance:
    if isinstance(entry, dict):
        unknown = set(entry) - {"task", "epochs", "overrides"}
        if unknown or "task" not in entry:
            raise ConfigError(f"suite {path!r}: an instance needs task = \"name\" and may have epochs and "
                              f"overrides = {{...}}; got keys {sorted(entry)}.")
        task, epochs, overrides = entry["task"], entry.get("epochs"), entry.get("overrides") or {}
    else:
        task = getattr(entry, "task", None) or entry.name
        epochs, overrides = getattr(entry, "epochs", None), getattr(entry, "overrides", None) or {}
    return Instance(str(task), int(epochs) if epochs else None, tuple(sorted(dict(overrides).items())))


def make_instance_task(instance: Instance, data_dir: str = ""):
    """Build the Task of an instance (``data_dir`` only goes to tasks that take one)."""
    from .tasks import make_task, task_defaults

    overrides = dict(instance.overrides)
    if data_dir and "data_dir" in task_defaults(instance.task):
        overrides["data_dir"] = data_dir
    return make_task(instance.task, **overrides)


def config_hash(task, epochs: int, options: dict, spec: str, seed: int, device_type: str) -> str:
    """Hash of everything that determines a run's result (12 hex digits)."""
    from . import __version__

    key = {"task": task.name, "task_config": task.config, "epochs": epochs, "options": options,
           "schedule": spec, "schedule_files": _spec_fingerprint(spec), "seed": seed, "device": device_type,
           "version": __version__}
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _spec_fingerprint(spec: str) -> str:
    # A policy spec names a folder whose contents, not its name, decide the runs.
    prefix, _, arg = spec.partition(":")
    folder = Path(arg)
    if prefix != "policy" or not folder.is_dir():
        return ""
    h = hashlib.sha256()
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f.relative_to(folder).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


RUN_CODE = ("engine.py", "selection.py", "plasticity.py", "energy.py", "runner.py", "schedules.py", "baselines.py",
            "tasks/*.py")


def code_fingerprint() -> str:
    """Hash of the source files that decide a run's numbers.

    Not part of the cache key (a lint commit would redo every run); stored with each result so that the
    report can say when cached runs were made by different code.
    """
    root, h = Path(__file__).parent, hashlib.sha256()
    for pattern in RUN_CODE:
        for f in sorted(root.glob(pattern)):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


def plan(cfg: CompareConfig) -> tuple[list[Job], list[str]]:
    """All jobs of the comparison, and the instances skipped because their data is missing."""
    from .engine import EngineOptions, resolve_device
    from .schedules import make_schedule

    specs = parse_list(cfg.schedules, "schedules")
    for spec in specs:
        make_schedule(spec)  # fail on a typo before anything runs
    if cfg.seeds < 1 or cfg.workers < 1 or cfg.epochs < 0:
        raise ConfigError(f"--seeds and --workers must be >= 1 and --epochs >= 0; got seeds={cfg.seeds}, "
                          f"workers={cfg.workers}, epochs={cfg.epochs}. E.g. --seeds 3 --workers 2.")
    options = dataclasses.asdict(EngineOptions())
    device_type = resolve_device(cfg.device).type
    cache = Path(cfg.out) / "cache"
    instances, data_dir = load_instances(cfg)
    jobs, skipped = [], []
    for inst in instances:
        task = make_instance_task(inst, data_dir)
        if not task.available():
            skipped.append(f"{inst.label} (data missing: {task.source})")
            continue
        epochs = int(cfg.epochs or inst.epochs or task.epochs)
        for spec in specs:
            for seed in range(cfg.seeds):
                key = config_hash(task, epochs, options, spec, seed, device_type)
                path = cache / f"{slug(inst.task)}__{slug(spec)}__{seed}__{key}.json"
                jobs.append(Job(inst, spec, seed, epochs, cfg.device, data_dir, options, key, str(path)))
    return jobs, skipped


# ---------------------------------------------------------------------------------------------- running
def run_job(job: Job) -> dict:
    """Run one job with one torch thread, write its result to the cache atomically and return it.

    Errors come back as ``{"error": "..."}`` so one failing run does not stop the others.
    """
    import torch

    from . import __version__
    from .cli import write_json  # late: cli may import this module
    from .engine import EngineOptions
    from .runner import run_schedule
    from .schedules import make_schedule

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # parallelism comes from processes; threads would only fight over cores
    try:
        task = make_instance_task(job.instance, job.data_dir)
        summary = run_schedule(task, make_schedule(job.schedule), seed=job.seed, device=job.device,
                               epochs=job.epochs, options=EngineOptions(**job.options))
    except Exception as e:  # reported by the parent, which carries on with the other runs
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        torch.set_num_threads(threads)
    summary["compare"] = {"instance": job.instance.label, "task_config": task.config, "schedule": job.schedule,
                          "seed": job.seed, "epochs": job.epochs, "config_hash": job.key, "version": __version__,
                          "code": code_fingerprint(), "machine": machine()}
    write_json(job.path, summary)
    return summary


def load_cached(path: str) -> dict | None:
    """A cached result, or None when absent or unreadable (then the run is simply redone)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def execute(jobs: list[Job], workers: int, *, log=print) -> dict[str, str]:
    """Run ``jobs`` (in-process for one worker, else a spawn process pool); return errors by cache path."""
    errors: dict[str, str] = {}
    t0 = time.perf_counter()

    def done(i: int, job: Job, res: dict) -> None:
        what = f"[{i}/{len(jobs)}] {job.instance.label} {job.schedule} seed {job.seed}"
        if "error" in res:
            errors[job.path] = res["error"]
            log(f"{what}: FAILED {res['error']}")
        else:
            log(f"{what}: val {res['final_val_metric']:.4f}  M1 {res['energy']['metabolic']:.4g}  "
                f"({res['energy']['wall_s']:.1f}s; {time.perf_counter() - t0:.0f}s elapsed)")

    if workers <= 1 or len(jobs) <= 1:
        for i, job in enumerate(jobs, 1):
            done(i, job, run_job(job))
        return errors
    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_job, job): job for job in jobs}
        try:
            for i, fut in enumerate(as_completed(futures), 1):
                done(i, futures[fut], fut.result())
        except BaseException:
            # Finished runs are already cached; drop the queue so an interrupt returns promptly.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return errors


# ---------------------------------------------------------------------------------------------- reporting
def row(job: Job, res: dict) -> dict:
    """One CSV row of a finished run."""
    e = res["energy"]
    r = {"task": job.instance.task, "instance": job.instance.label, "schedule": job.schedule, "seed": job.seed,
         "epochs": res["epochs"], "diverged": res["diverged"], "final_val_metric": res["final_val_metric"],
         "test_metric": res.get("test_metric", math.nan),
         "final_val_perplexity": res.get("final_val_perplexity") or "",
         "test_perplexity": res.get("test_perplexity", ""),
         "config_hash": job.key}
    r.update({k: e.get(k, math.nan) for k in ENERGY_KEYS})
    return r


def aggregate(rows: list[dict]) -> dict[str, dict[str, dict[str, tuple[float, float, int]]]]:
    """``{instance: {schedule: {key: (mean, std, n)}}}`` over seeds; std is the sample std (0 for one seed)."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        groups.setdefault(r["instance"], {}).setdefault(r["schedule"], []).append(r)
    out: dict = {}
    for inst, by_spec in groups.items():
        out[inst] = {}
        for spec, rs in by_spec.items():
            stats = {}
            for key, _, _ in TABLE:
                vals = [float(r[key]) for r in rs if _finite(r[key])]
                mean = statistics.fmean(vals) if vals else math.nan
                std = statistics.stdev(vals) if len(vals) > 1 else 0.0
                stats[key] = (mean, std, len(vals))
            stats["diverged"] = (float(sum(bool(r["diverged"]) for r in rs)), 0.0, len(rs))
            out[inst][spec] = stats
    return out


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def fmt_num(v: float) -> str:
    """Three significant digits with k/M/G/T suffixes: 1234567 -> 1.23M."""
    if not math.isfinite(v):
        return "–"
    for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suf}"
    return f"{v:.3g}"


def _cell(mean: float, std: float, kind: str) -> str:
    if kind == "metric":
        return f"{mean:.4f} ± {std:.4f}" if math.isfinite(mean) else "–"
    return f"{fmt_num(mean)} ± {fmt_num(std)}" if math.isfinite(mean) else "–"


def _ratio(x: float, ref: float) -> str:
    return f"{x / ref:.3g}" if math.isfinite(x) and math.isfinite(ref) and ref != 0 else "–"


def task_tables(inst: str, by_spec: dict, specs: list[str]) -> str:
    """Markdown for one task: absolute mean ± std, then each mean relative to ``full``."""
    specs = [s for s in specs if s in by_spec]
    head = "| schedule | " + " | ".join(h for _, h, _ in TABLE) + " | diverged |"
    sep = "|" + "---|" * (len(TABLE) + 2)
    lines = [f"### {inst}", "", head, sep]
    for s in specs:
        st = by_spec[s]
        cells = [_cell(st[k][0], st[k][1], kind) for k, _, kind in TABLE]
        div = st["diverged"]
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {int(div[0])}/{div[2]} |")
    lines.append("")
    if "full" not in by_spec:
        lines += ["(no `full` runs: ratios relative to full are omitted)", ""]
        return "\n".join(lines)
    ref = by_spec["full"]
    lines += ["Relative to `full` (ratio of means):", "",
              "| schedule | " + " | ".join(h for _, h, _ in TABLE) + " |", "|" + "---|" * (len(TABLE) + 1)]
    for s in specs:
        cells = [_ratio(by_spec[s][k][0], ref[k][0]) for k, _, _ in TABLE]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def command_line(cfg: CompareConfig) -> str:
    """The ``metactrl compare`` command equivalent to ``cfg`` (the fields that differ from the defaults)."""
    parts = ["metactrl", "compare"]
    always = {"schedules", "seeds", "out"}
    for f in dataclasses.fields(CompareConfig):
        v = getattr(cfg, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(v, bool):
            if v != f.default:
                parts.append(flag if v else "--no-" + flag[2:])
        elif f.name in always or v != f.default:
            parts += [flag, shlex.quote(str(v))]
    return " ".join(parts)


def machine() -> str:
    """CPU model and core count (absolute times are only meaningful with the machine named)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical cores"


def markdown(cfg: CompareConfig, agg: dict, specs: list[str], skipped: list[str], errors: dict[str, str],
             notes: list[str] = ()) -> str:
    """The whole results.md: the command first, then how it was measured, then a section per task."""
    from . import __version__

    lines = [f"`{command_line(cfg)}`", "",
             f"metactrl {__version__}, {time.strftime('%Y-%m-%d %H:%M')}. Seeds 0..{cfg.seeds - 1}; each cell is "
             "mean ± sample std over seeds of the final value of a run. Runs use one torch thread each, "
             f"{cfg.workers} in parallel, on {machine()} (device {cfg.device}); wall s is each run's own "
             "training time, so compare it only within this file.", "",
             "val metric: accuracy on the validation split carved from the training data (token accuracy for "
             "language models); test metric: the held-out test split, reported only. M1 = Σ|Δw| over all steps "
             "(metabolic energy), M_min = Σ|w_T − w_0|; writes = weight changes (M0); bwd/fwd samples include the "
             "scoring passes of PDD-DBPD/SMRD; FLOPs = forward + backward, measured per sample. Schedules are "
             "defined in metactrl/baselines.py (defaults: PDD γ = 0.95, τ = 0.3, last epoch on all data; InfoBatch "
             "r = 0.5, last ⌈T/8⌉ epochs on all data; topk-anneal:Q uses Q^((t−1)/(T−1)) in epoch t of T).", ""]
    lines += [f"**Note:** {n}\n" for n in notes]
    if skipped:
        lines += ["Skipped (data missing): " + "; ".join(skipped), ""]
    if errors:
        lines += [f"{len(errors)} run(s) failed or were not run, and are missing from the tables:", ""]
        lines += [f"- `{Path(p).name}`: {msg}" for p, msg in errors.items()] + [""]
    for inst, by_spec in agg.items():
        lines.append(task_tables(inst, by_spec, specs))
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def pareto_points(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated (energy, metric) points: no other point has lower energy and a higher-or-equal metric."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def plot_pareto(path: Path, inst: str, by_spec: dict, specs: list[str], seeds: int) -> None:
    """Final validation metric against metabolic energy (log x), mean ± std error bars per schedule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = "osD^v<>pP*Xh"
    pts = []
    for i, s in enumerate(x for x in specs if x in by_spec):
        (mx, sx, _), (my, sy, _) = by_spec[s]["metabolic"], by_spec[s]["final_val_metric"]
        if not (math.isfinite(mx) and math.isfinite(my)) or mx <= 0:
            continue
        ax.errorbar(mx, my, xerr=sx, yerr=sy, fmt=markers[i % len(markers)], capsize=3, label=s)
        pts.append((mx, my))
    front = pareto_points(pts)
    if len(front) > 1:
        xs, ys = [p[0] for p in front], [p[1] for p in front]
        ax.plot(xs, ys, ls="--", color="0.6", lw=1, zorder=0, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("metabolic energy M1 = Σ|Δw| (log scale)")
    ax.set_ylabel("final validation metric")
    ax.set_title(f"{inst}: metric vs energy, mean ± std over {seeds} seed(s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_tensorboard(cfg: CompareConfig, rows: list[dict], results: list[tuple[Job, dict]], md: str) -> Path:
    """Per-run final values (step = seed) and mean per-epoch curves, under ``compare/<task>/<schedule>/``."""
    from . import tb

    subject = cfg.suite or "+".join(parse_list(cfg.task, "task"))
    out = tb.run_dir(cfg.runs_dir, subject, "compare", cfg.seeds)
    w = tb.writer(out)
    tb.write_config(w, cfg)
    for r in rows:
        base = f"compare/{slug(r['instance'])}/{slug(r['schedule'])}"
        for key, _, _ in TABLE:
            if _finite(r[key]):
                w.add_scalar(f"{base}/{key}", float(r[key]), int(r["seed"]))
    curves: dict[tuple[str, str, int], dict[str, list[float]]] = {}
    for job, res in results:
        cum = 0.0
        for rec in res["per_epoch"]:
            cum += rec["metabolic"]
            c = curves.setdefault((job.instance.label, job.schedule, rec["epoch"]), {"val": [], "m1": []})
            c["val"].append(rec["val_metric"])
            c["m1"].append(cum)
    for (inst, spec, epoch), c in sorted(curves.items()):
        base = f"compare/{slug(inst)}/{slug(spec)}/epoch"
        w.add_scalar(f"{base}/val_metric", statistics.fmean(c["val"]), epoch)
        w.add_scalar(f"{base}/metabolic_cum", statistics.fmean(c["m1"]), epoch)
    w.add_text("compare/results", md)
    w.close()
    return out


def stale_notes(results: list[tuple[Job, dict]]) -> list[str]:
    """A warning when cached runs were made by other run-deciding code than the current one."""
    current = code_fingerprint()
    stale = [j for j, res in results if res.get("compare", {}).get("code", current) != current]
    if not stale:
        return []
    return [f"{len(stale)} of {len(results)} cached runs were made by different engine/schedule code than the "
            f"current one ({current}); delete their files under cache/ to redo them, e.g. "
            f"{Path(stale[0].path).name}."]


def report(cfg: CompareConfig, jobs: list[Job], skipped: list[str], errors: dict[str, str]) -> tuple[list, str, dict]:
    """Rebuild every report from the cache: returns (rows, markdown, files written)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    results = [(j, res) for j in jobs if (res := load_cached(j.path)) is not None]
    rows = [row(j, res) for j, res in results]
    specs = parse_list(cfg.schedules, "schedules")
    agg = aggregate(rows)
    md = markdown(cfg, agg, specs, skipped, errors, stale_notes(results))
    files = {"csv": str(out / "results.csv"), "md": str(out / "results.md")}
    write_csv(out / "results.csv", rows)
    write_text(out / "results.md", md)
    for inst, by_spec in agg.items():
        png = out / f"pareto_{slug(inst)}.png"
        plot_pareto(png, inst, by_spec, specs, cfg.seeds)
        files[f"png:{inst}"] = str(png)
    if rows:
        files["tensorboard"] = str(write_tensorboard(cfg, rows, results, md))
    return rows, md, files


def compare(cfg: CompareConfig, *, log=print) -> CompareResult:
    """Run what the cache lacks, then write the reports. See the module docstring."""
    jobs, skipped = plan(cfg)
    if not jobs:
        raise MetactrlError("nothing to compare: every task was skipped for missing data ("
                            + "; ".join(skipped) + "). Pass --data-dir or choose embedded tasks.")
    todo = [j for j in jobs if load_cached(j.path) is None]
    todo_paths = {j.path for j in todo}
    cached = [j for j in jobs if j.path not in todo_paths]
    log(f"{len(jobs)} runs: {len(cached)} cached in {Path(cfg.out) / 'cache'}, {len(todo)} to run "
        f"with {cfg.workers} worker(s).")
    for s in skipped:
        log(f"skipped {s}")
    if cfg.report_only:  # tables from what the cache holds now; the missing runs are listed, not run
        errors = {j.path: "not run (report from a partial cache, --report-only)" for j in todo}
    else:
        errors = execute(todo, cfg.workers, log=log)
    rows, md, files = report(cfg, jobs, skipped, errors)
    for line in md.splitlines():
        if line.startswith("**Note:**"):
            log(line.replace("**Note:** ", "warning: "))
    ran = [j for j in todo if j.path not in errors]
    return CompareResult(jobs, ran, cached, errors, skipped, rows, md, files)


def cmd_compare(cfg: CompareConfig) -> int:
    """``metactrl compare``: print the config, run, print the markdown tables; 1 if any run failed."""
    print(C.format_config(cfg))
    res = compare(cfg, log=lambda msg: print(msg, flush=True))
    print()
    print(res.markdown)
    for name, path in res.files.items():
        print(f"{name}: {path}")
    if res.errors:
        print(f"{len(res.errors)} run(s) failed; rerun the same command to retry only those.", file=sys.stderr)
    return 1 if res.errors else 0
