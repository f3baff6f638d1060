#!/usr/bin/env python3
"""Side-by-side speed of wkvq and llama.cpp on one Llama shape, in interleaved A/B pairs.

Both tools run the same shape (bench/shapes/*.json; random weights: speed does not depend on
their values): wkvq through `wkvq bench --shape-file`, W4 g128 weights and its KV formats;
llama.cpp through a GGUF of the shape (bench/make_gguf.py, then llama-quantize to Q4_0) with
an f16 KV cache and with a q4_0 KV cache (flash attention on, as llama.cpp requires for a
quantized V cache). Cells:
  tg128        decode of 128 tokens from an empty context (llama-bench -p 0 -n 128)
  pp512        prefill of 512 tokens (llama-bench -p 512 -n 0)
  tg128@P      decode of 128 tokens right after a P-token prompt (llama-batched-bench
               -npp P -ntg 128 -npl 1: it times the 128 decode steps directly, as wkvq bench
               times its decode after its prefill; llama-bench's -pg only gives the combined
               rate, from which decode must be derived)
With --ik-llama-cpp, ik_llama.cpp (the CPU-optimised fork) runs the same cells as a second peer
with its fastest CPU settings: weights repacked at load into its interleaved rows (-rtr) and its
flash-attention kernels (on by default there); its llama-batched-bench prints only a table, whose
S_TG column is read. Every pair runs each variant once, back to back, in an order that rotates
from pair to pair; each wkvq run measures the machine's read bandwidth too (printed beside the pair's figures).
The summary prints, per cell and thread count, the median and range of each variant's tok/s and
the median of the per-pair ratios wkvq / peer (in bold where wkvq is level or ahead: >= 1.00);
for decode cells a second table gives each tool's GB/s: tok/s times the bytes it reads per token
(wkvq's own count; llama.cpp's from the GGUF's tensors and its KV type, bench/gguf_bytes.py).
Where both tools stream at what the memory gives, their tok/s ratio is their bytes ratio.

Example (see bench/README.md for building llama.cpp and the GGUF):
  python3 bench/vs_llamacpp.py --llama-cpp /work/llama.cpp/build/bin --gguf q4_0.gguf \\
      --pairs 5 --threads 1,2 --cells tg128,pp512,tg128@1024,tg128@4096
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_bytes  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--llama-cpp", required=True, help="folder holding llama-bench and llama-batched-bench")
    p.add_argument("--gguf", required=True, help="Q4_0 GGUF of the shape (bench/make_gguf.py + llama-quantize)")
    p.add_argument("--wkvq", default=os.path.join(HERE, "..", "build", "bin", "wkvq"), help="wkvq binary")
    p.add_argument("--shape", default=os.path.join(HERE, "shapes", "tinyllama-1.1b-ctx8k.json"),
                   help="HF config.json of the shape (the one the GGUF was made from)")
    p.add_argument("--pairs", type=int, default=5, help="interleaved pairs per cell (default 5)")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    p.add_argument("--cells", default="tg128,pp512,tg128@1024",
                   help="cells, comma-separated: tg128, pp512, tg128@P (default tg128,pp512,tg128@1024)")
    p.add_argument("--wkvq-kv", default="4",
                   help="wkvq --kvbits values, comma-separated (default 4; 16 adds the fp16 cache)")
    p.add_argument("--wkvq-decode-gemv", default="",
                   help="WKVQ_DECODE_GEMV values, comma-separated, one wkvq variant each (e.g. f32,int8: "
                        "the int8-activation decode GEMV beside the f32 one; default: the environment's)")
    p.add_argument("--wkvq-kv-scores", default="",
                   help="WKVQ_KV_SCORES values, comma-separated, one wkvq variant each (e.g. f32,int8: "
                        "the int8-query key scores beside the f32 ones; default: the environment's)")
    p.add_argument("--wkvq-amx", default="",
                   help="WKVQ_AMX values, comma-separated, one wkvq variant each (e.g. on,off: the "
                        "int8 prompt GEMM on AMX tiles beside the AVX512_VNNI one; default: the "
                        "environment's)")
    p.add_argument("--wkvq-head", default="",
                   help="wkvq bench --head for every wkvq run (f16, q8, q4; default: wkvq's, f16)")
    p.add_argument("--llama-kv", default="f16,q4_0",
                   help="llama.cpp KV types, comma-separated (default f16,q4_0; q4_0 runs with -fa 1)")
    p.add_argument("--ik-llama-cpp", default="",
                   help="folder holding ik_llama.cpp's llama-bench and llama-batched-bench: adds it as a "
                        "second peer, with run-time repacking (-rtr) and its default flash attention")
    p.add_argument("--ik-kv", default="f16,q8_0",
                   help="ik_llama.cpp KV types, comma-separated (default f16,q8_0; q4_0 needs a build with "
                        "-DGGML_IQK_FA_ALL_QUANTS=ON)")
    p.add_argument("--json", help="also write every measurement (after each pair) and, at the end, the summary "
                   "to this file")
    a = p.parse_args()
    if a.pairs < 1:
        p.error(f"--pairs must be at least 1, got {a.pairs}")
    for folder in (d for d in (a.llama_cpp, a.ik_llama_cpp) if d):
        for tool in ("llama-bench", "llama-batched-bench"):
            if not os.access(os.path.join(folder, tool), os.X_OK):
                p.error(f"{tool} not found in {folder}; build it as bench/README.md says")
    for path, what in ((a.gguf, "--gguf"), (a.wkvq, "--wkvq"), (a.shape, "--shape")):
        if not os.path.exists(path):
            p.error(f"{what} {path} does not exist")
    # The tools run in a scratch folder (llama-batched-bench writes llama.log into its working
    # folder), so every path they are given is made absolute here.
    a.gguf, a.wkvq, a.shape = (os.path.abspath(x) for x in (a.gguf, a.wkvq, a.shape))
    a.llama_cpp = os.path.abspath(a.llama_cpp)
    a.ik_llama_cpp = os.path.abspath(a.ik_llama_cpp) if a.ik_llama_cpp else None
    a.threads = [int(t) for t in a.threads.split(",")]
    a.cells = [parse_cell(c, p) for c in a.cells.split(",")]
    a.wkvq_kv = [int(k) for k in a.wkvq_kv.split(",") if k]
    a.llama_kv = [k for k in a.llama_kv.split(",") if k]
    a.ik_kv = [k for k in a.ik_kv.split(",") if k] if a.ik_llama_cpp else []
    a.wkvq_decode_gemv = [g for g in a.wkvq_decode_gemv.split(",") if g] or [None]
    for g in a.wkvq_decode_gemv:
        if g not in (None, "f32", "int8", "auto"):
            p.error(f"--wkvq-decode-gemv: expected f32, int8 or auto, got {g!r}")
    a.wkvq_kv_scores = [c for c in a.wkvq_kv_scores.split(",") if c] or [None]
    for c in a.wkvq_kv_scores:
        if c not in (None, "f32", "int8", "auto"):
            p.error(f"--wkvq-kv-scores: expected f32, int8 or auto, got {c!r}")
    a.wkvq_amx = [m for m in a.wkvq_amx.split(",") if m] or [None]
    for m in a.wkvq_amx:
        if m not in (None, "on", "off", "auto"):
            p.error(f"--wkvq-amx: expected on, off or auto, got {m!r}")
    return a


def parse_cell(text, p):
    if text == "tg128":
        return {"name": text, "prompt": 0, "gen": 128}
    if text == "pp512":
        return {"name": text, "prompt": 512, "gen": 0}
    if text.startswith("tg128@") and text[6:].isdigit() and int(text[6:]) > 0:
        return {"name": text, "prompt": int(text[6:]), "gen": 128}
    p.error(f"unknown cell {text!r}; expected tg128, pp512 or tg128@P (P a prompt length)")


def run(cmd, env=None, with_stderr=False):
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="vs_llamacpp.") as scratch:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=scratch)
    if r.returncode != 0:
        sys.exit(f"vs_llamacpp: {' '.join(cmd)} failed with exit {r.returncode}:\n{r.stderr[-2000:]}")
    return r.stdout + (r.stderr if with_stderr else ""), time.time() - t0


def wkvq_run(a, cell, threads, kvbits, gemv, amx, scores):
    prompt = max(cell["prompt"], 1)
    gen = max(cell["gen"], 1)
    cmd = [a.wkvq, "bench", "--shape-file", a.shape, "--prefill", str(prompt), "--decode", str(gen),
           "--wbits", "4", "--kvbits", str(kvbits), "--threads", str(threads), "--json", "--quiet"]
    if a.wkvq_head:
        cmd += ["--head", a.wkvq_head]
    env = dict(os.environ)
    if gemv is not None:
        env["WKVQ_DECODE_GEMV"] = gemv
    if amx is not None:
        env["WKVQ_AMX"] = amx
    if scores is not None:
        env["WKVQ_KV_SCORES"] = scores
    out, _ = run(cmd, env)
    j = json.loads(out.strip().splitlines()[-1])
    if cell["gen"] == 0:
        return j["prefill_tok_s"], j.get("read_bandwidth_gb_s"), None
    return j["decode_tok_s"], j.get("read_bandwidth_gb_s"), j["decode_bytes_per_token"]


def kv_flags(kv, ik):
    if ik:  # ik_llama.cpp: flash attention on by default (its CPU kernels), weights repacked at load
        return ["-ctk", kv, "-ctv", kv, "-rtr", "1"]
    return ["-ctk", kv, "-ctv", kv] + (["-fa", "1"] if kv != "f16" else [])


def batched_tg_speed(out, cmd):
    """speed_tg of llama-batched-bench's last jsonl row, or (ik_llama.cpp, which prints only its
    table) the S_TG t/s column of the table's last row."""
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if rows:
        return rows[-1]["speed_tg"]
    table = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("|")]
    if len(table) >= 3:
        head = [h.strip() for h in table[0]]
        if "S_TG t/s" in head:
            return float(table[-1][head.index("S_TG t/s")])
    sys.exit(f"vs_llamacpp: no jsonl row or S_TG column in the output of {' '.join(cmd)}")


