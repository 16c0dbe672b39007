"""Where the configs live, and the resolvers they use."""

from __future__ import annotations

import argparse
import hashlib
import itertools
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fashion_lab.errors import UserError, named_options

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
    from fashion_lab.checkpoints import run_dir_of

    return run_dir_of(ckpt_path, log_dir) if train else None


_CLAIMED: dict[str, str] = {}


def claim(new_dir: str) -> str:
    """`new_dir` created for this process alone, or `new_dir_2`, `_3`, ... when another run
    that started in the same second (same name) took it: two runs never share a directory.
    The same name gives the same answer for the rest of the process."""
    if new_dir not in _CLAIMED:
        for n in itertools.count(1):
            candidate = new_dir if n == 1 else f"{new_dir}_{n}"
            try:
                Path(candidate).mkdir(parents=True)
            except FileExistsError:
                continue
            except OSError:  # cannot be created: check_writable has said so, or Hydra will
                candidate = new_dir
            _CLAIMED[new_dir] = candidate
            break
    return _CLAIMED[new_dir]


def run_dir(ckpt_path: str | None, train: bool, log_dir: str, new_dir: str) -> str:
    """The run directory: the resumed run's own when training from one of its checkpoints,
    otherwise a new one, claimed."""
    return str(_resumed_run(ckpt_path, train, log_dir) or claim(new_dir))


def hydra_subdir(ckpt_path: str | None, train: bool, log_dir: str) -> str:
    """Where Hydra records a run's config and overrides: `.hydra`, and for training that
    resumes a run, `.hydra/resumed`, so that an attempt (perhaps a failed one) leaves the
    run's own record, from which later resumes take its overrides, as it was."""
    return ".hydra/resumed" if _resumed_run(ckpt_path, train, log_dir) else ".hydra"


def register_resolvers() -> None:
    """Make the `fashion_lab.*` resolvers available to the configs (idempotent)."""
    resolvers = {  # name: (function, whether OmegaConf caches its value in the config)
        "fashion_lab.root": (repo_root, False),
        "fashion_lab.short": (short_name, False),
        "fashion_lab.run_dir": (run_dir, False),
        "fashion_lab.hydra_subdir": (hydra_subdir, False),
        # a sweep's directory, claimed once in the launching process: the resolved name is
        # cached in the config, which Hydra copies (and pickles) into every job's, whichever
        # process runs it
        "fashion_lab.claim": (claim, True),
    }
    for name, (function, cached) in resolvers.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function, use_cache=cached)


register_resolvers()


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """The run's config as plain resolved data, without Hydra's own `hydra` node."""
    return {
        key: OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        for key, value in cfg.items()
        if key != "hydra"
    }


COMPOSE_ERRORS = (HydraException, OmegaConfBaseException)
"""What Hydra raises for overrides it cannot compose."""

SWEEP_FUNCTION = re.compile(r"\s*(choice|range|interval|glob|tag|shuffle|sort)\(")
"""Hydra's sweep syntax: such an override is a search space, checked by the sweeper itself."""


def group_options(group: str) -> list[str]:
    """The option names of a config group (its YAML files)."""
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _first_of_sweep(override: str) -> str:
    """`k=a,b,c` -> `k=a`, so that one job of a sweep can be composed as a check."""
    if "=" not in override:  # `~group`: nothing to pick
        return override
    key, _, value = override.partition("=")
    if "," in value and not any(c in value for c in "[](){}'\""):  # not inside ${..}, quotes
        value = value.split(",", 1)[0]
    return f"{key}={value}"


def check_group_choices(overrides: list[str]) -> None:
    """Reject `group=option` overrides naming options that do not exist, listing the valid ones.

    Raises:
        UserError: an unknown option.
    """
    for override in overrides:
        key, _, value = override.partition("=")
        if key.startswith(("+", "~")) or "/" in key or not (CONFIG_DIR / key).is_dir():
            continue
        listed = re.fullmatch(r"\[([^][()]*)\]", value)  # several options: logger=[tensorboard,csv]
        if listed:
            value = listed.group(1).replace(" ", "")
            if not value:  # none of them
                continue
        elif any(c in value for c in "()[]"):
            continue
        for option in value.split(","):
            if option == "null":
                raise UserError(
                    f"Hydra does not take {key}=null; write ~{key} to run without the {key} group."
                )
            if option not in group_options(key):
                raise UserError(
                    f"Unknown {key} {option!r}; choose one of: {', '.join(group_options(key))}."
                )


