"""Speed choices that a config leaves null (`trainer.precision`, `module.channels_last`,
`module.steps_per_call`), made by timing a few training steps of each candidate with the run's
own network, batch size and device, and cached per machine, torch version, network and batch
size, so a sweep pays once.

A CPU's flags do not say whether bf16 autocast is faster than fp32 (two CPUs with avx512_bf16
went either way); a measurement does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from fashion_lab.data import IndexBatches
from fashion_lab.module import LitClassifier

log = logging.getLogger(__name__)

CACHE_ENV = "FASHION_LAB_SPEED_CACHE"
"""Environment variable naming the cache file (default: ~/.cache/fashion_lab/speed.json)."""

LOWER_PRECISION_MARGIN = 1.10
"""A mixed precision is picked only when this much faster than full precision: it changes the
numbers a run computes, so a near-tie (which a noisy machine may flip) keeps fp32."""

FORMAT_MARGIN = 1.03
"""The other memory format is picked only when this much faster (the numbers stay the same)."""

WARMUP_STEPS = 1  # the first step creates the oneDNN/cuDNN primitives
MIN_STEPS, MAX_STEPS, BUDGET_S = 3, 30, 0.5
"""Each candidate: at least MIN_STEPS timed steps, more until BUDGET_S or MAX_STEPS."""

GIVE_UP_SHARE = 0.5
"""A candidate whose first timed step runs below this share of the images/s it needs to win stops
there: a clear loser (bf16 emulated on a CPU without it) would otherwise cost the most time."""

IMAGE_SHAPE = (1, 28, 28)

STEPS_PER_CALL = (1, 2, 4, 8)
CALL_SHARE = 0.01
"""`module.steps_per_call`: the fewest optimizer steps per Lightning training call that bring
Lightning's fixed cost per call under this share of the call's time."""

BUSY_SHARE = 0.25
"""Figures timed while other processes kept more than this share of the run's CPUs busy (or a
hypervisor took it) are used for the run but not cached: they say more about the other load."""


@dataclass(frozen=True)
class Choice:
    """The values picked, and every candidate's training images/s (label -> figure)."""

    precision: str
    channels_last: bool
    measured: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    steps_per_call: int | None = None
    # Lightning's cost per training call and the chosen candidate's step, in ms
    call_ms: float | None = None
    step_ms: float | None = None
    # the share of the run's CPUs that other processes kept busy while timing (None: not known)
    busy: float | None = None

    def line(self, what: str) -> str:
        return f"Speed for {what}: {describe(self.record())}."

    def record(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "channels_last": self.channels_last,
            "images_per_s": dict(self.measured),
            "steps_per_call": self.steps_per_call,
            "call_ms": self.call_ms,
            "step_ms": self.step_ms,
            "cached": self.cached,
            "busy": self.busy,
        }


def describe(record: dict[str, Any]) -> str:
    """A Choice's record in words: what was picked, then every candidate's figure."""
    figures = "; ".join(f"{k} {v:,.0f}" for k, v in record["images_per_s"].items())
    source = f"cached in {cache_path()}" if record["cached"] else "timed now"
    if not record["cached"] and _too_busy(record.get("busy")):
        source += (
            f" while other processes kept {record['busy']:.0%} of the CPUs busy, so not cached"
        )
    steps = ""
    if record.get("steps_per_call") is not None and record.get("call_ms") is not None:
        steps = (
            f", {record['steps_per_call']} steps per call (Lightning's cost per call "
            f"{record['call_ms']:.2f} ms, a step {record['step_ms']:.1f} ms)"
        )
    return (
        f"{record['precision']}, {fmt(record['channels_last'])}{steps} "
        f"(training images/s: {figures}; {source})"
    )


def fmt(channels_last: bool) -> str:
    return "channels_last" if channels_last else "contiguous"


def label(precision: str, channels_last: bool) -> str:
    return f"{precision}/{fmt(channels_last)}"


