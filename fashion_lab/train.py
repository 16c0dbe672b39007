"""The training task: config -> objects -> fit -> test -> results on disk.

`python -m fashion_lab [overrides]` runs it once; `-m` runs a sweep, one directory per job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from torch import nn

from fashion_lab import sweep
from fashion_lab.callbacks import EpochSeeder, RunRecorder
from fashion_lab.checkpoints import (
    LAST,
    AtomicCheckpointIO,
    load_checkpoint,
    resolve_checkpoint,
)
from fashion_lab.config import CONFIG_DIR, config_tree, prepare_overrides, to_dict
from fashion_lab.data import FashionMNISTDataModule
from fashion_lab.errors import (
    RunInterrupted,
    UserError,
    check_types,
    command,
    is_rank_zero,
    log_to_file,
    say_error,
)
from fashion_lab.hardware import resolve_devices
from fashion_lab.models import create_model
from fashion_lab.module import LitClassifier

log = logging.getLogger(__name__)

# Lightning 2.6 calls a torch API that torch 2.13 deprecates; nothing for a user to act on.
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
# Mixed precision keeps float32 weights, so the summary's 32-bit size, which it warns about
# using, is the right one.
warnings.filterwarnings(
    "ignore", message=r"Precision .*-mixed is not supported by the model summary"
)
# A run's checkpoint folder is its own (a new run gets a new directory): one that holds files is
# a resume's, which is meant to.
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
# Lines of Lightning's with nothing in them for a user: an advertisement for a cloud service at
# every Trainer, that the configured limit_train_batches=1.0 means every batch, and that the
# scheduler's length is counted from the loader.
LIGHTNING_CHATTER = re.compile(
    r"💡 Tip|`Trainer\(\w+=1\.0\)` was configured so 100%|Loading `train_dataloader` to estimate"
)
logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
    lambda record: not LIGHTNING_CHATTER.match(str(record.msg))
)

MODULE_OPTIONS = ("channels_last", "compile")
"""Keys of `cfg.model` that configure how the network runs, not what it is."""


def instantiate(node: Any, key: str, **kwargs) -> Any:
    """`hydra.utils.instantiate` of the config at `key`, with a user's mistake surfacing as
    the UserError it is.

    Raises:
        UserError: an option of a type the object's signature excludes, or one the object
            refused (bad value, unknown argument).
    """
    try:
        target = hydra.utils.get_object(node["_target_"])
    except Exception:  # a target that does not import: instantiate says so below
        target = None
    if target is not None:
        options = OmegaConf.to_container(node, resolve=True)
        # a partial's nulls are filled in when it is called (the scheduler's length)
        partial = options.get("_partial_", False)
        check_types(
            target,
            {k: v for k, v in options.items() if not (partial and v is None)},
            key,
        )
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        target = node.get("_target_", "?") if hasattr(node, "get") else "?"
        raise UserError(
            f"Cannot build {target} ({cause}); fix its options in the config."
        ) from None


CPU_STEPS_PER_CALL = 4
"""`module.steps_per_call` that null picks on a CPU: the fastest measured there (RESULTS.md)."""


def steps_per_call(cfg: DictConfig) -> int:
    """Optimizer steps per Lightning training step (`module.steps_per_call`).

    null picks the fastest measured for the device where grouping changes nothing a user
    counts: CPU_STEPS_PER_CALL for one CPU process; 1 on GPUs (not measured yet), under
    several processes or gradient accumulation (which refuse groups), and where
    `limit_train_batches` or `val_check_interval` count batches (they would count calls).

    Raises:
        UserError: a value that is not a positive integer or null.
    """
    value = (cfg.get("module") or {}).get("steps_per_call", 1)
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(
                f"module.steps_per_call must be a positive integer, or null for the fastest on "
                f"the device, got {value!r}; fix the override."
            )
        return value
    trainer = resolve_devices(OmegaConf.to_container(cfg.trainer, resolve=True))
    one_cpu_process = (
        trainer["accelerator"] == "cpu"
        and trainer.get("devices", "auto") in (1, "1", "auto")
        and trainer.get("num_nodes", 1) == 1
        and trainer.get("strategy", "auto") in ("auto", "single_device")
    )
    counts_batches = any(
        isinstance(trainer.get(key), int) and not isinstance(trainer.get(key), bool)
        for key in ("limit_train_batches", "val_check_interval")
    )
    if one_cpu_process and trainer.get("accumulate_grad_batches", 1) == 1 and not counts_batches:
        return CPU_STEPS_PER_CALL
    return 1


def match_checkpoint(cfg: DictConfig, checkpoint: Mapping[str, Any]) -> None:
    """A resumed fit trains the checkpoint's network, its batches grouped as its run's were.

    The network options must be the checkpoint's (its weights fit no other). Lightning's saved
    loop state counts training calls, and under `steps_per_call` 1 (automatic optimization)
    it counts optimizer steps elsewhere than above 1: resumed with another value, a run would
    redo part of an epoch or restart its step count. null takes the checkpoint's value (a GPU
    run resumed on a CPU keeps the GPU's).

    Raises:
        UserError: the run sets other network options, or another `steps_per_call`.
    """
    stored = checkpoint.get("fashion_lab_config") or {}
    trained_net = network_options(stored.get("model") or {})
    net = network_options(OmegaConf.to_container(cfg.model, resolve=True))
    if trained_net and net != trained_net:
        keys = [
            k for k in sorted(trained_net.keys() | net.keys()) if trained_net.get(k) != net.get(k)
        ]
        if "name" in keys:
            keys = ["name"]
        names = ["model" if k == "name" else f"model.{k}" for k in keys]
        before = ", ".join(f"{n}={trained_net.get(k)}" for n, k in zip(names, keys, strict=True))
        after = ", ".join(f"{n}={net.get(k)}" for n, k in zip(names, keys, strict=True))
        raise UserError(
            f"The checkpoint was trained with {before} and this run sets {after}; resume "
            f"without changing the model, or start a new run (no ckpt_path)."
        )
    trained = (stored.get("module") or {}).get("steps_per_call") or 1
    given = cfg.module.get("steps_per_call")
    if given is None:
        cfg.module.steps_per_call = trained
    elif given != trained:
        raise UserError(
            f"The checkpoint was trained with module.steps_per_call={trained} and this run "
            f"sets {given}; resume with module.steps_per_call={trained} (or null)."
        )


def why_finished(cfg: DictConfig, checkpoint: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a fit resumed from `checkpoint` (saved at an epoch's end) would train nothing, and
    how to train more; None when it has epochs left."""
    max_epochs = cfg.trainer.get("max_epochs")
    max_steps = cfg.trainer.get("max_steps", -1)
    stopped = stopped_early(checkpoint.get("callbacks") or {})
    if stopped is not None:
        return f"early stopping ended it at epoch {stopped}", "start a new run to train longer"
    if max_epochs not in (None, -1) and checkpoint.get("epoch", -1) + 1 >= max_epochs:
        return f"trainer.max_epochs={max_epochs}", "raise trainer.max_epochs to train it further"
    if max_steps not in (None, -1) and checkpoint.get("global_step", 0) >= max_steps:
        return f"trainer.max_steps={max_steps}", "raise trainer.max_steps to train it further"
    return None


