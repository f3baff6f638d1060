#!/usr/bin/python3
"""The architectures beyond Llama-2 against an independent PyTorch forward
(reference/architectures.py), on tiny random checkpoints this script writes as Hugging Face
directories (config.json + model.safetensors, F32 and BF16):

  llama3        LlamaForCausalLM, rope_scaling llama3 (original_max_position_embeddings 32,
                every llama3 band present at head_dim 16), tied embeddings
  llama-linear  LlamaForCausalLM, rope_scaling linear, attention_bias (q/k/v/o biases), untied
  qwen2         Qwen2ForCausalLM, q/k/v biases, untied, sliding_window 16 with
                use_sliding_window false (must not cap the context)
  qwen3         Qwen3ForCausalLM, q/k RMSNorm per head, head_dim 32 != hidden/heads = 16, tied
  mistral       MistralForCausalLM, sliding_window 96 < max_position_embeddings 128: the context
                is capped with a notice on stderr

Checks per family: `wkvq logits` (prefill and --decode, token by token through the cache) at 80
positions (beyond 32 for the scaled RoPE) within the f32 tolerance of harness.py (derived there:
eps32 * sqrt(K) * sqrt(L + 1) * max |W||x|), for F32 and BF16 files (the reference uses the same
BF16-rounded weights); the family's feature matters (the reference without it is > 10 tol away);
`wkvq ppl` (prefill, decode) equals the reference's NLL over the same windows (log PPL within
2 tol); `wkvq inspect --calib` reports the K channel ranges of the reference's keys after q/k
norm and RoPE. Then `quantize --method rtn` writes a directory whose logits equal, bit for bit,
the same quantization done in memory (prefill and decode; and with --kv-smooth stats), whose
`ppl` in the three modes equals the NLL of its own `logits` in the matching mode, and on which
generate and bench run (`quantize --method wkvquant` on these families:
test_quantize_architectures.py). About 80 s here.
"""
import copy
import json
import math
import os
import re
import shutil

import numpy as np

import harness
from harness import EPS32, Checker
from reference.architectures import forward
from reference import model as reference_model
from reference.formats import read_hf_dir, round_to_bf16, write_safetensors

SEED = 20261201
T = 80  # positions compared; > original_max_position_embeddings (32) of the scaled RoPE
VOCAB = 512  # stories260K's tok512.bin drives the text commands
CTX, WINDOWS = 64, 2  # ppl: windows of the start of tinystories/test.txt

BASE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": VOCAB,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}

FAMILIES = {
    "llama3": dict(architectures=["LlamaForCausalLM"], model_type="llama",
                   tie_word_embeddings=True,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 32}),
    "llama-linear": dict(architectures=["LlamaForCausalLM"], model_type="llama",
                         tie_word_embeddings=False, attention_bias=True,
                         rope_scaling={"type": "linear", "factor": 4.0}),
    "qwen2": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2",
                  tie_word_embeddings=False, rope_theta=1000000.0, sliding_window=16,
                  use_sliding_window=False, rms_norm_eps=1e-6),
    "qwen3": dict(architectures=["Qwen3ForCausalLM"], model_type="qwen3",
                  tie_word_embeddings=True, head_dim=32, attention_bias=False,
                  rope_theta=1000000.0, rms_norm_eps=1e-6),
    "mistral": dict(architectures=["MistralForCausalLM"], model_type="mistral",
                    tie_word_embeddings=False, sliding_window=96),
}


def without_feature(name: str, cfg: dict) -> dict:
    """The config with the family's distinctive feature removed (for the sensitivity check)."""
    c = copy.deepcopy(cfg)
    if name.startswith("llama"):
        c["rope_scaling"] = None
        c["attention_bias"] = False
    elif name == "qwen2":
        c["architectures"] = ["LlamaForCausalLM"]  # no biases
    elif name == "qwen3":
        c["architectures"] = ["LlamaForCausalLM"]  # no q/k norm
    else:
        return {}
    return c


