"""Checkpoints: atomic saving, safe loading, and finding the one a user means by `ckpt_path`."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.callbacks import ModelCheckpoint

from fashion_lab.errors import UserError

LAST = "checkpoints/last.ckpt"
BEST = "checkpoints/best.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside it, then renames it into place.

    A kill during saving leaves the previous checkpoint intact (Lightning's own transaction
    stages the file in the system temp directory, whose move is a copy across filesystems).
    Loading uses `torch.load(weights_only=True)`: no code can run from a checkpoint.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # serialized in memory first: torch.save's own writes turn a full disk's OSError into a
        # RuntimeError without it ("PytorchStreamWriter failed writing file")
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buffer.getbuffer())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp_name, path)
        finally:
            Path(tmp_name).unlink(missing_ok=True)

    def load_checkpoint(self, path, map_location=None, weights_only: bool | None = None):
        return load_checkpoint(path, map_location=map_location or "cpu")


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, whose saved state follows the run's directory: a run copied
    or moved, then resumed, keeps its best score and overwrites its own best.ckpt (Lightning
    keeps only the old directory's path: the next epoch became "best" whatever its score, saved
    beside the stale best.ckpt as best-v1.ckpt, which `evaluate ckpt_path=<dir>` did not pick)."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        old, new = state_dict.get("dirpath"), self.dirpath
        if old and new and old != new:
            state_dict = moved(state_dict, str(old), str(new))
        super().load_state_dict(state_dict)


def moved(value: Any, old: str, new: str) -> Any:
    """`value` with the paths in directory `old` (strings, in mappings' keys and values and in
    lists) moved to directory `new`."""
    if isinstance(value, Mapping):
        return {moved(k, old, new): moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [moved(v, old, new) for v in value]
    if isinstance(value, str) and (value == old or value.startswith(f"{old}/")):
        return new + value[len(old) :]
    return value


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a Lightning checkpoint with `weights_only=True`.

    Raises:
        UserError: the file is missing or is not a fashion_lab/Lightning checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"The checkpoint {path} does not exist; check ckpt_path.")
    checkpoint, why = _load(path, map_location)
    if checkpoint is None:
        raise UserError(f"The checkpoint {path} is damaged or not one ({why}); {_instead(path)}.")
    return checkpoint


def _load(path: Path, map_location: Any = "cpu") -> tuple[dict[str, Any] | None, str | None]:
    """A checkpoint loaded weights-only, or None and why it does not load."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a damaged or foreign file fails in many ways inside unpickling
        first = str(e).strip().splitlines()[0][:120] if str(e).strip() else ""
        return None, f"{type(e).__name__}: {first}" if first else type(e).__name__
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        return None, "no state_dict: not a Lightning checkpoint"
    return checkpoint, None


def _instead(path: Path) -> str:
    """What to do when `path` does not load: its run's other checkpoint, if that one loads."""
    if path.parent.name == "checkpoints":
        run = path.parent.parent
        for other, what in ((run / BEST, "the run's best"), (run / LAST, "the run's last")):
            if other != path and other.is_file() and _load(other)[0] is not None:
                return (
                    f"{what} checkpoint loads: use it with {ckpt_override(other)} (resuming from "
                    "it trains the epochs after it again)"
                )
    return "point ckpt_path at another checkpoint of the run, or start a new run (no ckpt_path)"


def unquote(value: str) -> str:
    """A command-line value without the quotes that make Hydra read it as one string."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def ckpt_override(path: str | os.PathLike) -> str:
    """`ckpt_path=<path>` as a shell word Hydra parses: a sweep job's directory name holds `=`
    and `,`, which Hydra reads as syntax unless the path is quoted."""
    text = str(path)
    return f"ckpt_path=\"'{text}'\"" if any(c in text for c in "=,") else f"ckpt_path={text}"


def latest_run(log_dir: str | os.PathLike) -> Path | None:
    """The most recent single-run directory under `log_dir/runs` that has a last checkpoint."""
    runs = sorted(Path(log_dir, "runs").glob(f"*/{LAST}"), key=lambda p: p.stat().st_mtime)
    return runs[-1].parent.parent if runs else None


def run_dir_of(ckpt_path: str | None, log_dir: str | os.PathLike) -> Path | None:
    """The run directory that `ckpt_path` resumes into, or None for a new run.

    `ckpt_path` may be `last` (the latest run under `log_dir`), a run directory, or a
    checkpoint file inside a run's `checkpoints/` folder.
    """
    if ckpt_path in (None, "", "None"):
        return None
    if ckpt_path == "last":
        return latest_run(log_dir)
    path = Path(ckpt_path).expanduser().resolve()
    if path.is_dir():
        return path if (path / ".hydra").is_dir() else None
    if path.parent.name == "checkpoints" and (path.parent.parent / ".hydra").is_dir():
        return path.parent.parent
    return None


def resolve_checkpoint(
    ckpt_path: str | None, log_dir: str | os.PathLike, *, prefer: str = LAST
) -> Path | None:
    """The checkpoint file `ckpt_path` names (see `run_dir_of`), checked to be one.

    For a run directory (or `last`), that is `prefer` inside it (the last checkpoint, to
    resume; `BEST`, to evaluate) when it exists, else the last one.

    Raises:
        UserError: nothing to resume, a missing file, or a file that is not a checkpoint.
    """
    if ckpt_path in (None, "", "None"):
        return None
    if ckpt_path == "last":
        run = latest_run(log_dir)
        if run is None:
            raise UserError(
                f"ckpt_path=last found no run with a last checkpoint under "
                f"{Path(log_dir) / 'runs'}; start a new run, or point ckpt_path at a checkpoint "
                "file or run directory."
            )
        path = run / prefer if (run / prefer).is_file() else run / LAST
    else:
        path = Path(ckpt_path).expanduser().resolve()
        if path.is_dir():
            runs = sorted(p.parent.parent for p in path.glob(f"*/{LAST}"))
            if not (path / LAST).is_file() and runs:
                raise UserError(
                    f"{path} holds {len(runs)} runs (a sweep or outputs folder), not one; point "
                    f"ckpt_path at one of them, e.g. {ckpt_override(runs[0])}."
                )
            path = path / prefer if (path / prefer).is_file() else path / LAST
    run = path.parent.parent
    in_a_run = path.parent.name == "checkpoints" and (run / ".hydra").is_dir()
    if in_a_run and not path.exists() and not (run / LAST).exists():
        raise UserError(
            f"The run in {run} saved no checkpoint (it stopped before its "
            "first epoch ended); start it again as a new run (no ckpt_path)."
        )
    load_checkpoint(path)
    return path
