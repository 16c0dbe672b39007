"""A checkpoint, a run's config.yaml and a study are data: what they name is built only when
fashion_lab, this command's config or the user's `trust=[...]` names it (fashion_lab/trust.py)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import yaml
from conftest import compose_run, tiny_overrides, untrained_checkpoint
from PIL import Image

from fashion_lab import build, compare, evaluate, inspect, plan, predict, trust
from fashion_lab.search import outside
from fashion_lab.trust import Untrusted


def payloads(tmp: Path) -> dict[str, dict]:
    """The issue's payloads and more of their class: each, if built, leaves a file in `tmp`."""
    return {
        "makedirs": {"_target_": "os.makedirs", "name": str(tmp / "made"), "exist_ok": True},
        "copyfile": {"_target_": "shutil.copyfile", "src": __file__, "dst": str(tmp / "made")},
        "open": {"_target_": "builtins.open", "file": str(tmp / "made"), "mode": "w"},
        "write_text": {
            "_target_": "pathlib.Path.write_text",
            "_args_": [{"_target_": "pathlib.Path", "_args_": [str(tmp / "made")]}, "import os"],
        },
        "nested in _args_": {
            "_target_": "fashion_lab.models.cnn.cnn",
            "_args_": [{"_target_": "os.makedirs", "name": str(tmp / "made")}],
        },
        "nested option, partial": {
            "_target_": "fashion_lab.models.cnn.cnn",
            "hidden": {"_target_": "os.makedirs", "_partial_": True, "name": str(tmp / "made")},
        },
        "through a module attribute": {
            "_target_": "torch.optim.optimizer.torch.save",
            "obj": 1,
            "f": str(tmp / "made"),
        },
        "a resolver": {"_target_": "fashion_lab.models.cnn.cnn", "hidden": "${oc.env:HOME}"},
        "not a name": {"_target_": ["os.makedirs"]},
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    """A fashion_lab checkpoint of an untrained cnn in a run directory (no training needed)."""
    tmp = tmp_path_factory.mktemp("trust")
    return tmp, untrained_checkpoint(compose_run(tiny_overrides(tmp / "data", tmp / "logs"), tmp))


def hostile(tmp: Path, saved: dict, group: str, node: dict) -> Path:
    """A run directory whose checkpoints' config has `node` at `group`."""
    run = tmp / "hostile" / f"{group}_{len(list(tmp.glob('hostile/*')))}"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".hydra").mkdir()
    bad = copy.deepcopy(saved)
    config = bad["fashion_lab_config"]
    if group == "model":
        config["model"] = node
    else:
        config[group] = {"evil": node}
    for name in ("best.ckpt", "last.ckpt"):
        torch.save(bad, run / "checkpoints" / name)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


@pytest.mark.parametrize("name", list(payloads(Path("/x"))))
def test_a_checkpoint_names_nothing_that_runs_for_any_command(checkpoint, tmp_path, name, capsys):
    tmp, saved = checkpoint
    node = payloads(tmp_path)[name]
    run = hostile(tmp, saved, "model", node)
    Image.new("L", (28, 28)).save(tmp_path / "photo.png")
    for command, args in (
        (evaluate.main, [f"ckpt_path={run}"]),
        (predict.main, [f"ckpt_path={run}", f"images={tmp_path}"]),
        (inspect.main, [f"ckpt_path={run}", f"--out={tmp_path / 'inspect'}"]),
    ):
        with pytest.raises(SystemExit) as ended:
            command(args)
        assert ended.value.code == 2
        said = capsys.readouterr().err.strip().splitlines()
        assert len(said) == 1 and said[0].startswith("Error: The checkpoint "), said
        assert "damaged or was made by hand" in said[0] or "add trust=[" in said[0]
    # a resume (a sweep job's too) reads the checkpoint's whole config through the same gate
    cfg = compose_run(tiny_overrides(tmp / "data", tmp / "logs"), tmp_path)
    with pytest.raises(Untrusted):
        plan.checked_config(cfg, plan.Start(run / "checkpoints" / "last.ckpt"))
    # compare rebuilds the network of each group from config.yaml: refused, and said
    (run / "results.json").write_text('{"status": "completed", "test_acc": 0.5, "seed": 0}')
    report = compare.compare([run], tmp_path / "compare")
    assert "not computed" in report and ("--trust" in report or "damaged" in report)
    assert not (tmp_path / "made").exists(), "nothing named in the file ran"


