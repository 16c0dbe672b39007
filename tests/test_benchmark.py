"""The benchmark command: both paths measured in one run, ratios and the Keras peer's figures."""

from __future__ import annotations

import json
import runpy
import sys

import pytest
from conftest import tiny_overrides

from fashion_lab import benchmark
from fashion_lab.config import REPO_ROOT


def _report(capsys, argv: list[str]) -> tuple[str, dict]:
    benchmark.main(argv)
    out = capsys.readouterr().out.strip().splitlines()
    return "\n".join(out[:-1]), json.loads(out[-1])


def test_benchmark_measures_framework_and_hand_loop(tiny_data, tmp_path, capsys):
    text, report = _report(capsys, ["--epochs", "2", *tiny_overrides(tiny_data, tmp_path)])
    for path in ("framework", "hand_loop"):
        assert report[path]["images_per_s"] > 0
        assert len(report[path]["epoch_s_all"]) == 2
        assert 0 <= report[path]["val_acc"] <= 1
    ratio = report["framework"]["images_per_s"] / report["hand_loop"]["images_per_s"]
    assert report["framework_vs_hand_loop"] == pytest.approx(ratio, abs=1e-3)
    assert report["peak_rss_mb"]["process"] >= report["peak_rss_mb"]["framework"] > 0
    assert "framework / hand loop" in text and "keras" not in report


@pytest.mark.slow
def test_the_framework_path_is_seeded_like_a_training_run(tiny_data, tmp_path, capsys):
    losses = []
    for seed in (1, 1, 2):
        overrides = [*tiny_overrides(tiny_data, tmp_path / str(seed)), f"seed={seed}"]
        _, report = _report(capsys, ["--epochs", "1", *overrides, "trainer.precision=32-true"])
        losses.append(report["framework"]["val_loss"])
    assert losses[0] == losses[1] != losses[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "weights"), [("64-true", "float64"), ("bf16-mixed", "float32")]
)
def test_the_hand_loop_runs_in_the_framework_runs_precision(
    tiny_data, tmp_path, capsys, precision, weights
):
    overrides = [*tiny_overrides(tiny_data, tmp_path), f"trainer.precision={precision}"]
    _, report = _report(capsys, ["--epochs", "1", *overrides])
    assert report["framework"]["precision"] == precision
    assert report["hand_loop"]["weights"] == weights


@pytest.mark.parametrize("steps", [1, 4])
def test_benchmark_counts_every_image_of_several_steps_per_call(tiny_data, tmp_path, capsys, steps):
    overrides = [*tiny_overrides(tiny_data, tmp_path), f"module.steps_per_call={steps}"]
    _, report = _report(capsys, ["--epochs", "2", *overrides])
    assert report["steps_per_call"] == steps
    # 512 training images in batches of 64: 8 optimizer steps an epoch either way
    assert report["framework"]["images_per_epoch"] == 512


def test_benchmark_runs_the_keras_peer_under_another_interpreter(tiny_data, tmp_path, capsys):
    if not benchmark.KERAS_PEER.is_file():
        pytest.skip("../shared/peers/keras_seed_cnn.py is not beside this checkout")
    fake = tmp_path / "python"
    line = {
        "peer": "keras-seed-cnn",
        "epoch_s": [9.0, 4.0, 2.0],
        "images_per_s": 1000,
        "test_acc": [0.8, 0.85, 0.86],
    }
    fake.write_text(f"#!/bin/sh\necho '{json.dumps(line)}'\n")
    fake.chmod(0o755)
    argv = ["--epochs", "2", "--keras-python", str(fake), *tiny_overrides(tiny_data, tmp_path)]
    text, report = _report(capsys, argv)
    assert report["keras"]["epoch_s_steady"] == 3.0
    assert report["epoch_time_vs_keras"] == pytest.approx(
        report["framework"]["epoch_s"] / 3.0, abs=1e-3
    )
    assert "framework / Keras epoch time" in text


def test_benchmark_reports_a_broken_peer_in_one_sentence_before_measuring(
    tiny_data, tmp_path, capsys, monkeypatch
):
    def measured(*args):
        raise AssertionError("the framework was measured before the peer was checked")

    monkeypatch.setattr(benchmark, "framework_path", measured)
    argv = [
        "--epochs",
        "1",
        "--keras-python",
        str(tmp_path / "missing-python"),
        *tiny_overrides(tiny_data, tmp_path),
    ]
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("Error: ") and "drop --keras-python" in error


def test_benchmark_needs_an_epoch(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.main(["--epochs", "0"])
    assert exit_info.value.code == 2
    assert "argument --epochs: must be at least 1, got 0" in capsys.readouterr().err


def test_repeats_alternate_the_paths_and_report_the_median_pair(
    tiny_data, tmp_path, capsys, monkeypatch
):
    calls = []
    speeds = {"framework": iter([900, 1000, 800]), "hand_loop": iter([1000, 1000, 1000])}

    def measured(path):
        def run(*args):
            calls.append(path)
            figures = {"images_per_s": next(speeds[path]), "epoch_s": 1.0, "val_acc": 0.5}
            return figures | ({"precision": "32-true"} if path == "framework" else {})

        return run

    monkeypatch.setattr(benchmark, "framework_path", measured("framework"))
    monkeypatch.setattr(benchmark, "hand_loop", measured("hand_loop"))
    argv = ["--epochs", "1", "--repeats", "3", *tiny_overrides(tiny_data, tmp_path)]
    text, report = _report(capsys, argv)
    # ABBA: a machine drifting slower or faster through the runs favours neither path
    assert calls == ["framework", "hand_loop", "hand_loop", "framework", "framework", "hand_loop"]
    assert [r["ratio"] for r in report["repeats"]] == [0.9, 1.0, 0.8]
    assert report["framework_vs_hand_loop"] == 0.9
    assert report["framework"]["images_per_s"] == 900
    assert "the median of 3 pairs: 0.900, 1.000, 0.800" in text


def test_step_parity_interleaves_framework_calls_and_hand_steps(
    tiny_data, tmp_path, capsys, monkeypatch
):
    script = REPO_ROOT / "experiments" / "benchmark" / "step_parity.py"
    overrides = [*tiny_overrides(tiny_data, tmp_path), "module.steps_per_call=2"]
    monkeypatch.setattr(sys, "argv", [str(script), "--epochs", "2", *overrides])
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "cnn, 32-true, 2 steps per call"
    # 512 images in batches of 64: 8 steps an epoch, 4 calls of 2, each followed by 2 hand steps
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 0", "epoch 1"]
    assert all(", 2 hand steps " in line and "between calls" in line for line in epochs)
