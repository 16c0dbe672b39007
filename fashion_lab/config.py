"""Where the configs live, and the resolvers they use."""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fashion_lab import schema
from fashion_lab.checkpoints import run_dir_of
from fashion_lab.errors import UserError, one_sentence

COMPOSE_ERRORS = (HydraException, OmegaConfBaseException)
"""What Hydra raises for overrides it cannot compose."""

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "conf"


def repo_root() -> str:
    """The repository root: configs and the default data and output folders live there."""
    return str(REPO_ROOT)


def check_config_dir() -> None:
    """The configs live in the repository, beside the package: an install without them (a
    wheel, `pip install .`) is said in a sentence (Hydra would blame the overrides).

    Raises:
        UserError: `conf/` is not beside the package.
    """
    if not CONFIG_DIR.is_dir():
        raise UserError(
            f"The configs are not at {CONFIG_DIR}: fashion_lab runs from a clone of its "
            "repository; install it there with pip install -e <clone> and run again."
        )


def short_name(text: str, limit: int = 80) -> str:
    """A file-name-safe version of `text`, at most `limit` characters (a hash keeps it unique)."""
    safe = text.replace("/", "_") or "default"
    if len(safe) <= limit:
        return safe
    return f"{safe[: limit - 9]}_{hashlib.md5(safe.encode()).hexdigest()[:8]}"


def _resumed_run(ckpt_path: str | None, train: bool, log_dir: str) -> Path | None:
    """The run that training from `ckpt_path` continues, or None."""
    return run_dir_of(ckpt_path, log_dir) if train else None


def claim(new_dir: str) -> str:
    """`new_dir` created for this process alone, or `new_dir_2`, `_3`, ... when another run
    that started in the same second (same name) took it: two runs never share a directory.
    The same name gives the same answer for the rest of the process (the directory's lock
    file names the process that created it)."""
    from fashion_lab.runlock import holder, mark

    for n in itertools.count(1):
        candidate = new_dir if n == 1 else f"{new_dir}_{n}"
        try:
            Path(candidate).mkdir(parents=True)
        except FileExistsError:
            if holder(candidate) == os.getpid():
                return candidate
            continue
        except OSError:  # cannot be created: Hydra fails making it, and train.main says so
            return new_dir
        mark(candidate)
        return candidate
    raise AssertionError("unreachable")


def run_dir(ckpt_path: str | None, train: bool, log_dir: str, new_dir: str) -> str:
    """The run directory: the resumed run's own when training from one of its checkpoints,
    otherwise a new one, claimed."""
    return str(_resumed_run(ckpt_path, train, log_dir) or claim(new_dir))


def hydra_subdir(ckpt_path: str | None, train: bool, log_dir: str) -> str:
    """Where Hydra records a run's config and overrides: `.hydra`, and for training that
    resumes a run, `.hydra/resumed`, so that an attempt (perhaps a failed one) leaves the
    run's own record, from which later resumes take its overrides, as it was."""
    return ".hydra/resumed" if _resumed_run(ckpt_path, train, log_dir) else ".hydra"


SWEPT = "FASHION_LAB_SWEPT"
"""Environment variable: the keys a sweep varies (set by `fashion_lab.sweep.SweepReport` in the
launching process, inherited by the processes that run its jobs)."""


def job_dir(number: int, overrides: Sequence[str], fallback: str, limit: int = 80) -> str:
    """A sweep job's directory name: its number and the values the sweep varies (model, seed,
    swept parameters; floats to 4 significant digits), shortened to `limit`; `fallback` (all
    its overrides, Hydra's override_dirname) where the sweep varies nothing."""
    swept = [k for k in os.environ.get(SWEPT, "").split(",") if k]
    values = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
    shown = [f"{k}={_brief(values[k])}" for k in swept if k in values]
    return f"{number}_{short_name(','.join(shown) if shown else fallback, limit)}"


