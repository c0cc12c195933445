#!/usr/bin/env python3
"""PyTorch twin of `jizen bench WORKLOAD` (crates/jizen-cli/src/bench.rs): same workloads, shapes,
dtype (f32), seeds, warm-up and timed counts, and the same one-line JSON report.

  /root/venvs/ref/bin/python scripts/bench/torch_workloads.py mlp --threads 2
  /root/venvs/ref/bin/python scripts/bench/torch_workloads.py epoch-cnn --quick
  PY=$(bash scripts/fixtures/setup-env.sh | tail -n 1); "$PY" scripts/bench/torch_workloads.py gemm

Workloads (a training step is zero_grad, forward, cross-entropy, backward, optimizer step):

  mlp         the zoo `mlp` (Flatten, 784-512-256-10, ReLU between), x ~ N(0,1) [128, 784],
              labels in 0..10, SGD momentum 0.9 lr 0.05; ms/step
  cnn         the zoo `cnn` exactly (conv 1->32 3x3 pad 1, BatchNorm2d, ReLU, maxpool 2,
              conv 32->64, BatchNorm2d, ReLU, maxpool 2, Flatten, Linear 3136->128, ReLU,
              Linear 128->10; docs/pytorch.md), x [64, 1, 28, 28], Adam lr 1e-3; ms/step
  infer       `mlp` in eval mode at batch 1 ([1, 784]); each sample is the mean of 100 calls
              under torch.inference_mode() (--no-grad: torch.no_grad(), what jizen's no_grad
              is); us/call
  gemm        torch.mm of two [1024, 1024] f32 matrices; GFLOP/s (2*1024^3 / time) per sample
  gemm-numpy  the same product with NumPy (a @ b, float32): reported with "framework": "numpy"
              and "workload": "gemm" (the sgemm target compares with the best of torch and NumPy)
  epoch-mlp   one epoch of `mlp` (batch 128) / `cnn` (batch 64) over 60,000 random MNIST-shaped
  epoch-cnn   uint8 images and labels (seeded), converted to float/255, shuffled, through a
              torch.utils.data.DataLoader with num_workers=0 (loading on the training thread;
              jizen's loader prefetches 2 batches on one background thread). 3 epochs timed,
              no warm-up (1 with --quick); ms/epoch. --loader per-sample (default) is the usual
              map-style Dataset returning one [1, 28, 28] image per index and the default
              collate (as torchvision's MNIST does, minus PIL); --loader batched gives the
              DataLoader a BatchSampler so each batch is one indexing + conversion of the uint8
              tensor (the fastest torch.utils.data can do, closer to what jizen's loader does)
  lstm        word-level language model step: Embedding(10000, 200), nn.LSTM(200, 200,
              num_layers=2) from a zero state, Linear 200->10000, cross-entropy over the 35*20=700
              positions, clip_grad_norm_(5), SGD lr 1.0; tokens [35, 20] uniform in 0..10000;
              ms/step (jizen's side may not exist yet)

Counts: 10 warm-up then 50 timed samples (--quick: 2 and 5) for mlp, cnn, infer, gemm, lstm;
--warmup N and --steps N change them (for epoch-* too), and --series adds every timed sample in
the order taken, as `jizen bench` does. Each sample is timed with time.perf_counter. median /
p10 / p90 use jizen's nearest-rank rule (index round-half-up(q * (n - 1)) of the sorted samples).

Threads: --threads N, else $JIZEN_THREADS, else every core this process may run on. Before torch
and NumPy are imported OMP_NUM_THREADS / MKL_NUM_THREADS / OPENBLAS_NUM_THREADS are set to N, and
torch.set_num_threads(N) after. Seeds: torch.manual_seed(0) before the model is built; inputs
from a torch.Generator seeded 0 (the values differ from jizen's, whose generator is its own; the
distributions and shapes are the same). Optimizers use PyTorch's defaults otherwise.

Output: one JSON line on stdout,

  {"workload": "mlp", "framework": "torch", "unit": "ms/step", "median": ..., "p10": ...,
   "p90": ..., "samples": 50, "peak_rss_mib": ..., "threads": 2, "version": "2.15.0", ...}

the keys of `jizen bench` first, then "version" and workload notes ("grad_mode", "loader",
"blas"). peak_rss_mib is resource.getrusage(RUSAGE_SELF).ru_maxrss (KiB on Linux) / 1024: the
whole interpreter, torch's libraries included. scripts/bench/compare_workloads.py runs this script
against `jizen bench` and prints the ratios.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

WORKLOADS = ["mlp", "cnn", "infer", "gemm", "gemm-numpy", "epoch-mlp", "epoch-cnn", "lstm"]
GEMM_N = 1024
INFER_CALLS = 100
MNIST_N = 60_000
LSTM_VOCAB, LSTM_EMB, LSTM_HIDDEN, LSTM_LAYERS, LSTM_STEPS, LSTM_BATCH = 10_000, 200, 200, 2, 35, 20


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workload", choices=WORKLOADS)
    p.add_argument("--threads", type=int, default=None,
                   help="intra-op threads (default: $JIZEN_THREADS, else all cores)")
    p.add_argument("--quick", action="store_true",
                   help="2 warm-up and 5 timed steps, 1 epoch: checks that it runs, not a measurement")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help="untimed samples first (default 10; epochs 0; --quick 2), as jizen bench --warmup")
    p.add_argument("--steps", type=int, default=None, metavar="N",
                   help="timed samples (default 50; epochs 3; --quick 5, epochs 1), as jizen bench --steps")
    p.add_argument("--series", action="store_true",
                   help="also print every timed sample in the order taken (\"series\")")
    p.add_argument("--no-grad", action="store_true",
                   help="infer: torch.no_grad() instead of torch.inference_mode()")
    p.add_argument("--loader", choices=["per-sample", "batched"], default="per-sample",
                   help="epoch-*: how the DataLoader assembles batches (default per-sample)")
    a = p.parse_args(argv)
    if a.threads is None:
        env = os.environ.get("JIZEN_THREADS", "").strip()
        a.threads = int(env) if env.isdigit() and int(env) > 0 else len(os.sched_getaffinity(0))
    if a.threads < 1:
        p.error("--threads must be positive")
    if a.steps is not None and a.steps < 1:
        p.error("--steps must be at least 1")
    if a.warmup is not None and a.warmup < 0:
        p.error("--warmup must not be negative")
    return a


def nearest_rank(sorted_xs, q):
    """jizen's percentile: the element at round-half-up(q * (n - 1))."""
    i = int(math.floor(q * (len(sorted_xs) - 1) + 0.5))
    return sorted_xs[min(i, len(sorted_xs) - 1)]


