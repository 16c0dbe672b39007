"""`python -m fashion_lab` end to end, as a user runs it, on tiny synthetic data (and real data)."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from conftest import REAL_DATA, compose_run, requires_real_data, run_cli, tiny_overrides
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fashion_lab.life import RunRecord, end_distributed
from fashion_lab.results import summary
from fashion_lab.resume import why_finished
from fashion_lab.train import train


def _run_dirs(log_dir: Path) -> list[Path]:
    return sorted(p.parent for p in log_dir.rglob("results.json"))


def _tensorboard(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    return events


def test_single_run_leaves_everything_a_user_needs(tiny_data, tmp_path):
    log_dir = tmp_path / "outputs"
    done = run_cli(*tiny_overrides(tiny_data, log_dir), "seed=0")
    assert done.returncode == 0, done.stderr[-3000:]
    [run_dir] = _run_dirs(log_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["model"] == "cnn" and results["parameters"] == 225_034
    assert results["seed"] == 0 and results["epochs"] == 2
    assert results["test_acc"] > 0.5, "the synthetic classes are learnable"
    assert 0 < results["val_acc_best"] <= 1 and results["train_images_per_s"] > 0
    assert len(results["history"]) == 2 and len(results["test_acc_per_class"]) == 10
    for name in (
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        ".hydra/config.yaml",
        "config.yaml",
        "train.log",
        "val_confusion_matrix.png",
        "test_confusion_matrix.png",
        "test_predictions.png",
    ):
        assert (run_dir / name).is_file(), name
    checkpoint = torch.load(run_dir / "checkpoints/best.ckpt", weights_only=False)
    assert checkpoint["fashion_lab_config"]["model"]["_target_"] == "fashion_lab.models.cnn.cnn"

    events = _tensorboard(run_dir)
    scalars = set(events.Tags()["scalars"])
    assert {
        "train/loss_step",
        "train/loss",
        "train/acc",
        "val/loss",
        "val/acc",
        "val/acc_best",
        "test/loss",
        "test/acc",
    } <= scalars
    assert "train/lr" in scalars
    assert {"val/confusion_matrix", "test/confusion_matrix", "test/predictions"} <= set(
        events.Tags()["images"]
    )
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"val/acc_best" in hparams["_hparams_/experiment"]
    assert b"test/acc" in hparams["_hparams_/experiment"]
    assert "test/acc" in done.stderr and "tensorboard --logdir" in done.stderr


@pytest.mark.slow
def test_multirun_leaves_one_directory_per_model(tiny_data, tmp_path):
    log_dir = tmp_path / "outputs"
    done = run_cli(
        "-m",
        "model=cnn,dilated_v1,dilated_v2",
        *tiny_overrides(tiny_data, log_dir),
        "trainer.max_epochs=1",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _run_dirs(log_dir)
    assert len(runs) == 3
    models = sorted(json.loads((d / "results.json").read_text())["model"] for d in runs)
    assert models == ["cnn", "dilated_v1", "dilated_v2"]
    assert all(d.parent == runs[0].parent for d in runs), "one sweep directory"
    assert all(list((d / "tensorboard").glob("events.out.tfevents.*")) for d in runs)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpus_without_a_gpu_is_one_sentence_and_a_non_zero_exit(tiny_data, tmp_path):
    done = run_cli("model=dilated_v2", "trainer.gpus=1", *tiny_overrides(tiny_data, tmp_path))
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert done.stderr.strip().splitlines()[-1] == (
        "Error: No CUDA GPU was found on this machine; run on the CPU with trainer.gpus=0 "
        "(or trainer=cpu), or install a CUDA build of PyTorch on a machine with a GPU."
    )
    [run_dir] = _run_dirs(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "failed" and "No CUDA GPU" in results["error"]


@pytest.mark.parametrize("precision", ["64-true", "bf16-true"])
def test_every_precision_lightning_offers_trains(precision, tiny_data, tmp_path):
    # "-true" precisions convert the weights; the batches, made float on the device after
    # Lightning's own conversion, must follow
    cfg = compose_run(
        [
            *tiny_overrides(tiny_data, tmp_path),
            "trainer.max_steps=6",
            f"trainer.precision={precision}",
        ],
        tmp_path,
    )
    results = train(cfg)
    assert results["status"] == "completed" and results["precision"] == precision
    assert results["test_acc"] is not None


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["64-true", "bf16-mixed"])
def test_the_model_summary_counts_flops_per_image_without_noise(precision, tiny_data, tmp_path):
    done = run_cli(
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.max_steps=2",
        "trainer.enable_model_summary=true",
        f"trainer.precision={precision}",
        warnings="default",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # 2 x the 2,631,040 multiply-adds `python -m fashion_lab.inspect model=cnn` counts (it
    # showed 0 FLOPs without an example input; float64 weights take a float64 example)
    assert "Total FLOPs: 5.3 M" in done.stdout
    printed = done.stderr + done.stdout
    assert "Tip:" not in printed, "Lightning's advertisement is dropped"
    assert "100% of the batches" not in printed  # the configured limit_train_batches=1.0
    assert "to estimate number of stepping batches" not in printed
    assert "GPU available" not in printed, "the last line names the device used instead"
    assert "on cpu (" in done.stderr.strip().splitlines()[-1]
    assert "not supported by the model summary" not in done.stderr


@pytest.mark.slow
def test_a_run_without_loggers_points_at_no_tensorboard(tiny_data, tmp_path):
    done = run_cli(*tiny_overrides(tiny_data, tmp_path), "~logger", "trainer.max_epochs=1")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("cnn: test/acc ") and "tensorboard" not in summary
    [run_dir] = _run_dirs(tmp_path)
    assert not (run_dir / "tensorboard").exists()
    assert json.loads((run_dir / "results.json").read_text())["status"] == "completed"


@pytest.mark.slow
def test_a_test_over_part_of_the_test_split_says_so(tiny_data, tmp_path):
    done = run_cli(
        *tiny_overrides(tiny_data, tmp_path),
        "trainer.max_epochs=1",
        "data.eval_batch_size=50",
        "+trainer.limit_test_batches=3",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = done.stderr.strip().splitlines()[-1]
    assert summary.startswith("cnn: test/acc ")
    assert " (on 150 of the 200 test images) val/acc_best " in summary
    [run_dir] = _run_dirs(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    assert (results["test_images"], results["test_split_images"]) == (150, 200)


def test_the_history_has_validation_figures_only_for_validated_epochs(tiny_data, tmp_path):
    overrides = ["trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"]
    results = train(compose_run([*tiny_overrides(tiny_data, tmp_path), *overrides], tmp_path))
    assert [h["val/acc"] is not None for h in results["history"]] == [False, True, False]
    assert results["val_acc_best"] == results["history"][1]["val/acc"]


def test_testing_a_checkpoint_records_its_accuracy_and_no_training_speed(tiny_data, tmp_path):
    trained = train(
        compose_run([*tiny_overrides(tiny_data, tmp_path), "trainer.max_epochs=1"], tmp_path)
    )
    best = Path(trained["output_dir"], "checkpoints", "best.ckpt")
    overrides = [*tiny_overrides(tiny_data, tmp_path / "again"), "train=false", f"ckpt_path={best}"]
    tested = train(compose_run(overrides, tmp_path / "again"))
    assert tested["status"] == "completed" and tested["test_acc"] == trained["test_acc"]
    assert tested["train_time_s"] is None and tested["train_images_per_s"] is None


@pytest.mark.slow
def test_a_second_run_named_like_the_first_gets_its_own_directory(tiny_data, tmp_path):
    # two runs of one model started in the same second get the same name from the default
    # hydra.run.dir; here the name is fixed, so the second run meets the first's directory
    named = "'${fashion_lab.run_dir:${ckpt_path},${train},${paths.log_dir}," + f"{tmp_path}/run}}'"
    for seed in (0, 1):
        done = run_cli(
            *tiny_overrides(tiny_data, tmp_path), f"seed={seed}", f"hydra.run.dir={named}"
        )
        assert done.returncode == 0, done.stderr[-2000:]
    seeds = {
        json.loads((tmp_path / d / "results.json").read_text())["seed"] for d in ("run", "run_2")
    }
    assert seeds == {0, 1}


def test_the_summary_points_tensorboard_at_the_run_wherever_it_was_written(tmp_path):
    cfg = compose_run([f"paths.log_dir={tmp_path / 'outputs'}"], tmp_path)
    for output_dir, logdir in [
        (tmp_path / "outputs" / "runs" / "a", tmp_path / "outputs"),  # beside the other runs
        (tmp_path / "elsewhere", tmp_path / "elsewhere"),  # hydra.run.dir=<elsewhere>
    ]:
        results = {"model": "cnn", "wall_time_s": 1.0, "output_dir": str(output_dir)}
        cfg.paths.output_dir = str(output_dir)
        line = summary(results, RunRecord(cfg).tensorboard_dir())
        assert line.endswith(f"| tensorboard --logdir {logdir}")


def test_console_script_is_declared():
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("fashion-lab") == "fashion_lab.train:main"


@pytest.mark.slow
@requires_real_data
def test_cnn_reaches_85_percent_after_one_epoch_on_real_data(tmp_path):
    done = run_cli(
        f"data.root={tmp_path / 'empty'}",
        f"data.system_dir={REAL_DATA}",
        "data.download=false",
        f"paths.log_dir={tmp_path}",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [run_dir] = _run_dirs(tmp_path)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["test_acc"] >= 0.85, results["test_acc"]


def test_why_a_resumed_run_would_train_nothing():
    cfg = OmegaConf.create({"trainer": {"max_epochs": 6, "max_steps": 1000}})
    early = {"EarlyStopping{'monitor': 'val/acc', 'mode': 'max'}": {"stopped_epoch": 3}}
    assert why_finished(cfg, {"epoch": 3, "global_step": 400, "callbacks": early}) == (
        "early stopping ended it at epoch 3",
        "start a new run to train longer",
    )
    assert why_finished(cfg, {"epoch": 5, "global_step": 600})[0] == "trainer.max_epochs=6"
    assert why_finished(cfg, {"epoch": 2, "global_step": 1000})[0] == "trainer.max_steps=1000"
    assert why_finished(cfg, {"epoch": 2, "global_step": 400, "callbacks": {}}) is None
    not_stopped = {"EarlyStopping{'monitor': 'val/acc', 'mode': 'max'}": {"stopped_epoch": 0}}
    assert why_finished(cfg, {"epoch": 2, "global_step": 400, "callbacks": not_stopped}) is None


def test_a_run_takes_down_the_process_group_it_leaves(tmp_path):
    dist = torch.distributed
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    assert dist.is_initialized()
    end_distributed()
    assert not dist.is_initialized()
    end_distributed()  # nothing to take down: nothing happens


def test_a_users_own_model_and_config_folder_go_through_every_command(
    tiny_data, tmp_path, monkeypatch, capsys
):
    """A network and a config folder outside the repository, as the README's "Bring your own
    model" has them: trained from the command line, then evaluated, predicted with, inspected
    and compared (in this process, with the user's folder importable); nothing registered."""
    import os
    import subprocess
    import sys

    from PIL import Image

    from fashion_lab import compare, evaluate, inspect, predict

    work = tmp_path / "work"
    (work / "mypkg").mkdir(parents=True)
    (work / "mypkg" / "__init__.py").write_text("")
    (work / "mypkg" / "nets.py").write_text(
        "from torch import nn\n\n\n"
        "class TinyNet(nn.Module):\n"
        "    def __init__(self, hidden: int = 64, num_classes: int = 10) -> None:\n"
        "        super().__init__()\n"
        "        self.layers = nn.Sequential(\n"
        "            nn.Flatten(), nn.Linear(28 * 28, hidden), nn.ReLU(),\n"
        "            nn.Linear(hidden, num_classes),\n"
        "        )\n\n"
        "    def forward(self, x):\n"
        "        return self.layers(x)\n"
    )
    (work / "myconf" / "model").mkdir(parents=True)
    (work / "myconf" / "model" / "tiny.yaml").write_text(
        "_target_: mypkg.nets.TinyNet\nhidden: 48\n"
    )
    Image.new("L", (40, 40), 200).save(work / "shirt.png")
    outputs = tmp_path / "outputs"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fashion_lab",
            "--config-dir",
            "myconf",
            "model=tiny",
            *tiny_overrides(tiny_data, outputs),
        ],
        capture_output=True,
        text=True,
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(work), "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [run_dir] = _run_dirs(outputs)
    assert run_dir.name.endswith("_TinyNet")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed" and results["model"] == "TinyNet"
    assert results["parameters"] == 28 * 28 * 48 + 48 + 48 * 10 + 10

    monkeypatch.syspath_prepend(str(work))  # the user's module imports, as on PYTHONPATH
    capsys.readouterr()
    # a checkpoint is data: the user's own class is built from it once they trust it by name
    for command in (evaluate, predict, inspect):
        with pytest.raises(SystemExit) as refused:
            command.main(
                [f"ckpt_path={run_dir}", f"images={work}"][: 2 if command is predict else 1]
            )
        assert refused.value.code == 2
        assert "add trust=[mypkg.nets.TinyNet] to the command" in capsys.readouterr().err
    assert "mypkg.nets" not in sys.modules, "refused before it was imported"
    trusting = "trust=[mypkg.nets.TinyNet]"
    evaluate.main([f"ckpt_path={run_dir}", trusting])
    assert f"{results['test_acc']:.2%}" in capsys.readouterr().out
    predict.main([f"ckpt_path={run_dir}", f"images={work}", trusting])
    assert "shirt.png" in capsys.readouterr().out
    inspect.main([f"ckpt_path={run_dir}", f"--out={tmp_path / 'inspect'}", trusting])
    assert f"TinyNet: {results['parameters']:,} parameters" in capsys.readouterr().out
    compare.main([str(outputs / "runs"), f"--out={tmp_path / 'compare'}"])
    untrusted = capsys.readouterr().out
    assert f"{results['test_acc'] * 100:.2f}" in untrusted
    assert "not computed" in untrusted and "add --trust mypkg.nets.TinyNet" in untrusted
    compare.main(
        [str(outputs / "runs"), f"--out={tmp_path / 'compare'}", "--trust", "mypkg.nets.TinyNet"]
    )
    assert "not computed" not in capsys.readouterr().out
