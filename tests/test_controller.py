import subprocess
import sys
from pathlib import Path

import pytest

from metactrl.controller import TrainConfig, load_bundle, train
from metactrl.errors import PolicyMismatch
from metactrl.features import FEATURES_VERSION, N_FEATURES
from metactrl.runner import run_schedule
from metactrl.schedules import make_schedule
from metactrl.tasks import make_task

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


def _tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for ev in run_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        tags |= set(acc.Tags()["scalars"]) | set(acc.Tags()["images"])
    return tags


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("ctrl")
    cfg = TrainConfig(suite=TINY, timesteps=24, n_envs=1, eval_freq=12, checkpoint_freq=12, eval_seeds=1,
                      baseline_grid=True, name="t", policies_dir=str(d / "policies"), runs_dir=str(d / "runs"))
    return train(cfg), d


def test_bundle_card_and_plain_sb3_load(bundle):
    path, _ = bundle
    b = load_bundle(path)
    assert b.card["features_version"] == FEATURES_VERSION and b.card["timesteps"] >= 24
    assert b.card["suite"]["name"] == "tiny" and "heldout_mean" in b.card["evaluation"]
    assert "best_constant" in b.card["evaluation"]
    from stable_baselines3 import PPO

    assert PPO.load(str(path / "model.zip")).observation_space.shape == (N_FEATURES,)


def test_tensorboard_tags(bundle):
    _, d = bundle
    run_dir = next((d / "runs").iterdir())
    tags = _tags(run_dir)
    for t in ("meta/all/final_val_metric", "meta/all/energy_ratio", "meta/all/backward_ratio", "meta/all/return",
              "eval/heldout_return", "train/value_loss", "rollout/ep_rew_mean"):
        assert t in tags, (t, sorted(tags))
    assert any(t.startswith("schedule/") and t.endswith("last_episode_keep") for t in tags)
    assert any(t.startswith("eval/") and t.endswith("/schedule") for t in tags)  # the schedule figure


def test_policy_schedule_drives_a_run(bundle):
    path, _ = bundle
    out = run_schedule(make_task("digits-mlp", width=16), make_schedule(f"policy:{path}"), seed=0, device="cpu",
                       epochs=2)
    assert out["epochs"] == 2 and out["schedule"].startswith("policy:")


def test_resume_continues_from_checkpoint(bundle, tmp_path):
    _, d = bundle
    ckpts = sorted((d / "runs").glob("*/checkpoints/ctrl_*_steps.zip"))
    assert ckpts
    cfg = TrainConfig(suite=TINY, timesteps=40, n_envs=1, eval_freq=0, eval_seeds=1, baseline_grid=False,
                      resume=str(ckpts[-1]), name="r", policies_dir=str(tmp_path))
    b = load_bundle(train(cfg))
    assert b.card["timesteps"] >= 40


def test_hooks_with_policy_need_a_reference(bundle):
    import torch
    from torch import nn

    from metactrl.api import EnergyHooks

    path, _ = bundle
    model = nn.Linear(4, 2)
    with pytest.raises(PolicyMismatch, match="reference"):
        EnergyHooks(model, torch.optim.SGD(model.parameters(), lr=0.1), 10, schedule=str(path))


