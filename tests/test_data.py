"""IDX reading and its errors, download, locating, batching, augmentation, the DataModule."""

from __future__ import annotations

import errno
import gzip
import http.server
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REAL_DATA, idx_bytes, requires_real_data, write_dataset, write_idx

from fashion_lab import data
from fashion_lab.data import (
    Augmentation,
    FashionMNISTDataModule,
    IndexBatches,
    download,
    load_split,
    locate,
    pixel_stats,
    read_idx,
)
from fashion_lab.errors import DataError, UserError


def test_read_idx_round_trip(tmp_path):
    array = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    md5 = write_idx(tmp_path / "x.gz", array)
    tensor = read_idx(tmp_path / "x.gz", ndim=3, md5=md5)
    assert tensor.dtype == torch.uint8
    assert np.array_equal(tensor.numpy(), array)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (gzip.compress(idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-5]), "declares 2x28x28"),
        (gzip.compress(bytes([0, 0, 0x0D, 3, 0, 0, 0, 1])), "magic number 00000d03"),
        (gzip.compress(idx_bytes(np.zeros((3, 28, 28), np.uint8)))[:-20], "damaged"),
        (b"this is not gzip at all", "is not a 3-dimensional uint8 IDX file"),
        (gzip.compress(bytes([0, 0, 8, 3, 0, 0])), "ends inside its IDX header"),
    ],
    ids=["count-mismatch", "wrong-magic", "truncated-gzip", "not-gzip", "short-header"],
)
def test_read_idx_names_the_file_and_the_remedy(tmp_path, content, message):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(DataError) as error:
        read_idx(path, ndim=3)
    text = str(error.value)
    assert message in text
    assert str(path) in text
    assert "download a fresh copy" in text


