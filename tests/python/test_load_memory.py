#!/usr/bin/python3
"""Memory on load: quantizing a BF16 checkpoint does not expand it to an f32
copy of every tensor.

A seeded random Llama-shape BF16 checkpoint (SHAPES["test"]: ~199 MB, under the 100M parameters
below which the load scans every weight; written here with numpy in the safetensors layout) is
quantized with `wkvq quantize --method rtn`; the peak RSS of that process, read by os.wait4 from
the kernel (independent of what wkvq prints), must stay within RSS_FACTOR x the checkpoint's
size + BINARY_BASELINE. Before the fix it was ~3.3x (an f32 copy of every tensor, 2x the file,
plus the touched file pages, 1x).

BINARY_BASELINE covers what any run holds whatever the model: the executable, libstdc++/OpenMP,
the tokenizer and thread stacks (measured 7.4 MiB for `wkvq quantize` of stories260K; 64 MiB
leaves room for other libc/allocator versions without letting a whole f32 copy, 2x the file,
through). Measured here: 1.43x with the fix, 3.46x before it (f301b03).

The same run checks the quantized directory reloads (`wkvq inspect`): the memory saving must not
cost the result. Run directly, the module also writes bigger checkpoints for measurement:
    /usr/bin/python3 tests/python/test_load_memory.py --write DIR --shape tinyllama
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np

import harness
from harness import Checker

RSS_FACTOR = 1.5
BINARY_BASELINE = 64 * 1024 * 1024

# hidden, intermediate, layers, heads, kv heads, vocab (the Llama-2 tokenizer's 32000)
SHAPES = {
    "test": (768, 2048, 8, 12, 4, 32000),
    "tinyllama": (2048, 5632, 22, 32, 4, 32000),
}


def tensor_list(shape):
    dim, hidden, layers, heads, kv_heads, vocab = shape
    kv = dim // heads * kv_heads
    out = [("model.embed_tokens.weight", (vocab, dim))]
    for l in range(layers):
        p = f"model.layers.{l}."
        out += [(p + "input_layernorm.weight", (dim,)),
                (p + "self_attn.q_proj.weight", (dim, dim)),
                (p + "self_attn.k_proj.weight", (kv, dim)),
                (p + "self_attn.v_proj.weight", (kv, dim)),
                (p + "self_attn.o_proj.weight", (dim, dim)),
                (p + "post_attention_layernorm.weight", (dim,)),
                (p + "mlp.gate_proj.weight", (hidden, dim)),
                (p + "mlp.up_proj.weight", (hidden, dim)),
                (p + "mlp.down_proj.weight", (dim, hidden))]
    out += [("model.norm.weight", (dim,)), ("lm_head.weight", (vocab, dim))]
    return out


def bf16_bits(rng, shape):
    """Random BF16 values (the upper half of f32 normals), scaled like an initialised linear:
    norms near 1, matrices N(0, 1/in)."""
    if len(shape) == 1:
        a = 1.0 + 0.1 * rng.standard_normal(shape, dtype=np.float32)
    else:
        a = rng.standard_normal(shape, dtype=np.float32) * np.float32(shape[1] ** -0.5)
    return (a.view(np.uint32) >> 16).astype(np.uint16)


def write_checkpoint(path, shape, tokenizer, seed=0):
    """A Hugging Face Llama directory: config.json, model.safetensors (BF16), tokenizer.model."""
    os.makedirs(path, exist_ok=True)
    dim, hidden, layers, heads, kv_heads, vocab = shape
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
              "intermediate_size": hidden, "num_hidden_layers": layers,
              "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
              "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "tie_word_embeddings": False, "torch_dtype": "bfloat16", "bos_token_id": 1,
              "eos_token_id": 2}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    tensors = tensor_list(shape)
    header, offset = {}, 0
    for name, s in tensors:
        n = int(np.prod(s)) * 2
        header[name] = {"dtype": "BF16", "shape": list(s), "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    rng = np.random.default_rng(seed)
    with open(os.path.join(path, "model.safetensors"), "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for name, s in tensors:
            f.write(bf16_bits(rng, s).tobytes())
    shutil.copy(tokenizer, os.path.join(path, "tokenizer.model"))
    return os.path.getsize(os.path.join(path, "model.safetensors"))


def peak_rss_of(cmd, log_path):
    """Runs cmd; returns (exit status, peak RSS in bytes of that process) from os.wait4."""
    with open(log_path, "wb") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, usage.ru_maxrss * 1024  # Linux: KiB


def test(args):
    tokenizer = os.path.join(args.shared, "models", "llama2-tokenizer", "tokenizer.model")
    harness.require_files(tokenizer)
    harness.require_binary(args.wkvq)
    shutil.rmtree(args.tmp, ignore_errors=True)
    model, out = os.path.join(args.tmp, "model"), os.path.join(args.tmp, "q")
    size = write_checkpoint(model, SHAPES["test"], tokenizer)
    log = os.path.join(args.tmp, "quantize.log")
    rc, peak = peak_rss_of([args.wkvq, "quantize", "--method", "rtn", "--model", model,
                            "--out", out, "--threads", "2"], log)
    with open(log, errors="replace") as f:
        text = f.read()
    c = Checker()
    c.check(rc == 0, f"quantize --method rtn exits 0 (found {rc}):\n{text[-2000:]}")
    limit = RSS_FACTOR * size + BINARY_BASELINE
    c.check(peak <= limit,
            f"peak RSS {peak / 2**20:.1f} MiB <= {RSS_FACTOR} x checkpoint {size / 2**20:.1f} MiB "
            f"+ {BINARY_BASELINE / 2**20:.0f} MiB = {limit / 2**20:.1f} MiB "
            f"({peak / size:.2f}x the file)")
    c.check("peak RSS" in text, "quantize prints its peak RSS")
    if rc == 0:
        cp = harness.run_wkvq(args.wkvq, ["inspect", "--model", out], check=False)
        c.check(cp.returncode == 0, f"the quantized directory loads (inspect exit {cp.returncode})")
    shutil.rmtree(args.tmp, ignore_errors=True)
    c.finish()


def write_main(argv):
    """--write DIR --shape NAME [--tokenizer FILE]: only writes a checkpoint (for measurements)."""
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("--write", required=True)
    p.add_argument("--shape", choices=sorted(SHAPES), default="tinyllama")
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--tokenizer", default=os.path.normpath(
        os.path.join(here, "..", "..", "..", "shared", "models", "llama2-tokenizer",
                     "tokenizer.model")))
    a = p.parse_args(argv)
    size = write_checkpoint(a.write, SHAPES[a.shape], a.tokenizer)
    print(f"wrote {a.write}: model.safetensors {size} bytes")


if __name__ == "__main__":
    if "--write" in sys.argv:
        write_main(sys.argv[1:])
    else:
        harness.main(test)
