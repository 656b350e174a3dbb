"""The Gymnasium environment: training a network, one decision interval at a time."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from .engine import Engine, EngineOptions
from .errors import InvalidValue, MetactrlError
from .features import FEATURES, FEATURES_VERSION, FeatureTracker, normalised_metric, reference_norm_at
from .reference import reference_run
from .suite import ActionConfig, Instance, Suite, load_suite

ENERGY_RECORD_KEYS = {"metabolic": "metabolic", "backward": "backward_samples", "flops": "flops",
                      "weight_writes": "weight_writes"}


def action_to_schedule(action, cfg: ActionConfig) -> tuple[float, float]:
    """Map an action in [-1, 1]^2 to (keep, update).

    keep   = keep_min + (a0 + 1)/2 · (1 − keep_min)                 (linear)
    update = update_min ^ (1 − (a1 + 1)/2)                           (log scale: 1% and 100% equally reachable)
    """
    a = np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
    if a.shape != (2,) or not np.all(np.isfinite(a)):
        raise InvalidValue(f"action must be 2 finite numbers in [-1, 1], got {action!r}.")
    u0, u1 = (a + 1.0) / 2.0
    keep = cfg.keep_min + u0 * (1.0 - cfg.keep_min)
    update = math.exp(math.log(cfg.update_min) * (1.0 - u1))
    return float(min(1.0, keep)), float(min(1.0, update))


def schedule_to_action(keep: float, update: float, cfg: ActionConfig) -> np.ndarray:
    """Inverse of ``action_to_schedule``."""
    u0 = (keep - cfg.keep_min) / (1.0 - cfg.keep_min) if cfg.keep_min < 1 else 1.0
    u1 = 1.0 - math.log(update) / math.log(cfg.update_min) if cfg.update_min < 1 else 1.0
    return np.clip(np.array([2 * u0 - 1, 2 * u1 - 1], dtype=np.float32), -1, 1)


class TrainingEnv(gym.Env):
    """Training a neural network as a sequential decision problem.

    ## Description
    An episode is one training run of one task instance (drawn from the suite's ``train`` or ``heldout``
    list) from a fresh initialisation. At every step the agent sets, for the next epoch, the data-keep
    ratio (the fraction of the training set backpropagated) and the synapse-update fraction (the fraction
    of weights allowed to change at each optimizer step). The engine trains that epoch and measures the
    metabolic energy Σ|Δw| of the applied updates and the compute spent.

    ## Action Space
    ``Box(-1, 1, (2,), float32)``: ``keep = keep_min + (a0+1)/2·(1−keep_min)`` (linear) and
    ``update = update_min^(1−(a1+1)/2)`` (log scale). Bounds come from the suite's ``[action]`` table
    (defaults 0.05 and 0.01).

    ## Observation Space
    ``Box(12,)`` float32, features version 2 (``metactrl.features.FEATURES``):

    | idx | feature          | meaning                                                              |
    |-----|------------------|----------------------------------------------------------------------|
    | 0   | progress         | epochs done / budget                                                 |
    | 1   | loss_rel         | last training loss / first epoch's, in [0, 2]                        |
    | 2   | metric_norm      | (val − chance)/(reference final − chance), in [−1, 2]                 |
    | 3   | metric_delta     | change of metric_norm over the last step, in [−1, 1]                 |
    | 4   | metric_gap       | metric_norm − reference run's at the same epoch, in [−1, 1]           |
    | 5   | learned          | fraction of training samples right when last seen                    |
    | 6   | energy_spent     | metabolic energy so far / reference total, in [0, 3]                 |
    | 7   | backward_spent   | backward sample passes so far / reference total, in [0, 3]           |
    | 8   | ref_energy_at_t  | reference run's energy by this epoch / its total                     |
    | 9   | last_keep        | previous action, keep coordinate                                     |
    | 10  | last_update      | previous action, update coordinate                                   |
    | 11  | ref_remaining    | 1 − reference run's metric_norm now (what full training still gains) |

    ``ref_remaining`` describes the budget at this point: while full training still gains a lot from here
    (early, or all along a tight budget), every sparse epoch costs final metric; once it has (nearly)
    converged, the rest of the budget is where energy can be saved. It lets one policy act differently on
    a tight and a loose instance of a family it never saw. (A static "when did the reference converge"
    feature was tried and dropped: it let the policy classify a whole instance as tight from the training
    families and go dense on the held-out ViT, which tolerates sparse updates.)

    ## Rewards
    With m_t the normalised validation metric (1 = the reference run's final value, 0 = chance; m_0 := 0)
    and e_t = Σ_k w_k·(energy_k spent this step / reference total_k) / Σ_k w_k (kinds k: metabolic,
    backward, flops, weight_writes; weights from the suite):

    * ``tradeoff``: r_t = (m_t − m_{t−1}) − λ·e_t, so the return is m_T − λ·E/E_ref.
    * ``constraint`` (default): the same, and the return also pays −κ·max(0, 1 − ε/(ref − chance) − m_T):
      the final metric must stay within ε (absolute metric points) of full training. With ``shaping``
      (default) this penalty is paid as it accrues, by potential-based shaping: with
      Φ_t = −κ·max(0, ref_norm(t) − ε/(ref − chance) − m_t), where ref_norm(t) is the reference run's
      normalised metric at the same point (so ref_norm(T) = 1), step t adds Φ_t − Φ_{t−1}. The sum
      telescopes to the terminal penalty, so the return is the same number; the agent learns at the
      step it falls behind full training, not only at the end. Without ``shaping`` it is paid at the last step.
    The reference is the mean of ``reference_seeds`` full-training runs (default 3).
    A run whose loss becomes NaN/inf ends the episode (terminated) with reward −diverge_penalty and
    ``info["diverged"] = True``. The reward never reads the test split.

    ## Starting State
    A freshly initialised model (seeded), the instance drawn by ``self.np_random`` unless
    ``reset(options={"instance": i})`` picks one; features describe the untrained model.

    ## Episode End
    Truncated when the instance's epoch budget is reached; terminated on divergence.

    ## Decision interval
    One epoch per step by default. With ``[episode] decisions_per_epoch = k`` in the suite, each step trains
    1/k of an epoch (``Engine.run_epoch(portion=1/k)``: ⌈keep·N/k⌉ freshly selected samples) and the budget is
    epochs·k steps; use it where epochs are long.

    ## Arguments
    ``suite`` (path or Suite, default ``envs/default.toml``), ``split`` ("train" or "heldout"),
    ``device`` ("cpu"), ``data_dir``, ``threads`` (torch threads, None: leave), ``options``
    (EngineOptions: selection strategy, mask score/scope).

    ## Version History
    * v0: initial version (features version 1).
    """

    metadata = {"render_modes": []}

    def __init__(self, suite: str | Suite = "envs/default.toml", split: str = "train", *, device: str = "cpu",
                 data_dir: str | None = None, threads: int | None = None, options: EngineOptions | None = None):
        super().__init__()
        self.suite = suite if isinstance(suite, Suite) else load_suite(suite, data_dir=data_dir)
        if split not in ("train", "heldout"):
            raise InvalidValue(f"split must be 'train' or 'heldout', got {split!r}.")
        self.instances: list[Instance] = getattr(self.suite, split)
        if not self.instances:
            raise MetactrlError(f"suite '{self.suite.name}' has no '{split}' instances.")
        self.split, self.device, self.threads = split, device, threads
        self.engine_options = options or EngineOptions()
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        low = np.array([0, 0, -1, -1, -1, 0, 0, 0, 0, -1, -1, -1], dtype=np.float32)
        high = np.array([1, 2, 2, 1, 1, 1, 3, 3, 1, 1, 1, 1], dtype=np.float32)
        assert len(low) == len(FEATURES)
        self.observation_space = spaces.Box(low, high, dtype=np.float32)
        self._tasks: dict = {}
        self._refs: dict = {}
        self.engine: Engine | None = None
        self.features_version = FEATURES_VERSION

    # ------------------------------------------------------------------ helpers
    def instance_setup(self, i: int):
        inst = self.instances[i]
        if i not in self._tasks:
            task = inst.make(self.suite.data_dir)
            epochs = inst.epochs or task.epochs
            self._tasks[i] = (task, epochs)
            self._refs[i] = reference_run(task, epochs, options=self.engine_options, device=self.device,
                                          seeds=self.suite.reward.reference_seeds)
        return inst, *self._tasks[i], self._refs[i]

    def _energy_step(self, rec: dict) -> float:
        w = self.suite.reward.energy
        total = sum(w.values()) or 1.0
        ref = self.ref["energy"]
        return sum(wk * rec[ENERGY_RECORD_KEYS[k]] / max(ref[k], 1e-12) for k, wk in w.items()) / total

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.threads:
            torch.set_num_threads(self.threads)
        idx = (options or {}).get("instance")
        if idx is None:
            idx = int(self.np_random.integers(len(self.instances)))
        elif not 0 <= int(idx) < len(self.instances):
            raise InvalidValue(f"options['instance'] must be in [0, {len(self.instances)}), got {idx}.")
        self.index = int(idx)
        self.instance, self.task, self.epochs, self.ref = self.instance_setup(self.index)
        run_seed = int(self.np_random.integers(2**31 - 1))
        self.engine = Engine(self.task, seed=run_seed, device=self.device, options=self.engine_options)
        self.per_epoch = self.suite.episode.decisions_per_epoch
        self.tracker = FeatureTracker(self.ref, self.epochs, self.per_epoch)
        self.tracker.reset(self.engine.evaluate("val")["metric"])
        self.prev_m = 0.0
        self.potential = 0.0
        self.energy_ratio = 0.0
        self.ep_return = 0.0
        self.actions: list[tuple[float, float]] = []
        return self.tracker.observe(), {"instance": self.instance.label, "epochs": self.epochs}

    def step(self, action):
        if self.engine is None:
            raise MetactrlError("call reset() before step().")
        action = np.clip(np.asarray(action, dtype=np.float32).reshape(2), -1, 1)
        keep, update = action_to_schedule(action, self.suite.action)
        rec = self.engine.run_epoch(keep, update, portion=1.0 / self.per_epoch)
        self.actions.append((keep, update))
        self.tracker.update(rec, action)
        obs = self.tracker.observe()
        cfg = self.suite.reward
        if rec["diverged"]:
            reward = -cfg.diverge_penalty + self.potential  # the shaping paid so far is taken back
            self.ep_return += reward
            info = self._info(rec, 0.0, 0.0, -self.potential) | {"diverged": True}
            return obs, float(reward), True, False, info
        m = normalised_metric(rec["val_metric"], self.ref)
        e = self._energy_step(rec)
        self.energy_ratio += e
        gain, cost, penalty = m - self.prev_m, cfg.lam * e, 0.0
        self.prev_m = m
        truncated = self.engine.epoch >= self.epochs * self.per_epoch
        if cfg.mode == "constraint" and (truncated or cfg.shaping):
            # Potential Φ_t = −κ·max(0, ref_norm(t) − ε/span − m_t); the reward pays Φ_t − Φ_{t−1}. At the end
            # ref_norm(T) = 1, so the telescoped sum is exactly the terminal penalty (same return, denser signal).
            span = max(self.ref["final_val_metric"] - self.ref["chance"], 1e-6)
            target = 1.0 if truncated else reference_norm_at(self.ref, self.engine.epoch / self.per_epoch)
            potential = -cfg.kappa * max(0.0, target - cfg.eps / span - m)
            penalty = self.potential - potential
            self.potential = potential
        reward = gain - cost - penalty
        self.ep_return += reward
        info = self._info(rec, gain, cost, penalty)
        if truncated:
            info["episode_summary"] = self.episode_summary()
        return obs, float(reward), False, truncated, info

    def _info(self, rec: dict, gain: float, cost: float, penalty: float) -> dict:
        return {"instance": self.instance.label, "epoch": rec["epoch"], "keep": rec["keep"],
                "update": rec["update"], "val_metric": rec["val_metric"], "train_loss": rec["train_loss"],
                "metabolic": rec["metabolic"], "backward_samples": rec["backward_samples"],
                "forward_samples": rec["forward_samples"], "flops": rec["flops"], "weight_writes": rec["weight_writes"],
                "reward_gain": gain, "reward_energy": cost, "reward_penalty": penalty, "diverged": False}

    def episode_summary(self) -> dict:
        """Raw and normalised figures of the episode so far (the env's end-of-episode info)."""
        e = self.engine.meter.report()
        ref = self.ref["energy"]
        last = self.engine.history[-1] if self.engine.history else {"val_metric": float("nan")}
        return {"instance": self.instance.label, "final_val_metric": last["val_metric"],
                "ref_val_metric": self.ref["final_val_metric"],
                "metric_norm": normalised_metric(last["val_metric"], self.ref),
                "energy_ratio": self.energy_ratio,
                "metabolic_ratio": e["metabolic"] / max(ref["metabolic"], 1e-12),
                "backward_ratio": e["backward_samples"] / max(ref["backward"], 1.0),
                "return": self.ep_return, "penalty": -self.potential, "schedule": list(self.actions)}


def rollout(env: TrainingEnv, act, *, instance: int, seed: int) -> dict:
    """Run one episode on ``instance`` with ``act(obs) -> action``; return the episode summary."""
    obs, _ = env.reset(seed=seed, options={"instance": instance})
    done, info = False, {}
    while not done:
        obs, _, term, trunc, info = env.step(act(obs))
        done = term or trunc
    return info.get("episode_summary") or env.episode_summary() | {"diverged": True}


def constant_actor(keep: float, update: float, cfg: ActionConfig):
    a = schedule_to_action(keep, update, cfg)
    return lambda obs: a
