#!/usr/bin/python3
"""`wkvq ppl` of stories260K vs a float64 numpy reference, on the evaluation protocol of
design.md section 3: the whole file tokenized as one stream with one BOS at the start,
non-overlapping windows of T tokens (a last partial window is dropped), each window a fresh
context from position 0, loss over positions 1..T-1 of each window; PPL = exp(mean NLL),
nll_stderr = std(per-token NLL, ddof=1) / sqrt(count).

Also checks `wkvq tokenize --bos` against this test's own llama2.c BPE encoder on the whole file.
Runs: tinystories/test.txt at ctx 512 (all windows) and wikitext-2 wiki.test.raw at ctx 512 with
--max-windows 3 (the first 3 windows).
Acceptance: |ppl_wkvq / ppl_ref - 1| < 1e-3 and equal scored-token and window counts. The bound
is the worst case of f32 rounding: a token's NLL = logsumexp(z) - z_target moves by at most
2 max|dz|, and max|dz| <= tol of test_logits.py (2.3e-4 at ctx 512 on stories260K), so
|d mean NLL| <= ~5e-4 and the PPL ratio moves by at most that much; typical f32 rounding moves it
by ~1e-7 (errors average out over 2e5 tokens), while a protocol error (a shifted window, a BOS
per window, scoring position 0) moves it by far more than 1e-3 and changes the counts.
"""
import json
import multiprocessing
import os
import time

import numpy as np

import harness
from harness import Checker, TestFailure
from reference.bpe import Llama2cTokenizer
from reference.formats import read_llama2c
from reference.model import forward, token_nll

CTX = 512
PPL_RTOL = 1e-3
STDERR_RTOL = 1e-2
_MODEL = None  # set before forking the worker pool


def _window_nll(window: np.ndarray) -> np.ndarray:
    logits = forward(_MODEL, window[None, :])[0]  # (T, V), float64
    return token_nll(logits[:-1], window[1:])  # predict token t from tokens < t, t = 1..T-1


def reference_nll(model, ids, ctx: int, max_windows=None) -> np.ndarray:
    """Per-token NLL (n_windows, ctx - 1) over the protocol's windows, float64."""
    global _MODEL
    n = len(ids) // ctx
    if max_windows is not None:
        n = min(n, max_windows)
    windows = [np.asarray(ids[w * ctx:(w + 1) * ctx], dtype=np.int64) for w in range(n)]
    _MODEL = model.astype(np.float64)
    workers = min(2, os.cpu_count() or 1, max(1, n))
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            out = pool.map(_window_nll, windows, chunksize=4)
    else:
        out = [_window_nll(w) for w in windows]
    return np.stack(out) if out else np.zeros((0, ctx - 1))


def first_mismatch(a, b) -> int:
    n = min(len(a), len(b))
    neq = np.nonzero(np.asarray(a[:n]) != np.asarray(b[:n]))[0]
    if neq.size:
        return int(neq[0])
    return n if len(a) != len(b) else -1


