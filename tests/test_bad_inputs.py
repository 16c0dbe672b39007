"""A generated bad-input sweep: every key of the schema and every option that conf/ passes to
the Trainer, the optimizers, the schedulers, the callbacks and the default model, each set to 0,
-1, a huge number, a wrong type and an empty list, either trains a tiny run or ends in one
sentence with exit 2, never a traceback.

Each case runs in this process as `python -m fashion_lab` runs it (Hydra's compose API, then
the task), a few batches each. FASHION_LAB_CATALOGUE=<file> writes what each case did as a
Markdown table (experiments/errors/generated.md is that file).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest
from conftest import compose_run, tiny_overrides

from fashion_lab import schema, train
from fashion_lab.config import CONFIG_DIR
from fashion_lab.errors import UserError

VALUES = ("0", "-1", "1000000000000", "abc", "[]")
"""Boundary values: zero, negative, huge, a wrong type (a word), an empty list."""

SKIPPED = {
    "paths.output_dir": "set by the command itself (hydra.run.dir)",
    "trainer.default_root_dir": "the run's directory, an interpolation of paths.output_dir",
}


def schema_keys(node: type = schema.Config, prefix: str = "") -> list[str]:
    """Every leaf key of fashion_lab's typed config."""
    keys = []
    for f in dataclasses.fields(node):
        if f.name.startswith("_") or f.name in ("model", "optimizer", "scheduler", "trainer"):
            continue
        if f.name in ("logger", "callbacks"):
            continue
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            keys += schema_keys(type(default), f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def group_keys(tmp: Path) -> list[tuple[list[str], str]]:
    """(the group choice, a key) for each option of the optimizers, schedulers, Trainer,
    callbacks and default model that conf/ ships."""
    cases: list[tuple[list[str], str]] = []
    for group in ("optimizer", "scheduler"):
        for option in sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml")):
            cfg = compose_run([f"{group}={option}"], tmp)
            node = cfg.get(group) or {}
            cases += [
                ([f"{group}={option}"], f"{group}.{k}") for k in node if not k.startswith("_")
            ]
    cfg = compose_run(["callbacks=[default,early_stopping]"], tmp)
    for name, node in cfg.callbacks.items():
        choice = ["callbacks=[default,early_stopping]"]
        cases += [(choice, f"callbacks.{name}.{k}") for k in node if not k.startswith("_")]
    cases += [([], f"trainer.{k}") for k in cfg.trainer if not k.startswith("_")]
    cases += [([], f"model.{k}") for k in cfg.model if not k.startswith("_")]
    return [(c, k) for c, k in cases if k not in SKIPPED]


def run_case(data: Path, tmp: Path, overrides: list[str]) -> tuple[int, str]:
    """Exit code and last line, as the command's boundary ends: 0 and the record's status, 2
    and the sentence; anything else raises (a traceback)."""
    keys = {o.split("=", 1)[0] for o in overrides}
    bounded = [] if "trainer.max_steps" in keys else ["trainer.max_steps=16"]
    if "module.num_prediction_samples" not in keys:
        bounded.append("module.num_prediction_samples=0")  # its figure: half a case's time
    tiny = [o for o in tiny_overrides(data, tmp) if not o.startswith("trainer.max_epochs")]
    try:
        cfg = compose_run([*tiny, "trainer.max_epochs=1", *bounded, *overrides], tmp)
        record = train.train(cfg)
    except UserError as e:
        return 2, str(e)
    return 0, f"trained ({record['status']})"


def run_cases(data: Path, tmp: Path, cases: list[tuple[int, list[str]]]) -> list[tuple]:
    """(case, overrides, exit code, last line) of each case, in one worker process; a
    traceback's exit code is 1."""
    import logging
    import os

    os.chdir(tmp)  # a relative path given as a value lands here
    logging.disable(logging.WARNING)
    rows = []
    for i, overrides in cases:
        try:
            code, said = run_case(data, tmp / f"case{i}", overrides)
        except Exception as e:  # a traceback: what this test is here to find
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            code, said = 1, f"TRACEBACK {type(e).__name__}: {first}"
        rows.append((i, " ".join(overrides), code, said))
    return rows


@pytest.mark.slow
def test_every_key_with_every_boundary_value_trains_or_ends_in_one_sentence(tiny_data, tmp_path):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    cases = [([], k) for k in schema_keys() if k not in SKIPPED] + group_keys(tmp_path / "c")
    numbered = list(
        enumerate([*choice, f"{key}={value}"] for choice, key in cases for value in VALUES)
    )
    workers = 2  # in-process cases, spread over two processes that each run many
    started = time.perf_counter()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn) as pool:
        shares = [numbered[w::workers] for w in range(workers)]
        rows = sorted(
            r
            for done in pool.map(run_cases, [tiny_data] * workers, [tmp_path] * workers, shares)
            for r in done
        )
    seconds = time.perf_counter() - started
    if path := os.environ.get("FASHION_LAB_CATALOGUE"):
        keys = len({k for _, k in cases})
        codes = [c for _, _, c, _ in rows]
        lines = [
            "# Every key, every boundary value: what a run does",
            "",
            f"Generated by `tests/test_bad_inputs.py`: {keys} keys x {len(VALUES)} values = "
            f"{len(rows)} cases in {seconds:.0f} s on two processes; {codes.count(0)} trained a "
            f"tiny run, {codes.count(2)} ended in one sentence (exit 2), {codes.count(1)} in a "
            "traceback.",
            "",
            "| overrides | exit | what it printed last |",
            "| --- | --- | --- |",
        ]
        root = str(tmp_path)
        lines += [
            f"| `{o}` | {c} | {s.replace(root, '$TMP').replace('|', '/')} |" for _, o, c, s in rows
        ]
        Path(path).write_text("\n".join(lines) + "\n")
    for _, overrides, _code, said in rows:
        assert "\n" not in said, f"{overrides}: more than one line: {said}"
    tracebacks = [f"{o}: {s}" for _, o, c, s in rows if c == 1]
    assert not tracebacks, "\n".join(tracebacks)
