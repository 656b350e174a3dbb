import math

import pytest
import torch
from torch import nn

from metactrl import CachingConfig, EnergyMeter, Engine, EngineOptions, PlasticityGate, make_task
from metactrl.errors import ConfigError, InvalidValue, TaskNotFound
from metactrl.selection import SampleMemory, select


def tiny(epochs=2, **kw):
    return make_task("digits-mlp", epochs=epochs, width=32, **kw)


@pytest.mark.parametrize("keep", [1.0, 0.5, 0.25, 0.033])
def test_keep_backpropagates_ceil_keep_n(keep):
    e = Engine(tiny(), seed=0, device="cpu")
    rec = e.run_epoch(keep, 1.0)
    assert rec["kept"] == math.ceil(keep * e.n_train)
    assert rec["backward_samples"] == math.ceil(keep * e.n_train)
    assert rec["forward_samples"] == math.ceil(keep * e.n_train)


def test_hardest_picks_highest_loss():
    mem = SampleMemory(100, "cpu")
    loss = torch.rand(100)
    mem.update(torch.arange(100), loss, torch.exp(-loss), torch.zeros(100, dtype=torch.bool))
    chosen = select("hardest", 0.2, mem, torch.Generator().manual_seed(0)).indices
    assert set(chosen.tolist()) == set(torch.topk(loss, 20).indices.tolist())


def test_hardest_prefers_unseen_and_engine_uses_memory():
    e = Engine(tiny(), seed=0, device="cpu", options=EngineOptions(select="hardest"))
    e.run_epoch(0.5, 1.0)
    first = e.memory.seen.clone()
    e.run_epoch(0.5, 1.0)  # the unseen half is the hardest (loss unknown) and must be picked now
    assert bool(e.memory.seen.all()) and int(first.sum()) == math.ceil(0.5 * e.n_train)


@pytest.mark.parametrize("opt_name", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("scope", ["global", "tensor", "neuron"])
def test_masked_weights_bit_identical(opt_name, scope):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5))
    params = list(model.parameters())
    opts = {"sgd": lambda: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01),
            "adam": lambda: torch.optim.Adam(params, lr=0.01, weight_decay=0.01),
            "adamw": lambda: torch.optim.AdamW(params, lr=0.01, weight_decay=0.1)}
    opt = opts[opt_name]()
    gate = PlasticityGate(params, EnergyMeter(params), scope=scope, refresh=1)
    n = sum(p.numel() for p in params)
    for _ in range(4):  # momentum/Adam state from earlier steps must not leak into masked weights
        x, y = torch.randn(16, 20), torch.randint(0, 5, (16,))
        nn.functional.cross_entropy(model(x), y).backward()
        before = [p.detach().clone() for p in params]
        rep = gate.step(opt, update=0.1)
        opt.zero_grad()
        changed = sum(int((p.detach() != b).sum()) for p, b in zip(params, before))
        assert changed <= float(rep.realized) * n + 1e-9
        assert 0.05 <= float(rep.realized) <= 0.2
        if scope == "neuron":
            for p, b in zip(params, before):
                if p.dim() == 2:
                    assert int((p.detach() != b).sum(1).max()) <= round(0.1 * p.shape[1])


def test_update_one_changes_everything_that_moves():
    e = Engine(tiny(), seed=0, device="cpu")
    rec = e.run_epoch(1.0, 1.0)
    assert rec["weight_writes"] > 0.9 * rec["steps"] * e.meter.n_params


def test_metabolic_energy_matches_hand_computation():
    torch.manual_seed(0)
    lin = nn.Linear(3, 2)
    params = list(lin.parameters())
    opt = torch.optim.SGD(params, lr=0.5)
    meter = EnergyMeter(params)
    gate = PlasticityGate(params, meter)
    w0 = [p.detach().clone() for p in params]
    expected_m1, expected_m0 = 0.0, 0
    for _ in range(3):
        x = torch.randn(4, 3)
        lin(x).pow(2).sum().backward()
        grads = [p.grad.clone() for p in params]
        gate.step(opt, 1.0)
        opt.zero_grad()
        expected_m1 += sum(float((0.5 * g).abs().sum()) for g in grads)
        expected_m0 += sum(int((g != 0).sum()) for g in grads)
    rep = meter.report()
    assert rep["metabolic"] == pytest.approx(expected_m1, rel=1e-5)
    assert rep["weight_writes"] == expected_m0
    m_min = sum(float((p.detach() - w).abs().sum()) for p, w in zip(params, w0))
    assert rep["metabolic_min"] == pytest.approx(m_min, rel=1e-6)
    assert rep["metabolic"] >= rep["metabolic_min"] - 1e-9


