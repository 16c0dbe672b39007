"""fashion_lab's Hydra launcher plugins (Hydra finds plugins in the hydra_plugins package):
submitit's, with a sentence where they cannot work."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Any

from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from fashion_lab.errors import UserError


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    """submitit's SLURM launcher (`hydra/launcher=slurm`), refusing at once off a cluster."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        if shutil.which("srun") is None:
            raise UserError(
                "hydra/launcher=slurm submits jobs to a SLURM cluster and finds no srun here; run "
                "the sweep on the cluster's login node, or use hydra/launcher=parallel on this "
                "machine."
            )
        return super().launch(job_overrides, initial_job_idx)
