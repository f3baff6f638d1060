#!/usr/bin/python3
"""`wkvq quantize --method rtn` and `--method wkvquant` (through the calibration worker) on tiny
random Hugging Face checkpoints of each family beyond Llama-2, written by this script in F32 and
BF16:

  llama3   LlamaForCausalLM, rope_scaling llama3 (original_max_position_embeddings 32; the
           calibration window of 48 and the compared positions reach beyond it), tied embeddings
  qwen2    Qwen2ForCausalLM (Qwen2.5): q/k/v biases, untied
  qwen3    Qwen3ForCausalLM: per-head q/k RMSNorm, head_dim 32 != hidden / heads = 16, tied
  mistral  MistralForCausalLM, untied

Checks per family and dtype:
- rtn: the directory's logits (prefill and decode, int4 KV) equal, bit for bit, those of the same
  quantization done in memory (`logits --wbits 4 --kvbits 4` on the checkpoint).
- wkvquant: the directory keeps the architecture (architectures, model_type, head_dim,
  rope_scaling) and records the calibration; every bias and q/k norm is stored as F32 equal to the
  checkpoint's (full-precision constants, not learned); the int4 weights dequantize (numpy, from
  the GPTQ tensors) to within WEIGHT_REL of the checkpoint's, row for row; with an f32 KV cache the
  directory computes the same function as an F32 checkpoint this script writes from those
  dequantized weights and the original biases / norms (within SAME_FUNCTION_REL: only f32
  summation order differs); its int4-KV logits stay within QUANT_REL of the float model's.
The in-memory calibrated model against its reloaded directory, bit for bit, is
tests/calibrate/wkvquant_reload_test.cpp (the CLI has no command that keeps a calibrated model in
memory).
"""
import json
import math
import os
import shutil

import numpy as np

import harness
from harness import Checker
from reference.formats import read_safetensors, round_to_bf16, write_safetensors

SEED = 20261202
T = 48  # compared positions, beyond llama3's original context of 32
VOCAB = 512  # stories260K's tok512.bin tokenizes the calibration text

# Relative Frobenius error of a 4-bit weight with one group per row (--wgroup 128 >= every input
# width here, 64 or 128) of N(0, 1/in) values: the step is range / 15 ~ 5 sigma / 15, the rounding
# error step / sqrt(12) ~ 0.1 sigma (measured: 0.099-0.100 at worst); LWC clips by ~2% at init. A
# wrongly ordered row or group is ~1.4.
WEIGHT_REL = 0.2
# f32 vs f32 evaluation of one function in other summation orders (int4 GEMV vs f32 matmul): ~1e-6
# relative measured; a lost bias, norm or RoPE scaling is O(0.1 .. 1).
SAME_FUNCTION_REL = 1e-4
# W4 KV4 (learned smoothing, POQ) against the float model on these random models: 0.27-0.36
# measured. Only a gross failure exceeds it (dropping the Qwen2 biases moves the float logits by
# 1.2 relative, the llama3 scaling by 0.55, the Qwen3 q/k norms by only 0.34): the exact check of
# the features is SAME_FUNCTION_REL above, whose float reference path (wkvq on an F32
# checkpoint) tests/python/test_architectures.py checks against an independent PyTorch forward.
QUANT_REL = 0.5

BASE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": VOCAB,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}

FAMILIES = {
    "llama3": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
               "tie_word_embeddings": True,
               "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 32}},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "tie_word_embeddings": False, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
              "use_sliding_window": False},
    "qwen3": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
              "tie_word_embeddings": True, "head_dim": 32, "attention_bias": False,
              "rope_theta": 1000000.0, "rms_norm_eps": 1e-6},
    "mistral": {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                "tie_word_embeddings": False},
}
CALIB = ["--epochs", 1, "--samples", 2, "--window", T, "--k", 1, "--wgroup", 128, "--threads", 2]


