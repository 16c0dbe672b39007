"""Speed of the framework against a hand-written PyTorch loop (and the Keras peer), in one run.

    python -m fashion_lab.benchmark [--epochs 3] [--repeats 1] [--keras-python PATH] [overrides...]
    python -m fashion_lab.benchmark --budget 300 [--seed 0] [--keras-python PATH] [overrides...]

Overrides are the training command's (model=..., data.batch_size=..., trainer.precision=...,
trainer=cpu|gpu). Both paths train the same network on the same data, batch size, device,
precision and memory format; each epoch trains on the training split and evaluates the
validation split. Epoch 1 is warm-up: the figures are over epochs 2..N. With --repeats R, R
pairs of runs alternate which path goes first, and the figures are the median pair's. Prints a
readable table and one JSON line. With --budget, the time-to-accuracy mode instead
(fashion_lab/race.py): experiment=fast_cpu and the Keras peer, each given that many seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import resource
import statistics
import subprocess
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig

from fashion_lab import build, plan, schema, speed
from fashion_lab.callbacks import RunRecorder
from fashion_lab.cli import command
from fashion_lab.config import REPO_ROOT, compose_config, to_dict
from fashion_lab.data import FashionMNISTDataModule
from fashion_lab.errors import UserError

KERAS_PEER = REPO_ROOT.parent / "shared" / "peers" / "keras_seed_cnn.py"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1 (argparse says what is wrong otherwise)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    value = float(text)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def steady(values: list[float]) -> list[float]:
    """Drop the warm-up epoch when there are others."""
    return values[1:] or values


def framework_path(
    cfg: DictConfig, run: build.Settings, extra: tuple[pl.Callback, ...] = ()
) -> dict[str, Any]:
    """`trainer.fit` through the full stack: DataModule, LightningModule, loggers, checkpoints
    (`extra`: callbacks of a measurement's own)."""
    recorder = RunRecorder()
    callbacks = [recorder, *build.seeding(cfg.seed), *extra]  # as a run: same seed, accuracy
    datamodule = build.datamodule(cfg, run.steps_per_call)
    module = build.module(cfg, build.network(cfg.model), run, to_dict(cfg))
    trainer = build.trainer(cfg, run, callbacks)
    trainer.fit(module, datamodule=datamodule)
    epochs = [h["epoch_s"] for h in recorder.history]
    per_epoch_images = recorder.train_images // len(recorder.train_seconds_per_epoch)
    train_s = recorder.train_seconds_per_epoch
    return {
        "images_per_s": round(per_epoch_images * len(steady(train_s)) / sum(steady(train_s))),
        "images_per_epoch": per_epoch_images,
        "epoch_s": round(statistics.median(steady(epochs)), 2),
        "epoch_s_all": epochs,
        "val_acc": round(float(trainer.callback_metrics["val/acc"]), 4),
        "val_loss": round(float(trainer.callback_metrics["val/loss"]), 4),
        "device": str(trainer.strategy.root_device),
        "precision": str(trainer.precision),
    }


DTYPES = MappingProxyType(
    {"64": torch.float64, "32": torch.float32, "bf16": torch.bfloat16, "16": torch.float16}
)
"""The dtype of each of Lightning's precisions ("bf16-mixed", "64-true", ...) by its first part."""


class HandLoop:
    """The same training as a minimal loop: index, normalize, forward, backward, step, at the
    run's precision ("bf16-mixed": autocast; "64-true": weights and inputs in that dtype) and
    memory format."""

    def __init__(
        self, cfg: DictConfig, run: build.Settings, datamodule: FashionMNISTDataModule
    ) -> None:
        self.device = torch.device("cuda" if run.accelerator == "gpu" else "cpu")
        kind, _, mode = run.trainer["precision"].partition("-")
        dtype = DTYPES[kind]
        self.autocast = (
            torch.autocast(self.device.type, dtype=dtype) if mode == "mixed" else nullcontext()
        )
        self.weights = dtype if mode == "true" else torch.float32
        torch.manual_seed(cfg.seed or 0)
        self.net = build.network(cfg.model).to(self.device, self.weights)
        self.channels_last = run.channels_last
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = build.instantiate(cfg.optimizer, "optimizer")(params=self.net.parameters())
        self.x_train, self.y_train = (t.to(self.device) for t in datamodule.split("train"))
        self.mean, self.std, self.batch = datamodule.mean, datamodule.std, datamodule.batch_size
        self.steps = len(self.x_train) // self.batch  # an epoch's

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = ((x.float() / 255 - self.mean) / self.std).to(self.weights)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def step(self, index: torch.Tensor) -> None:
        """One optimizer step on the training images at `index`."""
        with self.autocast:
            loss = torch.nn.functional.cross_entropy(
                self.net(self.prepare(self.x_train[index])), self.y_train[index]
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()


def hand_loop(
    cfg: DictConfig, run: build.Settings, datamodule: FashionMNISTDataModule, epochs: int
) -> dict[str, Any]:
    """`epochs` of the HandLoop, each training then validating."""
    loop = HandLoop(cfg, run, datamodule)
    net, batch, steps = loop.net, loop.batch, loop.steps
    x_val, y_val = (t.to(loop.device) for t in datamodule.split("val"))
    train_s, epoch_s = [], []
    for _ in range(epochs):
        loop.sync()
        start = time.perf_counter()
        net.train()
        order = torch.randperm(len(loop.x_train), device=loop.device)
        for i in range(steps):
            loop.step(order[i * batch : (i + 1) * batch])
        loop.sync()
        train_s.append(time.perf_counter() - start)
        net.eval()
        correct = 0
        with torch.no_grad(), loop.autocast:
            for i in range(0, len(x_val), datamodule.eval_batch_size):
                logits = net(loop.prepare(x_val[i : i + datamodule.eval_batch_size]))
                correct += int(
                    (logits.argmax(1) == y_val[i : i + datamodule.eval_batch_size]).sum()
                )
        loop.sync()
        epoch_s.append(time.perf_counter() - start)
    return {
        "images_per_s": round(steps * batch * len(steady(train_s)) / sum(steady(train_s))),
        "epoch_s": round(statistics.median(steady(epoch_s)), 2),
        "epoch_s_all": [round(t, 3) for t in epoch_s],
        "val_acc": round(correct / len(x_val), 4),
        "weights": str(next(net.parameters()).dtype).removeprefix("torch."),
    }


def check_keras_python(python: str) -> None:
    """Before anything is measured: the peer is there and `python` imports TensorFlow.

    Raises:
        UserError: the peer script is missing, or the interpreter cannot run it.
    """
    if not KERAS_PEER.is_file():
        raise UserError(f"The Keras peer {KERAS_PEER} is missing; drop --keras-python.")
    try:
        subprocess.run([python, "-c", "import tensorflow"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = (getattr(e, "stderr", b"") or b"").decode(errors="replace") or str(e)
        raise UserError(
            f"--keras-python {python} cannot import TensorFlow ({detail.strip().splitlines()[-1]});"
            " give the python of a venv with tensorflow-cpu, as ../shared/peers/keras_seed_cnn.py"
            " says, or drop --keras-python."
        ) from None


def keras_peer(python: str, data_dir: Path, epochs: int, batch_size: int) -> dict[str, Any]:
    """Run ../shared/peers/keras_seed_cnn.py under another interpreter; its JSON line."""
    command = [
        python,
        str(KERAS_PEER),
        "--epochs",
        str(epochs),
        "--batch-size",
        str(batch_size),
        "--data-dir",
        str(data_dir),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        detail = getattr(e, "stderr", "") or str(e)
        raise UserError(
            f"The Keras peer failed under {python} ({detail.strip().splitlines()[-1]}); install "
            "it as ../shared/peers/keras_seed_cnn.py says, or drop --keras-python."
        ) from None
    result = json.loads(done.stdout.strip().splitlines()[-1])
    steady_epochs = steady(result["epoch_s"])
    result["epoch_s_steady"] = round(statistics.median(steady_epochs), 2)
    return result


def table(report: dict[str, Any]) -> str:
    rows = [("path", "train img/s", "epoch s", "val/test acc")]
    for name in ("framework", "hand_loop", "keras"):
        if name in report:
            r = report[name]
            acc = r.get("val_acc", (r.get("test_acc") or [None])[-1])
            epoch = r.get("epoch_s_steady", r.get("epoch_s"))
            rows.append((name, f"{r['images_per_s']:,}", f"{epoch}", f"{acc}"))
    width = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)) for row in rows]
    lines.append(f"framework / hand loop (images/s): {report['framework_vs_hand_loop']:.3f}")
    if "repeats" in report:
        lines[0] += "  (the median pair)"
        ratios = ", ".join(f"{r['ratio']:.3f}" for r in report["repeats"])
        lines[-1] += f", the median of {len(report['repeats'])} pairs: {ratios}"
    if "keras" in report:
        lines.append(f"framework / Keras epoch time: {report['epoch_time_vs_keras']:.3f}")
        lines.append(f"framework / Keras images/s: {report['framework_vs_keras']:.3f}")
    if report.get("speed"):
        lines.append(f"picked: {speed.describe(report['speed'])}")
    lines.append(
        f"peak RSS: framework {report['peak_rss_mb']['framework']:.0f} MB, "
        f"whole process {report['peak_rss_mb']['process']:.0f} MB"
    )
    return "\n".join(lines)


def prepare(
    epochs: int, overrides: list[str], tmp: str
) -> tuple[DictConfig, build.Settings, FashionMNISTDataModule]:
    """Both paths' config (logs under `tmp`, no progress bar), speed settings and data."""
    overrides = [
        f"trainer.max_epochs={epochs}",
        f"paths.log_dir={tmp}",
        "trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false",
        *overrides,
    ]
    cfg = schema.check(compose_config(overrides, Path(tmp) / "run0"))
    datamodule = build.datamodule(cfg)  # the hand loop's: one batch per step
    datamodule.setup()  # the data checked before what null leaves is measured
    return cfg, plan.settings(cfg), datamodule


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fashion_lab.benchmark", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--epochs", type=positive_int, default=3, help="epochs per path (first: warm-up)"
    )
    parser.add_argument("--keras-python", help="interpreter with tensorflow-cpu for the peer")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="print the N functions with the most own time in the framework path (cProfile)",
    )
    parser.add_argument(
        "--repeats",
        type=positive_int,
        default=1,
        metavar="R",
        help="measure R pairs of runs, alternating which path goes first; the ratio is the "
        "median pair's (on a noisy machine one pair's ratio can be off by 10%%)",
    )
    parser.add_argument(
        "--budget",
        type=positive_float,
        metavar="SECONDS",
        help="time-to-accuracy mode: experiment=fast_cpu (with the overrides) and the Keras peer, "
        "each a process given SECONDS of wall time; their test accuracy at it",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the seed of both runs of the --budget mode"
    )
    parser.add_argument("overrides", nargs="*", help="training config overrides")
    return parser.parse_args(argv)


