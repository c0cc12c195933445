#!/usr/bin/env python3
"""Compare every jizen-ml estimator with scikit-learn's on the same data, round by round (stdlib only).

  python3 scripts/bench/compare_ml.py                         # digits; + Fashion-MNIST when JIZEN_DATA is set
  JIZEN_DATA=/work/shared/data python3 scripts/bench/compare_ml.py --rounds 5 --json /tmp/ml.json
  python3 scripts/bench/compare_ml.py --only svc --only digits/knn
  python3 scripts/bench/compare_ml.py --quick                 # tiny sizes, one round: proves the pipeline

What it does:
  1. builds the Rust side once (`cargo build --release -p jizen-ml --example ml_timing`), copies
     <target>/release/examples/ml_timing to a temporary directory and runs that copy throughout
     (<target> is cargo's target directory: $CARGO_TARGET_DIR when set, else target/);
     `ml_timing --list` names the cases (data/case), --only SUBSTRING (repeatable) selects them;
  2. for each of --rounds rounds waits (at most --max-wait s) until the 1-minute load average is
     below --load-threshold, then runs every case once on each side, each case in its own
     process: `ml_timing --only data/case` and `scripts/bench/sklearn_timing.py --only data/case`,
     alternating which side goes first from round to round (jizen first in rounds 1, 3, ...);
     within a round runs follow each other without waiting (the load average would only
     remember our own previous run); each run fits and predicts --repeats times (default 3) and
     prints one JSON line (median, min and max fit time, median predict time, quality);
  3. marks a run as suspect when /proc/stat shows that other processes used more than
     --max-other-cpu cores on average during it (scripts/bench/benchlib.py) and more than 3 clock
     ticks (30 ms) of CPU in all (a jizen run of a digits case lasts a few tens of ms, where one
     stray tick would read as a fifth of a core); suspect runs are listed and left out of the
     table (--keep-suspect, implied by --quick, keeps them);
  4. prints a markdown table, one row per case: jizen's and scikit-learn's fit time (median over
     rounds of each run's median [min-max over rounds]) and their ratio, the same for the timed
     test-set operation (predict, transform or score), the total ratio, the two qualities side by
     side (accuracy, explained-variance-ratio sum, mean training log-likelihood or minus the inertia
     per test sample), the iteration counts, and the issue's target: jizen no slower than
     scikit-learn (total ratio <= 1). Ratios are jizen/sklearn: below 1 means jizen is faster.
     A warning follows when two accuracies differ by more than 0.5 points.

Threads (also printed above the table, with the other settings that differ): scikit-learn runs with --threads (default 2) OpenMP /
BLAS threads (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS and threadpoolctl), with
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset as in compare_workloads.py so that NumPy uses its best
kernels. jizen-ml gets JIZEN_THREADS=--threads for its k-d tree queries; faer's products and
factorisations run on rayon's global pool (every core unless RAYON_NUM_THREADS says otherwise);
the solvers' own loops run on one thread.

The settings of both sides are in the docstring of sklearn_timing.py. The scikit-learn python:
--python, else $JIZEN_REF_PYTHON, else /root/venvs/ref/bin/python when it exists, else
${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv}/bin/python, made by scripts/fixtures/setup-env.sh,
which this script runs when none of them exists; it needs numpy, scikit-learn, threadpoolctl and safetensors. Numbers from a busy machine mean
nothing: run on a quiet one. --json OUT also writes every run's JSON line, its accounting and the
summary.
"""

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402  (scripts/bench/benchlib.py: waiting, CPU accounting, python discovery)
from benchlib import REPO, cell, fmt  # noqa: E402

PROG = "compare_ml.py"
SKLEARN_SCRIPT = REPO / "scripts" / "bench" / "sklearn_timing.py"
ACCURACY_TOLERANCE = 0.005  # half a point
# /proc/stat counts in clock ticks (10 ms): in a run of a few tens of ms a single tick of another
# process reads as a large share of a core. A run is only suspect when others used more than
# --max-other-cpu cores on average and more than this many CPU seconds in all.
MIN_OTHER_CPU_S = 3 / os.sysconf("SC_CLK_TCK")
NOTES = [
    "jizen-ml: JIZEN_THREADS=--threads for k-d tree queries, faer on rayon's global pool, solver loops "
    "on one thread; scikit-learn on --threads",
    "linear-svm: scikit-learn is given LinearSVC(dual=True); its default dual='auto' would solve "
    "the primal here, jizen has only the dual coordinate descent",
    "pca-rand*: scikit-learn is given power_iteration_normalizer='QR' (jizen's QR after every "
    "product); its default would be LU",
    "knn-kdtree: leaf size 16 in jizen (a constant), scikit-learn's default 30",
    "seeded starts (k-means++, the GMM's k-means start, randomized-SVD test vectors) draw different "
    "random numbers on each side: iteration counts and local optima can differ (see iters)",
    "fashion pca-full50 keeps 50 components of the full SVD; gmm-diag-pca50 fits on the "
    "50-component PCA projection of the standardised images (computed outside the timings)",
    "features standardised on the training part, outside the timings; svc-rbf on fashion trains "
    "on the first 5,000 images, every other fashion case on 10,000",
]

