"""The training task: config -> objects -> fit -> test -> results on disk.

`python -m fashion_lab [overrides]` runs it once; `-m` runs a sweep, one directory per job.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fashion_lab import build, runlock, schema, search, stops, sweep, trust
from fashion_lab.callbacks import ConfigPrinter, FirstStep, RunRecorder, job_pruning
from fashion_lab.checkpoints import LAST, load_checkpoint, resolve_checkpoint
from fashion_lab.config import CONFIG_DIR, check_config_dir, config_tree, to_dict
from fashion_lab.errors import (
    RunInterrupted,
    UserError,
    is_rank_zero,
    log_to_file,
    no_space,
    one_sentence,
    say_error,
    user_wants_tracebacks,
)
from fashion_lab.module import AtChance, DivergenceError, no_better_than_chance
from fashion_lab.results import (
    float_metrics,
    log_hparams,
    read_results,
    reserve_room,
    summary,
    write_results,
)
from fashion_lab.resume import (
    match_checkpoint,
    resume_entry,
    resumed_config,
    stopped_early,
    sweep_job_restart,
    why_finished,
)

log = logging.getLogger(__name__)


def sweeping() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def task_overrides() -> list[str]:
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def fit_and_test(
    cfg: DictConfig, resume: Path | None, results: dict[str, Any], recorder: RunRecorder
) -> None:
    """The pipeline: objects from the checked config, fit, test; figures into `results`."""
    datamodule = build.datamodule(cfg)
    # the data read and checked (a batch larger than the split) before any speed is timed
    run = build.settings(cfg, HydraConfig.get().job.num if sweeping() else None, datamodule.setup)
    datamodule.steps_per_call = run.steps_per_call
    config = to_dict(cfg)  # stored in checkpoints, with the values null picked
    config["module"].update(steps_per_call=run.steps_per_call, channels_last=run.channels_last)
    config["trainer"]["precision"] = run.trainer["precision"]
    if run.speed is not None:
        results["speed"] = run.speed.record()
    callbacks: list[pl.Callback] = [recorder]
    tree = config_tree(cfg) if cfg.print_config and not sweeping() else None
    line = run.speed.line(f"{cfg.model_name} at batch {cfg.data.batch_size}") if run.speed else None
    if tree is not None or line:
        callbacks.append(ConfigPrinter(tree, line))
    callbacks += build.seeding(cfg.seed)
    if sweeping() and cfg.train and (pruning := job_pruning()) is not None:
        callbacks.append(pruning)
    net = build.network(cfg.model)
    first_step = FirstStep(network_files(net), task_overrides(), config)
    callbacks.append(first_step)
    module = build.module(cfg, net, run, config)
    trainer = build.trainer(cfg, run, callbacks)
    results.update(
        parameters=sum(p.numel() for p in net.parameters()),
        device=str(trainer.strategy.root_device),
        precision=str(trainer.precision),
        batch_size=cfg.data.batch_size,
        steps_per_call=run.steps_per_call,
    )
    metrics: dict[str, float] = {}
    if cfg.train:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
        except Exception as e:  # what the built objects meet first, said in a sentence
            if not first_step.watching or isinstance(e, UserError | search.Pruned) or no_space(e):
                raise
            raise UserError(first_step.explain(e)) from e  # the traceback: in the run's log
        metrics.update(float_metrics(trainer.callback_metrics))
        # the validation figures from the run's whole record, which a resume restores even
        # when it has no epoch left to validate (a run killed while testing)
        if validated := recorder.validated_epochs:
            metrics["val/acc"] = validated[-1]["val/acc"]
            metrics["val/loss"] = validated[-1]["val/loss"]
            metrics["val/acc_best"] = max(h["val/acc"] for h in validated)
        results["epochs"] = trainer.current_epoch
        images, classes = cfg.data.val_size, len(module.class_names)
        if why := no_better_than_chance(
            metrics.get("val/acc_best"), images, classes, trainer.global_step
        ):
            lr = cfg.optimizer.get("lr")
            raise AtChance(
                f"{why}: the run learned nothing; change the learning rate (this run's "
                f"optimizer.lr={lr}) or the optimizer (optimizer=adam), and check that the "
                "network's output depends on its input."
            )
        results["stopped_early_at_epoch"] = stopped_early(
            {cb.state_key: cb.state_dict() for cb in trainer.early_stopping_callbacks}
        )
        results["best_checkpoint"] = trainer.checkpoint_callback.best_model_path or None
    if cfg.test:
        best = results.get("best_checkpoint") if cfg.train else resume
        for tested in trainer.test(
            module, datamodule=datamodule, ckpt_path=best, verbose=False, weights_only=True
        ):
            metrics.update(float_metrics(tested))
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
            k.rsplit("/", 1)[-1]: v for k, v in metrics.items() if k.startswith("test/acc_class/")
        },
    )
    final = {k: metrics[k] for k in ("val/acc_best", "test/acc") if k in metrics}
    log_hparams(trainer, config, final)


def network_files(net: torch.nn.Module) -> set[str]:
    """The source files of a network's own layers (fashion_lab's or a user's, not torch's)."""
    import inspect

    files = set()
    for layer in net.modules():
        try:
            files.add(inspect.getsourcefile(type(layer)))
        except (TypeError, OSError):
            continue
    return {f for f in files if f and "/torch/" not in f.replace("\\", "/")}


def checked_config(
    cfg: DictConfig, resume: Path | None, finished: bool, earlier: Sequence[str] = ()
) -> tuple[DictConfig, dict[str, Any] | None]:
    """The config the run uses, checked once: the checkpoint's when it resumes (with what this
    command line sets), its ranges checked by the schema; and, for a resume, its entry in
    results.json's "resumes" (`resume_entry`, without the earlier record); `earlier` are the
    overrides the run's record says it was started with.

    Raises:
        UserError: a value out of range, nothing to do, or a resume that cannot continue.
    """
    checkpoint = load_checkpoint(resume) if resume is not None else None
    changed: dict[str, Any] = {}
    if checkpoint is not None:
        stored = build.stored_config(checkpoint, resume, trust.user_targets(cfg))
        if stored:
            cfg, changed = resumed_config(cfg, stored, task_overrides(), earlier)
    cfg = schema.check(cfg)
    if not cfg.train and resume is None:
        raise UserError(
            "train=false tests a trained model; name its checkpoint with ckpt_path (a .ckpt "
            "file, a run directory, or last)."
        )
    if checkpoint is not None and cfg.train:
        match_checkpoint(cfg, checkpoint)
        why = why_finished(cfg, checkpoint) if finished else None
        if why:
            raise UserError(
                f"The run in {cfg.paths.output_dir} is finished ({why[0]}); test its best "
                f"checkpoint with `python -m fashion_lab.evaluate ckpt_path="
                f"{cfg.paths.output_dir}`, or {why[1]}."
            )
    fit = checkpoint is not None and cfg.train
    return cfg, {"checkpoint": checkpoint, "changed": changed} if fit else None


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit and test one configuration; write results.json whether it completes, fails or is
    interrupted.

    Raises:
        RunInterrupted: Ctrl-C or a stop signal (`stops.STOP_SIGNALS`) stopped the run (the
            message says how to continue).
    """
    started = time.perf_counter()
    output_dir = Path(cfg.paths.output_dir)
    runlock.hold(output_dir)  # before anything is read or written (a single run: held already)
    if is_rank_zero():
        reserve_room(output_dir)  # a disk that fills later still takes the run's record
    try:
        with stops.stop_on_signals():
            return _train(cfg, started, output_dir)
    finally:
        runlock.release(output_dir)


