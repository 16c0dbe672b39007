"""`hparams_search=optuna`: a Hydra sweeper over Optuna's ask-and-tell interface (the callback
that prunes a trial whose per-epoch val/acc falls behind: `fashion_lab.callbacks.Pruning`).

The study lives in `hydra.sweeper.storage` (by default an SQLite file in the sweep directory),
so running the same command again continues it: the trials it has count toward `n_trials`,
trial k is job k (its directory `k_<overrides>`, never reused), a trial left running by a
stopped sweep continues from its checkpoint, and parameters already tried are not launched
again. Each job reports its val/acc per epoch to the study; Optuna's pruner (a median pruner
by default) stops a trial that falls behind, which is then "pruned" in the study and in its
results.json.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from fashion_lab.errors import UserError

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

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )

    def _study(self, url: str) -> Any:
        import optuna

        try:
            earlier = len(optuna.load_study(study_name=self.study_name, storage=url).trials)
        except KeyError:  # a new study
            earlier = 0
        # a sampler seeded as before would propose the same first parameters again
        seed = None if self.seed is None else self.seed + earlier
        return optuna.create_study(
            study_name=self.study_name,
            storage=url,
            sampler=self.sampler(seed=seed),
            pruner=self.pruner or optuna.pruners.NopPruner(),  # null: none
            direction=self.direction,
            load_if_exists=True,
        )

    def sweep(self, arguments: list[str]) -> None:
        from optuna.trial import TrialState

        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        url = storage_url(self.storage, sweep_dir)
        space, fixed = search_space([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        try:
            study = self._study(url)
        except Exception as e:  # SQLAlchemy's and Optuna's errors: a bad URL, a locked file...
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise UserError(
                f"Cannot open the Optuna study {self.study_name} in {url} ({reason}); set "
                "hydra.sweeper.storage to a database it can use, e.g. sqlite:///study.db in a "
                "directory you can write to."
            ) from None
        log.info(f"Optuna study {self.study_name} in {url}: {len(study.trials)} trials so far")

        def counted() -> int:
            return sum(
                t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
                and "duplicate_of" not in t.user_attrs
                for t in study.trials
            )

        # trials a stopped sweep left running: their jobs continue from their checkpoints
        left = []
        for t in (t for t in study.trials if t.state == TrialState.RUNNING):
            if why := outside(space, t.params):
                log.warning(f"Not continuing trial {t.number}: {why} (told FAIL).")
                study.tell(t.number, state=TrialState.FAIL)
            else:
                left.append(t)
        if left:
            log.info(f"Continuing trials {', '.join(str(t.number) for t in left)}")
            if not self._launch(study, left, fixed, sweep_dir):
                return  # stopped again
        tried = {  # the parameters of every trial so far -> its number
            self._key(t.params): t.number
            for t in study.trials
            if "duplicate_of" not in t.user_attrs
        }
        duplicates = 0
        while (to_go := self.n_trials - counted()) > 0 and duplicates < 100:
            batch: list[Any] = []
            while len(batch) < min(self.n_jobs, to_go) and duplicates < 100:
                trial = study.ask(space)
                key = self._key(trial.params)
                if key in tried:  # not run twice, and not counted
                    trial.set_user_attr("duplicate_of", tried[key])
                    study.tell(trial, state=TrialState.FAIL)
                    duplicates += 1
                    continue
                tried[key] = trial.number
                batch.append(trial)
            if batch and not self._launch(study, batch, fixed, sweep_dir):
                return  # stopped (Ctrl-C): its trials stay running, to continue
        if duplicates >= 100:
            log.warning("Stopping the search: the sampler proposes only parameters already tried.")
        self._report(study, sweep_dir, url)

    @staticmethod
    def _key(params: Mapping[str, Any]) -> str:
        return repr(sorted(params.items()))

    def _launch(
        self, study: Any, trials: list[Any], fixed: Mapping[str, str], sweep_dir: Path
    ) -> bool:
        """Run the trials' jobs (job number = trial number) and tell the study how each ended;
        False when the sweep was stopped."""
        from fashion_lab import sweep as sweep_module

        trials = sorted(trials, key=lambda t: t.number)
        runs: list[list[Any]] = []
        for trial in trials:  # the launcher numbers a call's jobs from its first one
            if runs and runs[-1][-1].number + 1 == trial.number:
                runs[-1].append(trial)
            else:
                runs.append([trial])
        for run in runs:
            overrides = [
                [
                    *(f"{k}={v}" for k, v in fixed.items()),
                    *(f"{k}={v}" for k, v in t.params.items()),
                ]
                for t in run
            ]
            self.launcher.launch(overrides, initial_job_idx=run[0].number)
            for trial in run:
                self._tell(study, trial, sweep_dir)
            if sweep_module.sweep_stopped(sweep_dir):
                return False
        return True

    def _tell(self, study: Any, trial: Any, sweep_dir: Path) -> None:
        """Tell the study how the trial's job ended, from its results.json."""
        from optuna.trial import TrialState

        from fashion_lab.results import read_results

        records = [read_results(d) for d in sweep_dir.glob(f"{trial.number}_*")]
        record = next((r for r in records if r), {})
        status = record.get("status")
        if status == "interrupted":
            return  # left running: the sweep run again continues it
        if status == "completed" and record.get("val_acc_best") is not None:
            study.tell(trial.number, record["val_acc_best"])
        elif status == "pruned":
            study.tell(trial.number, state=TrialState.PRUNED)
        else:
            study.tell(trial.number, state=TrialState.FAIL)

    def _report(self, study: Any, sweep_dir: Path, url: str) -> None:
        from optuna.trial import TrialState

        states = [t.state for t in study.trials if "duplicate_of" not in t.user_attrs]
        counts = {
            s.name.lower(): states.count(s)
            for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        }
        results: dict[str, Any] = {"name": study.study_name, "storage": url, "trials": counts}
        if counts["complete"]:
            results |= {"best_params": study.best_params, "best_value": study.best_value}
            results["best_trial"] = study.best_trial.number
            log.info(f"Best of {study.study_name}: {study.best_value} with {study.best_params}")
        (sweep_dir / "optimization_results.yaml").write_text(
            yaml.safe_dump(results, sort_keys=False)
        )