def stopped_early(callback_states: Mapping[str, Any]) -> int | None:
    """The epoch at which an EarlyStopping callback stopped the run, from the callbacks' states
    (a checkpoint's, or `{cb.state_key: cb.state_dict()}`), or None."""
    for key, state in callback_states.items():
        if key.startswith("EarlyStopping") and state.get("stopped_epoch", 0) > 0:
            return state["stopped_epoch"]
    return None


MAX_SEED = 2**32 - 1
"""The largest seed every generator accepts (numpy's bound)."""


def seed_run(cfg: DictConfig) -> list[pl.Callback]:
    """Seed everything from `cfg.seed` (null: leave unseeded); the callbacks that keep it so.

    Raises:
        UserError: a seed that is not an integer from 0 to MAX_SEED.
    """
    if cfg.seed is None:
        return []
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= MAX_SEED:
        raise UserError(
            f"seed must be an integer from 0 to {MAX_SEED}, or null for an unseeded run, got "
            f"{cfg.seed!r}; e.g. seed=0."
        )
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    return [EpochSeeder(cfg.seed)]


def build_datamodule(cfg: DictConfig) -> FashionMNISTDataModule:
    """The DataModule described by `cfg.data`, serving `steps_per_call` batches at once."""
    return instantiate(cfg.data, "data", _convert_="all", steps_per_call=steps_per_call(cfg))


