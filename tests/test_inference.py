"""evaluate and predict on a checkpoint trained here on synthetic data."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, tiny_overrides
from PIL import Image

from fashion_lab import build
from fashion_lab.data import CLASS_NAMES
from fashion_lab.inference import load_trained
from fashion_lab.predict import to_fashion_mnist


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, list[str]]:
    """One tiny training run: its directory and the data overrides it used."""
    from conftest import write_dataset

    tmp = tmp_path_factory.mktemp("run")
    write_dataset(tmp / "data")
    overrides = tiny_overrides(tmp / "data", tmp / "logs")
    # bf16 autocast, whatever the machine: the test set is still scored in fp32, as evaluate does
    done = run_cli(*overrides, "trainer.max_epochs=1", "trainer.precision=bf16-mixed")
    assert done.returncode == 0, done.stderr
    assert "config (saved as config.yaml in the run directory)" in done.stderr
    assert "└── " in done.stderr, "the config is printed as a tree"
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("cnn: test/acc ") and "tensorboard --logdir" in summary
    run_dir = next((tmp / "logs" / "runs").iterdir())
    return run_dir, [o for o in overrides if o.startswith("data.")]


@pytest.mark.slow
def test_evaluate_a_run_directory_scores_its_best_checkpoint(trained_run):
    run_dir, data = trained_run
    done = run_cli(f"ckpt_path={run_dir}", *data, module="fashion_lab.evaluate")
    assert done.returncode == 0, done.stderr
    assert "best.ckpt" in done.stdout
    for name in CLASS_NAMES:
        assert name in done.stdout
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    # the same checkpoint on the same test set: the figure training reported
    assert metrics["test_acc"] == pytest.approx(results["test_acc"], abs=1e-6)
    trained = load_trained(str(run_dir), data)
    test_data = build.datamodule(trained.cfg)
    test_data.setup()
    images, labels = test_data.split("test")
    probabilities = trained.probabilities(images.float() / 255)
    loss = -probabilities[torch.arange(len(labels)), labels].log().mean().item()
    assert results["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert np.array(metrics["confusion_matrix"]).sum() == metrics["test_images"] == 200
    for figure in ("confusion_matrix.png", "predictions.png"):
        assert (run_dir / "evaluation" / figure).stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        ([], "Name the checkpoint: ckpt_path="),
        (["ckpt_path=/no/such.ckpt"], "does not exist; check ckpt_path."),
        (["oops"], "Arguments are key=value overrides"),
    ],
)
def test_evaluate_mistakes_end_in_one_sentence(args, sentence):
    done = run_cli(*args, module="fashion_lab.evaluate")
    assert done.returncode == 2
    assert sentence in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_evaluate_names_an_unknown_key(trained_run):
    run_dir, data = trained_run
    done = run_cli(f"ckpt_path={run_dir}", *data, "data.bach_size=8", module="fashion_lab.evaluate")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: Could not override 'data.bach_size'"), last
    assert last.endswith("the run's keys are in its config.yaml."), last


@pytest.mark.slow
def test_outputs_that_cannot_be_written_are_said_before_any_work(trained_run, tmp_path):
    run_dir, data = trained_run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(copy / "evaluation", ignore_errors=True)
    (copy / "evaluation").write_text("a file where the folder would go")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    for module, args, advice in [
        ("evaluate", [f"ckpt_path={copy}", *data], "copy the run directory to a place you can"),
        ("compare", [str(copy), "--out", str(blocked / "report")], "set --out to a directory"),
        ("inspect", [f"ckpt_path={copy}", "--out", str(blocked / "maps")], "set --out to a"),
    ]:
        done = run_cli(*args, module=f"fashion_lab.{module}")
        assert done.returncode == 2, (module, done.stderr[-2000:])
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: Cannot write the outputs to ") and advice in last, module


@pytest.mark.slow
def test_a_sweep_jobs_directory_quoted_for_hydra_works_for_every_command(trained_run, tmp_path):
    run_dir, data = trained_run
    job = tmp_path / "0_model=cnn,seed=0"  # a sweep job's name, quoted as ckpt_override says
    shutil.copytree(run_dir, job)
    for module, args in [
        ("evaluate", [f"ckpt_path='{job}'", *data]),
        ("inspect", ["--images", "8", f"ckpt_path='{job}'"]),
    ]:
        done = run_cli(*args, module=f"fashion_lab.{module}")
        assert done.returncode == 0, (module, done.stderr[-2000:])


def _save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


def test_a_dark_item_on_white_is_inverted_and_resized():
    photo = np.full((90, 60, 3), 250, dtype=np.uint8)  # white, portrait, colour
    photo[30:60, 20:40] = (40, 10, 10)  # a dark item in the middle
    x = to_fashion_mnist(Image.fromarray(photo))
    assert x.shape == (1, 28, 28)
    assert x[0, 0, 0] < 0.05, "the light background becomes black"
    assert x[0, 14, 14] > 0.8, "the dark item becomes light"


def test_a_light_item_on_black_is_kept():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[8:20, 8:20] = 200
    x = to_fashion_mnist(Image.fromarray(image))
    assert torch.allclose(x[0, 10, 10], torch.tensor(200 / 255), atol=0.02)


def test_a_16_bit_image_keeps_its_grays():
    image = np.zeros((28, 28), dtype=np.uint16)
    image[8:20, 8:20] = 40000  # Pillow's own conversion to 8 bits would clip this to 255
    x = to_fashion_mnist(Image.fromarray(image))
    assert torch.allclose(x[0, 10, 10], torch.tensor(40000 / 65535), atol=0.02)
    assert x[0, 0, 0] < 0.05


def test_a_cut_out_item_on_a_transparent_background_is_not_lost():
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)  # transparent black, as cut-outs are stored
    rgba[10:30, 10:30] = (30, 30, 30, 255)  # an opaque dark item
    x = to_fashion_mnist(Image.fromarray(rgba, "RGBA"))
    assert x[0, 0, 0] < 0.05, "the transparent background is taken as white, then inverted"
    assert x[0, 14, 14] > 0.8, "the dark item becomes light"


@pytest.mark.slow
def test_predict_prints_the_top_three_and_skips_what_is_not_an_image(trained_run, tmp_path):
    run_dir, _ = trained_run
    photos = tmp_path / "photos"
    photos.mkdir()
    _save(photos / "shirt.png", np.full((64, 64, 3), 230, dtype=np.uint8))
    _save(photos / "dark.jpg", np.zeros((40, 30), dtype=np.uint8))
    (photos / "notes.png").write_text("not an image")
    done = run_cli(
        f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}",
        f"images={photos}",
        module="fashion_lab.predict",
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.strip().splitlines())
    assert set(lines) == {str(photos / "shirt.png"), str(photos / "dark.jpg")}
    for line in lines.values():
        top = line.split(", ")
        assert len(top) == 3 and all(t.rsplit(" ", 1)[0] in CLASS_NAMES for t in top)
        shares = [float(t.rsplit(" ", 1)[1].rstrip("%")) for t in top]
        assert shares == sorted(shares, reverse=True) and sum(shares) <= 100.1
    assert f"{photos / 'notes.png'}: skipped (not an image)" in done.stderr


def test_an_image_is_measured_by_its_header_before_it_is_decoded(tmp_path, monkeypatch):
    from fashion_lab import predict

    monkeypatch.setattr(predict, "MAX_PIXELS", 1000)
    png = _save(tmp_path / "wide.png", np.zeros((40, 40), dtype=np.uint8))
    assert predict.read_image(png) == (
        "40x40 pixels, more than the 1,000 predict decodes; make it smaller first"
    )
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(np.full((160, 160), 200, dtype=np.uint8)).save(jpeg)
    assert predict.read_image(jpeg).shape == (1, 28, 28), "a JPEG is decoded at a fraction"
    (tmp_path / "damaged.png").write_bytes(png.read_bytes()[:60])
    assert isinstance(predict.read_image(tmp_path / "damaged.png"), str)


def test_a_folder_that_links_to_itself_is_walked_once(tmp_path):
    from fashion_lab.predict import expand

    photos = tmp_path / "photos"
    (photos / "a" / "b").mkdir(parents=True)
    for path in (photos / "top.png", photos / "a" / "mid.png", photos / "a" / "b" / "low.png"):
        _save(path, np.zeros((4, 4), dtype=np.uint8))
    (photos / "a" / "b" / "up").symlink_to(photos)
    (photos / "a" / "again").symlink_to(photos / "a")
    (photos / "a" / "b" / "loop").symlink_to(photos / "a" / "b")
    started = time.perf_counter()
    found = expand(f"{photos}/**/*.png")
    assert time.perf_counter() - started < 5
    assert sorted(p.name for p in found) == ["low.png", "mid.png", "top.png"]
    assert [p.name for p in expand(f"{photos}/a/*.png")] == ["mid.png"]
    assert [p.name for p in expand(f"{photos}/**/b/*.png")] == ["low.png"]


@pytest.mark.slow  # it makes a 169-megapixel image, and the trained run starts a process
def test_predict_stays_under_a_gigabyte_on_a_small_file_of_huge_pixels(trained_run, tmp_path):
    import resource

    run_dir, _ = trained_run
    Image.new("L", (13000, 13000), 255).save(tmp_path / "huge.png", optimize=True)
    Image.new("L", (13000, 13000), 255).save(tmp_path / "huge.jpg", quality=50)
    _save(tmp_path / "small.png", np.zeros((40, 40), dtype=np.uint8))
    assert (tmp_path / "huge.png").stat().st_size < 2**20
    done = run_cli(f"ckpt_path={run_dir}", f"images={tmp_path}", module="fashion_lab.predict")
    assert done.returncode == 0, done.stderr[-2000:]
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert peak_kb < 2**20, f"peak RSS {peak_kb} KB"
    assert "huge.png: skipped (13000x13000 pixels, more than the 16,000,000" in done.stderr
    assert "huge.jpg: " in done.stdout and "small.png: " in done.stdout


@pytest.mark.slow  # the trained run it predicts with starts a process
def test_predict_skips_an_image_too_large_to_open_safely(trained_run, tmp_path, monkeypatch):
    from fashion_lab.predict import predict

    run_dir, _ = trained_run
    _save(tmp_path / "huge.png", np.zeros((40, 40), dtype=np.uint8))
    _save(tmp_path / "small.png", np.zeros((8, 8), dtype=np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # Pillow refuses over twice this
    huge, small = predict(str(run_dir), f"{tmp_path}/*.png")
    assert huge["skipped"] == "too many pixels to open safely" and len(small["top"]) == 3


@pytest.mark.slow
def test_predict_with_nothing_matching_says_how_to_quote_the_pattern(trained_run, tmp_path):
    run_dir, _ = trained_run
    done = run_cli(f"ckpt_path={run_dir}", f"images={tmp_path}/*.png", module="fashion_lab.predict")
    assert done.returncode == 2
    assert "give a directory or a glob pattern in quotes" in done.stderr
