#!/usr/bin/python3
"""Concurrent streams against OpenAI-compatible servers: `wkvq serve` and llama.cpp's
`llama-server -np N`, side by side, interleaved.

For each N (concurrent sequences) and each pair, every variant (a server and its KV type) is
started fresh, sent one warm-up request, then N streaming `/v1/completions` at once, each with
its own prompt of --prompt random token ids (so no prompt cache helps) and --gen new tokens
(greedy), and stopped. The order of the variants rotates from pair to pair. Per run:

  decode tok/s  aggregate decode rate while all N sequences were decoding together: the chunks
                received between the last stream's first chunk and the first stream's end,
                divided by that window (one chunk per token; a window shorter than 3 chunks per
                stream is reported as '-': raise --gen);
  ms/token      median time between two chunks of a stream inside that window (the latency
                a user sees per token while N sequences share the server);
  TTFT          median time to the first chunk (prefill of the N prompts, batched by each server);
  wall          until the last stream ended; RSS: the server's peak resident set (VmHWM).

Both servers prefill at most 2048 prompt tokens per step (`--prefill-chunk 2048` for wkvq, the
default `-b 2048` of llama-server), so prefill and decode interleave alike. Medians and ranges over
the pairs, and the ratio of each variant's decode tok/s to the first variant's, per pair.
Benchmarks run on purpose, not in CI (bench/README.md).
"""
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(a, variant, n, port):
    kind, _, kv = variant.partition(":")
    ctx = a.prompt + a.gen + 8
    if kind == "wkvq":
        return [a.wkvq, "serve", "--model", a.wkvq_model, "--port", str(port), "--parallel",
                str(n), "--ctx", str(ctx), "--kvbits", kv, "--prefill-chunk", "2048",
                "--threads", str(a.threads), "--queue", str(n)]
    if kind == "llama":
        cmd = [os.path.join(a.llama_cpp, "llama-server"), "-m", a.gguf, "--port", str(port),
               "-np", str(n), "-c", str(ctx * n), "-t", str(a.threads), "-ctk", kv, "-ctv", kv,
               "--no-webui"]
        return cmd + (["-fa"] if kv != "f16" else [])
    sys.exit(f"serve_bench: unknown variant {variant!r}: expected wkvq:BITS or llama:TYPE")


def wait_ready(proc, port, log, timeout=600):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"serve_bench: the server exited with {proc.returncode} before it was ready; "
                     f"its log: {log}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"serve_bench: the server was not ready after {timeout} s; its log: {log}")


def stream(port, ids, gen, out):
    body = json.dumps({"prompt": ids, "max_tokens": gen, "temperature": 0, "stream": True,
                       "ignore_eos": True})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3600)
    t0 = time.time()
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        out.append({"error": f"HTTP {r.status}: {r.read()[:300]!r}"})
        return
    times = []
    for line in r:
        if line.startswith(b"data: ") and not line.startswith(b"data: [DONE]"):
            ev = json.loads(line[6:])
            if ev.get("choices") and ev["choices"][0].get("text"):
                times.append(time.time())
    out.append({"t0": t0, "times": times, "end": time.time()})


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_once(a, variant, n, seed):
    port = free_port()
    log = f"/tmp/serve_bench_{variant.replace(':', '_')}_{n}.log"
    with open(log, "w") as lf:
        proc = subprocess.Popen(server_command(a, variant, n, port), stdout=lf, stderr=lf)
    try:
        wait_ready(proc, port, log)
        warm = []
        stream(port, [1, 450, 3200], 4, warm)  # warm-up: pages in, threads started
        rng = random.Random(seed)
        prompts = [[1] + [rng.randrange(3, 32000) for _ in range(a.prompt - 1)] for _ in range(n)]
        results = []
        threads = [threading.Thread(target=stream, args=(port, p, a.gen, results)) for p in prompts]
        start = time.time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss = peak_rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    errors = [r["error"] for r in results if "error" in r]
    if errors or len(results) != n or any(len(r["times"]) < 2 for r in results):
        sys.exit(f"serve_bench: {variant} N={n} failed: {errors[:2] or 'streams without tokens'}; "
                 f"server log: {log}")
    t_all = max(r["times"][0] for r in results)
    t_one_ends = min(r["times"][-1] for r in results)
    inside = sum(1 for r in results for t in r["times"] if t_all < t <= t_one_ends)
    decode = inside / (t_one_ends - t_all) if inside >= 3 * n else float("nan")
    gaps = [(b - a) * 1e3 for r in results for a, b in zip(r["times"], r["times"][1:])
            if t_all <= a and b <= t_one_ends]
    return {"decode": decode, "ms_token": statistics.median(gaps) if gaps else float("nan"),
            "ttft": statistics.median(r["times"][0] - r["t0"] for r in results),
            "wall": max(r["end"] for r in results) - start, "rss": rss}


