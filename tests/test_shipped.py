"""Everything conf/ ships runs: every optimizer x scheduler pair, every experiment preset and
every zoo model trains a tiny run, in this process, through the command's own boundary."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import compose_run, tiny_overrides, write_dataset

from fashion_lab import train
from fashion_lab.config import CONFIG_DIR
from fashion_lab.errors import UserError


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


PAIRS = [
    f"optimizer={o} scheduler={s}"
    for o, s in itertools.product(options("optimizer"), options("scheduler"))
]
PRESETS = [f"experiment={e}" for e in options("experiment")]
MODELS = [f"model={m}" for m in options("model")]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """The tiny dataset, and a larger one for experiment=quick, which trains on a tenth of an
    epoch: 92 batches make 23 calls of 4, of which it trains 2 (OneCycleLR needs a few steps)."""
    root = tmp_path_factory.mktemp("shipped")
    write_dataset(root / "tiny", n_train=640)
    write_dataset(root / "larger", n_train=6000)
    return {"tiny": root / "tiny", "larger": root / "larger"}


def run_tiny(data: Path, tmp_path: Path, overrides: list[str]) -> dict:
    """One tiny run as `python -m fashion_lab` runs it: its record, or the sentence it ends in."""
    tiny = [o for o in tiny_overrides(data, tmp_path) if not o.startswith("trainer.max_epochs")]
    cfg = compose_run([*overrides, *tiny, "trainer.max_epochs=1"], tmp_path)
    try:
        return train.train(cfg)
    except UserError as e:
        pytest.fail(f"{' '.join(overrides)} ends in: {e}")


def test_every_group_option_is_covered():
    assert len(PAIRS) == len(options("optimizer")) * len(options("scheduler")) >= 9
    assert {"experiment=dilation_study", "experiment=fast_gpu"} <= set(PRESETS)


@pytest.mark.parametrize("overrides", PAIRS + PRESETS + MODELS)
def test_what_conf_ships_trains(data, tmp_path, overrides):
    record = run_tiny(
        data["larger" if "quick" in overrides else "tiny"], tmp_path, overrides.split()
    )
    assert record["status"] == "completed"
    assert record["test_acc"] is not None and record["epochs"] == 1
