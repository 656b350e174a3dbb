import re
from pathlib import Path

import pytest
import torch
from torch import nn

from metactrl.api import EnergyAwareTrainer, EnergyHooks
from metactrl.errors import InvalidValue, MetactrlError

README = Path(__file__).resolve().parents[1] / "README.md"


def _data(n=256, d=16, c=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :c].argmax(1))
    return x, y


def test_trainer_with_baseline_counts_energy():
    x, y = _data()
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    res = EnergyAwareTrainer(model, opt, (x[:200], y[:200]), (x[200:], y[200:]), policy="constant:0.5,0.2",
                             epochs=3, batch_size=32, device="cpu").fit()
    assert len(res.history) == 3 and res.history[0]["kept"] == 100
    assert res.energy["metabolic"] >= res.energy["metabolic_min"] > 0
    assert res.summary["final_val_metric"] > 0.5


def test_trainer_accepts_dataset_and_dataloader():
    x, y = _data()
    ds = torch.utils.data.TensorDataset(x[:200], y[:200])
    dl = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[200:], y[200:]), batch_size=10)
    model = nn.Linear(16, 4)
    res = EnergyAwareTrainer(model, torch.optim.Adam(model.parameters()), ds, dl, policy="full", epochs=1,
                             device="cpu").fit()
    assert res.history[0]["backward_samples"] == 200


def test_wrong_shapes_and_frozen_models_are_clear_errors():
    x, y = _data()
    model = nn.Linear(8, 4)
    with pytest.raises(InvalidValue, match="cannot take the training inputs"):
        EnergyAwareTrainer(model, torch.optim.SGD(model.parameters(), lr=0.1), (x, y), (x, y), policy="full")
    frozen = nn.Linear(16, 4).requires_grad_(False)
    with pytest.raises(MetactrlError, match="no trainable parameters"):
        EnergyAwareTrainer(frozen, torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), (x, y), (x, y))
    with pytest.raises(InvalidValue, match="must match"):
        EnergyAwareTrainer(nn.Linear(16, 4), torch.optim.SGD(nn.Linear(1, 1).parameters(), lr=0.1),
                           (x, y[:10]), (x, y))


def test_hooks_mask_and_account_in_a_user_loop():
    x, y = _data()
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    hooks = EnergyHooks(model, opt, n_train=len(x), schedule="constant:0.25,0.1", epochs=2)
    n = sum(p.numel() for p in model.parameters())
    for _ in range(2):
        plan = hooks.begin_epoch()
        assert len(plan.indices) == 64
        for i in range(0, len(plan.indices), 16):
            idx = plan.indices[i:i + 16]
            before = [p.detach().clone() for p in model.parameters()]
            hooks.observe(idx, model(x[idx]), y[idx]).mean().backward()
            rep = hooks.step()
            opt.zero_grad()
            changed = sum(int((p.detach() != b).sum()) for p, b in zip(model.parameters(), before))
            assert changed <= float(rep.realized) * n
        hooks.end_epoch(val_metric=0.5)
    assert hooks.report()["backward_samples"] == 128


def _readme_blocks() -> list[str]:
    text = README.read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.skipif(not (Path(__file__).resolve().parents[1] / "policies" / "default" / "card.toml").is_file(),
                    reason="no shipped policy yet")
def test_readme_examples_run():
    blocks = _readme_blocks()
    assert len(blocks) >= 2
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def test_hooks_apply_infobatch_rescaling_by_sample_index():
    x, y = _data()
    model = nn.Linear(16, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hooks = EnergyHooks(model, opt, n_train=len(x), schedule="infobatch:0.5", epochs=8)
    for _ in range(2):
        plan = hooks.begin_epoch()
        for i in range(0, len(plan.indices), 32):
            idx = plan.indices[i:i + 32]
            out = model(x[idx])
            terms = hooks.observe(idx, out, y[idx])
            plain = nn.functional.cross_entropy(out, y[idx], reduction="none")
            expected = plain if plan.weights is None else plain * plan.weights[i:i + 32]
            torch.testing.assert_close(terms, expected)
            terms.mean().backward()
            hooks.step()
            opt.zero_grad()
        hooks.end_epoch(val_metric=0.5)
    assert plan.weights is not None and bool((plan.weights == 2.0).any())
