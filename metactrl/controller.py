"""Training the meta-controller with Stable-Baselines3, policy bundles, and a learned policy as a Schedule.

This is the only module that imports SB3.
"""

from __future__ import annotations

import contextlib
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from . import config as C
from ._compat import tomllib
from .engine import EngineOptions
from .env import TrainingEnv, action_to_schedule, constant_actor, rollout, schedule_to_action
from .errors import InvalidValue, PolicyMismatch
from .features import FEATURES, FEATURES_VERSION, N_FEATURES, FeatureTracker
from .reference import reference_run
from .schedules import Decision, register_schedule
from .suite import ActionConfig, Suite, load_suite

ALGOS = ("ppo", "sac")
CONSTANT_GRID = tuple((k, q) for k in (0.6, 0.8, 1.0) for q in (0.1, 0.3, 1.0))


@dataclass
class TrainConfig:
    """``metactrl train``: learn a schedule controller on a suite with SB3."""

    suite: str = C.field("envs/default.toml", "suite TOML (train and held-out instances, reward settings)")
    algo: str = C.field("ppo", "SB3 algorithm", choices=ALGOS)
    timesteps: int = C.field(2000, "environment steps (one step = one epoch of an instance)")
    n_envs: int = C.field(2, "parallel environments (subprocesses when > 1)")
    seed: int = C.field(0, "random seed (instances, runs and the agent)")
    device: str = C.field("cpu", "device of the trained networks (cpu, cuda, auto); the agent itself runs on cpu")
    name: str = C.field("main", "policy name: the bundle goes to <policies-dir>/<name>")
    overwrite: bool = C.field(False, "replace an existing bundle of the same name")
    policies_dir: str = C.field("policies", "where policy bundles are written")
    runs_dir: str = C.field("runs", "TensorBoard root folder")
    resume: str = C.field("", "checkpoint .zip to continue from (its run folder's curves continue)")
    eval_freq: int = C.field(1500, "held-out evaluation every this many steps (0: only at the end)")
    checkpoint_freq: int = C.field(500, "checkpoint every this many steps")
    eval_seeds: int = C.field(3, "seeds per held-out instance in evaluations")
    baseline_grid: bool = C.field(True, "also evaluate a grid of constant (keep, update) pairs on held-out")
    data_dir: str = C.field("", "folder with the real datasets (suites that use them)")
    threads: int = C.field(1, "torch threads per environment process")
    init_action: str = C.field("1,0.7", "keep,update the untrained policy starts from (its mean action)")


# ---------------------------------------------------------------------------------------------- environments
class BudgetIsTerminal(gym.Wrapper):
    """For learning only: reaching the epoch budget is a true end (progress is observed), so no bootstrap."""

    def step(self, action):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, r, term or trunc, False, info


def _env_fn(suite_path: str, split: str, rank: int, seed: int, device: str, data_dir: str, threads: int):
    def make():
        if rank is not None and _in_subprocess():
            import signal

            signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it checkpoints, then closes us
        env = TrainingEnv(suite_path, split, device=device, data_dir=data_dir or None, threads=threads)
        env = BudgetIsTerminal(env)
        env.reset(seed=seed + 1000 * rank)
        return env

    return make


def _in_subprocess() -> bool:
    import multiprocessing

    return multiprocessing.parent_process() is not None


def make_vec_env(cfg: TrainConfig):
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor

    fns = [_env_fn(cfg.suite, "train", i, cfg.seed, cfg.device, cfg.data_dir, cfg.threads) for i in range(cfg.n_envs)]
    # forkserver/spawn: safe with CUDA in the children, unlike fork.
    venv = SubprocVecEnv(fns, start_method="spawn") if cfg.n_envs > 1 else DummyVecEnv(fns)
    venv.seed(cfg.seed)
    return VecMonitor(venv, info_keywords=("instance",))


def prepare_references(cfg: TrainConfig, suite: Suite) -> None:
    """Compute (or load) every instance's reference run once, before subprocesses race to compute them.

    With ``n_envs`` > 1 and at least 4 instances, they are shared out to that many processes.
    """
    jobs = [(split, i) for split in ("train", "heldout") for i in range(len(getattr(suite, split)))]
    workers = min(cfg.n_envs, len(jobs)) if len(jobs) >= 4 else 1  # spawning costs ~10 s: only worth it for many
    if workers > 1:
        _spawn_map(_prepare_part, [(suite, cfg.device, cfg.threads, jobs[w::workers]) for w in range(workers)])
    else:
        _prepare_part((suite, cfg.device, None, jobs))