def test_read_idx_rejects_a_wrong_checksum(tmp_path):
    write_idx(tmp_path / "a.gz", np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(DataError, match="wrong checksum"):
        read_idx(tmp_path / "a.gz", ndim=3, md5="0" * 32)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_idx(tmp_path / "nope.gz", ndim=1)


def test_load_split_checks_image_label_counts(tmp_path):
    write_dataset(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"640 images but .* holds 5 labels"):
        load_split(tmp_path, "train", verify_checksums=False)


def test_load_split_shapes(tiny_data):
    images, labels = load_split(tiny_data, "train", verify_checksums=False)
    assert images.shape == (640, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (640,) and labels.dtype == torch.int64


def test_synthetic_files_fail_the_official_checksum(tiny_data):
    with pytest.raises(DataError, match="wrong checksum"):
        load_split(tiny_data, "train", verify_checksums=True)


def test_pixel_stats_match_direct_computation():
    images = torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8)
    mean, std = pixel_stats(images)
    x = images.double() / 255
    assert mean == pytest.approx(float(x.mean()), abs=1e-9)
    assert std == pytest.approx(float(x.std(unbiased=False)), abs=1e-9)


# ---- locating and downloading --------------------------------------------------------------


def test_locate_prefers_root_then_system_dir(tmp_path):
    root, system = tmp_path / "root", tmp_path / "system"
    write_dataset(system)
    assert locate(root, system_dir=system, allow_download=False) == system
    write_dataset(root)
    assert locate(root, system_dir=system, allow_download=False) == root


def test_locate_finds_torchvisions_layout_packed_or_extracted(tmp_path):
    root = tmp_path / "torchvision"
    raw = root / "FashionMNIST" / "raw"
    write_dataset(raw)
    assert locate(root, system_dir=None, keras_dir=None, allow_download=False) == raw
    for packed in raw.glob("*.gz"):  # torchvision extracts each file beside its archive
        packed.with_suffix("").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    assert locate(root, system_dir=None, keras_dir=None, allow_download=False) == raw
    images, labels = load_split(raw, "train", verify_checksums=False)
    assert images.shape == (640, 1, 28, 28) and len(labels) == 640


def test_extracted_files_are_checked_by_the_md5_of_their_content(tmp_path):
    root = tmp_path / "extracted"
    checksums = write_dataset(root)
    for packed in root.glob("*.gz"):
        packed.with_suffix("").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    name = "train-labels-idx1-ubyte.gz"
    tensor = read_idx(root / name.removesuffix(".gz"), ndim=1, md5=checksums[name])
    assert len(tensor) == 640
    with pytest.raises(DataError, match="wrong checksum"):
        load_split(root, "train")  # synthetic files: not the official MD5


def test_locate_looks_in_the_keras_cache_last(tmp_path):
    keras = tmp_path / ".keras" / "datasets" / "fashion-mnist"
    write_dataset(keras)
    found = locate(
        tmp_path / "root", system_dir=tmp_path / "no", keras_dir=keras, allow_download=False
    )
    assert found == keras
    write_dataset(tmp_path / "system")
    assert locate(tmp_path / "root", system_dir=tmp_path / "system", keras_dir=keras) == (
        tmp_path / "system"
    )


def test_locate_without_data_or_download_names_both_remedies(tmp_path):
    with pytest.raises(DataError) as error:
        locate(
            tmp_path / "none",
            system_dir=tmp_path / "also-none",
            keras_dir=None,
            allow_download=False,
        )
    assert "data.download=true" in str(error.value)
    assert "apt-get install dataset-fashion-mnist" in str(error.value)


class _Server:
    """A loopback HTTP server over a directory; `broken` names files served truncated."""

    def __init__(self, directory: Path, broken: tuple[str, ...] = ()) -> None:
        broken_names = broken

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(directory), **kwargs)

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                if name in broken_names:
                    body = (directory / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])  # then the connection drops
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Synthetic files on a loopback server, with their checksums made the official ones."""
    source = tmp_path / "mirror"
    checksums = write_dataset(source)
    monkeypatch.setattr(data, "FILES", checksums)
    servers = []

    def serve(broken=()):
        servers.append(_Server(source, broken))
        return servers[-1].url

    yield serve
    for server in servers:
        server.close()


def test_download_fetches_checks_and_keeps_every_file(tmp_path, served):
    root = tmp_path / "root"
    download(root, [served()])
    assert sorted(p.name for p in root.iterdir()) == sorted(data.FILES)
    images, labels = load_split(root, "train")  # the (patched) checksums pass
    assert len(images) == len(labels) == 640


def test_download_falls_back_to_the_next_mirror(tmp_path, served):
    root = tmp_path / "root"
    download(root, ["http://127.0.0.1:9/unreachable/", served()])
    assert locate(root, system_dir=None, allow_download=False) == root


def test_interrupted_download_leaves_no_file_that_passes(tmp_path, served):
    root = tmp_path / "root"
    broken = "train-images-idx3-ubyte.gz"
    with pytest.raises(DataError, match="could not be downloaded"):
        download(root, [served(broken=(broken,))], timeout=5)
    assert not (root / broken).exists()
    assert not list(root.glob("*.part")), "temporary files must be removed"


def test_a_full_disk_during_the_download_is_one_sentence(tmp_path, served, monkeypatch):
    root = tmp_path / "root"
    fdopen = os.fdopen

    class FullDisk:
        def __init__(self, fd, mode):
            self.file = fdopen(fd, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, chunk):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(data.os, "fdopen", FullDisk)
    with pytest.raises(DataError) as full:
        download(root, [served(), served()])
    assert str(full.value) == (
        f"No space left to download Fashion-MNIST into {root} (No space left on device); free "
        "about 40 MB there, or set data.root to a disk with room."
    )
    assert not list(root.glob("*.part")), "temporary files must be removed"


def test_one_mirror_may_be_given_as_a_string(tmp_path, served):
    root = tmp_path / "root"
    FashionMNISTDataModule(str(root), system_dir=None, mirrors=served()).prepare_data()
    assert sorted(p.name for p in root.iterdir()) == sorted(data.FILES)


def test_download_refuses_plain_http_to_remote_hosts(tmp_path):
    with pytest.raises(UserError, match="only https"):
        download(tmp_path, ["http://example.com/fashion/"])


# ---- batching and augmentation --------------------------------------------------------------


def test_index_batches_cover_the_split_and_reshuffle_per_epoch():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).clone()
    labels = torch.arange(10)
    loader = IndexBatches(images, labels, 4, shuffle=True, seed=3, drop_last=False)
    assert len(loader) == 3
    first = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(10))
    assert torch.equal(torch.cat([y for _, y in loader]), first), "same epoch, same order"
    loader.sampler.set_epoch(1)
    assert not torch.equal(torch.cat([y for _, y in loader]), first)
    for x, y in loader:
        assert torch.equal(x[:, 0, 0, 0].long(), y), "images and labels stay paired"


def test_index_batches_drop_last():
    loader = IndexBatches(
        torch.zeros(10, 1, 2, 2), torch.zeros(10), 4, shuffle=False, drop_last=True
    )
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]


def test_index_batches_in_groups_serve_the_same_batches():
    images = torch.arange(21, dtype=torch.uint8).view(21, 1, 1, 1)
    labels = torch.arange(21)
    plain = IndexBatches(images, labels, 2, shuffle=True, seed=5, drop_last=True)
    grouped = IndexBatches(images, labels, 2, shuffle=True, seed=5, drop_last=True, group=4)
    assert len(plain) == 10 and len(grouped) == 3
    items = list(grouped)
    assert [tuple(y.shape) for _, y in items] == [(4, 2), (4, 2), (2, 2)]
    assert [tuple(x.shape) for x, _ in items][-1] == (2, 2, 1, 1, 1)
    batches = [b for _, y in items for b in y]
    assert all(torch.equal(a, b) for (_, a), b in zip(plain, batches, strict=True))
    for x, y in items:
        assert torch.equal(x.flatten(1).long(), y), "images and labels stay paired"


def test_augmentation_flip_crop_erase():
    x = torch.rand(16, 1, 28, 28)
    assert torch.equal(Augmentation(hflip=1.0)(x), x.flip(-1))
    cropped = Augmentation(crop_padding=4)(x)
    assert cropped.shape == x.shape
    assert not torch.equal(cropped, x)
    erased = Augmentation(erasing=1.0)(x + 1)  # all pixels >= 1, so zeros are erased ones
    zeros = (erased == 0).flatten(1).sum(1)
    assert bool((zeros >= 1).all()) and bool((zeros <= 0.4 * 28 * 28).all())
    assert not Augmentation().active


def test_random_crop_moves_content_by_at_most_the_padding():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 14, 14] = 1
    out = Augmentation(crop_padding=2)(x)
    positions = out.flatten(1).argmax(1)
    rows, cols = positions // 28, positions % 28
    assert bool(((rows - 14).abs() <= 2).all()) and bool(((cols - 14).abs() <= 2).all())
    assert len(set(positions.tolist())) > 1


# ---- the DataModule -------------------------------------------------------------------------


def _datamodule(root, **kwargs):
    options = dict(
        system_dir=None, keras_dir=None, download=False, verify_checksums=False, val_size=100
    )
    return FashionMNISTDataModule(str(root), **(options | kwargs))


def test_datamodule_split_is_fixed_and_independent_of_the_training_seed(tiny_data):
    a, b = _datamodule(tiny_data, shuffle_seed=0), _datamodule(tiny_data, shuffle_seed=1)
    a.setup(), b.setup()
    assert len(a.split("train")[0]) == 540 and len(a.split("val")[0]) == 100
    assert len(a.split("test")[0]) == 200
    assert torch.equal(a.split("val")[1], b.split("val")[1])
    c = _datamodule(tiny_data, split_seed=5)
    c.setup()
    assert not torch.equal(a.split("val")[1], c.split("val")[1])


def test_datamodule_normalizes_on_the_device_with_training_statistics(tiny_data):
    dm = _datamodule(tiny_data)
    dm.setup()
    x, y = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.uint8
    xn, yn = dm.on_after_batch_transfer((x, y), 0)
    expected = (x.float() / 255 - dm.mean) / dm.std
    assert torch.allclose(xn, expected) and torch.equal(yn, y)
    assert (dm.mean, dm.std) == pytest.approx(pixel_stats(dm.split("train")[0]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_size": 640}, "data.val_size"),
        ({"val_size": 0}, "data.val_size"),
        ({"batch_size": 10_000}, "larger than the training split"),
    ],
)
def test_datamodule_rejects_impossible_sizes(tiny_data, kwargs, message):
    with pytest.raises(UserError, match=message):
        _datamodule(tiny_data, **kwargs).setup()


@requires_real_data
def test_real_files_pass_checksums_and_match_published_statistics():
    images, _ = load_split(REAL_DATA, "train")
    assert images.shape == (60000, 1, 28, 28)
    mean, std = pixel_stats(images)
    assert mean == pytest.approx(0.2860406, abs=1e-6)
    assert std == pytest.approx(0.3530242, abs=1e-6)
    test_images, test_labels = load_split(REAL_DATA, "test")
    assert len(test_images) == 10000
    assert torch.bincount(test_labels).tolist() == [1000] * 10


def test_structure_errors_are_named_before_the_checksum(tmp_path, monkeypatch):
    """A wrong magic number or count is reported as such, not as a bare checksum mismatch."""
    monkeypatch.setattr(data, "FILES", write_dataset(tmp_path))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match=r"640 images but .* holds 5 labels"):
        load_split(tmp_path, "train", verify_checksums=True)
    raw = bytearray(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    raw[2] = 0x0D
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match="magic number 00000d03"):
        load_split(tmp_path, "test", verify_checksums=True)


def test_unreadable_data_directory_is_named(tmp_path, monkeypatch):
    def denied(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "is_file", denied)
    with pytest.raises(DataError, match=r"cannot be read \(permission denied\)"):
        locate(tmp_path, system_dir=None, allow_download=False)


def test_unwritable_data_directory_is_named(tmp_path, monkeypatch, served):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(data.tempfile, "mkstemp", refuse)
    with pytest.raises(DataError, match="Cannot write to the data directory"):
        download(tmp_path / "root", [served()])


def test_distributed_processes_share_every_epoch_without_overlap():
    images, labels = torch.zeros(10, 1, 2, 2, dtype=torch.uint8), torch.arange(10)
    train = [
        IndexBatches(images, labels, 2, shuffle=True, seed=1, drop_last=True, rank=r, world_size=3)
        for r in range(3)
    ]
    seen = [torch.cat([y for _, y in loader]).tolist() for loader in train]
    assert [len(s) for s in seen] == [2, 2, 2], "equal steps per process"
    assert len({i for s in seen for i in s}) == 6, "no image twice in an epoch"
    evaluation = [
        IndexBatches(images, labels, 4, shuffle=False, rank=r, world_size=3) for r in range(3)
    ]
    shards = [torch.cat([y for _, y in loader]).tolist() for loader in evaluation]
    assert sorted(i for s in shards for i in s) == list(range(10)), "every image once"