def _train(cfg: DictConfig, started: float, output_dir: Path) -> dict[str, Any]:
    resume = resolve_checkpoint(cfg.ckpt_path, cfg.paths.log_dir)
    if resume is None and sweeping():
        resume = sweep_job_restart(output_dir)
    if (output_dir / "results.json").exists() and resume is None and not sweeping():
        raise UserError(
            f"{output_dir} already holds a run's results; run again (a new directory is made "
            "each second) or set hydra.run.dir to a new directory."
        )
    # an attempt to resume a finished run leaves its record as it was
    previous = read_results(output_dir)
    finished = (previous or {}).get("status") == "completed"
    recorder = RunRecorder()
    results: dict[str, Any] = {
        "status": "running",
        "model": cfg.model_name,
        "seed": cfg.seed,
        "overrides": task_overrides(),
        "output_dir": str(output_dir),
    }
    try:
        earlier = (previous or {}).get("overrides") or []
        cfg, resuming = checked_config(cfg, resume, finished, earlier)
        results.update(model=cfg.model_name, seed=cfg.seed)
        if resuming is not None:  # the run's earlier stops and resumes, and this one
            earlier = list((previous or {}).get("resumes") or [])
            entry = resume_entry(previous, resuming["checkpoint"], resuming["changed"])
            results["resumes"] = [*earlier, entry]
        if is_rank_zero() and not finished:
            output_dir.mkdir(parents=True, exist_ok=True)
            (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(to_dict(cfg)))
        fit_and_test(cfg, resume, results, recorder)
        results["status"] = "completed"
        return results
    except BaseException as e:
        # Lightning answers Ctrl-C (or a stop signal's Stopped) inside fit or test with
        # SystemExit(1)
        if isinstance(e, KeyboardInterrupt) or recorder.interrupted:
            stop = e if isinstance(e, KeyboardInterrupt) else recorder.interrupted
            results.update(status="interrupted", error=stops.reason(stop), signal=stops.name(stop))
            raise RunInterrupted(how_to_continue(cfg, output_dir, stop), stop) from None
        if isinstance(e, search.Pruned):
            results.update(status="pruned", error=str(e))
            raise
        if (full := no_space(e)) is not None:  # a sweep run again continues it, as interrupted
            where = full.filename or output_dir
            results.update(status="interrupted", error=f"{full.strerror}: {where}")
            raise UserError(
                f"No space left on the disk that holds {output_dir} ({full.strerror}); free "
                f"space there (or set paths.log_dir to a disk with room), then "
                f"{continue_hint(cfg, output_dir)}."
            ) from None
        status = (
            "diverged"
            if isinstance(e, DivergenceError)
            else "at_chance"
            if isinstance(e, AtChance)
            else "failed"
        )
        results.update(status=status, error=str(e) or type(e).__name__, error_type=type(e).__name__)
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
            if results.get("val_acc_best") is None:  # a run stopped in flight keeps its figures
                results["val_acc_best"] = best_epoch["val/acc"]
        unwritten = None
        if is_rank_zero():
            # a failed attempt to resume a finished run leaves the finished run's results
            failed = results["status"] != "completed"
            name = "results.failed.json" if finished and failed else "results.json"
            try:
                write_results(output_dir, results, name)
            except OSError as e:  # the earlier record, if any, is left whole
                unwritten = e
                log.error(f"The run's record, which {name} could not hold: {json.dumps(results)}")
        end_distributed()
        if unwritten is not None and results["status"] == "completed":
            raise UserError(
                f"Cannot write {output_dir / name} ({unwritten.strerror}); the run finished and "
                "its record is the line above (also in the run's log, if it had room); free "
                "space there to keep the next runs' records."
            ) from None


