"""Device choices: `trainer.gpus` translation, GPU checks, and a precision by the device's flags."""

from __future__ import annotations

import os
from typing import Any

import torch

from fashion_lab import adapters
from fashion_lab.errors import UserError

NO_GPU = (
    "No CUDA GPU was found on this machine; run on the CPU with trainer.gpus=0 "
    "(or trainer=cpu), or install a CUDA build of PyTorch on a machine with a GPU."
)


def cpu_has_fast_bf16() -> bool:
    """True where the CPU has bf16 matrix units (AMX) or instructions (avx512_bf16)."""
    return adapters.cpu_bf16_flags()


def fastest_precision(accelerator: str) -> str:
    """The precision a null `trainer.precision` gets where it cannot be measured (several
    processes): bf16 autocast where the device has bf16 hardware, else full precision. The
    flags are only a guess, which fashion_lab.speed replaces by a measurement where it can."""
    if accelerator == "gpu":
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    return "bf16-mixed" if cpu_has_fast_bf16() else "32-true"


def resolve_devices(trainer_cfg: dict[str, Any], job_index: int | None = None) -> dict[str, Any]:
    """Turn a trainer config into Lightning Trainer arguments.

    `gpus` (removed in Lightning 2) becomes accelerator/devices; a GPU request on a machine
    without one, or for more GPUs than are visible, is a UserError. Sweep job `job_index` that
    asks for one GPU while several are visible gets GPU `job_index mod n`, so parallel jobs
    spread out.
    """
    cfg = dict(trainer_cfg)
    gpus = cfg.pop("gpus", None)
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus is not None:
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < -1:
            raise UserError(
                f"trainer.gpus must be a whole number of GPUs (0: CPU, -1: all), got {gpus!r}; "
                "set e.g. trainer.gpus=1, or trainer.gpus=0 for the CPU."
            )
        if gpus == 0:
            cfg.update(accelerator="cpu", devices=1)
        else:
            if available == 0:
                raise UserError(NO_GPU)
            if gpus > available:
                raise UserError(
                    f"trainer.gpus={gpus} asks for more GPUs than the {available} visible; "
                    f"set trainer.gpus={available} or fewer."
                )
            cfg.update(accelerator="gpu", devices=gpus if gpus > 0 else available)
    accelerator = str(cfg.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and available == 0:
        raise UserError(NO_GPU)
    if accelerator == "auto":
        accelerator = "gpu" if available else "cpu"
    if accelerator == "cuda":
        accelerator = "gpu"
    cfg["accelerator"] = accelerator
    devices, cpus = cfg.get("devices"), os.cpu_count() or 1
    counted = isinstance(devices, int) and not isinstance(devices, bool)
    if accelerator == "cpu" and counted and devices > cpus:  # a process each: all started
        raise UserError(
            f"trainer.devices={devices} asks for {devices} processes on this machine's "
            f"{cpus} CPUs; set trainer.devices={min(2, cpus)} or fewer (trainer=ddp uses 2)."
        )
    if accelerator == "gpu" and job_index is not None and available > 1 and cfg.get("devices") == 1:
        cfg["devices"] = [job_index % available]
    if cfg.get("benchmark") is None:
        cfg["benchmark"] = accelerator == "gpu" and not cfg.get("deterministic")
    return cfg