def llama_run(a, cell, threads, kv, ik=False):
    folder = a.ik_llama_cpp if ik else a.llama_cpp
    if cell["prompt"] == 0 or cell["gen"] == 0:
        cmd = [os.path.join(folder, "llama-bench"), "-m", a.gguf, "-t", str(threads), "-r", "1",
               "-p", str(cell["prompt"]), "-n", str(cell["gen"]), "-o", "json"] + kv_flags(kv, ik)
        out, _ = run(cmd)
        return json.loads(out)[0]["avg_ts"]
    fa = ["-rtr"] if ik else (["-fa"] if kv != "f16" else [])
    cmd = [os.path.join(folder, "llama-batched-bench"), "-m", a.gguf, "-t", str(threads),
           "-tb", str(threads), "-c", str(cell["prompt"] + cell["gen"] + 16), "-b", "2048", "-ub", "512",
           "-npp", str(cell["prompt"]), "-ntg", str(cell["gen"]), "-npl", "1", "-ctk", kv, "-ctv", kv,
           "--output-format", "jsonl"] + fa
    out, _ = run(cmd, with_stderr=ik)  # ik_llama.cpp prints its table on stderr
    return batched_tg_speed(out, cmd)


def variants(a):
    return [("wkvq KV%d%s%s%s" % (k, "" if g is None else f" {g} gemv", "" if m is None else f" amx {m}",
                                  "" if c is None else f" {c} scores"),
             "wkvq", (k, g, m, c))
            for k in a.wkvq_kv for g in a.wkvq_decode_gemv for m in a.wkvq_amx for c in a.wkvq_kv_scores] + \
           [("llama.cpp %s KV" % k, "llama", k) for k in a.llama_kv] + \
           [("ik_llama.cpp %s KV" % k, "ik", k) for k in a.ik_kv]


