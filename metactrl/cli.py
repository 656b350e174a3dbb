"""Command line: thin. Parse, print the config, call the library."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from . import config as C
from .errors import MetactrlError


@dataclass
class RunConfig:
    """``metactrl run``: one training run with a constant (or any) schedule."""

    task: str = C.field("digits-cnn", "task name (`metactrl tasks` lists them)")
    keep: float = C.field(1.0, "data-keep ratio per epoch, in (0, 1]")
    update: float = C.field(1.0, "synapse-update fraction per step, in (0, 1]")
    schedule: str = C.field("", "a schedule spec instead of --keep/--update, e.g. pdd-dbpd or policy:policies/default")
    select: str = C.field("random", "data selection when keep < 1", choices=("random", "hardest", "infobatch"))
    score: str = C.field("update", "synapse score", choices=("update", "grad", "grad_x_weight"))
    scope: str = C.field("global", "where the top fraction is taken", choices=("global", "tensor", "neuron"))
    alpha: float = C.field(1.0, "metabolic energy exponent: M1 = sum |dw|^alpha")
    epochs: int = C.field(0, "epochs (0: the task's default budget)")
    seed: int = C.field(0, "random seed")
    device: str = C.field("auto", "auto, cpu or cuda")
    data_dir: str = C.field("", "folder with the real datasets (default: $METACTRL_DATA or ./data)")
    set: list = C.field([], "task override key=value (repeatable), e.g. --set width=64")
    json: str = C.field("", "write the run summary to this JSON file")
    runs_dir: str = C.field("runs", "TensorBoard root folder")
    name: str = C.field("run", "run name (part of the run folder)")
    threads: int = C.field(0, "torch CPU threads (0: torch's default)")


def task_from_name(name: str, data_dir: str, overrides: dict):
    from .tasks import make_task, task_defaults

    if data_dir and "data_dir" in task_defaults(name):
        overrides = {**overrides, "data_dir": data_dir}
    return make_task(name, **overrides)


def cmd_tasks(args) -> int:
    from .tasks import list_tasks, make_task, task_meta

    print(f"{'task':<20} {'family':<8} {'kind':<15} {'params':>9} {'epochs':>6}  data")
    for name in list_tasks(args.pattern):
        t = make_task(name, **({"data_dir": args.data_dir} if args.data_dir and _takes_dir(name) else {}))
        avail = "available" if t.available() else "MISSING"
        n = sum(p.numel() for p in t.model_fn().parameters())
        print(f"{name:<20} {task_meta(name).get('family', ''):<8} {t.kind:<15} {n:>9,} {t.epochs:>6}  "
              f"{avail}: {t.source}")
    return 0


def _takes_dir(name: str) -> bool:
    from .tasks import task_defaults

    return "data_dir" in task_defaults(name)


def cmd_run(cfg: RunConfig) -> int:
    from tqdm import tqdm

    from . import tb
    from .engine import EngineOptions
    from .runner import run_schedule
    from .schedules import Constant, make_schedule

    print(C.format_config(cfg))
    task = task_from_name(cfg.task, cfg.data_dir, C.parse_overrides(cfg.set))
    schedule = make_schedule(cfg.schedule) if cfg.schedule else Constant(cfg.keep, cfg.update)
    options = EngineOptions(select=cfg.select, score=cfg.score, scope=cfg.scope, alpha=cfg.alpha)
    epochs = cfg.epochs or task.epochs
    out_dir = tb.run_dir(cfg.runs_dir, cfg.task, cfg.name, cfg.seed)
    w = tb.writer(out_dir)
    tb.write_config(w, cfg)
    bar = tqdm(total=epochs, desc=cfg.task, unit="epoch", file=sys.stderr)
    header = f"{'ep':>3} {'keep':>5} {'upd':>6} {'kept':>6} {'loss':>7} {'val':>6} {'M1':>9} {'bwd':>7} {'s':>5}"
    tqdm.write(header)

    def on_epoch(rec):
        tb.write_epoch(w, rec)
        tqdm.write(f"{rec['epoch']:>3} {rec['keep']:>5.2f} {rec['update']:>6.3f} {rec['kept']:>6} "
                   f"{rec['train_loss']:>7.4f} {rec['val_metric']:>6.3f} {rec['metabolic']:>9.3f} "
                   f"{rec['backward_samples']:>7} {rec['wall_s']:>5.2f}")
        bar.update(1)

    summary = run_schedule(task, schedule, seed=cfg.seed, device=cfg.device, epochs=epochs, options=options,
                           on_epoch=on_epoch, threads=cfg.threads or None)
    bar.close()
    tb.write_summary(w, summary)
    w.close()
    e = summary["energy"]
    test = summary.get("test_metric", float("nan"))
    print(f"\n{cfg.task}: final val {summary['final_val_metric']:.4f}  test {test:.4f}"
          f"  M1 {e['metabolic']:.3f}  M_min {e['metabolic_min']:.3f}  M1/M_min {e['metabolic_ratio']:.2f}"
          f"  writes {e['weight_writes']:,}  bwd {e['backward_samples']:,}  FLOPs {e['flops']:.3g}"
          f"  wall {e['wall_s']:.1f}s")
    print(f"TensorBoard: tensorboard --logdir {cfg.runs_dir}   (this run: {out_dir})")
    if cfg.json:
        summary["config"] = C.as_dict(cfg)
        write_json(cfg.json, summary)
        print(f"summary written to {cfg.json}")
    return 1 if summary["diverged"] else 0


def write_json(path: str, obj) -> None:
    """Write atomically: a crash mid-write never leaves a truncated file over a good one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    tmp.replace(p)


def _commands():
    from .apply import ApplyConfig, cmd_apply
    from .compare import CompareConfig, cmd_compare
    from .controller import TrainConfig, cmd_train

    return {"run": (RunConfig, cmd_run), "train": (TrainConfig, cmd_train), "apply": (ApplyConfig, cmd_apply),
            "compare": (CompareConfig, cmd_compare)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="metactrl", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tasks", help="list the tasks, their sizes and whether their data is available")
    t.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. '*-vit'")
    t.add_argument("--data-dir", default="", help="folder with the real datasets")
    for name, (cls, _) in _commands().items():
        sp = sub.add_parser(name, help=cls.__doc__.splitlines()[0])
        C.add_arguments(sp, cls)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "tasks":
            return cmd_tasks(args)
        cls, handler = _commands()[args.command]
        return handler(C.from_namespace(cls, args))
    except MetactrlError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
