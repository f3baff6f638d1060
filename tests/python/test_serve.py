#!/usr/bin/python3
"""`wkvq serve` with real clients (stories260K, greedy, a free loopback port):

  * greedy text of /v1/completions (http.client, whole and streamed with curl) equals
    `wkvq generate` of the same prompt with as many tokens; usage counts the prompt and the
    completion; the stream ends with finish_reason, usage and [DONE];
  * 8 concurrent greedy streams each equal the same request served alone (continuous batching
    with decode steps and prompt chunks mixed);
  * stop strings, also across tokens: the text ends right before the first occurrence;
  * the official `openai` npm client: streaming and whole completions and chat completions
    (--chat-template chatml.jinja) give the texts http.client gets;
  * bad input gets an OpenAI-style error object (4xx) and leaves a concurrent stream unchanged:
    malformed JSON, wrong types, unknown model, a prompt longer than the context, max_tokens <= 0,
    a body over --max-body, a chat request to a model without chat template, a missing API key;
  * a full queue answers 429; a client that disconnects mid-stream, or while its non-streamed
    completion runs, frees its sequence and KV blocks at once (/metrics);
  * SIGTERM during a stream: the stream still ends with [DONE] and the server exits 0.
Missing shared models (or the npm package) are a skip, a failure when CI=true.
"""
import json
import os
import re
import signal
import shutil
import socket
import subprocess
import threading
import time

import harness
from harness import Checker, TestFailure
from serve_client import Server, parse_sse, stream_text

HERE = os.path.dirname(os.path.abspath(__file__))
CHATML = os.path.join(HERE, "..", "chat_templates", "chatml.jinja")
PROMPTS = ["Once upon a time", "The little dog", "Lily and Tom went to the park",
           "One day, a bird", "The sun was", "Sam had a red ball", "There was a big tree",
           "Mom said"]


def greedy(prompt, n, **extra):
    return {"model": "stories260K", "prompt": prompt, "max_tokens": n, "temperature": 0, **extra}


def check_generate_equality(args, chk, srv, model):
    for prompt, n in [("Once upon a time", 40), ("The little dog", 60)]:
        status, r = srv.post("/v1/completions", greedy(prompt, n))
        text, usage = r["choices"][0]["text"], r["usage"]
        steps = usage["prompt_tokens"] + n - 1
        gen = harness.run_wkvq(args.wkvq, ["generate", "--model", model, "--prompt", prompt,
                                           "--temperature", "0", "--steps", str(steps),
                                           "--threads", "1"])
        want = gen.stdout.decode("utf-8")
        chk.check(status == 200 and len(text) > 0 and want.rstrip("\n") == prompt + text,
                  f"greedy completion of {prompt!r} = generate --steps {steps}: {text!r}")
        chk.check(usage["completion_tokens"] <= n and
                  usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] and
                  r["choices"][0]["finish_reason"] in ("stop", "length") and
                  r["object"] == "text_completion", f"usage and fields: {usage}")


def check_curl_stream(chk, srv):
    if shutil.which("curl") is None:
        harness.require_files("curl (on PATH)")
    body = json.dumps(greedy("Once upon a time", 40, stream=True))
    cp = subprocess.run(["curl", "-sN", "-H", "Content-Type: application/json", "-d", body,
                         f"http://127.0.0.1:{srv.port}/v1/completions"],
                        stdout=subprocess.PIPE, timeout=60)
    events = parse_sse(cp.stdout.decode())
    _, whole = srv.post("/v1/completions", greedy("Once upon a time", 40))
    last = events[-2] if len(events) >= 2 else {}
    chk.check(cp.returncode == 0 and events[-1] == "[DONE]" and
              stream_text(events) == whole["choices"][0]["text"] and
              last.get("choices", [{}])[0].get("finish_reason") in ("stop", "length") and
              last.get("usage") == whole["usage"],
              f"curl stream: {len(events)} events, text = the whole response's, then usage, [DONE]")


