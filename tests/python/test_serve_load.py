#!/usr/bin/python3
"""A bounded load test of `wkvq serve` (stories260K; --parallel 4, a queue of 6 and a KV budget
smaller than the sequences asked for, so requests wait for blocks and some get 429):
6 clients send 240 requests in all (completions and chat, streamed or not, random lengths,
temperatures and stop strings), a fifth of the streams disconnect after their first chunk.

  * every answer is 200 or an expected 429 (with an OpenAI error object), never anything else;
  * every whole answer's usage is consistent (completion_tokens <= max_tokens) and every complete
    stream ends with [DONE];
  * afterwards /metrics shows zero active and queued sequences and zero KV blocks in use, and
    disconnected streams still generating when their client left counted as cancelled;
  * the server's resident memory is steady: after the second half of the load it is within
    8 MiB of what it was after the first half.
Missing shared models are a skip, a failure when CI=true.
"""
import json
import os
import random
import socket
import threading
import time

import harness
from harness import Checker
from serve_client import Server

HERE = os.path.dirname(os.path.abspath(__file__))
CHATML = os.path.join(HERE, "..", "chat_templates", "chatml.jinja")
CLIENTS, PER_CLIENT = 6, 20  # per half
WORDS = ["Once", "upon", "a", "time", "the", "little", "dog", "ran", "to", "park", "Lily", "sun"]


def request_body(rng):
    body = {"max_tokens": rng.randint(1, 40), "temperature": rng.choice([0, 0.8]),
            "seed": rng.randint(0, 1000)}
    if rng.random() < 0.3:
        body["stop"] = [rng.choice(["the", ".", "\n", "ran"])]
    text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12)))
    if rng.random() < 0.3:
        return "/v1/chat/completions", {**body, "messages": [{"role": "user", "content": text}]}
    return "/v1/completions", {**body, "prompt": text}


def disconnect_mid_stream(port, path, body):
    data = json.dumps({**body, "stream": True, "max_tokens": 100}).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    head = s.recv(4096)
    s.close()
    return int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0


def load(srv, seed, results):
    rng = random.Random(seed)
    for _ in range(PER_CLIENT):
        path, body = request_body(rng)
        kind = rng.random()
        if kind < 0.2:
            results.append(("disconnect", disconnect_mid_stream(srv.port, path, body), None))
        elif kind < 0.6:
            st, events = srv.stream(path, body)
            results.append(("stream", st, events))
        else:
            st, r = srv.post(path, body)
            results.append(("whole", st, (body, r)))


def run_half(srv, seed0):
    results = []
    threads = [threading.Thread(target=load, args=(srv, seed0 + i, results))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return results


def run(args) -> None:
    model = os.path.join(args.shared, "models", "stories260K", "stories260K.bin")
    harness.require_files(model)
    chk = Checker()
    # stories260K: 1280 bytes of f32 KV per token; 0.3 MiB = 245 tokens = 7 blocks of 32 and a
    # bit: one to three sequences at once, the others wait
    srv = Server(args.wkvq, ["--model", model, "--parallel", "4", "--queue", "6", "--threads", "1",
                             "--chat-template", CHATML, "--ctx", "256", "--kv-budget", "0.3"])
    try:
        t0 = time.time()
        first = run_half(srv, 100)
        srv.wait_idle()
        rss_first = srv.rss_kb()
        second = run_half(srv, 200)
        m = srv.wait_idle()
        rss_second = srv.rss_kb()
        results = first + second
        took = time.time() - t0
        statuses = {}
        for kind, st, _ in results:
            statuses[(kind, st)] = statuses.get((kind, st), 0) + 1
        print(f"  {len(results)} requests in {took:.1f}s: {statuses}")
        chk.check(len(results) == 2 * CLIENTS * PER_CLIENT, f"{len(results)} requests answered")
        chk.check(all(st in (200, 429) for _, st, _ in results),
                  "every answer is 200 or 429")
        bad_429 = [x for kind, st, x in results if st == 429 and kind != "disconnect" and not (
            kind == "whole" and x[1]["error"]["code"] == "rate_limit_exceeded") and not (
            kind == "stream" and x[0]["error"]["code"] == "rate_limit_exceeded")]
        chk.check(not bad_429, "every 429 carries an OpenAI error object (rate_limit_exceeded)")
        whole = [x for kind, st, x in results if kind == "whole" and st == 200]
        chk.check(all(r["usage"]["completion_tokens"] <= b["max_tokens"] for b, r in whole),
                  f"{len(whole)} whole answers: completion_tokens <= max_tokens")
        streams = [x for kind, st, x in results if kind == "stream" and st == 200]
        chk.check(all(ev and ev[-1] == "[DONE]" for ev in streams),
                  f"{len(streams)} complete streams end with [DONE]")
        gone = sum(1 for kind, st, _ in results if kind == "disconnect" and st == 200)
        chk.check(m["wkvq_active_sequences"] == 0 and m["wkvq_queued_sequences"] == 0 and
                  m["wkvq_kv_blocks_in_use"] == 0 and
                  1 <= m["wkvq_sequences_cancelled_total"] <= gone and m["wkvq_requests_rejected_total"] == sum(
                      1 for _, st, _ in results if st == 429),
                  f"/metrics back to idle: {m['wkvq_active_sequences']:.0f} active, "
                  f"{m['wkvq_kv_blocks_in_use']:.0f} blocks in use, "
                  f"{m['wkvq_sequences_cancelled_total']:.0f} cancelled (of {gone} disconnects; a "
                  f"sequence that ended before its client left is not)")
        chk.check(rss_second - rss_first <= 8 * 1024,
                  f"steady memory: RSS {rss_first} kB after the first half, {rss_second} kB "
                  f"after the second")
    finally:
        rc = srv.terminate()
    chk.check(rc == 0, f"SIGTERM: exit {rc}")
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
