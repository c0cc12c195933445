#!/usr/bin/env python3
"""Compare `jizen bench WORKLOAD` with its PyTorch twin, round by round (stdlib only).

  python3 scripts/bench/compare_workloads.py                       # 3 rounds at 2 threads
  python3 scripts/bench/compare_workloads.py --workloads mlp,cnn,lstm --rounds 5 --json /tmp/w.json
  python3 scripts/bench/compare_workloads.py --quick               # one fast round: proves the pipeline
  python3 scripts/bench/compare_workloads.py --rounds 3 --fast-rounds 11   # 11 rounds of mlp, infer, gemm

What it does:
  1. builds the CLI once (`cargo build --release -p jizen-cli`), copies <target>/release/jizen to a
     temporary directory and runs that copy in every round, so a rebuild of the tree mid-run
     cannot mix binaries; `jizen bench --help` tells which workloads this jizen knows;
  2. for each of --rounds rounds and each workload runs `JIZEN_THREADS=N jizen bench W` and
     `scripts/bench/torch_workloads.py W --threads N` one after the other, alternating which goes
     first from round to round (ABBA: jizen first in rounds 1, 3, ..., torch first in 2, 4, ...);
     for gemm the torch side also runs `torch_workloads.py gemm-numpy` (NumPy's a @ b) right after
     torch, with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (as compare_kernels.py does) so that
     NumPy uses the best kernels its OpenBLAS has for this CPU; each run prints one JSON line
     (median, p10, p90, peak RSS) which is kept; with --fast-rounds F (more than --rounds), the
     rounds after the --rounds-th run only mlp, infer and gemm, whose runs take seconds: their
     medians then rest on F rounds, the others' on --rounds (a 2-core virtual machine's speed
     changes every few seconds to minutes, and a run of those three samples well under a second
     of it, so three rounds of them can land in three different states);
  3. before each run waits (at most --max-wait seconds) until the 1-minute load average is below
     --load-threshold (the load average remembers our own previous run, so a wait after a long
     benchmark typically lasts ~1.5 min: a full run of the 6 default workloads takes about an
     hour);
  4. marks a run as suspect when /proc/stat shows that other processes used more than
     --max-other-cpu cores on average during it (see scripts/bench/benchlib.py); suspect runs are
     listed and left out of the table (--keep-suspect, implied by --quick, keeps them);
  5. prints per workload: the unit; jizen's median (the median over rounds of each run's median,
     with the min-max over rounds); torch's (same); the ratio of the two medians, jizen/torch for
     times and torch/jizen for GFLOP/s, so that below 1 always means jizen is better; the peak
     RSS of each (MiB, the largest over the rounds used); how many rounds each side contributed;
     the issue's target with met / not met; and under the table each round's pair of medians, how
     many rounds met the target on their own (for gemm against the better of that round's torch
     and NumPy), and the round trip of a cache line between two threads that `jizen bench`
     measured before and after its run (a 2-core virtual machine's cores can sit near each other
     on the host or far apart, and the round trip tells which, see BENCHMARKS.md). The targets:
        mlp, cnn, lstm   step-time ratio <= 0.8
        infer            latency ratio <= 0.3
        gemm             jizen's GFLOP/s >= 0.9 x the best of torch.mm and NumPy
        epoch-mlp/-cnn   no target given (reported for the record)
     A workload this jizen does not know (clap rejects it with exit status 2, e.g. lstm today) is
     reported as "not implemented in jizen"; its torch side still runs. A run that fails
     otherwise is reported as failed and the comparison goes on.

Notes on fairness, also printed under the table: torch's epoch-* loads data with a
torch.utils.data.DataLoader with num_workers=0 (on the training thread; --torch-loader picks
per-sample or batched assembly), while jizen's loader prefetches 2 batches on a background
thread; torch's infer uses torch.inference_mode() (--torch-no-grad: torch.no_grad()); the peak
RSS of torch is the whole interpreter with torch's libraries loaded.

--quick runs one round with `--quick` on both sides (2 warm-up and 5 timed steps, 1 epoch) and
keeps suspect runs: it proves the pipeline, and its numbers mean nothing. On a busy machine they
are worse than noisy: with other processes on its cores, torch's OpenMP threads wait on each other
at every parallel region, and its step times grow tenfold or more (seen on the 2-core machine),
far more than jizen's.

The torch python: --python, else $JIZEN_REF_PYTHON, else /root/venvs/ref/bin/python when it
exists, else ${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv}/bin/python, made by
scripts/fixtures/setup-env.sh, which this script runs (installing torch) when none of them
exists. Numbers from a busy machine mean nothing: run on a quiet one.
--json OUT also writes every run's JSON line, its accounting and the summary.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (scripts/bench/benchlib.py: waiting, CPU accounting, python discovery)
from benchlib import REPO, cell, fmt  # noqa: E402

PROG = "compare_workloads.py"
TORCH_SCRIPT = REPO / "scripts" / "bench" / "torch_workloads.py"
KNOWN = ["mlp", "cnn", "infer", "gemm", "epoch-mlp", "epoch-cnn", "lstm"]
FAST = ("mlp", "infer", "gemm")  # runs of seconds: --fast-rounds applies to these
DEFAULT = "mlp,cnn,infer,gemm,epoch-mlp,epoch-cnn"
RATE_UNITS = ("GFLOP/s",)  # higher is better: the ratio is torch/jizen
# The targets: workload -> (text, bound on the ratio column); gemm is judged separately.
TARGETS = {
    "mlp": ("ratio <= 0.8", 0.8),
    "cnn": ("ratio <= 0.8", 0.8),
    "lstm": ("ratio <= 0.8", 0.8),
    "infer": ("ratio <= 0.3", 0.3),
}
GEMM_SHARE = 0.9

log = benchlib.make_log("compare_workloads")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", default=DEFAULT,
                   help=f"comma-separated, from {','.join(KNOWN)} (default {DEFAULT})")
    p.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--fast-rounds", type=int, default=None, metavar="F",
                   help=f"rounds for {', '.join(FAST)} (default: --rounds; at least --rounds)")
    p.add_argument("--quick", action="store_true",
                   help="one round, --quick on both sides; numbers are meaningless")
    p.add_argument("--python", help="python with torch and numpy (see the module docstring)")
    benchlib.add_machine_args(p)
    p.add_argument("--torch-loader", choices=["per-sample", "batched"], default="per-sample",
                   help="epoch-*: torch DataLoader batch assembly (default per-sample; see "
                        "torch_workloads.py)")
    p.add_argument("--torch-no-grad", action="store_true",
                   help="infer: torch.no_grad() instead of torch.inference_mode()")
    p.add_argument("--run-timeout", type=float, default=3600.0,
                   help="kill a single benchmark run after this many seconds (default 3600)")
    p.add_argument("--json", type=Path, help="also write every run's raw results here")
    a = p.parse_args(argv)
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    unknown = [w for w in a.workloads if w not in KNOWN]
    if unknown or not a.workloads:
        p.error(f"unknown workload(s) {unknown}; choose from {','.join(KNOWN)}")
    if a.threads < 1 or a.rounds < 1:
        p.error("--threads and --rounds must be positive")
    a = benchlib.apply_quick(a)
    if a.fast_rounds is None or a.quick:
        a.fast_rounds = a.rounds
    if a.fast_rounds < a.rounds:
        p.error(f"--fast-rounds ({a.fast_rounds}) must be at least --rounds ({a.rounds})")
    return a


# ------------------------------------------------------------------------- jizen binary

def build_jizen(tmpdir):
    """Builds jizen-cli, copies the binary into `tmpdir`; returns the copy's path."""
    cmd = ["cargo", "build", "--release", "-p", "jizen-cli"]
    log("building: " + " ".join(cmd))
    # cargo's progress goes to stderr, which stays ours; its stdout would mix with the table.
    proc = subprocess.run(cmd, cwd=REPO, stdout=sys.stderr)
    if proc.returncode != 0:
        sys.exit(f"{PROG}: cargo build --release -p jizen-cli failed")
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                          stdout=subprocess.PIPE, text=True, check=True)
    built = Path(json.loads(meta.stdout)["target_directory"]) / "release" / "jizen"
    if not built.exists():
        sys.exit(f"{PROG}: {built} not found after the build")
    exe = Path(tmpdir) / "jizen"
    shutil.copy2(built, exe)
    return exe


