"""GPTQ interoperability (issue 15 items 1-2), against an independent numpy implementation of the
published AutoGPTQ / GPTQModel checkpoint convention written here:

  qweight int32 (in / P, out): bits b*k.. of qweight[i, o] = code of W[o, P*i + k] (P = 32 / b,
          lowest bits first: packed along the INPUT dimension)
  qzeros  int32 (G, out / P):  bits b*k.. of qzeros[g, j] = zero of output row P*j + k (packed
          along the OUTPUT dimension), stored minus one in the v1 form ("gptq"), as is in
          "gptq_v2"
  scales  fp16 (G, out);  g_idx int32 (in): group of each input column (act-order: a permutation)
  W[o, i] = (code - zero[g_idx[i], o]) * scales[g_idx[i], o]

1. Export: `wkvq quantize --format gptq` of wkvq-ref-6m is unpacked by that numpy reader into
   dense weights equal (exactly) to the weights wkvq computes with (`wkvq inspect
   --dump-weights`); config, dtypes and shapes follow the convention.
2. Import: numpy quantizes wkvq-ref-6m's float weights and packs GPTQ checkpoints (v1 / v2, sym /
   asym, desc_act true / false, 4 / 8 bits, group 32 / 64 / -1); `wkvq logits` of each equals
   `wkvq logits` of an HF F32 directory of the dense dequantized weights within 2 x the derived
   f32 logit tolerance (both are within one tolerance of the exact function; harness.py).
   Re-exporting the import writes the checkpoint's own weight tensors byte for byte.
3. Round trip: export -> import -> export gives byte-identical files.
4. Bad input: corrupt qzeros / g_idx, group_size not dividing the columns, bits 5, a wrong shape,
   an unknown checkpoint_format: clear errors naming the tensor or key.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
from typing import Dict, List

import numpy as np

import harness
from harness import Checker, TestFailure, run_wkvq
from reference.formats import read_hf_dir, read_safetensors, write_hf_dir

LINEARS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
           "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
TOKENS = [1, 403, 22, 1000, 7, 3021, 45, 999, 12, 4000, 250, 31, 77, 1500, 2, 640]
_NP = {"F32": "<f4", "F16": "<f2", "I32": "<i4"}


class Quiet(Checker):
    """A Checker that counts instead of printing each check (hundreds per directory)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def check(self, ok: bool, what: str) -> bool:
        self.count += 1
        if not ok:
            self.failures.append(what)
        return ok


# ------------------------------------------------------------------------------------------
# safetensors with mixed dtypes (the GPTQ files hold I32, F16 and F32)

def read_raw(path: str) -> Dict[str, tuple]:
    """{name: (dtype string, array with the stored dtype)}, and '__metadata__'."""
    with open(path, "rb") as fh:
        raw = fh.read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8: 8 + n])
    out = {"__metadata__": header.pop("__metadata__", None)}
    for name, info in header.items():
        b, e = info["data_offsets"]
        a = np.frombuffer(raw[8 + n + b: 8 + n + e], dtype=_NP[info["dtype"]])
        out[name] = (info["dtype"], a.reshape(info["shape"]))
    return out


def write_raw(path: str, tensors: Dict[str, np.ndarray]) -> None:
    header, chunks, off = {"__metadata__": {"format": "pt"}}, [], 0
    kinds = {np.dtype("int32"): "I32", np.dtype("float16"): "F16", np.dtype("float32"): "F32"}
    for name in sorted(tensors, key=lambda k: (tensors[k].dtype.itemsize * -1, k)):
        a = tensors[name]
        buf = a.astype(_NP[kinds[a.dtype]]).tobytes()
        header[name] = {"dtype": kinds[a.dtype], "shape": list(a.shape),
                        "data_offsets": [off, off + len(buf)]}
        chunks.append(buf)
        off += len(buf)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))


# ------------------------------------------------------------------------------------------
# the convention, in numpy