def time_steps(warmup, timed, step):
    """Milliseconds per call of `step`, `timed` samples after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    out = []
    for _ in range(timed):
        t = time.perf_counter()
        step()
        out.append((time.perf_counter() - t) * 1e3)
    return out


# ------------------------------------------------------------------------- models (docs/pytorch.md)

def mlp(nn, classes=10):  # input [1, 28, 28] or [784]
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, classes)
    )


def cnn(nn, classes=10):  # input [1, 28, 28]
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, classes),
    )


def make_model(torch, name):
    torch.manual_seed(0)
    model = mlp(torch.nn) if name == "mlp" else cnn(torch.nn)
    if name == "mlp":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt


def train_step_fn(torch, model, opt, x, y):
    F = torch.nn.functional

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


# ------------------------------------------------------------------------- workloads
# Each returns (unit, samples, extra JSON fields).

def bench_step(torch, name, warmup, timed):
    g = torch.Generator().manual_seed(0)
    model, opt = make_model(torch, name)
    shape = (128, 784) if name == "mlp" else (64, 1, 28, 28)
    x = torch.randn(*shape, generator=g, dtype=torch.float32)
    y = torch.randint(0, 10, (shape[0],), generator=g, dtype=torch.int64)
    return "ms/step", time_steps(warmup, timed, train_step_fn(torch, model, opt, x, y)), {}


def bench_infer(torch, warmup, timed, no_grad):
    g = torch.Generator().manual_seed(0)
    model, _ = make_model(torch, "mlp")
    model.eval()
    x = torch.randn(1, 784, generator=g, dtype=torch.float32)
    ctx = torch.no_grad if no_grad else torch.inference_mode

    def calls():
        with ctx():
            for _ in range(INFER_CALLS):
                model(x)

    ms = time_steps(warmup, timed, calls)
    extra = {"grad_mode": "no_grad" if no_grad else "inference_mode", "calls_per_sample": INFER_CALLS}
    return "us/call", [m * 1e3 / INFER_CALLS for m in ms], extra


def gflops(ms):
    return [2.0 * GEMM_N**3 / (m * 1e-3) / 1e9 for m in ms]


def bench_gemm(torch, warmup, timed):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(GEMM_N, GEMM_N, generator=g, dtype=torch.float32)
    b = torch.randn(GEMM_N, GEMM_N, generator=g, dtype=torch.float32)
    return "GFLOP/s", gflops(time_steps(warmup, timed, lambda: torch.mm(a, b))), {}


def numpy_blas():
    """NumPy's BLAS and the kernel family it chose (e.g. "openblas SkylakeX"), if knowable."""
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas":
                return f"{info.get('internal_api')} {info.get('architecture', '?')}"
    except Exception:  # threadpoolctl is optional
        pass
    return "unknown"