def end_distributed() -> None:
    """Take down distributed training's process group, which Lightning leaves up after a run:
    left to the interpreter's exit, its threads once aborted a failed run (exit -6, not 2)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def how_to_continue(cfg: DictConfig, output_dir: Path, stop: BaseException | None = None) -> str:
    """The sentence an interrupted run ends with: what stopped it (`stop`: Ctrl-C's
    KeyboardInterrupt or a signal's `stops.Stopped`), and how to go on from its last checkpoint."""
    saved = cfg.train and (output_dir / LAST).is_file()
    opening = stops.opening(stop)
    if sweeping() or saved:
        return f"{opening}; {continue_hint(cfg, output_dir)}."
    return f"{opening} before anything could be saved; run the command again."


def continue_hint(cfg: DictConfig, output_dir: Path) -> str:
    """How a stopped run goes on: from its last checkpoint when it has one."""
    saved = cfg.train and (output_dir / LAST).is_file()
    if sweeping():
        this_one = "continue this one from its last checkpoint" if saved else "run this one again"
        return (
            f"run the same sweep again with hydra.sweep.dir={HydraConfig.get().sweep.dir} to "
            f"skip its completed jobs and {this_one}"
        )
    if saved:
        return (
            "the finished epochs are saved, continue with "
            f"`python -m fashion_lab ckpt_path={output_dir}`"
        )
    return "run the command again"


def tensorboard_dir(cfg: DictConfig, output_dir: Path) -> Path | None:
    """Where `tensorboard --logdir` shows this run beside its neighbours: outputs/ holds every
    run; a run or sweep written elsewhere is shown from its own directory. None without a
    TensorBoard logger."""
    loggers = (cfg.get("logger") or {}).values()
    if not any("TensorBoard" in str((c or {}).get("_target_")) for c in loggers):
        return None
    logdir = Path(cfg.paths.log_dir)
    if output_dir.is_relative_to(logdir):
        return logdir
    return output_dir.parent if sweeping() else output_dir


TASK_STARTED = False
"""Whether Hydra got as far as the task: an error before it is the command line's or config's."""


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="config")
def run(cfg: DictConfig) -> float | None:
    """Hydra's task function: returns val/acc_best (for sweepers), records failures."""
    global TASK_STARTED
    TASK_STARTED = True
    in_sweep = sweeping()
    worker = in_sweep and sweep.in_worker()
    if worker and sweep.sweep_stopped(HydraConfig.get().sweep.dir):
        log.info(f"Not starting {cfg.paths.output_dir}: the sweep was stopped (Ctrl-C).")
        return None
    previous = read_results(Path(cfg.paths.output_dir))
    if in_sweep and previous is not None and previous.get("status") == "completed":
        log.info(f"Skipping {cfg.paths.output_dir}: completed by an earlier run of this sweep.")
        return previous.get("val_acc_best")
    if worker:  # the terminal's Ctrl-C reaches the workers too: their jobs stop as runs do
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sweep.take_stop_signals(job_starts=True)
    try:
        results = train(cfg)
    except RunInterrupted as e:
        if in_sweep and isinstance(e.stop, stops.Stopped) and e.stop.submitit_handler():
            log.warning(
                f"{stops.opening(e.stop)}; the job's progress is saved, and submitit requeues it "
                "to continue from its last checkpoint."
            )
            why = stops.requeue(e.stop)  # where submitit requeues the job, the process ends here
            say_error(f"Not requeued ({why}). {e}", log)
            return None
        if worker:  # the launching process waits for the other jobs, then says how to go on
            sweep.stop_sweep(HydraConfig.get().sweep.dir)
            log_to_file(str(e), log)
            return None
        say_error(str(e), log)
        if in_sweep and sweep.in_submitit_job():  # a cluster's job: its sweep goes on
            return None
        sys.exit(stops.exit_code(e.stop))  # 128 + the signal; in a sweep, it stops the sweep
    except UserError as e:
        if e.__cause__ is not None:  # an error said in a sentence: where it came from, for a bug
            trace = "".join(traceback.format_exception(e.__cause__))
            log_to_file(f"What the error below came from:\n{trace}", log)
        say_error(f"Error: {e}", log)
        if not in_sweep:
            sys.exit(2)
        return None
    except search.Pruned as e:
        log.info(f"Trial {HydraConfig.get().job.num} {e}.")
        return None
    except Exception as e:
        if not in_sweep:
            raise
        log.error(f"Job failed with {type(e).__name__}: {e}\n{traceback.format_exc()}")
        return None
    finally:
        if worker:  # a Ctrl-C while it waits for its next job would kill the worker
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            sweep.take_stop_signals(job_starts=False)
    if is_rank_zero():  # once, not once per process
        output_dir = Path(results["output_dir"])
        log.info(summary(results, tensorboard_dir(cfg, output_dir)))
    return results.get("val_acc_best")


