#!/usr/bin/python3
"""The output head's storage through the CLI (--head, model/output_head.h), on stories260K (a tied
head):

1. `wkvq quantize --method rtn` keeps the head in fp16 by default: model.safetensors holds
   lm_head.weight as F16 (vocab, dim) and config.json says tie_word_embeddings false; with
   --head f32 the head stays tied to the f32 embeddings (no lm_head.weight).
2. A quantized directory runs its head in fp16 unless --head f32: the f32 directory gives exactly
   the PPL of the fp16 one (both round the same f32 head to fp16, and matmul_f16 is defined as
   matmul_f32 of the converted weights); with --head f32 the decode PPL moves by less than
   HEAD_RTOL: fp16 keeps 11 bits of each weight, a relative error of 2^-12 per weight.
3. A bad --head value is refused with a message naming the option.
"""
import json
import os
import shutil
import struct

import harness
from harness import Checker

HEAD_RTOL = 1e-3


def safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def test(args):
    sh = args.shared
    model = f"{sh}/models/stories260K/stories260K.bin"
    text = f"{sh}/data/tinystories/test.txt"
    harness.require_files(model, text)
    shutil.rmtree(args.tmp, ignore_errors=True)
    os.makedirs(args.tmp)
    d16, d32 = os.path.join(args.tmp, "f16"), os.path.join(args.tmp, "f32")
    base = ["quantize", "--method", "rtn", "--model", model, "--wbits", 4, "--kvbits", 4]
    harness.run_wkvq(args.wkvq, [*base, "--out", d16])
    harness.run_wkvq(args.wkvq, [*base, "--out", d32, "--head", "f32"])

    c = Checker()
    h16 = safetensors_header(os.path.join(d16, "model.safetensors"))
    h32 = safetensors_header(os.path.join(d32, "model.safetensors"))
    emb = h16["model.embed_tokens.weight"]["shape"]
    head = h16.get("lm_head.weight", {})
    c.check(head.get("dtype") == "F16" and head.get("shape") == emb,
            f"default: lm_head.weight F16 {emb} (found {head.get('dtype')} {head.get('shape')})")
    with open(os.path.join(d16, "config.json")) as f16c, \
            open(os.path.join(d32, "config.json")) as f32c:
        tie16, tie32 = (json.load(f)["tie_word_embeddings"] for f in (f16c, f32c))
    c.check(tie16 is False, f"default: tie_word_embeddings false (found {tie16})")
    c.check("lm_head.weight" not in h32 and tie32 is True,
            f"--head f32: the head stays tied (lm_head present: {'lm_head.weight' in h32}, "
            f"tie_word_embeddings {tie32})")

    p16 = harness.wkvq_decode_ppl(args.wkvq, ["--model", d16], text)
    p32 = harness.wkvq_decode_ppl(args.wkvq, ["--model", d32, "--head", "f32"], text)
    p32_default = harness.wkvq_decode_ppl(args.wkvq, ["--model", d32], text)
    c.check(p32_default == p16,
            f"the f32 directory runs its head in fp16 by default: PPL {p32_default!r} equals "
            f"the fp16 directory's {p16!r}")
    c.check(abs(p16 / p32 - 1) < HEAD_RTOL,
            f"fp16 head vs f32 head: decode PPL {p16:.5f} vs {p32:.5f} (bound {HEAD_RTOL})")

    cp = harness.run_wkvq(args.wkvq, ["ppl", "--model", model, "--text", text, "--head", "bf16"],
                          check=False)
    c.check(cp.returncode != 0 and b"--head" in cp.stderr,
            f"--head bf16 rejected naming --head: {cp.stderr.decode().strip()[-200:]}")
    c.finish()


if __name__ == "__main__":
    harness.main(test)
