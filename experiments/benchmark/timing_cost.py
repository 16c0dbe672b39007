"""Seconds `null`'s timing of the speed candidates costs one network, from an empty cache:
`python experiments/benchmark/timing_cost.py dilated_v2`."""

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ["FASHION_LAB_SPEED_CACHE"] = str(Path(tempfile.mkdtemp()) / "speed.json")
from fashion_lab import plan
from fashion_lab.config import compose_config

model = sys.argv[1]
cfg = compose_config([f"model={model}", "trainer.accelerator=cpu"], Path(tempfile.mkdtemp()))
start = time.perf_counter()
run = plan.settings(cfg)
print(f"{model}: {time.perf_counter() - start:.1f} s; {run.speed.line(model)}")