LOKY_TRACKER_WARNINGS = "ignore::UserWarning:joblib.externals.loky.backend.resource_tracker"
"""The parallel launcher's helper process can warn of a "leaked semlock" after Ctrl-C, below
the line that says how to continue; nothing is lost and nothing is for the user to do."""


def quiet_launcher_helpers() -> None:
    """Have the processes started from here (the launcher's helpers) drop LOKY_TRACKER_WARNINGS."""
    earlier = os.environ.get("PYTHONWARNINGS")
    if LOKY_TRACKER_WARNINGS not in (earlier or ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, (earlier, LOKY_TRACKER_WARNINGS)))


def refusal(error: Exception) -> str:
    """The sentence for an error raised before the task started: Hydra's or OmegaConf's refusal
    of the command line or a config file, or an output directory it cannot create."""
    if (full := no_space(error)) is not None:
        return (
            f"No space left on the disk that holds {full.filename or 'the outputs'} before the "
            "run started; free space there (or set paths.log_dir to a disk with room), then run "
            "the command again."
        )
    if isinstance(error, OSError) and error.filename:
        return (
            f"Cannot write the outputs to {error.filename} ({error.strerror}); set "
            "hydra.run.dir (hydra.sweep.dir with -m) or paths.log_dir to a directory you can "
            "write to."
        )
    return one_sentence(error)