def test_alpha_exponent():
    p = nn.Parameter(torch.zeros(4))
    meter = EnergyMeter([p], alpha=2.0)
    meter.record_step([torch.tensor([0.1, -0.2, 0.0, 0.3])])
    assert meter.report()["metabolic"] == pytest.approx(0.01 + 0.04 + 0.09)


@pytest.mark.parametrize("update", [1.0, 0.1])
def test_m1_at_least_m_min_on_a_run(update):
    e = Engine(tiny(), seed=1, device="cpu")
    for _ in range(2):
        e.run_epoch(1.0, update)
    rep = e.meter.report()
    assert rep["metabolic"] >= rep["metabolic_min"] > 0
    assert rep["metabolic"] == pytest.approx(sum(r["metabolic"] for r in e.history))


def test_synaptic_caching_limits():
    # theta = inf: nothing consolidates until the end, when the net change (M_min) is consolidated.
    # theta = 0: every change is consolidated at once, so consolidation energy equals M1.
    for theta, key in ((math.inf, "metabolic_min"), (0.0, "metabolic")):
        e = Engine(tiny(), seed=0, device="cpu", options=EngineOptions(caching=CachingConfig(theta=theta, c=0.0)))
        e.run_epoch(1.0, 1.0)
        e.meter.cache.finalize()
        rep = e.meter.report()
        assert rep["caching_consolidation"] == pytest.approx(rep[key], rel=1e-4)


def test_caching_maintenance_cost_counts():
    e = Engine(tiny(), seed=0, device="cpu", options=EngineOptions(caching=CachingConfig(theta=1e9, c=0.01)))
    e.run_epoch(1.0, 1.0)
    assert e.meter.report()["caching_maintenance"] > 0


def test_same_seed_same_run_different_seed_differs():
    def run(seed):
        e = Engine(tiny(), seed=seed, device="cpu", options=EngineOptions(select="hardest"))
        for k, q in ((1.0, 1.0), (0.5, 0.2)):
            e.run_epoch(k, q)
        return [r["val_metric"] for r in e.history], e.meter.report()["metabolic"], list(e.model.parameters())

    a, b, c = run(3), run(3), run(4)
    assert a[0] == b[0] and a[1] == b[1]
    assert all(torch.equal(x, y) for x, y in zip(a[2], b[2]))
    assert a[1] != c[1]


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), "x"])
def test_bad_keep_update_rejected(bad):
    e = Engine(tiny(), seed=0, device="cpu")
    with pytest.raises(InvalidValue, match="keep"):
        e.run_epoch(bad, 1.0)
    with pytest.raises(InvalidValue, match="update"):
        e.run_epoch(1.0, bad)


def test_unknown_task_suggests():
    with pytest.raises(TaskNotFound, match="Did you mean 'digits-cnn'"):
        make_task("digit-cnn")


def test_unknown_override_is_an_error():
    with pytest.raises(ConfigError, match="widht"):
        make_task("digits-mlp", widht=3)


def test_no_trainable_parameters_is_an_error():
    t = tiny()
    t.model_fn = lambda: nn.Sequential(nn.Flatten(), nn.Linear(64, 10).requires_grad_(False))
    with pytest.raises(Exception, match="no trainable parameters"):
        Engine(t, device="cpu")


def test_divergence_is_reported_not_raised():
    t = make_task("digits-mlp", epochs=1, lr=1e6, optimizer="sgd")
    e = Engine(t, seed=0, device="cpu")
    for _ in range(3):
        if e.diverged:
            break
        e.run_epoch(1.0, 1.0)
    assert e.diverged and e.history[-1]["diverged"]


def test_flops_are_counted_per_pass():
    e = Engine(tiny(), seed=0, device="cpu")
    rec = e.run_epoch(0.5, 1.0)
    assert e.fwd_flops > 0 and e.bwd_flops > e.fwd_flops
    assert rec["flops"] == pytest.approx(rec["forward_samples"] * e.fwd_flops + rec["backward_samples"] * e.bwd_flops)


def test_lm_task_reports_perplexity():
    t = make_task("pydoc-charlm", epochs=1, max_chars=20_000, dim=32, depth=1)
    e = Engine(t, seed=0, device="cpu")
    rec = e.run_epoch(1.0, 1.0)
    assert rec["val_perplexity"] == pytest.approx(math.exp(rec["val_loss"]))
    s = e.summary()
    assert "test_perplexity" in s and s["kind"] == "lm"


def test_cuda_request_without_cuda_is_clear():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(InvalidValue, match="CUDA is not available"):
        Engine(tiny(), device="cuda")
