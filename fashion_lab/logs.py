"""What a command says and where: errors on the console and in the run's log file, and what a
run leaves out of its output (warnings and lines of Lightning's with nothing in them for a
user; installed by the commands' entry points, not on import)."""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings


def is_rank_zero() -> bool:
    """False in the extra processes that distributed training starts (they write nothing)."""
    return all(int(os.environ.get(k, "0")) == 0 for k in ("LOCAL_RANK", "NODE_RANK"))


def say_error(message: str, logger: logging.Logger | None = None) -> None:
    """`message` on stderr, through `logger` when given (which also writes the run's log
    file). Distributed training's extra processes meet the same errors as the first, which
    says them: theirs go to their own log files only."""
    if not is_rank_zero():
        log_to_file(message, logger)
    elif logger is None:
        print(message, file=sys.stderr)
    else:
        logger.error(message)


def log_to_file(message: str, logger: logging.Logger | None = None) -> None:
    """`message` in the run's log file only, not on the console."""
    name = logger.name if logger else "fashion_lab"
    record = logging.LogRecord(name, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def user_wants_tracebacks() -> bool:
    """HYDRA_FULL_ERROR=1: a developer asked for Hydra's full stack traces."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


WARNINGS = (
    # Lightning 2.6 calls a torch API that torch 2.13 deprecates
    r".*isinstance\(treespec, LeafSpec\).*",
    # mixed precision keeps float32 weights, so the summary's 32-bit size is the right one
    r"Precision .*-mixed is not supported by the model summary",
    # a run's checkpoint folder is its own: one that holds files is a resume's
    r"Checkpoint directory .* exists and is not empty",
)

LIGHTNING_CHATTER = re.compile(
    r"💡 Tip|`Trainer\(\w+=1\.0\)` was configured so 100%|Loading `train_dataloader` to estimate"
    r"|[GT]PU available: "
)
"""An advertisement at every Trainer; that limit_train_batches=1.0 means every batch; that the
scheduler's length is counted from the loader; which accelerators exist (the run's last line
names the device it used)."""


def _not_chatter(record: logging.LogRecord) -> bool:
    return not LIGHTNING_CHATTER.match(str(record.msg))


def quiet_lightning() -> None:
    """Drop WARNINGS and LIGHTNING_CHATTER from this process's output (idempotent)."""
    for message in WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    logger = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    if _not_chatter not in logger.filters:
        logger.addFilter(_not_chatter)
