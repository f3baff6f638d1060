#!/usr/bin/env python3
"""Writes a GGUF file of a Llama shape with seeded random F16 weights, for speed comparisons
with llama.cpp (bench/vs_llamacpp.sh). Timing does not depend on the weights' values, only on
the shape, so the model is the shape wkvq's `bench --shape-file` runs: the same HF config.json
keys are read here.

The vocabulary is a placeholder of the configured size in SentencePiece form (<unk>, <s>, </s>,
the 256 byte tokens, then "▁t<N>"), so llama.cpp's tools load it and any text tokenizes (to byte
tokens). Needs numpy and the `gguf` Python package of the llama.cpp checkout:
    PYTHONPATH=$LLAMA_CPP/gguf-py python3 bench/make_gguf.py --config shape.json --out model-f16.gguf
Quantize it with llama.cpp's own tool afterwards (llama-quantize model-f16.gguf model-q4_0.gguf Q4_0).
"""

import argparse
import json
import math
import sys

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("make_gguf: the `gguf` package was not found; run with "
             "PYTHONPATH=<llama.cpp checkout>/gguf-py")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="HF config.json of the shape (LlamaForCausalLM keys)")
    p.add_argument("--out", required=True, help="GGUF file to write")
    p.add_argument("--seed", type=int, default=1, help="seed of the random weights")
    return p.parse_args()


def read_shape(path):
    with open(path, encoding="utf-8") as f:
        c = json.load(f)
    need = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "vocab_size", "max_position_embeddings"]
    missing = [k for k in need if k not in c]
    if missing:
        sys.exit(f"make_gguf: {path} lacks {', '.join(missing)}; expected an HF Llama config.json")
    c.setdefault("num_key_value_heads", c["num_attention_heads"])
    c.setdefault("rms_norm_eps", 1e-5)
    c.setdefault("rope_theta", 10000.0)
    c.setdefault("head_dim", c["hidden_size"] // c["num_attention_heads"])
    if c["vocab_size"] < 260:
        sys.exit(f"make_gguf: vocab_size {c['vocab_size']} is below the 259 placeholder tokens")
    return c


def add_vocab(w, n):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    tokens += [f"\u2581t{i}" for i in range(n - len(tokens))]
    types += [gguf.TokenType.NORMAL] * (n - len(types))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores([-float(i) for i in range(n)])
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def main():
    a = parse_args()
    c = read_shape(a.config)
    rng = np.random.default_rng(a.seed)
    dim, hidden, nl = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    nh, nkv, hd, vocab = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["vocab_size"]

    def uniform(shape, center, half):
        x = rng.random(shape, dtype=np.float32)
        return (center + half * (2.0 * x - 1.0)).astype(np.float16)

    def linear(out, inp):
        return uniform((out, inp), 0.0, 1.0 / math.sqrt(inp))

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("random " + a.config)
    w.add_context_length(c["max_position_embeddings"])
    w.add_embedding_length(dim)
    w.add_block_count(nl)
    w.add_feed_forward_length(hidden)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(hd)
    w.add_layer_norm_rms_eps(float(c["rms_norm_eps"]))
    w.add_rope_freq_base(float(c["rope_theta"]))
    if hd * nh != dim:
        w.add_key_length(hd)
        w.add_value_length(hd)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    add_vocab(w, vocab)

    w.add_tensor("token_embd.weight", uniform((vocab, dim), 0.0, 1.0))
    for i in range(nl):
        w.add_tensor(f"blk.{i}.attn_norm.weight", uniform((dim,), 1.0, 0.05).astype(np.float32))
        w.add_tensor(f"blk.{i}.attn_q.weight", linear(nh * hd, dim))
        w.add_tensor(f"blk.{i}.attn_k.weight", linear(nkv * hd, dim))
        w.add_tensor(f"blk.{i}.attn_v.weight", linear(nkv * hd, dim))
        w.add_tensor(f"blk.{i}.attn_output.weight", linear(dim, nh * hd))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", uniform((dim,), 1.0, 0.05).astype(np.float32))
        w.add_tensor(f"blk.{i}.ffn_gate.weight", linear(hidden, dim))
        w.add_tensor(f"blk.{i}.ffn_up.weight", linear(hidden, dim))
        w.add_tensor(f"blk.{i}.ffn_down.weight", linear(dim, hidden))
    w.add_tensor("output_norm.weight", uniform((dim,), 1.0, 0.05).astype(np.float32))
    w.add_tensor("output.weight", linear(vocab, dim))

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"make_gguf: wrote {a.out} ({nl} layers, dim {dim}, vocab {vocab})")


if __name__ == "__main__":
    main()
