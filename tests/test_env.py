from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import metactrl  # noqa: F401  (registers the env)
from metactrl.env import TrainingEnv, action_to_schedule, schedule_to_action
from metactrl.errors import ConfigError, InvalidValue, MetactrlError, TaskNotFound
from metactrl.features import N_FEATURES
from metactrl.suite import ActionConfig, load_suite
from metactrl.tasks import make_task

TINY = str(Path(__file__).parent / "data" / "tiny.toml")


def test_registered_and_passes_both_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("metactrl/Training-v0", suite=TINY)
    check_env(env.unwrapped, skip_render_check=True)
    sb3_check_env(TrainingEnv(TINY), warn=True)


def test_same_seed_same_actions_same_episode():
    def episode(seed):
        env = TrainingEnv(TINY)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in ([0.5, -0.3], [-0.8, 0.9], [1.0, -1.0]):
            obs, r, term, trunc, info = env.step(np.array(a, dtype=np.float32))
            out += [obs, np.array([r])]
        return np.concatenate(out), trunc

    a, trunc = episode(7)
    b, _ = episode(7)
    c, _ = episode(8)
    assert trunc
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_action_mapping_bounds_and_log_scale():
    cfg = ActionConfig(keep_min=0.1, update_min=0.01)
    assert action_to_schedule([-1, -1], cfg) == pytest.approx((0.1, 0.01))
    assert action_to_schedule([1, 1], cfg) == pytest.approx((1.0, 1.0))
    assert action_to_schedule([0, 0], cfg)[1] == pytest.approx(0.1)  # geometric midpoint of 1% and 100%
    k, q = 0.37, 0.042
    assert action_to_schedule(schedule_to_action(k, q, cfg), cfg) == pytest.approx((k, q), rel=1e-5)
    with pytest.raises(InvalidValue):
        action_to_schedule([np.nan, 0], cfg)


def test_reward_decomposes_and_info_has_raw_figures():
    env = TrainingEnv(TINY)
    env.reset(seed=0)
    total = 0.0
    for _ in range(3):
        _, r, term, trunc, info = env.step(np.array([1.0, 1.0], dtype=np.float32))
        assert r == pytest.approx(info["reward_gain"] - info["reward_energy"] - info["reward_penalty"])
        for k in ("val_metric", "metabolic", "backward_samples", "flops"):
            assert k in info
        total += r
    s = info["episode_summary"]
    lam = env.suite.reward.lam
    assert total == pytest.approx(s["metric_norm"] - lam * s["energy_ratio"] - s["penalty"], abs=1e-6)
    assert s["return"] == pytest.approx(total)
    assert s["backward_ratio"] == pytest.approx(1.0)  # full data every epoch = the reference's passes


def _episode(env, actions, seed=3):
    env.reset(seed=seed, options={"instance": 0})
    rewards = []
    for a in actions:
        _, r, _, trunc, info = env.step(np.asarray(a, dtype=np.float32))
        rewards.append(r)
    return rewards, info["episode_summary"]


def test_constraint_shaping_pays_the_same_return_earlier():
    """Potential-based shaping: per-step rewards differ, the return (and its terminal penalty) is identical."""
    shaped, plain = load_suite(TINY), load_suite(TINY)
    plain.reward.shaping = False
    for s in (shaped, plain):
        s.reward.kappa, s.reward.eps = 50.0, 0.0  # a sparse schedule then falls short: the penalty is active
    actions = [[-1, -1], [-1, -1], [1, 1]]
    r_s, sum_s = _episode(TrainingEnv(shaped), actions)
    r_p, sum_p = _episode(TrainingEnv(plain), actions)
    assert sum_p["penalty"] > 0, "the test needs a schedule that misses the constraint"
    assert sum(r_s) == pytest.approx(sum(r_p), abs=1e-6) and sum_s["return"] == pytest.approx(sum_p["return"])
    assert sum_s["penalty"] == pytest.approx(sum_p["penalty"])
    assert r_s[:2] != pytest.approx(r_p[:2])  # the shaped penalty arrives before the last step
    assert min(r_s[:2]) < min(r_p[:2])


def test_reference_is_the_mean_of_seeds(tmp_path, monkeypatch):
    from metactrl.reference import reference_run

    monkeypatch.setenv("METACTRL_CACHE", str(tmp_path))
    task = make_task("digits-mlp", width=16)
    one = [reference_run(task, 2, seed=s) for s in (0, 1)]
    both = reference_run(task, 2, seeds=2)
    assert both["seeds"] == 2 and both["final_val_metric_per_seed"] == [r["final_val_metric"] for r in one]
    assert both["final_val_metric"] == pytest.approx(np.mean([r["final_val_metric"] for r in one]))
    assert both["energy"]["metabolic"] == pytest.approx(np.mean([r["energy"]["metabolic"] for r in one]))
    assert both["curve"][0]["val_metric"] == pytest.approx(np.mean([r["curve"][0]["val_metric"] for r in one]))