def unpack_rows(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    """int32 (R, C) packed along axis 0 -> (R * 32/bits, C)[:n] codes."""
    p = 32 // bits
    u = packed.astype(np.uint32)
    fields = [(u >> np.uint32(bits * k)) & np.uint32((1 << bits) - 1) for k in range(p)]
    return np.stack(fields, axis=1).reshape(-1, packed.shape[1])[:n].astype(np.int64)


def unpack_cols(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    """int32 (R, C) packed along axis 1 -> (R, C * 32/bits)[:, :n] codes."""
    return unpack_rows(packed.T.copy(), bits, n).T


def pack_rows(codes: np.ndarray, bits: int) -> np.ndarray:
    p = 32 // bits
    r, c = codes.shape
    assert r % p == 0
    u = codes.astype(np.uint32).reshape(r // p, p, c)
    acc = np.zeros((r // p, c), dtype=np.uint32)
    for k in range(p):
        acc |= u[:, k, :] << np.uint32(bits * k)
    return acc.view(np.int32)


def dequantize(qweight, qzeros, scales, g_idx, bits: int, v1: bool) -> np.ndarray:
    """Dense W (out, in) float32 of one GPTQ linear."""
    out = qweight.shape[1]
    codes = unpack_rows(qweight, bits, len(g_idx))             # (in, out)
    zeros = unpack_cols(qzeros, bits, out) + (1 if v1 else 0)  # (G, out)
    s = scales.astype(np.float32)                              # (G, out)
    g = g_idx.astype(np.int64)
    w = (codes - zeros[g]).astype(np.float32) * s[g]           # (in, out)
    return np.ascontiguousarray(w.T)


def quantize_gptq(w: np.ndarray, bits: int, group: int, sym: bool, act_order: bool,
                  rng: np.random.Generator):
    """GPTQ-style group quantization of W (out, in): returns codes (out, in), zeros (G, out),
    fp16 scales (G, out), g_idx (in) and the dense dequantized W."""
    out, n_in = w.shape
    g = n_in if group == -1 else group
    n_groups = n_in // g
    maxq = (1 << bits) - 1
    order = rng.permutation(n_in) if act_order else np.arange(n_in)
    g_idx = np.empty(n_in, dtype=np.int32)
    g_idx[order] = np.arange(n_in) // g
    codes = np.zeros((out, n_in), dtype=np.int64)
    zeros = np.zeros((n_groups, out), dtype=np.int64)
    scales = np.zeros((n_groups, out), dtype=np.float16)
    for k in range(n_groups):
        cols = np.nonzero(g_idx == k)[0]
        wg = w[:, cols].astype(np.float64)
        if sym:
            s = 2 * np.maximum(np.abs(wg).max(axis=1), 1e-5) / maxq
            z = np.full(out, (maxq + 1) // 2)
        else:
            lo, hi = np.minimum(wg.min(axis=1), 0), np.maximum(wg.max(axis=1), 0)
            s = np.maximum((hi - lo) / maxq, 1e-5)
        s16 = s.astype(np.float16)
        sf = s16.astype(np.float64)
        if not sym:
            z = np.clip(np.round(-lo / sf), 1, maxq)  # >= 1: storable in the v1 form
        q = np.clip(np.round(wg / sf[:, None]) + z[:, None], 0, maxq)
        codes[:, cols] = q
        zeros[k] = z
        scales[k] = s16
    deq = ((codes - zeros[g_idx].T).astype(np.float32) *
           scales[g_idx].T.astype(np.float32))
    return codes, zeros, scales, g_idx, deq


# ------------------------------------------------------------------------------------------

def float_tensors(path: str) -> Dict[str, np.ndarray]:
    t, _ = read_safetensors(os.path.join(path, "model.safetensors"))
    return t


def write_gptq_checkpoint(path: str, src: str, bits: int, group: int, sym: bool, act: bool,
                          v1: bool, seed: int):
    """A GPTQ checkpoint of the float model `src` (F16 float tensors, as published ones are) and
    the HF F32 directory of its dense dequantized weights (path + '.dense')."""
    rng = np.random.default_rng(seed)
    with open(os.path.join(src, "config.json")) as fh:
        cfg = json.load(fh)
    model, _ = read_hf_dir(src)
    t = float_tensors(src)
    tensors, dense = {}, {}
    for name, a in t.items():
        if not name.endswith("_proj.weight"):
            tensors[name] = a.astype(np.float16)
            dense[name] = a.astype(np.float16).astype(np.float32)
    for l in range(model.config.n_layers):
        for lin in LINEARS:
            p = f"model.layers.{l}.{lin}."
            codes, zeros, scales, g_idx, deq = quantize_gptq(t[p + "weight"], bits, group, sym,
                                                             act, rng)
            tensors[p + "qweight"] = pack_rows(codes.T.copy(), bits)
            tensors[p + "qzeros"] = pack_rows((zeros - (1 if v1 else 0)).T.copy(), bits).T.copy()
            tensors[p + "scales"] = scales
            tensors[p + "g_idx"] = g_idx
            dense[p + "weight"] = deq
    os.makedirs(path, exist_ok=True)
    for f in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(src, f), path)
    cfg["torch_dtype"] = "float16"
    cfg["quantization_config"] = {"quant_method": "gptq", "bits": bits, "group_size": group,
                                  "desc_act": act, "sym": sym,
                                  "checkpoint_format": "gptq" if v1 else "gptq_v2"}
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=1)
    write_raw(os.path.join(path, "model.safetensors"), tensors)
    # The dense twin: same float tensors, dequantized linears, F32.
    dpath = path + ".dense"
    os.makedirs(dpath, exist_ok=True)
    dcfg = {k: v for k, v in cfg.items() if k != "quantization_config"}
    dcfg["torch_dtype"] = "float32"
    with open(os.path.join(dpath, "config.json"), "w") as fh:
        json.dump(dcfg, fh, indent=1)
    write_raw(os.path.join(dpath, "model.safetensors"),
              {k: np.asarray(v, dtype=np.float32) for k, v in dense.items()})
    return tensors, dpath


def check_export(chk: Checker, args, src: str, out: str, bits: int, group: int,
                 keep: List[str]) -> None:
    extra = ["--keep-float", ",".join(keep)] if keep else []
    cp = run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", src, "--out", out,
                              "--format", "gptq", "--wbits", bits, "--wgroup", group,
                              "--kvbits", 4, *extra])
    with open(os.path.join(out, "config.json")) as fh:
        cfg = json.load(fh)
    qc = cfg["quantization_config"]
    chk.check(qc["quant_method"] == "gptq" and qc["bits"] == bits and
              qc["group_size"] == group and qc["desc_act"] is False and qc["sym"] is False,
              f"export quantization_config: {qc}")
    v1 = qc["checkpoint_format"] == "gptq"
    notice = b"gptq_v2" in cp.stderr
    chk.check(v1 != notice, f"checkpoint_format {qc['checkpoint_format']}, v2 notice printed: "
                            f"{notice}")
    chk.check(cfg["torch_dtype"] == "float16", f"torch_dtype {cfg['torch_dtype']}")
    chk.check(cfg["wkvq"]["format_version"] == 3 and cfg["wkvq"]["kv_bits"] == 4,
              f"wkvq section {cfg['wkvq']}")
    raw = read_raw(os.path.join(out, "model.safetensors"))
    chk.check(raw["__metadata__"] == {"format": "pt"}, f"metadata {raw['__metadata__']}")
    dump = os.path.join(args.tmp, "dump")
    shutil.rmtree(dump, ignore_errors=True)
    run_wkvq(args.wkvq, ["inspect", "--model", out, "--dump-weights", dump])
    n_layers = cfg["num_hidden_layers"]
    p_ = 32 // bits
    checked = 0
    sub = Quiet()
    for l in range(n_layers):
        for i, lin in enumerate(LINEARS):
            p = f"model.layers.{l}.{lin}."
            mine = np.load(os.path.join(dump, p + "npy"))
            if f"{l}.{['wq', 'wk', 'wv', 'wo', 'w_gate', 'w_up', 'w_down'][i]}" in keep:
                dt, w = raw[p + "weight"]
                sub.check(dt == "F16" and np.array_equal(w.astype(np.float32), mine),
                          f"{p}weight: kept float must be F16 and equal wkvq's")
                sub.check(any(p[:-1].replace(".", "\\.") in k for k in qc.get("dynamic", {})),
                          f"{p}: kept in float but not declared in quantization_config.dynamic")
                continue
            (dq, qw), (dz, qz), (ds, sc), (dg, gi) = (raw[p + n] for n in
                                                      ("qweight", "qzeros", "scales", "g_idx"))
            out_f, in_f = mine.shape
            n_groups = in_f // group if group > 0 else 1
            sub.check((dq, dz, ds, dg) == ("I32", "I32", "F16", "I32") and
                      qw.shape == (in_f // p_, out_f) and qz.shape == (n_groups, out_f // p_) and
                      sc.shape == (n_groups, out_f) and gi.shape == (in_f,),
                      f"{p}: dtypes/shapes {dq} {qw.shape} {dz} {qz.shape} {ds} {sc.shape} "
                      f"{dg} {gi.shape}")
            sub.check(np.array_equal(gi, np.arange(in_f) // (group if group > 0 else in_f)),
                      f"{p}g_idx is not i // group_size")
            w = dequantize(qw, qz, sc, gi, bits, v1)
            sub.check(np.array_equal(w, mine), f"{p}: numpy dequantization differs from wkvq's "
                                               f"by {np.abs(w - mine).max():.3g}")
            checked += 1
    for name, v in raw.items():
        if name != "__metadata__" and not name.endswith(("qweight", "qzeros", "g_idx")):
            sub.check(v[0] == "F16", f"{name}: float tensor stored as {v[0]}, expected F16")
    chk.check(not sub.failures and checked > 0,
              f"export W{bits} g{group}: {sub.count} checks of dtypes, shapes, g_idx and of "
              f"the numpy dequantization of {checked} linears against wkvq's weights "
              f"(checkpoint_format {qc['checkpoint_format']}); failures: {sub.failures[:5]}")


def check_import(chk: Checker, args, src: str, bits: int, group: int, sym: bool, act: bool,
                 v1: bool, seed: int) -> None:
    tag = f"W{bits} g{group} {'sym' if sym else 'asym'} desc_act={act} {'v1' if v1 else 'v2'}"
    path = os.path.join(args.tmp, f"gptq_{bits}_{group}_{int(sym)}_{int(act)}_{int(v1)}")
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(path + ".dense", ignore_errors=True)
    tensors, dense = write_gptq_checkpoint(path, src, bits, group, sym, act, v1, seed)
    a = harness.wkvq_logits(args.wkvq, path, TOKENS, os.path.join(args.tmp, "a.npy"))
    b = harness.wkvq_logits(args.wkvq, dense, TOKENS, os.path.join(args.tmp, "b.npy"))
    model, _ = read_hf_dir(dense)
    tol = harness.f32_logit_tolerance(model, TOKENS, verbose=False)
    d = float(np.abs(a - b).max())
    chk.check(d <= 2 * tol, f"import {tag}: max |logit - dense model's| {d:.3g} <= 2 tol = "
                            f"{2 * tol:.3g}")
    # Re-export: the weight tensors come back as the checkpoint had them (zeros >= 1 -> v1).
    out = path + ".re"
    shutil.rmtree(out, ignore_errors=True)
    run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", path, "--out", out,
                         "--format", "gptq"])
    raw = read_raw(os.path.join(out, "model.safetensors"))
    with open(os.path.join(out, "config.json")) as fh:
        qc = json.load(fh)["quantization_config"]
    # One group per row (-1) makes every g_idx 0: act-order changes nothing there.
    chk.check(qc["desc_act"] == (act and group != -1) and qc["checkpoint_format"] == "gptq",
              f"re-export of {tag}: {qc}")
    differ = [name for name, t in tensors.items()
              if (name.endswith(("qweight", "scales", "g_idx")) or
                  (v1 and name.endswith("qzeros")))
              and not (name in raw and np.array_equal(raw[name][1], t))]
    chk.check(not differ, f"re-export of {tag}: the weight tensors are the checkpoint's "
                          f"(differing: {differ[:4]})")


def check_round_trip(chk: Checker, args, exported: str) -> None:
    again = exported + ".again"
    shutil.rmtree(again, ignore_errors=True)
    run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", exported, "--out", again,
                         "--format", "gptq"])
    for f in ("model.safetensors", "config.json"):
        with open(os.path.join(exported, f), "rb") as x, open(os.path.join(again, f), "rb") as y:
            chk.check(x.read() == y.read(), f"round trip: {f} byte-identical")
    print("  round trip export -> import -> export: byte-identical")


