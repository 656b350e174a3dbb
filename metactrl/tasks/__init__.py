from .registry import Splits, Task, list_tasks, make_task, register_task, task_defaults, task_meta

__all__ = ["Splits", "Task", "list_tasks", "make_task", "register_task", "task_defaults", "task_meta"]
