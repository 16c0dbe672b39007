"""fashion_lab: a Hydra-configured PyTorch Lightning experiment framework for Fashion-MNIST."""

__version__ = "0.1.0"