def head_dim(cfg: dict) -> int:
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def random_checkpoint(cfg: dict, rng: np.random.Generator) -> dict:
    """{HF name: float32 array}: linears N(0, 1/in), norms 1 + N(0, 0.1^2), biases N(0, 0.5^2)
    (large k biases, as real Qwen2 checkpoints have), embeddings N(0, 0.1^2)."""
    d, hid, hd = cfg["hidden_size"], cfg["intermediate_size"], head_dim(cfg)
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    arch = cfg["architectures"][0]

    def normal(shape, mean, std):
        return (mean + std * rng.standard_normal(shape)).astype(np.float32)

    t = {"model.embed_tokens.weight": normal((cfg["vocab_size"], d), 0.0, 0.1),
         "model.norm.weight": normal(d, 1.0, 0.1)}
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = normal((cfg["vocab_size"], d), 0.0, 1.0 / math.sqrt(d))
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        t[p + "input_layernorm.weight"] = normal(d, 1.0, 0.1)
        t[p + "post_attention_layernorm.weight"] = normal(d, 1.0, 0.1)
        for name, rows, cols in (("q", H * hd, d), ("k", KV * hd, d), ("v", KV * hd, d),
                                 ("o", d, H * hd)):
            t[p + f"self_attn.{name}_proj.weight"] = normal((rows, cols), 0.0, cols ** -0.5)
            if arch == "Qwen2ForCausalLM" and name != "o":
                t[p + f"self_attn.{name}_proj.bias"] = normal(rows, 0.0, 0.5)
        if arch == "Qwen3ForCausalLM":
            t[p + "self_attn.q_norm.weight"] = normal(hd, 1.0, 0.1)
            t[p + "self_attn.k_norm.weight"] = normal(hd, 1.0, 0.1)
        for name, rows, cols in (("gate", hid, d), ("up", hid, d), ("down", d, hid)):
            t[p + f"mlp.{name}_proj.weight"] = normal((rows, cols), 0.0, cols ** -0.5)
    return t


def write_checkpoint(path: str, cfg: dict, tensors: dict, dtype: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(dict(cfg, torch_dtype={"F32": "float32", "BF16": "bfloat16"}[dtype]), fh,
                  indent=2)
    write_safetensors(os.path.join(path, "model.safetensors"), tensors, dtype)


def unpack(packed: np.ndarray, bits: int, axis: int, n: int) -> np.ndarray:
    """GPTQ int32 packing (lowest bits first) along `axis`, cut to n values."""
    u = packed.astype(np.int64) & 0xFFFFFFFF
    per = 32 // bits
    fields = [(u >> (bits * k)) & ((1 << bits) - 1) for k in range(per)]
    stacked = np.stack(fields, axis=axis + 1)  # (.., packed, per, ..)
    shape = list(packed.shape)
    shape[axis] *= per
    return np.take(stacked.reshape(shape), np.arange(n), axis=axis)


def dequantize(t: dict, prefix: str, rows: int, cols: int, bits: int) -> np.ndarray:
    """W (rows, cols) of a GPTQ linear with exact ("gptq_v2") zero points: (code - zero) * scale."""
    codes = unpack(t[prefix + "qweight"], bits, 0, cols).T  # (rows, cols)
    zeros = unpack(t[prefix + "qzeros"], bits, 1, rows)  # (G, rows)
    scales = t[prefix + "scales"].astype(np.float32)  # (G, rows)
    g = t[prefix + "g_idx"].astype(np.int64)  # (cols)
    return ((codes - zeros[g].T) * scales[g].T).astype(np.float32)


def logits(args, model: str, tokens, decode: bool, extra=()) -> np.ndarray:
    out = os.path.join(args.tmp, "l.npy")
    if os.path.exists(out):
        os.remove(out)
    harness.run_wkvq(args.wkvq, ["logits", "--model", model, "--tokens",
                                 ",".join(map(str, tokens)), "--out", out, *extra] +
                     (["--decode"] if decode else []))
    return np.load(out)


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64)))


def check_rtn(args, chk: Checker, label: str, src: str, tokens, tok: str) -> None:
    qdir = os.path.join(args.tmp, label + "-rtn")
    shutil.rmtree(qdir, ignore_errors=True)
    harness.run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", src, "--out", qdir,
                                 "--tokenizer", tok])
    for decode in (False, True):
        a = logits(args, qdir, tokens, decode)
        b = logits(args, src, tokens, decode, ["--wbits", 4, "--kvbits", 4])
        same = a.shape == b.shape and bool(np.array_equal(a, b))
        chk.check(same, f"{label} rtn {'decode' if decode else 'prefill'}: reloaded directory == "
                        f"in-memory W4 KV4 RTN, bit for bit")


def check_saved_config(chk: Checker, label: str, cfg: dict, saved: dict) -> None:
    keep = saved["architectures"] == cfg["architectures"] and \
        saved["model_type"] == cfg["model_type"] and saved.get("head_dim") == head_dim(cfg)
    chk.check(keep, f"{label}: config.json keeps {saved['architectures']}, "
                    f"{saved['model_type']}, head_dim {saved.get('head_dim')}")
    if cfg.get("rope_scaling"):
        rs, want = saved.get("rope_scaling") or {}, cfg["rope_scaling"]
        chk.check(all(rs.get(k) == v for k, v in want.items()),
                  f"{label}: rope_scaling kept: {rs}")
    qc = saved["quantization_config"]
    chk.check(qc["method"] == "wkvquant" and qc["kv_smooth"] == "learned" and
              "k=1" in qc.get("calibration", ""),
              f"{label}: quantization_config records the calibration: {qc['method']}, "
              f"{qc['kv_smooth']}, {qc.get('calibration')}")