def make_tensors(cfg: dict, rng: np.random.Generator) -> dict:
    """Random weights of the config's shapes: linears N(0, 1/in), norms 1 + N(0, 0.1^2),
    biases N(0, 0.5^2), embeddings N(0, 0.1^2) (tied heads then give logits of O(5))."""
    d, hid, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", d // H)
    bias = cfg["architectures"][0] == "Qwen2ForCausalLM" or cfg.get("attention_bias", False)
    o_bias = cfg.get("attention_bias", False)
    qk_norm = cfg["architectures"][0] == "Qwen3ForCausalLM"

    def lin(o, i):
        return rng.normal(0.0, 1.0 / math.sqrt(i), (o, i)).astype(np.float32)

    def norm(n):
        return (1.0 + rng.normal(0.0, 0.1, n)).astype(np.float32)

    def vec(n):
        return rng.normal(0.0, 0.5, n).astype(np.float32)

    t = {"model.embed_tokens.weight": rng.normal(0.0, 0.1, (V, d)).astype(np.float32),
         "model.norm.weight": norm(d)}
    if not cfg["tie_word_embeddings"]:
        t["lm_head.weight"] = lin(V, d)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = norm(d)
        t[p + "post_attention_layernorm.weight"] = norm(d)
        for name, o, i in (("q", H * hd, d), ("k", KV * hd, d), ("v", KV * hd, d),
                           ("o", d, H * hd)):
            t[p + f"self_attn.{name}_proj.weight"] = lin(o, i)
            if (bias and name != "o") or (o_bias and name == "o"):
                t[p + f"self_attn.{name}_proj.bias"] = vec(o)
        if qk_norm:
            t[p + "self_attn.q_norm.weight"] = norm(hd)
            t[p + "self_attn.k_norm.weight"] = norm(hd)
        t[p + "mlp.gate_proj.weight"] = lin(hid, d)
        t[p + "mlp.up_proj.weight"] = lin(hid, d)
        t[p + "mlp.down_proj.weight"] = lin(d, hid)
    return t


