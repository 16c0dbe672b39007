"""What a run leaves out of its console output: warnings and lines of Lightning's with nothing
in them for a user. Installed by the commands' entry points, not on import."""

from __future__ import annotations

import logging
import re
import warnings

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
