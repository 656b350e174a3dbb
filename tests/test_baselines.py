"""Each baseline schedule does what its paper says, checked on the engine's own records (digits-mlp, 2-3 epochs)."""

import math
from types import SimpleNamespace

import pytest
import torch

from metactrl import selection as sel
from metactrl.engine import Engine, per_sample_stats
from metactrl.errors import InvalidSchedule
from metactrl.runner import run_schedule
from metactrl.schedules import make_schedule
from metactrl.tasks import Splits, Task, make_task


def _engine(epochs=3, seed=0):
    return Engine(make_task("digits-mlp", epochs=epochs), seed=seed, device="cpu")


def _drive(engine, schedule, epochs):
    """run_schedule's loop, on an engine the test keeps."""
    schedule.reset(engine, epochs)
    return [engine.run_epoch(d.keep, d.update, **d.kwargs())
            for d in (schedule.decide(engine, t) for t in range(1, epochs + 1))]


@pytest.fixture
def captured(monkeypatch):
    """Record every Selection the engine makes, with the sample memory as it was when selecting."""
    seen = []
    original = sel.select

    def spy(strategy, keep, memory, gen, **kw):
        out = original(strategy, keep, memory, gen, **kw)
        seen.append(SimpleNamespace(strategy=strategy, prob=memory.prob.clone(), loss=memory.loss.clone(),
                                    seen=memory.seen.clone(), indices=out.indices.clone(),
                                    weights=None if out.weights is None else out.weights.clone(), **kw))
        return out

    monkeypatch.setattr(sel, "select", spy)
    return seen


@pytest.mark.parametrize("spec", ["pdd-srd", "pdd-srd:0.9", "pdd-dbpd", "pdd-dbpd:0.5", "pdd-smrd", "pdd-smrd:0.2",
                                  "infobatch", "infobatch:0.3", "lazy", "topk:0.1", "topk-anneal:0.05", "random"])
def test_name_is_the_spec(spec):
    assert make_schedule(spec).name == spec


def test_srd_keeps_gamma_power_counts_then_revises_on_all():
    engine, epochs = _engine(4), 4
    recs = _drive(engine, make_schedule("pdd-srd:0.5"), epochs)
    n = engine.n_train
    expected = [math.ceil(0.5 ** (t - 1) * n) for t in range(1, epochs)] + [n]  # last: revision epoch
    assert [r["kept"] for r in recs] == expected
    assert [r["backward_samples"] for r in recs] == expected
    assert all(r["select"] == "random" for r in recs)


def test_srd_default_gamma_is_the_papers():
    s = make_schedule("pdd-srd")
    s.reset(None, 10)
    assert s.decide(None, 3).keep == pytest.approx(0.95 ** 2)


def _fresh_probs(engine):
    with torch.no_grad():
        engine.model.eval()
        x, y = engine.data.x_train, engine.data.y_train
        return per_sample_stats("classification", engine.model(x), y)[2]


def test_dbpd_keeps_exactly_low_confidence_after_a_counted_rescore(captured):
    engine = _engine(3)
    s = make_schedule("pdd-dbpd")
    s.reset(engine, 3)
    n = engine.n_train
    recs = [engine.run_epoch(**vars(s.decide(engine, 1)))]
    before = _fresh_probs(engine)  # what a rescore at the start of epoch 2 must see
    recs.append(engine.run_epoch(**vars(s.decide(engine, 2))))
    recs.append(engine.run_epoch(**vars(s.decide(engine, 3))))
    c = captured[1]
    assert c.strategy == "threshold" and c.tau == 0.3
    torch.testing.assert_close(c.prob, before, rtol=1e-4, atol=1e-6)
    low = set(torch.nonzero(before < 0.3).flatten().tolist())
    assert set(c.indices.tolist()) == low
    assert 0 < len(low) < n // 2  # after one epoch most samples are confident: a real filter
    for r in recs[:2]:  # scoring passes are counted as forward compute
        assert r["scoring_samples"] == n
        assert r["forward_samples"] == n + r["kept"]
        assert r["backward_samples"] == r["kept"]
    assert recs[2]["kept"] == n and recs[2]["scoring_samples"] == 0  # revision epoch: all data, no scoring
    assert engine.meter.report()["scoring_samples"] == 2 * n


