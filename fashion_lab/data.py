"""Fashion-MNIST: finding, downloading, checking and serving the official IDX files.

The whole dataset lives in memory as uint8 tensors (55 MB). Batches are gathered by index,
moved to the training device, and only there turned into normalized (and, when training,
augmented) float tensors, so no per-sample Python code runs in the training loop.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlparse

import pytorch_lightning as pl
import torch

from fashion_lab.errors import DataError, UserError, no_space

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
"""Where Debian's `dataset-fashion-mnist` package puts the four files."""

KERAS_DIR = "~/.keras/datasets/fashion-mnist"
"""Where `keras.datasets.fashion_mnist.load_data()` caches them."""

MIRRORS = (
    "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)

# MD5 of the *uncompressed* IDX bytes: the official archives and Debian's recompressed copies
# differ as .gz files but hold identical content, so both pass.
FILES = MappingProxyType(
    {
        "train-images-idx3-ubyte.gz": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte.gz": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte.gz": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte.gz": "15d484375f8d13e6eb1aabb0c3f46965",
    }
)
SPLIT_PREFIX = MappingProxyType({"train": "train", "test": "t10k"})
INSTALL_HINT = "apt-get install dataset-fashion-mnist"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
GZIP_MAGIC = b"\x1f\x8b"


def _remedy(path: Path) -> str:
    if str(path).startswith(SYSTEM_DIR):
        return "reinstall it with `apt-get install --reinstall dataset-fashion-mnist`"
    return "delete it and run again (with data.download=true) to download a fresh copy"


def read_idx(path: str | os.PathLike, *, ndim: int, md5: str | None = None) -> torch.Tensor:
    """Read one gzipped IDX file into a uint8 tensor, checking its structure and checksum.

    Args:
        path: the `.gz` file.
        ndim: the number of dimensions the file must declare (3 for images, 1 for labels).
        md5: the expected MD5 of the uncompressed bytes, or None to skip the check.

    Raises:
        DataError: the file is missing, unreadable, truncated, not IDX, or has the wrong MD5.
    """
    tensor, digest = _read_idx(Path(path), ndim)
    if md5 is not None:
        _check_md5(Path(path), digest, md5)
    return tensor


def _check_md5(path: Path, digest: str, md5: str) -> None:
    if digest != md5:
        raise DataError(
            f"{path} has the wrong checksum (MD5 of its content {digest}, expected {md5}); "
            f"{_remedy(path)}."
        )


def _read_idx(path: Path, ndim: int) -> tuple[torch.Tensor, str]:
    """The file's tensor, structure checked, and the MD5 of its uncompressed bytes (a gzipped
    file is decompressed; an extracted one is read as it is)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(
            f"{path} does not exist; run again (with data.download=true) to download it."
        ) from None
    except PermissionError:
        raise DataError(
            f"{path} cannot be read (permission denied); fix its permissions."
        ) from None
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is damaged ({e}); {_remedy(path)}.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or raw[3] != ndim:
        raise DataError(
            f"{path} is not a {ndim}-dimensional uint8 IDX file (magic number "
            f"{raw[:4].hex() or 'missing'}, expected 000008{ndim:02x}); {_remedy(path)}."
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} ends inside its IDX header; {_remedy(path)}.")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != math.prod(dims):
        raise DataError(
            f"{path} holds {len(raw) - header} bytes of data but its header declares "
            f"{'x'.join(map(str, dims))}; {_remedy(path)}."
        )
    tensor = torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).reshape(dims)
    return tensor, hashlib.md5(raw).hexdigest()


def load_split(
    directory: str | os.PathLike, split: str, *, verify_checksums: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load `train` or `test` as (images uint8 [N, 1, 28, 28], labels int64 [N])."""
    directory = Path(directory)
    prefix = SPLIT_PREFIX[split]
    image_file = data_file(directory, f"{prefix}-images-idx3-ubyte.gz")
    label_file = data_file(directory, f"{prefix}-labels-idx1-ubyte.gz")
    images, image_md5 = _read_idx(image_file, 3)
    labels, label_md5 = _read_idx(label_file, 1)
    if images.shape[1:] != (28, 28):
        raise DataError(
            f"{image_file} holds {images.shape[1]}x{images.shape[2]} images, not 28x28; "
            f"{_remedy(image_file)}."
        )
    if len(images) != len(labels):
        raise DataError(
            f"{image_file} holds {len(images)} images but {label_file} holds {len(labels)} "
            f"labels; {_remedy(image_file)}."
        )
    if verify_checksums:
        _check_md5(image_file, image_md5, FILES[f"{prefix}-images-idx3-ubyte.gz"])
        _check_md5(label_file, label_md5, FILES[f"{prefix}-labels-idx1-ubyte.gz"])
    if len(labels) and int(labels.max()) >= len(CLASS_NAMES):
        raise DataError(f"{label_file} holds labels above 9; {_remedy(label_file)}.")
    return images.unsqueeze(1), labels.long()


def data_file(directory: Path, name: str) -> Path:
    """`directory/name` (a `.gz` file), or the file extracted from it, which torchvision
    leaves beside it (or alone) in `FashionMNIST/raw/`."""
    packed = directory / name
    extracted = directory / name.removesuffix(".gz")
    return extracted if not packed.is_file() and extracted.is_file() else packed


def layouts(directory: Path) -> list[Path]:
    """Where the four files may lie under a data directory: in it, or in torchvision's
    `FashionMNIST/raw/` inside it."""
    return [directory, directory / "FashionMNIST" / "raw"]


def _complete(directory: Path) -> bool:
    try:
        return all(data_file(directory, name).is_file() for name in FILES)
    except PermissionError:
        raise DataError(
            f"The data directory {directory} cannot be read (permission denied); fix its "
            "permissions, or point data.root at another directory."
        ) from None


def _check_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in LOOPBACK_HOSTS):
        return
    raise UserError(f"Refusing to download {url}: only https mirrors are allowed in data.mirrors.")


