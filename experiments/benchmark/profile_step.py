"""Where a training step's time goes: torch.profiler over the steps of a zoo network.

    python experiments/benchmark/profile_step.py [--model cnn] [--batch-size 128]
        [--precision 32-true|bf16-mixed] [--contiguous] [--keras-order] [--steps 20]

Prints the ops with the most own CPU time (forward and backward), with the memory each
allocated, then one line of training images/s over the profiled steps. `--keras-order` puts
the CNN's ReLUs back before its poolings, as the source README's Keras model has them.
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import torch
from torch.profiler import ProfilerActivity, profile

from fashion_lab.models import create_model


def keras_order(net: torch.nn.Sequential) -> torch.nn.Sequential:
    """The zoo CNN with Conv-ReLU-MaxPool blocks (it pools first; the outputs are the same)."""
    for i in (1, 4):
        net[i], net[i + 1] = net[i + 1], net[i]
    return net


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    parser.add_argument("--contiguous", action="store_true", help="not channels-last")
    parser.add_argument("--keras-order", action="store_true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rows", type=int, default=15)
    args = parser.parse_args()
    torch.manual_seed(0)
    net = create_model(args.model)
    if args.keras_order:
        net = keras_order(net)
    memory = torch.contiguous_format if args.contiguous else torch.channels_last
    net = net.to(memory_format=memory).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)  # as conf/optimizer
    x = torch.randn(args.batch_size, 1, 28, 28).contiguous(memory_format=memory)
    y = torch.randint(0, 10, (args.batch_size,))
    bf16 = args.precision == "bf16-mixed"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()

    def step() -> None:
        with autocast:
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        seconds = time.perf_counter() - start
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))
    print(
        f"{args.model} batch {args.batch_size} {args.precision} "
        f"{'contiguous' if args.contiguous else 'channels_last'}"
        f"{' keras-order' if args.keras_order else ''}: "
        f"{args.batch_size * args.steps / seconds:,.0f} training images/s under the profiler, "
        f"{seconds / args.steps * 1e3:.1f} ms a step"
    )


if __name__ == "__main__":
    main()
