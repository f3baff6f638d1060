#!/usr/bin/python3
"""`--kv-scores int8` (int8 queries against the 4-bit key codes, kernels/kv_attend.h) end to end,
on wkvq-ref-6m (head_dim 32: the SIMD kernel's groups of 32) and stories260K (head_dim 8: the
reference), W4 KV4 in groups of head_dim, `wkvq ppl` on TinyStories test.txt:

  * prefill mode reads no stored keys (the chunk attends to itself in full precision), so its PPL
    is the f32 scores' exactly;
  * decode mode reads every earlier key from the cache: the PPL moves (the int8 path runs), by
    at most Q8_SHARE_OF_KV_COST of what the 4-bit cache itself costs (decode PPL with KV4 minus
    with an f32 cache). Derivation: a stored score's error from the 4-bit key is sum_i q_i
    (k_i - k^_i), up to s / 2 per channel times |q_i|; from the int8 query it is sum_i (q_i -
    q^_i) s c_i, up to (d / 2) s 15 per channel with d = max|q| / 127 (kernel test bound). For a
    channel with |q_i| at the group's mean magnitude (~max / 2 for these heads), the ratio is
    (15 d / 2) / (|q_i| / 2) = 15 / 127 * max|q| / |q_i| ~ 0.24; errors of both kinds are
    independent across channels and add in quadrature, so the PPL shifts scale alike: 0.5 keeps
    a 2x margin over that estimate, far below the 1.0 a bug (a wrong scale, a lost min term, a
    mis-decoded plane: scores off by whole codes) exceeds many times over.
  * the "kernels:" line names the choice (`kv scores int8 (--kv-scores / WKVQ_KV_SCORES)`), and
    `ppl --json` reports it.

CTest runs it as: test_kv_scores_int8.py --wkvq BIN --shared DIR --tmp DIR; exit 0 pass, 1 fail,
77 skip (missing shared files; a failure instead when CI=true).
"""
import json

import harness
from harness import Checker

Q8_SHARE_OF_KV_COST = 0.5
WINDOWS = 6


def ppl(args, model, mode, kvbits, scores, ctx):
    cp = harness.run_wkvq(args.wkvq, [
        "ppl", "--model", model, "--text", f"{args.shared}/data/tinystories/test.txt",
        "--ctx", ctx, "--max-windows", WINDOWS, "--mode", mode, "--wbits", 4, "--kvbits", kvbits,
        "--kv-scores", scores, "--json"])
    out = json.loads(cp.stdout.decode())
    return out["ppl"], out, cp.stderr.decode("utf-8", "replace")


def test(args):
    sh = args.shared
    models = {"wkvq-ref-6m": (f"{sh}/models/wkvq-ref-6m", 512),
              "stories260K": (f"{sh}/models/stories260K/stories260K.bin", 256)}
    harness.require_files(f"{sh}/data/tinystories/test.txt", *(m for m, _ in models.values()))
    ck = Checker()
    for name, (model, ctx) in models.items():
        f32_prefill, _, _ = ppl(args, model, "prefill", 4, "f32", ctx)
        q8_prefill, out, err = ppl(args, model, "prefill", 4, "int8", ctx)
        ck.check(q8_prefill == f32_prefill,
                 f"{name}: prefill PPL unchanged by int8 scores ({q8_prefill!r} vs "
                 f"{f32_prefill!r})")
        ck.check("kv scores int8 (--kv-scores / WKVQ_KV_SCORES)" in err,
                 f"{name}: the kernels line names int8 scores")
        ck.check(out.get("kernels", {}).get("kv_scores") == "int8",
                 f"{name}: ppl --json reports kernels.kv_scores int8")
        fp_cache, _, _ = ppl(args, model, "decode", 32, "f32", ctx)
        f32_decode, _, _ = ppl(args, model, "decode", 4, "f32", ctx)
        q8_decode, _, _ = ppl(args, model, "decode", 4, "int8", ctx)
        kv_cost = abs(f32_decode - fp_cache)
        shift = abs(q8_decode - f32_decode)
        print(f"  {name}: decode PPL f32 cache {fp_cache:.5f}, KV4 {f32_decode:.5f}, KV4 with "
              f"int8 scores {q8_decode:.5f}: shift {shift:.5f} = {shift / kv_cost:.3f} of the KV4 "
              f"cost {kv_cost:.5f}")
        ck.check(q8_decode != f32_decode, f"{name}: decode PPL moves (the int8 scores run)")
        ck.check(kv_cost > 0 and shift <= Q8_SHARE_OF_KV_COST * kv_cost,
                 f"{name}: the shift is at most {Q8_SHARE_OF_KV_COST} of the KV4 cost")
    ck.finish()


if __name__ == "__main__":
    harness.main(test)
