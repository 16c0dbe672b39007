"""A run's record on disk (results.json), its TensorBoard hparams, and its last line."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger

from fashion_lab.adapters import tensorboard_file_writer

log = logging.getLogger(__name__)

STATUSES = ("running", "completed", "failed", "interrupted", "pruned", "diverged", "at_chance")
"""How a run ended (running: it has not, or was killed). `diverged` and `at_chance` are the
runs that trained to the end of what they could but learned nothing worth ranking."""

UNHEALTHY = ("diverged", "at_chance")

NUMBER, INTEGER, TEXT = "a finite number", "an integer", "a string"
_OPTIONAL = object()

RECORD: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        # key: the kinds its value may be ("null" allows None); status is the one key required
        "status": ("status",),
        "model": (TEXT, "null"),
        "seed": (INTEGER, "null"),
        "overrides": ("list of strings",),
        "output_dir": (TEXT,),
        "error": (TEXT, "null"),
        "error_type": (TEXT, "null"),
        "signal": (TEXT, "null"),
        "resumes": ("list of objects",),
        "speed": ("object", "null"),
        "parameters": (INTEGER, "null"),
        "macs_per_image": (INTEGER, "null"),
        "device": (TEXT, "null"),
        "precision": (TEXT, "null"),
        "batch_size": (INTEGER, "null"),
        "steps_per_call": (INTEGER, "null"),
        "epochs": (INTEGER, "null"),
        "stopped_early_at_epoch": (INTEGER, "null"),
        "best_checkpoint": (TEXT, "null"),
        "best_epoch": (INTEGER, "null"),
        "test_images": (INTEGER, "null"),
        "test_split_images": (INTEGER, "null"),
        "val_acc": (NUMBER, "null"),
        "val_acc_best": (NUMBER, "null"),
        "val_loss": (NUMBER, "null"),
        "test_acc": (NUMBER, "null"),
        "test_loss": (NUMBER, "null"),
        "test_acc_per_class": ("object of numbers",),
        "finished_at": (NUMBER, "null"),
        "wall_time_s": (NUMBER, "null"),
        "elapsed_s": (NUMBER, "null"),
        "train_time_s": (NUMBER, "null"),
        "train_images_per_s": (NUMBER, "null"),
        "history": ("list of epochs",),
        "time_to_val_acc_s": ("object of numbers",),
        "budget_s": (NUMBER, "null"),
        "budget_ran_out": ("bool", "null"),
    }
)
"""results.json's description: what the run writes, and what compare and a resume accept.
Figures are finite or null: a non-finite one is written as null (the error says what went
wrong). Keys it does not name are left to their readers."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fits(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "status":
        return value in STATUSES
    if kind == NUMBER:
        return _is_number(value)
    if kind == INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == TEXT:
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "list of strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "list of objects":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if kind == "object of numbers":
        return isinstance(value, dict) and all(_is_number(v) for v in value.values())
    if kind == "list of epochs":
        return isinstance(value, list) and all(
            isinstance(h, dict) and all(v is None or _is_number(v) for v in h.values())
            for h in value
        )
    raise ValueError(kind)


def check_record(record: Any) -> str | None:
    """Why `record` (a parsed results.json) does not fit `RECORD`, or None when it does."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if "status" not in record:
        return "no status"
    for key, kinds in RECORD.items():
        if key in record and not any(_fits(record[key], k) for k in kinds):
            value = repr(record[key])
            value = value if len(value) <= 40 else value[:37] + "..."
            allowed = " or ".join(
                f"one of {', '.join(STATUSES)}" if k == "status" else k for k in kinds
            )
            return f"{key} is {value}, not {allowed}"
    return None


def finite(value: Any) -> Any:
    """`value` with every non-finite float (in mappings and lists too) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


ROOM = ".record_room"
ROOM_BYTES = 256 * 1024
"""Room a run keeps beside its record from its start (`reserve_room`), given back to write the
record: a disk that fills during the run still takes how the run ended (a 1000-epoch history
is about 150 KB)."""


def reserve_room(output_dir: Path) -> None:
    """Keep ROOM_BYTES of the disk for the run's record (nothing, if the disk is full already)."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with open(output_dir / ROOM, "wb") as f:
            f.write(bytes(ROOM_BYTES))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        (output_dir / ROOM).unlink(missing_ok=True)


def write_results(output_dir: Path, results: Mapping[str, Any], name: str = "results.json") -> Path:
    """Write results.json (or `name`) atomically: a kill or a full disk never leaves half a
    file, and an earlier record stays whole until the new one is. The room `reserve_room` kept
    is given back first.

    Raises:
        OSError: the file cannot be written (its earlier version is then as it was).
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / name
    tmp = path.with_suffix(".json.tmp")
    results = finite(results)
    if why := check_record(results):  # a bug of fashion_lab's: the record is kept all the same
        log.error(f"{path} does not fit its description ({why}); please report it.")
    (output_dir / ROOM).unlink(missing_ok=True)
    try:
        tmp.write_text(json.dumps(results, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return path


MAX_RECORD_BYTES = 16 * 2**20
"""A results.json larger than this is not one a run wrote (its history grows ~200 B an epoch)."""


def read_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A results.json that fits `RECORD`, or None and why not (missing, too large, not JSON,
    not of the description)."""
    try:
        size = path.stat().st_size
        if size > MAX_RECORD_BYTES:
            return None, f"{size:,} bytes, more than a run's record ever holds"
        record = json.loads(path.read_bytes())
    except OSError as e:
        return None, e.strerror or str(e)
    except (ValueError, RecursionError) as e:  # not JSON, not UTF-8, or nested beyond reason
        return None, f"not JSON: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    why = check_record(record)
    return (None, why) if why else (record, None)


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """A run directory's results.json, or None when it has none that fits `RECORD`."""
    return read_record(run_dir / "results.json")[0]


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
