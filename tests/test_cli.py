import json
import subprocess
import sys

import pytest


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "metactrl", *args], capture_output=True, text=True, timeout=timeout)


def test_tasks_lists_every_builtin():
    r = cli("tasks")
    assert r.returncode == 0
    for name in ("digits-cnn", "digits-vit", "digits-mlp", "pydoc-charlm", "fashion-cnn", "cifar10-vit",
                 "shakespeare-charlm", "wikitext2-lm"):
        assert name in r.stdout


def test_run_writes_summary_json_and_tensorboard(tmp_path):
    out = tmp_path / "s.json"
    r = cli("run", "--task", "digits-mlp", "--keep", "0.5", "--update", "0.1", "--epochs", "2", "--json", str(out),
            "--runs-dir", str(tmp_path / "runs"), "--set", "width=32")
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads(out.read_text())
    assert s["task"] == "digits-mlp" and s["epochs"] == 2
    for k in ("final_val_metric", "test_metric"):
        assert 0 <= s[k] <= 1
    for k in ("metabolic", "metabolic_min", "weight_writes", "forward_samples", "backward_samples", "flops", "wall_s"):
        assert k in s["energy"]
        assert k in s["per_epoch"][0]
    assert len(s["per_epoch"]) == 2 and s["per_epoch"][0]["kept"] > 0
    assert list((tmp_path / "runs").glob("digits-mlp__run__0__*/events.out.tfevents.*"))


@pytest.mark.parametrize("args,needle", [
    (("run", "--task", "digit-cnn"), "Did you mean 'digits-cnn'"),
    (("run", "--keep", "nan"), "keep must be in (0, 1]"),
    (("run", "--update", "1.5"), "update must be in (0, 1]"),
    (("run", "--set", "widht=3"), "widht"),
    (("run", "--schedule", "pdd-xyz"), "no schedule"),
    (("apply", "--policy", "/nonexistent/policy", "--task", "digits-mlp"), "not a policy bundle"),
])
def test_bad_input_is_a_clear_error(args, needle):
    r = cli(*args)
    assert r.returncode == 2
    assert needle in r.stderr, r.stderr[-1500:]


def test_missing_dataset_error_names_path(tmp_path):
    r = cli("run", "--task", "fashion-cnn", "--data-dir", str(tmp_path), "--epochs", "1")
    assert r.returncode == 2
    assert str(tmp_path) in r.stderr and "DatasetMissing" in r.stderr


def test_json_written_atomically_keeps_previous_on_failure(tmp_path):
    out = tmp_path / "s.json"
    out.write_text('{"keep": "me"}')
    r = cli("run", "--task", "digit-cnn", "--json", str(out))
    assert r.returncode == 2 and json.loads(out.read_text()) == {"keep": "me"}
