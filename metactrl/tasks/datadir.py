"""Where real datasets are looked for: ``--data-dir`` / ``data_dir=`` > ``$METACTRL_DATA`` > ``./data``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "METACTRL_DATA"


def data_dir(override: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory (it need not exist; loaders report what is missing)."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("data")
