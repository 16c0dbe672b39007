"""Resuming: which config a resumed run trains with, and whether it may continue at all.

A resumed run trains with its checkpoint's config; the keys this command line sets (Hydra's
own list of the task's overrides) are taken from the newly composed config, except those that
the checkpoint's state fixes (`FIXED`), which are refused. The network and
`module.steps_per_call` must stay the checkpoint's too.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from fashion_lab.checkpoints import LAST, moved
from fashion_lab.config import target_name
from fashion_lab.errors import UserError, shown
from fashion_lab.results import UNHEALTHY, read_results

NOT_SET = object()

RUN_KEYS = ("ckpt_path", "train", "test", "paths", "trust")
"""Keys a resume takes from the new command's config, whatever the checkpoint says."""

FIXED = MappingProxyType(
    {
        "optimizer": "its optimizer's state, the learning rate included, is restored as it was",
        "scheduler": "its learning-rate schedule is restored as it was",
        "seed": "its random streams are drawn from the seed it started with",
        "data.shuffle_seed": "its random streams are drawn from the seed it started with",
        "data.val_size": "its validation split must stay the one its figures were measured on",
        "data.split_seed": "its validation split must stay the one its figures were measured on",
        "budget_s": "its learning-rate schedule followed the clock of its time budget",
    }
)
"""Settings (and groups) a resume cannot change, and why: the checkpoint's state holds them."""


def resumed_config(
    cfg: DictConfig,
    stored: Mapping[str, Any],
    overrides: list[str],
    earlier: Sequence[str] = (),
) -> tuple[DictConfig, dict[str, dict[str, Any]]]:
    """The checkpoint's config `stored`, with the keys `overrides` set taken from `cfg`; and
    the settings that differ from the checkpoint's ({key: {"from": old, "to": new}}). A group
    override that sets keys all over the config passes when the run was started with it too
    (`earlier`, its record's overrides: a sweep job run again).

    Raises:
        UserError: an override of a group that sets keys all over the config (experiment=...),
            or of a setting the checkpoint fixes (`FIXED`).
    """
    merged = OmegaConf.create(relocated(stored, str(cfg.paths.output_dir)))
    for key in RUN_KEYS:
        merged[key] = cfg[key]
    changed: dict[str, dict[str, Any]] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        key = override.key_or_group.replace("/", ".")
        if key.startswith("hydra") or key in RUN_KEYS or key.startswith("paths."):
            continue
        if override.is_delete():
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(merged, parent) if parent else merged
            if isinstance(node, DictConfig) and leaf in node:
                del node[leaf]
            continue
        value = OmegaConf.select(cfg, key, default=NOT_SET)
        if value is NOT_SET and override.input_line in earlier:
            continue  # as the run was started
        if value is NOT_SET:
            raise UserError(
                f"{override.input_line} cannot change a run that resumes from its checkpoint; "
                "give the keys it sets one by one, or start a new run (no ckpt_path)."
            )
        old, new = (
            OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for v in (OmegaConf.select(merged, key, default=None), value)
        )
        new = _keep_picks(key, old, new)
        for leaf, (before, after) in _differences(key, old, new).items():
            fixed = next((k for k in FIXED if leaf == k or leaf.startswith(f"{k}.")), None)
            if fixed is not None:
                raise UserError(
                    f"{override.input_line} cannot change a run that resumes ({FIXED[fixed]}; it "
                    f"has {leaf}={shown(before)}); resume without it, or start a new run (no "
                    "ckpt_path)."
                )
            changed[leaf] = {"from": before, "to": after}
        OmegaConf.update(merged, key, new, merge=False, force_add=True)
    return merged, changed


PICKED = ("trainer.precision", "module.channels_last", "module.steps_per_call")
"""Settings that null has the run pick (fashion_lab.speed): a resume keeps the checkpoint's."""