def test_less_energy_costs_less():
    env = TrainingEnv(TINY)
    env.reset(seed=0)
    full = env.step(np.array([1, 1], dtype=np.float32))[4]["reward_energy"]
    env.reset(seed=0)
    sparse = env.step(np.array([-1, -1], dtype=np.float32))[4]["reward_energy"]
    assert sparse < 0.3 * full


def test_divergence_ends_episode_with_penalty():
    env = TrainingEnv(TINY)
    env.reset(seed=0)
    for g in env.engine.optimizer.param_groups:  # sabotage this run only (the reference stays healthy)
        g["lr"] = 1e8
    done = False
    while not done:
        _, r, term, trunc, info = env.step(np.array([1, 1], dtype=np.float32))
        done = term or trunc
    assert term and info["diverged"] and r < 0


def test_observation_shape_and_reference_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("METACTRL_CACHE", str(tmp_path))
    env = TrainingEnv(TINY)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (N_FEATURES,) and obs.dtype == np.float32
    files = list((tmp_path / "references").glob("*.json"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime
    TrainingEnv(TINY).reset(seed=1)  # a second env reuses the cached reference
    assert files[0].stat().st_mtime == mtime


def test_diverging_reference_is_a_clear_error(tmp_path):
    suite = tmp_path / "div.toml"
    suite.write_text('[[train]]\ntask = "digits-mlp"\nepochs = 3\noverrides = { lr = 1e8, optimizer = "sgd" }\n')
    with pytest.raises(MetactrlError, match="reference run .* diverged"):
        TrainingEnv(str(suite)).reset(seed=0)


def test_suite_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[[train]]\ntask = "digit-mlp"\n')
    with pytest.raises(TaskNotFound, match="digits-mlp"):
        load_suite(bad)
    bad.write_text('[[train]]\ntask = "digits-mlp"\n[reward]\nlamda = 1\n')
    with pytest.raises(ConfigError, match="lamda"):
        load_suite(bad)
    bad.write_text('[[train]]\ntask = "digits-mlp"\n[reward]\nlam = nan\n')
    with pytest.raises(InvalidValue, match="lam"):
        load_suite(bad)
    bad.write_text('[[train]]\ntask = "digits-mlp"\n[reward]\nmode = "tradeof"\n')
    with pytest.raises(ConfigError, match="tradeoff"):
        load_suite(bad)


def test_shipped_suites_load():
    repo = Path(__file__).resolve().parents[1]
    for p in (repo / "envs").glob("*.toml"):
        s = load_suite(p)
        assert s.train, p
    d = load_suite(repo / "envs" / "default.toml")
    train_tasks = {i.task for i in d.train}
    assert train_tasks and not train_tasks & {i.task for i in d.heldout}


def test_decisions_shorter_than_an_epoch(tmp_path):
    suite = tmp_path / "k.toml"
    suite.write_text(Path(TINY).read_text() + "\n[episode]\ndecisions_per_epoch = 3\n")
    env = TrainingEnv(str(suite))
    env.reset(seed=0)
    n = env.engine.n_train
    steps, done = 0, False
    while not done:
        _, _, term, trunc, info = env.step(np.array([1.0, 1.0], dtype=np.float32))
        steps += 1
        done = term or trunc
        assert info["backward_samples"] == -(-n // 3)
    assert steps == 9 and trunc
    assert info["episode_summary"]["backward_ratio"] == pytest.approx(1.0, abs=0.01)


def test_reference_features_read_the_budget():
    from metactrl.features import FEATURES, FeatureTracker, reference_norm_at

    def ref(vals):
        curve = [{"val_metric": v, "metabolic": float(i + 1), "train_loss": 1.0} for i, v in enumerate(vals)]
        return {"chance": 0.0, "final_val_metric": vals[-1], "curve": curve,
                "energy": {"metabolic": float(len(vals)), "backward": 1.0}}

    tight = ref([0.25, 0.5, 0.75, 1.0])
    assert reference_norm_at(tight, 0) == 0 and reference_norm_at(tight, 1.5) == pytest.approx(0.375)
    assert reference_norm_at(tight, 9) == 1.0
    i_rem = [n for n, _ in FEATURES].index("ref_remaining")
    tr = FeatureTracker(tight, epochs=4, per_epoch=2)
    tr.reset(0.0)
    assert tr.observe()[i_rem] == pytest.approx(1.0)
    tr.update({"val_metric": 0.2, "train_loss": 1.0, "learned_fraction": 0.1, "metabolic": 1.0,
               "backward_samples": 1.0}, np.zeros(2))
    obs = tr.observe()  # half an epoch: the reference is halfway to its first epoch's 0.25
    assert obs[i_rem] == pytest.approx(1 - 0.125)


def test_instance_labels_name_the_budget():
    s = load_suite(str(Path(__file__).parents[1] / "envs" / "default.toml"))
    labels = [i.label for i in s.train + s.heldout]
    assert len(set(labels)) == len(labels)
    assert "digits-cnn[epochs=4,lr=0.0005]" in labels