def test_smrd_keeps_as_many_random_samples_as_dbpd_on_the_same_state(captured):
    a, b = _engine(3), _engine(3)
    a.run_epoch()
    b.run_epoch()  # same seed, same epoch: identical states on CPU
    smrd, dbpd = make_schedule("pdd-smrd"), make_schedule("pdd-dbpd")
    smrd.reset(a, 3)
    dbpd.reset(b, 3)
    rec_a = a.run_epoch(**vars(smrd.decide(a, 2)))
    rec_b = b.run_epoch(**vars(dbpd.decide(b, 2)))
    assert rec_a["kept"] == rec_b["kept"] < a.n_train
    assert rec_a["select"] == "random" and rec_b["select"] == "threshold"
    assert set(captured[-2].indices.tolist()) != set(captured[-1].indices.tolist())  # random, not the hard ones
    assert a.meter.report()["scoring_samples"] == a.n_train  # SMRD's own scoring pass is counted
    assert a.meter.report()["forward_samples"] == b.meter.report()["forward_samples"]
    assert smrd.decide(a, 3).keep == 1.0  # revision epoch


def test_infobatch_rescales_kept_well_learned_and_ends_on_full_data(captured):
    engine = _engine(3)
    recs = _drive(engine, make_schedule("infobatch:0.5"), 3)
    n = engine.n_train
    first, mid, last = captured
    assert len(first.indices) == n and torch.all(first.weights == 1)  # nothing seen yet: nothing pruned
    assert mid.strategy == "infobatch" and mid.ratio == 0.5
    well = mid.seen & (mid.loss < mid.loss[mid.seen].mean())
    kept_well = well[mid.indices]
    assert torch.allclose(mid.weights[kept_well], torch.tensor(2.0))  # 1 / (1 - r)
    assert torch.all(mid.weights[~kept_well] == 1)
    dropped = int(well.sum()) - int(kept_well.sum())
    assert abs(dropped / int(well.sum()) - 0.5) < 0.08  # each well-learned sample dropped with probability r
    assert len(mid.indices) == n - dropped == recs[1]["kept"]
    assert last.strategy == "random" and last.weights is None and len(last.indices) == n  # annealing: no rescale


@pytest.mark.parametrize("epochs,full", [(2, [2]), (8, [8]), (9, [8, 9]), (16, [15, 16]), (17, [15, 16, 17])])
def test_infobatch_full_tail_is_last_eighth_rounded_up(epochs, full):
    s = make_schedule("infobatch")
    s.reset(None, epochs)
    got = [t for t in range(1, epochs + 1) if s.decide(None, t).select == "random"]
    assert got == full
    assert all(s.decide(None, t).ratio is None for t in full)


def test_lazy_mixed_batch_gives_no_gradient_from_correct_samples():
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    y = torch.tensor([0, 0, 0])  # rows 0 and 2 correct, row 1 wrong
    terms = per_sample_stats("classification", logits, y, "mistakes")[0]
    assert terms[0] == 0 and terms[2] == 0 and terms[1] > 0


def _correct_only_task(engine):
    """A task whose training data are samples ``engine``'s model already classifies correctly."""
    with torch.no_grad():
        engine.model.eval()
        d = engine.data
        ok = engine.model(d.x_train).argmax(1) == d.y_train
    x, y = d.x_train[ok][:64], d.y_train[ok][:64]
    splits = Splits(x, y, d.x_val, d.y_val, d.x_test, d.y_test)
    return Task("correct-only", model_fn=lambda: None, load_data=lambda: splits, batch_size=32, epochs=1)


@pytest.mark.parametrize("learn_from,moves", [("mistakes", False), ("all", True)])
def test_lazy_all_correct_batches_change_no_weight(learn_from, moves):
    trained = _engine(2)
    trained.run_epoch()
    trained.run_epoch()
    engine = Engine(_correct_only_task(trained), seed=0, device="cpu", model=trained.model)
    w0 = [p.detach().clone() for p in engine.model.parameters()]
    rec = engine.run_epoch(learn_from=learn_from)
    changed = any(not torch.equal(a, p) for a, p in zip(w0, engine.model.parameters(), strict=True))
    assert changed is moves
    assert (rec["backward_samples"] > 0) is moves and (rec["metabolic"] > 0) is moves


