"""Training images/s of candidate networks for the fast_cpu recipe (bf16 autocast and fp32,
channels-last, one thread per core), so the recipe's network is chosen by measurement.

    python experiments/fast_cpu/throughput.py
"""

import time

import torch
from torch import nn

from fashion_lab.models.cnn import cnn
from fashion_lab.models.dilated import DilatedNet

CANDIDATES = {
    "cnn": lambda: cnn(),
    "plain w16 [1,1]x3": lambda: DilatedNet(dilations=[[1, 1], [1, 1], [1, 1]], width=16),
    "plain w24 [1,1]x3": lambda: DilatedNet(dilations=[[1, 1], [1, 1], [1, 1]], width=24),
    "plain w32 [1,1]x3": lambda: DilatedNet(dilations=[[1, 1], [1, 1], [1, 1]], width=32),
    "plain w16 [1,1,1,1],[1,1],[1,1]": lambda: DilatedNet(
        dilations=[[1, 1, 1, 1], [1, 1], [1, 1]], width=16
    ),
    "v2 w16": lambda: DilatedNet(dilations=[[1, 2, 4, 8], [1, 1], [1, 1]], width=16),
    "v2 w32": lambda: DilatedNet(dilations=[[1, 2, 4, 8], [1, 1], [1, 1]], width=32),
}


def images_per_s(net: nn.Module, batch: int, bf16: bool, seconds: float = 3.0) -> float:
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(batch, 1, 28, 28).to(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        step()
        n += 1
    return n * batch / (time.perf_counter() - start)


if __name__ == "__main__":
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, make in CANDIDATES.items():
        for batch in (256,):
            figures = [f"{images_per_s(make(), batch, bf16):7.0f}" for bf16 in (True, False)]
            print(f"{name:34s} batch {batch}: bf16 {figures[0]} fp32 {figures[1]} img/s")
