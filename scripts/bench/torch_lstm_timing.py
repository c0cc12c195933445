#!/usr/bin/env python3
"""PyTorch's twin of crates/jizen-nn/examples/lstm_timing.rs: forward + backward of nn.LSTM(200, 200,
num_layers=2), batch 20, 35 steps, float32 on the CPU, from a zero state, loss sum(out * cot).

    /root/venvs/ref/bin/python scripts/bench/torch_lstm_timing.py --threads 2

Prints the median over the timed iterations (after warm-up) of the forward pass, the backward pass
and both. Check `uptime` first: numbers from a busy machine mean nothing.
"""

import argparse
import statistics
import time

import torch
import torch.nn as nn

T, N, H, LAYERS, WARMUP, ITERS = 35, 20, 200, 2, 5, 30


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lstm = nn.LSTM(H, H, num_layers=LAYERS)
    x = torch.randn(T, N, H, requires_grad=True)
    cot = torch.randn(T, N, H)
    state = (torch.zeros(LAYERS, N, H), torch.zeros(LAYERS, N, H))
    fwd, bwd, total = [], [], []
    for i in range(WARMUP + ITERS):
        lstm.zero_grad(set_to_none=True)
        x.grad = None
        t0 = time.perf_counter()
        out, _ = lstm(x, state)
        t1 = time.perf_counter()
        (out * cot).sum().backward()
        t2 = time.perf_counter()
        if i >= WARMUP:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            total.append((t2 - t0) * 1e3)
    med = statistics.median
    print(f"torch {torch.__version__} nn.LSTM {LAYERS}x{H}, batch {N}, {T} steps, {torch.get_num_threads()} threads: "
          f"forward {med(fwd):.2f} ms, backward {med(bwd):.2f} ms, forward+backward {med(total):.2f} ms "
          f"(median of {ITERS})")


if __name__ == "__main__":
    main()
