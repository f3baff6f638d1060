#!/usr/bin/python3
"""bench/gguf_bytes.py: the bytes a llama.cpp decode step reads, counted from a GGUF header.

bench/vs_llamacpp.py divides llama.cpp's tok/s by these bytes to print its GB/s beside wkvq's,
so a wrong count would misstate where each tool stands against the memory's speed. The GGUF
files here are written by this test from the public format (ggml's docs/gguf.md: magic, version,
counts, typed metadata, tensor infos, aligned data), with metadata of every kind the reader must
step over (strings, nested arrays, 64-bit and float values) and a custom alignment:

  * tensor sizes: element counts times the block bytes of F32, F16, Q4_0, Q6_K (ggml's sizes:
    4, 2, 18 per 32, 210 per 256), and an unknown type sized by the next tensor's offset;
  * decode bytes per token: every tensor but the token embedding (one row of it) plus K and V at
    the cache length in the KV type's bytes; with no output.weight (tied head) the embedding is
    read whole;
  * a truncated header, a wrong magic, a version 1 file and a tensor running past the end of the
    file are refused with a GgufError naming the file.

CTest runs it as: test_gguf_bytes.py --wkvq BIN --shared DIR --tmp DIR (the binary and shared
files are not used); exit 0 pass, 1 fail.
"""
import os
import struct
import sys

import harness
from harness import Checker

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import gguf_bytes  # noqa: E402  (bench/ is not a package)

ALIGN = 64


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, vtype, payload):
    return gstr(key) + struct.pack("<I", vtype) + payload


def write_gguf(path, tensors, version=3, magic=b"GGUF", cut=None):
    """tensors: (name, dims, ggml type, data bytes). Writes the header, then each tensor's data at
    an ALIGN-aligned offset; cut: keep only that many bytes."""
    meta = [
        kv("general.architecture", 8, gstr("llama")),
        kv("general.alignment", 4, struct.pack("<I", ALIGN)),
        kv("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)),
        kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + gstr("a") + gstr("b") + gstr("c")),
        kv("nested", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 10, 1) + struct.pack("<Q", 7)
           + struct.pack("<IQ", 12, 1) + struct.pack("<d", 0.5)),
        kv("flag", 7, struct.pack("<?", True)),
    ]
    infos, offset = [], 0
    for name, dims, ttype, data in tensors:
        infos.append(gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
                     + struct.pack("<IQ", ttype, offset))
        offset += (len(data) + ALIGN - 1) // ALIGN * ALIGN
    head = magic + struct.pack("<IQQ", version, len(tensors), len(meta)) + b"".join(meta) + b"".join(infos)
    blob = head + b"\0" * (-len(head) % ALIGN)
    for _, _, _, data in tensors:
        blob += data + b"\0" * (-len(data) % ALIGN)
    with open(path, "wb") as f:
        f.write(blob if cut is None else blob[:cut])


def refused(ck, path, fragment, what):
    try:
        gguf_bytes.read_tensors(path)
    except gguf_bytes.GgufError as e:
        ck.check(path in str(e) and fragment in str(e), f"{what}: refused ({e})")
        return
    ck.check(False, f"{what}: refused (it was read)")


def run(args):
    ck = Checker()
    vocab, dim, hidden = 64, 256, 512
    cfg = {"vocab_size": vocab, "hidden_size": dim, "num_attention_heads": 4, "num_key_value_heads": 2,
           "num_hidden_layers": 1}
    q4 = lambda n: b"\x11" * (n // 32 * 18)  # noqa: E731
    tensors = [
        ("token_embd.weight", [dim, vocab], 2, q4(dim * vocab)),
        ("blk.0.attn_norm.weight", [dim], 0, b"\0" * (4 * dim)),
        ("blk.0.attn_q.weight", [dim, dim], 2, q4(dim * dim)),
        ("blk.0.ffn_up.weight", [dim, hidden], 2, q4(dim * hidden)),
        ("blk.0.odd.weight", [dim], 99, b"\0" * 100),  # unknown type: sized by offsets
        ("blk.0.ffn_down.weight", [hidden, dim], 1, b"\0" * (2 * dim * hidden)),
        ("output.weight", [dim, vocab], 14, b"\0" * (dim * vocab // 256 * 210)),
    ]
    path = os.path.join(args.tmp, "shape.gguf")
    write_gguf(path, tensors)
    got = gguf_bytes.read_tensors(path)
    want = {name: len(data) for name, _, _, data in tensors}
    want["blk.0.odd.weight"] = (100 + ALIGN - 1) // ALIGN * ALIGN  # padding counted: at most ALIGN - 1
    for name in want:
        ck.check(got.get(name) == want[name], f"{name}: {got.get(name)} bytes, expected {want[name]}")
    ck.check(len(got) == len(tensors), f"{len(got)} tensors read, {len(tensors)} written")

    read = sum(want.values()) - want["token_embd.weight"] + want["token_embd.weight"] // vocab
    for kv_type, per in (("f16", 2.0), ("q4_0", 18 / 32), ("q8_0", 34 / 32)):
        b = gguf_bytes.decode_bytes_per_token(path, cfg, kv_type, 100)
        expected = read + 2 * 1 * (2 * dim // 4) * per * 100
        ck.check(abs(b - expected) < 1e-6, f"decode bytes, {kv_type} KV at 100: {b}, expected {expected}")

    tied = os.path.join(args.tmp, "tied.gguf")
    write_gguf(tied, [t for t in tensors if t[0] != "output.weight"])
    b = gguf_bytes.decode_bytes_per_token(tied, cfg, "f16", 0)
    expected = sum(v for k, v in want.items() if k != "output.weight")
    ck.check(b == expected, f"tied head: the embedding table read whole ({b}, expected {expected})")

    for i, (what, kwargs, fragment) in enumerate([
            ("truncated header", {"cut": 100}, "truncated"),
            ("wrong magic", {"magic": b"GGUX"}, "not a GGUF file"),
            ("version 1", {"version": 1}, "version 1"),
            ("data cut short", {"cut": os.path.getsize(path) - 4000}, "past the file's")]):
        bad = os.path.join(args.tmp, f"bad_{i}.gguf")
        write_gguf(bad, tensors, **kwargs)
        refused(ck, bad, fragment, what)
    try:
        gguf_bytes.decode_bytes_per_token(path, cfg, "q3_x", 1)
        ck.check(False, "an unknown KV type is refused")
    except gguf_bytes.GgufError as e:
        ck.check("q3_x" in str(e), f"an unknown KV type is refused ({e})")
    ck.finish()


if __name__ == "__main__":
    harness.main(run)
