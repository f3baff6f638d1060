#!/usr/bin/python3
"""GPTQ (`wkvq quantize --method gptq`, src/calibrate/gptq.h) against an independent numpy
reference written here from the GPTQ paper (Frantar et al. 2022, Algorithm 1) and wkvq's weight
format (design.md §2.1):

1. One linear, given W and X (seeded), through the worker's test hook
   (`wkvq-calibrate --gptq-probe DIR`): codes, fp16 scales and zero points against the reference
   for 2/3/4/8 bits, groups inside and across lazy-batch blocks, one group per row, act-order
   (static groups) on and off, inputs that are always 0.
   Tolerance: both sides compute in float64 but sum in different orders (BLAS vs numpy), so the
   working weights differ by ~1e-13 relative; a code flips only where w / s lands within that
   of a rounding tie (probability ~1e-12 per code), and one flip perturbs later columns by at
   most one quantization step times U_jk / U_jj, which can flip a few more. So at most
   MAX_FLIP_FRACTION of the codes (and of the group parameters) may differ, every differing
   code by one step, and the layer's output error ||W X^T - Q X^T|| may differ by at most
   MAX_REL_ERR_DIFF relative. Measured: 0 differences in every case.
2. The reference's own claim: its output error is below RTN's on these correlated inputs (so
   the comparison in 1 is not between two copies of RTN).
3. End to end on stories260K: `quantize --method gptq --kv-smooth stats` writes a directory that
   records method gptq and stats smoothing, and its prefill KLD from the float model is below that
   of W4 RTN (the acceptance claim of issue 15, on fewer windows here).
4. `ppl --ablation --calibrate` (with the learned rungs at 0 epochs, to keep it short) prints
   the three GPTQ rungs, with finite numbers, and with a KV format beyond the paper's (--kv-vbits,
   --kv-window, --kv-meta) the two rungs of that format (RTN + stats smoothing, WKVQuant trained
   under it).
5. Bad option combinations fail with a message naming the option.
6. WKVQuant's KV smoothing learned on frozen weights (issue 15):
   a. `quantize --method wkvquant --learn smooth --model <GPTQ checkpoint>` on a checkpoint that
      test_gptq_interop.py's numpy packer writes from wkvq-ref-6m (act-order, sym, v1): the
      output's qweight / qzeros / scales / g_idx are the checkpoint's byte for byte, the smoothing
      vectors are there and change the decode-mode KLD (the same directory with --kv-smooth
      none). --learn lwc and --wbits are refused.
   b. `quantize --method gptq --learn smooth` (one command) writes the same weights as
      `--method gptq` with the same options, with learned smoothing.
"""
import json
import os
import shutil

import numpy as np

import harness
from harness import Checker
from test_gptq_interop import read_raw, write_gptq_checkpoint

KV_PARTS = ("k_shift", "k_scale", "v_shift", "v_scale")

MAX_FLIP_FRACTION = 0.005
MAX_REL_ERR_DIFF = 0.01
MIN_SCALE = np.float32(1e-5)


def group_params(v, bits):
    """weight_group_params_ref for every row of v (rows, len) float32: fp16 scale, zero point."""
    qmax = np.float32(2 ** bits - 1)
    hi = np.maximum(v.max(axis=1), np.float32(0))
    lo = np.minimum(v.min(axis=1), np.float32(0))
    scale = np.maximum((hi - lo) / qmax, MIN_SCALE).astype(np.float32)
    s16 = scale.astype(np.float16)
    s = s16.astype(np.float32)
    z = np.clip(np.rint(-lo / s), 0, qmax).astype(np.float32)
    return s16, s, z


def quantize_col(w, s, z, bits):
    """codes and dequantized values of one column (float64 working values)."""
    q = np.clip(np.rint(w.astype(np.float32) / s) + z, 0, 2 ** bits - 1).astype(np.float32)
    return q, ((q - z) * s).astype(np.float64)