def fmt(values, digits):
    ok = [v for v in values if v == v]
    if not ok:
        return "-"
    med = statistics.median(ok)
    return (f"{med:.{digits}f}" if len(ok) == 1 else
            f"{med:.{digits}f} ({min(ok):.{digits}f}-{max(ok):.{digits}f})")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--wkvq", default="build/bin/wkvq", help="wkvq binary (default: %(default)s)")
    p.add_argument("--wkvq-model", help="a quantized wkvq model directory of the shape "
                   "(`wkvq quantize --method rtn --random-shape tinyllama-1.1b --wbits 4 "
                   "--tokenizer TOKENIZER --out DIR`)")
    p.add_argument("--llama-cpp", help="directory of the llama.cpp binaries (llama-server)")
    p.add_argument("--gguf", help="GGUF of the same shape (bench/README.md: make_gguf.py, Q4_0)")
    p.add_argument("--variants", default="wkvq:4,wkvq:16,llama:q4_0",
                   help="comma-separated wkvq:KVBITS and llama:KVTYPE (q4_0 runs with flash "
                   "attention); the first is the ratios' reference (default: %(default)s)")
    p.add_argument("--n", default="1,4,16", help="concurrent sequences (default: %(default)s)")
    p.add_argument("--prompt", type=int, default=1024, help="prompt tokens per sequence")
    p.add_argument("--gen", type=int, default=64, help="tokens generated per sequence")
    p.add_argument("--pairs", type=int, default=1, help="interleaved repetitions")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the runs to this file too")
    a = p.parse_args()
    variants = a.variants.split(",")
    if any(v.startswith("wkvq") for v in variants) and not (a.wkvq_model and
                                                            os.path.isdir(a.wkvq_model)):
        p.error("wkvq variants need --wkvq-model DIR (a quantized model directory)")
    if any(v.startswith("llama") for v in variants) and not (
            a.llama_cpp and os.path.exists(os.path.join(a.llama_cpp, "llama-server")) and
            a.gguf and os.path.exists(a.gguf)):
        p.error("llama variants need --llama-cpp DIR (with llama-server) and --gguf FILE")
    if a.prompt < 2 or a.gen < 4:
        p.error("--prompt must be >= 2 and --gen >= 4")
    runs = []
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    for n in [int(x) for x in a.n.split(",")]:
        for pair in range(a.pairs):
            order = variants[pair % len(variants):] + variants[:pair % len(variants)]
            for v in order:
                r = run_once(a, v, n, seed=1000 * n + pair)
                runs.append({"variant": v, "n": n, "pair": pair, **r})
                print(f"  N={n} pair {pair} {v}: decode {r['decode']:.2f} tok/s, "
                      f"{r['ms_token']:.0f} ms/token, TTFT {r['ttft']:.1f} s, "
                      f"RSS {r['rss']:.0f} MiB (load {os.getloadavg()[0]:.1f})", flush=True)
    print("\n| N | variant | decode tok/s | ms/token | TTFT s | RSS MiB | ratio to "
          f"{variants[0]} |\n|---|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in runs}):
        for v in variants:
            rs = [r for r in runs if r["n"] == n and r["variant"] == v]
            ratios = [r["decode"] / b["decode"] for r in rs for b in runs
                      if b["n"] == n and b["pair"] == r["pair"] and b["variant"] == variants[0]]
            print(f"| {n} | {v} | {fmt([r['decode'] for r in rs], 2)} | "
                  f"{fmt([r['ms_token'] for r in rs], 0)} | {fmt([r['ttft'] for r in rs], 1)} | "
                  f"{fmt([r['rss'] for r in rs], 0)} | {fmt(ratios, 2)} |")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(runs, f, indent=1)


if __name__ == "__main__":
    main()
