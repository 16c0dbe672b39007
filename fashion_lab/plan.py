"""Decide, then build: everything a run picks before any object is built, resolved once into
a `Plan` (the checked config, a resume's merged config, devices, precision, memory format,
steps per call, the data read and checked); `build` makes the objects from it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

from fashion_lab import build, schema, speed, trust
from fashion_lab.build import Settings
from fashion_lab.checkpoints import load_checkpoint
from fashion_lab.config import to_dict
from fashion_lab.data import Splits
from fashion_lab.errors import UserError
from fashion_lab.hardware import fastest_precision, resolve_devices
from fashion_lab.resume import match_checkpoint, resumed_config, why_finished
from fashion_lab.signatures import check_types


def _one_device(trainer: Mapping[str, Any]) -> torch.device | None:
    """The device of a run in one process on one device; None for several processes."""
    devices = trainer.get("devices", "auto")
    if isinstance(devices, list | tuple) and len(devices) == 1:
        index = int(devices[0])
    elif devices in (1, "1") or (devices == "auto" and trainer["accelerator"] == "cpu"):
        index = 0
    else:
        return None
    if trainer.get("num_nodes", 1) != 1 or trainer.get("strategy", "auto") not in (
        "auto",
        "single_device",
    ):
        return None
    return torch.device("cpu") if trainer["accelerator"] == "cpu" else torch.device("cuda", index)


def _speed_choice(cfg: DictConfig, trainer: dict[str, Any], steps: int | None) -> speed.Choice:
    """`trainer.precision`, `module.channels_last` and `module.steps_per_call` as given, or
    (null) the fastest measured for the run's network and batch size on its device. Several
    processes, which could each measure differently, take bf16 by the device's flags,
    channels-last and one step per call."""
    precision, channels_last = trainer.get("precision"), cfg.module.channels_last
    fallback = fastest_precision(trainer["accelerator"])
    device = _one_device(trainer)
    if device is None or trainer["accelerator"] not in ("cpu", "gpu"):
        return speed.Choice(
            precision or fallback,
            True if channels_last is None else channels_last,
            steps_per_call=steps or 1,
        )
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return speed.choose(
        lambda: build.network(model),
        lambda params: build.instantiate(cfg.optimizer, "optimizer")(params=params),
        network_key=json.dumps(model, sort_keys=True, default=str),
        batch_size=cfg.data.batch_size,
        device=device,
        precision=precision,
        channels_last=channels_last,
        steps_per_call=steps,
        fallback=fallback,
    )


def shipped_trainer() -> dict[str, Any]:
    """conf/trainer/default.yaml's values (not its interpolations): what an error suggests."""
    from fashion_lab.config import CONFIG_DIR

    try:
        shipped = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "trainer" / "default.yaml"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in shipped.items() if not (isinstance(v, str) and "${" in v)}


def settings(cfg: DictConfig, job_index: int | None = None) -> Settings:
    """The run's Settings (see `Settings`); sweep job `job_index` spreads over visible GPUs.

    What the config leaves null is measured (`fashion_lab.speed`); `module.steps_per_call`
    null is 1 under several processes or gradient accumulation (which refuse groups), and
    where `limit_train_batches` or `val_check_interval` count batches (they would count calls).

    Raises:
        UserError: no GPU where one is asked for; options that do not combine.
    """
    trainer = resolve_devices(OmegaConf.to_container(cfg.trainer, resolve=True), job_index)
    trainer.pop("_target_", None)
    check_types(pl.Trainer, trainer, "trainer", shipped_trainer())
    if cfg.train and trainer.get("max_epochs") == 0:
        raise UserError(
            "trainer.max_epochs=0 trains nothing (the test would score untrained weights); "
            "set it to 1 or more, or test a checkpoint with train=false ckpt_path=<run>."
        )
    steps = cfg.module.steps_per_call
    if steps is None:
        counts_batches = any(
            isinstance(trainer.get(key), int) and not isinstance(trainer.get(key), bool)
            for key in ("limit_train_batches", "val_check_interval")
        )
        plain = trainer.get("accumulate_grad_batches", 1) == 1 and not counts_batches
        steps = None if plain and _one_device(trainer) is not None else 1
    if steps is not None and steps > 1 and trainer.get("accumulate_grad_batches", 1) != 1:
        raise UserError(
            "trainer.accumulate_grad_batches does not combine with module.steps_per_call > 1; "
            "raise data.batch_size instead, or set module.steps_per_call=1."
        )
    choice = _speed_choice(cfg, trainer, steps)
    trainer["precision"] = choice.precision
    return Settings(
        trainer,
        choice.steps_per_call or 1,
        choice.channels_last,
        choice if choice.measured or choice.call_ms is not None else None,
    )


