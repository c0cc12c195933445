#!/usr/bin/env python3
"""Compare jizen's kernel benchmarks with their PyTorch twin, round by round (stdlib only).

  python3 scripts/bench/compare_kernels.py                 # 3 rounds at 2 threads
  python3 scripts/bench/compare_kernels.py --threads 1 --rounds 5 --json /tmp/kernels.json
  python3 scripts/bench/compare_kernels.py --quick         # one fast round: proves the pipeline

What it does:
  1. builds the criterion bench once (`cargo bench -p jizen-tensor --bench kernels --no-run`) and
     runs that same executable in every round, so an edit to the tree mid-run cannot mix builds;
  2. for each of --rounds rounds runs the jizen bench (JIZEN_THREADS=N) and
     scripts/bench/torch_kernels.py (--threads N) one after the other, alternating which goes
     first (ABBA), and after each jizen run reads criterion's median point estimate from
     <target>/criterion/<group>/<bench>/new/estimates.json;
  3. before each run waits (at most --max-wait seconds) until the 1-minute load average is below
     --load-threshold; note the load average remembers our own previous run, so each wait after a
     benchmark typically lasts ~1.5 min (2 busy cores decay to 0.5 in ~60·ln 4 s);
  4. marks a run as suspect when /proc/stat shows that other processes used more than
     --max-other-cpu cores on average during it (machine busy time minus the CPU time of the
     benchmark process and its children, from resource.getrusage(RUSAGE_CHILDREN)); suspect runs
     are listed and left out of the table (a round's jizen and torch runs are judged separately;
     --keep-suspect, implied by --quick, keeps them);
  5. prints per workload: jizen median ms (median over rounds, min-max), torch median ms (same),
     jizen/torch, and for sgemm the GFLOP/s of jizen, torch and NumPy and jizen's share of the best.

The torch python: --python, else $JIZEN_REF_PYTHON, else /root/venvs/ref/bin/python when it
exists, else ${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv}/bin/python (made by
scripts/fixtures/setup-env.sh). Numbers from a busy machine mean nothing: run on a quiet one.
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TORCH_SCRIPT = REPO / "scripts" / "bench" / "torch_kernels.py"
SGEMM = "sgemm/1024"
SGEMM_FLOPS = 2 * 1024**3
# Criterion ids of the jizen bench (group/bench), in display order; torch uses the same names.
WORKLOADS = [
    SGEMM,
    "conv2d_fwd/mnist1",
    "conv2d_fwd/mnist2",
    "conv2d_fwd_bwd/mnist1",
    "conv2d_fwd_bwd/mnist2",
    "softmax/128x10000",
    "cross_entropy/128x10000",
]
QUICK_CRITERION = ["--warm-up-time", "0.05", "--measurement-time", "0.1",
                   "--sample-size", "10", "--nresamples", "1000"]


def log(msg):
    print(f"[compare_kernels] {msg}", file=sys.stderr, flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="one round with tiny measurement times; numbers are meaningless")
    p.add_argument("--python", help="python with torch and numpy (see the module docstring)")
    p.add_argument("--load-threshold", type=float, default=0.5,
                   help="wait until the 1-min load average is below this (default 0.5)")
    p.add_argument("--max-wait", type=float, default=None,
                   help="longest wait for a quiet machine before each run, s (default 300; 5 with --quick)")
    p.add_argument("--max-other-cpu", type=float, default=0.10,
                   help="a run is suspect when other processes used more than this many cores "
                        "on average (default 0.10)")
    p.add_argument("--keep-suspect", action="store_true",
                   help="report suspect runs but keep them in the table (implied by --quick)")
    p.add_argument("--torch-runs", type=int, default=30, help="timed runs per torch workload")
    p.add_argument("--json", type=Path, help="also write every round's raw results here")
    a = p.parse_args(argv)
    if a.threads < 1 or a.rounds < 1:
        p.error("--threads and --rounds must be positive")
    if a.quick:
        a.rounds = 1
        a.keep_suspect = True
    if a.max_wait is None:
        a.max_wait = 5.0 if a.quick else 300.0
    return a


def find_python(arg):
    cands = [arg, os.environ.get("JIZEN_REF_PYTHON"), "/root/venvs/ref/bin/python"]
    venv = os.environ.get("JIZEN_REF_VENV", str(Path.home() / ".cache" / "jizen" / "ref-venv"))
    cands.append(str(Path(venv) / "bin" / "python"))
    for c in cands:
        if c and Path(c).exists():
            return c
    sys.exit("compare_kernels.py: no python with torch found; run scripts/fixtures/setup-env.sh "
             "(it prints the python path) and pass it with --python")


# ------------------------------------------------------------------------- machine accounting

def loadavg1():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def busy_seconds():
    """CPU time the whole machine spent busy (all cores, including steal), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal guest guest_nice
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    # guest time is already included in user/nice.
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU time of this process plus its finished children (the benchmark processes)."""
    t = os.times()
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return t.user + t.system + c.ru_utime + c.ru_stime


def wait_until_quiet(threshold, max_wait):
    t0 = time.monotonic()
    la = loadavg1()
    if la < threshold:
        return la, 0.0
    log(f"load average {la:.2f} >= {threshold}; waiting up to {max_wait:.0f} s")
    while la >= threshold and time.monotonic() - t0 < max_wait:
        time.sleep(5)
        la = loadavg1()
    waited = time.monotonic() - t0
    if la >= threshold:
        log(f"still {la:.2f} after {waited:.0f} s; running anyway (the CPU check decides)")
    return la, waited


def run_accounted(cmd, env, args):
    """Runs `cmd` after waiting for a quiet machine; returns (stdout, accounting dict)."""
    la, waited = wait_until_quiet(args.load_threshold, args.max_wait)
    b0, o0, w0 = busy_seconds(), own_cpu_seconds(), time.monotonic()
    proc = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)
    b1, o1, w1 = busy_seconds(), own_cpu_seconds(), time.monotonic()
    if proc.returncode != 0:
        sys.exit(f"compare_kernels.py: {cmd[0]} failed with exit status {proc.returncode}")
    wall = w1 - w0
    other = max(0.0, (b1 - b0) - (o1 - o0))
    acct = {
        "load_before": la,
        "waited_s": round(waited, 1),
        "wall_s": round(wall, 2),
        "own_cpu_s": round(o1 - o0, 2),
        "other_cpu_s": round(other, 2),
        "other_cores": round(other / wall, 3) if wall > 0 else 0.0,
    }
    acct["suspect"] = acct["other_cores"] > args.max_other_cpu
    return proc.stdout, acct


# ------------------------------------------------------------------------- the two benchmarks

def build_jizen_bench():
    """Builds the criterion bench; returns (executable, target directory)."""
    cmd = ["cargo", "bench", "-p", "jizen-tensor", "--bench", "kernels", "--no-run",
           "--message-format=json"]
    log("building: " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit("compare_kernels.py: cargo bench --no-run failed")
    exe = None
    for line in proc.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "kernels" \
                and msg.get("executable"):
            exe = msg["executable"]
    if not exe:
        sys.exit("compare_kernels.py: cargo did not report the kernels bench executable")
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                          stdout=subprocess.PIPE, text=True, check=True)
    target = Path(json.loads(meta.stdout)["target_directory"])
    return exe, target


def run_jizen(exe, criterion_home, args):
    env = dict(os.environ, JIZEN_THREADS=str(args.threads), CRITERION_HOME=str(criterion_home))
    cmd = [exe, "--bench", "--noplot"] + (QUICK_CRITERION if args.quick else [])
    started = time.time()
    out, acct = run_accounted(cmd, env, args)
    sys.stderr.write(out)  # criterion's report, for the record
    results = {}
    for w in WORKLOADS:
        f = criterion_home / w / "new" / "estimates.json"
        if not f.exists() or f.stat().st_mtime < started - 1:
            sys.exit(f"compare_kernels.py: {f} was not written by this run")
        est = json.loads(f.read_text())
        results[w] = est["median"]["point_estimate"] / 1e6  # ns -> ms
    return results, acct


def run_torch(python, args):
    cmd = [python, str(TORCH_SCRIPT), "--threads", str(args.threads)]
    cmd += ["--quick"] if args.quick else ["--runs", str(args.torch_runs)]
    # Some machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) to pin old OpenBLAS builds to a
    # safe kernel; that pins NumPy to its AVX2 (Haswell) kernels. The comparison is against the
    # best NumPy can do here, so both are unset for this run (never for tests).
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out, acct = run_accounted(cmd, env, args)
    torch, numpy, versions = {}, {}, {}
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        (torch if rec["framework"] == "torch" else numpy)[rec["workload"]] = rec["median_ms"]
        versions[rec["framework"]] = rec.get("version") + (f" ({rec['blas']})" if rec.get("blas") else "")
    missing = [w for w in WORKLOADS if w not in torch]
    if missing:
        sys.exit(f"compare_kernels.py: torch_kernels.py reported nothing for {missing}")
    return {"torch": torch, "numpy": numpy, "versions": versions}, acct


# ------------------------------------------------------------------------- report

def spread(xs):
    """'median [min-max]' of a list of ms values, or '-' when empty."""
    if not xs:
        return "-", None
    m = statistics.median(xs)
    return f"{m:9.3f} [{min(xs):.3f}-{max(xs):.3f}]", m


def report(rounds, args):
    keep = args.keep_suspect
    good_j = [r["jizen"] for r in rounds if keep or not r["jizen_acct"]["suspect"]]
    good_t = [r["torch"] for r in rounds if keep or not r["torch_acct"]["suspect"]]
    for i, r in enumerate(rounds):
        for side in ("jizen", "torch"):
            a = r[f"{side}_acct"]
            if a["suspect"]:
                print(f"suspect: round {i + 1} {side}: other processes used "
                      f"{a['other_cores']:.2f} cores on average over {a['wall_s']:.0f} s "
                      f"(load before {a['load_before']:.2f}); "
                      + ("kept (--keep-suspect)" if keep else "excluded"))
    versions = next((r["torch"]["versions"] for r in rounds), {})
    print(f"\njizen vs torch {versions.get('torch', '?')} at {args.threads} thread(s); "
          f"{len(good_j)}/{len(rounds)} jizen and {len(good_t)}/{len(rounds)} torch rounds used"
          + ("  [--quick: numbers are meaningless]" if args.quick else ""))
    head = f"{'workload':<26} {'jizen ms [min-max]':>30} {'torch ms [min-max]':>30} {'jizen/torch':>12}"
    print(head)
    print("-" * len(head))
    meds = {}
    for w in WORKLOADS:
        js, jm = spread([g[w] for g in good_j])
        ts, tm = spread([g["torch"][w] for g in good_t])
        ratio = f"{jm / tm:12.2f}" if jm and tm else f"{'-':>12}"
        print(f"{w:<26} {js:>30} {ts:>30} {ratio}")
        meds[w] = (jm, tm)
    # sgemm rate
    jm, tm = meds[SGEMM]
    _, nm = spread([g["numpy"][SGEMM] for g in good_t if SGEMM in g["numpy"]])
    rate = {k: SGEMM_FLOPS / (v * 1e-3) / 1e9 for k, v in
            (("jizen", jm), ("torch", tm), (f"numpy {versions.get('numpy', '?')}", nm)) if v}
    if rate:
        best = max(rate.values())
        parts = ", ".join(f"{k} {v:.1f}" for k, v in rate.items())
        share = f"; jizen = {rate['jizen'] / best:.0%} of the best" if "jizen" in rate else ""
        print(f"\n{SGEMM} GFLOP/s (from medians): {parts}{share}")


def main(argv=None):
    args = parse_args(argv)
    python = find_python(args.python)
    if not shutil.which("cargo"):
        sys.exit("compare_kernels.py: cargo not found on PATH")
    exe, target = build_jizen_bench()
    criterion_home = target / "criterion"
    log(f"jizen bench: {exe}; torch python: {python}; criterion output: {criterion_home}")
    rounds = []
    for r in range(args.rounds):
        log(f"round {r + 1}/{args.rounds}")
        order = ("jizen", "torch") if r % 2 == 0 else ("torch", "jizen")
        rec = {}
        for side in order:
            if side == "jizen":
                rec["jizen"], rec["jizen_acct"] = run_jizen(exe, criterion_home, args)
            else:
                rec["torch"], rec["torch_acct"] = run_torch(python, args)
            log(f"  {side}: {rec[side + '_acct']}")
        rounds.append(rec)
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "quick": args.quick,
                                         "rounds": rounds}, indent=1))
    report(rounds, args)


if __name__ == "__main__":
    main()
