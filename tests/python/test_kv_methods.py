#!/usr/bin/env python3
"""The KV lab's baselines (src/kvlab) against independent numpy implementations of their
published definitions, through `wkvq kv-roundtrip` (what each method's cache gives back):

* llama.cpp q4_0 / q4_1 (ggml's reference quantizers, blocks of 32): exact values, computed in
  float32 as ggml does (x * (1/d) with d in f32, codes by truncation, fp16 d and m);
* KIVI (keys per channel over groups of g tokens, values per token in groups of g channels, fp16
  scale and min, the residual r: keys quantized a whole r-block at a time, the last r values in
  fp16): exact values, by KIVI's decode loop as a queue;
* QuaRot-style (per-head Hadamard, then per-token groups with fp16 scale and min): within a few
  f32 ulps (the rotation is computed in another order), except where the rotated value lies
  within that distance of a rounding boundary;
* TurboQuant-style (random orthogonal rotation per head, Lloyd-Max levels for a coordinate of a
  random unit vector, one fp16 norm per head vector): the rotations are orthonormal, the
  codebook satisfies the Lloyd-Max conditions of the density (1 - t^2)^((d-3)/2) (each level the
  mean of its cell, boundaries the midpoints) computed here by independent numerical integration,
  and the values match the numpy round trip with wkvq's rotation, away from decision boundaries.
Fast (seconds): small random inputs, no model.
"""
import json
import os

import numpy as np

from harness import Checker, main, run_wkvq

F16 = lambda x: np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


def q4_0_ref(x):
    out = np.empty_like(x)
    for b in range(0, x.size, 32):
        blk = x[b:b + 32]
        i = int(np.argmax(np.abs(blk)))  # first of the largest magnitudes
        d = np.float32(blk[i]) / np.float32(-8.0)
        idv = np.float32(1.0) / d if d != 0 else np.float32(0.0)
        q = np.minimum(15, np.trunc(blk * idv + np.float32(8.5)).astype(np.int64))
        out[b:b + 32] = (q - 8).astype(np.float32) * F16(d)
    return out


def q4_1_ref(x):
    out = np.empty_like(x)
    for b in range(0, x.size, 32):
        blk = x[b:b + 32]
        mn, mx = blk.min(), blk.max()
        d = (mx - mn) / np.float32(15.0)
        idv = np.float32(1.0) / d if d != 0 else np.float32(0.0)
        q = np.minimum(15, np.trunc((blk - mn) * idv + np.float32(0.5)).astype(np.int64))
        out[b:b + 32] = q.astype(np.float32) * F16(d) + F16(mn)
    return out


def asym_fp16_ref(x, bits):
    """One group: fp16 scale = (max - min) / qmax and fp16 min, codes round-half-even."""
    qmax = np.float32(2 ** bits - 1)
    s, m = F16((x.max() - x.min()) / qmax), F16(x.min())
    q = np.clip(np.rint((x - m) / s), 0, qmax) if s > 0 else np.zeros_like(x)
    return m + q.astype(np.float32) * s


def groups_ref(row, g, bits):
    return np.concatenate([asym_fp16_ref(row[i:i + g], bits) for i in range(0, row.size, g)])


def kivi_ref(k, v, bits, g, r):
    """KIVI's decode loop: a key residual quantized per channel (groups of g tokens) and emptied
    when it holds r tokens; a value queue whose oldest token is quantized when it exceeds r."""
    T = k.shape[0]
    vk, vv = F16(k), F16(v)
    key_res, val_res = [], []
    for t in range(T):
        key_res.append(t)
        if len(key_res) == r:
            for t0 in range(key_res[0], key_res[0] + r, g):
                for c in range(k.shape[1]):
                    vk[t0:t0 + g, c] = asym_fp16_ref(k[t0:t0 + g, c], bits)
            key_res = []
        val_res.append(t)
        if len(val_res) > r:
            j = val_res.pop(0)
            vv[j] = groups_ref(v[j], g, bits)
    return vk, vv


def hadamard(n):
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def lloyd_conditions(levels, d):
    """Max deviation of each level from the mean of its cell under (1 - t^2)^((d-3)/2)."""
    t = np.linspace(-1, 1, 2_000_001)[1:-1]
    w = (1 - t * t) ** ((d - 3) / 2)
    bounds = np.concatenate([[-1], (levels[1:] + levels[:-1]) / 2, [1]])
    dev = 0.0
    for i, c in enumerate(levels):
        sel = (t >= bounds[i]) & (t < bounds[i + 1])
        dev = max(dev, abs(np.sum(w[sel] * t[sel]) / np.sum(w[sel]) - c))
    return dev


def roundtrip(args, method, k, v, hd, heads, tag):
    d = os.path.join(args.tmp, tag)
    os.makedirs(d, exist_ok=True)
    k.astype("<f4").tofile(os.path.join(d, "k.f32"))
    v.astype("<f4").tofile(os.path.join(d, "v.f32"))
    cp = run_wkvq(args.wkvq, ["kv-roundtrip", "--kv-method", method, "--k", f"{d}/k.f32",
                              "--v", f"{d}/v.f32", "--tokens", k.shape[0], "--head-dim", hd,
                              "--kv-heads", heads, "--out", d])
    info = json.loads(cp.stdout.decode())
    rot = os.path.join(d, "rotations.npy")
    return (np.load(f"{d}/k.npy"), np.load(f"{d}/v.npy"), info,
            np.load(rot) if os.path.exists(rot) else None)