def check_composes(overrides: list[str]) -> None:
    """Compose the config once with Hydra's compose API, turning its errors into one sentence.

    Raises:
        UserError: an unknown key, a malformed override, or a value of the wrong type.
    """
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", overrides=_one_job(overrides), return_hydra_config=True)
    except COMPOSE_ERRORS as e:
        raise composition_error(e, overrides) from None
    _check_search_space(cfg)


def _check_search_space(cfg: DictConfig) -> None:
    """The sweeper's search space (`hydra.sweeper.params`, as hparams_search sets it) searches
    keys the config has: Hydra would fail at the first trial with a stack of messages.

    Raises:
        UserError: a searched key the composed config does not have.
    """
    absent = object()
    for key in OmegaConf.select(cfg, "hydra.sweeper.params") or {}:
        if key.startswith(("+", "~", "hydra.")):
            continue
        if OmegaConf.select(cfg, key, default=absent) is not absent:
            continue
        group, _, option = key.partition(".")
        choice = OmegaConf.select(cfg, f"hydra.runtime.choices.{group}")
        having = [
            f"{group}={name}"
            for name in group_options(group)
            if option in OmegaConf.load(CONFIG_DIR / group / f"{name}.yaml")
        ]
        raise UserError(
            f"The sweeper searches {key} (hydra.sweeper.params), which the config"
            f"{f' with {group}={choice}' if choice else ''} does not have; "
            + (
                f"choose one that has it: {', '.join(having)}."
                if having
                else "remove it from the search."
            )
        )


def _one_job(overrides: list[str]) -> list[str]:
    """A sweep's overrides for its first job (a search space left to its sweeper)."""
    return [_first_of_sweep(o) for o in overrides if not SWEEP_FUNCTION.match(o.partition("=")[2])]


def composition_error(error: Exception, overrides: list[str]) -> UserError:
    """The one sentence for an error Hydra raised composing `overrides`."""
    text = str(error)
    unknown = re.search(r"Could not override '([^']+)'", text)
    if unknown and "To append to your config" in text:
        key = unknown.group(1)
        owner = _unset_option(key, overrides)
        if owner:
            value = next(
                (o.split("=", 1)[1] for o in overrides if _key(o) == key and "=" in o), "..."
            )
            return UserError(
                f"{key} is an option of {owner} that the config does not set; write "
                f"+{key}={value} to add it."
            )
        return UserError(
            f"Unknown config key {key}; check its spelling (`python -m fashion_lab --cfg job` "
            f"prints every key), or write +{key}=... to add a new one."
        )
    present = re.search(r"An item is already at '([^']+)'", text)
    if present:
        key = present.group(1)
        return UserError(f"{key} is already in the config; set it without the +: {key}=...")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    merging = re.match(r"Error merging override (\S+)", first)
    if merging and str(error.__cause__).strip():  # the cause says why: a value's type
        why = str(error.__cause__).strip().splitlines()[0]
        return UserError(f"Invalid override {merging.group(1)} ({why}); fix it and run again.")
    return UserError(f"Invalid override ({first}); fix it and run again.")