def download(root: str | os.PathLike, mirrors: Sequence[str], *, timeout: float = 30.0) -> None:
    """Download the missing official files into `root`, each checked before it is kept.

    A file is written under a temporary name in `root`, its uncompressed content checked
    against the official MD5, and only then renamed into place, so an interrupted or
    corrupted download never leaves a file that later passes as valid.

    Raises:
        DataError: no mirror delivered a file with the right checksum.
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"Cannot create the data directory {root} ({e}); set data.root to a writable directory."
        ) from None
    for name, md5 in FILES.items():
        target = root / name
        if target.is_file():
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            _check_url(url)
            try:
                fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=root)
            except OSError as e:
                raise DataError(
                    f"Cannot write to the data directory {root} ({e.strerror}); make it writable "
                    "or set data.root to a writable directory."
                ) from None
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
                    while chunk := r.read(1 << 20):
                        out.write(chunk)
                read_idx(tmp, ndim=3 if "images" in name else 1, md5=md5)
                os.replace(tmp, target)
                break
            except (urllib.error.URLError, OSError, DataError) as e:
                if (full := no_space(e)) is not None:  # another mirror would not help
                    raise DataError(
                        f"No space left to download Fashion-MNIST into {root} ({full.strerror});"
                        " free about 40 MB there, or set data.root to a disk with room."
                    ) from None
                failures.append(f"{url}: {getattr(e, 'reason', e)}")
            finally:
                tmp.unlink(missing_ok=True)
        else:
            raise DataError(
                f"Fashion-MNIST could not be downloaded ({'; '.join(failures)}); connect to the "
                f"internet and run again, or install it with `{INSTALL_HINT}`."
            )


def locate(
    root: str | os.PathLike,
    *,
    system_dir: str | os.PathLike | None = SYSTEM_DIR,
    keras_dir: str | os.PathLike | None = KERAS_DIR,
    mirrors: Sequence[str] = MIRRORS,
    allow_download: bool = True,
) -> Path:
    """Return the directory holding the four files (`.gz` or extracted, each directory also
    in torchvision's layout): `root`, else `system_dir`, else `keras_dir`, else download.

    Raises:
        DataError: the files are in none of them and cannot be downloaded.
    """
    root = Path(root).expanduser()
    places = [root, *(Path(d).expanduser() for d in (system_dir, keras_dir) if d)]
    for directory in (layout for place in places for layout in layouts(place)):
        if _complete(directory):
            return directory
    if not allow_download:
        raise DataError(
            f"Fashion-MNIST is not in {' or '.join(map(str, places))} and data.download is false; "
            f"run with data.download=true when online, or install it with `{INSTALL_HINT}`."
        )
    download(root, mirrors)
    return root


def pixel_stats(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of uint8 images scaled to [0, 1], exact, from a histogram."""
    hist = torch.bincount(images.reshape(-1), minlength=256).double()
    values = torch.arange(256, dtype=torch.float64) / 255.0
    mean = (hist * values).sum() / hist.sum()
    var = (hist * values.square()).sum() / hist.sum() - mean.square()
    return float(mean), float(var.clamp_min(0).sqrt())


class EpochPermutation:
    """The order of one epoch: a seeded permutation that changes with `set_epoch`.

    Lightning calls `set_epoch` on a loader's `sampler` at the start of each epoch, so the
    order depends only on (seed, epoch), also after resuming from a checkpoint.
    """

    def __init__(self, size: int, *, shuffle: bool, seed: int) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.size)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=generator)


