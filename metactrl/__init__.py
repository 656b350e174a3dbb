"""metactrl: energy-aware training schedules (data-keep ratio, synapse-update fraction), learned with RL."""

from .energy import CachingConfig, EnergyMeter
from .engine import Engine, EngineOptions
from .errors import (
    ConfigError,
    DatasetMissing,
    InvalidSchedule,
    InvalidValue,
    MetactrlError,
    PolicyMismatch,
    TaskNotFound,
)
from .plasticity import PlasticityGate
from .runner import run_schedule
from .schedules import Constant, Decision, Schedule, make_schedule
from .tasks import Splits, Task, list_tasks, make_task, register_task

__version__ = "0.1.0"

__all__ = [
    "CachingConfig", "ConfigError", "Constant", "DatasetMissing", "Decision", "Engine", "EngineOptions",
    "EnergyMeter", "InvalidSchedule", "InvalidValue", "MetactrlError", "PlasticityGate", "PolicyMismatch",
    "Schedule", "Splits", "Task", "TaskNotFound", "list_tasks", "make_schedule", "make_task", "register_task",
    "run_schedule",
]

# Gymnasium registration by string entry point: importing metactrl stays cheap and SB3-free.
import gymnasium as _gym  # noqa: E402

if "metactrl/Training-v0" not in _gym.registry:
    _gym.register(id="metactrl/Training-v0", entry_point="metactrl.env:TrainingEnv")
