"""Classify your own images with a trained checkpoint.

    python -m fashion_lab.predict ckpt_path=<.ckpt, run dir or last> images='photos/*.png'

Any PNG or JPEG, of any size, colour and bit depth: transparency is laid on white, the image
is made grayscale, padded to a square with its background colour, resized to 28x28 and, when its
background is light, inverted (Fashion-MNIST items are light on black). Prints the three most
likely classes of each file; a file that is not a readable image is named and skipped. `images`
takes a glob pattern, a directory (its files), or several of them separated by commas.
"""

from __future__ import annotations

import fnmatch
import glob
import math
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from fashion_lab.cli import command
from fashion_lab.data import CLASS_NAMES
from fashion_lab.errors import UserError
from fashion_lab.inference import Trained, load_trained, parse_args

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


MAX_PIXELS = 16_000_000
"""The most pixels predict decodes of one image (a 4000x4000 photo): a larger JPEG is decoded
at a fraction of its size (its header says which), any other is skipped, so a small file that
claims 13000x13000 pixels never costs gigabytes."""

CHUNK = 1000
"""Images classified at once: the results are printed chunk by chunk, so memory stays the same
whatever the number of files."""


def _has_magic(part: str) -> bool:
    return any(c in part for c in "*?[")


def _matches(parts: list[str], names: list[str]) -> bool:
    """Whether path components `names` match pattern components `parts` (`**`: any number of
    folders, the others as fnmatch)."""
    if not parts:
        return not names
    if parts[0] == "**":
        return _matches(parts[1:], names) or (bool(names) and _matches(parts, names[1:]))
    return (
        bool(names)
        and fnmatch.fnmatchcase(names[0], parts[0])
        and not (names[0].startswith(".") and not parts[0].startswith("."))
        and _matches(parts[1:], names[1:])
    )


def _walk(base: Path) -> Iterator[Path]:
    """The files below `base`, following folder links but entering each folder once (a link
    back to a parent would otherwise never end)."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(base, followlinks=True):
        try:
            stat = os.stat(root)
        except OSError:
            dirs[:] = []
            continue
        if (stat.st_dev, stat.st_ino) in seen:
            dirs[:] = []
            continue
        seen.add((stat.st_dev, stat.st_ino))
        dirs.sort()
        yield from (Path(root, f) for f in sorted(files))


def _glob(pattern: str) -> list[Path]:
    """The files a glob pattern matches (`**` recursive), each folder read once."""
    parts = Path(pattern).expanduser().parts
    fixed = next((i for i, part in enumerate(parts) if _has_magic(part)), len(parts))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    if fixed == len(parts):
        return [base] if base.is_file() else []
    rest = list(parts[fixed:])
    if "**" not in rest:
        return sorted(Path(m) for m in glob.glob(str(Path(*parts))) if Path(m).is_file())
    return [f for f in _walk(base) if _matches(rest, list(f.relative_to(base).parts))]


def expand(patterns: str) -> list[Path]:
    """Files matching comma-separated glob patterns, plain paths or directories, once each.

    Raises:
        UserError: nothing matched.
    """
    files: dict[Path, None] = {}
    for pattern in filter(None, (p.strip() for p in patterns.split(","))):
        path = Path(pattern).expanduser()
        if path.is_dir():
            path = path / "*"
        files.update(dict.fromkeys(_glob(str(path))))
    if not files:
        raise UserError(
            f"No file matches images={patterns!r}; give a directory or a glob pattern "
            "in quotes, e.g. images='photos/*.png'."
        )
    return list(files)


def read_image(path: Path) -> torch.Tensor | str:
    """The file as a [1, 28, 28] tensor, or why it was skipped: not an image, damaged, or more
    pixels than MAX_PIXELS (a JPEG is decoded at a fraction of its size instead)."""
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS decides
            width, height = image.size
            if width * height > MAX_PIXELS and image.format == "JPEG":
                # JPEG decodes at 1/2, 1/4 or 1/8 of its size: the least that fits
                scale = next((k for k in (2, 4, 8) if width * height <= MAX_PIXELS * k * k), 8)
                image.draft(image.mode, (math.ceil(width / scale), math.ceil(height / scale)))
            if image.size[0] * image.size[1] > MAX_PIXELS:
                return (
                    f"{width}x{height} pixels, more than the {MAX_PIXELS:,} predict decodes; "
                    "make it smaller first"
                )
            return to_fashion_mnist(image)
    except Image.DecompressionBombError:
        return "too many pixels to open safely"
    except UnidentifiedImageError:
        return "not an image"
    except (OSError, ValueError, SyntaxError) as e:  # a damaged file fails in several ways
        return str(e) or type(e).__name__


def classify(trained: Trained, files: list[Path], top: int = 3) -> Iterator[dict]:
    """Each file's `top` classes and probabilities, or why it was skipped, CHUNK at a time."""
    for start in range(0, len(files), CHUNK):
        results, tensors = [], []
        for path in files[start : start + CHUNK]:
            image = read_image(path)
            if isinstance(image, str):
                results.append({"file": str(path), "skipped": image})
            else:
                results.append({"file": str(path)})
                tensors.append(image)
        readable = [r for r in results if "skipped" not in r]
        if tensors:
            for result, p in zip(
                readable, trained.probabilities(torch.stack(tensors)), strict=True
            ):
                values, classes = p.topk(top)
                result["top"] = [
                    (CLASS_NAMES[c], round(v, 4))
                    for c, v in zip(classes.tolist(), values.tolist(), strict=True)
                ]
        yield from results


def predict(ckpt_path: str, patterns: str, top: int = 3, trusted: list[str] = ()) -> list[dict]:
    """The `top` classes and probabilities of each readable file; unreadable ones are reported.
    `trusted`: the targets of the checkpoint's config the user trusts (`trust=[...]`)."""
    files = expand(patterns)
    return list(classify(load_trained(ckpt_path, trusted=trusted), files, top))


@command
def main(argv: list[str] | None = None) -> None:
    args = parse_args(
        sys.argv[1:] if argv is None else argv,
        "python -m fashion_lab.predict",
        __doc__,
        ("images",),
    )
    if args.overrides:
        raise UserError(f"predict takes ckpt_path=, images= and trust=, not {args.overrides[0]!r}.")
    patterns = args.own.get("images")
    if not isinstance(patterns, str) or not patterns:
        raise UserError("Name the images to classify: images='photos/*.png'.")
    files = expand(patterns)
    readable = 0
    for r in classify(load_trained(args.ckpt_path, trusted=args.trusted), files):
        if "skipped" in r:
            print(f"{r['file']}: skipped ({r['skipped']})", file=sys.stderr)
        else:
            readable += 1
            print(f"{r['file']}: " + ", ".join(f"{c} {p:.1%}" for c, p in r["top"]))
    if not readable:
        raise UserError("none of the files is a readable image; give PNG or JPEG files.")


if __name__ == "__main__":
    main()
