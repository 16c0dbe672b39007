"""Classify your own images with a trained checkpoint.

    python -m fashion_lab.predict ckpt_path=<.ckpt, run dir or last> images='photos/*.png'

Any PNG or JPEG, of any size, colour and bit depth: transparency is laid on white, the image
is made grayscale, padded to a square with its background colour, resized to 28x28 and, when its
background is light, inverted (Fashion-MNIST items are light on black). Prints the three most
likely classes of each file; a file that is not a readable image is named and skipped. `images`
takes a glob pattern, a directory (its files), or several of them separated by commas.
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


def grayscale(image: Image.Image) -> Image.Image:
    """An 8-bit grayscale ("L") copy, upright, with transparent parts white.

    Pillow's own conversion clips 16-bit and 32-bit pixels to 255 (a 16-bit PNG turns white) and
    drops transparency (a cut-out item on a transparent background, usually stored black, would
    vanish into it); both are handled here.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info:
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image.convert("RGBA")).convert("L")
    if image.mode.startswith("I") or image.mode == "F":
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or pixels.max() > 255:
            pixels = pixels / 257  # 16-bit range to 8-bit
        elif image.mode == "F" and pixels.max() <= 1:
            pixels = pixels * 255  # floats in [0, 1]
        return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "L")
    return image.convert("L")


def to_fashion_mnist(image: Image.Image) -> torch.Tensor:
    """A [1, 28, 28] tensor in [0, 1]: grayscale, square, 28x28, light item on a dark background."""
    gray = grayscale(image)
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
    """Files matching comma-separated glob patterns, plain paths or directories, once each.

    Raises:
        UserError: nothing matched.
    """
    files: list[Path] = []
    for pattern in filter(None, (p.strip() for p in patterns.split(","))):
        path = Path(pattern).expanduser()
        if path.is_dir():
            path = path / "*"
        matches = sorted(glob.glob(str(path), recursive=True))
        files += [Path(m) for m in matches if Path(m).is_file() and Path(m) not in files]
    if not files:
        raise UserError(
            f"No file matches images={patterns!r}; give a directory or a glob pattern "
            "in quotes, e.g. images='photos/*.png'."
        )
    return files


def predict(ckpt_path: str, patterns: str, top: int = 3, overrides: list[str] = ()) -> list[dict]:
    """The `top` classes and probabilities of each readable file; unreadable ones are reported.
    `overrides`: `trust=[...]` for the checkpoint's targets (`inference.load_trained`)."""
    files = expand(patterns)
    trained = load_trained(ckpt_path, overrides)
    results, tensors = [], []
    for path in files:
        try:
            with Image.open(path) as image:
                tensors.append(to_fashion_mnist(image))
            results.append({"file": str(path)})
        except Image.DecompressionBombError:
            results.append({"file": str(path), "skipped": "too many pixels to open safely"})
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
    ckpt, overrides = parse_args(
        sys.argv[1:] if argv is None else argv, "python -m fashion_lab.predict", __doc__
    )
    patterns = [o.split("=", 1)[1] for o in overrides if o.startswith("images=")]
    unknown = [o for o in overrides if not o.startswith(("images=", "trust="))]
    if unknown:
        raise UserError(f"predict takes ckpt_path=, images= and trust=, not {unknown[0]!r}.")
    if not patterns:
        raise UserError("Name the images to classify: images='photos/*.png'.")
    trusting = [o for o in overrides if o.startswith("trust=")]
    results = predict(ckpt, patterns[-1], overrides=trusting)
    for r in results:
        if "skipped" in r:
            print(f"{r['file']}: skipped ({r['skipped']})", file=sys.stderr)
        else:
            print(f"{r['file']}: " + ", ".join(f"{c} {p:.1%}" for c, p in r["top"]))
    if all("skipped" in r for r in results):
        raise UserError("none of the files is a readable image; give PNG or JPEG files.")


if __name__ == "__main__":
    main()