def _too_busy(share: float | None) -> bool:
    return share is not None and share > BUSY_SHARE


class CpuLoad:
    """From its creation to `share()`: the share of this process's CPUs that other processes
    used, or the hypervisor gave to other machines (Linux's /proc/stat). None where it cannot be
    read or over less than MIN_WINDOW_S, which is too short for its 10 ms ticks."""

    MIN_WINDOW_S = 0.2

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, int] | None:
        try:
            cpus = os.sched_getaffinity(0)
            busy = 0
            with open("/proc/stat") as f:
                for line in f:
                    name, *values = line.split()
                    if name[:3] == "cpu" and name[3:].isdigit() and int(name[3:]) in cpus:
                        # user nice system idle iowait irq softirq steal (guest is in user)
                        user, nice, system, _, _, irq, softirq, steal = map(int, values[:8])
                        busy += user + nice + system + irq + softirq + steal
            ticks = os.sysconf("SC_CLK_TCK")
        except (AttributeError, OSError, ValueError):
            return None
        return time.perf_counter(), busy / ticks, time.process_time(), len(cpus)

    def share(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None or end[0] - self._start[0] < self.MIN_WINDOW_S:
            return None
        wall, busy, own = (b - a for a, b in zip(self._start[:3], end[:3], strict=True))
        return round(min(1.0, max(0.0, (busy - own) / (wall * end[3]))), 3)


def candidate_precisions(device: torch.device) -> list[str]:
    """Full precision first (the one a near-tie keeps), then the device's mixed ones."""
    if device.type == "cuda":
        bf16 = ["bf16-mixed"] if torch.cuda.is_bf16_supported() else []
        return ["32-true", *bf16, "16-mixed"]
    return ["32-true", "bf16-mixed"]


def cache_path() -> Path:
    if path := os.environ.get(CACHE_ENV):
        return Path(path)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fashion_lab" / "speed.json"


def machine(device: torch.device) -> str:
    """What the figures depend on besides the network: the processor, threads, torch."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = platform.processor() or platform.machine()
        try:  # the model's name, and its flags (a VM may name two different CPUs alike)
            lines = Path("/proc/cpuinfo").read_text().splitlines()
        except OSError:
            lines = []
        found = {}
        for line in lines:
            name, _, value = line.partition(":")
            found.setdefault(name.strip(), value.strip())
        if "model name" in found:
            flags = hashlib.sha1(found.get("flags", "").encode()).hexdigest()[:8]
            hardware = f"{found['model name']} (flags {flags})"
        capability = torch.backends.cpu.get_cpu_capability()
        hardware += f", {capability}, {torch.get_num_threads()} threads"
    return f"{hardware}, torch {torch.__version__}"


def _read_cache() -> dict[str, dict[str, float]]:
    try:
        entries = json.loads(cache_path().read_text()).get("entries", {})
        return entries if isinstance(entries, dict) else {}
    except (OSError, ValueError, AttributeError):  # none yet, unreadable or damaged: measure
        return {}


def _write_cache(key: str, entry: dict[str, float]) -> None:
    """Atomically; a cache that cannot be written (read-only home, full disk) costs only a new
    measurement next time."""
    path = cache_path()
    entries = _read_cache()
    entries[key] = entry
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
            json.dump({"version": 1, "entries": entries}, f, indent=1, sort_keys=True)
        os.replace(f.name, path)
    except OSError as e:
        log.debug("speed cache %s not written: %s", path, e)


def time_steps(
    make_network: Callable[[], nn.Module],
    make_optimizer: Callable[[Any], torch.optim.Optimizer],
    batch_size: int,
    device: torch.device,
    precision: str,
    channels_last: bool,
    *,
    give_up_below: float = 0.0,
) -> float:
    """Training images/s of one candidate: the median of timed steps (forward, loss, backward,
    optimizer step) on random images, after a warm-up; the first step's figure alone where it is
    below `give_up_below`. The caller's random state is kept."""
    kind = precision.partition("-")[0]
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(kind)
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
    memory = torch.channels_last if channels_last else torch.contiguous_format
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        net = make_network().to(device).to(memory_format=memory).train()
        optimizer = make_optimizer(net.parameters())
        x = torch.randn(batch_size, *IMAGE_SHAPE, device=device).contiguous(memory_format=memory)
        with torch.no_grad(), autocast:
            classes = net(x[:1]).shape[1]
        y = torch.randint(0, classes, (batch_size,), device=device)

        def step() -> None:
            with autocast:
                loss = nn.functional.cross_entropy(net(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        for _ in range(WARMUP_STEPS):
            step()
        times: list[float] = []
        deadline = time.perf_counter() + BUDGET_S
        while len(times) < MIN_STEPS or (len(times) < MAX_STEPS and time.perf_counter() < deadline):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
            if batch_size / times[0] < give_up_below:
                break
    return batch_size / statistics.median(times)


class Rates:
    """Images/s of each candidate (precision, memory format): from the cache `entry`, or timed
    once with `time(precision, channels_last, **options)` and put in it."""

    def __init__(self, entry: dict[str, float], time: Callable[..., float]) -> None:
        self.entry, self.time = entry, time
        self.measured_now = False

    def __call__(self, precision: str, channels_last: bool, need: float = 0.0) -> float:
        """`need`: the images/s the candidate must reach to win (a clear loser stops early)."""
        name = label(precision, channels_last)
        if not isinstance(self.entry.get(name), int | float):
            give_up = {"give_up_below": GIVE_UP_SHARE * need} if need else {}
            self.entry[name] = round(self.time(precision, channels_last, **give_up))
            self.measured_now = True
        return self.entry[name]


def fewest_steps_per_call(call_s: float, step_s: float) -> int:
    """The fewest steps per call that bring Lightning's cost per call under CALL_SHARE."""
    return next(
        (k for k in STEPS_PER_CALL if call_s <= CALL_SHARE * k * step_s), STEPS_PER_CALL[-1]
    )


def choose(
    make_network: Callable[[], nn.Module],
    make_optimizer: Callable[[Any], torch.optim.Optimizer],
    *,
    network_key: str,
    batch_size: int,
    device: torch.device,
    precision: str | None,
    channels_last: bool | None,
    steps_per_call: int | None = 1,
    fallback: str,
    timer: Callable[..., float] | None = None,
    call_cost: Callable[[torch.device], float] | None = None,
) -> Choice:
    """The precision and memory format to train with: the given ones where not None, the others
    timed (precision at the first format, then the other format at the chosen precision).

    `network_key` identifies the network in the cache (its resolved config). A network that
    cannot be timed (it fails on random images, or runs out of memory) gets the `fallback`
    precision and channels-last, so that the run itself reports what is wrong."""
    timer = timer or time_steps
    precisions = [precision] if precision else candidate_precisions(device)
    formats = [channels_last] if channels_last is not None else [True, False]
    if len(precisions) == 1 and len(formats) == 1 and steps_per_call is not None:
        return Choice(precisions[0], formats[0], steps_per_call=steps_per_call)
    key = f"{machine(device)} | {device.type} | batch {batch_size} | {network_key}"
    entry = dict(_read_cache().get(key) or {})
    rate = Rates(
        entry,
        lambda p, c, **kw: timer(make_network, make_optimizer, batch_size, device, p, c, **kw),
    )
    first = formats[0]
    call_ms = step_ms = None
    load = CpuLoad()
    try:
        best_precision, best_format = _compare(precisions, formats, rate)
        if steps_per_call is None:
            step_s = batch_size / rate(best_precision, best_format)
            call_s = (call_cost or call_overhead_s)(device)
            steps_per_call = fewest_steps_per_call(call_s, step_s)
            call_ms, step_ms = round(call_s * 1e3, 3), round(step_s * 1e3, 2)
    except Exception as e:  # the user's network fails on random images: the run will say why
        log.debug("speed candidates not timed: %r", e, exc_info=True)
        return Choice(precision or fallback, first, steps_per_call=steps_per_call or 1)
    busy = load.share()
    if rate.measured_now and not _too_busy(busy):
        _write_cache(key, entry)
    # the candidates this choice looked at, in the order they were compared
    looked = [label(p, first) for p in precisions] + [label(best_precision, c) for c in formats[1:]]
    measured = {name: entry[name] for name in dict.fromkeys(looked) if name in entry}
    return Choice(
        best_precision,
        best_format,
        measured,
        cached=not rate.measured_now,
        steps_per_call=steps_per_call,
        call_ms=call_ms,
        step_ms=step_ms,
        busy=busy,
    )


def _compare(
    precisions: list[str], formats: list[bool], rate: Callable[..., float]
) -> tuple[str, bool]:
    """The fastest precision at the first format (a mixed one only by LOWER_PRECISION_MARGIN),
    then the fastest format at it (the other only by FORMAT_MARGIN)."""
    first, full = formats[0], precisions[0]
    floor = LOWER_PRECISION_MARGIN * rate(full, first) if len(precisions) > 1 else 0
    faster = [p for p in precisions[1:] if rate(p, first, floor) >= floor]
    best_precision = max(faster, key=lambda p: rate(p, first)) if faster else full
    best_format = first
    for other in formats[1:]:
        base = rate(best_precision, first)
        if rate(best_precision, other, FORMAT_MARGIN * base) >= FORMAT_MARGIN * base:
            best_format = other
    return best_precision, best_format


def call_overhead_s(device: torch.device) -> float:
    """Lightning's fixed cost of one training call of LitClassifier on `device`, in seconds:
    the same 256 optimizer steps of a tiny network trained one and eight per call, the time
    saved divided by the calls saved (best of two rounds, after a warm-up fit). Cached per
    machine and Lightning version, unless other processes kept the CPUs busy meanwhile."""
    key = f"{machine(device)} | {device.type} | lightning {pl.__version__} | cost per call"
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and isinstance(cached.get("seconds"), int | float):
        return cached["seconds"]
    steps, group = 256, 8
    load = CpuLoad()
    _fit_seconds(device, 1, 32)  # Lightning's first fit in a process sets itself up
    rounds = [[_fit_seconds(device, k, steps) for k in (1, group)] for _ in range(2)]
    one, grouped = (min(r[i] for r in rounds) for i in (0, 1))
    seconds = max(0.0, (one - grouped) / (steps - steps // group))
    if not _too_busy(load.share()):
        _write_cache(key, {"seconds": round(seconds, 7)})
    return seconds


def _fit_seconds(device: torch.device, steps_per_call: int, steps: int) -> float:
    """Seconds of one training epoch of `steps` optimizer steps of a tiny network."""
    batch = 32
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        images = torch.randn(steps * batch, *IMAGE_SHAPE, device=device)
        labels = torch.randint(0, 10, (steps * batch,), device=device)
        loader = IndexBatches(
            images, labels, batch, shuffle=True, drop_last=True, group=steps_per_call
        )
        module = LitClassifier(
            nn.Sequential(nn.Flatten(), nn.Linear(images[0].numel(), 10)),
            optimizer=lambda params: torch.optim.SGD(params, lr=0.01),
            num_prediction_samples=0,
            steps_per_call=steps_per_call,
        )
        module.example_input_array = None
        timer = _EpochTimer()
        trainer = pl.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            log_every_n_steps=40,
            callbacks=[timer],
        )
        trainer.fit(module, train_dataloaders=loader)
    return timer.seconds


class _EpochTimer(pl.Callback):
    """Seconds of the training epoch."""

    seconds = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self._start
