#!/usr/bin/python3
"""SentencePiece normalization rules (precompiled_charsmap): wkvq vs libsentencepiece.

wkvq checks a tokenizer.model's rule blobs before libsentencepiece reads them
(src/runtime/sp_model_check.h): the library walks their darts-clone trie without bounds checks,
so a corrupt blob used to crash wkvq. This test makes sure the check refuses no real model and
keeps the library's meaning of the rules:

  * models trained here by libsentencepiece itself (Debian's python3-sentencepiece) with the
    NFKC rule sets (nmt_nfkc for BPE and unigram, nfkc_cf for BPE) on TinyStories text: `wkvq
    tokenize` gives the same ids as the library for TinyStories lines and for texts that the rules
    rewrite (full-width letters, ligatures, circled digits, combining accents, odd spaces);
  * a trie built by hand in this file (the layout wkvq's check reads: root offset, label, leaf
    bit, value units; darts-clone's format) put into such a model: the library reads it as this
    file means it ("a" -> "x"; a chain of 32 nested rules, the most the library collects), and
    wkvq agrees with the library on it;
  * the same blob made corrupt in each way the check knows (children outside the trie, a
    replacement outside the strings, a cycle, 33 nested rules, a bad trie size): `wkvq tokenize`
    exits 1 with an error naming the file and normalizer_spec.precompiled_charsmap, never a crash.
    (libsentencepiece is not run on those.)

CTest runs it as: test_sp_charsmap.py --wkvq BIN --shared DIR --tmp DIR; exit 0 pass, 1 fail, 77
skip (missing shared files; a failure instead when CI=true).
"""
import json
import os
import struct

import harness
from harness import Checker
from reference.spm import protobuf_fields

NFKC_TEXTS = [
    "\uff26\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 letters and \uff11\uff12\uff13",
    "the \ufb01sh and the \ufb02ower, \ufb00 \ufb03",
    "circled \u2460\u2461\u2462 and roman \u216b \u2167",
    "cafe\u0301 na\u0308ive e\u0300 (combining accents)",
    "odd\u00a0spaces\u2003here\u3000and\u2009there",
    "zero\u200bwidth and tab\there",
    "  leading and   repeated   spaces  ",
    "\u210c\u2102 \u2124 \u33a1 \u3392 \u00bd \u00b2",
    "half-width \uff76\uff80\uff76\uff85 and \u30ab\u30bf\u30ab\u30ca",
    "Lily said, \u201cI\u2019m happy!\u201d \u2014 and smiled\u2026",
    "MiXeD CaSe WORDS for case folding",
]


# --- protobuf wire format: writing a varint (reading: reference/spm.py) ----------------------------

def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def with_charsmap(model: bytes, blob: bytes) -> bytes:
    """The model with its normalizer_spec (field 3).precompiled_charsmap (field 2) set to blob."""
    out = bytearray()
    for number, _, payload, raw in protobuf_fields(model):
        if number != 3:
            out += raw
            continue
        spec = bytearray()
        for n2, _, _, raw2 in protobuf_fields(payload):
            if n2 != 2:
                spec += raw2
        spec += varint(2 << 3 | 2) + varint(len(blob)) + blob
        out += varint(3 << 3 | 2) + varint(len(spec)) + spec
    return bytes(out)


# --- a darts-clone double array by hand ---------------------------------------------------------

NO_MATCH = 0x80000000  # bit 31 in the label: no input byte matches the unit


class Trie:
    def __init__(self, units):
        self.u = [NO_MATCH] * units

    def root(self, base):
        self.u[0] = base << 10

    def node(self, index, label, base, leaf):
        self.u[index] = (index ^ base) << 10 | (0x100 if leaf else 0) | label

    def value(self, index, v):
        self.u[index] = NO_MATCH | v

    def blob(self, strings: bytes) -> bytes:
        return struct.pack("<I", 4 * len(self.u)) + struct.pack(f"<{len(self.u)}I", *self.u) + strings


def chain_trie(rules):
    """Rules "a", "aa", ... (`rules` of them), each -> "x"."""
    t = Trie((rules + 2) * 256)
    t.root(256)
    for i in range(rules):
        block = 256 * (i + 1)
        t.node(block ^ ord("a"), ord("a"), block + 256, True)
        t.value(block + 256, 0)
    return t


