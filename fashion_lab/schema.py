"""The typed shape of fashion_lab's own config, registered with Hydra's ConfigStore.

conf/config.yaml starts from `fashion_lab_schema`, so Hydra refuses an unknown key or a value of
the wrong type while composing, in the user's config files too. Value ranges are checked once,
by `check`, before anything is built. Options of other libraries' objects (the model, Trainer,
optimizer, scheduler, callbacks, loggers) are checked against their own signatures (build.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fashion_lab.errors import UserError, one_sentence

MAX_SEED = 2**32 - 1
"""The largest seed every generator accepts (numpy's bound)."""


class ConfigError(UserError):
    """A config value outside its range."""


def _require(ok: bool, key: str, what: str, value: Any) -> None:
    if not ok:
        default = _default(key)
        fix = f"set it back with {key}={default} (its default)" if default is not None else ""
        raise ConfigError(f"{key} must be {what}, got {value!r}; {fix or 'change it'}.")


def _default(key: str) -> Any:
    """The schema's default for a dotted key, as an override writes it (None: none)."""
    from dataclasses import MISSING, fields, is_dataclass

    node: Any = Config
    for part in key.split("."):
        found = (
            next((f for f in fields(node) if f.name == part), None) if is_dataclass(node) else None
        )
        if found is None:
            return None
        node = found.default_factory() if found.default_factory is not MISSING else found.default
    if is_dataclass(node) or (isinstance(node, str) and "${" in node):
        return None
    return "null" if node is None else str(node).lower() if isinstance(node, bool) else node


@dataclass
class AugmentConfig:
    """Batched augmentation of training images (`fashion_lab.data.Augmentation`)."""

    crop_padding: int = 0
    hflip: float = 0.0
    erasing: float = 0.0

    def __post_init__(self) -> None:
        _require(
            0 <= self.crop_padding <= 28,
            "data.augment.crop_padding",
            "0 to 28 pixels (the images are 28x28)",
            self.crop_padding,
        )
        for name in ("hflip", "erasing"):
            value = getattr(self, name)
            _require(0 <= value <= 1, f"data.augment.{name}", "a probability from 0 to 1", value)


@dataclass
class DataConfig:
    """`fashion_lab.data.FashionMNISTDataModule`'s options (its docstring says what each does)."""

    _target_: str = "fashion_lab.data.FashionMNISTDataModule"
    root: str = "${paths.data_dir}/fashion-mnist"
    system_dir: str | None = "/usr/share/datasets/fashion-mnist"
    keras_dir: str | None = "~/.keras/datasets/fashion-mnist"
    mirrors: list[str] = field(default_factory=list)
    download: bool = True
    verify_checksums: bool = True
    val_size: int = 5000
    split_seed: int = 0
    batch_size: int = 128
    eval_batch_size: int = 1000
    shuffle_seed: int | None = "${seed}"  # type: ignore[assignment]  # an interpolation
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    device_resident: bool | None = None

    def __post_init__(self) -> None:
        for name in ("val_size", "batch_size", "eval_batch_size"):
            value = getattr(self, name)
            _require(value >= 1, f"data.{name}", "a positive integer", value)


@dataclass
class ModuleConfig:
    """How `fashion_lab.module.LitClassifier` trains and runs the network."""

    label_smoothing: float = 0.0
    num_prediction_samples: int = 32
    # optimizer steps per Lightning training step; null: measured default (build.py)
    steps_per_call: int | None = None
    channels_last: bool | None = None
    compile: bool = False
    test_flips: bool = False

    def __post_init__(self) -> None:
        smoothing = self.label_smoothing
        _require(0 <= smoothing <= 1, "module.label_smoothing", "a number from 0 to 1", smoothing)
        samples = self.num_prediction_samples
        _require(samples >= 0, "module.num_prediction_samples", "an integer from 0", samples)
        steps = self.steps_per_call
        _require(
            steps is None or steps >= 1,
            "module.steps_per_call",
            "a positive integer, or null for the fastest on the device",
            steps,
        )


@dataclass
class PathsConfig:
    root_dir: str = "${fashion_lab.root:}"
    data_dir: str = "${paths.root_dir}/data"
    log_dir: str = "${paths.root_dir}/outputs"
    output_dir: str = "${hydra:runtime.output_dir}"


@dataclass
class Config:
    """The top level. The groups without a schema here are other libraries' objects."""

    task_name: str = "train"
    seed: int | None = 0
    train: bool = True
    test: bool = True
    ckpt_path: str | None = None
    # the run's wall seconds from the process's start, test included (fashion_lab/budget.py)
    budget_s: float | None = None
    print_config: bool = True
    # the name a run is filed under: its network's class or builder, e.g. cnn, TinyNet
    model_name: str = "${fashion_lab.target_name:${oc.select:model._target_,''}}"
    # targets a checkpoint's config may build besides fashion_lab's own (fashion_lab/trust.py)
    trust: list[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    module: ModuleConfig = field(default_factory=ModuleConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    model: Any = None
    optimizer: Any = None
    scheduler: Any = None
    trainer: Any = None
    logger: Any = None
    callbacks: Any = None

    def __post_init__(self) -> None:
        _require(
            self.seed is None or 0 <= self.seed <= MAX_SEED,
            "seed",
            f"an integer from 0 to {MAX_SEED}, or null for an unseeded run",
            self.seed,
        )
        budget = self.budget_s
        _require(
            budget is None or (math.isfinite(budget) and budget > 0),
            "budget_s",
            "a positive number of seconds, or null for no time budget",
            budget,
        )
        if not self.train and not self.test:
            raise ConfigError(
                "train=false and test=false leave nothing to do; drop test=false to test a "
                "checkpoint, or train=false to train."
            )
        if not isinstance(self.model, dict) or not isinstance(self.model.get("_target_"), str):
            raise ConfigError(
                "model must name its network with model._target_ (an importable nn.Module class "
                "or builder); choose model=cnn, or see the README's 'Bring your own model'."
            )


def register() -> None:
    """Register the schema with Hydra (idempotent): conf/config.yaml's defaults start with it."""
    ConfigStore.instance().store(name="fashion_lab_schema", node=Config)


def check(cfg: DictConfig) -> DictConfig:
    """`cfg` typed by the schema, every range checked (once, before any work is done).

    Raises:
        ConfigError: a value of the wrong type or outside its range.
    """
    try:
        own = {key: cfg[key] for key in cfg if key != "hydra"}  # Hydra's own node: Hydra's
        typed = OmegaConf.merge(OmegaConf.structured(Config), own)
        OmegaConf.to_object(typed)  # builds the dataclasses: their __post_init__ checks ranges
    except OmegaConfBaseException as e:
        raise ConfigError(one_sentence(e)) from None
    return typed