def _keep_picks(key: str, old: Any, new: Any) -> Any:
    """`new` (the value an override gives `key`) with the checkpoint's picks where it is null."""
    for path in PICKED:
        if path == key and new is None:
            return old
        parent, _, leaf = path.rpartition(".")
        picked = isinstance(old, dict) and old.get(leaf) is not None
        if parent == key and isinstance(new, dict) and new.get(leaf) is None and picked:
            new = {**new, leaf: old[leaf]}
    return new


def _differences(key: str, old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    """The settings under `key` that differ between `old` and `new`: {dotted key: (old, new)}."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: dict[str, tuple[Any, Any]] = {}
        for k in dict.fromkeys([*old, *new]):
            found |= _differences(f"{key}.{k}", old.get(k), new.get(k))
        return found
    return {} if old == new else {key: (old, new)}


def resume_entry(
    previous: Mapping[str, Any] | None, checkpoint: Mapping[str, Any], changed: Mapping[str, Any]
) -> dict[str, Any]:
    """What results.json says of a resume: the first epoch it trained, how the run had ended
    before (its earlier record's status and error), and the settings it changed from then on."""
    ended = "killed (no record)" if previous is None else str(previous.get("status"))
    if previous is not None and previous.get("error"):
        ended += f": {previous['error']}"
    return {
        "at_epoch": int(checkpoint.get("epoch", -1)) + 1,
        "after": ended,
        "changed": dict(changed),
    }


def relocated(stored: Mapping[str, Any], output_dir: str) -> Any:
    """The stored config with the paths inside its run's directory (checkpoints, logs) moved to
    `output_dir`: a checkpoint resumed outside its own run writes into the new run's."""
    old = str((stored.get("paths") or {}).get("output_dir") or "")
    return moved(stored, old, output_dir) if old else stored


def match_checkpoint(cfg: DictConfig, checkpoint: Mapping[str, Any]) -> None:
    """A resumed fit trains the checkpoint's network, its batches grouped as its run's were
    (Lightning's saved loop state counts training calls).

    Raises:
        UserError: the run sets another network, or another `module.steps_per_call`.
    """
    stored = checkpoint.get("fashion_lab_config") or {}
    trained = stored.get("model") or {}
    net = OmegaConf.to_container(cfg.model, resolve=True)
    if trained and net != trained:
        if trained.get("_target_") != net.get("_target_"):  # another network altogether
            before, after = (f"model={target_name(m.get('_target_'))}" for m in (trained, net))
        else:
            keys = [k for k in sorted(trained.keys() | net.keys()) if trained.get(k) != net.get(k)]
            before = ", ".join(f"model.{k}={trained.get(k)}" for k in keys)
            after = ", ".join(f"model.{k}={net.get(k)}" for k in keys)
        raise UserError(
            f"The checkpoint was trained with {before} and this run sets {after}; resume "
            f"without changing the model, or start a new run (no ckpt_path)."
        )
    steps = (stored.get("module") or {}).get("steps_per_call") or 1
    given = cfg.module.steps_per_call
    if given is None:
        cfg.module.steps_per_call = steps
    elif given != steps:
        raise UserError(
            f"The checkpoint was trained with module.steps_per_call={steps} and this run "
            f"sets {given}; resume with module.steps_per_call={steps} (or null)."
        )


def stopped_early(callback_states: Mapping[str, Any]) -> int | None:
    """The epoch at which an EarlyStopping callback stopped the run, from the callbacks' states
    (a checkpoint's, or `{cb.state_key: cb.state_dict()}`), or None."""
    for key, state in callback_states.items():
        if key.startswith("EarlyStopping") and state.get("stopped_epoch", 0) > 0:
            return state["stopped_epoch"]
    return None


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


def sweep_job_restart(output_dir: Path) -> Path | None:
    """How a sweep job run again in its old directory restarts: from its last checkpoint when
    it was killed in flight or interrupted; from scratch (checkpoints removed) when it failed,
    diverged or ended at chance."""
    previous = read_results(output_dir)
    if previous is not None and previous.get("status") in ("failed", *UNHEALTHY):
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
        return None
    last = output_dir / LAST
    return last if last.is_file() else None
