"""A run's life around its pipeline, in one object: `RunRecord(cfg).live(pipeline)` is entered
once and left once, the same way by a single run, a sweep job and a resumed run.

It owns the run directory's lock, the stop signals, the room kept for the record, where the run
starts from (a checkpoint, a sweep's earlier attempt), the status, results.json and the last
line. The pipeline (`fashion_lab.train.pipeline`) only plans, builds, fits and tests.
"""

from __future__ import annotations

import json
import logging
import signal
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from fashion_lab import search, stops, sweep
from fashion_lab.budget import since_start
from fashion_lab.callbacks import RunRecorder
from fashion_lab.checkpoints import LAST, resolve_checkpoint
from fashion_lab.errors import RunInterrupted, UserError, no_space
from fashion_lab.logs import is_rank_zero, log_to_file, say_error
from fashion_lab.module import AtChance, DivergenceError
from fashion_lab.plan import Plan, Start
from fashion_lab.results import read_results, reserve_room, summary, write_results
from fashion_lab.resume import resume_entry, sweep_job_restart
from fashion_lab.runlock import DirectoryLock

log = logging.getLogger("fashion_lab.train")


@dataclass(frozen=True)
class Job:
    """Where a run runs: alone, or as job `index` of the sweep in `sweep_dir` (in a worker
    process of a parallel launcher, or a submitit job); `overrides`: its command line's."""

    sweeping: bool = False
    worker: bool = False
    index: int | None = None
    sweep_dir: str | None = None
    overrides: tuple[str, ...] = ()

    @classmethod
    def current(cls) -> Job:
        """This process's job, from Hydra's config (a run outside Hydra: alone, no overrides)."""
        if not HydraConfig.initialized():
            return cls()
        hydra_cfg = HydraConfig.get()
        overrides = tuple(hydra_cfg.overrides.task)
        if hydra_cfg.mode != RunMode.MULTIRUN:
            return cls(overrides=overrides)
        sweep_dir = str(hydra_cfg.sweep.dir)
        return cls(True, sweep.in_worker(), hydra_cfg.job.num, sweep_dir, overrides)


STATUS_OF = ((DivergenceError, "diverged"), (AtChance, "at_chance"))
"""The status of a run that ended in one of these errors (any other error: failed)."""


