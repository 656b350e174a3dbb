import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # tests run on 2 shared cores: one intra-op thread avoids spin-wait slowdowns

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared real datasets (../shared/data beside the repo, or $METACTRL_TEST_DATA)."""
    p = Path(os.environ.get("METACTRL_TEST_DATA") or REPO.parent / "shared" / "data")
    if not p.is_dir():
        pytest.skip(f"shared datasets not found at {p}")
    return p


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    # Caches (reference runs, decoded datasets) go to a per-test folder, never the user's home.
    monkeypatch.setenv("METACTRL_CACHE", str(tmp_path / "cache"))
