"""A run's record on disk (results.json), its TensorBoard hparams, and its last line."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from fashion_lab.adapters import tensorboard_file_writer


def write_results(output_dir: Path, results: Mapping[str, Any], name: str = "results.json") -> Path:
    """Write results.json (or `name`) atomically: a kill or a full disk never leaves half a
    file, and an earlier record stays whole until the new one is.

    Raises:
        OSError: the file cannot be written (its earlier version is then as it was).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / name
    tmp = path.with_suffix(".json.tmp")
    try:
        tmp.write_text(json.dumps(results, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """A run directory's results.json, or None when it has none (or only a broken one)."""
    try:
        return json.loads((run_dir / "results.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def float_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (torch.Tensor, float, int))}


def flatten(config: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, with values TensorBoard's hparams accept."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


HPARAMS = (
    "model",
    "optimizer",
    "scheduler",
    "data.batch_size",
    "data.augment",
    "data.val_size",
    "module",
    "trainer.max_epochs",
    "trainer.precision",
    "seed",
)
"""The config keys shown in TensorBoard's HPARAMS tab."""


def log_hparams(trainer: pl.Trainer, config: Mapping, metrics: Mapping[str, float]) -> None:
    """Write the run's hyperparameters with its final metrics to TensorBoard's HPARAMS tab."""
    from torch.utils.tensorboard.summary import hparams

    params = {
        k: v
        for k, v in flatten(config).items()
        if k.startswith(HPARAMS) and not k.endswith(("_target_", "_partial_"))
    }
    params["trainer.precision"] = str(trainer.precision)
    if not trainer.is_global_zero:  # other processes' loggers write nothing
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = tensorboard_file_writer(logger.experiment)
            for summary in hparams(params, dict(metrics)):
                writer.add_summary(summary)
            logger.experiment.flush()


def partial_test(results: Mapping[str, Any]) -> str:
    """`on 3,000 of the 10,000 test images` for a run that tested part of the test split
    (trainer.limit_test_batches), else an empty string."""
    tested, split = results.get("test_images"), results.get("test_split_images")
    return (
        f"on {tested:,} of the {split:,} test images" if tested and split and tested < split else ""
    )


def summary(results: Mapping[str, Any], tensorboard_dir: Path | None) -> str:
    """The run's last line: its figures, where its outputs are, and how to see them."""
    parts = [f"{results['model']}:"]
    if results.get("test_acc") is not None:
        parts.append(f"test/acc {results['test_acc']:.4f}")
        if partial := partial_test(results):
            parts.append(f"({partial})")
    if results.get("val_acc_best") is not None:
        parts.append(
            f"val/acc_best {results['val_acc_best']:.4f} (epoch {results.get('best_epoch')})"
        )
    if results.get("stopped_early_at_epoch") is not None:
        parts.append(f"stopped early at epoch {results['stopped_early_at_epoch']}")
    parts.append(f"in {results['wall_time_s']:.0f} s")
    if results.get("device"):
        parts.append(f"on {results['device']} ({results.get('precision')})")
    if results.get("train_images_per_s"):
        parts.append(f"({results['train_images_per_s']:.0f} train img/s)")
    parts.append(f"| outputs: {results['output_dir']}")
    if tensorboard_dir is not None:
        parts.append(f"| tensorboard --logdir {tensorboard_dir}")
    return " ".join(parts)
