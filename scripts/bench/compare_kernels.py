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
exists, else ${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv}/bin/python, made by
scripts/fixtures/setup-env.sh, which this script runs (installing torch) when none of them
exists. Numbers from a busy machine mean nothing: run on a quiet one.
The waiting, the CPU accounting and the python discovery live in scripts/bench/benchlib.py,
shared with compare_workloads.py.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (scripts/bench/benchlib.py: waiting, CPU accounting, python discovery)
from benchlib import REPO, spread  # noqa: E402

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


log = benchlib.make_log("compare_kernels")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--quick", action="store_true",
                   help="one round with tiny measurement times; numbers are meaningless")
    p.add_argument("--python", help="python with torch and numpy (see the module docstring)")
    benchlib.add_machine_args(p)
    p.add_argument("--torch-runs", type=int, default=30, help="timed runs per torch workload")
    p.add_argument("--json", type=Path, help="also write every round's raw results here")
    a = p.parse_args(argv)
    if a.threads < 1 or a.rounds < 1:
        p.error("--threads and --rounds must be positive")
    return benchlib.apply_quick(a)


def find_python(arg):
    return benchlib.find_python(arg, "compare_kernels.py")


def run_accounted(cmd, env, args):
    """Runs `cmd` after waiting for a quiet machine; returns (stdout, accounting dict)."""
    proc, acct = benchlib.run_accounted(cmd, env, args, log)
    if proc.returncode != 0:
        sys.exit(f"compare_kernels.py: {cmd[0]} failed with exit status {proc.returncode}")
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