def test_corrupt_and_mismatched_bundles(bundle, tmp_path):
    import shutil

    path, _ = bundle
    with pytest.raises(PolicyMismatch, match="missing"):
        load_bundle(tmp_path)
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    card = (bad / "card.toml").read_text()
    (bad / "card.toml").write_text(card.replace(f"features_version = {FEATURES_VERSION}", "features_version = 0"))
    with pytest.raises(PolicyMismatch, match="features version 0"):
        load_bundle(bad)
    (bad / "card.toml").write_text(card)
    (bad / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(PolicyMismatch, match="corrupt"):
        load_bundle(bad)


def test_train_cli_with_two_subprocess_envs(tmp_path):
    r = subprocess.run([sys.executable, "-m", "metactrl", "train", "--suite", TINY, "--timesteps", "16",
                        "--n-envs", "2", "--eval-freq", "0", "--no-baseline-grid", "--eval-seeds", "1",
                        "--policies-dir", str(tmp_path / "p"), "--runs-dir", str(tmp_path / "runs")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "p" / "main" / "card.toml").is_file()
    assert "held-out instance" in r.stdout
    again = subprocess.run([sys.executable, "-m", "metactrl", "train", "--suite", TINY, "--timesteps", "16",
                            "--policies-dir", str(tmp_path / "p")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_apply_compares_policy_and_full_on_same_seeds(bundle, tmp_path):
    import json

    path, _ = bundle
    out = tmp_path / "apply.json"
    r = subprocess.run([sys.executable, "-m", "metactrl", "apply", "--policy", str(path), "--task", "digits-mlp",
                        "--seeds", "2", "--epochs", "2", "--set", "width=16", "--json", str(out),
                        "--runs-dir", str(tmp_path / "runs"), "--device", "cpu"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "policy/full" in r.stdout
    res = json.loads(out.read_text())
    for kind in ("policy", "full"):
        s = res[kind]
        assert s["seeds"] == [0, 1] and len(s["per_seed"]) == 2
        for k in ("metabolic", "metabolic_min", "weight_writes", "forward_samples", "backward_samples", "flops",
                  "wall_s"):
            assert k in s["energy"]
        assert s["final_val_metric"] == pytest.approx(sum(p["final_val_metric"] for p in s["per_seed"]) / 2)
    assert res["full"]["energy"]["backward_samples"] == res["full"]["per_seed"][0]["backward_samples"]
    assert len(list((tmp_path / "runs").glob("digits-mlp__apply-*"))) == 4


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path):
    import signal
    import time

    runs = tmp_path / "runs"
    p = subprocess.Popen([sys.executable, "-m", "metactrl", "train", "--suite", TINY, "--timesteps", "100000",
                          "--n-envs", "2", "--eval-freq", "0", "--no-baseline-grid", "--runs-dir", str(runs),
                          "--policies-dir", str(tmp_path / "p")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(runs.glob("*/events.out.tfevents.*")):
        time.sleep(1)
    time.sleep(8)  # some training steps
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    ckpt = list(runs.glob("*/checkpoints/ctrl_interrupted_*_steps.zip"))
    assert ckpt and "resume with" in out
    assert list(runs.glob("*/checkpoints/ctrl_vecnormalize_interrupted_*_steps.pkl"))
    steps = int(ckpt[0].stem.split("_")[2])
    cfg = TrainConfig(suite=TINY, timesteps=steps + 16, n_envs=1, eval_freq=0, baseline_grid=False, eval_seeds=1,
                      resume=str(ckpt[0]), name="resumed", policies_dir=str(tmp_path / "p"))
    assert load_bundle(train(cfg)).card["timesteps"] >= steps + 16


def test_constant_grid_in_worker_processes_matches_one_process(tmp_path, monkeypatch):
    from metactrl.controller import constant_grid
    from metactrl.env import TrainingEnv

    pairs = ((1.0, 1.0), (0.5, 0.1), (1.0, 0.3))
    env = TrainingEnv(TINY, "heldout")
    monkeypatch.setenv("METACTRL_CACHE", str(tmp_path / "a"))
    one = constant_grid(env, 1, grid=pairs)
    monkeypatch.setenv("METACTRL_CACHE", str(tmp_path / "b"))
    two = constant_grid(env, 1, grid=pairs, workers=2)
    assert list(two["grid"]) == ["1,1", "0.5,0.1", "1,0.3"] and two["best"] == one["best"]
    for k in one["grid"]:
        assert two["grid"][k]["return"] == pytest.approx(one["grid"][k]["return"], abs=1e-9)
    assert one["best_return"] == max(v["return"] for v in one["grid"].values())


def test_evaluation_leaves_the_agents_random_streams_alone():
    import random

    import numpy as np
    import torch

    from metactrl.controller import evaluate_actor, preserved_rng
    from metactrl.env import TrainingEnv, constant_actor

    env = TrainingEnv(TINY, "heldout")
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    with preserved_rng():
        evaluate_actor(env, constant_actor(1.0, 1.0, env.suite.action), 1)  # reseeds all three inside
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
