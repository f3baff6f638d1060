"""Shared plumbing for tests/python/test_*.py (not itself a test: CTest globs test_*.py only).

Every test script is run by CTest as
    /usr/bin/python3 SCRIPT --wkvq BIN --shared DIR --tmp DIR
and exits 0 (pass), 1 (fail) or 77 (skip). A missing shared model/data file is a skip, except
when the environment has CI=true, where it is a failure: CI must never pass by skipping.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
import traceback
from typing import List, Optional, Sequence

import numpy as np

SKIP = 77
EPS32 = float(np.finfo(np.float32).eps)  # 2^-23 = 1.19e-7

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class TestFailure(Exception):
    pass


class TestSkip(Exception):
    pass


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    here = os.path.dirname(os.path.abspath(__file__))
    default_shared = os.path.normpath(os.path.join(here, "..", "..", "..", "shared"))
    p = argparse.ArgumentParser()
    p.add_argument("--wkvq", required=True, help="path of the wkvq binary under test")
    p.add_argument("--shared", default=default_shared, help="directory with models/ and data/")
    p.add_argument("--tmp", default=None, help="scratch directory (created)")
    a = p.parse_args(argv)
    if a.tmp is None:
        a.tmp = os.path.join("/tmp", "wkvq_py_" + os.path.basename(sys.argv[0]).split(".")[0])
    os.makedirs(a.tmp, exist_ok=True)
    return a


def require_files(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        msg = "missing shared file(s): " + ", ".join(missing)
        if in_ci():
            raise TestFailure(msg + " (CI=true: a missing file is a failure)")
        raise TestSkip(msg)


def require_binary(path: str) -> None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise TestFailure(f"wkvq binary not found or not executable: {path}")


def run_wkvq(binary: str, args: List[str], timeout: float = 600.0,
             check: bool = True) -> subprocess.CompletedProcess:
    cmd = [binary] + [str(a) for a in args]
    t0 = time.time()
    try:
        cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure(f"timed out after {timeout:.0f}s: {shlex.join(cmd)}")
    dt = time.time() - t0
    shown = shlex.join(cmd)
    if len(shown) > 300:
        shown = shown[:240] + f" ...({len(shown) - 300} chars)... " + shown[-60:]
    print(f"  $ {shown}   [{dt:.2f}s, rc={cp.returncode}]", flush=True)
    if check and cp.returncode != 0:
        raise TestFailure(f"wkvq exited with {cp.returncode}: {shlex.join(cmd)}\n"
                          f"stderr:\n{cp.stderr.decode('utf-8', 'replace')[-4000:]}")
    return cp


def wkvq_logits(binary: str, model: str, tokens: Sequence[int], out: str,
                decode: bool = False) -> np.ndarray:
    args = ["logits", "--model", model, "--tokens", ",".join(str(int(t)) for t in tokens),
            "--out", out]
    if decode:
        args.append("--decode")
    if os.path.exists(out):
        os.remove(out)
    run_wkvq(binary, args)
    a = np.load(out)
    if a.dtype != np.float32:
        raise TestFailure(f"{out}: expected float32 logits, got {a.dtype}")
    return a


def wkvq_tokenize(binary: str, source_args: List[str], bos: bool = False,
                  eos: bool = False) -> List[int]:
    args = ["tokenize"] + source_args + (["--bos"] if bos else []) + (["--eos"] if eos else [])
    cp = run_wkvq(binary, args)
    try:
        ids = json.loads(cp.stdout.decode("utf-8"))
    except ValueError as e:
        raise TestFailure(f"tokenize did not print one JSON array: {e}; "
                          f"stdout starts {cp.stdout[:200]!r}")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise TestFailure("tokenize output is not a JSON array of integers")
    return ids


def wkvq_decode_ppl(binary: str, model_args: List[str], text: str, windows: int = 4) -> float:
    """Decode-mode perplexity of the first `windows` windows of `text` (`wkvq ppl --json`)."""
    cp = run_wkvq(binary, ["ppl", *model_args, "--text", text, "--max-windows", windows,
                           "--mode", "decode", "--json"])
    return json.loads(cp.stdout.decode())["ppl"]


def main(test_fn) -> None:
    """Runs test_fn(args) and exits with the CTest convention."""
    args = parse_args()
    t0 = time.time()
    try:
        require_binary(args.wkvq)
        test_fn(args)
    except TestSkip as e:
        print(f"SKIP: {e}")
        sys.exit(SKIP)
    except TestFailure as e:
        print(f"FAIL: {e}")
        print(f"(after {time.time() - t0:.1f}s)")
        sys.exit(1)
    except Exception:
        traceback.print_exc()
        print("FAIL: unexpected exception")
        sys.exit(1)
    print(f"PASS ({time.time() - t0:.1f}s)")
    sys.exit(0)


class Checker:
    """Collects named checks so one run reports every failure, then fails at the end."""

    def __init__(self) -> None:
        self.failures: List[str] = []

    def check(self, ok: bool, what: str) -> bool:
        print(("  ok   " if ok else "  FAIL ") + what, flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def finish(self) -> None:
        if self.failures:
            raise TestFailure(f"{len(self.failures)} check(s) failed:\n  " +
                              "\n  ".join(self.failures))


# ------------------------------------------------------------------------------------------
# Tolerance of an f32 forward against the float64 reference.
#
# Derivation (first-order rounding-error analysis, "random walk" model of accumulation):
#  * a float32 dot product of K terms carries a rounding error of about sqrt(K) * eps32 times
#    sum_j |a_j b_j| (each partial sum is rounded with a relative error <= eps32/2, errors of
#    independent sign add in quadrature; the worst case K * eps32 is never approached);
#  * each of the n_layers blocks and the output head is one such stage; the relative error each
#    stage adds to the residual stream propagates onwards roughly unchanged (RMSNorm re-scales,
#    residual connections add); the stages round independently, so by the same random-walk
#    model their contributions add in quadrature: sqrt(n_layers + 1);
#  * a logit z = w . x with an error relative to |x| of r has |dz| <= r * sum_j |w_j| |x_j|,
#    the "absolute magnitude" M of that logit (computed from the reference, max over logits).
# Hence  tol = TOL_FACTOR * eps32 * sqrt(K_max) * sqrt(n_layers + 1) * max M,  K_max the
# longest accumulation (max of dim, hidden_dim, q_dim, and the sequence length T that attention
# sums over). TOL_FACTOR = 1: the random-walk estimate itself, no extra safety factor.
# Measured: a numpy f32 forward sits at 0.1-0.15 of this bound on stories260K and ~0.05 on
# wkvq-ref-6m; wkvq's f32 prefill at 0.04-0.16, its decode path at 0.01-0.07. An implementation
# with a real bug (wrong RoPE pair, eps, GQA map, position) is off by O(0.1 .. 10) in logits,
# 3+ orders of magnitude above it.
TOL_FACTOR = 1.0


def f32_logit_tolerance(model, tokens, verbose: bool = True) -> float:
    from reference.model import logit_magnitude
    cfg = model.config
    T = len(tokens)
    k_max = max(cfg.dim, cfg.hidden_dim, cfg.q_dim, T)
    m = float(logit_magnitude(model, np.asarray(tokens)).max())
    tol = TOL_FACTOR * EPS32 * np.sqrt(k_max) * np.sqrt(cfg.n_layers + 1) * m
    if verbose:
        print(f"  tol = {TOL_FACTOR} * eps32 * sqrt(K={k_max}) * sqrt(L+1={cfg.n_layers + 1}) * "
              f"max|W||x| ({m:.3g}) = {tol:.3g}")
    return tol
