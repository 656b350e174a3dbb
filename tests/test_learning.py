"""Every built-in task learns in its default budget (real-data ones in the slow set)."""

import pytest
import torch

from metactrl import Engine, make_task


def train(task, epochs=None):
    e = Engine(task, seed=0, device="cpu")
    for _ in range(epochs or task.epochs):
        e.run_epoch(1.0, 1.0)
    return e


def unigram_accuracy(task) -> float:
    """Accuracy of always predicting the most frequent training token, on the validation split."""
    d = task.data()
    top = torch.bincount(d.y_train.flatten(), minlength=task.num_classes).argmax()
    return float((d.y_val == top).float().mean())


@pytest.mark.parametrize("name,floor", [("digits-cnn", 0.95), ("digits-mlp", 0.95), ("digits-vit", 0.85)])
def test_digits_tasks_learn_in_default_budget(name, floor):
    e = train(make_task(name))
    assert e.history[-1]["val_metric"] > floor


def test_pydoc_charlm_beats_unigram():
    task = make_task("pydoc-charlm", max_chars=40_000)
    e = train(task, epochs=3)
    rec = e.history[-1]
    assert rec["val_metric"] > unigram_accuracy(task) + 0.05
    # unigram perplexity = exp(entropy of the training token distribution)
    p = torch.bincount(task.data().y_train.flatten(), minlength=task.num_classes).float()
    p = p[p > 0] / p.sum()
    assert rec["val_perplexity"] < float(torch.exp(-(p * p.log()).sum()))


@pytest.mark.slow
@pytest.mark.parametrize("name,kind_floor", [("fashion-cnn", 0.80), ("cifar10-cnn", 0.35)])
def test_real_vision_tasks_learn(shared_data, name, kind_floor):
    e = train(make_task(name, data_dir=str(shared_data)))
    assert e.history[-1]["val_metric"] > kind_floor


@pytest.mark.slow
@pytest.mark.parametrize("name", ["shakespeare-charlm", "wikitext2-lm"])
def test_real_lms_beat_unigram(shared_data, name):
    task = make_task(name, data_dir=str(shared_data))
    e = train(task)
    assert e.history[-1]["val_metric"] > unigram_accuracy(task)
