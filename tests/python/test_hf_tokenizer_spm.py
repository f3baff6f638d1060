#!/usr/bin/python3
"""A SentencePiece-style tokenizer.json (Llama-2's vocabulary) vs libsentencepiece.

The test writes the tokenizer.json of ../shared/models/llama2-tokenizer/tokenizer.model itself,
with the conventions of Hugging Face's converter for Llama-2 / Mistral / TinyLlama: the pieces and
ids as "vocab"; as "merges", for every ordinary piece (not control, unknown or byte) each split
into two pieces that are both in the vocabulary, ordered by the merged piece's score (highest
first; SentencePiece's BPE merges by that score), then by the ids of the halves; normalizer
Sequence[Prepend "▁", Replace " " -> "▁"]; no pre-tokenizer; BPE with byte_fallback, fuse_unk and
unk_token "<unk>"; decoder Sequence[Replace "▁" -> " ", ByteFallback, Fuse, Strip " " 1 0];
<unk>, <s>, </s> as special added tokens; TemplateProcessing "<s> $A"; and a tokenizer_config.json
with add_bos_token true.

The reference is libsentencepiece itself (Debian's python3-sentencepiece) on the model file:
  * ids equal for every line of wiki.test.raw and TinyStories test.txt and the adversarial texts
    of hf_tokenizer_cases.py (special-token text is ordinary text on both sides);
  * texts that are not UTF-8: raw bytes to wkvq, Python's U+FFFD replacement to SentencePiece
    (which itself replaces every invalid byte on its own rather than each maximal subpart);
  * --bos gives <s> first (add_bos_token);
  * decode(encode(x)) == x wherever SentencePiece's decode round-trips.
The same vocabulary written as the newer conversions do (no normalizer; pre-tokenizer Metaspace
with prepend_scheme "first", split false; decoder Metaspace) is compared with @lenml/tokenizers
(tests/hf_tokenizer_reference.js) on all texts, ids and decoded text, and with libsentencepiece
on the texts that do not start with a space (Metaspace does not prepend "▁" to text that starts
with one; SentencePiece's dummy prefix always does).
"""
import json
import os

import harness
import hf_tokenizer_cases as cases
from harness import Checker, TestFailure

SPACE = "\u2581"


def write_tokenizer_json(sp, out_dir: str) -> str:
    n = sp.get_piece_size()
    pieces = [sp.id_to_piece(i) for i in range(n)]
    vocab = {p: i for i, p in enumerate(pieces)}
    ordinary = [i for i in range(n)
                if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_byte(i))]
    merges = []
    for i in ordinary:
        p = pieces[i]
        for k in range(1, len(p)):
            left, right = p[:k], p[k:]
            if left in vocab and right in vocab:
                merges.append((-sp.get_score(i), vocab[left], vocab[right], f"{left} {right}"))
    merges.sort()
    special = [{"id": i, "content": pieces[i], "single_word": False, "lstrip": False,
                "rstrip": False, "normalized": False, "special": True}
               for i in range(n) if sp.is_control(i) or sp.is_unknown(i)]
    unk, bos, eos = pieces[sp.unk_id()], pieces[sp.bos_id()], pieces[sp.eos_id()]
    tok = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": special,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPACE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPACE}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [sp.bos_id()], "tokens": [bos]}}},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": unk,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": [m[3] for m in merges]},
    }
    path = os.path.join(out_dir, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(tok, fh, ensure_ascii=False)
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": bos, "eos_token": eos,
              "unk_token": unk, "tokenizer_class": "LlamaTokenizer"}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump(config, fh)
    print(f"  wrote {path}: {n} pieces, {len(merges)} merges")
    return path


def write_metaspace_variant(legacy_json: str, out_dir: str) -> str:
    """The tokenizer.json at legacy_json rewritten with Metaspace in place of Prepend/Replace."""
    with open(legacy_json, "r", encoding="utf-8") as fh:
        tok = json.load(fh)
    meta = {"type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first", "split": False,
            "add_prefix_space": True}
    tok["normalizer"] = None
    tok["pre_tokenizer"] = meta
    tok["decoder"] = {"type": "Sequence", "decoders": [
        meta, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "tokenizer.json")
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(tok, fh, ensure_ascii=False)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as fh:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": True,
                   "bos_token": "<s>", "eos_token": "</s>"}, fh)
    return path


