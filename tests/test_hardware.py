"""`trainer.gpus` translation, the no-GPU error and the precision choice."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fashion_lab import hardware
from fashion_lab.errors import UserError
from fashion_lab.hardware import NO_GPU, resolve_devices


@pytest.fixture
def gpus(monkeypatch):
    """Pretend the machine has `n` CUDA GPUs."""

    def set_count(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    return set_count


def test_gpus_becomes_accelerator_and_devices(gpus):
    gpus(2)
    out = resolve_devices({"gpus": 1, "accelerator": "auto", "devices": "auto", "precision": None})
    assert (out["accelerator"], out["devices"]) == ("gpu", 1)
    assert "gpus" not in out
    assert resolve_devices({"gpus": -1})["devices"] == 2
    assert resolve_devices({"gpus": 0})["accelerator"] == "cpu"
    assert resolve_devices({"gpus": 1})["benchmark"] is True


def test_no_gpu_is_one_sentence_that_says_what_to_do(gpus):
    gpus(0)
    with pytest.raises(UserError) as error:
        resolve_devices({"gpus": 1})
    assert str(error.value) == NO_GPU
    assert "trainer.gpus=0" in NO_GPU
    with pytest.raises(UserError, match="No CUDA GPU"):
        resolve_devices({"accelerator": "gpu"})


def test_more_gpus_than_present(gpus):
    gpus(2)
    with pytest.raises(UserError, match=r"set trainer\.gpus=2 or fewer"):
        resolve_devices({"gpus": 3})


@pytest.mark.parametrize("value", [1.5, "two", True, -2])
def test_gpus_must_be_a_count(value):
    with pytest.raises(UserError, match="whole number of GPUs"):
        resolve_devices({"gpus": value})


def test_the_precision_for_several_processes_follows_the_flags(gpus, monkeypatch):
    """Where no measurement is made (several processes), null precision goes by the flags;
    resolve_devices itself leaves precision to build.settings."""
    gpus(0)
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: False)
    assert hardware.fastest_precision("cpu") == "32-true"
    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    assert hardware.fastest_precision("cpu") == "bf16-mixed"
    assert resolve_devices({"precision": None})["precision"] is None
    assert resolve_devices({"precision": "64-true"})["precision"] == "64-true"


def test_parallel_sweep_jobs_spread_over_the_gpus(gpus):
    gpus(4)
    assert [resolve_devices({"gpus": 1}, job_index=k)["devices"] for k in range(6)] == [
        [0],
        [1],
        [2],
        [3],
        [0],
        [1],
    ]
    assert resolve_devices({"gpus": 2}, job_index=5)["devices"] == 2, "multi-GPU jobs as asked"
    assert resolve_devices({"gpus": 1})["devices"] == 1, "a single run keeps Lightning's choice"


@pytest.mark.slow
def test_openmp_threads_sleep_when_idle_unless_the_user_chose_otherwise():
    # spinning idle threads took the cores from a second run: 433 instead of 8,000 images/s
    code = "import os, fashion_lab, torch; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    for given, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        if given:
            env["OMP_WAIT_POLICY"] = given
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == expected
