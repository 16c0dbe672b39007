"""On a CUDA GPU: the brief's command, and training steps that never wait for the GPU.

Skipped without a GPU (CI has none); run on one with `pytest tests/test_gpu.py`.
"""

from __future__ import annotations

import json
import warnings

import pytest
import pytorch_lightning as pl
import torch
from conftest import build_run, compose_run, run_cli, tiny_overrides

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_the_brief_command_trains_on_the_gpu(tiny_data, tmp_path):
    done = run_cli(
        "model=dilated_v2",
        "trainer.gpus=1",
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.precision=null",  # timed on the GPU (fashion_lab.speed)
        "module.steps_per_call=null",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [results] = tmp_path.rglob("results.json")
    results = json.loads(results.read_text())
    assert results["status"] == "completed" and results["device"].startswith("cuda")
    assert results["precision"] == results["speed"]["precision"]
    assert "32-true/channels_last" in results["speed"]["images_per_s"]


class SyncCounter(pl.Callback):
    """Counts the operations that make the CPU wait for the GPU inside training steps."""

    def __init__(self) -> None:
        self.steps = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        torch.cuda.set_sync_debug_mode("warn")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        torch.cuda.set_sync_debug_mode("default")
        self.steps += 1


@pytest.mark.parametrize("steps_per_call", [1, 4])
def test_training_steps_read_the_gpu_only_every_log_every_n_steps(
    tiny_data, tmp_path, steps_per_call
):
    overrides = [
        *tiny_overrides(tiny_data, tmp_path),
        f"module.steps_per_call={steps_per_call}",
        "trainer=gpu",
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=4",
        "data.batch_size=16",  # 32 steps an epoch
        "data.augment.crop_padding=2",
        "data.augment.hflip=0.5",
        "data.augment.erasing=0.5",
    ]
    cfg = compose_run(overrides, tmp_path)
    counter = SyncCounter()
    module, trainer, datamodule = build_run(cfg, [counter])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(module, datamodule=datamodule)
    torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "called a synchronizing" in str(w.message)]
    assert counter.steps == 64 // steps_per_call and trainer.global_step == 64
    # one read (loss and running sum together) every 4th optimizer step, nothing in between
    assert len(syncs) <= 64 // 4, [str(w.message) for w in syncs[:5]]
