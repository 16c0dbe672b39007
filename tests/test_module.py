"""The LightningModule: loss, metrics, schedules, divergence."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import pytest
import torch

from fashion_lab.models import create_model
from fashion_lab.module import DivergenceError, LitClassifier, tag_safe


def _module(**kwargs) -> LitClassifier:
    optimizer = functools.partial(torch.optim.SGD, lr=0.1)
    return LitClassifier(create_model("cnn"), optimizer, **kwargs)


def test_label_smoothing_changes_the_loss():
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    torch.manual_seed(0)
    plain = _module()
    smooth = _module(label_smoothing=0.2)
    smooth.load_state_dict(plain.state_dict())
    plain.eval(), smooth.eval()
    loss_plain = plain._loss_and_logits((x, y))[0]
    loss_smooth = smooth._loss_and_logits((x, y))[0]
    assert not torch.isclose(loss_plain, loss_smooth)


def test_channels_last_gives_the_same_logits():
    torch.manual_seed(0)
    a = _module().eval()
    b = _module(channels_last=True).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 1, 28, 28)
    assert torch.allclose(a(x), b(x), atol=1e-5)


@pytest.mark.parametrize(("step", "stops"), [(2, True), (1, False)])
def test_a_non_finite_loss_stops_training_at_the_next_logging_step(step, stops):
    # the loss is read on the steps Lightning writes logs: those ending on a multiple of
    # log_every_n_steps (here 3; Lightning steps the optimizer after the training step)
    module = _module()
    module._trainer = SimpleNamespace(
        global_step=step, current_epoch=0, log_every_n_steps=3, precision="32-true"
    )
    x = torch.full((4, 1, 28, 28), float("nan"))
    batch = (x, torch.zeros(4, dtype=torch.long))
    if stops:
        # read at steps 0 (none yet) and 2: it went bad at one of them, not said to be 2
        with pytest.raises(
            DivergenceError, match=r"loss became nan at a step between 0 and 2 .*optimizer.lr"
        ):
            module.training_step(batch, step)
    else:
        assert module.training_step(batch, step).isnan()
        assert module._train_sums[0].isnan()  # found at the next read or the epoch's end


def test_a_non_finite_loss_between_reads_is_found_from_the_running_sum():
    # the loss is read every log_every_n_steps steps; a NaN in between stays in the epoch's
    # running loss sum, which the next read (or the epoch's end) sees
    module = _module()
    module._check_divergence(current=0.5, running=12.0)  # healthy: no error
    with pytest.raises(DivergenceError, match=r"loss became non-finite at step 0 \(epoch 0\)"):
        module._check_divergence(current=0.4, running=float("nan"))
    module._trainer = SimpleNamespace(
        global_step=120, current_epoch=2, precision="32-true"
    )  # read at 100, 120
    module._checked_step = 99
    with pytest.raises(DivergenceError, match=r"at a step between 100 and 120 \(epoch 2\)"):
        module._check_divergence(current=0.4, running=float("inf"))
    module._train_sums[0] = float("inf")
    with pytest.raises(DivergenceError, match="loss became non-finite"):
        module._check_divergence()  # the epoch-end and pre-validation check


@pytest.mark.parametrize(
    ("target", "keyword"),
    [
        (torch.optim.lr_scheduler.OneCycleLR, "total_steps"),
        (torch.optim.lr_scheduler.CosineAnnealingLR, "T_max"),
    ],
)
def test_schedule_length_is_the_number_of_optimizer_steps(target, keyword):
    extra = {"max_lr": 0.1} if keyword == "total_steps" else {}
    scheduler = functools.partial(target, **{keyword: None}, **extra)
    module = _module(scheduler=scheduler)

    class FakeTrainer:
        estimated_stepping_batches = 123
        max_steps = -1  # a Trainer's default: no step limit

    module.trainer = FakeTrainer()
    config = module.configure_optimizers()
    built = config["lr_scheduler"]["scheduler"]
    assert getattr(built, keyword) == 123
    assert config["lr_scheduler"]["interval"] == "step"


def test_tag_safe_class_names():
    assert tag_safe("T-shirt/top") == "T-shirt_top"
    assert tag_safe("Ankle boot") == "Ankle_boot"