def network_options(model: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of a `model` config that define the network (name and builder options)."""
    return {k: v for k, v in model.items() if k not in MODULE_OPTIONS}


def build_model(cfg: DictConfig) -> nn.Module:
    """The network `cfg.model.name` with the rest of `cfg.model` as its options."""
    return create_model(**network_options(OmegaConf.to_container(cfg.model, resolve=True)))


def build_module(cfg: DictConfig, net: nn.Module) -> LitClassifier:
    """The LightningModule around `net`, with the configured optimizer and scheduler."""
    lr = cfg.optimizer.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise UserError(
            f"optimizer.lr must be a positive number, got {lr!r}; e.g. optimizer.lr=0.001."
        )
    for key in MODULE_OPTIONS:
        if not isinstance(cfg.model.get(key, False), bool):
            raise UserError(
                f"model.{key} must be true or false, got {cfg.model.get(key)!r}; fix the override."
            )
    smoothing = cfg.module.label_smoothing
    number = isinstance(smoothing, (int, float)) and not isinstance(smoothing, bool)
    if not number or not 0 <= smoothing <= 1:
        raise UserError(
            f"module.label_smoothing must be a number from 0 to 1, got {smoothing!r}; e.g. "
            "module.label_smoothing=0.1."
        )
    samples = cfg.module.num_prediction_samples
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise UserError(
            f"module.num_prediction_samples is the number of test images in the prediction "
            f"grid, an integer from 0, got {samples!r}; fix the override."
        )
    scheduler = instantiate(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    if cfg.model.get("compile"):
        net = torch.compile(net)
    steps = steps_per_call(cfg)
    config = to_dict(cfg)  # stored in checkpoints, with the value null picked
    config["module"]["steps_per_call"] = steps
    return LitClassifier(
        net,
        optimizer=instantiate(cfg.optimizer, "optimizer"),
        scheduler=scheduler,
        label_smoothing=cfg.module.label_smoothing,
        channels_last=cfg.model.get("channels_last", False),
        num_prediction_samples=cfg.module.num_prediction_samples,
        steps_per_call=steps,
        gradient_clip_val=cfg.trainer.get("gradient_clip_val"),
        gradient_clip_algorithm=cfg.trainer.get("gradient_clip_algorithm"),
        config=config,
    )


def _instantiate_all(group: Mapping | None, key: str) -> list[Any]:
    return [
        instantiate(c, f"{key}.{name}")
        for name, c in (group or {}).items()
        if c and "_target_" in c
    ]


def build_trainer(cfg: DictConfig, callbacks: Iterable[pl.Callback] = ()) -> pl.Trainer:
    """The Trainer from `cfg.trainer`, `cfg.callbacks`, `cfg.logger`: the one place that builds it.

    Raises:
        UserError: a GPU was asked for and none (or too few) are present.
    """
    job_index = HydraConfig.get().job.num if _sweeping() else None
    options = resolve_devices(OmegaConf.to_container(cfg.trainer, resolve=True), job_index)
    options.pop("_target_", None)
    check_types(pl.Trainer, options, "trainer")
    if steps_per_call(cfg) > 1:
        # the module steps its optimizer itself (manual optimization), clipping included
        options.pop("gradient_clip_val", None)
        options.pop("gradient_clip_algorithm", None)
        if options.get("accumulate_grad_batches", 1) != 1:
            raise UserError(
                "trainer.accumulate_grad_batches does not combine with module.steps_per_call > 1; "
                "raise data.batch_size instead, or set module.steps_per_call=1."
            )
    all_callbacks = _instantiate_all(cfg.get("callbacks"), "callbacks") + list(callbacks)
    if not options.get("enable_progress_bar", True):
        all_callbacks = [c for c in all_callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    loggers = _instantiate_all(cfg.get("logger"), "logger")
    try:
        return pl.Trainer(
            **options,
            callbacks=all_callbacks,
            logger=loggers or False,
            plugins=[AtomicCheckpointIO()],
        )
    except TypeError as e:
        if "unexpected keyword argument" in str(e):
            raise UserError(
                f"The trainer config has an option Lightning does not know ({e}); remove it."
            ) from None
        raise UserError(f"Lightning refused the trainer config ({e}); fix the override.") from None
    except (MisconfigurationException, ValueError, ImportError) as e:
        # ImportError: an accelerator or strategy whose package is missing (tpu: torch_xla)
        raise UserError(f"Lightning refused the trainer config ({e}); fix the override.") from None


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


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


def log_hparams(trainer: pl.Trainer, cfg: DictConfig, metrics: Mapping[str, float]) -> None:
    """Write the run's hyperparameters with its final metrics to TensorBoard's HPARAMS tab."""
    from torch.utils.tensorboard.summary import hparams

    keys = (
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
    params = {
        k: v
        for k, v in flatten(to_dict(cfg)).items()
        if k.startswith(keys) and not k.endswith(("_target_", "_partial_"))
    }
    params["trainer.precision"] = str(trainer.precision)
    if not trainer.is_global_zero:  # other processes' loggers write nothing
        return
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            writer = logger.experiment._get_file_writer()
            for summary in hparams(params, dict(metrics)):
                writer.add_summary(summary)
            logger.experiment.flush()


def write_results(output_dir: Path, results: Mapping[str, Any], name: str = "results.json") -> Path:
    """Write results.json (or `name`) atomically (a kill never leaves half a file)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def _float_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (torch.Tensor, float, int))}


