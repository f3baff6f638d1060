#!/usr/bin/python3
"""`wkvq tokenize` with llama2.c's tok512.bin vs a plain, naive Python BPE written here.

The reference reads tokenizer.bin with struct (int32 max_token_length; per token float32 score,
int32 length, bytes) and encodes as llama2.c's run.c describes: BOS (1) if asked; for a non-empty
text the id of the piece " " (dummy prefix); the bytes grouped as a byte plus up to 3 following
continuation bytes (10xxxxxx), each group its piece id or else one id byte + 3 per byte; then,
while possible, merge the adjacent pair whose concatenation is a piece with the highest score
(strictly greater than -1e10; the first such pair in a left-to-right scan wins ties); EOS (2) if
asked. The scan is quadratic, so the chunks are a few KB: multi-paragraph pieces of
TinyStories test.txt and of WikiText-2 wiki.test.raw (headings, " @-@ ", non-ASCII text).

Standard library only. CTest runs it as: test_tokenizer.py --wkvq BIN --shared DIR --tmp DIR;
exit 0 pass, 1 fail, 77 skip (missing shared files; a failure instead when CI=true).
"""
import argparse
import json
import os
import shlex
import struct
import subprocess
import sys
import time

SKIP = 77
BOS, EOS = 1, 2


class Failure(Exception):
    pass


