"""The model zoo: plain `nn.Module`s found by name. Nothing in here knows Lightning or Hydra."""

from fashion_lab.models.registry import create_model, list_models, register_model

# Importing the definitions fills the registry.
from fashion_lab.models import cnn, dilated, resnet  # noqa: F401  isort: skip

__all__ = ("create_model", "list_models", "register_model")
