"""The schema (fashion_lab/schema.py): Hydra refuses unknown keys and wrong types of
fashion_lab's own config while composing, the user's config files too; ranges are checked once."""

from __future__ import annotations

import pytest
from conftest import compose_run

from fashion_lab import schema
from fashion_lab.errors import UserError


def test_the_composed_default_config_is_the_schemas_and_passes_it(tmp_path):
    cfg = schema.check(compose_run([], tmp_path))
    assert cfg.data.batch_size == 128 and cfg.module.steps_per_call is None
    assert cfg.model_name == "cnn"


@pytest.mark.parametrize(
    ("overrides", "sentence"),
    [
        (["seed=-1"], "seed must be an integer from 0 to 4294967295"),
        (["data.batch_size=0"], "data.batch_size must be a positive integer, got 0"),
        (["data.val_size=0"], "data.val_size must be a positive integer"),
        (["data.augment.hflip=1.5"], "data.augment.hflip must be a probability from 0 to 1"),
        (["data.augment.crop_padding=-2"], "data.augment.crop_padding must be 0 to 28"),
        (["module.label_smoothing=-0.1"], "module.label_smoothing must be a number from 0 to 1"),
        (["module.steps_per_call=0"], "module.steps_per_call must be a positive integer"),
        (["train=false", "test=false"], "train=false and test=false leave nothing to do"),
        (["~model.dropout", "~model.hidden", "~model._target_"], "model must name its network"),
    ],
)
def test_a_value_out_of_range_is_one_sentence(overrides, sentence, tmp_path):
    with pytest.raises(schema.ConfigError, match=sentence) as error:
        schema.check(compose_run(overrides, tmp_path))
    assert str(error.value).endswith(".") and "\n" not in str(error.value)


def test_a_users_config_file_is_held_to_the_schema_too(tmp_path):
    from hydra import compose, initialize_config_dir

    from fashion_lab.config import CONFIG_DIR

    own = tmp_path / "myconf" / "data"
    own.mkdir(parents=True)
    (own / "typo.yaml").write_text("defaults:\n  - fashion_mnist\n  - _self_\nbatch_sise: 64\n")
    (own / "wrong_type.yaml").write_text(
        "defaults:\n  - fashion_mnist\n  - _self_\nbatch_size: many\n"
    )
    for option, refusal in [("typo", "batch_sise"), ("wrong_type", "many")]:
        with (
            initialize_config_dir(str(CONFIG_DIR), version_base="1.3"),
            pytest.raises(Exception, match=refusal),
        ):
            compose(
                "config", [f"hydra.searchpath=[file://{tmp_path / 'myconf'}]", f"data={option}"]
            )


def test_values_the_schema_does_not_own_stay_free(tmp_path):
    # the model, trainer, optimizer ... are other libraries' objects, checked when built
    cfg = schema.check(compose_run(["+trainer.limit_val_batches=2", "+model.extra=1"], tmp_path))
    assert cfg.trainer.limit_val_batches == 2 and cfg.model.extra == 1


def test_composing_refuses_a_wrong_type_in_ones_own_keys(tmp_path):
    with pytest.raises(UserError, match="could not be converted to Integer"):
        compose_run(["data.batch_size=abc"], tmp_path)
