"""One small error hierarchy: every error metactrl raises on purpose derives from MetactrlError.

Messages say what was expected, what was got, and how to fix it.
"""

from __future__ import annotations

import difflib


class MetactrlError(Exception):
    """Base class of every error metactrl raises deliberately."""


class TaskNotFound(MetactrlError, KeyError):
    """An unknown task name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DatasetMissing(MetactrlError, FileNotFoundError):
    """A task's data files are not where they were looked for."""


class InvalidValue(MetactrlError, ValueError):
    """An out-of-range, NaN or otherwise unusable value (keep, update, config fields...)."""


class InvalidSchedule(InvalidValue):
    """A schedule spec that cannot be parsed or produced an invalid decision."""


class PolicyMismatch(MetactrlError):
    """A policy bundle that is corrupt or does not fit the environment/feature version."""


class ConfigError(InvalidValue):
    """An unknown or malformed configuration key."""


def suggest(name: str, choices, *, what: str, hint: str) -> str:
    """Return 'no WHAT 'name'. Did you mean 'x'? (hint)' for an unknown name."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    did = f" Did you mean '{close[0]}'?" if close else ""
    return f"no {what} '{name}'.{did} ({hint})"


def check_fraction(name: str, value, *, low_open: bool = True) -> float:
    """Validate a fraction in (0, 1] (or [0, 1] with low_open=False); raise InvalidValue otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"{name} must be a number in (0, 1], got {value!r}.") from None
    ok = (0.0 < v <= 1.0) if low_open else (0.0 <= v <= 1.0)
    if not ok:  # NaN fails both comparisons
        rng = "(0, 1]" if low_open else "[0, 1]"
        raise InvalidValue(
            f"{name} must be in {rng}, got {value!r}. "
            f"Use 1 for everything (full training) and small values such as 0.1 for a tenth."
        )
    return v
