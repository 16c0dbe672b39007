"""Config -> objects: the datamodule, network, module and Trainer, built from a run's config and
the Settings its plan derived (`fashion_lab.plan`). The one place where config values meet
constructors."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from fashion_lab import speed, trust
from fashion_lab.adapters import locate, uncompiled_key
from fashion_lab.budget import TimeBudget
from fashion_lab.callbacks import EpochSeeder
from fashion_lab.checkpoints import AtomicCheckpointIO, load_checkpoint
from fashion_lab.data import FashionMNISTDataModule, Splits
from fashion_lab.errors import UserError, one_sentence, settings_to_change
from fashion_lab.models import create_model
from fashion_lab.module import LitClassifier
from fashion_lab.signatures import check_types


def unexpected_option(error: BaseException | None) -> str | None:
    """The option a constructor's TypeError says it does not take ("unexpected keyword")."""
    found = re.search(r"unexpected keyword argument '(\w+)'", str(error))
    return found[1] if isinstance(error, TypeError) and found else None


def option_takers(target: Any) -> list[Any]:
    """The target, and the class a builder function says it returns: that class takes the
    options the builder's **kwargs passes on (the zoo's builders)."""
    import inspect

    if isinstance(target, type) or not callable(target):
        return [target]
    try:
        built = inspect.signature(target, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):  # an annotation that does not resolve
        built = None
    return [target, built] if isinstance(built, type) else [target]


def instantiate(node: Any, key: str, **kwargs) -> Any:
    """`hydra.utils.instantiate` of the config at `key`, its options checked against the
    target's signature first, and a value the target refuses said in one sentence.

    Raises:
        UserError: an option of the wrong type, an unknown one, or one the object refused.
    """
    options = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    try:
        target = locate(options["_target_"])
    except Exception:  # a target that does not import: instantiate says so below
        target = None
    if target is not None:
        # a partial's nulls are filled in when it is called (the scheduler's length)
        partial = options.get("_partial_", False)
        given = {k: v for k, v in options.items() if not (partial and v is None)}
        for takes_options in option_takers(target):
            check_types(takes_options, given, key)
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, UserError):
            raise cause from None
        why = one_sentence(cause or e)
        unexpected = unexpected_option(cause)
        if isinstance(cause, ImportError):
            hint = "make its module importable (pip install it, or add its folder to PYTHONPATH)"
        elif unexpected:
            hint = f"drop the option with ~{key}.{unexpected}, or check its spelling"
        else:
            hint = settings_to_change(key, options=options, texts=(why,))
        raise UserError(
            f"Cannot build {key} {options.get('_target_')!r} ({why}); {hint}."
        ) from None


@dataclass(frozen=True)
class Settings:
    """What a run's config leaves to be derived, derived once: the Trainer's arguments (devices
    and precision resolved), the memory format, the optimizer steps per training call, and the
    speed measurement that picked what the config left null."""

    trainer: dict[str, Any]
    steps_per_call: int
    channels_last: bool = True
    speed: speed.Choice | None = None

    @property
    def accelerator(self) -> str:
        return self.trainer["accelerator"]


def seeding(seed: int | None) -> list[pl.Callback]:
    """Seed everything from `seed` (None: leave the run unseeded); the callbacks that keep it so
    (each epoch's randomness then depends only on the seed and the epoch)."""
    if seed is None:
        return []
    pl.seed_everything(seed, workers=True, verbose=False)
    return [EpochSeeder(seed)]


def network(model: Mapping[str, Any]) -> nn.Module:
    """The network a `model` config describes: `_target_` (any importable nn.Module class or
    builder) called with the other keys; a checkpoint of an earlier version names a zoo model
    with `name` instead.

    Raises:
        UserError: the target does not import, takes no such option, refuses a value, or
            builds something that is not an nn.Module.
    """
    if OmegaConf.is_config(model):
        model = OmegaConf.to_container(model, resolve=True)
    model = dict(model)
    if "_target_" not in model and "name" in model:  # a checkpoint of fashion_lab 0.1
        model.pop("channels_last", None), model.pop("compile", None)
        try:
            return create_model(**model)
        except (KeyError, TypeError, ValueError) as e:
            why = str(e).strip("'\"")
            raise UserError(
                f"Cannot build the model {model['name']!r} ({why}); "
                f"{settings_to_change('model', options=model, texts=(why,))}."
            ) from None
    built = instantiate(model, "model")
    if not isinstance(built, nn.Module):
        raise UserError(
            f"model._target_={model['_target_']} built a {type(built).__name__}, not a torch "
            "nn.Module; point it at a network class or a function that returns one."
        )
    return built