def pairs_of_runs(
    cfg: DictConfig, run: build.Settings, datamodule: FashionMNISTDataModule, args, tmp: str
) -> tuple[list[dict[str, dict[str, Any]]], float]:
    """`args.repeats` pairs (framework, hand loop), alternating which goes first; and the
    framework's peak memory."""
    profiler = cProfile.Profile() if args.profile else None
    pairs, framework_rss = [], 0.0
    for repeat in range(args.repeats):
        pair: dict[str, dict[str, Any]] = {}
        # ABBA order: a machine that drifts slower or faster favours neither path
        for path in ("framework", "hand_loop")[:: -1 if repeat % 2 else 1]:
            # the last run's objects (Lightning's hold cycles) freed now, not by a
            # collection during the next measurement
            gc.collect()
            if path == "framework":
                cfg.paths.output_dir = str(Path(tmp) / f"run{repeat}")
                with profiler if profiler and repeat == 0 else nullcontext():
                    pair[path] = framework_path(cfg, run)
                framework_rss = framework_rss or peak_rss_mb()
            else:
                pair[path] = hand_loop(cfg, run, datamodule, args.epochs)
        pairs.append(pair)
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    return pairs, framework_rss


def report_of(
    cfg: DictConfig, run: build.Settings, pairs: list[dict], framework_rss: float, epochs: int
) -> dict[str, Any]:
    """The median pair's figures (by the framework / hand loop ratio), and each pair's."""
    ratios = [p["framework"]["images_per_s"] / p["hand_loop"]["images_per_s"] for p in pairs]
    median = pairs[ratios.index(statistics.median_low(ratios))]
    report: dict[str, Any] = {
        "model": cfg.model_name,
        "batch_size": cfg.data.batch_size,
        "steps_per_call": run.steps_per_call,
        "precision": run.trainer["precision"],
        "channels_last": run.channels_last,
        "speed": run.speed.record() if run.speed else None,
        "epochs": epochs,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "framework": median["framework"],
        "hand_loop": median["hand_loop"],
        "framework_vs_hand_loop": round(statistics.median_low(ratios), 3),
        "peak_rss_mb": {"framework": round(framework_rss), "process": round(peak_rss_mb())},
        "date": time.strftime("%Y-%m-%d"),
    }
    if len(pairs) > 1:
        report["repeats"] = [
            {
                "framework": p["framework"]["images_per_s"],
                "hand_loop": p["hand_loop"]["images_per_s"],
                "ratio": round(r, 3),
            }
            for p, r in zip(pairs, ratios, strict=True)
        ]
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name()
        report["gpu_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return report


def time_to_accuracy(args: argparse.Namespace) -> None:
    """The --budget mode: both runs, a readable table and one JSON line."""
    from fashion_lab import race

    with tempfile.TemporaryDirectory() as tmp:
        cfg = schema.check(compose_config(args.overrides, Path(tmp) / "run0"))
        data_dir = build.datamodule(cfg).loaded().data_dir  # the files the peer reads too
    report = race.race(args, data_dir, KERAS_PEER)
    print(race.table(report))
    print(json.dumps(report))


@command
def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.keras_python:
        check_keras_python(args.keras_python)
    if args.budget is not None:
        time_to_accuracy(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        cfg, run, datamodule = prepare(args.epochs, args.overrides, tmp)
        pairs, framework_rss = pairs_of_runs(cfg, run, datamodule, args, tmp)
    report = report_of(cfg, run, pairs, framework_rss, args.epochs)
    if args.keras_python:
        framework = report["framework"]
        keras = keras_peer(args.keras_python, datamodule.data_dir, args.epochs, cfg.data.batch_size)
        report["keras"] = keras
        report["epoch_time_vs_keras"] = round(framework["epoch_s"] / keras["epoch_s_steady"], 3)
        report["framework_vs_keras"] = round(framework["images_per_s"] / keras["images_per_s"], 3)
    print(table(report))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