def write_dir(path: str, cfg: dict, tensors: dict, dtype: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    c = dict(cfg, torch_dtype={"F32": "float32", "BF16": "bfloat16"}[dtype])
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(c, fh, indent=2)
    write_safetensors(os.path.join(path, "model.safetensors"), tensors, dtype)


def tolerance(cfg: dict, magnitude: float) -> float:
    """harness.f32_logit_tolerance's bound for this config (derivation in harness.py)."""
    hd = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    k_max = max(cfg["hidden_size"], cfg["intermediate_size"], cfg["num_attention_heads"] * hd, T)
    return harness.TOL_FACTOR * EPS32 * math.sqrt(k_max) * \
        math.sqrt(cfg["num_hidden_layers"] + 1) * magnitude


def compare_logits(args, chk: Checker, label: str, model_dir: str, cfg: dict, tensors: dict,
                   tokens) -> float:
    ref, mag = forward(cfg, tensors, tokens, magnitude=True)
    tol = tolerance(cfg, mag)
    out = os.path.join(args.tmp, label.replace(" ", "_") + ".npy")
    for mode, decode in (("prefill", False), ("decode", True)):
        got = harness.wkvq_logits(args.wkvq, model_dir, tokens, out, decode=decode)
        if not chk.check(got.shape == ref.shape and bool(np.all(np.isfinite(got))),
                         f"{label} {mode}: finite logits of shape {ref.shape} ({got.shape})"):
            continue
        d = float(np.abs(got.astype(np.float64) - ref).max())
        chk.check(d <= tol, f"{label} {mode}: max |wkvq - reference| = {d:.3g} <= tol {tol:.3g} "
                            f"(measured/tol = {d / tol:.3f})")
    return tol


def check_family(args, chk: Checker, name: str, rng: np.random.Generator, tokens):
    """Forward checks of one family; returns its F32 directory, config and tensors."""
    cfg = dict(BASE, **FAMILIES[name])
    tensors = make_tensors(cfg, rng)
    print(f"\n[{name}] {cfg['architectures'][0]}")
    f32_dir = os.path.join(args.tmp, name + "-f32")
    write_dir(f32_dir, cfg, tensors, "F32")
    tol = compare_logits(args, chk, f"{name} F32", f32_dir, cfg, tensors, tokens)
    bf16 = {k: round_to_bf16(v) for k, v in tensors.items()}
    bf16_dir = os.path.join(args.tmp, name + "-bf16")
    write_dir(bf16_dir, cfg, tensors, "BF16")
    compare_logits(args, chk, f"{name} BF16", bf16_dir, cfg, bf16, tokens)

    if name == "mistral":  # plain Llama math: the numpy reference of the other tests agrees
        other = reference_model.forward(read_hf_dir(f32_dir)[0], np.array(tokens))
        d = float(np.abs(other - forward(cfg, tensors, tokens)).max())
        chk.check(d <= 1e-9 * float(np.abs(other).max()),
                  f"the PyTorch reference equals reference/model.py on plain Llama math "
                  f"(max |d| {d:.3g}, both float64)")
    plain = without_feature(name, cfg)
    if plain:
        d = float(np.abs(forward(plain, tensors, tokens) - forward(cfg, tensors, tokens)).max())
        chk.check(d > 10 * tol, f"{name}: its feature matters: the reference without it moves "
                                f"the logits by {d:.3g} > 10 tol = {10 * tol:.3g}")
    cp = harness.run_wkvq(args.wkvq, ["logits", "--model", f32_dir, "--tokens", "1,2,3",
                                      "--out", os.path.join(args.tmp, "n.npy")])
    err = cp.stderr.decode()
    notices = err.count("notice:")
    if name == "mistral":
        chk.check(notices == 1 and "sliding_window 96" in err and "capped at 96" in err,
                  f"mistral: one notice of the context capped at the sliding window "
                  f"({notices} found)")
        long = harness.run_wkvq(args.wkvq, ["logits", "--model", f32_dir, "--tokens",
                                            ",".join(["5"] * 97), "--out",
                                            os.path.join(args.tmp, "n.npy")], check=False)
        chk.check(long.returncode != 0 and b"context is 96" in long.stderr,
                  "mistral: 97 positions exceed the capped context of 96, with a clear error")
    else:
        chk.check(notices == 0, f"{name}: no context notice ({notices} found)")
    return f32_dir, cfg, tensors


def mean_nll(logits_per_window, windows) -> float:
    """Mean NLL of tokens 1..T-1 of each window given its (T, V) logits (design.md section 3)."""
    total, count = 0.0, 0
    for z, w in zip(logits_per_window, windows):
        z = np.asarray(z, dtype=np.float64)[:-1]
        m = z.max(axis=1)
        lse = m + np.log(np.exp(z - m[:, None]).sum(axis=1))
        total += float((lse - z[np.arange(len(w) - 1), w[1:]]).sum())
        count += len(w) - 1
    return total / count


def wkvq_ppl(args, model: str, mode: str, files: dict, extra=()) -> float:
    cp = harness.run_wkvq(args.wkvq, ["ppl", "--model", model, "--mode", mode, "--text",
                                      files["text_small"], "--ctx", CTX, "--max-windows",
                                      WINDOWS, "--json", "--tokenizer", files["tok"], *extra])
    return json.loads(cp.stdout.decode())["ppl"]


def check_ppl(args, chk: Checker, name: str, f32_dir: str, qdir: str, cfg: dict, tensors: dict,
              files: dict) -> None:
    """`wkvq ppl` of the float model (prefill, decode) against the reference's NLL over the same
    windows, and of the quantized directory (all three modes) against its own `wkvq logits`.
    Bound: a token's NLL = logsumexp(z) - z_target moves by at most 2 max|dz|, so log PPL by at
    most 2 tol (tol: the logit bound above, the largest over the windows)."""
    windows = files["windows"]
    refs = [forward(cfg, tensors, w, magnitude=True) for w in windows]
    tol = max(tolerance(cfg, m) for _, m in refs)
    ref = mean_nll([z for z, _ in refs], windows)
    for mode in ("prefill", "decode"):
        got = math.log(wkvq_ppl(args, f32_dir, mode, files))
        chk.check(abs(got - ref) <= 2 * tol,
                  f"{name}: ppl --mode {mode} log PPL {got:.6f} vs reference {ref:.6f} "
                  f"(|d| {abs(got - ref):.2g} <= 2 tol {2 * tol:.2g})")
    for mode in ("prefill", "decode", "decode-nopoq"):
        want = mean_nll([quantized_logits(args, qdir, w, mode) for w in windows], windows)
        got = math.log(wkvq_ppl(args, qdir, mode, files))
        chk.check(abs(got - want) <= 2 * tol,
                  f"{name}: quantized ppl --mode {mode} log PPL {got:.6f} vs its logits "
                  f"{want:.6f} (|d| {abs(got - want):.2g} <= 2 tol {2 * tol:.2g})")


def quantized_logits(args, qdir: str, tokens, mode: str) -> np.ndarray:
    """`wkvq logits` seeing the KV cache as ppl --mode does: prefill (one pass), decode (token by
    token, past-only quantization), decode-nopoq (token by token, --poq off)."""
    out = os.path.join(args.tmp, "w.npy")
    if os.path.exists(out):
        os.remove(out)
    flags = {"prefill": [], "decode": ["--decode"], "decode-nopoq": ["--decode", "--poq", "off"]}
    harness.run_wkvq(args.wkvq, ["logits", "--model", qdir, "--tokens",
                                 ",".join(map(str, tokens)), "--out", out, *flags[mode]])
    return np.load(out)


def check_quantized(args, chk: Checker, name: str, f32_dir: str, cfg: dict, tensors: dict,
                    tokens, files: dict) -> None:
    print(f"\n[{name}] quantize --method rtn")
    qdir = os.path.join(args.tmp, name + "-rtn")
    shutil.rmtree(qdir, ignore_errors=True)
    tok = ["--tokenizer", files["tok"]]
    harness.run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", f32_dir, "--out",
                                 qdir, *tok])
    with open(os.path.join(qdir, "config.json")) as fh:
        saved = json.load(fh)
    with open(os.path.join(f32_dir, "config.json")) as fh:
        orig = json.load(fh)
    chk.check(saved["architectures"] == orig["architectures"] and
              saved["model_type"] == orig["model_type"] and
              saved.get("head_dim") == orig.get("head_dim", 16),
              f"{name}: the directory keeps architecture {saved['architectures']}, model_type "
              f"{saved['model_type']}, head_dim {saved.get('head_dim')}")
    if orig.get("rope_scaling"):
        rs = saved.get("rope_scaling") or {}
        chk.check(rs.get("rope_type") == orig["rope_scaling"].get(
            "rope_type", orig["rope_scaling"].get("type")) and
            rs.get("factor") == orig["rope_scaling"]["factor"],
            f"{name}: rope_scaling saved as {rs}")
    for mode, decode in (("prefill", False), ("decode", True)):
        a = harness.wkvq_logits(args.wkvq, qdir, tokens, os.path.join(args.tmp, "q.npy"), decode)
        cp_out = os.path.join(args.tmp, "m.npy")
        if os.path.exists(cp_out):
            os.remove(cp_out)
        harness.run_wkvq(args.wkvq, ["logits", "--model", f32_dir, "--wbits", 4, "--kvbits", 4,
                                     "--tokens", ",".join(map(str, tokens)), "--out", cp_out] +
                         (["--decode"] if decode else []))
        b = np.load(cp_out)
        chk.check(a.shape == b.shape and bool(np.array_equal(a, b)),
                  f"{name} {mode}: reloaded directory == in-memory W4 KV4 RTN, bit for bit "
                  f"(max |d| {float(np.abs(a - b).max()) if a.shape == b.shape else 'shape'})")
        ref = harness.wkvq_logits(args.wkvq, f32_dir, tokens, os.path.join(args.tmp, "f.npy"),
                                  decode)
        # For information: the W4KV4 error of a random model is not bounded by anything derived
        # here (the bit-identical reload above is the check).
        rel = float(np.linalg.norm(a - ref) / np.linalg.norm(ref))
        print(f"  info {name} {mode}: W4KV4 vs FP relative L2 difference {rel:.3f}")

    check_ppl(args, chk, name, f32_dir, qdir, cfg, tensors, files)
    check_stats_smoothing(args, chk, name, f32_dir, qdir, tokens, files)
    cp = harness.run_wkvq(args.wkvq, ["generate", "--model", qdir, "--prompt", "Once upon",
                                      "--steps", 24, "--temperature", 0, *tok])
    chk.check(len(cp.stdout.decode().strip()) > 0, f"{name}: generate prints text")
    check_inspect(args, chk, name, f32_dir, cfg, tensors, files)
    harness.run_wkvq(args.wkvq, ["bench", "--model", qdir, "--prefill", 16, "--decode", 8])