def quiet_full_disk_threads() -> None:
    """A writer thread (TensorBoard's) that meets a full disk leaves its traceback in the log
    file, not on the console: the run's own sentence says what happened and what to do."""
    import threading

    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if no_space(args.exc_value) is None:
            previous(args)
            return
        trace = "".join(traceback.format_exception(args.exc_value))
        log_to_file(f"A writer thread met a full disk:\n{trace}", log)

    threading.excepthook = hook


def main() -> None:
    """Entry point of `python -m fashion_lab` and `fashion-lab`: the one error boundary of the
    command. Hydra parses the command line and composes the config; what it refuses before the
    task starts is said in one sentence with exit 2 (HYDRA_FULL_ERROR=1 shows the traceback)."""
    from fashion_lab.logs import quiet_lightning

    full_error = user_wants_tracebacks()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra raises, and this boundary says it
    quiet_launcher_helpers()
    quiet_lightning()
    logging.raiseExceptions = False  # a log file on a full disk: no traceback per message
    quiet_full_disk_threads()
    stop: BaseException | None = None
    try:
        check_config_dir()
        with stops.stop_on_signals():
            run()
    except KeyboardInterrupt as e:  # outside a job: Hydra starting, or a launcher waiting
        interrupted, stop = True, e
    except (UserError, runlock.Refused) as e:
        say_error(f"Error: {e}")
        sys.exit(2)
    except Exception as e:
        if TASK_STARTED or full_error:
            raise
        say_error(f"Error: {refusal(e)}")
        sys.exit(2)
    else:
        interrupted = sweep.interrupted  # a parallel sweep's jobs stopped and returned
        stop = sweep.stopped_by
    if interrupted:
        again = (
            f"run the same command again with hydra.sweep.dir={sweep.sweep_dir} to skip the "
            "completed jobs and continue the others from their last checkpoints"
            if sweep.sweep_dir
            else "run the command again"
        )
        say_error(f"{stops.opening(stop)}; {again}.")
        sys.exit(stops.exit_code(stop))
    if sweep.failed_jobs:
        sys.exit(1)