class RunRecord:
    """One run's life: `live(pipeline)` takes the directory, finds where the run starts from,
    runs `pipeline(self)` under the stop signals, and writes results.json however it ends.

    The pipeline reads `start` (where it starts from), `recorder` (the callback that measures
    the fit) and `results` (the record it adds its figures to), and calls `planned`.
    """

    def __init__(self, cfg: DictConfig, started: float | None = None) -> None:
        self.cfg = cfg
        self.output_dir = Path(cfg.paths.output_dir)
        self.job = Job.current()
        # the run's clock (time to accuracy, budget_s): `started`, else its process's start (a
        # sweep job's: the job's start)
        if started is None and self.job.sweeping:
            started = time.time()
        self.recorder = RunRecorder(started=started)
        self.results: dict[str, Any] = {
            "status": "running",
            "model": cfg.model_name,
            "seed": cfg.seed,
            "overrides": list(self.job.overrides),
            "output_dir": str(self.output_dir),
        }
        self.previous = read_results(self.output_dir)
        self.finished = (self.previous or {}).get("status") == "completed"
        self.start: Start | None = None

    def live(self, pipeline: Callable[[RunRecord], None]) -> dict[str, Any] | None:
        """The run's one entry and one exit: its record, or None for a sweep job that did not
        run (its sweep was stopped, or it completed earlier) or that ended in an error, said.

        Raises:
            UserError, RunInterrupted: outside a sweep (and a sweep run in this process, when
                interrupted): `train.main` says them; any other error of a single run is a bug.
        """
        if not self._due():
            return None
        started = time.perf_counter()
        try:
            with ExitStack() as held:
                self._hold(held)
                self.start = self._start()
                self._run(pipeline, started)
        except BaseException as e:
            return self._said(e)
        if is_rank_zero():  # once, not once per process
            log.info(summary(self.results, self.tensorboard_dir()))
        return self.results

    @property
    def objective(self) -> float | None:
        """What a sweeper optimizes: the best validation accuracy, None where there is none."""
        return self.results.get("val_acc_best")

    def planned(self, plan: Plan) -> None:
        """The plan's checked config into config.yaml, and a resume's entry into the record."""
        self.results.update(model=plan.cfg.model_name, seed=plan.cfg.seed)
        if plan.resumed is not None:  # the run's earlier stops and resumes, and this one
            earlier = list((self.previous or {}).get("resumes") or [])
            entry = resume_entry(self.previous, **plan.resumed)
            self.results["resumes"] = [*earlier, entry]
        if plan.settings.speed is not None:
            self.results["speed"] = plan.settings.speed.record()
        if is_rank_zero() and not self.finished:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(OmegaConf.to_yaml(plan.config))

    # the parts of `live`, in order

    def _due(self) -> bool:
        """Whether a sweep job runs: not once its sweep was stopped, nor when an earlier run of
        the sweep completed it (its figure is then the sweeper's)."""
        if not self.job.sweeping:
            return True
        if self.job.worker and sweep.sweep_stopped(self.job.sweep_dir):
            log.info(f"Not starting {self.output_dir}: the sweep was stopped (Ctrl-C).")
            self.results = {}
            return False
        if self.finished:
            log.info(f"Skipping {self.output_dir}: completed by an earlier run of this sweep.")
            self.results = dict(self.previous)
            return False
        return True

    def _hold(self, held: ExitStack) -> None:
        """The directory's lock, room for the record, and the stop signals, for the run's life."""
        if self.job.worker:  # the terminal's Ctrl-C reaches the workers too: jobs stop as runs
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sweep.take_stop_signals(job_starts=True)
            held.callback(sweep.between_jobs)
        held.callback(DirectoryLock(self.output_dir).take().release)  # before anything is read
        if is_rank_zero():
            reserve_room(self.output_dir)  # a disk that fills later still takes the record
        held.enter_context(stops.stop_on_signals())

    def _start(self) -> Start:
        """Where the run starts from: `ckpt_path`, or a sweep job's own last checkpoint.

        Raises:
            UserError: a checkpoint that cannot be found, or a new run in a finished one's place.
        """
        resume = resolve_checkpoint(self.cfg.ckpt_path, self.cfg.paths.log_dir)
        if resume is None and self.job.sweeping:
            resume = sweep_job_restart(self.output_dir)
        if (self.output_dir / "results.json").exists() and resume is None and not self.job.sweeping:
            raise UserError(
                f"{self.output_dir} already holds a run's results; run again (a new directory is "
                "made each second) or set hydra.run.dir to a new directory."
            )
        earlier = (self.previous or {}).get("overrides") or []
        job = self.job
        if not earlier and job.sweeping and resume is not None:
            # killed before its record: its directory is named after its overrides, these
            earlier = list(job.overrides)
        return Start(resume, self.finished, earlier, job.overrides, job.index, job.sweeping)

    def _run(self, pipeline: Callable[[RunRecord], None], started: float) -> None:
        """`pipeline(self)`, its outcome as the record's status; the record written however it
        ends (an attempt to resume a finished run leaves that run's record as it was)."""
        try:
            pipeline(self)
            self.results["status"] = "completed"
        except BaseException as e:
            self._ended_by(e)
        finally:
            self._write(started)

    def _ended_by(self, error: BaseException) -> None:
        """The status an error gives the run; the error re-raised as the sentence to say.

        Raises:
            RunInterrupted: Ctrl-C or a stop signal (Lightning answers those inside fit or test
                with SystemExit(1): the recorder saw them).
            UserError: a full disk.
        """
        results = self.results
        if isinstance(error, KeyboardInterrupt) or self.recorder.interrupted:
            stop = error if isinstance(error, KeyboardInterrupt) else self.recorder.interrupted
            results.update(status="interrupted", error=stops.reason(stop), signal=stops.name(stop))
            raise RunInterrupted(self.how_to_continue(stop), stop) from None
        if isinstance(error, search.Pruned):
            results.update(status="pruned", error=str(error))
            raise error
        if (full := no_space(error)) is not None:  # a sweep run again continues it
            where = full.filename or self.output_dir
            results.update(status="interrupted", error=f"{full.strerror}: {where}")
            raise UserError(
                f"No space left on the disk that holds {self.output_dir} ({full.strerror}); free "
                f"space there (or set paths.log_dir to a disk with room), then "
                f"{self.continue_hint()}."
            ) from None
        status = next((s for kind, s in STATUS_OF if isinstance(error, kind)), "failed")
        name = type(error).__name__
        results.update(status=status, error=str(error) or name, error_type=name)
        raise error

    def _write(self, started: float) -> None:
        """The record: the recorder's figures, then results.json (results.failed.json for a
        failed attempt to resume a finished run).

        Raises:
            UserError: a completed run whose record the disk cannot take.
        """
        results = self.results
        figures = self.recorder.figures()
        best = figures.pop("best_val_acc", None)
        if results.get("val_acc_best") is None and best is not None:
            results["val_acc_best"] = best  # a run stopped in flight keeps its figures
        results.update(figures, wall_time_s=round(time.perf_counter() - started, 2))
        results["elapsed_s"] = round(since_start(self.recorder.started), 2)
        results["finished_at"] = time.time()
        failed = results["status"] != "completed"
        name = "results.failed.json" if self.finished and failed else "results.json"
        unwritten = None
        if is_rank_zero():
            try:
                write_results(self.output_dir, results, name)
            except OSError as e:  # the earlier record, if any, is left whole
                unwritten = e
                log.error(f"The run's record, which {name} could not hold: {json.dumps(results)}")
        end_distributed()
        if unwritten is not None and not failed:
            raise UserError(
                f"Cannot write {self.output_dir / name} ({unwritten.strerror}); the run finished "
                "and its record is the line above (also in the run's log, if it had room); free "
                "space there to keep the next runs' records."
            ) from None

    def _said(self, error: BaseException) -> None:
        """How the run's error ends: a sweep job's is said (or logged) and the sweep goes on;
        a single run's goes to the command's boundary (`train.main`).

        Raises:
            BaseException: `error`, where the sweep must stop or the run is not a sweep job.
        """
        if isinstance(error, UserError) and error.__cause__ is not None:
            trace = "".join(traceback.format_exception(error.__cause__))
            log_to_file(f"What the error below came from:\n{trace}", log)
        sweeping = self.job.sweeping
        if isinstance(error, RunInterrupted) and sweeping:
            return self._sweep_job_stopped(error)
        if isinstance(error, UserError | RunInterrupted) and not sweeping:
            prefix = "Error: " if isinstance(error, UserError) else ""
            log_to_file(f"{prefix}{error}", log)  # the run's log too; `train.main` says it
        if isinstance(error, UserError) and sweeping:
            say_error(f"Error: {error}", log)
        elif isinstance(error, search.Pruned) and sweeping:
            log.info(f"Trial {self.job.index} {error}.")
        elif isinstance(error, Exception) and sweeping:
            log.error(f"Job failed with {type(error).__name__}: {error}\n{traceback.format_exc()}")
        else:
            raise error
        return None

    def _sweep_job_stopped(self, error: RunInterrupted) -> None:
        """A sweep job stopped by a signal or Ctrl-C: requeued where submitit runs it, the sweep
        stopped where a worker runs it (its launching process says how to go on).

        Raises:
            RunInterrupted: `error`, in a sweep whose jobs run in this process.
        """
        stop = error.stop
        if isinstance(stop, stops.Stopped) and stop.submitit_handler():
            log.warning(
                f"{stops.opening(stop)}; the job's progress is saved, and submitit requeues it "
                "to continue from its last checkpoint."
            )
            why = stops.requeue(stop)  # where submitit requeues the job, the process ends here
            say_error(f"Not requeued ({why}). {error}", log)
        elif self.job.worker:
            sweep.stop_sweep(self.job.sweep_dir)
            log_to_file(str(error), log)
        elif sweep.in_submitit_job():  # a cluster's job: its sweep goes on
            say_error(str(error), log)
        else:
            log_to_file(str(error), log)  # `train.main` says it; the sweep stops
            raise error
        return None

    # what the run's last lines say

    def how_to_continue(self, stop: BaseException | None = None) -> str:
        """The sentence an interrupted run ends with: what stopped it (`stop`: Ctrl-C's
        KeyboardInterrupt or a signal's `stops.Stopped`), and how to go on."""
        opening = stops.opening(stop)
        if self.job.sweeping or self._saved():
            return f"{opening}; {self.continue_hint()}."
        return f"{opening} before anything could be saved; run the command again."

    def _saved(self) -> bool:
        return bool(self.cfg.train) and (self.output_dir / LAST).is_file()

    def continue_hint(self) -> str:
        """How a stopped run goes on: from its last checkpoint when it has one."""
        if self.job.sweeping:
            this_one = (
                "continue this one from its last checkpoint"
                if self._saved()
                else "run this one again"
            )
            return (
                f"run the same sweep again with hydra.sweep.dir={self.job.sweep_dir} to skip "
                f"its completed jobs and {this_one}"
            )
        if self._saved():
            return (
                "the finished epochs are saved, continue with "
                f"`python -m fashion_lab ckpt_path={self.output_dir}`"
            )
        return "run the command again"

    def tensorboard_dir(self) -> Path | None:
        """Where `tensorboard --logdir` shows this run beside its neighbours: outputs/ holds
        every run; a run or sweep written elsewhere is shown from its own directory. None
        without a TensorBoard logger."""
        loggers = (self.cfg.get("logger") or {}).values()
        if not any("TensorBoard" in str((c or {}).get("_target_")) for c in loggers):
            return None
        logdir = Path(self.cfg.paths.log_dir)
        if self.output_dir.is_relative_to(logdir):
            return logdir
        return self.output_dir.parent if self.job.sweeping else self.output_dir


def end_distributed() -> None:
    """Take down distributed training's process group, which Lightning leaves up after a run:
    left to the interpreter's exit, its threads once aborted a failed run (exit -6, not 2)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