def check_stats_smoothing(args, chk: Checker, name: str, f32_dir: str, qdir: str, tokens,
                          files: dict) -> None:
    """`quantize --method rtn --kv-smooth stats` (statistics of the post-RoPE keys) reloads with
    the decode logits of the same smoothing computed in memory, bit for bit, and the smoothing
    changes them (it is applied)."""
    sdir = os.path.join(args.tmp, name + "-rtn-stats")
    shutil.rmtree(sdir, ignore_errors=True)
    calib = ["--kv-smooth", "stats", "--calib", files["text_small"], "--calib-windows", 2,
             "--calib-ctx", CTX, "--tokenizer", files["tok"]]
    harness.run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", f32_dir, "--out",
                                 sdir, *calib])
    a = harness.wkvq_logits(args.wkvq, sdir, tokens, os.path.join(args.tmp, "s.npy"), True)
    out = os.path.join(args.tmp, "sm.npy")
    if os.path.exists(out):
        os.remove(out)
    harness.run_wkvq(args.wkvq, ["logits", "--model", f32_dir, "--wbits", 4, "--kvbits", 4,
                                 *calib, "--decode", "--tokens", ",".join(map(str, tokens)),
                                 "--out", out])
    b = np.load(out)
    plain = harness.wkvq_logits(args.wkvq, qdir, tokens, os.path.join(args.tmp, "p.npy"), True)
    chk.check(a.shape == b.shape and bool(np.array_equal(a, b)) and
              not np.array_equal(a, plain),
              f"{name}: KV4 + stats smoothing directory == in memory (decode, bit for bit), "
              f"and differs from no smoothing (max |d| {float(np.abs(a - plain).max()):.3g})")