def test_lazy_skips_backward_when_the_model_is_good():
    engine = _engine(4)
    for _ in range(3):
        engine.run_epoch()
    lazy = make_schedule("lazy")
    lazy.reset(engine, 4)
    d = lazy.decide(engine, 4)
    assert d.learn_from == "mistakes" and d.keep == 1.0
    rec = engine.run_epoch(**vars(d))
    assert rec["forward_samples"] == engine.n_train
    assert rec["backward_samples"] < rec["forward_samples"]


def test_topk_realizes_its_fraction_and_changes_no_more():
    engine = _engine(2)
    n_params = engine.meter.n_params
    steps = []
    original = engine.gate.step

    def spy(optimizer, update=1.0, closure=None):
        before = [p.detach().clone() for p in engine.gate.params]
        rep = original(optimizer, update)
        changed = sum(int((p.detach() != b).sum()) for p, b in zip(engine.gate.params, before, strict=True))
        steps.append((changed / n_params, float(rep.realized)))
        return rep

    engine.gate.step = spy
    recs = _drive(engine, make_schedule("topk:0.1"), 2)
    assert all(r["update"] == 0.1 for r in recs)
    for r in recs:
        assert r["realized_update"] == pytest.approx(0.1, abs=0.02)
        assert r["weight_writes"] <= r["realized_update"] * r["steps"] * n_params + 1
    # realized is a float32 count / n_params: compare with a relative tolerance of float32 rounding
    assert all(changed <= realized * (1 + 1e-6) for changed, realized in steps)
    assert all(changed >= 0.5 * realized for changed, realized in steps)  # masked-in weights do move
    assert max(realized for _, realized in steps) < 0.2  # thresholds are reused for a few steps: some drift


def test_topk_anneal_goes_geometrically_from_one_to_q():
    s = make_schedule("topk-anneal:0.01")
    s.reset(None, 5)
    u = [s.decide(None, t).update for t in range(1, 6)]
    assert u[0] == 1.0 and u[-1] == pytest.approx(0.01)
    ratios = [b / a for a, b in zip(u[:-1], u[1:], strict=True)]
    assert ratios == pytest.approx([0.01 ** 0.25] * 4)
    assert all(s.decide(None, t).keep == 1.0 for t in range(1, 6))


def _random_actions(seed, epochs=20):
    s = make_schedule("random")
    engine = SimpleNamespace(seed=seed)
    s.reset(engine, epochs)
    return [(d.keep, d.update) for d in (s.decide(engine, t) for t in range(1, epochs + 1))]


def test_random_is_deterministic_per_seed_and_in_range():
    a, b, c = _random_actions(3), _random_actions(3), _random_actions(4)
    assert a == b and a != c
    acts = _random_actions(0, 400)
    assert all(0.05 <= k <= 1 and 0.01 <= q <= 1 for k, q in acts)
    logs = [math.log10(q) for _, q in acts]
    assert min(logs) < -1.7 and max(logs) > -0.3  # log-uniform: the decades are covered evenly


def test_random_schedule_reproduces_a_run():
    task = make_task("digits-mlp", epochs=2)
    runs = [run_schedule(task, make_schedule("random"), seed=5, device="cpu") for _ in range(2)]
    keys = ("keep", "update", "kept", "train_loss", "metabolic")
    assert [[r[k] for k in keys] for r in runs[0]["per_epoch"]] == [[r[k] for k in keys] for r in runs[1]["per_epoch"]]


@pytest.mark.parametrize("spec", ["pdd-srd:1", "pdd-srd:0", "pdd-srd:nan", "pdd-srd:abc", "pdd-dbpd:0",
                                  "pdd-dbpd:1.5", "pdd-smrd:-1", "pdd-smrd:nan", "infobatch:1", "infobatch:nan",
                                  "infobatch:-0.1", "topk", "topk:0", "topk:2", "topk:inf", "topk-anneal",
                                  "topk-anneal:nan", "lazy:1", "random:3"])
def test_bad_specs_say_expected_got_and_example(spec):
    with pytest.raises(InvalidSchedule) as e:
        make_schedule(spec)
    msg = str(e.value)
    assert f"got '{spec}'" in msg and "e.g." in msg


def test_unknown_baseline_gets_a_suggestion():
    with pytest.raises(InvalidSchedule, match="Did you mean 'pdd-dbpd'"):
        make_schedule("pdd-dbdp")