def _spawn_map(fn, args: list) -> list:
    """``fn`` over ``args``, one spawned process per item (spawn: safe with CUDA, like the env processes)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(len(args), mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, args))


def _prepare_part(args) -> None:
    suite, device, threads, jobs = args
    if threads:
        import torch

        torch.set_num_threads(threads)
    envs = {}
    for split, i in jobs:
        if split not in envs:
            envs[split] = TrainingEnv(suite, split, device=device)
        envs[split].instance_setup(i)


# ---------------------------------------------------------------------------------------------- evaluation
def evaluate_actor(env: TrainingEnv, act, seeds: int, base_seed: int = 10_000) -> dict:
    """Mean episode figures of ``act`` on every instance of ``env`` over ``seeds`` seeds."""
    per = {}
    for i, inst in enumerate(env.instances):
        eps = [rollout(env, act, instance=i, seed=base_seed + s) for s in range(seeds)]
        per[inst.label] = {k: float(np.mean([e[k] for e in eps])) for k in
                           ("return", "final_val_metric", "ref_val_metric", "metabolic_ratio", "backward_ratio",
                            "energy_ratio")}
        per[inst.label]["schedule"] = eps[0]["schedule"]
        per[inst.label]["returns"] = [float(e["return"]) for e in eps]  # per seed, in seed order
    mean = {k: float(np.mean([p[k] for p in per.values()])) for k in ("return", "final_val_metric",
                                                                       "metabolic_ratio", "backward_ratio")}
    return {"mean": mean, "per_instance": per}


@contextlib.contextmanager
def preserved_rng():
    """Restore Python's, NumPy's and torch's global random states afterwards.

    Evaluating in the training process resets envs with fixed seeds, which reseeds those generators;
    without this, how often (and with how many seeds) one evaluates would change the agent's training.
    """
    import random

    import torch

    py, npy, th = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.random.set_rng_state(th)


def policy_actor(model, obs_rms, clip_obs: float = 10.0, epsilon: float = 1e-8):
    def act(obs):
        o = np.clip((obs - obs_rms.mean) / np.sqrt(obs_rms.var + epsilon), -clip_obs, clip_obs)
        return model.predict(o.astype(np.float32), deterministic=True)[0]

    return act


def constant_grid(env: TrainingEnv, seeds: int, grid=CONSTANT_GRID, workers: int = 1) -> dict:
    """Every constant pair of ``grid`` on ``env``'s instances; the best by mean return is marked.

    The grid does not depend on any policy, so it is cached (keyed by suite, split, grid, seeds, version).
    With ``workers`` > 1 the pairs are shared out to that many processes (one torch thread each).
    """
    import hashlib
    import json

    from . import __version__
    from .reference import cache_dir

    blob = json.dumps([env.suite.digest(), env.split, grid, seeds, __version__, "per-instance"])
    key = hashlib.sha256(blob.encode()).hexdigest()
    path = cache_dir() / "grids" / f"{env.suite.name}__{env.split}__{key[:16]}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError):
            pass  # a corrupt cache entry is recomputed
    if workers > 1 and len(grid) > 1:
        chunks = [list(grid[i::workers]) for i in range(workers)]
        parts = _spawn_map(_grid_part, [(env.suite, env.split, env.device, c, seeds) for c in chunks if c])
        results = {k: v for part in parts for k, v in part.items()}
        results = {f"{k:g},{q:g}": results[f"{k:g},{q:g}"] for k, q in grid}  # grid order
    else:
        results = _grid_part((env, None, None, grid, seeds))
    best = max(results, key=lambda key: results[key]["return"])
    out = {"best": best, "best_return": results[best]["return"], "grid": results}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(path)
    return out


def _grid_part(args) -> dict:
    env, split, device, pairs, seeds = args
    if split is not None:  # in a worker process: build the env from the suite
        import torch

        torch.set_num_threads(1)
        env = TrainingEnv(env, split, device=device)
    out = {}
    for k, q in pairs:  # the mean figures, and per instance (with per-seed returns) for paired comparisons
        r = evaluate_actor(env, constant_actor(k, q, env.suite.action), seeds)
        out[f"{k:g},{q:g}"] = r["mean"] | {"per_instance": r["per_instance"]}
    return out


# ---------------------------------------------------------------------------------------------- callbacks
def _callbacks(cfg: TrainConfig, suite: Suite, run_dir: Path):
    from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback

    from . import tb

    class EpisodeLogger(BaseCallback):
        """Per finished episode: final metric, energy and sample ratios, return, and the chosen schedule."""

        def _on_training_start(self) -> None:
            self.w = tb.writer(run_dir)
            self.episodes = 0

        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                s = info.get("episode_summary")
                if not s:
                    continue
                self.episodes += 1
                inst = s["instance"]
                for k in ("final_val_metric", "metric_norm", "energy_ratio", "metabolic_ratio", "backward_ratio",
                          "return"):
                    self.w.add_scalar(f"meta/{inst}/{k}", s[k], self.num_timesteps)
                    self.w.add_scalar(f"meta/all/{k}", s[k], self.num_timesteps)
                for t, (k, q) in enumerate(s["schedule"]):
                    self.w.add_scalar(f"schedule/{inst}/last_episode_keep", k, t + 1)
                    self.w.add_scalar(f"schedule/{inst}/last_episode_update", q, t + 1)
                if self.episodes % 20 == 1:
                    self.w.add_figure(f"schedule/{inst}", schedule_figure(s["schedule"], inst), self.num_timesteps)
            return True

        def _on_training_end(self) -> None:
            self.w.flush()

    class HeldoutEval(BaseCallback):
        """Deterministic policy on every held-out instance, with the training normalisation statistics."""

        def __init__(self):
            super().__init__()
            self.last = None

        def _on_training_start(self) -> None:
            self.env = TrainingEnv(suite, "heldout", device=cfg.device, data_dir=cfg.data_dir or None)
            self.w = tb.writer(run_dir)
            self.next_at = self.num_timesteps + cfg.eval_freq if cfg.eval_freq else None

        def run(self) -> dict:
            act = policy_actor(self.model, self.training_env.obs_rms)
            with preserved_rng():  # env.reset(seed) reseeds the global RNGs the agent samples from
                res = evaluate_actor(self.env, act, cfg.eval_seeds)
            for k, v in res["mean"].items():
                self.w.add_scalar(f"eval/heldout_{k}", v, self.num_timesteps)
            for inst, r in res["per_instance"].items():
                self.w.add_scalar(f"eval/{inst}/return", r["return"], self.num_timesteps)
                self.w.add_scalar(f"eval/{inst}/final_val_metric", r["final_val_metric"], self.num_timesteps)
                self.w.add_figure(f"eval/{inst}/schedule", schedule_figure(r["schedule"], inst), self.num_timesteps)
            self.w.flush()
            self.last = res
            return res

        def _on_step(self) -> bool:
            if self.next_at is not None and self.num_timesteps >= self.next_at and self.env.instances:
                self.run()
                self.next_at += cfg.eval_freq
            return True

    ckpt = CheckpointCallback(max(1, cfg.checkpoint_freq // cfg.n_envs), str(run_dir / "checkpoints"),
                              name_prefix="ctrl", save_vecnormalize=True)
    return EpisodeLogger(), HeldoutEval(), ckpt


def schedule_figure(schedule, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    t = np.arange(1, len(schedule) + 1)
    ax.plot(t, [k for k, _ in schedule], "o-", label="keep")
    ax.plot(t, [q for _, q in schedule], "s-", label="update")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_title(title, fontsize=8)
    ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------- training
def _new_model(cfg: TrainConfig, venv, run_dir: Path):
    from stable_baselines3 import PPO, SAC

    if cfg.algo == "ppo":
        # Short episodes (~10 epochs): rollouts of up to 128 steps per env hold many whole episodes.
        n_steps = max(8, min(64, cfg.timesteps // (2 * cfg.n_envs)))  # at least two updates
        return PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=min(64, n_steps * cfg.n_envs), n_epochs=10,
                   gamma=0.99, gae_lambda=0.95,
                   learning_rate=3e-4, ent_coef=0.0, clip_range=0.2, seed=cfg.seed, device="cpu", verbose=0,
                   policy_kwargs={"net_arch": [64, 64], "log_std_init": -1.0})
    return SAC("MlpPolicy", venv, learning_starts=200, batch_size=128, gamma=0.99, seed=cfg.seed, device="cpu",
               verbose=0, policy_kwargs={"net_arch": [64, 64]})


def set_initial_action(model, cfg: TrainConfig, action_cfg: ActionConfig) -> None:
    """Start the policy at a sensible schedule rather than the middle of the box.

    The middle (keep 0.5, update 0.1) loses accuracy on harder tasks, and a fresh policy's reward signal
    is then dominated by the constraint penalty. The mean action starts at ``init_action``, from which
    the agent learns where to save more.
    """
    import torch

    try:
        keep, update = (float(v) for v in cfg.init_action.split(","))
    except ValueError:
        msg = f"init_action must look like KEEP,UPDATE (e.g. 1,0.7), got {cfg.init_action!r}."
        raise InvalidValue(msg) from None
    a = torch.as_tensor(schedule_to_action(keep, update, action_cfg))
    with torch.no_grad():
        if cfg.algo == "ppo":
            model.policy.action_net.bias.copy_(a)
        else:  # SAC squashes with tanh
            model.policy.actor.mu.bias.copy_(torch.atanh(a.clamp(-0.999, 0.999)))


def train(cfg: TrainConfig) -> Path:
    """Train a controller; write the bundle to ``policies_dir/name``; return the bundle path."""
    from stable_baselines3 import PPO, SAC
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    from . import tb

    if cfg.timesteps < 1 or cfg.n_envs < 1:
        raise InvalidValue(f"timesteps and n_envs must be >= 1, got {cfg.timesteps} and {cfg.n_envs}.")
    suite = load_suite(cfg.suite, data_dir=cfg.data_dir or None)
    target = Path(cfg.policies_dir) / cfg.name
    if (target / CARD_FILE).exists() and not cfg.overwrite:
        raise InvalidValue(f"a policy bundle already exists at {target}; pass --overwrite to replace it or choose "
                           f"another --name.")
    print(C.format_config(cfg))
    import torch

    # The agent is tiny; more threads here only spin against the env processes for the same cores
    # (measured: the trainer process burnt ~45% of a core with torch's default threads on 2 cores).
    torch.set_num_threads(cfg.threads)
    prepare_references(cfg, suite)
    venv = make_vec_env(cfg)
    algo = {"ppo": PPO, "sac": SAC}[cfg.algo]
    if cfg.resume:
        ckpt = Path(cfg.resume)
        run_dir = ckpt.parent.parent
        venv = VecNormalize.load(str(_vecnorm_for(ckpt)), venv)
        model = algo.load(str(ckpt), env=venv, device="cpu")
        print(f"resuming from {ckpt} at {model.num_timesteps} steps; curves continue in {run_dir}")
    else:
        run_dir = tb.run_dir(cfg.runs_dir, suite.name, cfg.name, cfg.seed)
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=0.99)
        model = _new_model(cfg, venv, run_dir)
        set_initial_action(model, cfg, suite.action)
    model.set_logger(configure(str(run_dir), ["tensorboard"]))
    w = tb.writer(run_dir)
    tb.write_config(w, cfg)
    w.close()
    ep_log, heldout, ckpt_cb = _callbacks(cfg, suite, run_dir)
    remaining = max(0, cfg.timesteps - model.num_timesteps) if cfg.resume else cfg.timesteps
    t0 = time.time()
    try:
        model.learn(remaining, callback=[ep_log, heldout, ckpt_cb], reset_num_timesteps=not cfg.resume,
                    progress_bar=_has_rich())
    except KeyboardInterrupt:
        path = run_dir / "checkpoints" / f"ctrl_interrupted_{model.num_timesteps}_steps.zip"
        model.save(str(path))
        venv.save(str(_vecnorm_for(path)))
        print(f"\ninterrupted: checkpoint saved to {path}\nresume with: metactrl train --resume {path} "
              f"--timesteps {cfg.timesteps} --suite {cfg.suite} --name {cfg.name}", flush=True)
        try:
            venv.close()
        except (EOFError, BrokenPipeError, OSError):
            pass
        raise
    model.logger.dump(model.num_timesteps)  # the last update's train/ scalars
    train_s = time.time() - t0
    print(f"trained {model.num_timesteps} steps in {train_s:.0f}s; evaluating on held-out instances...")
    results = final_evaluation(cfg, suite, model, venv, heldout)
    bundle = save_bundle(Path(cfg.policies_dir) / cfg.name, model, venv, cfg, suite, results, train_s)
    venv.close()
    print_evaluation(results)
    print(f"policy bundle: {bundle}\nTensorBoard: tensorboard --logdir {cfg.runs_dir}   (this run: {run_dir})")
    return bundle


def _vecnorm_for(ckpt: Path) -> Path:
    # CheckpointCallback names them ctrl_vecnormalize_<n>_steps.pkl beside ctrl_<n>_steps.zip
    name = ckpt.name.replace("ctrl_", "ctrl_vecnormalize_", 1).replace(".zip", ".pkl")
    return ckpt.with_name(name)


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return sys.stderr.isatty()


def final_evaluation(cfg: TrainConfig, suite: Suite, model, venv, heldout) -> dict:
    out = {"timesteps": int(model.num_timesteps)}
    if not suite.heldout:
        return out
    heldout.num_timesteps = model.num_timesteps
    out["heldout"] = heldout.run()
    if cfg.baseline_grid:
        out["constant_grid"] = constant_grid(heldout.env, cfg.eval_seeds, workers=max(1, min(cfg.n_envs, 4)))
    return out


def print_evaluation(results: dict) -> None:
    if "heldout" not in results:
        return
    print(f"\n{'held-out instance':<44} {'return':>7} {'metric':>7} {'ref':>7} {'M1 ratio':>8} {'bwd ratio':>9}")
    for inst, r in results["heldout"]["per_instance"].items():
        print(f"{inst:<44} {r['return']:>7.3f} {r['final_val_metric']:>7.4f} {r['ref_val_metric']:>7.4f} "
              f"{r['metabolic_ratio']:>8.3f} {r['backward_ratio']:>9.3f}")
    m = results["heldout"]["mean"]
    print(f"{'policy, mean':<44} {m['return']:>7.3f}")
    if "constant_grid" in results:
        g = results["constant_grid"]
        print(f"{'best constant (keep,update) = ' + g['best']:<44} {g['best_return']:>7.3f}")
        verdict = "beats" if m["return"] > g["best_return"] else "does NOT beat"
        print(f"the policy {verdict} the best constant pair on held-out return")


# ---------------------------------------------------------------------------------------------- bundles
MODEL_FILE, VECNORM_FILE, CARD_FILE = "model.zip", "vecnormalize.pkl", "card.toml"


def save_bundle(path: Path, model, venv, cfg: TrainConfig, suite: Suite, results: dict, train_s: float) -> Path:
    import stable_baselines3
    import torch

    from . import __version__
    from .toml_write import dumps

    path.mkdir(parents=True, exist_ok=True)
    model.save(str(path / MODEL_FILE))
    venv.save(str(path / VECNORM_FILE))
    card = {
        "metactrl_version": __version__, "features_version": FEATURES_VERSION, "n_features": N_FEATURES,
        "features": [f for f, _ in FEATURES], "algo": cfg.algo, "timesteps": int(model.num_timesteps),
        "seed": cfg.seed, "n_envs": cfg.n_envs, "train_seconds": round(train_s, 1),
        "command": "metactrl " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "metactrl train",
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "stable_baselines3": stable_baselines3.__version__, "gymnasium": gym.__version__},
        "action": {"keep_min": suite.action.keep_min, "update_min": suite.action.update_min,
                   "keep": "keep_min + (a0+1)/2*(1-keep_min)", "update": "update_min**(1-(a1+1)/2)"},
        "suite": {"name": suite.name, "path": suite.path, "digest": suite.digest(),
                  "train": [i.label for i in suite.train], "heldout": [i.label for i in suite.heldout]},
        "reward": asdict(suite.reward), "config": C.as_dict(cfg),
        "evaluation": _card_results(results),
    }
    (path / CARD_FILE).write_text(dumps(card))
    return path


def _card_results(results: dict) -> dict:
    out = {"timesteps": results.get("timesteps", 0)}
    if "heldout" in results:
        out["heldout_mean"] = results["heldout"]["mean"]
        out["heldout"] = {k: {kk: vv for kk, vv in v.items() if kk != "schedule"}
                          for k, v in results["heldout"]["per_instance"].items()}
    if "constant_grid" in results:
        g = results["constant_grid"]
        out["best_constant"] = {"pair": g["best"], "return": g["best_return"]}
        out["constant_grid_return"] = {k: v["return"] for k, v in g["grid"].items()}
    return out


@dataclass
class Bundle:
    path: Path
    card: dict
    model: object
    obs_rms: object
    action: ActionConfig


def load_bundle(path: str | Path) -> Bundle:
    """Load and validate a policy bundle; refuse a missing, corrupt or mismatched one with a clear message."""
    from stable_baselines3 import PPO, SAC

    p = Path(path)
    if p.is_file() and p.name == CARD_FILE:
        p = p.parent
    missing = [f for f in (MODEL_FILE, VECNORM_FILE, CARD_FILE) if not (p / f).is_file()]
    if missing:
        raise PolicyMismatch(f"{p} is not a policy bundle: missing {missing}. A bundle is a folder with "
                             f"{MODEL_FILE}, {VECNORM_FILE} and {CARD_FILE}, as written by `metactrl train`.")
    try:
        card = tomllib.loads((p / CARD_FILE).read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PolicyMismatch(f"{p / CARD_FILE} is corrupt ({e}). Retrain or restore the bundle.") from None
    fv = card.get("features_version")
    if fv != FEATURES_VERSION or card.get("n_features") != N_FEATURES:
        raise PolicyMismatch(f"policy {p} was trained on features version {fv} ({card.get('n_features')} features);"
                             f" this metactrl computes version {FEATURES_VERSION} ({N_FEATURES} features). Retrain it "
                             f"with `metactrl train` or install the metactrl version in its card "
                             f"({card.get('metactrl_version')}).")
    algo = {"ppo": PPO, "sac": SAC}.get(card.get("algo"))
    if algo is None:
        raise PolicyMismatch(f"{p / CARD_FILE}: unknown algo {card.get('algo')!r}; expected one of {ALGOS}.")
    try:
        model = algo.load(str(p / MODEL_FILE), device="cpu")
        import pickle

        with open(p / VECNORM_FILE, "rb") as f:
            vecnorm = pickle.load(f)
    except Exception as e:  # SB3 raises many kinds on a damaged zip
        raise PolicyMismatch(f"could not load the policy in {p} ({type(e).__name__}: {e}). The bundle is corrupt;"
                             f" retrain it or restore it from version control.") from None
    if model.observation_space.shape != (N_FEATURES,) or model.action_space.shape != (2,):
        raise PolicyMismatch(f"policy {p} expects observations {model.observation_space.shape} and actions "
                             f"{model.action_space.shape}; metactrl gives ({N_FEATURES},) and (2,).")
    a = card.get("action", {})
    return Bundle(p, card, model, vecnorm.obs_rms, ActionConfig(a.get("keep_min", 0.05), a.get("update_min", 0.01)))


class PolicySchedule:
    """A learned policy as a Schedule: features from the engine's statistics, deterministic actions."""

    def __init__(self, bundle: Bundle | str | Path, *, options: EngineOptions | None = None):
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle)
        self.name = f"policy:{self.bundle.path}"
        self.act = policy_actor(self.bundle.model, self.bundle.obs_rms)
        self.options = options
        # Features are normalised the way the policy saw them in training: a reference of as many seeds.
        self.reference_seeds = int(self.bundle.card.get("reward", {}).get("reference_seeds", 1))
        self.decisions: list[tuple[float, float]] = []

    def reset(self, engine, epochs: int) -> None:
        ref = reference_run(engine.task, epochs, options=self.options or engine.opt, device=str(engine.device),
                            seeds=self.reference_seeds)
        self.start(ref, epochs, engine.evaluate("val")["metric"])

    def start(self, ref: dict, epochs: int, initial_metric: float) -> None:
        """Begin a run whose full-training reference is ``ref`` (the format of ``reference_run``)."""
        self.tracker = FeatureTracker(ref, epochs)
        self.tracker.reset(initial_metric)
        self.seen = 0
        self.last_action = np.ones(2, dtype=np.float32)
        self.decisions = []

    def decide(self, engine, epoch: int) -> Decision:
        while self.seen < len(engine.history):  # fold in every epoch trained since the last decision
            self.tracker.update(engine.history[self.seen], self.last_action)
            self.seen += 1
        self.last_action = np.asarray(self.act(self.tracker.observe()), dtype=np.float32).reshape(2)
        keep, update = action_to_schedule(self.last_action, self.bundle.action)
        self.decisions.append((keep, update))
        return Decision(keep, update)


@register_schedule("policy")
def _policy(arg: str):
    if not arg:
        raise PolicyMismatch("policy schedules need a bundle path: policy:policies/default")
    return PolicySchedule(arg)


def cmd_train(cfg: TrainConfig) -> int:
    train(cfg)
    return 0
