"""Evaluate a trained checkpoint on the official test set.

    python -m fashion_lab.evaluate ckpt_path=<.ckpt file, run directory or last> [data.key=...]

Rebuilds the network from the config saved in the checkpoint (a run directory means its best
checkpoint), scores the 10k test images, prints a per-class table, and writes metrics.json,
confusion_matrix.png and predictions.png into an `evaluation/` folder of the run.
"""

from __future__ import annotations

import json
import sys

import matplotlib.pyplot as plt
import torch

from fashion_lab import build
from fashion_lab.cli import command
from fashion_lab.config import check_writable, model_name
from fashion_lab.data import CLASS_NAMES
from fashion_lab.figures import confusion_matrix_figure, prediction_grid_figure
from fashion_lab.inference import load_trained, parse_args


def evaluate(ckpt_path: str, overrides: list[str] = (), trusted: list[str] = ()) -> dict:
    """Score the checkpoint on the test set; write and return its metrics."""
    trained = load_trained(ckpt_path, overrides, trusted)
    out = trained.run_dir / "evaluation"
    check_writable(
        out, "", "copy the run directory to a place you can write to and evaluate it there"
    )
    data = build.datamodule(trained.cfg)
    data.setup()
    images, labels = data.split("test")
    probabilities = trained.probabilities(images.float() / 255)
    predictions = probabilities.argmax(dim=1)
    n = len(CLASS_NAMES)
    confusion = torch.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)
    per_class = (confusion.diag() / confusion.sum(dim=1).clamp_min(1)).tolist()
    metrics = {
        "checkpoint": str(trained.path),
        "model": model_name(trained.cfg),
        "test_images": len(labels),
        "test_acc": (predictions == labels).float().mean().item(),
        "test_acc_per_class": dict(zip(CLASS_NAMES, per_class, strict=True)),
        "confusion_matrix": confusion.tolist(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    correct = predictions == labels  # the grid: 16 mistakes, then 16 right answers
    wrong_first = torch.cat([(~correct).nonzero()[:16, 0], correct.nonzero()[:16, 0]])
    figures = {
        "confusion_matrix.png": confusion_matrix_figure(
            confusion, CLASS_NAMES, title=f"{metrics['model']}: test confusion matrix"
        ),
        "predictions.png": prediction_grid_figure(
            images[wrong_first].float() / 255,
            labels[wrong_first],
            predictions[wrong_first],
            CLASS_NAMES,
        ),
    }
    for name, figure in figures.items():
        figure.savefig(out / name, dpi=100)
        plt.close(figure)
    metrics["output_dir"] = str(out)
    return metrics


def table(metrics: dict) -> str:
    """Per-class accuracy and the overall figure as aligned text."""
    width = max(len(c) for c in CLASS_NAMES)
    lines = [f"{'class':<{width}}  test acc", "-" * (width + 10)]
    lines += [f"{c:<{width}}  {a:8.2%}" for c, a in metrics["test_acc_per_class"].items()]
    lines += ["-" * (width + 10), f"{'all':<{width}}  {metrics['test_acc']:8.2%}"]
    return "\n".join(lines)


@command
def main(argv: list[str] | None = None) -> None:
    args = parse_args(
        sys.argv[1:] if argv is None else argv, "python -m fashion_lab.evaluate", __doc__
    )
    metrics = evaluate(args.ckpt_path, args.overrides, args.trusted)
    print(
        f"{metrics['model']} from {metrics['checkpoint']}: {metrics['test_images']:,} test images"
    )
    print(table(metrics))
    print(f"metrics.json, confusion_matrix.png, predictions.png in {metrics['output_dir']}")


if __name__ == "__main__":
    main()
