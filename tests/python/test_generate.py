#!/usr/bin/python3
"""Greedy generation of stories260K: `wkvq generate --temperature 0` vs the numpy reference.

The reference (reference/generate.py) follows llama2.c's generate loop: `steps` positions
including the prompt, argmax sampling, stop at BOS (or EOS), pieces printed through
wkvq's UTF-8 stream (reference/generate.py printed_text), then a newline. stdout must be byte-for-byte equal. The reference forward is float64,
the binary float32: the smallest top1-top2 logit gap of each run is printed so that a mismatch can
be told apart from a genuine near-tie (an f32 error is ~1e-5 in logits, see test_logits.py).
"""
import os

import harness
from harness import Checker
from reference.bpe import Llama2cTokenizer
from reference.formats import read_llama2c
from reference.generate import greedy_generate

CASES = [
    # (prompt, steps)
    ("", 200),
    ("Once upon a time, there was a little", 200),
    ("Tom and his dog went to the beach. The sun", 200),
    # Non-ASCII: the curly quotes are multi-byte pieces of tok512; the cup (U+2615) falls back
    # to three single-byte pieces (>= 0x80), which are joined into the character again (llama2.c's
    # safe_printf would drop them). (Prompts were picked with no top1-top2 logit gap below 1e-3.)
    ("Mia said \u201chello\u201d \u2615 to", 60),
]

# llama2.c's own output for `run stories260K.bin -z tok512.bin -t 0 -n 200` (empty prompt), as
# published in llama2.c's documentation and tests: an anchor for the reference itself.
LLAMA2C_PUBLISHED = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
    "She said, \"I want to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what "
    "to do.\"\n"
    "Lily didn't want to help her mom, so she").encode("utf-8")


def first_difference(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n if len(a) != len(b) else -1


def token_at_byte(pieces, offset: int) -> int:
    """Index (into the generated pieces) of the piece that covers byte `offset` of the text."""
    pos = 0
    for i, p in enumerate(pieces):
        if pos + len(p) > offset:
            return i
        pos += len(p)
    return len(pieces)


def run(args) -> None:
    d = os.path.join(args.shared, "models", "stories260K")
    bin_path, tok_path = os.path.join(d, "stories260K.bin"), os.path.join(d, "tok512.bin")
    harness.require_files(bin_path, tok_path)
    model, _ = read_llama2c(bin_path)
    tok = Llama2cTokenizer.load(tok_path, model.config.vocab_size)
    chk = Checker()
    for prompt, steps in CASES:
        print(f"\n[prompt {prompt!r}, steps {steps}]")
        ref = greedy_generate(model, tok, prompt, steps)
        expected = ref.text + b"\n"
        if prompt == "" and steps == 200:
            chk.check(ref.text == LLAMA2C_PUBLISHED,
                      "reference reproduces llama2.c's published 200-step greedy text")
        cp = harness.run_wkvq(args.wkvq, ["generate", "--model", bin_path, "--tokenizer",
                                          tok_path, "--prompt", prompt, "--steps", str(steps),
                                          "--temperature", "0"])
        got = cp.stdout
        stats = cp.stderr.decode("utf-8", "replace").strip().splitlines()
        print(f"  reference: {len(ref.tokens)} tokens, stop: {ref.stop}, smallest top1-top2 gap "
              f"{min(ref.margins) if ref.margins else float('nan'):.4f}; wkvq stderr: "
              f"{stats[-1] if stats else '(none)'}")
        if got == expected:
            chk.check(True, f"prompt {prompt!r}: identical text ({len(got)} bytes)")
            continue
        i = first_difference(got, expected)
        k = token_at_byte(ref.pieces, i)
        step = k + 1  # ref.tokens[k + 1] is the token whose piece is ref.pieces[k]
        gen_index = step - ref.sampled_from
        gap = ref.margins[gen_index] if 0 <= gen_index < len(ref.margins) else None
        where = (f"first difference at byte {i} (reference piece #{k}, position {step}, "
                 f"token {ref.tokens[step] if step < len(ref.tokens) else 'end'}"
                 + (f", reference top1-top2 gap there {gap:.4g}" if gap is not None else
                    ", inside the prompt") + ")")
        print("  --- reference ---")
        print(expected.decode("utf-8", "replace"))
        print("  --- wkvq ---")
        print(got.decode("utf-8", "replace"))
        print(f"  context: reference {expected[max(0, i - 30): i + 30]!r}")
        print(f"           wkvq      {got[max(0, i - 30): i + 30]!r}")
        chk.check(False, f"prompt {prompt!r}: text differs: {where}")
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
