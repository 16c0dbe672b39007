"""fashion_lab: a Hydra-configured PyTorch Lightning experiment framework for Fashion-MNIST."""

import os

# Before torch loads OpenMP: idle threads sleep instead of spinning, so that runs side by side
# (a parallel sweep) share the cores (experiments/benchmark/RESULTS.md).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.2.0"