class Skip(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Reference tokenizer

def read_tokenizer_bin(path):
    with open(path, "rb") as fh:
        data = fh.read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    pieces, scores, at = [], [], 4
    while at < len(data):
        score, n = struct.unpack_from("<fi", data, at)
        at += 8
        if n < 0 or n > max_len or at + n > len(data):
            raise Failure(f"{path}: bad token {len(pieces)} (length {n})")
        pieces.append(data[at:at + n])
        scores.append(score)
        at += n
    return pieces, scores


class NaiveBpe:
    def __init__(self, pieces, scores):
        self.pieces, self.scores = pieces, scores
        self.index = {}
        for i, p in enumerate(pieces):
            if p not in self.index:
                self.index[p] = i

    def encode(self, data, bos, eos):
        ids = [BOS] if bos else []
        sym = []
        if data:
            sym.append(self.index[b" "])
        i = 0
        while i < len(data):
            j = i + 1
            while j < len(data) and j - i < 4 and (data[j] & 0xC0) == 0x80:
                j += 1
            group = data[i:j]
            if group in self.index:
                sym.append(self.index[group])
            else:
                sym.extend(b + 3 for b in group)
            i = j
        while True:
            best, best_k, best_id = -1e10, -1, -1
            for k in range(len(sym) - 1):
                m = self.index.get(self.pieces[sym[k]] + self.pieces[sym[k + 1]])
                if m is not None and self.scores[m] > best:
                    best, best_k, best_id = self.scores[m], k, m
            if best_k < 0:
                break
            sym[best_k:best_k + 2] = [best_id]
        ids.extend(sym)
        if eos:
            ids.append(EOS)
        return ids

    def decode(self, ids):
        out, prev = bytearray(), -1
        for t in ids:
            if t not in (BOS, EOS):
                p = self.pieces[t]
                if prev == BOS and p.startswith(b" "):
                    p = p[1:]
                if len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
                    try:
                        p = bytes([int(p[3:5], 16)])
                    except ValueError:
                        pass
                out += p
            prev = t
        return bytes(out)


# ---------------------------------------------------------------------------------------------
# Test inputs

def chunks_of(data, sep, starts, size):
    """Chunks of about `size` bytes starting at the separator after each fraction in `starts`,
    made of whole separator-delimited parts (paragraphs or lines)."""
    out = []
    for frac in starts:
        begin = data.find(sep, int(len(data) * frac))
        begin = 0 if frac == 0 or begin < 0 else begin + len(sep)
        end = data.find(sep, begin + size)
        out.append(data[begin:end if end >= 0 else len(data)])
    return out


def non_ascii_chunk(data, size):
    """A chunk of whole lines around the first line with non-ASCII bytes."""
    k = next((i for i, b in enumerate(data) if b >= 0x80), 0)
    begin = data.rfind(b"\n", 0, k) + 1
    end = data.find(b"\n", begin + size)
    return data[begin:end if end >= 0 else len(data)]


def run_wkvq(binary, args):
    cmd = [binary] + args
    t0 = time.time()
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    print(f"  $ {shlex.join(cmd)}   [{time.time() - t0:.2f}s, rc={cp.returncode}] "
          f"{' '.join(cp.stderr.decode('utf-8', 'replace').strip().splitlines()[-1:])}", flush=True)
    if cp.returncode != 0:
        raise Failure(f"wkvq exited with {cp.returncode}: {shlex.join(cmd)}\n"
                      f"{cp.stderr.decode('utf-8', 'replace')[-2000:]}")
    return cp.stdout


def wkvq_ids(binary, args):
    out = run_wkvq(binary, ["tokenize"] + args)
    try:
        ids = json.loads(out.decode("utf-8"))
    except ValueError as e:
        raise Failure(f"tokenize did not print one JSON array ({e}); stdout: {out[:200]!r}")
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise Failure("tokenize output is not a JSON array of integers")
    return ids


def first_mismatch(a, b):
    for k, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return k
    return min(len(a), len(b))


def run(args):
    tok_path = os.path.join(args.shared, "models", "stories260K", "tok512.bin")
    stories_path = os.path.join(args.shared, "data", "tinystories", "test.txt")
    wiki_path = os.path.join(args.shared, "data", "wikitext-2-raw", "wiki.test.raw")
    missing = [p for p in (tok_path, stories_path, wiki_path) if not os.path.exists(p)]
    if missing:
        msg = "missing shared file(s): " + ", ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            raise Failure(msg + " (CI=true: a missing file is a failure)")
        raise Skip(msg)
    if not (os.path.isfile(args.wkvq) and os.access(args.wkvq, os.X_OK)):
        raise Failure(f"wkvq binary not found or not executable: {args.wkvq}")
    os.makedirs(args.tmp, exist_ok=True)

    ref = NaiveBpe(*read_tokenizer_bin(tok_path))
    print(f"reference: naive llama2.c BPE over {tok_path} ({len(ref.pieces)} tokens)")
    with open(stories_path, "rb") as fh:
        stories = fh.read()
    with open(wiki_path, "rb") as fh:
        wiki = fh.read()
    cases = [(f"tinystories chunk {k}", c)
             for k, c in enumerate(chunks_of(stories, b"\n\n", [0, 0.2, 0.4, 0.6, 0.8, 0.95], 4000))]
    cases += [(f"wikitext chunk {k}", c)
              for k, c in enumerate(chunks_of(wiki, b"\n", [0, 0.25, 0.5, 0.75, 0.9], 4000))]
    cases.append(("wikitext non-ASCII chunk", non_ascii_chunk(wiki, 3000)))

    failures = []
    t_ref = 0.0
    for name, text in cases:
        path = os.path.join(args.tmp, name.replace(" ", "_") + ".txt")
        with open(path, "wb") as fh:
            fh.write(text)
        t0 = time.time()
        want = ref.encode(text, bos=True, eos=False)
        t_ref += time.time() - t0
        got = wkvq_ids(args.wkvq, ["--tokenizer", tok_path, "--text-file", path, "--bos"])
        paras = text.count(b"\n\n") + 1 if name.startswith("tiny") else text.count(b"\n") + 1
        what = f"{name}: {len(text)} bytes, {paras} paragraphs/lines, {len(want)} tokens"
        if got != want:
            k = first_mismatch(got, want)
            failures.append(f"{what}: wkvq ids differ from the reference at index {k}: "
                            f"wkvq {got[max(0, k - 3):k + 4]} vs reference "
                            f"{want[max(0, k - 3):k + 4]}")
            print("  FAIL " + failures[-1])
            continue
        if ref.decode(got) != text:
            failures.append(f"{what}: the reference decode of the ids is not the text")
        decoded = run_wkvq(args.wkvq, ["tokenize", "--tokenizer", tok_path, "--text-file", path,
                                       "--bos", "--decode"])
        if decoded != text:
            k = first_mismatch(decoded, text)
            failures.append(f"{what}: `wkvq tokenize --decode` differs from the text at byte {k}")
        print(f"  ok   {what}: ids equal, decode round-trips")

    # Flags and the empty text, by --prompt.
    for prompt, flags in [("", ["--bos"]), ("", ["--bos", "--eos"]), ("Hi there.", ["--eos"]),
                          ("Tom said \u201chello\u201d \u2615!", ["--bos", "--eos"])]:
        want = ref.encode(prompt.encode("utf-8"), bos="--bos" in flags, eos="--eos" in flags)
        got = wkvq_ids(args.wkvq, ["--tokenizer", tok_path, "--prompt", prompt] + flags)
        ok = got == want
        print(f"  {'ok  ' if ok else 'FAIL'} --prompt {prompt!r} {' '.join(flags)}: {got}")
        if not ok:
            failures.append(f"--prompt {prompt!r} {flags}: wkvq {got} vs reference {want}")

    print(f"reference encoding took {t_ref:.1f}s in total")
    if failures:
        raise Failure(f"{len(failures)} check(s) failed:\n  " + "\n  ".join(failures))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--wkvq", required=True, help="path of the wkvq binary under test")
    p.add_argument("--shared", required=True, help="directory with models/ and data/")
    p.add_argument("--tmp", default="/tmp/wkvq_py_test_tokenizer", help="scratch directory")
    args = p.parse_args()
    t0 = time.time()
    try:
        run(args)
    except Skip as e:
        print(f"SKIP: {e}")
        sys.exit(SKIP)
    except Failure as e:
        print(f"FAIL: {e}")
        sys.exit(1)
    print(f"PASS ({time.time() - t0:.1f}s)")
    sys.exit(0)


if __name__ == "__main__":
    main()