def check_metaspace(args, chk: Checker, sp, legacy_json: str, texts, path: str) -> None:
    cases.require_npm_package("@lenml/tokenizers")
    meta_dir = os.path.join(args.tmp, "metaspace")
    meta_json = write_metaspace_variant(legacy_json, meta_dir)
    got = cases.wkvq_lines(args.wkvq, meta_json, path)
    ref = cases.reference_lines(meta_dir, path, ["--split-special"])
    cases.compare_ids(chk, "Metaspace variant vs @lenml/tokenizers: corpus lines + adversarial",
                      texts, got, [r["ids"] for r in ref])
    decoded = cases.wkvq_lines(args.wkvq, meta_json, path, ["--decode"])
    same = sum(decoded[i] == ref[i]["text"] for i in range(len(texts)))
    chk.check(same == len(texts),
              f"Metaspace variant: decode equals the reference's for {same}/{len(texts)} texts")
    plain = [i for i in range(len(texts)) if not texts[i].startswith(" ")]
    cases.compare_ids(chk, "Metaspace variant vs SentencePiece on texts not starting with a space",
                      [texts[i] for i in plain], [got[i] for i in plain],
                      [sp.encode(texts[i]) for i in plain])


def run(args) -> None:
    model = os.path.join(args.shared, "models", "llama2-tokenizer", "tokenizer.model")
    wiki = os.path.join(args.shared, "data", "wikitext-2-raw", "wiki.test.raw")
    stories = os.path.join(args.shared, "data", "tinystories", "test.txt")
    harness.require_files(model, wiki, stories)
    try:
        import sentencepiece
    except ImportError:
        harness.require_files("python3-sentencepiece (the Python module sentencepiece)")
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    tok_json = write_tokenizer_json(sp, args.tmp)
    chk = Checker()

    texts = cases.text_lines(wiki) + cases.text_lines(stories) + cases.ADVERSARIAL
    path = os.path.join(args.tmp, "texts.jsonl")
    cases.write_jsonl(path, texts)
    want = [sp.encode(t) for t in texts]
    got = cases.wkvq_lines(args.wkvq, tok_json, path)
    cases.compare_ids(chk, "Llama-2 tokenizer.json vs SentencePiece: corpus lines + adversarial",
                      texts, got, want)

    raw = os.path.join(args.tmp, "invalid.txt")
    with open(raw, "wb") as fh:
        fh.write(b"\n".join(cases.INVALID_UTF8) + b"\n")
    replaced = [b.decode("utf-8", "replace") for b in cases.INVALID_UTF8]
    got_inv = cases.wkvq_lines(args.wkvq, tok_json, raw, json_lines=False)
    cases.compare_ids(chk, "invalid UTF-8 (replaced by U+FFFD)", replaced, got_inv,
                      [sp.encode(t) for t in replaced])

    adv = os.path.join(args.tmp, "adversarial.jsonl")
    cases.write_jsonl(adv, cases.ADVERSARIAL)
    got_bos = cases.wkvq_lines(args.wkvq, tok_json, adv, ["--bos"])
    cases.compare_ids(chk, "--bos: <s> first (add_bos_token)", cases.ADVERSARIAL, got_bos,
                      [[sp.bos_id()] + sp.encode(t) for t in cases.ADVERSARIAL])

    decoded = cases.wkvq_lines(args.wkvq, tok_json, path, ["--decode"])
    trips = [i for i in range(len(texts)) if sp.decode(want[i]) == texts[i]]
    ok = [i for i in trips if decoded[i] == texts[i]]
    for i in [i for i in trips if decoded[i] != texts[i]][:5]:
        print(f"    text {i}: {texts[i][:60]!r} decoded as {decoded[i][:60]!r}")
    chk.check(len(ok) == len(trips) and len(trips) > 0.9 * len(texts),
              f"decode(encode(x)) == x for {len(ok)}/{len(trips)} texts where SentencePiece "
              f"round-trips ({len(texts) - len(trips)} where it does not)")
    check_metaspace(args, chk, sp, tok_json, texts, path)
    chk.finish()


if __name__ == "__main__":
    harness.main(run)
