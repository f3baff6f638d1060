#!/usr/bin/python3
"""`wkvq generate --chat`: one user turn through a chat template.

  * a model without a chat template (wkvq-ref-6m) is refused for --chat, naming the files
    looked for and --chat-template;
  * with --chat-template tests/chat_templates/llama2_chat.jinja (and --system) on wkvq-ref-6m
    (a SentencePiece tokenizer: the template's leading bos_token becomes the BOS id), the greedy
    answer equals the continuation that plain `generate` produces for the rendered prompt (from
    `wkvq chat-template`, its <s> dropped) and only the answer is printed;
  * with a tokenizer.json (a 301-id byte-level one whose special <|end|> is the eos_token of its
    tokenizer_config.json) on stories260K, the special tokens the template writes are parsed
    (the prompt has as many tokens as `tokenize --parse-special` of the rendered text, fewer than
    without) and <|end|> (id 300) is among the ids generation stops at.
Missing shared models are a skip, a failure when CI=true.
"""
import json
import os
import re

import harness
from harness import Checker
from test_hf_tokenizer import tiny_byte_level_tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA2_TEMPLATE = os.path.join(HERE, "..", "chat_templates", "llama2_chat.jinja")
END_TEMPLATE = ("{% for m in messages %}<|end|>{{ m.role }}: {{ m.content }}\n{% endfor %}"
                "{% if add_generation_prompt %}<|end|>assistant:{% endif %}")


def chat_info(stderr: bytes):
    m = re.search(r"chat: .*, prompt (\d+) tokens, stops at ids \[([0-9, ]*)\]",
                  stderr.decode("utf-8", "replace"))
    if not m:
        raise harness.TestFailure(f"no chat line in stderr: {stderr.decode()[-500:]!r}")
    return int(m.group(1)), [int(x) for x in m.group(2).split(",") if x.strip()]


def rendered(args, template_args, messages, name):
    mpath = os.path.join(args.tmp, f"{name}.json")
    with open(mpath, "w", encoding="utf-8") as fh:
        json.dump(messages, fh)
    cp = harness.run_wkvq(args.wkvq, ["chat-template", *template_args, "--messages-json", mpath,
                                      "--add-generation-prompt"])
    return cp.stdout.decode("utf-8")


def run(args) -> None:
    ref = os.path.join(args.shared, "models", "wkvq-ref-6m")
    stories = os.path.join(args.shared, "models", "stories260K", "stories260K.bin")
    harness.require_files(os.path.join(ref, "model.safetensors"), stories)
    chk = Checker()

    cp = harness.run_wkvq(args.wkvq, ["generate", "--model", ref, "--chat", "--prompt", "Hi",
                                      "--steps", "8"], check=False)
    err = cp.stderr.decode("utf-8", "replace")
    chk.check(cp.returncode != 0 and "tokenizer_config.json" in err and "--chat-template" in err,
              f"no chat template: refused with what to do: {err.strip()[-220:]!r}")

    system, user = "You tell short stories.", "Tell me about a cat."
    text = rendered(args, ["--model", ref, "--chat-template", LLAMA2_TEMPLATE],
                    [{"role": "system", "content": system}, {"role": "user", "content": user}],
                    "llama2")
    chk.check(text.startswith("<s>[INST] <<SYS>>\n" + system),
              f"rendered Llama-2 prompt: {text!r}")
    common = ["--model", ref, "--temperature", "0", "--steps", "72"]
    chat = harness.run_wkvq(args.wkvq, ["generate", *common, "--chat", "--chat-template",
                                        LLAMA2_TEMPLATE, "--system", system, "--prompt", user])
    plain = harness.run_wkvq(args.wkvq, ["generate", *common, "--prompt", text[len("<s>"):]])
    n_prompt, stops = chat_info(chat.stderr)
    answer, full = chat.stdout.decode("utf-8"), plain.stdout.decode("utf-8")
    chk.check(len(answer.strip()) > 0 and full.endswith(answer) and len(full) > len(answer) and
              "[INST]" not in answer and "[INST]" in full,
              f"--chat answer ({len(answer)} chars, prompt {n_prompt} tokens) = the plain "
              f"continuation of the rendered prompt: {answer[:80]!r}")
    chk.check(stops == [2], f"SentencePiece: stops at EOS only: {stops}")

    tiny = tiny_byte_level_tokenizer(os.path.join(args.tmp, "tiny"))
    tpl = os.path.join(args.tmp, "end_template.jinja")
    with open(tpl, "w", encoding="utf-8") as fh:
        fh.write(END_TEMPLATE)
    msgs = [{"role": "user", "content": "the heat"}]
    text = rendered(args, ["--tokenizer-config", os.path.join(args.tmp, "tiny",
                                                              "tokenizer_config.json"),
                           "--chat-template", tpl], msgs, "tiny")
    with open(os.path.join(args.tmp, "tiny_prompt.txt"), "w", encoding="utf-8") as fh:
        fh.write(text)
    parsed = harness.wkvq_tokenize(args.wkvq, ["--tokenizer", tiny, "--text-file",
                                               os.path.join(args.tmp, "tiny_prompt.txt"),
                                               "--parse-special"])
    as_text = harness.wkvq_tokenize(args.wkvq, ["--tokenizer", tiny, "--text-file",
                                                os.path.join(args.tmp, "tiny_prompt.txt")])
    cp = harness.run_wkvq(args.wkvq, ["generate", "--model", stories, "--tokenizer", tiny,
                                      "--chat", "--chat-template", tpl, "--prompt", "the heat",
                                      "--steps", "40", "--seed", "7"])
    n_prompt, stops = chat_info(cp.stderr)
    chk.check(n_prompt == len(parsed) < len(as_text) and parsed.count(300) == 2,
              f"tokenizer.json: the template's <|end|> parsed as id 300: prompt {n_prompt} "
              f"tokens = tokenize --parse-special {len(parsed)} < as text {len(as_text)}")
    chk.check(300 in stops, f"tokenizer.json: stops at <|end|> (300): {stops}")
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