def _unset_option(key: str, overrides: list[str]) -> str | None:
    """What takes `key` as an option the config leaves unset (Lightning's Trainer for
    `trainer.*`, a model's builder for `model.*`, the `_target_` of any other node), or None."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import get_object

    parent, _, option = key.rpartition(".")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = compose("config", _one_job([o for o in overrides if _key(o) != key]))
    except COMPOSE_ERRORS:  # another override is wrong too: Hydra's first complaint stands
        return None
    node = OmegaConf.select(cfg, parent) if parent else None
    if parent == "trainer":
        import pytorch_lightning as pl

        owner, takes = "Lightning's Trainer", pl.Trainer
    elif parent == "model" and isinstance(node, DictConfig):
        from fashion_lab.models import model_options

        return f"model {node.get('name')!r}" if option in model_options(node.get("name")) else None
    elif isinstance(node, DictConfig) and isinstance(node.get("_target_"), str):
        owner = node._target_
        try:
            takes = get_object(owner)
        except Exception:  # a target that does not import: instantiating it will say so
            return None
    else:
        return None
    return owner if option in named_options(takes) else None


def prepare_overrides(overrides: list[str]) -> list[str]:
    """Check a command line's overrides before Hydra runs them; complete a resume's.

    Training from a run's checkpoint (`ckpt_path=<run dir>`, a checkpoint inside one, or
    `last`) re-applies that run's own overrides, so the same model and recipe continue;
    overrides given now win.

    Raises:
        UserError: an unknown group option or key, or a checkpoint that is not one.
    """
    from fashion_lab.checkpoints import ckpt_override, resolve_checkpoint, run_dir_of, unquote

    check_config_dir()
    command_line = read_command_line(overrides)
    if command_line is None:  # Hydra refuses it and says why
        return overrides
    options, args = command_line
    check_hydra_options(options)
    check_group_choices(args)
    given = {_key(o): o.split("=", 1)[1] for o in args if "=" in o}
    if any(c in given.get("ckpt_path", "") for c in "=,") and given["ckpt_path"][0] not in "'\"":
        raise UserError(
            f"Hydra reads = and , in a value as syntax; quote the path: "
            f"{ckpt_override(given['ckpt_path'])}."
        )
    given = {key: unquote(value) for key, value in given.items()}
    sweeping = any(o in ("-m", "--multirun") for o in overrides)
    if given.get("hydra/launcher") == "slurm" and sweeping and shutil.which("srun") is None:
        raise UserError(
            "hydra/launcher=slurm submits jobs to a SLURM cluster and finds no srun here; run the "
            "sweep on the cluster's login node, or use hydra/launcher=parallel on this machine."
        )
    if given.get("hparams_search") and not sweeping:
        raise UserError(
            f"hparams_search={given['hparams_search']} runs a search over many trials, which "
            f"needs -m: python -m fashion_lab -m hparams_search={given['hparams_search']}."
        )
    if "ckpt_path" in given and not sweeping:
        log_dir = log_dir_of(given)
        resolve_checkpoint(given["ckpt_path"], log_dir)
        run = run_dir_of(given["ckpt_path"], log_dir)
        saved = run / ".hydra" / "overrides.yaml" if run else None
        if saved and saved.is_file() and given.get("train", "true").lower() != "false":
            earlier = [o for o in OmegaConf.load(saved) if _key(o) not in given]
            overrides = earlier + list(overrides)
            args = earlier + args
    if not any(o.startswith(("--", "-c", "-i", "-p", "-h")) for o in overrides):
        check_composes(args)
        key = "hydra.sweep.dir" if sweeping else "hydra.run.dir"
        if given.get(key) and "${" not in given[key]:
            check_writable(given[key], key)
        else:
            check_writable(log_dir_of(given), "paths.log_dir")
    return overrides


def read_command_line(argv: list[str]) -> tuple[argparse.Namespace, list[str]] | None:
    """A command line as Hydra's own parser reads it: its options, and its overrides (`--cfg
    hydra` is not an override of the hydra group); None when Hydra will refuse it, saying why."""
    from hydra.main import get_args_parser

    parser = get_args_parser()
    parser.exit_on_error = False
    try:
        options, rest = parser.parse_known_args(argv)
    except (argparse.ArgumentError, SystemExit):
        return None
    # overrides after an option are left over: Hydra refuses them; they are checked as well
    return options, [*options.overrides, *(arg for arg in rest if not arg.startswith("-"))]


def check_hydra_options(args: argparse.Namespace) -> None:
    """Hydra's own options (`read_command_line`) that Hydra would refuse with a stack trace
    or several lines.

    Raises:
        UserError: two of Hydra's modes (run, multirun, show the config, info, shell
            completion) at once; a primary config (`-cn`) that conf/ does not have; a
            config directory (`-cd`) that does not exist.
    """
    modes = {
        "--run": args.run,
        "-m": args.multirun,
        "--cfg": args.cfg is not None,
        "--info": args.info is not None,
        "--shell-completion": args.shell_completion,
    }
    given = [mode for mode, asked in modes.items() if asked]
    if len(given) > 1:
        raise UserError(
            f"{' and '.join(given)} cannot be combined: Hydra does one of --run, -m, --cfg, "
            "--info and --shell-completion per command; keep one."
        )
    if args.config_dir and not Path(args.config_dir).expanduser().is_dir():
        raise UserError(f"--config-dir {args.config_dir} is not a directory; fix the path.")
    name = args.config_name
    own_dir = not (args.config_dir or args.config_path)
    if name and own_dir and not (CONFIG_DIR / f"{name.removesuffix('.yaml')}.yaml").is_file():
        raise UserError(
            f"There is no config {name} in {CONFIG_DIR} (primary configs: "
            f"{', '.join(group_options('.'))}); drop -cn, and choose groups with overrides "
            "such as experiment=quick."
        )


def log_dir_of(given: dict[str, str]) -> str:
    """`paths.log_dir` as a command line sets it (or its default)."""
    log_dir = given.get("paths.log_dir", "")
    return log_dir if log_dir and "${" not in log_dir else str(REPO_ROOT / "outputs")


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
    """The config `python -m fashion_lab` composes for these overrides, outside Hydra's run.

    Hydra's own node is set as the current one, and the run's output directory is `output_dir`.

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
    except COMPOSE_ERRORS as e:
        raise composition_error(e, overrides) from None
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
    return cfg


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