def gptq_reference(W, X, bits, group, damp, act_order, block):
    rows, cols = W.shape
    g = cols if group == 0 or group >= cols else group
    n_groups = -(-cols // g)
    H = 2.0 / X.shape[0] * (X.astype(np.float64).T @ X.astype(np.float64))
    W = W.astype(np.float64).copy()
    scales = np.zeros((rows, n_groups), np.float16)
    zeros = np.zeros((rows, n_groups), np.float32)
    params = [None] * n_groups
    codes = np.zeros((rows, cols), np.int64)
    d = np.diag(H).copy()
    d[d == 0] = 1.0
    H[np.diag_indices(cols)] = d
    perm = np.arange(cols)
    if act_order:
        for k in range(n_groups):  # static groups from the original weights
            s16, s, z = group_params(W[:, k * g:(k + 1) * g].astype(np.float32), bits)
            scales[:, k], zeros[:, k], params[k] = s16, z, (s, z)
        perm = np.argsort(-np.diag(H), kind="stable")
        W = W[:, perm]
        H = H[np.ix_(perm, perm)]
    H[np.diag_indices(cols)] += damp * np.mean(np.diag(H))
    L = np.linalg.cholesky(H)
    Linv = np.linalg.inv(L)
    U = np.linalg.cholesky(Linv.T @ Linv).T  # upper factor of H^-1
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        W1 = W[:, i1:i2].copy()
        E = np.zeros_like(W1)
        for i in range(i2 - i1):
            c = perm[i1 + i]
            if not act_order and c % g == 0:  # current values of the whole group
                cur = np.concatenate([W1[:, i:], W[:, i2:]], axis=1)[:, :min(g, cols - c)]
                s16, s, z = group_params(cur.astype(np.float32), bits)
                scales[:, c // g], zeros[:, c // g], params[c // g] = s16, z, (s, z)
            s, z = params[c // g]
            q, dq = quantize_col(W1[:, i], s, z, bits)
            codes[:, c] = q
            e = (W1[:, i] - dq) / U[i1 + i, i1 + i]
            W1[:, i:] -= np.outer(e, U[i1 + i, i1 + i:i2])
            E[:, i] = e
        W[:, i2:] -= E @ U[i1:i2, i2:]
    return codes, scales, zeros.astype(np.int64)


def dequant(codes, scales, zeros, group):
    cols = codes.shape[1]
    g = cols if group == 0 or group >= cols else group
    idx = np.arange(cols) // g
    return (codes - zeros[:, idx]) * scales.astype(np.float32)[:, idx]


def make_layer(rows, cols, n, seed, dead=()):
    rng = np.random.default_rng(seed)
    W = rng.uniform(-1, 1, (rows, cols)).astype(np.float32)
    Z = rng.uniform(-1, 1, (n, cols))
    X = Z + Z @ rng.uniform(-0.5, 0.5, (cols, cols))
    X[:, :4] *= 8.0  # outlier channels
    X[:, list(dead)] = 0.0  # inputs never seen in calibration (H_jj = 0)
    return W, X.astype(np.float32)


def probe(worker, d, W, X, bits, group, damp, act_order, block):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "shape.txt"), "w") as f:
        f.write(f"{W.shape[0]} {W.shape[1]} {X.shape[0]}\n")
    W.astype("<f4").tofile(os.path.join(d, "w.f32"))
    X.astype("<f4").tofile(os.path.join(d, "x.f32"))
    harness.run_wkvq(worker, ["--gptq-probe", d, "--bits", bits, "--group", group, "--damp",
                              repr(damp), "--block", block] + (["--act-order"] if act_order else []))
    rows, cols = W.shape
    codes = np.fromfile(os.path.join(d, "codes.u8"), np.uint8).astype(np.int64).reshape(rows, cols)
    scales = np.fromfile(os.path.join(d, "scales.f16"), "<f2").reshape(rows, -1)
    zeros = np.fromfile(os.path.join(d, "zeros.u8"), np.uint8).astype(np.int64).reshape(rows, -1)
    return codes, scales, zeros


def rtn(W, bits, group):
    cols = W.shape[1]
    g = cols if group == 0 or group >= cols else group
    codes = np.zeros(W.shape, np.int64)
    n_groups = -(-cols // g)
    scales = np.zeros((W.shape[0], n_groups), np.float16)
    zeros = np.zeros((W.shape[0], n_groups), np.int64)
    for k in range(n_groups):
        v = W[:, k * g:(k + 1) * g]
        s16, s, z = group_params(v, bits)
        scales[:, k], zeros[:, k] = s16, z
        codes[:, k * g:(k + 1) * g] = np.clip(np.rint(v / s[:, None]) + z[:, None], 0,
                                              2 ** bits - 1)
    return codes, scales, zeros


def out_err(W, Q, X):
    return float(np.linalg.norm((W.astype(np.float64) - Q) @ X.astype(np.float64).T))


def check_linear(c, worker, tmp):
    cases = [  # rows, cols, n, bits, group, damp, act_order, block, dead input columns
        (32, 160, 400, 4, 32, 0.01, False, 64, ()),
        (32, 160, 400, 4, 48, 0.01, False, 64, ()),   # groups straddle the lazy-batch blocks
        (32, 160, 400, 4, 32, 0.01, True, 64, (10, 50)),
        (24, 96, 300, 3, 64, 0.05, True, 128, ()),
        (24, 96, 300, 2, 0, 0.01, False, 32, (7,)),   # one group per row
        (16, 200, 300, 8, 128, 0.01, False, 128, ()),
    ]
    for k, (rows, cols, n, bits, group, damp, act, block, dead) in enumerate(cases):
        W, X = make_layer(rows, cols, n, 100 + k, dead)
        name = f"W{bits} g{group} damp {damp} act-order {act} block {block} dead {dead}"
        ours = probe(worker, os.path.join(tmp, f"probe{k}"), W, X, bits, group, damp, act, block)
        ref = gptq_reference(W, X, bits, group, damp, act, block)
        flips = ours[0] != ref[0]
        c.check(flips.mean() <= MAX_FLIP_FRACTION and
                np.all(np.abs(ours[0] - ref[0])[flips] <= 1),
                f"{name}: codes equal the reference ({int(flips.sum())} of {flips.size} differ)")
        par_diff = np.mean((ours[1] != ref[1]) | (ours[2] != ref[2]))
        c.check(par_diff <= MAX_FLIP_FRACTION,
                f"{name}: scales and zeros equal the reference ({par_diff:.2%} differ)")
        e_ours = out_err(W, dequant(*ours, group), X)
        e_ref = out_err(W, dequant(*ref, group), X)
        e_rtn = out_err(W, dequant(*rtn(W, bits, group), group), X)
        c.check(abs(e_ours - e_ref) <= MAX_REL_ERR_DIFF * e_ref,
                f"{name}: output error {e_ours:.5g} vs reference {e_ref:.5g}")
        c.check(e_ref < e_rtn, f"{name}: reference output error {e_ref:.5g} < RTN's {e_rtn:.5g}")


def check_cli(c, wkvq, sh, tmp):
    model = f"{sh}/models/stories260K/stories260K.bin"
    calib, text = f"{sh}/data/tinystories/calib.txt", f"{sh}/data/tinystories/test.txt"
    harness.require_files(model, calib, text)
    out = os.path.join(tmp, "gptq")
    base = ["quantize", "--method", "gptq", "--model", model, "--calib", calib, "--samples", 8,
            "--window", 128, "--threads", 1]
    harness.run_wkvq(wkvq, [*base, "--out", out, "--kv-smooth", "stats"])
    c.check(not os.path.exists(out + ".calib-run"), "the default run directory is removed")
    with open(os.path.join(out, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    c.check(qc["method"] == "gptq" and qc["kv_smooth"] == "stats" and qc["bits"] == 4 and
            "gptq W4 g128" in qc.get("calibration", ""),
            f"config.json records gptq with stats smoothing: {qc['method']}, {qc['kv_smooth']}, "
            f"{qc.get('calibration')}")

    def prefill(model_args):
        cp = harness.run_wkvq(wkvq, ["ppl", *model_args, "--text", text, "--max-windows", 4,
                                     "--mode", "prefill", "--kld", "--json"])
        return json.loads(cp.stdout.decode())

    g = prefill(["--model", out, "--kld-model", model])
    r = prefill(["--model", model, "--wbits", 4])
    c.check(g["kld"] < r["kld"] and g["ppl"] < r["ppl"],
            f"prefill: GPTQ W4 PPL {g['ppl']:.4f} KLD {g['kld']:.5f} below RTN W4 "
            f"{r['ppl']:.4f} / {r['kld']:.5f}")
    cp = harness.run_wkvq(wkvq, ["ppl", "--ablation", "--calibrate", "--model", model, "--text",
                                 text, "--calib", calib, "--max-windows", 1, "--ctx", 64,
                                 "--epochs", 0, "--samples", 2, "--window", 32,
                                 "--calib-windows", 2, "--calib-ctx", 64, "--kvgroup", 32,
                                 "--kv-vbits", 3, "--kv-window", 8, "--kv-meta", "rel8",
                                 "--json"])
    rungs = {r["rung"]: r for r in json.loads(cp.stdout.decode())["rungs"]}
    for name in ("W4 GPTQ, FP KV", "W4KV4 GPTQ + POQ + stats smoothing",
                 "W4KV4 GPTQ + learned smoothing (CRR k=1, MAE)",
                 "W4 K4 V3 g32 w8 rel8 RTN + POQ + stats smoothing",
                 "W4 K4 V3 g32 w8 rel8 WKVQuant (learned under it)"):
        r = rungs.get(name)
        c.check(r is not None and all(np.isfinite(r[m]["ppl"]) and np.isfinite(r[m]["kld"])
                                      for m in ("decode", "prefill")),
                f"the ablation prints the rung '{name}' with finite PPL and KLD")
    for bad, needle in [([*base[:5], "--out", out + "a"], b"--calib"),
                        ([*base, "--out", out + "b", "--k", 3], b"--k"),
                        ([*base, "--out", out + "c", "--keep-float", "0"], b"--keep-float"),
                        (["quantize", "--method", "rtn", "--model", model, "--out", out + "d",
                          "--act-order"], b"--act-order"),
                        (["quantize", "--method", "wkvquant", "--model", model, "--calib", calib,
                          "--out", out + "e", "--gptq-damp", 0.1], b"--gptq-damp")]:
        cp = harness.run_wkvq(wkvq, bad, check=False)
        c.check(cp.returncode == 1 and needle in cp.stderr,
                f"rejected with a message naming {needle.decode()}: "
                f"{cp.stderr.decode().strip().splitlines()[-1] if cp.stderr else ''}")


def quantized_tensors(path):
    """{name: raw bytes} of every qweight / qzeros / scales / g_idx of a directory."""
    raw = read_raw(os.path.join(path, "model.safetensors"))
    return {k: (v[0], v[1].shape, v[1].tobytes()) for k, v in raw.items()
            if k.endswith((".qweight", ".qzeros", ".scales", ".g_idx"))}


def smoothing(path):
    """{name: float32 array} of wkvq_kv.safetensors (empty when absent)."""
    f = os.path.join(path, "wkvq_kv.safetensors")
    if not os.path.exists(f):
        return {}
    return {k: v[1] for k, v in read_raw(f).items() if k != "__metadata__"}


def decode_kld(wkvq, model, ref, text, extra=()):
    cp = harness.run_wkvq(wkvq, ["ppl", "--model", model, "--kld-model", ref, "--text", text,
                                 "--max-windows", 2, "--ctx", 64, "--mode", "decode", "--kld",
                                 "--json", *extra])
    return json.loads(cp.stdout.decode())["kld"]


# The learning part, as small as can still move the smoothing: one epoch over 2 windows of 32.
SMALL_CRR = ["--samples", 2, "--window", 32, "--calib-windows", 2, "--calib-ctx", 64,
             "--threads", 1]


def check_learn_smooth_on_import(c, wkvq, sh, tmp):
    src = f"{sh}/models/wkvq-ref-6m"
    calib, text = f"{src}/calib.txt", f"{sh}/data/tinystories/test.txt"
    harness.require_files(f"{src}/model.safetensors", calib, text)
    ckpt = os.path.join(tmp, "gptq_act")
    shutil.rmtree(ckpt, ignore_errors=True)
    shutil.rmtree(ckpt + ".dense", ignore_errors=True)
    _, dense = write_gptq_checkpoint(ckpt, src, 4, 32, sym=True, act=True, v1=True, seed=7)
    out = os.path.join(tmp, "gptq_act_smooth")
    base = ["quantize", "--method", "wkvquant", "--model", ckpt, "--calib", calib, "--kvbits", 4,
            *SMALL_CRR]
    harness.run_wkvq(wkvq, [*base, "--learn", "smooth", "--format", "gptq", "--out", out,
                            "--epochs", 1])
    a, b = quantized_tensors(ckpt), quantized_tensors(out)
    c.check(len(a) == 6 * 7 * 4 and a == b,
            f"learned smoothing on an imported act-order checkpoint: the {len(a)} qweight / "
            f"qzeros / scales / g_idx tensors are the checkpoint's byte for byte "
            f"(differing: {sorted(k for k in a if a.get(k) != b.get(k))[:4]})")
    with open(os.path.join(out, "config.json")) as f:
        cfg = json.load(f)
    qc, wk = cfg["quantization_config"], cfg["wkvq"]
    c.check(qc["desc_act"] is True and wk["kv_smooth"] == "learned" and wk["kv_bits"] == 4 and
            "frozen weights" in wk.get("calibration", ""),
            f"config.json: desc_act {qc['desc_act']}, kv_smooth {wk['kv_smooth']}, "
            f"calibration {wk.get('calibration')!r}")
    sm = smoothing(out)
    names = [f"model.layers.{l}.self_attn.kv_smoothing.{p}" for l in range(6) for p in KV_PARTS]
    c.check(all(n in sm and sm[n].shape == (128,) and np.all(np.isfinite(sm[n])) for n in names),
            f"wkvq_kv.safetensors holds the 4 smoothing vectors of every layer: {sorted(sm)[:4]}")
    with_s = decode_kld(wkvq, out, dense, text)
    without = decode_kld(wkvq, out, dense, text, ["--kv-smooth", "none"])
    c.check(np.isfinite(with_s) and with_s != without,
            f"decode-mode KLD from the dense model: {with_s:.6f} with the learned smoothing, "
            f"{without:.6f} without")
    for bad, needle in [([*base, "--out", out + "x"], b"--learn smooth"),
                        ([*base, "--learn", "lwc,smooth", "--out", out + "y"], b"lwc"),
                        ([*base, "--learn", "smooth", "--wbits", 4, "--out", out + "z"],
                         b"--wbits")]:
        cp = harness.run_wkvq(wkvq, bad, check=False)
        c.check(cp.returncode == 1 and needle in cp.stderr,
                f"frozen weights: rejected naming {needle.decode()}: "
                f"{cp.stderr.decode().strip().splitlines()[-1] if cp.stderr else ''}")


def check_gptq_learn_smooth(c, wkvq, sh, tmp):
    model = f"{sh}/models/stories260K/stories260K.bin"
    calib = f"{sh}/data/tinystories/calib.txt"
    base = ["quantize", "--method", "gptq", "--model", model, "--calib", calib, "--kvbits", 4,
            *SMALL_CRR]
    plain, learned = os.path.join(tmp, "g_plain"), os.path.join(tmp, "g_learned")
    harness.run_wkvq(wkvq, [*base, "--out", plain])
    harness.run_wkvq(wkvq, [*base, "--learn", "smooth", "--epochs", 1, "--out", learned])
    a, b = quantized_tensors(plain), quantized_tensors(learned)
    c.check(len(a) == 5 * 7 * 4 and a == b,
            "--method gptq --learn smooth: the GPTQ weights are those of --method gptq")
    with open(os.path.join(learned, "config.json")) as f:
        qc = json.load(f)["quantization_config"]
    c.check(qc["method"] == "gptq+wkvquant-kv" and qc["kv_smooth"] == "learned",
            f"--method gptq --learn smooth records {qc['method']}, kv_smooth {qc['kv_smooth']}")
    raw = read_raw(os.path.join(learned, "model.safetensors"))
    c.check(any(k.endswith("kv_smoothing.k_shift") for k in raw),
            "--method gptq --learn smooth saves the smoothing vectors")


def test(args):
    worker = os.path.join(os.path.dirname(os.path.abspath(args.wkvq)), "wkvq-calibrate")
    if not os.path.exists(worker):
        raise harness.TestFailure(f"{worker} is missing (built with -DWKVQ_CALIBRATE=ON?)")
    shutil.rmtree(args.tmp, ignore_errors=True)
    os.makedirs(args.tmp)
    c = Checker()
    check_linear(c, worker, args.tmp)
    check_cli(c, args.wkvq, args.shared, args.tmp)
    check_learn_smooth_on_import(c, args.wkvq, args.shared, args.tmp)
    check_gptq_learn_smooth(c, args.wkvq, args.shared, args.tmp)
    c.finish()


if __name__ == "__main__":
    harness.main(test)
