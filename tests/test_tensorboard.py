"""TensorBoard, as a person opens it: a server on a finished run, read through its HTTP API."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import run_cli, tiny_overrides, write_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_tensorboard_serves_the_runs_scalars_images_and_hparams(tmp_path: Path):
    write_dataset(tmp_path / "data")
    done = run_cli(*tiny_overrides(tmp_path / "data", tmp_path / "logs"))
    assert done.returncode == 0, done.stderr
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(tmp_path / "logs"),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/data/plugin"
    try:
        scalars: dict = {}
        for _ in range(60):  # the server loads the event files in the background
            try:
                scalars = _get(f"{base}/scalars/tags")
                if scalars and any("test/acc" in tags for tags in scalars.values()):
                    break
            except OSError:
                pass
            time.sleep(1)
        ((run, tags),) = scalars.items()
        for tag in ("train/loss", "train/acc", "val/acc", "val/acc_best", "test/acc", "train/lr"):
            assert tag in tags, f"{tag} missing from {sorted(tags)}"
        images = _get(f"{base}/images/tags")[run]
        for tag in ("test/confusion_matrix", "test/predictions", "val/confusion_matrix"):
            assert tag in images
        experiment = _get(f"{base}/hparams/experiment", {"experimentName": ""})
        hparams = {h["name"] for h in experiment["hparamInfos"]}
        metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
        assert "model/name" in hparams or any(h.startswith("model") for h in hparams)
        assert {"val/acc_best", "test/acc"} <= metrics
    finally:
        server.terminate()
        server.wait(timeout=30)