class IndexBatches:
    """Batches (images uint8, labels int64) gathered by index from in-memory tensors.

    Under distributed training each of `world_size` processes takes every world_size-th
    index of the same epoch order (training: equal shares, the remainder dropped).

    With `group` > 1 (full batches only: `drop_last`), each item holds up to `group`
    consecutive batches stacked as [m, batch_size, ...]; the epoch's last item holds the m
    batches left, so the epoch has the same batches whatever the group.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        group: int = 1,
    ) -> None:
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.group = group
        self.rank = rank
        self.world_size = world_size
        # Lightning looks for `sampler.set_epoch` (called each epoch) and a `batch_sampler`.
        self.sampler = EpochPermutation(len(images), shuffle=shuffle, seed=seed)
        self.batch_sampler = None
        self.drop_last = drop_last and self._local_size() >= batch_size
        if group > 1 and not self.drop_last:
            raise ValueError("grouped batches must be full batches (drop_last)")

    def _local_size(self) -> int:
        n = len(self.images)
        if self.sampler.shuffle:  # training: every process the same number of steps
            return n // self.world_size
        return len(range(self.rank, n, self.world_size))

    @property
    def num_batches(self) -> int:
        """Batches an epoch serves, grouped or not."""
        n = self._local_size()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __len__(self) -> int:
        return math.ceil(self.num_batches / self.group)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.sampler.order()[self.rank :: self.world_size][: self._local_size()]
        order = order.to(self.images.device)  # one copy per epoch when the data is on a GPU
        b, batches = self.batch_size, self.num_batches
        # index_select on rows gathers several times faster than indexing [N, 1, H, W]
        rows = self.images.reshape(len(self.images), -1)
        for first in range(0, batches, self.group):
            m = min(self.group, batches - first)
            index = order[first * b : (first + m) * b]
            shape = (m, b) if self.group > 1 else (len(index),)
            images = rows.index_select(0, index).view(*shape, *self.images.shape[1:])
            yield images, self.labels.index_select(0, index).view(shape)


@dataclass
class Augmentation:
    """Batched augmentation of [B, 1, H, W] float images in [0, 1], on their device.

    Args:
        crop_padding: pad by this many pixels, then crop back at a random offset (0: off).
        hflip: probability of a horizontal flip.
        erasing: probability of erasing one random rectangle (2-33% of the area) to black.
    """

    crop_padding: int = 0
    hflip: float = 0.0
    erasing: float = 0.0

    @property
    def active(self) -> bool:
        return self.crop_padding > 0 or self.hflip > 0 or self.erasing > 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.crop_padding > 0:
            x = self._random_crop(x)
        if self.hflip > 0:
            flip = torch.rand(len(x), 1, 1, 1, device=x.device) < self.hflip
            x = torch.where(flip, x.flip(-1), x)
        if self.erasing > 0:
            x = self._random_erase(x)
        return x

    def _random_crop(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.crop_padding
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b, 1, 1), device=x.device)
        dx = torch.randint(0, 2 * p + 1, (b, 1, 1), device=x.device)
        rows = torch.arange(h, device=x.device).view(1, h, 1) + dy
        cols = torch.arange(w, device=x.device).view(1, 1, w) + dx
        batch = torch.arange(b, device=x.device).view(b, 1, 1)
        return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

    def _random_erase(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        dev = x.device
        area = torch.empty(b, device=dev).uniform_(0.02, 0.33) * h * w
        log_ratio = torch.empty(b, device=dev).uniform_(math.log(0.3), math.log(1 / 0.3))
        eh = (area * log_ratio.exp()).sqrt().round().clamp(1, h).long()
        ew = (area / log_ratio.exp()).sqrt().round().clamp(1, w).long()
        top = (torch.rand(b, device=dev) * (h - eh + 1)).long()
        left = (torch.rand(b, device=dev) * (w - ew + 1)).long()
        r = torch.arange(h, device=dev).view(1, h, 1)
        c = torch.arange(w, device=dev).view(1, 1, w)
        box = (r >= top.view(b, 1, 1)) & (r < (top + eh).view(b, 1, 1))
        box = box & (c >= left.view(b, 1, 1)) & (c < (left + ew).view(b, 1, 1))
        apply = (torch.rand(b, device=dev) < self.erasing).view(b, 1, 1)
        return x.masked_fill((box & apply).unsqueeze(1), 0.0)


@dataclass(frozen=True)
class Splits:
    """The data a DataModule read and checked: uint8 images and labels per split (`train`,
    `val`, `test`), the training split's pixel statistics, and the folder the files are in."""

    tensors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    mean: float
    std: float
    data_dir: Path


