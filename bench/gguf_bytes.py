"""Bytes a llama.cpp decode step reads from a GGUF model: its tensors, as the file lays them out.

bench/vs_llamacpp.py prints each tool's decode rate times the bytes it reads per token (GB/s):
where both tools stream their weights at the speed the memory gives, the ratio of their tok/s is
the ratio of their bytes, whatever the kernels. wkvq reports its own bytes (`wkvq bench --json`,
decode_bytes_per_token); this module counts llama.cpp's from the GGUF header (the public format:
github.com/ggml-org/ggml/blob/master/docs/gguf.md): every tensor once per token except the token
embedding table, of which one row is read, plus the KV cache at the mean cache length.

A tensor's size is its element count times its type's block bytes over block elements (the
table below); a type not in the table is sized by the distance to the next tensor's offset (at
most alignment - 1 bytes of padding too many).
"""

import math
import os
import struct

# ggml type id -> (bytes per block, elements per block), as ggml defines them.
TYPE_SIZES = {
    0: (4, 1),  # F32
    1: (2, 1),  # F16
    2: (18, 32),  # Q4_0
    3: (20, 32),  # Q4_1
    6: (22, 32),  # Q5_0
    7: (24, 32),  # Q5_1
    8: (34, 32),  # Q8_0
    10: (84, 256),  # Q2_K
    11: (110, 256),  # Q3_K
    12: (144, 256),  # Q4_K
    13: (176, 256),  # Q5_K
    14: (210, 256),  # Q6_K
    15: (292, 256),  # Q8_K
    30: (2, 1),  # BF16
}
# KV cache types by llama.cpp's -ctk/-ctv names: bytes per element.
KV_TYPE_BYTES = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32,
                 "q4_1": 20 / 32, "q5_0": 22 / 32, "q5_1": 24 / 32}

_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


class GgufError(ValueError):
    pass


class _Reader:
    def __init__(self, data, path):
        self.data, self.path, self.at = data, path, 0

    def take(self, n):
        if self.at + n > len(self.data):
            raise GgufError(f"{self.path}: the GGUF header ends after {len(self.data)} bytes, "
                            f"{self.at + n} needed: a truncated file? Remake it with llama-quantize")
        b = self.data[self.at:self.at + n]
        self.at += n
        return b

    def unpack(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self):
        return self.take(self.unpack("Q")).decode("utf-8", errors="replace")

    def value(self, vtype):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item, count = self.unpack("I"), self.unpack("Q")
            return [self.value(item) for _ in range(count)]
        raise GgufError(f"{self.path}: metadata value type {vtype} at byte {self.at - 4}; "
                        "expected 0-12 (the GGUF spec's types)")


def read_tensors(path):
    """{name: bytes} of the tensors of the GGUF file at path (version 2 or 3)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(min(size, 64 << 20))  # the header: metadata and tensor infos
    r = _Reader(head, path)
    if r.take(4) != b"GGUF":
        raise GgufError(f"{path}: not a GGUF file (expected the magic 'GGUF' at byte 0)")
    version = r.unpack("I")
    if version not in (2, 3):
        raise GgufError(f"{path}: GGUF version {version}; expected 2 or 3")
    n_tensors, n_kv = r.unpack("Q"), r.unpack("Q")
    alignment = 32
    for _ in range(n_kv):
        key = r.string()
        value = r.value(r.unpack("I"))
        if key == "general.alignment":
            alignment = value
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.unpack("Q") for _ in range(r.unpack("I"))]
        ttype, offset = r.unpack("I"), r.unpack("Q")
        infos.append((name, dims, ttype, offset))
    data_start = (r.at + alignment - 1) // alignment * alignment
    ends = sorted(o for _, _, _, o in infos) + [size - data_start]
    out = {}
    for name, dims, ttype, offset in infos:
        if ttype in TYPE_SIZES:
            block_bytes, block = TYPE_SIZES[ttype]
            out[name] = math.prod(dims) // block * block_bytes
        else:
            out[name] = min(e for e in ends if e > offset) - offset
        if data_start + offset + out[name] > size:
            raise GgufError(f"{path}: tensor {name} ends at byte {data_start + offset + out[name]}, "
                            f"past the file's {size}: a truncated file?")
    return out


def decode_bytes_per_token(path, config, kv_type, cache_len):
    """Bytes one llama.cpp decode step reads: every tensor of the GGUF but the token embedding
    table (one row of it), and K and V of every layer at cache_len positions in kv_type."""
    tensors = read_tensors(path)
    weights = sum(tensors.values())
    if "output.weight" in tensors:  # else the head is the embedding table, read whole
        embd = tensors.get("token_embd.weight", 0)
        weights -= embd - embd // config["vocab_size"]
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    kv_dim = config.get("num_key_value_heads", heads) * head_dim
    if kv_type not in KV_TYPE_BYTES:
        raise GgufError(f"KV type {kv_type!r}: expected one of {', '.join(KV_TYPE_BYTES)}")
    kv = 2 * config["num_hidden_layers"] * kv_dim * KV_TYPE_BYTES[kv_type] * cache_len
    return weights + kv
