#!/usr/bin/env python3
"""PyTorch (and NumPy) twin of jizen's kernel benchmarks (crates/jizen-tensor/benches/kernels.rs).

Same workloads, same shapes, f32, at a fixed thread count:

  sgemm/1024                 [1024,1024] @ [1024,1024]    (torch.mm and NumPy's a @ b)
  conv2d_fwd/mnist1|mnist2   F.conv2d with bias, padding 1, no autograd
  conv2d_fwd_bwd/mnist1|2    the same, plus grads of input, weight and bias
                             (torch.autograd.grad(out, (x, w, b), cot), like jizen's grad(..))
  softmax/128x10000          torch.softmax(x, dim=1), forward only
  cross_entropy/128x10000    F.cross_entropy(logits, i64 targets) + its gradient w.r.t. logits

  mnist1: x [64,1,28,28],  w [32,1,3,3]     mnist2: x [64,32,14,14], w [64,32,3,3]

Each workload is warmed up, then timed --runs times (>= 20) with time.perf_counter; one JSON line
per workload goes to stdout:

  {"framework": "torch", "workload": "sgemm/1024", "median_ms": ..., "p10_ms": ..., "p90_ms": ...,
   "gflops": ... (sgemm only, from the median), "threads": 2, "runs": 30, "version": "2.15.0"}

Threads: --threads N (default 2) sets torch.set_num_threads(N) and, before NumPy and torch are
imported, OMP_NUM_THREADS / MKL_NUM_THREADS / OPENBLAS_NUM_THREADS, so NumPy's BLAS uses N too.
Run it under the same N as jizen's JIZEN_THREADS.

Setup: it needs torch and numpy. On the development machine they are in /root/venvs/ref:

  /root/venvs/ref/bin/python scripts/bench/torch_kernels.py --threads 2

On a fresh machine run scripts/fixtures/setup-env.sh first; it creates a virtual environment at
${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv} and prints its python path, which runs this script:

  PY=$(bash scripts/fixtures/setup-env.sh | tail -n 1)
  "$PY" scripts/bench/torch_kernels.py --threads 2

Options: --only SUBSTR (repeatable) keeps workloads whose name contains SUBSTR; --runs, --warmup;
--quick (5 runs, 1 warm-up) just proves the pipeline works. scripts/bench/compare_kernels.py runs
this script and jizen's criterion bench alternately and prints the comparison.
"""

import argparse
import json
import os
import statistics
import sys
import time

SGEMM_N = 1024
CONVS = {
    "mnist1": ((64, 1, 28, 28), (32, 1, 3, 3)),
    "mnist2": ((64, 32, 14, 14), (64, 32, 3, 3)),
}
ROWS, CLASSES = 128, 10_000


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--runs", type=int, default=30, help="timed runs per workload (min 20)")
    p.add_argument("--warmup", type=int, default=5, help="untimed runs first (default 5)")
    p.add_argument("--only", action="append", default=[], help="keep workloads containing this")
    p.add_argument("--quick", action="store_true", help="5 runs, 1 warm-up: a smoke test")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be positive")
    if a.quick:
        a.runs, a.warmup = 5, 1
    elif a.runs < 20:
        p.error("--runs must be at least 20 (use --quick for a smoke test)")
    return a


def percentile(sorted_xs, q):
    """Linear-interpolated percentile (q in [0, 1]) of an ascending list."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = q * (len(sorted_xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def measure(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {
        "median_ms": statistics.median(times),
        "p10_ms": percentile(times, 0.10),
        "p90_ms": percentile(times, 0.90),
    }


def workloads(torch, np, F):
    """(framework, name, fn, flops or None) for every workload; inputs made up front."""
    g = torch.Generator().manual_seed(0)

    def randn(*shape, requires_grad=False):
        return torch.randn(*shape, generator=g, dtype=torch.float32).requires_grad_(requires_grad)

    out = []
    n = SGEMM_N
    flops = 2 * n**3
    a, b = randn(n, n), randn(n, n)
    out.append(("torch", f"sgemm/{n}", lambda: torch.mm(a, b), flops))
    an, bn = a.numpy(), b.numpy()
    out.append(("numpy", f"sgemm/{n}", lambda: an @ bn, flops))

    for name, (xs, ws) in CONVS.items():
        x, w, bias = randn(*xs), randn(*ws) * 0.1, randn(ws[0])

        def fwd(x=x, w=w, bias=bias):
            with torch.no_grad():
                return F.conv2d(x, w, bias, padding=1)

        out.append(("torch", f"conv2d_fwd/{name}", fwd, None))

    for name, (xs, ws) in CONVS.items():
        x = randn(*xs, requires_grad=True)
        w = (randn(*ws) * 0.1).requires_grad_(True)
        bias = randn(ws[0], requires_grad=True)
        cot = randn(xs[0], ws[0], xs[2], xs[3])

        def fwd_bwd(x=x, w=w, bias=bias, cot=cot):
            y = F.conv2d(x, w, bias, padding=1)
            return torch.autograd.grad(y, (x, w, bias), cot)

        out.append(("torch", f"conv2d_fwd_bwd/{name}", fwd_bwd, None))

    s = randn(ROWS, CLASSES)

    def softmax():
        with torch.no_grad():
            return torch.softmax(s, dim=1)

    out.append(("torch", f"softmax/{ROWS}x{CLASSES}", softmax, None))

    logits = randn(ROWS, CLASSES, requires_grad=True)
    targets = torch.randint(0, CLASSES, (ROWS,), generator=g, dtype=torch.int64)

    def ce():
        loss = F.cross_entropy(logits, targets)
        return torch.autograd.grad(loss, (logits,))

    out.append(("torch", f"cross_entropy/{ROWS}x{CLASSES}", ce, None))
    return out


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


def main(argv=None):
    args = parse_args(argv)
    # Thread counts of the BLAS/OpenMP runtimes are read when they load: set them first.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        sys.exit(
            f"torch_kernels.py: {e}; run scripts/fixtures/setup-env.sh and use the python it "
            "prints (the venv at ${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv})"
        )
    torch.set_num_threads(args.threads)
    versions = {"torch": torch.__version__.split("+")[0], "numpy": np.__version__}
    for fw, name, fn, flops in workloads(torch, np, F):
        if args.only and not any(s in name for s in args.only):
            continue
        r = measure(fn, args.runs, args.warmup)
        rec = {"framework": fw, "workload": name}
        rec.update({k: round(v, 4) for k, v in r.items()})
        if flops is not None:
            rec["gflops"] = round(flops / (r["median_ms"] * 1e-3) / 1e9, 2)
        rec.update({"threads": args.threads, "runs": args.runs, "version": versions[fw]})
        if fw == "numpy":
            rec["blas"] = numpy_blas()
        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    main()