def write_json(path, rows, summary):
    """Writes the measurements (and, once every pair has run, the summary) to path, through a
    temporary file so that a stopped run leaves the last complete state, never half a file."""
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"rows": rows, "summary": summary}, f, indent=1)
    os.replace(tmp, path)


def peer_bytes_per_token(a, config, cell, kv):
    """Bytes a llama.cpp decode step of the cell reads (bench/gguf_bytes.py): the GGUF's weights and
    the KV cache at the mean cache length while decoding, as wkvq bench counts its own."""
    if cell["gen"] == 0:
        return None
    return gguf_bytes.decode_bytes_per_token(a.gguf, config, kv, cell["prompt"] + cell["gen"] / 2)


def measure(a):
    """Runs every pair; with --json, the rows so far are written after each pair (summary null
    until the end), so a run stopped after an hour keeps what it measured."""
    rows = []
    vs = variants(a)
    with open(a.shape, encoding="utf-8") as f:
        config = json.load(f)
    peer_bytes = {(cell["name"], kv): peer_bytes_per_token(a, config, cell, kv)
                  for cell in a.cells for _, tool, kv in vs if tool != "wkvq"}
    for cell in a.cells:
        for threads in a.threads:
            for pair in range(a.pairs):
                order = vs[pair % len(vs):] + vs[:pair % len(vs)]
                got = {"cell": cell["name"], "threads": threads, "pair": pair, "tok_s": {},
                       "bytes_per_token": {}}
                for name, tool, kv in order:
                    if tool == "wkvq":
                        tok_s, bw, per_token = wkvq_run(a, cell, threads, *kv)
                        got.setdefault("read_gb_s", []).append(bw)
                    else:
                        tok_s = llama_run(a, cell, threads, kv, ik=tool == "ik")
                        per_token = peer_bytes[(cell["name"], kv)]
                    got["tok_s"][name] = tok_s
                    got["bytes_per_token"][name] = per_token
                rows.append(got)
                figures = ", ".join(f"{n} {v:.2f}" for n, v in got["tok_s"].items())
                bw = ", ".join(f"{b:.1f}" for b in got.get("read_gb_s", []) if b)
                print(f"{cell['name']:>11} t{threads} pair {pair + 1}: {figures} tok/s; read {bw} GB/s",
                      file=sys.stderr, flush=True)
                if a.json:
                    write_json(a.json, rows, None)
    return rows