def float_copy(orig: dict, saved: dict, rounded: dict, label: str, chk: Checker) -> dict:
    """{name: f32} of the F32 checkpoint equal to the directory: dequantized linears, and the
    directory's float tensors (checked against the checkpoint's biases and norms)."""
    bits = 4
    out, worst = {}, (0.0, "")
    for name, value in rounded.items():
        if not name.endswith("_proj.weight"):
            if name.endswith(".bias") or "_norm." in name:
                got = saved.get(name)
                same = got is not None and got.dtype == np.float32 and \
                    bool(np.array_equal(got, value))
                chk.check(same, f"{label}: {name} stored in F32 equal to the checkpoint's")
            out[name] = value if name not in saved else saved[name]
            continue
        prefix = name[:-len("weight")]
        rows, cols = value.shape
        w = dequantize(saved, prefix, rows, cols, bits)
        worst = max(worst, (rel(w, value), name))
        out[name] = w
    chk.check(worst[0] <= WEIGHT_REL, f"{label}: every int4 linear dequantizes to within "
                                      f"{WEIGHT_REL} of the checkpoint's weights (worst "
                                      f"{worst[0]:.3f}, {worst[1]})")
    n_biases = sum(1 for n in orig if n.endswith(".bias"))
    n_norms = sum(1 for n in orig if "_norm.weight" in n and "self_attn" in n)
    chk.check(sum(1 for n in saved if n.endswith(".bias")) == n_biases and
              sum(1 for n in saved if "self_attn.q_norm" in n or "self_attn.k_norm" in n) ==
              n_norms, f"{label}: the directory has the checkpoint's {n_biases} biases and "
                       f"{n_norms} q/k norms")
    chk.check(any(n.endswith("kv_smoothing.k_shift") for n in saved),
              f"{label}: the learned KV smoothing is stored")
    return out


def check_wkvquant(args, chk: Checker, label: str, src: str, cfg: dict, orig: dict,
                   rounded: dict, tokens, files: dict) -> None:
    wdir = os.path.join(args.tmp, label + "-wkvquant")
    shutil.rmtree(wdir, ignore_errors=True)
    harness.run_wkvq(args.wkvq, ["quantize", "--method", "wkvquant", "--model", src, "--out",
                                 wdir, "--tokenizer", files["tok"], "--calib", files["calib"],
                                 *CALIB])
    with open(os.path.join(wdir, "config.json")) as fh:
        check_saved_config(chk, label, cfg, json.load(fh))
    saved, _ = read_safetensors(os.path.join(wdir, "model.safetensors"))
    fdir = os.path.join(args.tmp, label + "-dequantized")
    floats = float_copy(orig, saved, rounded, label, chk)
    fcfg = dict(cfg)
    if "lm_head.weight" in saved:  # a tied head is saved as its own (fp16) copy
        floats["lm_head.weight"] = saved["lm_head.weight"]
        fcfg["tie_word_embeddings"] = False
    write_checkpoint(fdir, fcfg, floats, "F32")
    for decode in (False, True):
        mode = "decode" if decode else "prefill"
        a = logits(args, wdir, tokens, decode, ["--kvbits", 32])
        b = logits(args, fdir, tokens, decode)
        d = rel(a, b) if a.shape == b.shape else math.inf
        chk.check(d <= SAME_FUNCTION_REL,
                  f"{label} wkvquant {mode}, f32 KV: directory == F32 checkpoint of its "
                  f"dequantized weights, relative L2 {d:.3g} <= {SAME_FUNCTION_REL}")
        q = logits(args, wdir, tokens, decode)
        fp = logits(args, src, tokens, decode)
        d = rel(q, fp)
        chk.check(np.all(np.isfinite(q)) and d < QUANT_REL,
                  f"{label} wkvquant {mode}, its int4 KV: relative L2 to the float model "
                  f"{d:.3f} < {QUANT_REL}")


def run(args) -> None:
    sh = args.shared
    files = {"tok": os.path.join(sh, "models", "stories260K", "tok512.bin"),
             "calib": os.path.join(sh, "data", "tinystories", "calib.txt")}
    harness.require_files(*files.values())
    chk = Checker()
    rng = np.random.default_rng(SEED)
    tokens = [int(t) for t in rng.integers(0, VOCAB, T)]
    for name, family in FAMILIES.items():
        cfg = dict(BASE, **family)
        orig = random_checkpoint(cfg, rng)
        for dtype in ("F32", "BF16"):
            label = f"{name}-{dtype.lower()}"
            print(f"\n[{label}] {cfg['architectures'][0]}")
            src = os.path.join(args.tmp, label)
            write_checkpoint(src, cfg, orig, dtype)
            rounded = orig if dtype == "F32" else {k: round_to_bf16(v) for k, v in orig.items()}
            check_rtn(args, chk, label, src, tokens, files["tok"])
            check_wkvquant(args, chk, label, src, cfg, orig, rounded, tokens, files)
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