log = benchlib.make_log("compare_ml")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", default=[],
                   help="keep the cases whose data/case contains this substring (repeatable)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--repeats", type=int, default=None,
                   help="fits per case and run, passed to both sides (default: theirs, 3; 1 with --quick)")
    p.add_argument("--threads", type=int, default=2, help="scikit-learn's threads (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="one round, --quick on both sides (tiny sizes); numbers are meaningless")
    p.add_argument("--python", help="python with scikit-learn (see the module docstring)")
    benchlib.add_machine_args(p)
    p.add_argument("--run-timeout", type=float, default=1800.0,
                   help="kill a single run after this many seconds (default 1800)")
    p.add_argument("--json", type=Path, help="also write every run's raw results here")
    a = p.parse_args(argv)
    if a.threads < 1 or a.rounds < 1 or (a.repeats is not None and a.repeats < 1):
        p.error("--threads, --rounds and --repeats must be positive")
    return benchlib.apply_quick(a)


# ------------------------------------------------------------------------- the two sides

def build_example(tmpdir):
    """Builds the ml_timing example, copies it into `tmpdir`; returns the copy's path."""
    cmd = ["cargo", "build", "--release", "-p", "jizen-ml", "--example", "ml_timing"]
    log("building: " + " ".join(cmd))
    proc = subprocess.run(cmd, cwd=REPO, stdout=sys.stderr)  # progress stays off our stdout
    if proc.returncode != 0:
        sys.exit(f"{PROG}: {' '.join(cmd)} failed")
    # cargo metadata reports the target directory cargo used: $CARGO_TARGET_DIR, else target/.
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                          stdout=subprocess.PIPE, text=True, check=True)
    built = Path(json.loads(meta.stdout)["target_directory"]) / "release" / "examples" / "ml_timing"
    if not built.exists():
        sys.exit(f"{PROG}: {built} not found after the build")
    exe = Path(tmpdir) / "ml_timing"
    shutil.copy2(built, exe)
    return exe, built


def sklearn_env(threads):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def side_cmd(side, exe, python, args, only):
    """The command line of one side; `only` is a list of --only substrings."""
    cmd = [str(exe)] if side == "jizen" else [python, str(SKLEARN_SCRIPT), "--threads", str(args.threads)]
    for s in only:
        cmd += ["--only", s]
    if args.quick:
        cmd.append("--quick")
    if args.repeats is not None:
        cmd += ["--repeats", str(args.repeats)]
    return cmd


def list_cases(side, exe, python, args, env):
    cmd = side_cmd(side, exe, python, args, args.only) + ["--list"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"{PROG}: {' '.join(cmd)} failed (exit status {proc.returncode})")
    return [line.strip() for line in proc.stdout.splitlines() if line.strip()]


def run_case(side, name, exe, python, args, env, no_wait):
    """One accounted run of one case on one side: a dict with status ok / failed."""
    cmd = side_cmd(side, exe, python, args, [name])
    proc, acct = benchlib.run_accounted(cmd, env, no_wait, log, capture_stderr=True, timeout=args.run_timeout)
    acct["suspect"] = acct["suspect"] and acct["other_cpu_s"] > MIN_OTHER_CPU_S
    out = {"side": side, "case": name, "cmd": cmd, "acct": acct}
    rec = None
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue
            if f"{r.get('data')}/{r.get('case')}" == name:
                rec = r
    err = (proc.stderr or "").strip()
    if proc.returncode != 0:
        out.update(status="failed", error=f"exit status {proc.returncode}: " + err[-500:])
    elif rec is None:
        out.update(status="failed", error="no JSON line for the case on stdout: " + proc.stdout[-300:])
    else:
        out.update(status="ok", result=rec)
    msg = (f"fit {rec['fit_ms']:.1f} ms, {rec['predict_op']} {rec['predict_ms']:.2f} ms"
           if rec and out["status"] == "ok" else out.get("error", ""))
    log(f"  {side} {name}: {out['status']} {msg} | other cores {acct['other_cores']:.2f}"
        + (" (suspect)" if acct["suspect"] else ""))
    return out