class FashionMNISTDataModule(pl.LightningDataModule):
    """Fashion-MNIST: 55k train / 5k validation carved from the official 60k, official 10k test.

    Args:
        root: where the files are looked for first, and downloaded to.
        system_dir: looked in second (Debian's `dataset-fashion-mnist`); None to skip.
        keras_dir: looked in third (Keras's cache); None to skip.
        mirrors: https base URLs tried in order when the files must be downloaded.
        download: allow downloading.
        verify_checksums: check each file's MD5 (off only for synthetic test data).
        val_size: validation images carved from the training set.
        split_seed: seed of the train/validation split; kept fixed so every model and every
            training seed sees the same split.
        batch_size: training batch size.
        eval_batch_size: validation and test batch size (no gradients: larger is faster).
        shuffle_seed: seed of the training order (the run's seed).
        augment: options of `Augmentation`, applied to training batches only.
        device_resident: keep the uint8 dataset (55 MB) on the training device, so batches
            are gathered there and nothing is copied per step; None: on GPUs, not on the CPU.
        steps_per_call: training batches served together, stacked [m, batch_size, ...]
            (`module.steps_per_call`: the module makes one optimizer step per batch).
        splits: the data another DataModule of the same config read (`loaded`), served as it
            is: a run reads and checks its data once, before it decides what to build.
    """

    def __init__(
        self,
        root: str,
        *,
        system_dir: str | None = SYSTEM_DIR,
        keras_dir: str | None = KERAS_DIR,
        mirrors: Sequence[str] = MIRRORS,
        download: bool = True,
        verify_checksums: bool = True,
        val_size: int = 5000,
        split_seed: int = 0,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        shuffle_seed: int | None = 0,
        augment: dict | None = None,
        device_resident: bool | None = None,
        steps_per_call: int = 1,
        splits: Splits | None = None,
    ) -> None:
        super().__init__()
        self.root = root
        self.system_dir = system_dir
        self.keras_dir = keras_dir
        self.mirrors = (mirrors,) if isinstance(mirrors, str) else tuple(mirrors)  # one URL
        self.download = download
        self.verify_checksums = verify_checksums
        self.val_size = val_size
        self.split_seed = split_seed
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.shuffle_seed = (
            shuffle_seed if shuffle_seed is not None else int(torch.randint(0, 2**31, ()))
        )
        self.augmentation = Augmentation(**(augment or {}))
        self.device_resident = device_resident
        self.steps_per_call = steps_per_call
        self._resident: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.class_names = CLASS_NAMES
        self.mean: float | None = None
        self.std: float | None = None
        self.data_dir: Path | None = None
        self._splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if splits is not None:
            self._splits = dict(splits.tensors)
            self.mean, self.std, self.data_dir = splits.mean, splits.std, splits.data_dir

    def prepare_data(self) -> None:
        self.data_dir = locate(
            self.root,
            system_dir=self.system_dir,
            keras_dir=self.keras_dir,
            mirrors=self.mirrors,
            allow_download=self.download,
        )

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        if self.data_dir is None:
            self.prepare_data()
        images, labels = load_split(self.data_dir, "train", verify_checksums=self.verify_checksums)
        if not isinstance(self.val_size, int) or not 0 < self.val_size < len(images):
            raise UserError(
                f"data.val_size must be an integer between 1 and {len(images) - 1} (the training "
                f"set has {len(images)} images), got {self.val_size!r}; set e.g. "
                f"data.val_size={min(5000, len(images) // 10) or 1}."
            )
        order = torch.randperm(
            len(images), generator=torch.Generator().manual_seed(self.split_seed)
        )
        val_index, train_index = order[: self.val_size], order[self.val_size :]
        if self.batch_size > len(train_index):
            raise UserError(
                f"data.batch_size={self.batch_size} is larger than the training split "
                f"({len(train_index)} images); lower it."
            )
        self._splits["train"] = (images[train_index], labels[train_index])
        self._splits["val"] = (images[val_index], labels[val_index])
        self._splits["test"] = load_split(
            self.data_dir, "test", verify_checksums=self.verify_checksums
        )
        self.mean, self.std = pixel_stats(self._splits["train"][0])

    def loaded(self) -> Splits:
        """The data `setup` read and checked, for a DataModule built later from the same config."""
        self.setup()
        return Splits(dict(self._splits), self.mean, self.std, self.data_dir)

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The uint8 images and labels of `train`, `val` or `test` (after `setup`)."""
        return self._splits[name]

    def _shard(self) -> dict[str, int]:
        trainer = self.trainer
        if trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": trainer.global_rank, "world_size": trainer.world_size}

    def _served(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A split where batches are gathered: on the training device when resident there."""
        device = self.trainer.strategy.root_device if self.trainer is not None else None
        if device is None or device.type == "cpu":
            return self._splits[name]
        if not (
            self.device_resident if self.device_resident is not None else device.type == "cuda"
        ):
            return self._splits[name]
        if name not in self._resident or self._resident[name][0].device != device:
            self._resident[name] = tuple(t.to(device) for t in self._splits[name])
        return self._resident[name]

    def train_dataloader(self) -> IndexBatches:
        return IndexBatches(
            *self._served("train"),
            self.batch_size,
            shuffle=True,
            seed=self.shuffle_seed,
            drop_last=True,
            group=self.steps_per_call,
            **self._shard(),
        )

    def val_dataloader(self) -> IndexBatches:
        return IndexBatches(
            *self._served("val"), self.eval_batch_size, shuffle=False, **self._shard()
        )

    def test_dataloader(self) -> IndexBatches:
        return IndexBatches(
            *self._served("test"), self.eval_batch_size, shuffle=False, **self._shard()
        )

    def predict_dataloader(self) -> IndexBatches:
        return self.test_dataloader()

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """On the device: uint8 -> [0, 1], augmentation when training, normalization, then the
        dtype of the trainer's precision (float64 for `64-true`, half for `16-true`; Lightning
        converts batches before this hook, while they are still uint8).

        Grouped batches [m, B, 1, H, W] are augmented as one batch of m * B images. A tensor
        alone is the module's example input (Lightning's model summary): only its dtype is set.
        """
        if isinstance(batch, torch.Tensor):
            return self.trainer.precision_plugin.convert_input(batch) if self.trainer else batch
        x, y = batch
        shape = x.shape
        # in place on a float copy: a fresh buffer per op cost more than the arithmetic
        x = x.reshape(-1, *shape[-3:]).to(torch.float32, copy=True).div_(255.0)
        if self.trainer is not None and self.trainer.training and self.augmentation.active:
            x = self.augmentation(x)
        x = x.sub_(self.mean).div_(self.std).reshape(shape)
        if self.trainer is not None:
            x = self.trainer.precision_plugin.convert_input(x)
        return x, y

    def state_dict(self) -> dict:
        return {
            "mean": self.mean,
            "std": self.std,
            "val_size": self.val_size,
            "split_seed": self.split_seed,
        }