SINK_POSITIONS = 1  # runtime/kv_stats.h kDefaultSinkPositions


def check_inspect(args, chk: Checker, name: str, f32_dir: str, cfg: dict, tensors: dict,
                  files: dict) -> None:
    """`wkvq inspect --calib`: its K channel ranges are those of the keys after q/k norm and
    RoPE (reference keys over the same windows of the model's context, BOS-first stream, without
    the first position of each window: the statistics leave out the attention sink). The
    table prints the widest half-ranges with 2 decimals and the median with 3: each within half
    a unit of its last digit (+ 1e-4 for f32 rounding, << the 0.1+ that keys before RoPE or
    before the q/k norm would move them) of the reference."""
    ctx = cfg["max_position_embeddings"] if name != "mistral" else cfg["sliding_window"]
    ids = files["ids"]
    keys = [[] for _ in range(cfg["num_hidden_layers"])]
    for w in range(2):
        per_layer = []
        forward(cfg, tensors, ids[w * ctx:(w + 1) * ctx], keys=per_layer)
        for l, k in enumerate(per_layer):
            keys[l].append(k[SINK_POSITIONS:])
    cp = harness.run_wkvq(args.wkvq, ["inspect", "--model", f32_dir, "--calib",
                                      files["text_small"], "--calib-windows", 2,
                                      "--tokenizer", files["tok"]])
    out = cp.stdout.decode()
    chk.check(FAMILIES[name]["architectures"][0] in out, f"{name}: inspect names the architecture")
    k_table = out[out.index("K (after RoPE)"):out.index("\nV channel")]
    rows = re.findall(r"^\|\s+(\d+) \|\s+([\d.]+) \| ([^|]+) \|", k_table, re.M)
    chk.check(len(rows) == cfg["num_hidden_layers"], f"{name}: inspect prints a K row per layer")
    for layer, median, widest in rows:
        k = np.concatenate(keys[int(layer)])
        half = (k.max(axis=0) - k.min(axis=0)) / 2
        fifth = np.sort(half)[-5]
        bad = []
        for item in widest.split(", "):
            c, v = item.strip().lstrip("c").split("=")
            if abs(half[int(c)] - float(v)) > 0.0051 or float(v) < fifth - 0.0051:
                bad.append(f"c{c}: printed {v}, reference {half[int(c)]:.4f}")
        upper_median = float(np.sort(half)[len(half) // 2])  # inspect's median: sorted[n / 2]
        chk.check(not bad and abs(float(median) - upper_median) <= 0.00051,
                  f"{name}: inspect layer {layer} K ranges (median {median}, widest "
                  f"{widest.strip()}) match the reference's post-norm, post-RoPE keys "
                  f"(median {upper_median:.4f}) {'; '.join(bad)}")


def run(args) -> None:
    sh = args.shared
    files = {"tok": os.path.join(sh, "models", "stories260K", "tok512.bin"),
             "text": os.path.join(sh, "data", "tinystories", "test.txt"),
             "calib": os.path.join(sh, "data", "tinystories", "calib.txt")}
    harness.require_files(*files.values())
    chk = Checker()
    rng = np.random.default_rng(SEED)
    tokens = [int(t) for t in rng.integers(0, VOCAB, T)]
    files["text_small"] = os.path.join(args.tmp, "text.txt")
    with open(files["text"], encoding="utf-8") as src, \
            open(files["text_small"], "w", encoding="utf-8") as dst:
        dst.write(src.read(4000))
    ids = harness.wkvq_tokenize(args.wkvq, ["--tokenizer", files["tok"], "--text-file",
                                            files["text_small"]], bos=True)
    if len(ids) < 2 * BASE["max_position_embeddings"]:
        raise harness.TestFailure(f"{len(ids)} tokens: too few for {WINDOWS} windows of {CTX}")
    files["windows"] = [ids[w * CTX:(w + 1) * CTX] for w in range(WINDOWS)]
    files["ids"] = ids
    families = {name: check_family(args, chk, name, rng, tokens) for name in FAMILIES}
    for name, (d, cfg, tensors) in families.items():
        check_quantized(args, chk, name, d, cfg, tensors, tokens, files)
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