def _overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def read_results(run_dir: Path) -> dict[str, Any] | None:
    """A run directory's results.json, or None when it has none (or only a broken one)."""
    try:
        return json.loads((run_dir / "results.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _sweeping() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _sweep_job_restart(output_dir: Path) -> Path | None:
    """How a sweep job re-run in its old directory restarts.

    A job that was killed in flight (no results.json) or interrupted continues from its last
    checkpoint; a job that failed starts again from scratch, its old checkpoints removed.
    """
    if not _sweeping():
        return None
    last = output_dir / LAST
    previous = read_results(output_dir)
    if previous is not None and previous.get("status") == "failed":
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
        return None
    return last if last.is_file() else None


def how_to_continue(cfg: DictConfig, output_dir: Path) -> str:
    """The sentence an interrupted run ends with: how to go on from its last checkpoint."""
    saved = cfg.train and (output_dir / LAST).is_file()
    if _sweeping():
        this_one = "continue this one from its last checkpoint" if saved else "run this one again"
        return (
            f"Interrupted; run the same sweep again with hydra.sweep.dir="
            f"{HydraConfig.get().sweep.dir} to skip its completed jobs and {this_one}."
        )
    if saved:
        return (
            f"Interrupted; the finished epochs are saved, continue with "
            f"`python -m fashion_lab ckpt_path={output_dir}`."
        )
    return "Interrupted before anything could be saved; run the command again."


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one configuration; write results.json whether it completes, fails or is
    interrupted.

    Raises:
        RunInterrupted: the user pressed Ctrl-C (the message says how to continue).
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    results: dict[str, Any] = {
        "status": "running",
        "model": cfg.model.name,
        "seed": cfg.seed,
        "overrides": _overrides(),
        "output_dir": str(output_dir),
    }
    recorder = RunRecorder()
    resume = resolve_checkpoint(cfg.ckpt_path, cfg.paths.log_dir) or _sweep_job_restart(output_dir)
    if (output_dir / "results.json").exists() and resume is None and not _sweeping():
        raise UserError(
            f"{output_dir} already holds a run's results; run again (a new directory is made "
            "each second) or set hydra.run.dir to a new directory."
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    # an attempt to resume a finished run leaves its record as it was
    finished = (read_results(output_dir) or {}).get("status") == "completed"
    if is_rank_zero() and not finished:
        (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(to_dict(cfg)))
    callbacks: list[pl.Callback] = [recorder]
    try:
        check_types(pl.Trainer, OmegaConf.to_container(cfg.trainer, resolve=True), "trainer")
        if not cfg.train and not cfg.test:
            raise UserError(
                "train=false and test=false leave nothing to do; drop test=false to test a "
                "checkpoint, or train=false to train."
            )
        if cfg.train and cfg.trainer.get("max_epochs") == 0:
            raise UserError(
                "trainer.max_epochs=0 trains nothing (the test would score untrained weights); "
                "set it to 1 or more, or test a checkpoint with train=false ckpt_path=<run>."
            )
        if not cfg.train and resume is None:
            raise UserError(
                "train=false tests a trained model; name its checkpoint with ckpt_path (a .ckpt "
                "file, a run directory, or last)."
            )
        if resume is not None and cfg.train:
            checkpoint = load_checkpoint(resume)
            match_checkpoint(cfg, checkpoint)
            why = why_finished(cfg, checkpoint) if finished else None
            if why:
                raise UserError(
                    f"The run in {output_dir} is finished ({why[0]}); test its best checkpoint "
                    f"with `python -m fashion_lab.evaluate ckpt_path={output_dir}`, or {why[1]}."
                )
        callbacks += seed_run(cfg)
        datamodule = build_datamodule(cfg)
        net = build_model(cfg)
        results["parameters"] = count_parameters(net)
        module = build_module(cfg, net)
        trainer = build_trainer(cfg, callbacks)
        results.update(
            device=str(trainer.strategy.root_device),
            precision=str(trainer.precision),
            batch_size=cfg.data.batch_size,
            steps_per_call=steps_per_call(cfg),
        )
        metrics: dict[str, float] = {}
        if cfg.train:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
            metrics.update(_float_metrics(trainer.callback_metrics))
            # the validation figures from the run's whole record, which a resume restores even
            # when it has no epoch left to validate (a run killed while testing)
            validated = recorder.validated_epochs
            if validated:
                metrics.update(
                    {
                        "val/acc": validated[-1]["val/acc"],
                        "val/loss": validated[-1]["val/loss"],
                        "val/acc_best": max(h["val/acc"] for h in validated),
                    }
                )
            results["epochs"] = trainer.current_epoch
            results["stopped_early_at_epoch"] = stopped_early(
                {cb.state_key: cb.state_dict() for cb in trainer.early_stopping_callbacks}
            )
            best = getattr(trainer.checkpoint_callback, "best_model_path", "")
            results["best_checkpoint"] = best or None
        if cfg.test:
            tested_all = trainer.test(
                module,
                datamodule=datamodule,
                ckpt_path=results.get("best_checkpoint") if cfg.train else resume,
                verbose=False,
                weights_only=True,
            )
            for tested in tested_all:
                metrics.update(_float_metrics(tested))
            # fewer than the whole test split with trainer.limit_test_batches: said with the figure
            results["test_images"] = int(module.confusion["test"].sum())
            results["test_split_images"] = len(datamodule.split("test")[1])
        results.update(
            val_acc=metrics.get("val/acc"),
            val_acc_best=metrics.get("val/acc_best"),
            val_loss=metrics.get("val/loss"),
            test_acc=metrics.get("test/acc"),
            test_loss=metrics.get("test/loss"),
            test_acc_per_class={
                k.rsplit("/", 1)[-1]: v
                for k, v in metrics.items()
                if k.startswith("test/acc_class/")
            },
        )
        log_hparams(
            trainer, cfg, {k: metrics[k] for k in ("val/acc_best", "test/acc") if k in metrics}
        )
        results["status"] = "completed"
        return results
    except BaseException as e:
        # Lightning answers Ctrl-C inside fit or test with SystemExit(1)
        if isinstance(e, KeyboardInterrupt) or recorder.interrupted:
            results.update(status="interrupted", error="stopped by the user (Ctrl-C)")
            raise RunInterrupted(how_to_continue(cfg, output_dir)) from None
        results.update(
            status="failed", error=str(e) or type(e).__name__, error_type=type(e).__name__
        )
        raise
    finally:
        speed = recorder.images_per_second  # None when no batch was trained (train=false)
        results.update(
            finished_at=time.time(),
            wall_time_s=round(time.perf_counter() - started, 2),
            # None, not 0, for a run that trained nothing: compare skips them
            train_time_s=round(recorder.train_seconds, 2) if speed else None,
            train_images_per_s=round(speed, 1) if speed else None,
            history=recorder.history,
        )
        if recorder.validated_epochs:
            best_epoch = max(recorder.validated_epochs, key=lambda h: h["val/acc"])
            results["best_epoch"] = best_epoch["epoch"]
        if is_rank_zero():
            # a failed attempt to resume a finished run leaves the finished run's results
            failed = results["status"] != "completed"
            write_results(
                output_dir,
                results,
                "results.failed.json" if finished and failed else "results.json",
            )
        end_distributed()


def end_distributed() -> None:
    """Take down distributed training's process group, which Lightning leaves up after a run:
    left to the interpreter's exit, its threads once aborted a failed run (exit -6, not 2)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def partial_test(results: Mapping[str, Any]) -> str:
    """`on 3,000 of the 10,000 test images` for a run that tested part of the test split
    (trainer.limit_test_batches), else an empty string."""
    tested, split = results.get("test_images"), results.get("test_split_images")
    return (
        f"on {tested:,} of the {split:,} test images" if tested and split and tested < split else ""
    )


def _summary(results: Mapping[str, Any], cfg: DictConfig) -> str:
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
    if results.get("train_images_per_s"):
        parts.append(f"({results['train_images_per_s']:.0f} train img/s)")
    parts.append(f"| outputs: {results['output_dir']}")
    loggers = (cfg.get("logger") or {}).values()
    if any("TensorBoard" in str((c or {}).get("_target_")) for c in loggers):
        # outputs/ holds every run; a run or sweep written elsewhere (hydra.run.dir,
        # hydra.sweep.dir) is shown from its own directory
        logdir, output_dir = Path(cfg.paths.log_dir), Path(results["output_dir"])
        if not output_dir.is_relative_to(logdir):
            logdir = output_dir.parent if _sweeping() else output_dir
        parts.append(f"| tensorboard --logdir {logdir}")
    return " ".join(parts)


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def run(cfg: DictConfig) -> float | None:
    """Hydra's task function: returns val/acc_best (for sweepers), records failures."""
    sweeping = _sweeping()
    worker = sweeping and sweep.in_worker()
    if worker and sweep.sweep_stopped(HydraConfig.get().sweep.dir):
        log.info(f"Not starting {cfg.paths.output_dir}: the sweep was stopped (Ctrl-C).")
        return None
    previous = read_results(Path(cfg.paths.output_dir))
    if sweeping and previous is not None and previous.get("status") == "completed":
        log.info(f"Skipping {cfg.paths.output_dir}: completed by an earlier run of this sweep.")
        return previous.get("val_acc_best")
    if cfg.get("print_config") and not sweeping:
        from rich.console import Console

        Console(stderr=True).print(config_tree(cfg))
    if worker:  # the terminal's Ctrl-C reaches the workers too: their jobs stop as runs do
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        results = train(cfg)
    except RunInterrupted as e:
        if worker:  # the launching process waits for the other jobs, then says how to go on
            sweep.stop_sweep(HydraConfig.get().sweep.dir)
            log_to_file(str(e), log)
            return None
        say_error(str(e), log)
        sys.exit(130)  # the shell's code for Ctrl-C; in a sweep, it stops the sweep
    except UserError as e:
        say_error(f"Error: {e}", log)
        if not sweeping:
            sys.exit(2)
        return None
    except Exception as e:
        if not sweeping:
            raise
        log.error(f"Job failed with {type(e).__name__}: {e}\n{traceback.format_exc()}")
        return None
    finally:
        if worker:  # a Ctrl-C while it waits for its next job would kill the worker
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    if is_rank_zero():  # once, not once per process
        log.info(_summary(results, cfg))
    return results.get("val_acc_best")


LOKY_TRACKER_WARNINGS = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"
"""The parallel launcher's helper process can warn of a "leaked semlock" after Ctrl-C, below
the line that says how to continue; nothing is lost and nothing is for the user to do."""


def quiet_launcher_helpers() -> None:
    """Have the processes started from here (the launcher's helpers) drop LOKY_TRACKER_WARNINGS."""
    earlier = os.environ.get("PYTHONWARNINGS")
    if LOKY_TRACKER_WARNINGS not in (earlier or ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (earlier, LOKY_TRACKER_WARNINGS)))


@command
def main() -> None:
    """Entry point of `python -m fashion_lab` and `fashion-lab`: exits non-zero if a job failed."""
    sys.argv = [sys.argv[0], *prepare_overrides(sys.argv[1:])]
    quiet_launcher_helpers()
    try:
        run()
    except KeyboardInterrupt:  # outside a job: Hydra starting, or a launcher waiting on its jobs
        interrupted = True
    else:
        interrupted = sweep.interrupted  # a parallel sweep's jobs stopped and returned
    if interrupted:
        again = (
            f"run the same command again with hydra.sweep.dir={sweep.sweep_dir} to skip the "
            "completed jobs and continue the others from their last checkpoints"
            if sweep.sweep_dir
            else "run the command again"
        )
        say_error(f"Interrupted; {again}.")
        sys.exit(130)
    if sweep.failed_jobs:
        sys.exit(1)