def jizen_workloads(exe):
    """The workloads `jizen bench` accepts (from its --help), or None when that can't be read."""
    proc = subprocess.run([str(exe), "bench", "--help"], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or "Possible values:" not in proc.stdout:
        return None
    block = proc.stdout.split("Possible values:", 1)[1]
    names = []
    for line in block.splitlines()[1:]:
        m = re.match(r"\s*- ([A-Za-z0-9_-]+):", line)
        if m:
            names.append(m.group(1))
        elif line.strip() and not line.startswith(" " * 12):
            break
    return names or None


# ------------------------------------------------------------------------- one run

def last_json(text):
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def run_one(cmd, env, args, label):
    """One accounted benchmark run; returns a dict with status ok / not implemented / failed."""
    proc, acct = benchlib.run_accounted(cmd, env, args, log, capture_stderr=True,
                                        timeout=args.run_timeout)
    err = (proc.stderr or "").strip()
    out = {"cmd": [str(c) for c in cmd], "acct": acct}
    if proc.returncode == 2 and "invalid value" in err:
        out.update(status="not implemented", error=err.splitlines()[0] if err else "")
    elif proc.returncode != 0:
        out.update(status="failed", error=f"exit status {proc.returncode}: " + err[-500:])
    else:
        rec = last_json(proc.stdout)
        if rec is None or "median" not in rec:
            out.update(status="failed", error="no JSON line on stdout: " + proc.stdout[-300:])
        else:
            out.update(status="ok", result=rec)
    if err and out["status"] == "ok":
        sys.stderr.write(err + "\n")  # whatever the benchmark said besides its JSON, for the record
    msg = out["result"]["median"] if out["status"] == "ok" else out.get("error", "")
    if out["status"] == "ok" and out["result"].get("core_to_core_ns"):
        msg = f"{msg} (core-to-core {out['result']['core_to_core_ns']} ns)"
    log(f"  {label}: {out['status']} {msg} | {acct}")
    return out


def run_jizen(exe, w, args):
    env = dict(os.environ, JIZEN_THREADS=str(args.threads))
    cmd = [exe, "bench", w] + (["--quick"] if args.quick else [])
    return run_one(cmd, env, args, f"jizen {w}")


def run_torch(python, w, args):
    # Some machines set OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) to pin old OpenBLAS builds to a
    # safe kernel; that pins NumPy to its AVX2 kernels. The comparison is against the best NumPy
    # can do here, so both are unset for these runs (never for tests).
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.pop("JIZEN_THREADS", None)  # --threads decides
    cmd = [python, TORCH_SCRIPT, w, "--threads", str(args.threads)]
    cmd += ["--quick"] if args.quick else []
    if w.startswith("epoch-"):
        cmd += ["--loader", args.torch_loader]
    if w == "infer" and args.torch_no_grad:
        cmd += ["--no-grad"]
    return run_one(cmd, env, args, f"{'numpy' if w == 'gemm-numpy' else 'torch'} {w}")


# ------------------------------------------------------------------------- report



def summarize(rounds, args):
    """Per-workload summary dicts (also what --json gets) and the suspect-run lines."""
    keep = args.keep_suspect
    suspects, rows = [], []
    for i, rnd in enumerate(rounds):
        for w, sides in rnd.items():
            for side, r in sides.items():
                a = r.get("acct")
                if r["status"] == "ok" and a and a["suspect"]:
                    suspects.append(
                        f"suspect: round {i + 1} {side} {w}: other processes used "
                        f"{a['other_cores']:.2f} cores on average over {a['wall_s']:.0f} s "
                        f"(load before {a['load_before']:.2f}); "
                        + ("kept (--keep-suspect)" if keep else "excluded"))

    def used(w, side):
        rs = [rnd[w][side] for rnd in rounds if side in rnd.get(w, {})]
        ok = [r for r in rs if r["status"] == "ok"]
        good = [r["result"] for r in ok if keep or not r["acct"]["suspect"]]
        status = ("not implemented" if rs and all(r["status"] == "not implemented" for r in rs)
                  else "failed" if rs and not ok else "ok")
        errors = sorted({r.get("error", "") for r in rs if r["status"] != "ok"})
        unit = next((r["result"].get("unit") for r in ok), None)
        return good, status, len(rs), errors, unit

    for w in args.workloads:
        row = {"workload": w}
        for side in ("jizen", "torch", "numpy"):
            good, status, n, errors, unit = used(w, side)
            if n == 0:
                continue
            row["unit"] = row.get("unit") or unit
            meds = [g["median"] for g in good]
            rss = [g["peak_rss_mib"] for g in good if g.get("peak_rss_mib") is not None]
            text, m = cell(meds)
            row[side] = {"status": status, "rounds_used": len(good), "rounds": n, "medians": meds,
                         "median": m, "text": text, "peak_rss_mib": max(rss) if rss else None,
                         "errors": errors, "isa": next((g.get("isa") for g in good if g.get("isa")), None)}
            if good:
                row[side]["version"] = good[0].get("version")
                row[side]["extra"] = {k: v for k, v in good[0].items() if k in ("grad_mode", "loader", "blas")}
        # Round by round: (jizen's median, torch's, jizen's core-to-core round trips, excluded).
        row["per_round"] = []
        for rnd in rounds:
            sides = rnd.get(w, {})
            jr, tr = sides.get("jizen", {}), sides.get("torch", {})
            if jr.get("status") == "ok" and tr.get("status") == "ok":
                out = not keep and (jr["acct"]["suspect"] or tr["acct"]["suspect"])
                row["per_round"].append((jr["result"]["median"], tr["result"]["median"],
                                         jr["result"].get("core_to_core_ns"), out))
        j, t = row.get("jizen", {}).get("median"), row.get("torch", {}).get("median")
        rate = row.get("unit") in RATE_UNITS
        row["ratio"] = (t / j if rate else j / t) if j and t else None
        target = "none given"
        n = row.get("numpy", {}).get("median")
        if w in TARGETS:
            target = TARGETS[w][0]
        elif w == "gemm":
            target = f"jizen >= {GEMM_SHARE}x best(torch, NumPy)"
            best = max([v for v in (t, n) if v] or [0])
            if j and best:
                row["gemm_share_of_best"] = j / best
        row["target"], row["met"] = target, meets(w, j, t, n)
        row["rounds_met"] = rounds_met(w, rounds, keep)
        rows.append(row)
    return rows, suspects


def meets(w, j, t, numpy=None):
    """Whether jizen's `j` meets workload `w`'s target against torch's `t` (and, for gemm,
    NumPy's); None without a target or a value to judge."""
    if w in TARGETS:
        return j / t <= TARGETS[w][1] if j and t else None
    if w == "gemm":
        best = max([v for v in (t, numpy) if v] or [0])
        return j / best >= GEMM_SHARE if j and best else None
    return None


def rounds_met(w, rounds, keep):
    """(rounds whose own pair of medians meets the target, rounds judged), or None when no
    round could be judged (no target, or no clean pair)."""
    verdicts = []
    for rnd in rounds:
        ok = {k: r["result"]["median"] for k, r in rnd.get(w, {}).items()
              if r.get("status") == "ok" and (keep or not r["acct"]["suspect"])}
        verdicts.append(meets(w, ok.get("jizen"), ok.get("torch"), ok.get("numpy")))
    judged = [v for v in verdicts if v is not None]
    return (sum(judged), len(judged)) if judged else None


def rounds_used(row):
    """'j/n t/n': clean (or kept) rounds of jizen and torch (and NumPy for gemm) over the rounds run."""
    parts = []
    for side in ("jizen", "torch", "numpy"):
        r = row.get(side)
        if r and r["status"] == "ok":
            parts.append(f"{r['rounds_used']}/{r['rounds']}")
        elif r:
            parts.append("-")
    return " ".join(parts)


def report(rows, suspects, args, exe_note):
    for s in suspects:
        print(s)
    tv = next((r["torch"].get("version") for r in rows if r.get("torch", {}).get("version")), "?")
    isa = next((r["jizen"]["isa"] for r in rows if r.get("jizen", {}).get("isa")), None)
    print(f"\njizen ({exe_note}{', kernels: ' + isa if isa else ''}) vs torch {tv} at {args.threads} "
          f"thread(s), {args.rounds} round(s)"
          + (f" ({args.fast_rounds} for {', '.join(w for w in FAST if w in args.workloads)})"
             if args.fast_rounds > args.rounds and any(w in FAST for w in args.workloads) else "")
          + ("  [--quick: numbers are meaningless]" if args.quick else ""))
    print("ratio = jizen/torch for times (ms, us), torch/jizen for GFLOP/s: below 1 means jizen is "
          "better.\nCells: median over rounds [min-max]; RSS: peak MiB, largest over rounds; rounds used: "
          "jizen, torch (and NumPy for gemm), suspect runs excluded unless kept.")
    cols = ["workload", "unit", "jizen", "torch", "ratio", "jizen RSS", "torch RSS", "rounds used",
            "target", "status"]
    table = []
    for r in rows:
        j, t = r.get("jizen", {}), r.get("torch", {})
        jtext = ("not implemented in jizen" if j.get("status") == "not implemented"
                 else "failed" if j.get("status") == "failed" else j.get("text", "-"))
        ttext = "failed" if t.get("status") == "failed" else t.get("text", "-")
        if j.get("status") == "ok" and not j.get("rounds_used"):
            jtext = "no clean round"
        if t.get("status") == "ok" and not t.get("rounds_used"):
            ttext = "no clean round"
        if j.get("status") == "not implemented":
            status = "-"
        elif r["met"] is None:
            status = "-" if r["target"] == "none given" else "n/a"
        else:
            status = "met" if r["met"] else "not met"
        if r["workload"] == "gemm" and "gemm_share_of_best" in r:
            status += f" ({r['gemm_share_of_best']:.0%} of best)"
        table.append([r["workload"], r.get("unit", "-"), jtext, ttext,
                      f"{r['ratio']:.2f}" if r["ratio"] is not None else "-",
                      fmt(j.get("peak_rss_mib")), fmt(t.get("peak_rss_mib")), rounds_used(r),
                      r["target"], status])
    widths = [max(len(c), *(len(row[i]) for row in table)) for i, c in enumerate(cols)]
    right = {2, 3, 4, 5, 6, 7}
    line = lambda vals: "  ".join(v.rjust(widths[i]) if i in right else v.ljust(widths[i])
                                  for i, v in enumerate(vals)).rstrip()
    print(line(cols))
    print("-" * len(line(cols)))
    for row in table:
        print(line(row))
    for r in rows:
        if r["workload"] == "gemm":
            parts = [f"{k} {r[k]['median']:.1f}" + (f" ({r[k]['extra'].get('blas')})" if r[k].get("extra", {}).get("blas") else "")
                     for k in ("jizen", "torch", "numpy") if r.get(k, {}).get("median")]
            if parts:
                print(f"\nsgemm 1024^3 GFLOP/s (medians): {', '.join(parts)}")
    c2c = lambda v: "/".join("-" if x is None else f"{x:.0f}" for x in v) if v else "-"
    met = lambda r: (f" (target met in {r['rounds_met'][0]} of {r['rounds_met'][1]} rounds)"
                     if r.get("rounds_met") else "")
    lines = [f"  {r['workload']}{met(r)}: " + ", ".join(
        f"{fmt(j)}/{fmt(t)} ({c2c(c)} ns){' excluded' if out else ''}" for j, t, c, out in r["per_round"])
        for r in rows if r.get("per_round")]
    if lines:
        print("\nround by round, jizen/torch (jizen's core-to-core round trip before/after its run; "
              "on the 2-core KVM machine 31-116 ns with its cores near each other, 386-560 ns far "
              "apart):\n" + "\n".join(lines))
    notes = []
    for r in rows:
        ex = r.get("torch", {}).get("extra", {})
        if ex.get("loader") and "loader" not in " ".join(notes):
            notes.append(f"torch epoch-*: {ex['loader']}; jizen's loader prefetches 2 batches on a "
                         "background thread")
        if ex.get("grad_mode"):
            notes.append(f"torch infer: {ex['grad_mode']}")
        for side in ("jizen", "torch", "numpy"):
            for e in r.get(side, {}).get("errors", []):
                if r[side]["status"] == "failed" or side != "jizen":
                    notes.append(f"{side} {r['workload']}: {e}")
    notes.append("torch RSS is the whole interpreter, torch's libraries included")
    print("\nnotes:\n" + "\n".join(f"  - {n}" for n in notes))


def main(argv=None):
    args = parse_args(argv)
    python = benchlib.find_python(args.python, PROG)
    if not shutil.which("cargo"):
        sys.exit(f"{PROG}: cargo not found on PATH")
    tmpdir = tempfile.mkdtemp(prefix="jizen-bench-")
    try:
        exe = build_jizen(tmpdir)
        known = jizen_workloads(exe)
        log(f"jizen: {exe} (a copy of target/release/jizen), knows {known or '? (help not parsed)'}; "
            f"torch python: {python}")
        missing = set(w for w in args.workloads if known is not None and w not in known)
        rounds = []
        for r in range(args.fast_rounds):
            workloads = [w for w in args.workloads if r < args.rounds or w in FAST]
            if not workloads:
                break
            log(f"round {r + 1}/{args.fast_rounds}" + ("" if r < args.rounds else f" ({', '.join(workloads)})"))
            order = ("jizen", "torch") if r % 2 == 0 else ("torch", "jizen")
            rnd = {}
            for w in workloads:
                rec = {}
                for side in order:
                    if side == "jizen":
                        if w in missing:
                            rec["jizen"] = {"status": "not implemented",
                                            "error": f"`jizen bench` does not list {w!r}"}
                            continue
                        rec["jizen"] = run_jizen(exe, w, args)
                        if rec["jizen"]["status"] == "not implemented":
                            missing.add(w)
                    else:
                        rec["torch"] = run_torch(python, w, args)
                        if w == "gemm":
                            rec["numpy"] = run_torch(python, "gemm-numpy", args)
                rnd[w] = rec
            rounds.append(rnd)
        rows, suspects = summarize(rounds, args)
        if args.json:
            args.json.write_text(json.dumps({"threads": args.threads, "quick": args.quick,
                                             "fast_rounds": args.fast_rounds,
                                             "workloads": args.workloads, "rounds": rounds,
                                             "summary": rows}, indent=1))
        report(rows, suspects, args, "target/release/jizen, built once")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