def spread(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarize(a, rows):
    out = []
    names = [v[0] for v in variants(a)]
    peers = [v[0] for v in variants(a) if v[1] != "wkvq"]
    for cell in a.cells:
        for threads in a.threads:
            sel = [r for r in rows if r["cell"] == cell["name"] and r["threads"] == threads]
            entry = {"cell": cell["name"], "threads": threads, "variants": {}, "ratios": {}}
            for n in names:
                entry["variants"][n] = spread([r["tok_s"][n] for r in sel])
            for w in (n for n in names if n.startswith("wkvq")):
                for l in peers:
                    entry["ratios"][f"{w} / {l}"] = spread([r["tok_s"][w] / r["tok_s"][l] for r in sel])
            if cell["gen"] > 0:  # decode: tok/s x bytes per token, per run
                entry["decode_gb_s"] = {}
                for n in names:
                    entry["decode_gb_s"][n] = spread([r["tok_s"][n] * r["bytes_per_token"][n] / 1e9 for r in sel])
                    entry["decode_gb_s"][n]["mb_per_token"] = sel[0]["bytes_per_token"][n] / 1e6
            bws = [b for r in sel for b in r.get("read_gb_s", []) if b]
            if bws:
                entry["read_gb_s"] = spread(bws)
            out.append(entry)
    return out


def markdown_table(head, rows):
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cols in rows:
        print("| " + " | ".join(cols) + " |")


def spread_text(v, digits=1):
    return f"{v['median']:.{digits}f} ({v['min']:.{digits}f}-{v['max']:.{digits}f})"


def print_table(summary):
    names = list(summary[0]["variants"])
    ratio_names = list(summary[0]["ratios"])
    rows = []
    for e in summary:
        cols = [e["cell"], str(e["threads"])] + [spread_text(e["variants"][n]) for n in names]
        for n in ratio_names:
            v = e["ratios"][n]
            median = f"**{v['median']:.2f}**" if v["median"] >= 1.0 else f"{v['median']:.2f}"
            cols.append(f"{median} ({v['min']:.2f}-{v['max']:.2f})")
        cols.append(spread_text(e["read_gb_s"]) if "read_gb_s" in e else "-")
        rows.append(cols)
    markdown_table(["cell", "threads"] + [f"{n} tok/s" for n in names] + ratio_names + ["read GB/s"], rows)
    decode = [e for e in summary if "decode_gb_s" in e]
    if not decode:
        return
    print("\nDecode GB/s (tok/s x MB each tool reads per token; the read probe beside it):\n")
    rows = [[e["cell"], str(e["threads"])]
            + [f"{spread_text(e['decode_gb_s'][n])} x {e['decode_gb_s'][n]['mb_per_token']:.0f} MB" for n in names]
            + [f"{e['read_gb_s']['median']:.1f}" if "read_gb_s" in e else "-"] for e in decode]
    markdown_table(["cell", "threads"] + [f"{n} GB/s" for n in names] + ["read GB/s"], rows)


def main():
    a = parse_args()
    rows = measure(a)
    summary = summarize(a, rows)
    print_table(summary)
    if a.json:
        write_json(a.json, rows, summary)


if __name__ == "__main__":
    main()
