"""Texts and plumbing shared by tests/python/test_hf_tokenizer*.py (not itself a test).

Texts: every line of WikiText-2's wiki.test.raw and of TinyStories' test.txt (each with its
'\\n', as it sits in the file), plus ADVERSARIAL below. INVALID_UTF8 holds byte strings that are
not UTF-8: wkvq takes them as raw bytes (`tokenize --lines`) and replaces what is invalid by
U+FFFD as the WHATWG decoder does; the references get the same replacement done by Python
(bytes.decode("utf-8", "replace"), the same rule), since Hugging Face tokenizers (and the
JavaScript reference) only take text.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import List, Optional, Sequence

import harness
from harness import TestFailure

ADVERSARIAL: List[str] = [
    "",
    "Hello world!",
    # mixed scripts
    "Hello Привет مرحبا שלום こんにちは 안녕하세요 नमस्ते Γειά σου ภาษาไทย Ελληνικά",
    "mixedСкрипт中文abc١٢٣def",
    # emoji, ZWJ sequences, skin tones, flags, variation selectors
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag, 👍🏽 thumbs, 🧑‍💻 coder, 🇫🇷🇩🇪 flags, ❤️ heart",
    "😀" * 50,
    "a\u200db\u200cc\u2060d",
    # CJK
    "中文分词测试：我爱北京天安门。日本語のテキスト、カタカナとひらがな。한국어 문장입니다.",
    "。，、！？「」『』（）",
    # digit runs
    "1234567890 3.14159 1,000,000 007 0000000000000 12abc34",
    "٣٤٥ ١٢٣ ①②③ ½ ² 𝟙𝟚𝟛 ๑๒๓",
    "9" * 100,
    # runs of spaces, tabs, newlines, \r\n
    "a  b   c    d\t\te\n\nf\n\n\n g \n  \n",
    "     leading",
    "trailing     ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    "line1\r\nline2\r\n\r\n\r\nline3",
    " \r\n \n\r \t\n\t ",
    " " * 3000,
    "\n" * 500 + "x",
    "\t \t \t  \t\t\t   x",
    "\u00a0non-breaking\u3000ideographic\u2003em\u2009thin space",
    # contractions and case
    "I'm you're he'll we'd they've it's DON'T I'M O'Neil ''quoted'' 'tis rock'n'roll",
    "THE QUICK BROWN FOX. the quick brown fox? ThE qUiCk!",
    # punctuation and symbols
    "!!!??? ... --- @@@ #hashtag $100 %50 ^&*() <html><body>x</body></html>",
    "def f(x):\n    return x ** 2  # comment\n\tif (a && b || !c) { y += 1; }",
    "https://example.com/path?q=1&r=2#frag user@example.org",
    # accents: precomposed and combining (NFC changes the latter)
    "café cafe\u0301 naïve nai\u0308ve Å A\u030a ﬁ ﬀ Ⅻ",
    # special-token text in user input
    "<|eot_id|>",
    "Hi<|begin_of_text|>there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nok",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<think>reasoning</think> answer <|endoftext|>",
    "<|eot_id <|eot_id|| <<|eot_id|>> <|im_end",
    "<s> </s> <unk> [INST] hi [/INST]",
    # control characters
    "\x00\x01\x1f\x7f a\x0bb\x0cc",
    # long words
    "a" * 5000,
    "supercalifragilisticexpialidocious" * 20,
]

INVALID_UTF8: List[bytes] = [
    b"abc\xff\xfe def",
    b"\xe2\x82 truncated three-byte",
    b"\xc3\x28 bad continuation",
    b"\xed\xa0\x80 encoded surrogate",
    b"\xf0\x9f\x98 cut emoji \xf0\x9f\x98\x80 whole",
    b"end\xe2\x82",
    b"\x80\x80\x80 lone continuations",
    b"\xc0\xaf overlong \xf5\x80 out of range",
]


def text_lines(path: str) -> List[str]:
    """The lines of a UTF-8 file, each with its '\\n'."""
    with open(path, "r", encoding="utf-8", newline="") as fh:
        text = fh.read()
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def write_jsonl(path: str, texts: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for t in texts:
            fh.write(json.dumps(t) + "\n")


def npm_dir() -> str:
    """Where scripts/install_npm.sh put the npm packages: $WKVQ_NPM_DIR or build/npm."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.environ.get("WKVQ_NPM_DIR") or os.path.normpath(
        os.path.join(here, "..", "..", "build", "npm"))


def require_npm_package(name: str) -> str:
    """The folder of an installed npm package; a skip when missing (a failure when CI=true)."""
    d = os.path.join(npm_dir(), "node_modules", name)
    if shutil.which("node") is None:
        harness.require_files("node (Node.js on PATH)")
    harness.require_files(os.path.join(d, "package.json"))
    return d


def wkvq_lines(binary: str, tokenizer: str, path: str, extra: Sequence[str] = (),
               json_lines: bool = True) -> List:
    """`wkvq tokenize --json-lines` (or --lines): one JSON value per input text."""
    mode = "--json-lines" if json_lines else "--lines"
    cp = harness.run_wkvq(binary, ["tokenize", "--tokenizer", tokenizer, "--text-file", path,
                                   mode, *extra])
    return [json.loads(line) for line in cp.stdout.decode("utf-8").splitlines()]


def reference_lines(tokenizer_dir: str, path: str, extra: Sequence[str] = ()) -> List[dict]:
    """tests/hf_tokenizer_reference.js: {"ids", "text"} per input text."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                          "hf_tokenizer_reference.js")
    cmd = ["node", script, npm_dir(), tokenizer_dir, path, *extra]
    cp = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=900)
    if cp.returncode != 0:
        raise TestFailure(f"reference failed ({cp.returncode}): {' '.join(cmd)}\n"
                          f"{cp.stderr.decode('utf-8', 'replace')[-3000:]}")
    return [json.loads(line) for line in cp.stdout.decode("utf-8").splitlines()]


def first_mismatch(got: Sequence[int], want: Sequence[int]) -> Optional[int]:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return i
    return None if len(got) == len(want) else min(len(got), len(want))


def compare_ids(chk: harness.Checker, what: str, texts: Sequence, got: Sequence,
                want: Sequence) -> None:
    """One check: every text's ids equal; the first few differences are printed."""
    if len(got) != len(want):
        chk.check(False, f"{what}: {len(got)} results for {len(want)} texts")
        return
    bad = [i for i in range(len(want)) if list(got[i]) != list(want[i])]
    for i in bad[:5]:
        j = first_mismatch(got[i], want[i])
        print(f"    text {i} {texts[i][:80]!r}: first difference at {j}: "
              f"wkvq {got[i][max(0, j - 3):j + 5]} reference {want[i][max(0, j - 3):j + 5]}")
    n_tokens = sum(len(w) for w in want)
    chk.check(not bad, f"{what}: {len(want) - len(bad)}/{len(want)} texts equal "
                       f"({n_tokens} tokens)")


def encode_seconds(stderr: bytes) -> float:
    m = re.search(rb"seconds: ([0-9.]+)", stderr)
    if not m:
        raise TestFailure(f"tokenize printed no time: {stderr[-500:]!r}")
    return float(m.group(1))