def bench_gemm_numpy(np, warmup, timed):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    b = rng.standard_normal((GEMM_N, GEMM_N), dtype=np.float32)
    ms = time_steps(warmup, timed, lambda: a @ b)
    return "GFLOP/s", gflops(ms), {"blas": numpy_blas()}


def bench_epoch(torch, name, warmup, epochs, loader_kind):
    from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler

    cnn_ = name == "epoch-cnn"
    batch = 64 if cnn_ else 128
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (MNIST_N, 1, 28, 28), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (MNIST_N,), generator=g, dtype=torch.int64)

    class Mnistish(Dataset):
        """60,000 uint8 images; an index (or a list of indices) gives float/255 images and labels."""

        def __len__(self):
            return MNIST_N

        def __getitem__(self, i):
            return pixels[i].to(torch.float32).div_(255.0), labels[i]

    shuffle_gen = torch.Generator().manual_seed(0)
    if loader_kind == "per-sample":
        loader = DataLoader(Mnistish(), batch_size=batch, shuffle=True, num_workers=0,
                            drop_last=False, generator=shuffle_gen)
    else:
        sampler = BatchSampler(RandomSampler(range(MNIST_N), generator=shuffle_gen), batch, drop_last=False)
        loader = DataLoader(Mnistish(), sampler=sampler, batch_size=None, num_workers=0)
    model, opt = make_model(torch, "cnn" if cnn_ else "mlp")
    F = torch.nn.functional
    out = []
    for _ in range(warmup + epochs):
        t = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        out.append((time.perf_counter() - t) * 1e3)
    return "ms/epoch", out[warmup:], {"loader": f"DataLoader num_workers=0, {loader_kind}"}


def bench_lstm(torch, warmup, timed):
    nn = torch.nn

    class WordLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(LSTM_VOCAB, LSTM_EMB)
            self.lstm = nn.LSTM(LSTM_EMB, LSTM_HIDDEN, num_layers=LSTM_LAYERS)
            self.decoder = nn.Linear(LSTM_HIDDEN, LSTM_VOCAB)

        def forward(self, tokens):  # [steps, batch] -> [steps * batch, vocab]
            out, _ = self.lstm(self.embed(tokens))  # zero initial state
            return self.decoder(out).reshape(-1, LSTM_VOCAB)

    torch.manual_seed(0)
    model = WordLM()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, LSTM_VOCAB, (LSTM_STEPS, LSTM_BATCH), generator=g, dtype=torch.int64)
    y = torch.randint(0, LSTM_VOCAB, (LSTM_STEPS * LSTM_BATCH,), generator=g, dtype=torch.int64)
    params = list(model.parameters())

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()

    return "ms/step", time_steps(warmup, timed, step), {}


def main(argv=None):
    args = parse_args(argv)
    # Thread counts of the BLAS/OpenMP runtimes are read when they load: set them first.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        import numpy as np
        import torch
    except ImportError as e:
        sys.exit(f"torch_workloads.py: {e}; run scripts/fixtures/setup-env.sh and use the python it "
                 "prints (the venv at ${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv})")
    torch.set_num_threads(args.threads)
    w = args.workload
    if w.startswith("epoch-"):
        warmup, timed = (0, 1) if args.quick else (0, 3)
    else:
        warmup, timed = (2, 5) if args.quick else (10, 50)
    warmup = warmup if args.warmup is None else args.warmup
    timed = timed if args.steps is None else args.steps
    framework, version = "torch", torch.__version__.split("+")[0]
    if w in ("mlp", "cnn"):
        unit, samples, extra = bench_step(torch, w, warmup, timed)
    elif w == "infer":
        unit, samples, extra = bench_infer(torch, warmup, timed, args.no_grad)
    elif w == "gemm":
        unit, samples, extra = bench_gemm(torch, warmup, timed)
    elif w == "gemm-numpy":
        framework, version, w = "numpy", np.__version__, "gemm"
        unit, samples, extra = bench_gemm_numpy(np, warmup, timed)
    elif w in ("epoch-mlp", "epoch-cnn"):
        unit, samples, extra = bench_epoch(torch, w, warmup, timed, args.loader)
    else:
        unit, samples, extra = bench_lstm(torch, warmup, timed)
    s = sorted(samples)
    rec = {
        "workload": w,
        "framework": framework,
        "unit": unit,
        "median": nearest_rank(s, 0.5),
        "p10": nearest_rank(s, 0.1),
        "p90": nearest_rank(s, 0.9),
        "samples": len(s),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "threads": torch.get_num_threads() if framework == "torch" else args.threads,
        "version": version,
    }
    rec.update(extra)
    if args.series:
        rec["series"] = samples
    print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
