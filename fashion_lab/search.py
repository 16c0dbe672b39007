"""`hparams_search=optuna`: a Hydra sweeper over Optuna's ask-and-tell interface (the callback
that prunes a trial whose per-epoch val/acc falls behind: `fashion_lab.callbacks.Pruning`).

The study lives in `hydra.sweeper.storage` (by default an SQLite file in the sweep directory),
so running the same command again continues it, and any number of processes given the same
study name and storage share it, started at any moment: the finished trials count toward
`n_trials`; trial k is job k (its directory `k_<overrides>`), and the storage gives each trial
a number no other process has; parameters already tried are not launched again. Each process
records a heartbeat for the trials it runs (Optuna's); a trial whose process is gone (no
heartbeat for `grace_period` seconds, or stopped by Ctrl-C or a signal) is failed and queued
again by Optuna's retry callback, and whichever process takes it continues it in the first
trial's directory, from its checkpoint. Each job reports its val/acc per epoch to the study;
Optuna's pruner (a median pruner by default) stops a trial that falls behind, which is then
"pruned" in the study and in its results.json.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from fashion_lab import adapters
from fashion_lab.errors import UserError
from fashion_lab.pareto import front, objectives_of, plot, table

log = logging.getLogger(__name__)

DB = "optuna.db"
"""The study's SQLite file in the sweep directory when hydra.sweeper.storage is null."""


class Pruned(Exception):
    """Optuna's pruner stopped the trial (the message says at which epoch and why)."""


def storage_url(storage: str | None, sweep_dir: str | Path) -> str:
    """The study's storage: the configured one, or an SQLite file in the sweep directory."""
    return storage or f"sqlite:///{Path(sweep_dir).resolve() / DB}"


def distribution(override: Override) -> Any:
    """The Optuna distribution of a sweep override: choice(...) categorical, interval(a, b)
    uniform over floats (tag(log, interval(a, b)) log-uniform), range(a, b, step) stepped; a
    plain value stays fixed (returned as its string)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        return CategoricalDistribution(
            list(override.sweep_iterator(transformer=Transformer.encode))
        )
    if override.is_range_sweep():
        bounds = (value.start, value.stop - value.step, value.step)
        if all(isinstance(b, int) for b in bounds):
            return IntDistribution(bounds[0], bounds[1], step=bounds[2])
        return FloatDistribution(bounds[0], bounds[1], step=bounds[2])
    if override.is_interval_sweep():
        # Hydra's intervals are of floats, interval(0, 4) too
        return FloatDistribution(value.start, value.end, log="log" in value.tags)
    raise UserError(
        f"{override.input_line} is not a search space Optuna can sample; use "
        "choice(...), interval(a, b), tag(log, interval(a, b)) or range(a, b, step)."
    )


def search_space(arguments: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The swept parameters' distributions and the fixed overrides, from `arguments`."""
    space: dict[str, Any] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()
        value = distribution(override)
        if isinstance(value, str):
            fixed[key] = value
            space.pop(key, None)
        else:
            space[key] = value
            fixed.pop(key, None)
    return space, fixed


def outside(space: Mapping[str, Any], params: Mapping[str, Any]) -> str | None:
    """Why a trial's parameters, read from the study, are not ones this search space could
    have proposed (another key, a value out of its range or choices), or None. A study is a
    file: only what the user's search space allows becomes an override."""
    from optuna.distributions import CategoricalDistribution

    for key, value in params.items():
        dist = space.get(key)
        if dist is None:
            return f"{key} is not in this sweep's search space"
        if isinstance(dist, CategoricalDistribution):
            fits = value in dist.choices
        else:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            fits = number and dist.low <= value <= dist.high
        if not fits:
            return f"{key}={value!r} is outside this sweep's search space"
    return None


WAIT = "wait"
"""`_next_trial`'s answer while only other processes' trials are left to end."""

OPEN_TRIES = 5
"""Tries at opening the study: processes started together race to create its tables and row."""