@pytest.mark.parametrize("group", ["callbacks", "logger", "optimizer", "scheduler", "data"])
def test_a_resume_refuses_a_target_in_any_group(checkpoint, tmp_path, group):
    tmp, saved = checkpoint
    node = {"_target_": "os.makedirs", "name": str(tmp_path / "made")}
    run = hostile(tmp, saved, group, node)
    cfg = compose_run(tiny_overrides(tmp / "data", tmp / "logs"), tmp_path)
    with pytest.raises(Untrusted, match=rf"asks to build os.makedirs \({group}.evil\)"):
        plan.checked_config(cfg, plan.Start(run / "checkpoints" / "last.ckpt"))
    assert not (tmp_path / "made").exists()


def test_trust_names_a_target_on_purpose(checkpoint, tmp_path, capsys):
    tmp, saved = checkpoint
    node = {"_target_": "torch.nn.Sequential", "_args_": [{"_target_": "torch.nn.Flatten"}]}
    node["_args_"].append({"_target_": "torch.nn.Linear", "in_features": 784, "out_features": 10})
    run = hostile(tmp, saved, "model", node)
    with pytest.raises(Untrusted, match=r"add trust=\[torch.nn.Sequential\]"):
        build.restore_network(run / "checkpoints" / "best.ckpt")
    with pytest.raises(Untrusted, match=r"torch.nn.Flatten \(model._args_\[0\]\)"):
        build.restore_network(run / "checkpoints" / "best.ckpt", ["torch.nn.Sequential"])
    # the weights are the cnn's: the trusted network is built, then said not to fit them
    with pytest.raises(SystemExit):
        evaluate.main(
            [f"ckpt_path={run}", "trust=[torch.nn.Sequential,torch.nn.Flatten,torch.nn.Linear]"]
        )
    assert "do not fit the model its config describes" in capsys.readouterr().err


def test_fashion_labs_own_targets_are_trusted_by_name_only():
    builtin = trust.builtin_targets()
    conf = Path(__file__).resolve().parent.parent / "conf"
    for path in conf.rglob("*.yaml"):
        for line in path.read_text().splitlines():
            if line.strip().startswith("_target_:"):
                assert line.split(":", 1)[1].strip() in builtin, path
    assert {"torch.optim.SGD", "torch.optim.lr_scheduler.StepLR"} <= builtin
    assert "pytorch_lightning.callbacks.LearningRateMonitor" in builtin
    assert "fashion_lab.models.dilated.dilated_v2" in builtin
    for door in (
        "torch.optim.optimizer.torch.save",
        "os.system",
        "fashion_lab.results.write_results",
    ):
        assert door not in builtin
    trust.check({"a": [{"_target_": "torch.optim.SGD"}]}, "x")
    with pytest.raises(Untrusted):
        trust.check({"a": [{"_target_": "torch.optim.sgd.torch.save"}]}, "x")


def test_this_commands_own_config_is_trusted(tmp_path):
    cfg = compose_run(
        [*tiny_overrides(tmp_path, tmp_path), "model._target_=mypkg.Net", "trust=[a.B]"], tmp_path
    )
    assert {"mypkg.Net", "a.B", "torch.optim.Adam"} <= trust.user_targets(cfg)


def test_a_study_continues_only_parameters_of_its_search_space():
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space = {
        "model": CategoricalDistribution(["cnn", "resnet"]),
        "optimizer.lr": FloatDistribution(1e-4, 1e-1),
    }
    assert outside(space, {"model": "cnn", "optimizer.lr": 0.01}) is None
    assert "not in this sweep's search space" in outside(space, {"model._target_": "os.system"})
    assert "outside" in outside(space, {"model": "os.system"})
    assert "outside" in outside(space, {"optimizer.lr": "0.01,model._target_=os.system"})
    assert "outside" in outside(space, {"optimizer.lr": 5.0})
