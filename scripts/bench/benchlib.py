"""Shared helpers of the comparison scripts in scripts/bench/ (stdlib only).

Used by compare_kernels.py (criterion kernels against torch_kernels.py) and compare_workloads.py
(`jizen bench` against torch_workloads.py). Not a script of its own. What it holds:

  find_python(arg, prog)      the python that has torch and numpy: `arg`, else $JIZEN_REF_PYTHON,
                              else /root/venvs/ref/bin/python when it exists, else
                              ${JIZEN_REF_VENV:-$HOME/.cache/jizen/ref-venv}/bin/python; when
                              none exists it runs scripts/fixtures/setup-env.sh, which makes that
                              venv and installs the pinned torch and NumPy, and uses its python
  loadavg1()                  the 1-minute load average (/proc/loadavg)
  busy_seconds()              CPU seconds the whole machine spent busy (/proc/stat)
  own_cpu_seconds()           CPU seconds of this process and its finished children
  preemptions()               involuntary context switches of the same (`preempted` in a run's
                              accounting: a clue to a slow run, not a reason to reject it)
  wait_until_quiet(...)       waits (bounded) for the load average to fall below a threshold
  run_accounted(...)          waits for a quiet machine, runs a command, and says how much CPU
                              other processes used meanwhile (`suspect` when above a limit)
  spread(xs)                  "median [min-max]" of a list, and the median
  add_machine_args(parser)    the --load-threshold / --max-wait / --max-other-cpu /
                              --keep-suspect options both scripts share

The accounting: other processes' CPU during a run is the machine's busy time (user, nice, system,
irq, softirq, steal over all cores) minus the CPU time of this process and of the benchmark child
it waited for (resource.getrusage(RUSAGE_CHILDREN)); divided by the run's wall time it is the
number of cores others used on average. Linux only (/proc).
"""

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REF_PYTHON = "/root/venvs/ref/bin/python"


def make_log(tag):
    """A function that prints `[tag] msg` to stderr."""

    def log(msg):
        print(f"[{tag}] {msg}", file=sys.stderr, flush=True)

    return log


def find_python(arg, prog):
    """The python with torch and numpy (see the module docstring); `prog` names the caller in errors."""
    cands = [arg, os.environ.get("JIZEN_REF_PYTHON"), REF_PYTHON]
    venv = os.environ.get("JIZEN_REF_VENV", str(Path.home() / ".cache" / "jizen" / "ref-venv"))
    cands.append(str(Path(venv) / "bin" / "python"))
    for c in cands:
        if c and Path(c).exists():
            return c
    return setup_env(prog)


def setup_env(prog):
    """Runs scripts/fixtures/setup-env.sh (creates or reuses the reference venv and installs its
    pinned packages, torch among them) and returns the python path it prints last."""
    script = Path(__file__).resolve().parents[1] / "fixtures" / "setup-env.sh"
    print(f"[{prog}] no python with torch found: running {script} to install one "
          "(PyPI's torch is the CUDA build, about 5 GB; JIZEN_TORCH_INDEX picks another index)",
          file=sys.stderr, flush=True)
    done = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not Path(lines[-1]).exists():
        sys.exit(f"{prog}: {script} failed (exit {done.returncode}); "
                 "fix what it printed, or pass a python with torch and numpy with --python")
    return lines[-1]


def add_machine_args(p, quick_wait=5.0, full_wait=300.0):
    """Adds the options of waiting for a quiet machine and judging runs (see run_accounted)."""
    p.add_argument("--load-threshold", type=float, default=0.5,
                   help="wait until the 1-min load average is below this (default 0.5)")
    p.add_argument("--max-wait", type=float, default=None,
                   help=f"longest wait for a quiet machine before each run, s "
                        f"(default {full_wait:.0f}; {quick_wait:.0f} with --quick)")
    p.add_argument("--max-other-cpu", type=float, default=0.10,
                   help="a run is suspect when other processes used more than this many cores "
                        "on average (default 0.10)")
    p.add_argument("--keep-suspect", action="store_true",
                   help="report suspect runs but keep them in the table (implied by --quick)")


def apply_quick(a, quick_wait=5.0, full_wait=300.0):
    """Settles the options that --quick implies: one round, suspect runs kept, a short wait."""
    if a.quick:
        a.rounds = 1
        a.keep_suspect = True
    if a.max_wait is None:
        a.max_wait = quick_wait if a.quick else full_wait
    return a


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


def preemptions():
    """How many times the threads of this process and its finished children were taken off a CPU
    while they could still run (involuntary context switches). Not a reason to reject a run, a
    clue to a slow one: threads that share a CPU, with each other or with another task, take
    turns on it and count many; a run slowed by the host (its virtual CPUs running slower, with
    no steal time counted) counts no more than a quiet one."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_nivcsw)


def wait_until_quiet(threshold, max_wait, log):
    """Waits until the 1-min load average is below `threshold`, at most `max_wait` seconds.

    Returns (load average at the end, seconds waited)."""
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


def run_accounted(cmd, env, args, log, capture_stderr=False, timeout=None):
    """Runs `cmd` (in the repository root) after waiting for a quiet machine.

    `args` carries load_threshold, max_wait and max_other_cpu (see add_machine_args). Returns
    (subprocess.CompletedProcess with stdout text, and stderr text when `capture_stderr`,
    accounting dict); the caller judges the exit status. A run that exceeds `timeout` seconds is
    killed and reported with returncode None."""
    la, waited = wait_until_quiet(args.load_threshold, args.max_wait, log)
    b0, o0, w0, p0 = busy_seconds(), own_cpu_seconds(), time.monotonic(), preemptions()
    try:
        proc = subprocess.run(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE if capture_stderr else None, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        proc = subprocess.CompletedProcess(cmd, None, out, err + f"\ntimed out after {timeout} s")
    b1, o1, w1, p1 = busy_seconds(), own_cpu_seconds(), time.monotonic(), preemptions()
    wall = w1 - w0
    other = max(0.0, (b1 - b0) - (o1 - o0))
    acct = {
        "load_before": la,
        "waited_s": round(waited, 1),
        "wall_s": round(wall, 2),
        "own_cpu_s": round(o1 - o0, 2),
        "other_cpu_s": round(other, 2),
        "other_cores": round(other / wall, 3) if wall > 0 else 0.0,
        "preempted": p1 - p0,
    }
    acct["suspect"] = acct["other_cores"] > args.max_other_cpu
    return proc, acct


# ------------------------------------------------------------------------- report helpers

def spread(xs, fmt="9.3f"):
    """('median [min-max]', median) of a list of numbers, or ('-', None) when empty."""
    if not xs:
        return "-", None
    m = statistics.median(xs)
    return f"{m:{fmt}} [{min(xs):.3f}-{max(xs):.3f}]", m


def fmt(x):
    """A time or rate with three significant-ish digits; '-' for None."""
    if x is None:
        return "-"
    a = abs(x)
    return f"{x:.0f}" if a >= 1000 else f"{x:.1f}" if a >= 100 else f"{x:.2f}" if a >= 10 else f"{x:.3f}"


def cell(xs):
    """('median [min-max]', median) of per-round values, or ('-', None) when empty."""
    if not xs:
        return "-", None
    m = statistics.median(xs)
    return (f"{fmt(m)} [{fmt(min(xs))}-{fmt(max(xs))}]" if len(xs) > 1 else fmt(m)), m