def retried(trial: Any) -> int | None:
    """The number of the first trial that `trial` retries (its job directory's), or None."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)


def job_number(trial: Any) -> int:
    """The sweep job that runs `trial`: its own number, or that of the trial it retries."""
    first = retried(trial)
    return trial.number if first is None else first


def finished(trials: Sequence[Any]) -> list[Any]:
    """The trials that count toward `n_trials`: complete, pruned or failed, but not a duplicate
    of an earlier one nor one that a later trial retries."""
    from optuna.trial import TrialState

    again = {n for t in trials for n in retry_history(t)}  # the retried ones, first included
    return [
        t
        for t in trials
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        and "duplicate_of" not in t.user_attrs
        and t.number not in again
    ]


def retry_history(trial: Any) -> list[int]:
    return list(trial.system_attrs.get("retry_history", []))


@contextmanager
def heartbeat(storage: Any, trial: Any, interval: float) -> Iterator[None]:
    """Record the trial's heartbeat in the study's storage every `interval` seconds while its
    job runs, so that other processes sharing the study see that it is alive."""
    trial_id = adapters.optuna_trial_id(trial)
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.record_heartbeat(trial_id)
            except Exception as e:  # a database that hiccups: the next beat tries again
                log.debug("heartbeat not recorded: %r", e)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class StudySweeper(Sweeper):
    """Optuna's study over Hydra's launchers (`hydra/sweeper=optuna`; keys in
    conf/hydra/sweeper/optuna.yaml)."""

    def __init__(
        self,
        study_name: str,
        storage: str | None,
        direction: str,
        n_trials: int,
        n_jobs: int,
        seed: int | None,
        sampler: Callable[..., Any],
        pruner: Any,
        params: Mapping[str, str] | None,
        heartbeat_interval: int = 10,
        grace_period: int = 30,
        max_retry: int | None = 3,
        objectives: Mapping[str, str] | None = None,
    ) -> None:
        self.study_name = study_name
        self.storage = storage
        self.direction = direction
        self.n_trials = n_trials
        self.n_jobs = max(1, n_jobs)
        self.seed = seed
        self.sampler = sampler
        self.pruner = pruner
        self.params = dict(params or {})
        self.heartbeat_interval = max(1, int(heartbeat_interval))
        self.grace_period = max(self.heartbeat_interval + 1, int(grace_period))
        self.max_retry = max_retry
        # figure of results.json -> direction; several make the study multi-objective
        self.objectives = objectives_of(objectives, "hydra.sweeper.objectives") or {
            "val_acc_best": direction
        }

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def _retry(self) -> Any:
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return RetryHeartbeatStaleTrialCallback(
                self.max_retry, inherit_intermediate_values=True
            )

    def _study(self, url: str) -> Any:
        """The study, created by whichever process comes first (the others load it).

        Raises:
            UserError: the storage cannot be opened, after OPEN_TRIES tries.
        """
        import optuna

        for attempt in range(OPEN_TRIES):
            try:
                return self._open(url)
            except optuna.exceptions.DuplicatedStudyError:
                continue  # created by another process this very moment: load it
            except Exception as e:  # SQLAlchemy's and Optuna's: a bad URL, a locked file...
                if attempt + 1 == OPEN_TRIES:
                    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                    raise UserError(
                        f"Cannot open the Optuna study {self.study_name} in {url} ({reason}); "
                        "set hydra.sweeper.storage to a database it can use, e.g. "
                        "sqlite:///study.db in a directory you can write to."
                    ) from None
                time.sleep(0.2 * 2**attempt)  # tables created by another process meanwhile
        raise AssertionError("unreachable")

    def _open(self, url: str) -> Any:
        import optuna

        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning for heartbeats
            storage = optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=self.heartbeat_interval,
                grace_period=self.grace_period,
                heartbeat_stale_trial_callback=self._retry(),
            )
        self.rdb = storage  # the trials' heartbeats go to it
        try:
            earlier = len(optuna.load_study(study_name=self.study_name, storage=storage).trials)
        except KeyError:  # a new study
            earlier = 0
        # a sampler seeded as before would propose the same first parameters again
        seed = None if self.seed is None else self.seed + earlier
        pruner = self.pruner
        if pruner is not None and len(self.objectives) > 1:
            log.info("Optuna prunes no study of several objectives: hydra.sweeper.pruner unused.")
            pruner = None
        return optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=self.sampler(seed=seed),
            pruner=pruner or optuna.pruners.NopPruner(),  # null: none
            directions=list(self.objectives.values()),
            load_if_exists=True,
        )

    def sweep(self, arguments: list[str]) -> None:
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        url = storage_url(self.storage, sweep_dir)
        space, fixed = search_space([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        study = self._study(url)
        log.info(f"Optuna study {self.study_name} in {url}: {len(study.trials)} trials so far")
        workers = self.n_jobs if self._jobs_elsewhere() else 1
        if workers > 1:
            log.info(f"{workers} trials at a time, each started when one ends")
        helpers = []
        if workers > 1 and "joblib" in type(self.launcher).__module__:
            # joblib runs no parallel loop below a thread: the other workers are processes
            helpers = [self._helper(sweep_dir, url, i) for i in range(1, workers)]
        try:
            self._work(study, space, fixed, sweep_dir, 1 if helpers else workers)
        finally:
            for i, helper in enumerate(helpers, 1):
                if helper.wait() not in (0, 1, 130):
                    log.warning(
                        f"Search worker {i} ended with {helper.returncode}: its log is "
                        f"{sweep_dir / f'worker{i}.log'}."
                    )
        self._report(study, sweep_dir, url)

    def _helper(self, sweep_dir: Path, url: str, index: int) -> subprocess.Popen:
        """This search's command again, as one more process sharing the study: its jobs in
        itself, one at a time (its output in the sweep directory's worker<index>.log)."""
        from fashion_lab.sweep import LAUNCHER_PID

        mine = ("hydra/launcher=", "hydra.launcher.", "hydra.sweeper.n_jobs=", "hydra.sweep.dir=")
        args = [a for a in sys.argv[1:] if not a.startswith((*mine, "hydra.sweeper.storage="))]
        args += ["hydra/launcher=basic", "hydra.sweeper.n_jobs=1"]
        args += [f"hydra.sweep.dir='{sweep_dir}'", f"hydra.sweeper.storage='{url}'"]
        env = {k: v for k, v in os.environ.items() if k != LAUNCHER_PID}  # its jobs are its own
        output = (sweep_dir / f"worker{index}.log").open("w")
        return subprocess.Popen(
            [sys.executable, "-m", "fashion_lab", *args], stdout=output, stderr=output, env=env
        )

    def _jobs_elsewhere(self) -> bool:
        """Whether the launcher runs jobs in processes of their own (joblib, submitit, SLURM),
        so that several of its launches can wait at once; Hydra's basic launcher runs them in
        this process, one at a time."""
        return not adapters.in_this_process(self.launcher)

    def _work(
        self,
        study: Any,
        space: Mapping[str, Any],
        fixed: Mapping[str, str],
        sweep_dir: Path,
        workers: int,
    ) -> None:
        """Run trials until the study is done: `workers` at a time, each worker asking for its
        next trial as soon as its last one ends (trials never wait for each other)."""
        lock, stopped, errors = threading.Lock(), threading.Event(), []

        def worker() -> None:
            try:
                while not stopped.is_set():
                    with lock:  # this process's workers ask and count one at a time
                        trial = self._next_trial(study, space)
                    if trial is None:
                        return
                    if trial is WAIT:  # other processes' trials still run: one may be queued
                        stopped.wait(self.heartbeat_interval)
                    elif not self._launch(study, trial, fixed, sweep_dir):
                        stopped.set()  # Ctrl-C: its trial is queued again, to continue
            except BaseException as e:
                errors.append(e)
                stopped.set()

        if workers == 1:
            worker()
        else:
            threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):  # the main thread takes Ctrl-C
                time.sleep(0.2)
        if errors:
            raise errors[0]

    def _next_trial(self, study: Any, space: Mapping[str, Any]) -> Any:
        """The trial to run now: one queued again first, then a new one while the finished and
        running ones fall short of n_trials; WAIT while other processes' trials run (one of
        them may be queued again); None when the study is done."""
        from optuna.trial import TrialState

        self._fail_stale(study)
        for _ in range(100):  # proposals already tried are skipped, not run
            trials = study.get_trials(deepcopy=False)
            queued = any(t.state == TrialState.WAITING for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            if not queued and len(finished(trials)) + running >= self.n_trials:
                return WAIT if running else None
            asked = study.ask(space)
            trials = self._settled(study, asked.number)
            trial = trials[asked.number]  # frozen: its system attrs
            if why := outside(space, trial.params):  # a study is a file: only this space runs
                log.warning(f"Not running trial {trial.number}: {why} (told FAIL).")
                study.tell(trial.number, state=TrialState.FAIL)
                continue
            if retried(trial) is None and (earlier := self._tried(trials, trial)) is not None:
                asked.set_user_attr("duplicate_of", earlier)  # not run twice, nor counted
                study.tell(trial.number, state=TrialState.FAIL)
                continue
            return trial
        log.warning("Stopping the search: the sampler proposes only parameters already tried.")
        return None

    @staticmethod
    def _settled(study: Any, number: int) -> list[Any]:
        """The study's trials up to `number`, once those before it that another process is
        asking have their parameters (a trial gets its number before its parameters)."""
        from optuna.trial import TrialState

        for _ in range(20):
            trials = study.get_trials(deepcopy=False)
            asking = [
                t
                for t in trials[:number]
                if t.state in (TrialState.RUNNING, TrialState.WAITING) and not t.params
            ]
            if not asking or not trials[number].params:
                return trials
            time.sleep(0.1)
        return trials

    @staticmethod
    def _tried(trials: Sequence[Any], trial: Any) -> int | None:
        """The number of an earlier trial with `trial`'s parameters (not a duplicate itself):
        of two processes that asked for the same parameters, the later trial gives way."""
        key = repr(sorted(trial.params.items()))
        same = (
            t.number
            for t in trials
            if t.number < trial.number
            and "duplicate_of" not in t.user_attrs
            and t.params
            and repr(sorted(t.params.items())) == key
        )
        return next(same, None)

    def _fail_stale(self, study: Any) -> None:
        """Fail the running trials whose process is gone (their heartbeat stopped), which
        Optuna's retry callback queues again."""
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optuna.storages.fail_stale_trials(study)

    def _launch(self, study: Any, trial: Any, fixed: Mapping[str, str], sweep_dir: Path) -> bool:
        """Run the trial's job (job number = trial number, or the retried trial's) and tell the
        study how it ended; False when the sweep was stopped."""
        from fashion_lab import sweep as sweep_module

        if retried(trial) is not None:
            log.info(f"Trial {trial.number} continues trial {job_number(trial)}")
        overrides = [*(f"{k}={v}" for k, v in fixed.items())]
        overrides += [f"{k}={v}" for k, v in trial.params.items()]
        try:
            with heartbeat(self.rdb, trial, self.heartbeat_interval):
                self.launcher.launch([overrides], initial_job_idx=job_number(trial))
        except BaseException:  # a job in this process stopped the sweep: queued again
            self._tell(study, trial, sweep_dir, stopped=True)
            raise
        stopped = sweep_module.sweep_stopped(sweep_dir)
        self._tell(study, trial, sweep_dir, stopped)
        return not stopped

    def _tell(self, study: Any, trial: Any, sweep_dir: Path, stopped: bool = False) -> None:
        """Tell the study how the trial's job ended, from its results.json; a job stopped by
        Ctrl-C or a signal (or not started) is failed and queued again, to continue."""
        import optuna
        from optuna.trial import TrialState

        from fashion_lab.results import read_results

        records = [read_results(d) for d in sweep_dir.glob(f"{job_number(trial)}_*")]
        record = next((r for r in records if r), {})
        status = record.get("status")
        try:
            if status == "interrupted" or (stopped and status != "completed"):
                study.tell(trial.number, state=TrialState.FAIL)
                self._retry()(study, study.trials[trial.number])
            elif status == "completed" and all(record.get(f) is not None for f in self.objectives):
                values = [float(record[f]) for f in self.objectives]
                study.tell(trial.number, values if len(values) > 1 else values[0])
            elif status == "pruned":
                study.tell(trial.number, state=TrialState.PRUNED)
            else:
                study.tell(trial.number, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning(
                f"Trial {trial.number} was failed by another process meanwhile (its heartbeat "
                "was late): that process queued it again; hydra.sweeper.grace_period longer "
                "than a save of a checkpoint avoids this."
            )

    def _front(self, study: Any, sweep_dir: Path) -> list[dict[str, Any]]:
        """The study's Pareto front, said as a table and drawn (pareto.md and pareto.png in the
        sweep directory) from the records of its trials' jobs."""
        from fashion_lab.results import read_results

        records = []
        for trial in finished(study.trials):
            job = next(iter(sweep_dir.glob(f"{job_number(trial)}_*")), None)
            if job is not None and (record := read_results(job)):
                records.append(record | {"trial": trial.number})
        best = front(records, self.objectives)
        said = table(best, self.objectives)
        (sweep_dir / "pareto.md").write_text(said + "\n")
        if len(records) > 1:
            plot(records, self.objectives, sweep_dir / "pareto.png")
        log.info(
            f"Pareto front of {study.study_name} ({len(best)} of {len(records)} trials):\n{said}"
        )
        return [{"trial": r["trial"], **{f: r[f] for f in self.objectives}} for r in best]

    def _report(self, study: Any, sweep_dir: Path, url: str) -> None:
        from optuna.trial import TrialState

        done = finished(study.trials)
        counts = {
            s.name.lower(): sum(t.state == s for t in done)
            for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        }
        if len(done) > self.n_trials:
            log.info(
                f"The study has {len(done)} finished trials for n_trials={self.n_trials}: "
                "processes sharing it started their last ones at the same moment."
            )
        results: dict[str, Any] = {"name": study.study_name, "storage": url, "trials": counts}
        if counts["complete"] and len(self.objectives) > 1:
            results["pareto_front"] = self._front(study, sweep_dir)
        elif counts["complete"]:
            results |= {"best_params": study.best_params, "best_value": study.best_value}
            results["best_trial"] = study.best_trial.number
            log.info(f"Best of {study.study_name}: {study.best_value} with {study.best_params}")
        (sweep_dir / "optimization_results.yaml").write_text(
            yaml.safe_dump(results, sort_keys=False)
        )
