#!/usr/bin/python3
"""wkvq logits (prefill and --decode) vs the float64 numpy reference forward.

Models: stories260K (llama2.c .bin, interleaved RoPE, tied head) and wkvq-ref-6m (HF directory,
rotate-half RoPE, GQA, untied head). Inputs: real text (64 tokens, and the full 512-token
context) and seeded random ids (64). Tolerance: harness.f32_logit_tolerance (derived there).
"""
import os

import numpy as np

import harness
from harness import Checker, TestFailure
from reference.bpe import Llama2cTokenizer
from reference.formats import read_hf_dir, read_llama2c
from reference.model import forward
from reference.spm import approx_encode

SEED = 20240607


def describe_diff(diff: np.ndarray, tol: float) -> str:
    """Where a (T, V) |difference| is largest, and the first position above tol."""
    per_pos = diff.max(axis=1)
    t, v = np.unravel_index(int(np.argmax(diff)), diff.shape)
    over = np.nonzero(per_pos > tol)[0]
    s = f"max |d| = {diff.max():.3g} at position {t}, vocab {v}"
    if over.size:
        s += (f"; {over.size}/{len(per_pos)} positions above tol, first at position {over[0]} "
              f"(|d| there {per_pos[over[0]]:.3g}; position 0: {per_pos[0]:.3g})")
    return s


def compare_case(args, chk: Checker, name: str, model_path: str, model, tokens) -> None:
    tokens = [int(t) for t in tokens]
    print(f"\n[{name}] {len(tokens)} tokens, first {tokens[:10]}")
    ref = forward(model, np.array(tokens))  # float64
    tol = harness.f32_logit_tolerance(model, tokens)
    out = os.path.join(args.tmp, name.replace(" ", "_") + ".npy")
    pre = harness.wkvq_logits(args.wkvq, model_path, tokens, out)
    dec = harness.wkvq_logits(args.wkvq, model_path, tokens, out.replace(".npy", "_dec.npy"),
                              decode=True)
    shape = (len(tokens), model.config.vocab_size)
    if not chk.check(pre.shape == shape and dec.shape == shape,
                     f"{name}: shapes prefill {pre.shape}, decode {dec.shape}, expected {shape}"):
        return
    for label, got in (("prefill", pre), ("decode", dec)):
        if not chk.check(bool(np.all(np.isfinite(got))), f"{name}: {label} logits finite"):
            continue
        d = np.abs(got.astype(np.float64) - ref)
        agree = float(np.mean(np.argmax(got, axis=1) == np.argmax(ref, axis=1)))
        chk.check(d.max() <= tol,
                  f"{name}: {label} vs f64 reference: {describe_diff(d, tol)}; tol {tol:.3g} "
                  f"(measured/tol = {d.max() / tol:.3f}); argmax agreement {agree:.3f}")
    # Both are within tol of the reference, so within 2 tol of each other (triangle inequality).
    d = np.abs(dec.astype(np.float64) - pre.astype(np.float64))
    chk.check(d.max() <= 2 * tol,
              f"{name}: decode vs prefill: {describe_diff(d, 2 * tol)}; tol 2*{tol:.3g} "
              f"(measured/tol = {d.max() / (2 * tol):.3f})")


def run(args) -> None:
    s260 = os.path.join(args.shared, "models", "stories260K")
    bin_path = os.path.join(s260, "stories260K.bin")
    tok_path = os.path.join(s260, "tok512.bin")
    ref6m = os.path.join(args.shared, "models", "wkvq-ref-6m")
    text_path = os.path.join(args.shared, "data", "tinystories", "test.txt")
    harness.require_files(bin_path, tok_path, text_path, os.path.join(ref6m, "config.json"),
                          os.path.join(ref6m, "model.safetensors"),
                          os.path.join(ref6m, "tokenizer.model"),
                          os.path.join(ref6m, "calib.txt"))
    chk = Checker()
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}")

    m260, _ = read_llama2c(bin_path)
    tok = Llama2cTokenizer.load(tok_path, m260.config.vocab_size)
    with open(text_path, encoding="utf-8") as fh:
        story = fh.read(20000)
    story_ids = tok.encode(story, bos=True)
    if len(story_ids) < 512:
        raise TestFailure("not enough text for 512 tokens")
    compare_case(args, chk, "stories260K text64", bin_path, m260, story_ids[:64])
    compare_case(args, chk, "stories260K random64", bin_path, m260,
                 rng.integers(0, m260.config.vocab_size, 64))
    compare_case(args, chk, "stories260K text512", bin_path, m260, story_ids[:512])

    m6, _ = read_hf_dir(ref6m)
    with open(os.path.join(ref6m, "calib.txt"), encoding="utf-8") as fh:
        calib = fh.read(20000)
    ids6 = approx_encode(os.path.join(ref6m, "tokenizer.model"), calib, bos=True)
    compare_case(args, chk, "wkvq-ref-6m text64", ref6m, m6, ids6[:64])
    compare_case(args, chk, "wkvq-ref-6m random64", ref6m, m6,
                 rng.integers(0, m6.config.vocab_size, 64))
    compare_case(args, chk, "wkvq-ref-6m text512", ref6m, m6, ids6[:m6.config.seq_len])
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