def check_concurrent_streams(chk, srv, model_id="stories260K", extra_tokens=0):
    def body(i, p):
        return {**greedy(p, 24 + 4 * i + extra_tokens), "model": model_id}

    alone = {}
    for i, p in enumerate(PROMPTS):
        st, r = srv.post("/v1/completions", body(i, p))
        if st != 200 or "choices" not in r:
            raise harness.TestFailure(f"{model_id}: a completion served alone: {st} {r}")
        alone[p] = r["choices"][0]["text"]
    got = {}
    start = threading.Barrier(len(PROMPTS))

    def client(i, p):
        start.wait()
        got[p] = stream_text(srv.stream("/v1/completions", body(i, p))[1])

    threads = [threading.Thread(target=client, args=(i, p)) for i, p in enumerate(PROMPTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    same = [p for p in PROMPTS if got.get(p) == alone[p]]
    peak = srv.metrics()["wkvq_active_sequences_peak"]
    chk.check(len(same) == len(PROMPTS) and peak >= 4,
              f"{model_id}: 8 concurrent greedy streams equal each served alone "
              f"({len(same)}/8; up to {peak:.0f} sequences in one batched step)")


def check_stop(chk, srv):
    _, r = srv.post("/v1/completions", greedy("Once upon a time", 60))
    full = r["choices"][0]["text"]
    # a stop string spanning a token boundary: 3 characters around the middle of the text
    cut = len(full) // 2
    stop = full[cut:cut + 3]
    _, s = srv.post("/v1/completions", greedy("Once upon a time", 60, stop=["zzzz", stop]))
    chk.check(s["choices"][0]["text"] == full[:full.find(stop)] and
              s["choices"][0]["finish_reason"] == "stop",
              f"stop {stop!r}: text ends before its first occurrence")
    st, ev = srv.stream("/v1/completions", greedy("Once upon a time", 60, stop=stop))
    chk.check(st == 200 and stream_text(ev) == full[:full.find(stop)],
              "the same stop string in a stream: nothing of it is sent")


def check_openai_npm(args, chk, srv):
    import hf_tokenizer_cases as cases
    pkg = cases.require_npm_package("openai")
    script = os.path.join(HERE, "..", "serve_openai_client.js")
    prompt, message, n = "Once upon a time", "Tell me a story.", 20
    cp = subprocess.run(["node", script, cases.npm_dir(), f"http://127.0.0.1:{srv.port}/v1",
                         "stories260K", prompt, message, str(n)],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    if cp.returncode != 0:
        raise TestFailure(f"the openai client failed ({pkg}): {cp.stderr.decode()[-2000:]}")
    out = json.loads(cp.stdout.decode())
    _, want = srv.post("/v1/completions", greedy(prompt, n))
    _, chat = srv.post("/v1/chat/completions",
                       {"messages": [{"role": "user", "content": message}], "max_tokens": n,
                        "temperature": 0})
    want_chat = chat["choices"][0]["message"]["content"]
    chk.check(out["completion"]["text"] == want["choices"][0]["text"] ==
              out["completion_stream"]["text"] and out["completion_stream"]["chunks"] >= n and
              out["completion_stream"]["usage"] == want["usage"],
              f"openai npm: completions whole and streamed = http.client's "
              f"({out['completion_stream']['chunks']} chunks)")
    chk.check(len(want_chat) > 0 and out["chat"]["text"] == want_chat ==
              out["chat_stream"]["text"] and out["chat_stream"]["role"] == "assistant" and
              out["chat"]["usage"] == chat["usage"],
              f"openai npm: chat whole and streamed = http.client's: {want_chat[:60]!r}")
    chk.check(out["unknown_model"].get("status") == 404 and
              out["unknown_model"].get("code") == "model_not_found",
              f"openai npm: unknown model -> {out['unknown_model']}")


def is_error(status, body, want_status, param=None):
    e = body.get("error", {}) if isinstance(body, dict) else {}
    return (status == want_status and isinstance(e.get("message"), str) and "type" in e and
            "code" in e and "param" in e and (param is None or e["param"] == param))


def check_errors(chk, srv):
    # a stream running while the bad requests come in must come out as when served alone
    _, alone = srv.post("/v1/completions", greedy("The sun was", 80))
    result = {}
    t = threading.Thread(target=lambda: result.update(
        ev=srv.stream("/v1/completions", greedy("The sun was", 80))[1]))
    t.start()
    st, raw = srv.request("POST", "/v1/completions", raw=b'{"prompt": "a", ')
    chk.check(is_error(st, json.loads(raw), 400), f"malformed JSON -> 400: {raw[:120]!r}")
    for body, param in [({"prompt": 5}, "prompt"), ({"prompt": "a", "max_tokens": "3"}, "max_tokens"),
                        ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
                        ({"prompt": "a", "max_tokens": -1}, "max_tokens"),
                        ({"prompt": "a", "temperature": "hot"}, "temperature"),
                        ({"prompt": "a", "n": 2}, "n")]:
        st, r = srv.post("/v1/completions", body)
        chk.check(is_error(st, r, 400, param), f"{json.dumps(body)} -> 400 param {param}")
    st, r = srv.post("/v1/completions", {"model": "gpt-4", "prompt": "a"})
    chk.check(is_error(st, r, 404, "model") and r["error"]["code"] == "model_not_found",
              "unknown model -> 404 model_not_found")
    st, r = srv.post("/v1/completions", greedy("Once upon a time " * 200, 4))
    chk.check(is_error(st, r, 400) and r["error"]["code"] == "context_length_exceeded",
              f"prompt longer than the context -> 400: {r['error']['message']}")
    st, r = srv.post("/v1/completions", greedy("Once", 10_000))
    chk.check(is_error(st, r, 400, "max_tokens"), "prompt + max_tokens over the context -> 400")
    st, raw = srv.request("POST", "/v1/completions",
                          raw=json.dumps(greedy("x" * 40_000, 2)).encode())
    chk.check(is_error(st, json.loads(raw), 413), "a body over --max-body -> 413")
    st, raw = srv.request("GET", "/v1/nothing")
    chk.check(is_error(st, json.loads(raw), 404), "unknown route -> 404 with an error object")
    t.join(60)
    chk.check(stream_text(result.get("ev", [])) == alone["choices"][0]["text"],
              "a stream running meanwhile is unaffected by the bad requests")


def check_disconnect(chk, srv):
    body = json.dumps(greedy("Once upon a time", 500, stream=True)).encode()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    got = b""
    while b"data: " not in got:
        more = s.recv(4096)
        if not more:
            break
        got += more
    seen = srv.metrics()
    s.close()
    m = srv.wait_idle(5)
    chk.check(b"data: " in got and seen["wkvq_kv_blocks_in_use"] > 0 and
              m["wkvq_active_sequences"] == 0 and m["wkvq_kv_blocks_in_use"] == 0 and
              m["wkvq_sequences_cancelled_total"] >= 1,
              f"a client leaving mid-stream frees its sequence and blocks "
              f"({seen['wkvq_kv_blocks_in_use']:.0f} blocks before, "
              f"{m['wkvq_sequences_cancelled_total']:.0f} cancelled, "
              f"{m['wkvq_kv_blocks_in_use']:.0f} after)")


def check_busy(args, chk, model):
    srv = Server(args.wkvq, ["--model", model, "--parallel", "1", "--queue", "1", "--threads", "1"])
    try:
        statuses = []
        # the six requests leave together (a 400-token completion takes the one slot for tens of
        # milliseconds: threads started one by one on a loaded machine could each find it free)
        start = threading.Barrier(6)

        def client():
            start.wait(30)
            st, r = srv.post("/v1/completions", greedy("Once upon a time", 400))
            statuses.append((st, r))

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        busy = [r for st, r in statuses if st == 429]
        chk.check(len(busy) >= 1 and all(is_error(429, r, 429) for r in busy) and
                  all(st in (200, 429) for st, _ in statuses) and
                  busy[0]["error"]["code"] == "rate_limit_exceeded",
                  f"--parallel 1 --queue 1, 6 at once: statuses {sorted(s for s, _ in statuses)}")
        st, r = srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        chk.check(is_error(st, r, 400, "messages") and "chat template" in r["error"]["message"],
                  f"chat without a template -> 400: {r['error']['message'][:100]}")
        st, r = srv.post("/v1/completions", greedy("Once", 3))
        chk.check(st == 200, "completions still work without a chat template")
        t0 = time.time()
        check_disconnect(chk, srv)
        print(f"  (disconnect check {time.time() - t0:.2f}s)")
    finally:
        chk.check(srv.terminate() == 0, "SIGTERM when idle: exit 0")


def check_default_budget(args, chk, model):
    """The default KV budget holds --parallel sequences of the whole --ctx, also when --ctx is
    not a multiple of the pool's 32-token blocks."""
    srv = Server(args.wkvq, ["--model", model, "--ctx", "84", "--parallel", "1", "--threads", "1"])
    try:
        st, r = srv.post("/v1/completions", {**greedy("Once", 1), "prompt": [1, 400]})
        prompt_tokens = r["usage"]["prompt_tokens"] if st == 200 else 0
        st, r = srv.post("/v1/completions", {**greedy("Once", 84 - prompt_tokens),
                                             "prompt": [1, 400]})
        chk.check(st == 200 and r["usage"]["total_tokens"] <= 84,
                  f"--ctx 84 (not a multiple of 32), default --kv-budget: a request of the whole "
                  f"context is served: {st} {r.get('usage') or r.get('error')}")
    finally:
        chk.check(srv.terminate() == 0, "SIGTERM: exit 0")


def check_api_key(args, chk, model):
    srv = Server(args.wkvq, ["--model", model, "--api-key", "s3cret", "--threads", "1"])
    try:
        st, r = srv.post("/v1/completions", greedy("Once", 3))
        chk.check(is_error(st, r, 401), "no API key -> 401")
        st, r = srv.post("/v1/completions", greedy("Once", 3), {"Authorization": "Bearer wrong"})
        chk.check(is_error(st, r, 401), "a wrong API key -> 401")
        st, r = srv.post("/v1/completions", greedy("Once", 3), {"Authorization": "Bearer s3cret"})
        chk.check(st == 200, "the right API key -> 200")
        st, _ = srv.request("GET", "/health")
        chk.check(st == 200, "/health needs no key")
    finally:
        srv.terminate()


def open_stream(srv, body):
    """A stream request on a raw socket, read until its first data event; returns the socket."""
    data = json.dumps({**body, "stream": True}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Connection: close\r\nContent-Length: " + str(len(data)).encode() + b"\r\n\r\n" +
              data)
    got = b""
    while b"data: " not in got:
        more = s.recv(4096)
        if not more:
            break
        got += more
    return s, got


def read_rest(s):
    out = b""
    while True:
        more = s.recv(65536)
        if not more:
            return out
        out += more


def check_sigterm(chk, srv, model_id, grace):
    """SIGTERM while 4 streams are in flight: each still ends with [DONE] (finished within the
    grace period, or cancelled after it), and the server exits 0 within the bound."""
    socks = [open_stream(srv, {**greedy(p, 400), "model": model_id}) for p in PROMPTS[:4]]
    active = srv.metrics()["wkvq_active_sequences"]
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    rest = [read_rest(s) for s, _ in socks]
    rc = srv.terminate(grace + 20)
    took = time.time() - t0
    ends = [re.findall(rb'"finish_reason":"(\w+)"', r) for r in rest]
    chk.check(rc == 0 and active >= 1 and all(b"data: [DONE]" in r for r in rest)
              and took <= grace + 10,
              f"SIGTERM with {active:.0f} streams in flight (--shutdown-timeout {grace}): every "
              f"stream ends with [DONE] ({[e[-1].decode() if e else None for e in ends]}), "
              f"exit {rc} after {took:.2f}s")


def timed(fn, *a):
    t0 = time.time()
    fn(*a)
    print(f"  ({fn.__name__}: {time.time() - t0:.2f}s)", flush=True)


def check_disconnect_whole(chk, srv, model_id, n=500):
    """A client that leaves while its NON-streamed completion runs: the server finds it gone (it
    cannot write to it before the end), cancels the sequence before max_tokens and frees its
    blocks. The client closes right after sending, so the hang-up is there at the first probe."""
    before = srv.metrics()
    body = json.dumps({**greedy("Once upon a time", n), "model": model_id}).encode()
    s = socket.create_connection(("127.0.0.1", srv.port))
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    s.close()
    end, m = time.time() + 30, before
    while time.time() < end:
        m = srv.metrics()
        done = m["wkvq_generated_tokens_total"] - before["wkvq_generated_tokens_total"] >= n
        if m["wkvq_sequences_cancelled_total"] > before["wkvq_sequences_cancelled_total"] or done:
            break
        time.sleep(0.02)
    m = srv.wait_idle(10)
    cancelled = m["wkvq_sequences_cancelled_total"] - before["wkvq_sequences_cancelled_total"]
    gen = m["wkvq_generated_tokens_total"] - before["wkvq_generated_tokens_total"]
    chk.check(cancelled == 1 and gen < n and m["wkvq_active_sequences"] == 0 and
              m["wkvq_kv_blocks_in_use"] == 0,
              f"a client leaving during a non-streamed completion of {n} tokens: {cancelled:.0f} "
              f"cancelled after {gen:.0f} tokens, {m['wkvq_kv_blocks_in_use']:.0f} blocks in use")


def check_quantized(args, chk):
    """wkvq-ref-6m with W4 weights and a KV4 cache (POQ): greedy text = generate with the same
    options, 8 concurrent streams = each alone, SIGTERM with --shutdown-timeout 0 cancels."""
    model = os.path.join(args.shared, "models", "wkvq-ref-6m")
    harness.require_files(os.path.join(model, "model.safetensors"))
    quant = ["--wbits", "4", "--kvbits", "4"]
    # With a KV4 cache and POQ a prompt chunk attends to itself in full precision and to earlier
    # chunks of its prompt through the 4-bit cache, so a prompt split over two steps legitimately
    # differs from the same prompt in one step. "Concurrent = alone" holds when no prompt is
    # split: the 8 prompts are 45 tokens together (BOS included), within one 64-token step. (With
    # 16, which prompts were split depended on the clients' arrival order, and one of 8 greedy
    # texts differed in one CI run.) stories260K's float cache covers split prompts mixed with
    # decode rows (--prefill-chunk 8 there).
    srv = Server(args.wkvq, ["--model", model, "--parallel", "8", "--threads", "2",
                             "--shutdown-timeout", "0", "--prefill-chunk", "64", *quant])
    try:
        prompt, n = "The history of the city", 48
        st, r = srv.post("/v1/completions", {**greedy(prompt, n), "model": "wkvq-ref-6m"})
        steps = r["usage"]["prompt_tokens"] + n - 1
        gen = harness.run_wkvq(args.wkvq, ["generate", "--model", model, "--prompt", prompt,
                                           "--temperature", "0", "--steps", str(steps),
                                           "--threads", "2", *quant])
        text = r["choices"][0]["text"]
        chk.check(st == 200 and len(text) > 0 and
                  gen.stdout.decode().rstrip("\n") == prompt + text,
                  f"W4 KV4: greedy completion = generate --steps {steps}: {text[:80]!r}")
        check_concurrent_streams(chk, srv, "wkvq-ref-6m")
        check_disconnect_whole(chk, srv, "wkvq-ref-6m")
        check_sigterm(chk, srv, "wkvq-ref-6m", 0)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()


def run(args) -> None:
    model = os.path.join(args.shared, "models", "stories260K", "stories260K.bin")
    harness.require_files(model)
    chk = Checker()
    srv = Server(args.wkvq, ["--model", model, "--parallel", "8", "--threads", "1",
                             "--chat-template", CHATML, "--max-body", "0.03",
                             "--prefill-chunk", "8"])
    try:
        st, r = srv.request("GET", "/v1/models")
        chk.check(st == 200 and json.loads(r)["data"][0]["id"] == "stories260K", "/v1/models")
        timed(check_generate_equality, args, chk, srv, model)
        timed(check_curl_stream, chk, srv)
        # stories260K decodes thousands of tokens a second: long completions, so that the 8
        # streams overlap even when the host delays the client threads (CI saw 3 at +0)
        timed(check_concurrent_streams, chk, srv, "stories260K", 200)
        timed(check_stop, chk, srv)
        timed(check_errors, chk, srv)
        timed(check_openai_npm, args, chk, srv)
        m = srv.wait_idle()
        chk.check(m["wkvq_active_sequences"] == 0 and m["wkvq_kv_blocks_in_use"] == 0 and
                  m["wkvq_generated_tokens_total"] > 0 and m["wkvq_requests_total"] > 0,
                  f"/metrics at the end: {m}")
        timed(check_sigterm, chk, srv, "stories260K", 10)
    finally:
        if srv.proc.poll() is None:
            srv.proc.kill()
    timed(check_busy, args, chk, model)
    timed(check_api_key, args, chk, model)
    timed(check_default_budget, args, chk, model)
    timed(check_quantized, args, chk)
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