def _brief(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return value
    return value if "." not in value and "e" not in value.lower() else f"{number:.4g}"


def target_name(target: str) -> str:
    """The last part of a `_target_`: `fashion_lab.models.cnn.cnn` -> `cnn`."""
    return str(target).rsplit(".", 1)[-1]


def model_name(cfg: DictConfig) -> str:
    """The name a run is filed under (a checkpoint of fashion_lab 0.1 has `model.name`)."""
    return cfg.get("model_name") or cfg.model.get("name")


def register_resolvers() -> None:
    """Make the `fashion_lab.*` resolvers available to the configs (idempotent)."""
    resolvers = {  # name: (function, whether OmegaConf caches its value in the config)
        "fashion_lab.root": (repo_root, False),
        "fashion_lab.short": (short_name, False),
        "fashion_lab.target_name": (target_name, False),
        "fashion_lab.run_dir": (run_dir, False),
        "fashion_lab.hydra_subdir": (hydra_subdir, False),
        "fashion_lab.job_dir": (job_dir, False),
        # a sweep's directory, claimed once in the launching process: the resolved name is
        # cached in the config, which Hydra copies (and pickles) into every job's, whichever
        # process runs it
        "fashion_lab.claim": (claim, True),
    }
    for name, (function, cached) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=cached)


register_resolvers()
schema.register()


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as plain resolved data, without Hydra's own `hydra` node."""
    return {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }


def check_writable(directory: str | Path, key: str, advice: str | None = None) -> None:
    """Create an outputs' directory now, before any work, so that one that cannot be is said
    in a sentence (Hydra, matplotlib or open() would fail later with a stack trace).

    Raises:
        UserError: the directory cannot be created or written to; the sentence ends with
            `advice`, by default to set `key` to another directory.
    """
    path = Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise UserError(
            f"Cannot write the outputs to {path} ({e.strerror or e}); "
            f"{advice or f'set {key} to a directory you can write to'}."
        ) from None


def compose_config(overrides: list[str], output_dir: str | Path) -> DictConfig:
    """The config `python -m fashion_lab` composes for these overrides, outside Hydra's run
    (the benchmark, inspect, tests), with Hydra's own node set as the current one and the run's
    output directory `output_dir`.

    Raises:
        UserError: overrides Hydra cannot compose (an unknown key, a malformed value).
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    check_config_dir()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=overrides, return_hydra_config=True)
    except (*COMPOSE_ERRORS, ValueError) as e:  # ValueError: a group set to null
        raise UserError(one_sentence(e)) from None
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


def read_command_line(args: Sequence[str], own: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """`key=value` arguments read by Hydra's override grammar, as the training command's are:
    the values of the command's `own` keys (ckpt_path=, images=, trust=), and the others as
    typed, config overrides for `compose_stored`.

    Raises:
        UserError: an argument the grammar cannot read.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(args))
    except HydraException as e:
        raise UserError(
            f"Arguments are key=value overrides ({one_sentence(e)}); e.g. ckpt_path=last."
        ) from None
    values = {o.key_or_group: o.value() for o in parsed if o.key_or_group in own}
    return values, [o.input_line for o in parsed if o.key_or_group not in own]


def compose_stored(stored: Mapping[str, Any], overrides: Sequence[str]) -> DictConfig:
    """A stored run config (a checkpoint's) with `overrides` applied by Hydra's compose API, as
    training applies them to conf/: an unknown key is refused, `+key=value` adds one.

    Raises:
        UserError: overrides Hydra cannot apply, in its words.
    """
    from hydra import compose, initialize_config_dir

    if not overrides:
        cfg = OmegaConf.create(dict(stored))
        OmegaConf.set_struct(cfg, True)  # an unknown key is a typo, not a new option
        return cfg
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "stored.yaml").write_text(OmegaConf.to_yaml(dict(stored)))
        try:
            with initialize_config_dir(config_dir=tmp, version_base="1.3"):
                return compose("stored", overrides=list(overrides))
        except (*COMPOSE_ERRORS, ValueError) as e:
            raise UserError(f"{one_sentence(e)}; the run's keys are in its config.yaml.") from None


def config_tree(cfg: DictConfig):
    """The composed config as a rich Tree: one branch per group, leaves `key: value`."""
    from rich.tree import Tree

    def add(branch: Tree, node: Any) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                add(branch.add(f"[bold]{key}[/bold]"), value)
            else:
                branch.add(f"{key}: [cyan]{value!r}[/cyan]")

    tree = Tree("[bold]config[/bold] (saved as config.yaml in the run directory)")
    add(tree, to_dict(cfg))
    return tree
