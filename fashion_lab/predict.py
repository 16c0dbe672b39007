"""Classify your own images with a trained checkpoint.

    python -m fashion_lab.predict ckpt_path=<.ckpt, run dir or last> images='photos/*.png'

Any PNG or JPEG, of any size and colour: it is made grayscale, padded to a square with its
background colour, resized to 28x28 and, when its background is light, inverted (Fashion-MNIST
items are light on black). Prints the three most likely classes of each file; a file that is
not a readable image is named and skipped. `images` takes a glob pattern, or several separated
by commas.
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fashion_lab.data import CLASS_NAMES
from fashion_lab.errors import UserError, command
from fashion_lab.inference import load_trained, parse_args

SIZE = 28


def to_fashion_mnist(image: Image.Image) -> torch.Tensor:
    """A [1, 28, 28] tensor in [0, 1]: grayscale, square, 28x28, light item on a dark background."""
    gray = ImageOps.exif_transpose(image).convert("L")
    pixels = np.asarray(gray, dtype=np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = float(np.median(border))
    side = max(gray.size)
    square = Image.new("L", (side, side), int(background))
    square.paste(gray, ((side - gray.width) // 2, (side - gray.height) // 2))
    small = np.asarray(square.resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.float32)
    if background > 127:
        small = 255 - small
    return torch.from_numpy(small / 255).unsqueeze(0)


def expand(patterns: str) -> list[Path]:
    """Files matching comma-separated glob patterns (or plain paths), in order, once each.

    Raises:
        UserError: nothing matched.
    """
    files: list[Path] = []
    for pattern in filter(None, (p.strip() for p in patterns.split(","))):
        matches = sorted(glob.glob(str(Path(pattern).expanduser()), recursive=True))
        files += [Path(m) for m in matches if Path(m).is_file() and Path(m) not in files]
    if not files:
        raise UserError(
            f"No file matches images={patterns!r}; give a glob pattern in quotes, "
            "e.g. images='photos/*.png'."
        )
    return files


def predict(ckpt_path: str, patterns: str, top: int = 3) -> list[dict]:
    """The `top` classes and probabilities of each readable file; unreadable ones are reported."""
    files = expand(patterns)
    trained = load_trained(ckpt_path)
    results, tensors = [], []
    for path in files:
        try:
            with Image.open(path) as image:
                tensors.append(to_fashion_mnist(image))
            results.append({"file": str(path)})
        except (UnidentifiedImageError, OSError, ValueError) as e:
            reason = "not an image" if isinstance(e, UnidentifiedImageError) else str(e)
            results.append({"file": str(path), "skipped": reason})
    if tensors:
        probabilities = trained.probabilities(torch.stack(tensors))
        readable = [r for r in results if "skipped" not in r]
        for result, p in zip(readable, probabilities, strict=True):
            values, classes = p.topk(top)
            result["top"] = [
                (CLASS_NAMES[c], round(v, 4))
                for c, v in zip(classes.tolist(), values.tolist(), strict=True)
            ]
    return results


@command
def main(argv: list[str] | None = None) -> None:
    ckpt, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    patterns = [o.split("=", 1)[1] for o in overrides if o.startswith("images=")]
    unknown = [o for o in overrides if not o.startswith("images=")]
    if unknown:
        raise UserError(f"predict takes ckpt_path= and images=, not {unknown[0]!r}.")
    if not patterns:
        raise UserError("Name the images to classify: images='photos/*.png'.")
    results = predict(ckpt, patterns[-1])
    for r in results:
        if "skipped" in r:
            print(f"{r['file']}: skipped ({r['skipped']})", file=sys.stderr)
        else:
            print(f"{r['file']}: " + ", ".join(f"{c} {p:.1%}" for c, p in r["top"]))
    if all("skipped" in r for r in results):
        raise UserError("none of the files is a readable image; give PNG or JPEG files.")


if __name__ == "__main__":
    main()