def evaluate(args, chk: Checker, name: str, model, tok, bin_path: str, text_path: str,
             max_windows=None) -> None:
    print(f"\n[{name}] {text_path}, ctx {CTX}, max windows {max_windows}")
    with open(text_path, "rb") as fh:
        text = fh.read()
    head = text[:3000]
    chk.check(tok.encode(head, bos=True) == tok.encode(head, bos=True, naive=True),
              f"{name}: python heap BPE equals the quadratic llama2.c scan on the first 3000 "
              f"bytes (reference self-check)")
    t0 = time.time()
    ids = tok.encode(text, bos=True)
    print(f"  python encoder: {len(ids)} tokens from {len(text)} bytes in {time.time() - t0:.1f}s")
    wk_ids = harness.wkvq_tokenize(args.wkvq, ["--model", bin_path, "--text-file", text_path],
                                   bos=True)
    i = first_mismatch(wk_ids, ids)
    if i >= 0:
        chk.check(False, f"{name}: wkvq tokenize ({len(wk_ids)} ids) differs from the python "
                         f"encoder ({len(ids)} ids) first at index {i}: wkvq "
                         f"{wk_ids[max(0, i - 3): i + 5]} vs python {ids[max(0, i - 3): i + 5]}")
    else:
        chk.check(True, f"{name}: wkvq tokenize stream equals the python encoder "
                        f"({len(ids)} ids)")

    t0 = time.time()
    nll = reference_nll(model, ids, CTX, max_windows)
    flat = nll.reshape(-1)
    ref = {"windows": nll.shape[0], "tokens": flat.size, "nll": float(flat.mean()),
           "ppl": float(np.exp(flat.mean())),
           "nll_stderr": float(flat.std(ddof=1) / np.sqrt(flat.size))}
    print(f"  reference (float64, {time.time() - t0:.1f}s): ppl {ref['ppl']:.6f}, nll "
          f"{ref['nll']:.6f} +- {ref['nll_stderr']:.6f}, {ref['tokens']} tokens, "
          f"{ref['windows']} windows")

    cmd = ["ppl", "--model", bin_path, "--text", text_path, "--ctx", str(CTX), "--json"]
    if max_windows is not None:
        cmd += ["--max-windows", str(max_windows)]
    cp = harness.run_wkvq(args.wkvq, cmd)
    try:
        res = json.loads(cp.stdout.decode("utf-8"))
    except ValueError as e:
        raise TestFailure(f"{name}: ppl --json stdout is not one JSON object ({e}): "
                          f"{cp.stdout[:300]!r}")
    missing = [k for k in ("ppl", "nll", "nll_stderr", "tokens", "windows", "ctx", "mode",
                           "seconds") if k not in res]
    chk.check(not missing, f"{name}: JSON has all required keys (missing: {missing})")
    print(f"  wkvq: {json.dumps(res)}")
    if "ppl" not in res:
        return
    ratio = res["ppl"] / ref["ppl"] - 1.0
    chk.check(abs(ratio) < PPL_RTOL, f"{name}: ppl wkvq {res['ppl']:.6f} vs reference "
                                     f"{ref['ppl']:.6f}: ratio - 1 = {ratio:.3g} "
                                     f"(bound {PPL_RTOL})")
    chk.check(res.get("tokens") == ref["tokens"],
              f"{name}: scored tokens wkvq {res.get('tokens')} vs reference {ref['tokens']}")
    chk.check(res.get("windows") == ref["windows"],
              f"{name}: windows wkvq {res.get('windows')} vs reference {ref['windows']}")
    chk.check(res.get("ctx") == CTX, f"{name}: ctx {res.get('ctx')} == {CTX}")
    if "nll" in res:
        chk.check(abs(res["nll"] - ref["nll"]) < PPL_RTOL,
                  f"{name}: mean nll wkvq {res['nll']:.6f} vs reference {ref['nll']:.6f} "
                  f"(|d| = {abs(res['nll'] - ref['nll']):.3g}, bound {PPL_RTOL}); "
                  f"exp(nll) = ppl: {abs(np.exp(res['nll']) / res['ppl'] - 1) < 1e-6}")
    if "nll_stderr" in res:
        r = res["nll_stderr"] / ref["nll_stderr"] - 1.0
        chk.check(abs(r) < STDERR_RTOL, f"{name}: nll_stderr wkvq {res['nll_stderr']:.6g} vs "
                                        f"reference {ref['nll_stderr']:.6g} (ratio - 1 = "
                                        f"{r:.3g}, bound {STDERR_RTOL})")


def run(args) -> None:
    d = os.path.join(args.shared, "models", "stories260K")
    bin_path, tok_path = os.path.join(d, "stories260K.bin"), os.path.join(d, "tok512.bin")
    ts = os.path.join(args.shared, "data", "tinystories", "test.txt")
    wiki = os.path.join(args.shared, "data", "wikitext-2-raw", "wiki.test.raw")
    harness.require_files(bin_path, tok_path, ts, wiki)
    model, _ = read_llama2c(bin_path)
    tok = Llama2cTokenizer.load(tok_path, model.config.vocab_size)
    chk = Checker()
    evaluate(args, chk, "tinystories test.txt", model, tok, bin_path, ts)
    evaluate(args, chk, "wiki.test.raw", model, tok, bin_path, wiki, max_windows=3)
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