# ------------------------------------------------------------------------- report



def fmt_quality(q, kind):
    if q is None:
        return "-"
    if kind == "accuracy":
        return f"{100 * q:.2f}%"
    if kind == "explained variance ratio sum":
        return f"{q:.5f}"
    return f"{q:.6g}"


def summarize(runs, cases, args):
    """Per-case summary dicts (also what --json gets), suspect lines and quality warnings."""
    suspects, warnings, rows = [], [], []
    for r in runs:
        a = r["acct"]
        if r["status"] == "ok" and a["suspect"]:
            suspects.append(f"suspect: round {r['round']} {r['side']} {r['case']}: other processes used "
                            f"{a['other_cores']:.2f} cores on average over {a['wall_s']:.1f} s; "
                            + ("kept (--keep-suspect)" if args.keep_suspect else "excluded"))
    for name in cases:
        row = {"case": name}
        for side in ("jizen", "sklearn"):
            mine = [r for r in runs if r["case"] == name and r["side"] == side]
            ok = [r for r in mine if r["status"] == "ok"]
            good = [r["result"] for r in ok if args.keep_suspect or not r["acct"]["suspect"]]
            fit_text, fit = cell([g["fit_ms"] for g in good])
            pred_text, pred = cell([g["predict_ms"] for g in good])
            last = good[-1] if good else (ok[-1]["result"] if ok else {})
            row[side] = {
                "status": "ok" if ok else "failed", "rounds": len(mine), "rounds_used": len(good),
                "fit_ms": fit, "fit_text": fit_text, "predict_ms": pred, "predict_text": pred_text,
                "quality": last.get("quality"), "quality_kind": last.get("quality_kind"),
                "predict_op": last.get("predict_op"), "n_iter": last.get("n_iter"),
                "n_train": last.get("n_train"), "version": last.get("version"),
                "errors": sorted({r.get("error", "") for r in mine if r["status"] != "ok"}),
            }
        j, s = row["jizen"], row["sklearn"]
        ratio = lambda a, b: a / b if a is not None and b else None  # noqa: E731
        row["fit_ratio"] = ratio(j["fit_ms"], s["fit_ms"])
        row["predict_ratio"] = ratio(j["predict_ms"], s["predict_ms"])
        both = None not in (j["fit_ms"], j["predict_ms"], s["fit_ms"], s["predict_ms"])
        row["total_ratio"] = ratio(j["fit_ms"] + j["predict_ms"], s["fit_ms"] + s["predict_ms"]) if both else None
        row["met"] = None if row["total_ratio"] is None else row["total_ratio"] <= 1.0
        qj, qs, kind = j["quality"], s["quality"], j["quality_kind"] or s["quality_kind"]
        if qj is not None and qs is not None:
            if kind == "accuracy" and abs(qj - qs) > ACCURACY_TOLERANCE + 1e-9:
                warnings.append(f"WARNING: {name}: accuracies differ by {100 * abs(qj - qs):.2f} points "
                                f"(jizen {100 * qj:.2f}%, scikit-learn {100 * qs:.2f}%)")
            elif kind != "accuracy" and abs(qj - qs) > 1e-2 * max(abs(qj), abs(qs)):
                warnings.append(f"note: {name}: {kind} differs by more than 1% (jizen {qj:.6g}, "
                                f"scikit-learn {qs:.6g}): a different local optimum or iteration count")
        rows.append(row)
    return rows, suspects, warnings