def test(args):
    ck = Checker()
    rng = np.random.default_rng(16)
    T, heads, hd = 40, 4, 16
    C = heads * hd
    k = (rng.standard_normal((T, C)) * rng.uniform(0.2, 3, C)).astype(np.float32)
    v = rng.standard_normal((T, C)).astype(np.float32)
    k[:, 5] += 4.0  # an outlier channel

    for name, ref, bits in (("q4_0", q4_0_ref, 4.5), ("q4_1", q4_1_ref, 5.0)):
        gk, gv, info, _ = roundtrip(args, name, k, v, hd, heads, name)
        want_k = np.stack([ref(r) for r in k])
        want_v = np.stack([ref(r) for r in v])
        ck.check(np.array_equal(gk, want_k) and np.array_equal(gv, want_v),
                 f"{name}: every value equals ggml's definition (max diff "
                 f"{max(np.abs(gk - want_k).max(), np.abs(gv - want_v).max()):.3g})")
        ck.check(info["bits_per_element"] == bits, f"{name}: {info['bits_per_element']} bits")

    for bits, g, r in ((2, 8, 16), (4, 4, 8)):
        gk, gv, info, _ = roundtrip(args, f"kivi:b={bits},g={g},r={r}", k, v, hd, heads, "kivi")
        want_k, want_v = kivi_ref(k, v, bits, g, r)
        ck.check(np.array_equal(gk, want_k) and np.array_equal(gv, want_v),
                 f"kivi b{bits} g{g} r{r}: equals KIVI's decode loop at T={T} (max diff "
                 f"{max(np.abs(gk - want_k).max(), np.abs(gv - want_v).max()):.3g})")
        want_bits = ((T - r) * (bits + (32 / g + 32 / g) / 2) + r * 16) / T
        ck.check(abs(info["bits_per_element"] - want_bits) < 1e-12,
                 f"kivi bits {info['bits_per_element']:.4f} = {want_bits:.4f}")

    # QuaRot-style: rotate each head, token groups of head_dim, fp16 scale/min, rotate back
    gk, gv, _, _ = roundtrip(args, f"quarot:b=4,g={hd}", k, v, hd, heads, "quarot")
    H = hadamard(hd)
    worst, boundary = 0.0, 0
    for x, got in ((k, gk), (v, gv)):
        for t in range(T):
            for h in range(heads):
                y = (H @ x[t, h * hd:(h + 1) * hd].astype(np.float64)).astype(np.float32)
                s = F16((y.max() - y.min()) / np.float32(15))
                m = F16(y.min())
                pos = (y - m) / s
                near = np.abs(pos - np.floor(pos) - 0.5) < 1e-4  # a rounding boundary
                back = H.T @ groups_ref(y, hd, 4).astype(np.float64)
                diff = np.abs(back - got[t, h * hd:(h + 1) * hd])
                if near.any():
                    boundary += 1
                    continue
                worst = max(worst, diff.max())
    # f32 rotations both ways in another summation order: a few ulps of the largest |y| (<= 20)
    ck.check(worst < 64 * 2 ** -23 * 20, f"quarot: values within f32 rounding (max {worst:.3g}; "
             f"{boundary} head vectors skipped next to a rounding boundary)")

    # TurboQuant-style
    for bits in (2, 3):
        gk, gv, info, rot = roundtrip(args, f"turbo:b={bits}", k, v, hd, heads, "turbo")
        levels = np.array(info["codebook"])
        ck.check(len(levels) == 2 ** bits and np.all(np.diff(levels) > 0),
                 f"turbo b{bits}: {len(levels)} ascending levels")
        dev = lloyd_conditions(levels, hd)
        ck.check(dev < 1e-4, f"turbo b{bits}: each level is the mean of its cell (max dev {dev:.2g})")
        eye = np.abs(np.einsum("khij,khlj->khil", rot, rot) - np.eye(hd)).max()
        ck.check(eye < 1e-6, f"turbo: rotations orthonormal (max |R R^T - I| {eye:.2g})")
        worst, skipped = 0.0, 0
        bnd = (levels[1:] + levels[:-1]) / 2
        for kv, (x, got) in enumerate(((k, gk), (v, gv))):
            for t in range(T):
                for h in range(heads):
                    xh = x[t, h * hd:(h + 1) * hd].astype(np.float64)
                    R = rot[kv, h].astype(np.float64)
                    nrm = np.linalg.norm(xh)
                    u = R @ (xh / nrm)
                    if np.min(np.abs(u[:, None] - bnd[None, :])) < 1e-5:
                        skipped += 1
                        continue
                    q = levels[np.searchsorted(bnd, u, side="left")]
                    back = F16(nrm) * (R.T @ q)
                    worst = max(worst, np.abs(back - got[t, h * hd:(h + 1) * hd]).max())
        # the rotations travel as float32: relative 2^-24 per entry, times |x| <= ~25
        ck.check(worst < 1e-4, f"turbo b{bits}: values match (max {worst:.3g}, {skipped} vectors "
                 "skipped next to a decision boundary)")
        ck.check(info["bits_per_element"] == bits + 16 / hd, f"turbo bits {info['bits_per_element']}")
    ck.finish()


if __name__ == "__main__":
    main(test)