def expect_error(chk: Checker, args, what: str, path: str, needles: List[str]) -> None:
    cp = run_wkvq(args.wkvq, ["logits", "--model", path, "--tokens", "1,2",
                              "--out", os.path.join(args.tmp, "e.npy")], check=False)
    err = cp.stderr.decode("utf-8", "replace")
    ok = cp.returncode == 1 and all(n in err for n in needles)
    chk.check(ok, f"{what}: expected exit 1 with {needles}, got rc {cp.returncode}: "
                  f"{err.strip()[-400:]}")


def check_errors(chk: Checker, args, good: str) -> None:
    def variant(name, edit_cfg=None, edit_tensors=None):
        d = os.path.join(args.tmp, "bad_" + name)
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(good, d)
        if edit_cfg:
            with open(os.path.join(d, "config.json")) as fh:
                cfg = json.load(fh)
            edit_cfg(cfg["quantization_config"])
            with open(os.path.join(d, "config.json"), "w") as fh:
                json.dump(cfg, fh)
        if edit_tensors:
            raw = read_raw(os.path.join(d, "model.safetensors"))
            t = {k: v[1].copy() for k, v in raw.items() if k != "__metadata__"}
            edit_tensors(t)
            write_raw(os.path.join(d, "model.safetensors"), t)
        return d

    p = "model.layers.1.mlp.up_proj."

    def corrupt_zeros(t):  # stored 15 in v1 = zero point 16, outside 4 bits
        t[p + "qzeros"][0, 0] |= np.int32(0xF)

    def corrupt_gidx(t):
        t[p + "g_idx"][3] = 1000

    def unbalanced_gidx(t):
        t[p + "g_idx"][0] = t[p + "g_idx"][0] + 1 if t[p + "g_idx"][0] == 0 else 0

    def bad_shape(t):
        t[p + "scales"] = t[p + "scales"][:-1]

    expect_error(chk, args, "qzeros", variant("qzeros", edit_tensors=corrupt_zeros),
                 [p + "{qweight,qzeros,scales,g_idx}", "qzeros"])
    expect_error(chk, args, "g_idx", variant("gidx", edit_tensors=corrupt_gidx), [p, "g_idx[3]"])
    expect_error(chk, args, "g_idx unbalanced", variant("gidx2", edit_tensors=unbalanced_gidx),
                 [p, "g_idx"])
    expect_error(chk, args, "scales shape", variant("shape", edit_tensors=bad_shape),
                 [p + "scales", "shape"])
    expect_error(chk, args, "bits 5", variant("bits", lambda q: q.update(bits=5)),
                 ["quantization_config.bits"])
    expect_error(chk, args, "group not dividing",
                 variant("group", lambda q: q.update(group_size=48)),
                 ["group_size 48", "qweight"])
    expect_error(chk, args, "checkpoint_format",
                 variant("format", lambda q: q.update(checkpoint_format="marlin")),
                 ["quantization_config.checkpoint_format"])