def report(rows, suspects, warnings, args, exe_note):
    for s in suspects:
        print(s)
    version = next((r["sklearn"]["version"] for r in rows if r["sklearn"].get("version")), "scikit-learn ?")
    print(f"\njizen-ml ({exe_note}) vs {version} ({args.threads} threads), {args.rounds} round(s)"
          + ("  [--quick: numbers are meaningless]" if args.quick else ""))
    print("ratio = jizen/sklearn: below 1 means jizen is faster. Times in ms: median over rounds [min-max]; "
          "target: total (fit + test op) ratio <= 1.")
    print("settings that differ between the sides, or were chosen to match:\n"
          + "\n".join(f"  - {n}" for n in NOTES) + "\n")
    cols = ["case", "n_train", "jizen fit", "sklearn fit", "fit ratio", "test op", "jizen op", "sklearn op",
            "op ratio", "total ratio", "jizen quality", "sklearn quality", "iters j/s", "rounds j/s", "target"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---:" if c not in ("case", "test op", "target") else "---" for c in cols) + "|")
    for r in rows:
        j, s = r["jizen"], r["sklearn"]
        kind = j["quality_kind"] or s["quality_kind"]
        jt = lambda side, key: ("failed" if side["status"] == "failed"  # noqa: E731
                                else "no clean round" if not side["rounds_used"] else side[key])
        ratio = lambda x: f"{x:.2f}" if x is not None else "-"  # noqa: E731
        status = "-" if r["met"] is None else "met" if r["met"] else "not met"
        iters = f"{'-' if j['n_iter'] is None else j['n_iter']}/{'-' if s['n_iter'] is None else s['n_iter']}"
        vals = [r["case"], str(j["n_train"] or s["n_train"] or "-"), jt(j, "fit_text"), jt(s, "fit_text"),
                ratio(r["fit_ratio"]), j["predict_op"] or s["predict_op"] or "-", jt(j, "predict_text"),
                jt(s, "predict_text"), ratio(r["predict_ratio"]), ratio(r["total_ratio"]),
                fmt_quality(j["quality"], kind), fmt_quality(s["quality"], kind), iters,
                f"{j['rounds_used']}/{j['rounds']} {s['rounds_used']}/{s['rounds']}", status]
        print("| " + " | ".join(vals) + " |")
    if warnings:
        print()
        for w in warnings:
            print(w)
    errors = [f"{side} {r['case']}: {e}" for r in rows for side in ("jizen", "sklearn") for e in r[side]["errors"]]
    if errors:
        print("\nfailed runs:\n" + "\n".join(f"  - {e}" for e in errors))


def main(argv=None):
    args = parse_args(argv)
    python = benchlib.find_python(args.python, PROG)
    check = subprocess.run([python, "-c", "import numpy, sklearn, threadpoolctl, safetensors"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if check.returncode != 0:
        sys.exit(f"{PROG}: {python} lacks numpy / scikit-learn / threadpoolctl / safetensors "
                 f"({check.stderr.strip().splitlines()[-1] if check.stderr.strip() else '?'}); run "
                 "scripts/fixtures/setup-env.sh and pass the python it prints with --python")
    if not shutil.which("cargo"):
        sys.exit(f"{PROG}: cargo not found on PATH")
    if not os.environ.get("JIZEN_DATA"):
        log("JIZEN_DATA is not set: the Fashion-MNIST cases are skipped")
    jizen_env = dict(os.environ, JIZEN_THREADS=str(args.threads))
    sk_env = sklearn_env(args.threads)
    tmpdir = tempfile.mkdtemp(prefix="jizen-mlbench-")
    try:
        exe, built = build_example(tmpdir)
        cases = list_cases("jizen", exe, python, args, jizen_env)
        theirs = list_cases("sklearn", exe, python, args, sk_env)
        if cases != theirs:
            log(f"the two sides list different cases: jizen {cases}, sklearn {theirs}; running jizen's")
        if not cases:
            sys.exit(f"{PROG}: no case matches --only {args.only}")
        log(f"jizen: {exe} (a copy of {built}); python: {python}; {len(cases)} case(s): {', '.join(cases)}")
        # Waiting happens once per round (below); inside a round runs follow each other at once,
        # and the CPU accounting of every run still judges it.
        no_wait = copy.copy(args)
        no_wait.load_threshold = float("inf")
        runs = []
        for rnd in range(args.rounds):
            log(f"round {rnd + 1}/{args.rounds}")
            benchlib.wait_until_quiet(args.load_threshold, args.max_wait, log)
            order = ("jizen", "sklearn") if rnd % 2 == 0 else ("sklearn", "jizen")
            for name in cases:
                for side in order:
                    env = jizen_env if side == "jizen" else sk_env
                    out = run_case(side, name, exe, python, args, env, no_wait)
                    out["round"] = rnd + 1
                    runs.append(out)
        rows, suspects, warnings = summarize(runs, cases, args)
        if args.json:
            args.json.write_text(json.dumps({"threads": args.threads, "quick": args.quick, "cases": cases,
                                             "runs": runs, "summary": rows, "notes": NOTES}, indent=1))
        report(rows, suspects, warnings, args, "ml_timing example, built once, 1 thread")
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