def run(args):
    import sentencepiece as spm

    calib = os.path.join(args.shared, "data", "tinystories", "calib.txt")
    test_txt = os.path.join(args.shared, "data", "tinystories", "test.txt")
    harness.require_files(calib, test_txt)
    ck = Checker()
    corpus = os.path.join(args.tmp, "corpus.txt")
    with open(calib, encoding="utf-8") as fh:
        text = fh.read(300_000)
    with open(corpus, "w", encoding="utf-8") as fh:
        fh.write(text + "\n" + "\n".join(NFKC_TEXTS) + "\n")
    with open(test_txt, encoding="utf-8") as fh:
        lines = [ln for ln in fh.read(60_000).split("\n") if ln.strip()][:150]
    texts = lines + NFKC_TEXTS
    texts_file = os.path.join(args.tmp, "texts.jsonl")
    with open(texts_file, "w", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(t) + "\n" for t in texts))

    def wkvq_ids(model_path, texts_path):
        cp = harness.run_wkvq(args.wkvq, ["tokenize", "--tokenizer", model_path, "--json-lines",
                                          "--text-file", texts_path, "-q"])
        return [json.loads(ln) for ln in cp.stdout.decode().splitlines()]

    def train(name, rule, model_type):
        prefix = os.path.join(args.tmp, name)
        spm.SentencePieceTrainer.train(input=corpus, model_prefix=prefix, vocab_size=800,
                                       model_type=model_type, normalization_rule_name=rule,
                                       byte_fallback=True, minloglevel=2)
        return prefix + ".model"

    # Real rule blobs, as the library's trainer writes them.
    for name, rule, model_type in [("nfkc_bpe", "nmt_nfkc", "bpe"),
                                   ("nfkc_unigram", "nmt_nfkc", "unigram"),
                                   ("nfkc_cf_bpe", "nfkc_cf", "bpe")]:
        path = train(name, rule, model_type)
        sp = spm.SentencePieceProcessor(model_file=path)
        want = [sp.encode(t) for t in texts]
        got = wkvq_ids(path, texts_file)
        bad = [i for i, (a, b) in enumerate(zip(want, got)) if a != b]
        ck.check(len(got) == len(want) and not bad,
                 f"{name} ({rule}, {model_type}): ids equal to libsentencepiece on {len(texts)} "
                 f"texts (first differing: {bad[:3]})")
        ck.check(sp.encode("\uff26\uff55\uff4c\uff4c \ufb01sh") == sp.encode("Full fish"),
                 f"{name}: the rules are in effect (full-width letters and a ligature read as "
                 f"ASCII)")

    # A hand-built trie in a model trained with no rules.
    plain = train("plain_bpe", "identity", "bpe")
    with open(plain, "rb") as fh:
        plain_bytes = fh.read()
    sp_plain = spm.SentencePieceProcessor(model_file=plain)
    one = Trie(768)
    one.root(256)
    one.node(256 ^ ord("a"), ord("a"), 512, True)
    one.value(512, 0)
    cases = {"one_rule": (one.blob(b"x\0"), ["banana", "a cat and a dog", "xyz"],
                          lambda t: t.replace("a", "x")),
             "chain32": (chain_trie(32).blob(b"x\0"), ["a" * 40, "aa b aaa", "a" * 64],
                         None)}
    for name, (blob, samples, meaning) in cases.items():
        path = os.path.join(args.tmp, name + ".model")
        with open(path, "wb") as fh:
            fh.write(with_charsmap(plain_bytes, blob))
        sp = spm.SentencePieceProcessor(model_file=path)
        want = [sp.encode(t) for t in samples]
        if meaning is not None:
            ck.check(want == [sp_plain.encode(meaning(t)) for t in samples],
                     f"{name}: libsentencepiece reads the hand-built trie as meant")
        else:
            # the longest of the 32 rules wins: 40 a -> "x" + "x", 64 a -> "xx"
            ck.check(want[0] == sp_plain.encode("xx") and want[2] == sp_plain.encode("xx"),
                     f"{name}: libsentencepiece applies the longest of 32 nested rules")
        sample_file = os.path.join(args.tmp, name + ".jsonl")
        with open(sample_file, "w", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(t) + "\n" for t in samples))
        ck.check(wkvq_ids(path, sample_file) == want, f"{name}: wkvq ids equal the library's")

    # Corrupt blobs: a clear error, never a crash.
    corrupt = {}
    t = Trie(768)
    t.root(1024)
    corrupt["children outside the trie"] = (t.blob(b"x\0"), "children would be units")
    t = Trie(768)
    t.root(256)
    t.node(256 ^ ord("a"), ord("a"), 512, True)
    t.value(512, 7)
    corrupt["replacement outside the strings"] = (t.blob(b"x\0"), "replacement starts at byte 7")
    t = Trie(768)
    t.root(256)
    t.node(256 ^ ord("a"), ord("a"), 256, False)
    corrupt["cycle"] = (t.blob(b"x\0"), "cycle")
    corrupt["33 nested rules"] = (chain_trie(33).blob(b"x\0"), "more than 32 rules")
    blob = bytearray(one.blob(b"x\0"))
    blob[0:4] = struct.pack("<I", 4 * 768 + 2)
    corrupt["trie size not a multiple of 4"] = (bytes(blob), "multiple of 4")
    for i, (what, (blob, fragment)) in enumerate(corrupt.items()):
        path = os.path.join(args.tmp, f"corrupt_{i}.model")
        with open(path, "wb") as fh:
            fh.write(with_charsmap(plain_bytes, blob))
        cp = harness.run_wkvq(args.wkvq, ["tokenize", "--tokenizer", path, "--prompt", "a cat"],
                              check=False)
        err = cp.stderr.decode("utf-8", "replace")
        ck.check(cp.returncode == 1 and path in err and "precompiled_charsmap" in err
                 and fragment in err,
                 f"{what}: exit 1 naming the file and the defect (rc={cp.returncode}, "
                 f"stderr: {err.strip()[-300:]!r})")
    ck.finish()


if __name__ == "__main__":
    harness.main(run)