def datamodule(
    cfg: DictConfig, steps_per_call: int = 1, splits: Splits | None = None
) -> FashionMNISTDataModule:
    """The DataModule described by `cfg.data`, serving `steps_per_call` batches at once (the
    data another one read, `splits`, served as it is)."""
    if splits is None:
        return instantiate(cfg.data, "data", _convert_="all", steps_per_call=steps_per_call)
    # tensors, which Hydra would turn into config: given to the constructor it returns (the
    # config built a DataModule already, when the data was read)
    made = instantiate(cfg.data, "data", _convert_="all", _partial_=True)
    return made(steps_per_call=steps_per_call, splits=splits)


def module(
    cfg: DictConfig, net: nn.Module, run: Settings, config: dict, budget: TimeBudget | None = None
) -> LitClassifier:
    """The LightningModule around `net`, with the configured optimizer and scheduler (spread
    over `budget`'s time, if any); `config` (the run's, resolved) is stored in its checkpoints."""
    optimizer = instantiate(cfg.optimizer, "optimizer")  # first: the schedule reads its lr
    scheduler = instantiate(cfg.scheduler, "scheduler") if cfg.get("scheduler") else None
    compiled = bool(cfg.module.compile)
    return LitClassifier(
        torch.compile(net) if compiled else net,
        optimizer=optimizer,
        scheduler=scheduler,
        label_smoothing=cfg.module.label_smoothing,
        channels_last=run.channels_last,
        num_prediction_samples=cfg.module.num_prediction_samples,
        steps_per_call=run.steps_per_call,
        gradient_clip_val=run.trainer.get("gradient_clip_val"),
        gradient_clip_algorithm=run.trainer.get("gradient_clip_algorithm"),
        compiled=compiled,
        config=config,
        budget=budget,
        test_flips=cfg.module.test_flips,
    )


def _instantiate_all(group: Mapping | None, key: str) -> list[Any]:
    return [
        instantiate(c, f"{key}.{name}")
        for name, c in (group or {}).items()
        if c and "_target_" in c
    ]


def trainer(cfg: DictConfig, run: Settings, callbacks: Iterable[pl.Callback] = ()) -> pl.Trainer:
    """The Trainer from the run's settings, `cfg.callbacks` and `cfg.logger`.

    Raises:
        UserError: Lightning refused an option.
    """
    options = dict(run.trainer)
    if run.steps_per_call > 1:  # the module clips its gradients itself
        options.pop("gradient_clip_val", None)
        options.pop("gradient_clip_algorithm", None)
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
        if unexpected := unexpected_option(e):
            raise UserError(
                f"The trainer config has an option Lightning's Trainer does not take ({e}); "
                f"drop it with ~trainer.{unexpected}."
            ) from None
        raise UserError(
            f"Lightning refused the trainer config ({e}); "
            f"{settings_to_change('trainer', options=options, texts=(str(e),))}."
        ) from None
    except (MisconfigurationException, ValueError, ImportError) as e:
        # ImportError: an accelerator or strategy whose package is missing (tpu: torch_xla)
        raise UserError(
            f"Lightning refused the trainer config ({e}); "
            f"{settings_to_change('trainer', options=options, texts=(str(e),))}."
        ) from None


def stored_config(
    checkpoint: Mapping[str, Any], path: str | os.PathLike, trusted: Iterable[str] = ()
) -> dict[str, Any] | None:
    """The run config a checkpoint stores, once `trust.check` let it through; None when it
    stores none (a foreign Lightning checkpoint).

    Raises:
        trust.Untrusted: it names a target nobody trusted, or is not a config fashion_lab writes.
    """
    config = checkpoint.get("fashion_lab_config")
    if config is None:
        return None
    if not isinstance(config, dict):
        raise trust.Untrusted(
            f"{path} stores a {type(config).__name__} where fashion_lab keeps its config; the "
            "file is damaged or was made by hand: use a checkpoint of a fashion_lab run."
        )
    trust.check(config, f"The checkpoint {path}", trusted)
    return config


def restore_network(
    path: str | os.PathLike, trusted: Iterable[str] = ()
) -> tuple[nn.Module, DictConfig, dict[str, Any]]:
    """The trained network of a checkpoint, rebuilt from the config saved in it once the
    config passed `trust.check` (`trusted`: the targets the user trusts on this command).

    Returns:
        The network (eval mode, CPU), the run's config, and the whole checkpoint.

    Raises:
        UserError: not a fashion_lab checkpoint, one whose weights do not fit its config, or
            one whose config names what nobody trusted (`trust.Untrusted`).
    """
    checkpoint = load_checkpoint(path)
    config = stored_config(checkpoint, path, trusted)
    if config is None:
        raise UserError(
            f"{path} holds no fashion_lab config (it was not written by fashion_lab); point "
            "ckpt_path at a checkpoint of a fashion_lab run."
        )
    cfg = OmegaConf.create(config)
    net = network(config["model"])
    state = {
        uncompiled_key(key.removeprefix("net.")): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("net.")
    }
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(
            f"The weights in {path} do not fit the model its config describes "
            f"({str(e).splitlines()[0]}); the checkpoint is damaged or from another version."
        ) from None
    return net.eval(), cfg, checkpoint
