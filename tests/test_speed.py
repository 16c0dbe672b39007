"""Speed choices that null leaves (fashion_lab.speed): timed, picked with margins, cached."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from fashion_lab import build, plan, speed
from fashion_lab.models import create_model
from tests.conftest import compose_run, tiny_overrides

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _own_cache(monkeypatch, tmp_path):
    """Each test starts with no measurements."""
    monkeypatch.setenv(speed.CACHE_ENV, str(tmp_path / "own" / "speed.json"))


def _choose(
    figures: dict[str, float],
    calls: list[str] | None = None,
    give_ups: dict[str, float] | None = None,
    **given,
):
    """speed.choose with a timer that answers `figures` (label -> images/s) and notes each call
    and the figure below which it was told to give up."""

    def timer(make_network, make_optimizer, batch, device, precision, channels_last, **options):
        name = speed.label(precision, channels_last)
        if calls is not None:
            calls.append(name)
        if give_ups is not None:
            give_ups[name] = options.get("give_up_below", 0.0)
        return figures[name]

    options = {"precision": None, "channels_last": None} | given
    return speed.choose(
        lambda: nn.Linear(1, 1),
        lambda params: torch.optim.SGD(params, lr=0.1),
        network_key="net",
        batch_size=128,
        device=CPU,
        fallback="32-true",
        timer=timer,
        **options,
    )


FIGURES = {
    "32-true/channels_last": 1000.0,
    "32-true/contiguous": 900.0,
    "bf16-mixed/channels_last": 1050.0,
    "bf16-mixed/contiguous": 1300.0,
}


def test_a_mixed_precision_needs_a_clear_lead_and_the_format_follows():
    # bf16 5% faster: within the margin, so fp32 (the numbers a near-tie must not flip)
    choice = _choose(FIGURES)
    assert (choice.precision, choice.channels_last) == ("32-true", True)
    assert list(choice.measured) == [
        "32-true/channels_last",
        "bf16-mixed/channels_last",
        "32-true/contiguous",
    ]
    assert not choice.cached


def test_the_faster_precision_and_format_win():
    figures = FIGURES | {"bf16-mixed/channels_last": 1200.0}
    choice = _choose(figures)
    assert (choice.precision, choice.channels_last) == ("bf16-mixed", False)
    assert choice.measured["bf16-mixed/contiguous"] == 1300
    assert "bf16-mixed, contiguous" in choice.line("cnn at batch 128")


def test_a_contender_is_told_the_figure_below_which_it_has_clearly_lost():
    give_ups: dict[str, float] = {}
    _choose(FIGURES, give_ups=give_ups)
    need_bf16 = speed.LOWER_PRECISION_MARGIN * FIGURES["32-true/channels_last"]
    need_contiguous = speed.FORMAT_MARGIN * FIGURES["32-true/channels_last"]
    assert give_ups == {
        "32-true/channels_last": 0.0,  # the first candidate is timed in full
        "bf16-mixed/channels_last": pytest.approx(speed.GIVE_UP_SHARE * need_bf16),
        "32-true/contiguous": pytest.approx(speed.GIVE_UP_SHARE * need_contiguous),
    }


def test_given_values_are_never_timed():
    calls: list[str] = []
    choice = _choose(FIGURES, calls, precision="64-true", channels_last=False)
    assert (choice.precision, choice.channels_last, calls) == ("64-true", False, [])
    assert not choice.measured
    # only the format left: timed at the given precision
    choice = _choose(FIGURES, calls, precision="bf16-mixed")
    assert calls == ["bf16-mixed/channels_last", "bf16-mixed/contiguous"]
    assert (choice.precision, choice.channels_last) == ("bf16-mixed", False)


def test_a_second_run_reads_the_cache_and_a_damaged_cache_is_measured_again(monkeypatch, tmp_path):
    path = tmp_path / "cache" / "speed.json"
    monkeypatch.setenv(speed.CACHE_ENV, str(path))
    calls: list[str] = []
    first = _choose(FIGURES, calls)
    assert len(calls) == 3 and path.is_file()
    second = _choose(FIGURES, calls)
    assert len(calls) == 3 and second.cached
    assert (second.precision, second.channels_last) == (first.precision, first.channels_last)
    assert str(path) in second.line("cnn")
    path.write_text("{not json")
    third = _choose(FIGURES, calls)
    assert len(calls) == 6 and not third.cached
    assert json.loads(path.read_text())["entries"]  # rewritten whole


class _Busy:
    """A CpuLoad that reports other processes on 80% of the CPUs."""

    def share(self):
        return 0.8


def test_figures_timed_while_other_processes_were_busy_are_used_but_not_cached(
    monkeypatch, tmp_path
):
    path = tmp_path / "cache" / "speed.json"
    monkeypatch.setenv(speed.CACHE_ENV, str(path))
    monkeypatch.setattr(speed, "CpuLoad", _Busy)
    calls: list[str] = []
    first = _choose(FIGURES | {"bf16-mixed/channels_last": 1200.0}, calls)
    assert (first.precision, first.channels_last, first.busy) == ("bf16-mixed", False, 0.8)
    assert "80% of the CPUs busy, so not cached" in first.line("cnn")
    assert not path.exists()
    _choose(FIGURES, calls)
    assert len(calls) == 6  # the next run times again
    # Lightning's cost per call likewise
    monkeypatch.setattr(speed, "_fit_seconds", lambda device, k, steps: 1.0 if k == 1 else 0.5)
    assert speed.call_overhead_s(CPU) == pytest.approx(0.5 / 224)
    assert not path.exists()


def test_the_cpu_load_sees_other_processes():
    if not Path("/proc/stat").is_file():
        pytest.skip("no /proc/stat here")
    cpus = len(os.sched_getaffinity(0))
    spin = [sys.executable, "-c", "while True: pass"]
    others = [subprocess.Popen(spin) for _ in range(cpus)]
    try:
        time.sleep(0.3)
        load = speed.CpuLoad()
        time.sleep(0.5)
        share = load.share()
    finally:
        for p in others:
            p.kill()
    assert share is not None and share > 0.5
    assert speed.CpuLoad().share() is None  # too short a window to say


def test_a_cache_that_cannot_be_written_costs_only_a_measurement(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv(speed.CACHE_ENV, str(blocker / "speed.json"))  # under a file: cannot
    choice = _choose(FIGURES)
    assert choice.precision == "32-true" and not choice.cached


def test_a_network_that_cannot_be_timed_gets_the_fallback():
    def broken(*args, **options):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    choice = speed.choose(
        lambda: nn.Linear(1, 1),
        lambda params: torch.optim.SGD(params, lr=0.1),
        network_key="net",
        batch_size=8,
        device=CPU,
        precision=None,
        channels_last=None,
        fallback="bf16-mixed",
        timer=broken,
    )
    assert (choice.precision, choice.channels_last, choice.measured) == ("bf16-mixed", True, {})


def test_timing_real_steps_keeps_the_callers_random_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    rate = speed.time_steps(
        lambda: create_model("cnn"),
        lambda params: torch.optim.Adam(params),
        16,
        CPU,
        "32-true",
        True,
    )
    assert rate > 0
    assert torch.equal(torch.rand(3), expected)


def test_a_clear_loser_stops_after_one_timed_step():
    def steps(**options) -> int:
        net = create_model("cnn")
        calls = []
        net.register_forward_hook(lambda *args: calls.append(1))
        speed.time_steps(
            lambda: net,
            lambda params: torch.optim.Adam(params),
            16,
            CPU,
            "32-true",
            True,
            **options,
        )
        return len(calls) - 1 - speed.WARMUP_STEPS  # less the probe for the classes, the warm-up

    assert steps() >= speed.MIN_STEPS
    assert steps(give_up_below=float("inf")) == 1
    assert steps(give_up_below=1.0) >= speed.MIN_STEPS  # any real step beats 1 image/s


def test_a_null_config_is_measured_with_the_runs_network_and_kept(monkeypatch, tiny_data, tmp_path):
    monkeypatch.setenv(speed.CACHE_ENV, str(tmp_path / "speed.json"))
    seen = []

    def timer(make_network, make_optimizer, batch, device, precision, channels_last, **options):
        net = make_network()
        make_optimizer(net.parameters())
        seen.append((type(net).__name__, batch, device.type))
        return FIGURES[speed.label(precision, channels_last)] * (1.5 if "bf16" in precision else 1)

    monkeypatch.setattr(speed, "time_steps", timer)
    monkeypatch.setattr(speed, "call_overhead_s", lambda device: 0.001)
    overrides = [*tiny_overrides(tiny_data, tmp_path), "trainer.precision=null"]
    null = ["module.channels_last=null", "module.steps_per_call=null", "model=dilated_v2"]
    cfg = compose_run([*overrides, *null], tmp_path)
    run = plan.settings(cfg)
    assert run.trainer["precision"] == "bf16-mixed" and run.channels_last is False
    assert seen[0] == ("DilatedNet", 64, "cpu")
    # a step of 64 / (1300 * 1.5) s = 33 ms, a call costs 1 ms: 4 steps bring it under 1%
    assert run.steps_per_call == 4 and run.speed.call_ms == 1.0
    assert build.module(cfg, build.network(cfg.model), run, {}).channels_last is False
    # several processes: no measurement, the flags' guess
    seen.clear()
    ddp = plan.settings(compose_run([*overrides, "trainer=ddp"], tmp_path))
    assert seen == [] and ddp.speed is None
    assert ddp.trainer["precision"] in ("32-true", "bf16-mixed")


@pytest.mark.slow
def test_a_run_says_its_choice_and_keeps_it_in_results_and_checkpoints(tiny_data, tmp_path):
    from tests.conftest import run_cli

    out = tmp_path / "run"
    done = run_cli(
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.precision=null",
        "module.channels_last=null",
        "trainer.max_epochs=1",
        f"hydra.run.dir={out}",
    )
    assert done.returncode == 0, done.stderr
    output = (done.stdout + done.stderr).splitlines()
    line = next(x for x in output if "Speed for cnn at batch 64" in x)
    results = json.loads((out / "results.json").read_text())
    chosen = results["speed"]
    assert set(chosen["images_per_s"]) >= {"32-true/channels_last", "bf16-mixed/channels_last"}
    assert f"{chosen['precision']}, " in line and results["precision"] == chosen["precision"]
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    kept = checkpoint["fashion_lab_config"]
    assert kept["trainer"]["precision"] == chosen["precision"]
    assert kept["module"]["channels_last"] == chosen["channels_last"]
