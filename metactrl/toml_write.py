"""A minimal TOML writer for policy cards (tomllib only reads): tables, scalars, lists, inline tables."""

from __future__ import annotations

import json
import math


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(x)}" for k, x in v.items()) + " }"
    if v is None:
        return '""'
    return json.dumps(str(v))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dumps(data: dict) -> str:
    """Serialise nested dicts: top-level scalars first, then one [table] per dict value (recursively)."""
    lines: list[str] = []
    _emit(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit(d: dict, path: list[str], lines: list[str]) -> None:
    tables = {k: v for k, v in d.items() if isinstance(v, dict) and any(isinstance(x, dict) for x in v.values())
              or (isinstance(v, dict) and len(v) > 4)}
    if path:
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for k, v in d.items():
        if k not in tables:
            lines.append(f"{_key(k)} = {_scalar(v)}")
    for k, v in tables.items():
        _emit(v, path + [k], lines)
