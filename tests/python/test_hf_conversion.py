#!/usr/bin/python3
"""stories260K converted to Hugging Face layout (by this test's own writer) must give the same
logits in wkvq as the llama2.c file.

Conversion: config.json (LlamaForCausalLM) + safetensors with HF names; each head's q_proj and
k_proj rows are permuted from llama2.c's interleaved RoPE pairs to HF's rotate-half pairs
(new row j = old row 2j, new row j + hd/2 = old row 2j + 1), which makes the two RoPE
conventions the same function. Variants: F32 one file (tied head), F32 in 2 shards with
model.safetensors.index.json, F32 with an explicit lm_head (tie_word_embeddings false), F16 and
BF16 (round to nearest even; the reference uses the identically rounded weights).
Tolerance: harness.f32_logit_tolerance (derived there); .bin vs F32 HF differ only in the order
of the head_dim-term q.k sums, so they must agree within the same bound.
"""
import os
import shutil

import numpy as np
import torch

import harness
from harness import Checker, TestFailure
from reference.bpe import Llama2cTokenizer
from reference.formats import (llama2c_to_rotate_half, read_hf_dir, read_llama2c, round_to_bf16,
                               round_to_f16, write_hf_dir)
from reference.model import forward

SEED = 7
VARIANTS = [
    # (directory name, dtype, shards, tied)
    ("hf_f32", "F32", 1, True),
    ("hf_f32_sharded", "F32", 2, True),
    ("hf_f32_untied", "F32", 1, False),
    ("hf_f16", "F16", 1, True),
    ("hf_bf16", "BF16", 1, True),
]
ROUND = {"F32": lambda a: np.asarray(a, dtype=np.float32), "F16": round_to_f16,
         "BF16": round_to_bf16}


def check_rounding(chk: Checker) -> None:
    """Our f16/bf16 rounding must be PyTorch's (round to nearest, ties to even)."""
    rng = np.random.default_rng(SEED)
    x = np.concatenate([rng.standard_normal(100000).astype(np.float32) * 0.05,
                        np.float32([0.0, -0.0, 1.0, 65504.0, 1e-8, 3.0e-5, -2.5])])
    # Values exactly halfway between two bf16 numbers, both parities of the kept bit.
    halfway = (np.arange(1, 65, dtype=np.uint32) << 16 | 0x8000).view(np.float32)
    x = np.concatenate([x, halfway, -halfway])
    tb = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    th = torch.from_numpy(x).to(torch.float16).to(torch.float32).numpy()
    chk.check(np.array_equal(round_to_bf16(x), tb), "bf16 rounding equals torch's")
    chk.check(np.array_equal(round_to_f16(x), th), "f16 rounding equals torch's")


def check_written(chk: Checker, path: str, expect, dtype: str, tied: bool) -> None:
    """Reads a written directory back and compares every tensor with the intended values."""
    got, dtypes = read_hf_dir(path)
    ok = set(dtypes.values()) == {dtype} and got.config.tied_output == tied
    a, b = got.weights, expect.weights
    ok &= np.array_equal(a.emb, b.emb) and np.array_equal(a.final_norm, b.final_norm)
    ok &= np.array_equal(a.wcls, b.wcls)
    for la, lb in zip(a.layers, b.layers):
        for n in la.NAMES:
            ok &= np.array_equal(getattr(la, n), getattr(lb, n))
    chk.check(bool(ok), f"{os.path.basename(path)}: read back equals what was written "
                        f"({len(dtypes)} tensors, dtype {dtype}, tied {tied})")


def run(args) -> None:
    d = os.path.join(args.shared, "models", "stories260K")
    bin_path, tok_path = os.path.join(d, "stories260K.bin"), os.path.join(d, "tok512.bin")
    text_path = os.path.join(args.shared, "data", "tinystories", "test.txt")
    harness.require_files(bin_path, tok_path, text_path)
    chk = Checker()
    check_rounding(chk)

    m, _ = read_llama2c(bin_path)
    rh = llama2c_to_rotate_half(m)
    tok = Llama2cTokenizer.load(tok_path, m.config.vocab_size)
    with open(text_path, encoding="utf-8") as fh:
        text_ids = tok.encode(fh.read(4000), bos=True)[:64]
    rand_ids = np.random.default_rng(SEED).integers(0, m.config.vocab_size, 64).tolist()
    inputs = {"text64": text_ids, "random64": rand_ids}
    print(f"seed {SEED}; inputs: text64 {text_ids[:8]}..., random64 {rand_ids[:8]}...")

    # The permutation itself, in float64: the rotate-half model is the same function.
    for name, ids in inputs.items():
        dd = np.abs(forward(m, np.array(ids)) - forward(rh, np.array(ids))).max()
        chk.check(dd < 1e-10, f"python: interleaved .bin vs permuted rotate-half model, {name}: "
                              f"max |d| = {dd:.3g} (float64, < 1e-10)")

    # Logits of the llama2.c file from wkvq, and the float64 reference.
    bin_logits, ref, tol = {}, {}, {}
    for name, ids in inputs.items():
        bin_logits[name] = harness.wkvq_logits(args.wkvq, bin_path, ids,
                                               os.path.join(args.tmp, f"bin_{name}.npy"))
        ref[name] = forward(m, np.array(ids))
        tol[name] = harness.f32_logit_tolerance(m, ids)

    for dirname, dtype, shards, tied in VARIANTS:
        path = os.path.join(args.tmp, dirname)
        shutil.rmtree(path, ignore_errors=True)
        rounded = rh.with_weights(ROUND[dtype])
        write_hf_dir(path, rounded, dtype=dtype, shards=shards, tied=tied)
        print(f"\n[{dirname}] {dtype}, {shards} file(s), tied {tied}: {sorted(os.listdir(path))}")
        check_written(chk, path, rounded, dtype, tied)
        for name, ids in inputs.items():
            out = harness.wkvq_logits(args.wkvq, path, ids, os.path.join(args.tmp,
                                                                         f"{dirname}_{name}.npy"))
            if not chk.check(out.shape == bin_logits[name].shape,
                             f"{dirname} {name}: shape {out.shape}"):
                continue
            if dtype == "F32":
                dd = np.abs(out.astype(np.float64) - bin_logits[name]).max()
                chk.check(dd <= tol[name], f"{dirname} {name}: wkvq HF vs wkvq .bin: max |d| = "
                                           f"{dd:.3g}, tol {tol[name]:.3g} "
                                           f"(measured/tol = {dd / tol[name]:.3f})")
                dr = np.abs(out.astype(np.float64) - ref[name]).max()
                chk.check(dr <= tol[name], f"{dirname} {name}: wkvq HF vs f64 reference: "
                                           f"max |d| = {dr:.3g}, tol {tol[name]:.3g}")
            else:
                ref_r = forward(rounded, np.array(ids))
                t = harness.f32_logit_tolerance(rounded, ids, verbose=False)
                dr = np.abs(out.astype(np.float64) - ref_r).max()
                du = np.abs(out.astype(np.float64) - ref[name]).max()
                chk.check(dr <= t, f"{dirname} {name}: wkvq vs f64 reference with {dtype}-rounded "
                                   f"weights: max |d| = {dr:.3g}, tol {t:.3g} "
                                   f"(measured/tol = {dr / t:.3f}); vs unrounded f32 weights "
                                   f"{du:.3g} (= {du / t:.0f} tol: the rounding is visible)")
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
