"""The comparison harness: cached runs, resume after an interruption, and the report files."""

import csv
import json
from pathlib import Path

import pytest

from metactrl.compare import (
    CompareConfig,
    Instance,
    Job,
    code_fingerprint,
    command_line,
    compare,
    load_instances,
    pareto_points,
    plan,
    stale_notes,
)
from metactrl.errors import ConfigError, InvalidSchedule


def _cfg(tmp_path, **kw):
    base = dict(task="digits-mlp", schedules="full,pdd-srd", seeds=2, epochs=2, device="cpu",
                out=str(tmp_path / "out"), runs_dir=str(tmp_path / "runs"), workers=1)
    return CompareConfig(**{**base, **kw})


def _mtimes(cache: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in cache.glob("*.json")}


def test_compare_caches_resumes_and_reports(tmp_path):
    cfg = _cfg(tmp_path, workers=2)  # the process pool of a real comparison
    first = compare(cfg, log=lambda _: None)
    assert not first.errors and len(first.ran) == 4 and not first.cached
    cache = Path(cfg.out) / "cache"
    names = sorted(p.name for p in cache.glob("*.json"))
    assert len(names) == 4 and names[0].startswith("digits-mlp__full__0__")
    stamps = _mtimes(cache)

    again = compare(_cfg(tmp_path, workers=1), log=lambda _: None)  # workers do not change results: same cache
    assert not again.ran and len(again.cached) == 4
    assert _mtimes(cache) == stamps

    lost = cache / names[-1]
    lost.unlink()  # as if the comparison had been interrupted before this run finished
    last = _cfg(tmp_path)
    resumed = compare(last, log=lambda _: None)
    assert [Path(j.path).name for j in resumed.ran] == [lost.name]
    assert {k: v for k, v in _mtimes(cache).items() if k != lost.name} == {k: v for k, v in stamps.items()
                                                                         if k != lost.name}

    out = Path(cfg.out)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 and {r["schedule"] for r in rows} == {"full", "pdd-srd"}
    assert all(float(r["metabolic"]) > 0 and int(r["epochs"]) == 2 for r in rows)
    md = (out / "results.md").read_text()
    assert md.splitlines()[0] == f"`{command_line(last)}`"  # the command that wrote it
    assert "### digits-mlp" in md and "| pdd-srd |" in md and "Relative to `full`" in md
    assert (out / "pareto_digits-mlp.png").stat().st_size > 1000
    assert list(Path(cfg.runs_dir).glob("digits-mlp__compare__2__*/events.out.tfevents.*"))
    summary = json.loads(lost.read_text())
    assert summary["compare"]["schedule"] == "pdd-srd" and summary["schedule"] == "pdd-srd"
    assert summary["compare"]["code"] == code_fingerprint() and "**Note:**" not in md


def test_report_warns_about_runs_made_by_other_code():
    job = Job(Instance("digits-mlp"), "full", 0, 2, "cpu", "", {}, "k", "/x/digits-mlp__full__0__k.json")
    assert stale_notes([(job, {"compare": {"code": code_fingerprint()}})]) == []
    note = stale_notes([(job, {"compare": {"code": "0" * 12}}), (job, {"compare": {"code": code_fingerprint()}})])
    assert len(note) == 1 and note[0].startswith("1 of 2 cached runs") and "digits-mlp__full__0__k.json" in note[0]


def test_cache_key_follows_what_determines_a_run(tmp_path):
    def paths(**kw):
        return [j.path for j in plan(_cfg(tmp_path, **kw))[0]]

    base = paths()
    assert paths(workers=2, runs_dir="elsewhere") == base
    assert set(paths(epochs=3)).isdisjoint(base)
    assert len(set(paths(seeds=3)) & set(base)) == 4
    assert set(paths(schedules="full")) < set(base)


def test_command_line_has_what_differs_from_the_defaults(tmp_path):
    cfg = CompareConfig(task="digits-cnn,digits-mlp", schedules="full,topk:0.1", seeds=3, out="results/embedded")
    assert command_line(cfg) == ("metactrl compare --task digits-cnn,digits-mlp --schedules full,topk:0.1 "
                                 "--seeds 3 --out results/embedded")


def test_suite_uses_train_and_heldout_deduped(tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('[[train]]\ntask = "digits-mlp"\n\n[[train]]\ntask = "digits-cnn"\nepochs = 3\n\n'
                     '[[heldout]]\ntask = "digits-mlp"\n\n'
                     '[[heldout]]\ntask = "digits-vit"\noverrides = { dim = 16 }\n')
    instances, _ = load_instances(CompareConfig(suite=str(suite)))
    assert instances == [Instance("digits-mlp"), Instance("digits-cnn", 3), Instance("digits-vit", None,
                                                                                        (("dim", 16),))]
    assert [i.label for i in instances][2] == "digits-vit[dim=16]"


def test_bad_configs_fail_before_running(tmp_path):
    with pytest.raises(ConfigError, match="exactly one of"):
        plan(_cfg(tmp_path, suite="envs/default.toml"))
    with pytest.raises(InvalidSchedule, match="Did you mean"):
        plan(_cfg(tmp_path, schedules="full,infobach"))
    with pytest.raises(ConfigError, match="seeds"):
        plan(_cfg(tmp_path, seeds=0))
    assert not Path(tmp_path / "out").exists()


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 0.5), (2.0, 0.4), (3.0, 0.9), (0.5, 0.1), (3.0, 0.8), (4.0, 0.9)]
    assert pareto_points(pts) == [(0.5, 0.1), (1.0, 0.5), (3.0, 0.9)]


def test_report_only_writes_tables_from_a_partial_cache(tmp_path):
    from metactrl.compare import CompareConfig, compare

    cfg = CompareConfig(task="digits-mlp", schedules="full,topk:0.5", seeds=1, epochs=1, workers=1,
                        out=str(tmp_path / "out"), runs_dir=str(tmp_path / "runs"), device="cpu")
    compare(CompareConfig(**{**cfg.__dict__, "schedules": "full"}))
    res = compare(CompareConfig(**{**cfg.__dict__, "report_only": True}))
    assert not res.ran and len(res.errors) == 1
    md = (tmp_path / "out" / "results.md").read_text()
    assert "not run" in md and "--report-only" in md.splitlines()[0]
