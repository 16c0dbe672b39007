"""The source README's Keras baseline, layer for layer (225,034 parameters)."""

from __future__ import annotations

from torch import nn

from fashion_lab.models.registry import check_positive, register_model


class SimpleCNN(nn.Sequential):
    """Conv32-ReLU-MaxPool, Conv64-ReLU-MaxPool, Dense128-ReLU, Dropout, Dense10.

    Each block pools before its ReLU: the two commute (ReLU is monotonic), so outputs and
    gradients are the Keras order's, and the ReLU and its backward touch a quarter of the values.

    Args:
        num_classes: output logits.
        dropout: dropout before the last layer (0.5 in the source).
        hidden: width of the dense layer.
    """

    def __init__(self, *, num_classes: int = 10, dropout: float = 0.5, hidden: int = 128) -> None:
        check_positive("hidden", hidden)
        super().__init__(
            nn.Conv2d(1, 32, 3),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3),
            nn.MaxPool2d(2),
            nn.ReLU(inplace=True),
            nn.Flatten(),
            nn.Linear(64 * 5 * 5, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )


@register_model
def cnn(*, num_classes: int = 10, dropout: float = 0.5, hidden: int = 128) -> SimpleCNN:
    """The source README's CNN baseline."""
    return SimpleCNN(num_classes=num_classes, dropout=dropout, hidden=hidden)
