#!/usr/bin/python3
"""The calibration worker's life, `wkvq quantize --method wkvquant` on
stories260K:

1. kill -9 of wkvq: the wkvq-calibrate child is gone within WORKER_EXIT_S (PR_SET_PDEATHSIG).
2. SIGINT to wkvq while a block is being calibrated: wkvq forwards it, waits for the worker, and
   exits non-zero with a message saying how to continue (--resume); the worker is gone; the same
   command with --resume then finishes and writes a model that loads.
3. A second run on a run directory in use is refused with a message naming the directory.
"""
import os
import shutil
import signal
import subprocess
import time

import harness
from harness import Checker

WORKER_EXIT_S = 1.0
# Enough epochs that a block takes seconds on 2 cores, so the signals land mid-run. An explicit KV
# format: the default (--kv-auto 4.5) measures candidates for seconds before the worker starts,
# and the concurrent run of step 3 would then reach the run directory after the first had ended.
CALIB_ARGS = ["--epochs", 4, "--samples", 8, "--window", 128, "--threads", 1, "--kvbits", 4]


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(cond, timeout, step=0.02):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if cond():
            return True
        time.sleep(step)
    return cond()


def start(wkvq, args, log):
    # SIGINT at its default (a background shell would hand it down ignored)
    return subprocess.Popen([wkvq] + [str(a) for a in args], stdout=subprocess.DEVNULL,
                            stderr=open(log, "wb"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def worker_of(p, timeout=60):
    found = []
    wait_for(lambda: bool(found.extend(children(p.pid)) or found), timeout)
    return found[0] if found else None


def test(args):
    sh = args.shared
    model = f"{sh}/models/stories260K/stories260K.bin"
    calib = f"{sh}/data/tinystories/calib.txt"
    text = f"{sh}/data/tinystories/test.txt"
    harness.require_files(model, calib, text)
    shutil.rmtree(args.tmp, ignore_errors=True)
    os.makedirs(args.tmp)
    c = Checker()
    out, run = os.path.join(args.tmp, "q"), os.path.join(args.tmp, "run")
    base = ["quantize", "--method", "wkvquant", "--model", model, "--calib", calib, *CALIB_ARGS,
            "--out", out, "--run-dir", run]
    log = os.path.join(args.tmp, "log.txt")

    # 1. kill -9 of the parent
    p = start(args.wkvq, base, log)
    w = worker_of(p)
    c.check(w is not None, f"wkvq started a worker (pid {w})")
    if w is not None:
        time.sleep(1.0)  # let the worker get going
        t0 = time.time()
        p.kill()
        p.wait()
        gone = wait_for(lambda: not alive(w), WORKER_EXIT_S + 0.5)
        c.check(gone and time.time() - t0 <= WORKER_EXIT_S + 0.05,
                f"after kill -9 of wkvq the worker is gone in {time.time() - t0:.2f} s "
                f"(at most {WORKER_EXIT_S} s)")
        if alive(w):
            os.kill(w, signal.SIGKILL)

    # 2. SIGINT after the first block is finished, then --resume
    shutil.rmtree(run, ignore_errors=True)
    p = start(args.wkvq, base, log)
    w = worker_of(p)
    first = os.path.join(run, "block_0000.wkvqcal")
    c.check(wait_for(lambda: os.path.exists(first), 300, 0.1), "block 0 finished")
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=30)
    with open(log, "rb") as f:
        err = f.read().decode("utf-8", "replace")
    c.check(rc != 0 and "--resume" in err and "SIGINT" in err,
            f"SIGINT: wkvq exits {rc} saying how to resume ({err.strip().splitlines()[-1]})")
    c.check(w is not None and not alive(w), "... and the worker is gone")
    if w is not None and alive(w):
        os.kill(w, signal.SIGKILL)

    # 3. a second run on the same run directory while the first holds it
    p = start(args.wkvq, [*base, "--resume"], log)
    worker_of(p)
    cp = harness.run_wkvq(args.wkvq, [*base, "--resume"], check=False)
    err2 = cp.stderr.decode("utf-8", "replace")
    c.check(cp.returncode != 0 and "in use by another calibration run" in err2 and run in err2,
            f"a concurrent run on {run} is refused ({err2.strip().splitlines()[-1]})")
    rc = p.wait(timeout=900)
    c.check(rc == 0, f"the resumed run finishes (rc {rc})")
    cp = harness.run_wkvq(args.wkvq, ["ppl", "--model", out, "--text", text, "--max-windows", 1,
                                      "--quiet"], check=False)
    c.check(cp.returncode == 0, "its model loads")
    c.finish()


if __name__ == "__main__":
    harness.main(test)