def test(args) -> None:
    src = os.path.join(args.shared, "models", "wkvq-ref-6m")
    harness.require_files(os.path.join(src, "model.safetensors"))
    chk = Checker()
    exp4 = os.path.join(args.tmp, "export_w4g64")
    shutil.rmtree(exp4, ignore_errors=True)
    check_export(chk, args, src, exp4, 4, 64, ["2.w_down"])
    exp8 = os.path.join(args.tmp, "export_w8g32")
    shutil.rmtree(exp8, ignore_errors=True)
    check_export(chk, args, src, exp8, 8, 32, [])
    check_round_trip(chk, args, exp4)
    variants = [(4, 64, False, False, True), (4, 32, True, True, True),
                (4, -1, False, True, True), (8, 64, True, False, True),
                (8, 32, False, True, True), (4, 64, False, True, False)]
    for i, (bits, group, sym, act, v1) in enumerate(variants):
        check_import(chk, args, src, bits, group, sym, act, v1, seed=100 + i)
    good = os.path.join(args.tmp, "gptq_4_64_0_0_1")
    # Any KV format runs on an imported checkpoint.
    kv = harness.wkvq_logits(args.wkvq, good, TOKENS, os.path.join(args.tmp, "kv.npy"))
    run_wkvq(args.wkvq, ["logits", "--model", good, "--tokens", ",".join(map(str, TOKENS)),
                         "--kvbits", 4, "--out", os.path.join(args.tmp, "kv4.npy")])
    kv4 = np.load(os.path.join(args.tmp, "kv4.npy"))
    chk.check(np.all(np.isfinite(kv4)) and kv4.shape == kv.shape,
              "imported checkpoint with --kvbits 4: logits not finite or misshapen")
    check_errors(chk, args, good)
    chk.finish()


if __name__ == "__main__":
    harness.main(test)