@dataclass(frozen=True)
class Start:
    """What a run's directory says before it starts: the checkpoint it continues from (None:
    from scratch), whether its record says it finished, and the overrides it was started with."""

    resume: Path | None
    finished: bool = False
    earlier_overrides: Sequence[str] = ()
    overrides: Sequence[str] = ()
    job_index: int | None = None
    sweeping: bool = False


@dataclass(frozen=True)
class Plan:
    """A run decided: `cfg` checked (a resume's merged with its checkpoint's), the derived
    `settings`, the data read and checked, and `config`, the resolved config its checkpoints
    store (with the values null picked)."""

    cfg: DictConfig
    settings: Settings
    splits: Splits
    config: dict[str, Any]
    start: Start
    resumed: Mapping[str, Any] | None = None
    """For a run that continues its checkpoint's fit: the checkpoint and what this command
    changed ({"checkpoint": ..., "changed": ...})."""


def resolve(cfg: DictConfig, start: Start) -> Plan:
    """The run's Plan: the config checked (and merged for a resume), the data read (so that a
    bad batch size is said before anything is timed), then devices and speed picks.

    Raises:
        UserError: a value out of range, data missing or damaged, no GPU, a resume that cannot
            continue.
    """
    cfg, resumed = checked_config(cfg, start)
    splits = build.datamodule(cfg).loaded()
    picked = settings(cfg, start.job_index if start.sweeping else None)
    config = to_dict(cfg)
    config["module"].update(
        steps_per_call=picked.steps_per_call, channels_last=picked.channels_last
    )
    config["trainer"]["precision"] = picked.trainer["precision"]
    return Plan(cfg, picked, splits, config, start, resumed)


def checked_config(cfg: DictConfig, start: Start) -> tuple[DictConfig, dict[str, Any] | None]:
    """The config the run uses, checked once: the checkpoint's when it resumes (with what this
    command line sets; `start.earlier_overrides` are those the run's record says it was started
    with), its ranges checked by the schema; and, for a run that continues its checkpoint's
    fit, the checkpoint and the settings this command changed.

    Raises:
        UserError: a value out of range, nothing to do, or a resume that cannot continue.
    """
    resume = start.resume
    checkpoint = load_checkpoint(resume) if resume is not None else None
    changed: dict[str, Any] = {}
    if checkpoint is not None:
        stored = build.stored_config(checkpoint, resume, trust.user_targets(cfg))
        if stored:
            overrides = list(start.overrides)
            cfg, changed = resumed_config(cfg, stored, overrides, start.earlier_overrides)
    cfg = schema.check(cfg)
    if not cfg.train and resume is None:
        raise UserError(
            "train=false tests a trained model; name its checkpoint with ckpt_path (a .ckpt "
            "file, a run directory, or last)."
        )
    if checkpoint is not None and cfg.train:
        match_checkpoint(cfg, checkpoint)
        if cfg.budget_s is not None:
            raise UserError(
                f"A run under a time budget (budget_s={cfg.budget_s:g}) cannot continue from a "
                "checkpoint: its budget counted from its first start and its learning-rate "
                "schedule followed that clock; start it again without ckpt_path."
            )
        why = why_finished(cfg, checkpoint) if start.finished else None
        if why:
            raise UserError(
                f"The run in {cfg.paths.output_dir} is finished ({why[0]}); test its best "
                f"checkpoint with `python -m fashion_lab.evaluate ckpt_path="
                f"{cfg.paths.output_dir}`, or {why[1]}."
            )
    fit = checkpoint is not None and cfg.train
    return cfg, {"checkpoint": checkpoint, "changed": changed} if fit else None
