#!/usr/bin/python3
"""`wkvq chat`: an interactive conversation through a pipe (wkvq-ref-6m, the ChatML template of
tests/chat_templates/chatml.jinja, greedy).

  * two user lines then end of input (Ctrl-D): exit 0, two answers;
  * the first answer equals `generate --chat` of the same message with as many tokens;
  * the second turn keeps the first in the KV cache: only the new text is fed (stderr says how
    many tokens were kept, which equals the first prompt plus the first answer);
  * SIGINT (Ctrl-C) during a long answer stops that answer only: the chat goes on with the next
    line and exits 0 at end of input.
Missing shared models are a skip, a failure when CI=true.
"""
import os
import re
import signal
import subprocess

import harness
from harness import Checker, TestFailure

HERE = os.path.dirname(os.path.abspath(__file__))
CHATML = os.path.join(HERE, "..", "chat_templates", "chatml.jinja")
ANSWER_TOKENS = 16


def run_chat(args, model, lines, extra=()):
    cmd = [args.wkvq, "chat", "--model", model, "--chat-template", CHATML, "--temperature", "0",
           "--threads", "2", *extra]
    cp = subprocess.run(cmd, input="".join(l + "\n" for l in lines).encode(),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    print(f"  $ {' '.join(cmd)} < {len(lines)} lines  [rc={cp.returncode}]")
    return cp


def run(args) -> None:
    model = os.path.join(args.shared, "models", "wkvq-ref-6m")
    harness.require_files(os.path.join(model, "model.safetensors"))
    chk = Checker()
    first, second = "Tell me about a cat.", "And a dog?"

    cp = run_chat(args, model, [first, second], ["--max-tokens", str(ANSWER_TOKENS)])
    out, err = cp.stdout.decode("utf-8"), cp.stderr.decode("utf-8", "replace")
    chk.check(cp.returncode == 0 and out.count("\n") >= 2,
              f"two turns then end of input: exit {cp.returncode}, output {out!r}")

    gen = harness.run_wkvq(args.wkvq, ["generate", "--model", model, "--chat", "--chat-template",
                                       CHATML, "--prompt", first, "--temperature", "0",
                                       "--steps", "1"])
    n_prompt = int(re.search(r"prompt (\d+) tokens", gen.stderr.decode()).group(1))
    gen = harness.run_wkvq(args.wkvq, ["generate", "--model", model, "--chat", "--chat-template",
                                       CHATML, "--prompt", first, "--temperature", "0",
                                       "--steps", str(n_prompt + ANSWER_TOKENS - 1)])
    answer1 = gen.stdout.decode("utf-8")
    chk.check(len(answer1.strip()) > 0 and out.startswith(answer1),
              f"first answer = generate --chat with {ANSWER_TOKENS} tokens: {answer1!r}")
    kept = re.search(r"kept (\d+) tokens of history in the KV cache, (\d+) new", err)
    chk.check(kept is not None and int(kept.group(1)) == n_prompt + ANSWER_TOKENS,
              f"second turn: kept {kept.group(1) if kept else None} tokens in the cache "
              f"(= prompt {n_prompt} + answer {ANSWER_TOKENS}), fed only the new ones")

    cmd = [args.wkvq, "chat", "--model", model, "--chat-template", CHATML, "--temperature", "0",
           "--max-tokens", "400", "--threads", "2"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        proc.stdin.write((first + "\n").encode())
        proc.stdin.flush()
        got = proc.stdout.read(4)  # the answer has started
        proc.send_signal(signal.SIGINT)
        _, err2 = proc.communicate(input=(second + "\n").encode(), timeout=600)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise TestFailure("chat did not end after SIGINT and end of input")
    err2 = err2.decode("utf-8", "replace")
    chk.check(proc.returncode == 0 and len(got) == 4 and "(stopped)" in err2 and
              err2.count("> ") >= 3,
              f"SIGINT stops the answer, the chat goes on and exits 0: rc {proc.returncode}, "
              f"stderr {err2.strip()[-300:]!r}")
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
