"""One config dataclass per command (CleanRL style): fields become CLI flags, their ``help`` the flag's help.

The config is printed at the start of a run and written to TensorBoard; unknown keys are an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing

from .errors import ConfigError, suggest


def field(default, help: str, **kw):  # noqa: A002 - mirrors argparse's name
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return dataclasses.field(default=default, metadata={"help": help, **kw})


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """Add ``--field-name`` flags for every field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        typ = hints[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw = {"dest": f.name, "default": default, "help": f.metadata.get("help", "") + f" (default: {default})"}
        base = _base_type(typ)
        if base is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif base is list:
            kw.update(action="append", default=None)
        else:
            kw["type"] = base
        if "choices" in f.metadata:
            kw["choices"] = f.metadata["choices"]
        parser.add_argument(flag, **kw)


def _base_type(typ):
    origin = typing.get_origin(typ)
    if origin is list:
        return list
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        return _base_type(args[0])
    return typ


def from_namespace(cls, ns: argparse.Namespace):
    values = {f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)}
    for f in dataclasses.fields(cls):
        if values[f.name] is None and f.default is dataclasses.MISSING:
            values[f.name] = f.default_factory()
    return cls(**values)


def from_dict(cls, data: dict):
    """Build ``cls`` from a mapping, refusing keys it does not have."""
    names = {f.name for f in dataclasses.fields(cls)}
    for k in data:
        if k not in names:
            raise ConfigError(suggest(k, names, what=f"{cls.__name__} setting", hint=f"known: {sorted(names)}"))
    return cls(**data)


def as_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def format_config(cfg) -> str:
    rows = [f"  {k:<16} {v}" for k, v in as_dict(cfg).items()]
    return f"{type(cfg).__name__}:\n" + "\n".join(rows)


def parse_overrides(items: list[str] | None) -> dict:
    """``["width=64", "lr=1e-3"]`` -> {"width": 64, "lr": 0.001} (ints, floats, bools, else strings)."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. --set width=64.")
        k, v = item.split("=", 1)
        out[k.strip()] = _literal(v.strip())
    return out


def _literal(v: str):
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    for conv in (int, float):
        try:
            x = conv(v)
            if conv is float and math.isnan(x):
                raise ConfigError(f"NaN is not a valid setting value (got {v!r}).")
            return x
        except ValueError:
            pass
    return v
