"""Greedy generation with llama2.c `generate` semantics.

tokens = encode(prompt, bos=True); token = tokens[0]; for pos = 0 .. steps-1: run the model on
`token` at `pos`; next = the prompt's next token while inside the prompt, else argmax(logits)
(first index on ties); stop if next is BOS (or EOS, as wkvq documents); else print the piece
decode(token, next); token = next. A final newline follows. The pieces are printed as wkvq
prints them (printed_text): joined into UTF-8, bytes that cannot form UTF-8 replaced by U+FFFD
(Python's errors="replace"), ASCII control characters other than whitespace left out.

The reference re-runs the float64 forward on the whole prefix at every step (cheap for the tiny
models used here) and records, for every sampled position, the gap between the best and second
best logit so a mismatch can be told apart from a near-tie.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np

from .bpe import BOS, EOS, Llama2cTokenizer
from .model import Model, forward


@dataclass
class Generation:
    text: bytes  # what wkvq prints, without the final newline
    tokens: List[int]  # every token fed or produced, starting with BOS
    pieces: List[bytes]  # decoded piece of each token after the first (may be b"")
    margins: List[float] = field(default_factory=list)  # top1-top2 logit gap per sampled step
    sampled_from: int = 0  # index into tokens of the first argmax-chosen token
    stop: str = "steps"


def printed_text(pieces: List[bytes]) -> bytes:
    """The text of decoded pieces as wkvq generate prints it (see the module comment)."""
    text = b"".join(pieces).decode("utf-8", "replace").encode("utf-8")
    return bytes(c for c in text if c >= 0x20 or c in b" \t\n\v\f\r")


def greedy_generate(model: Model, tok: Llama2cTokenizer, prompt: str, steps: int,
                    stop_at_eos: bool = True) -> Generation:
    model64 = model.astype(np.float64)
    prompt_ids = tok.encode(prompt, bos=True, eos=False)
    seq = [prompt_ids[0]]
    pieces: List[bytes] = []
    margins: List[float] = []
    stop = "steps"
    pos = 0
    while pos < steps:
        if pos < len(prompt_ids) - 1:
            nxt = prompt_ids[pos + 1]
        else:
            logits = forward(model64, np.array(seq))[-1]
            order = np.argsort(-logits, kind="stable")
            nxt = int(np.argmax(logits))
            margins.append(float(logits[order[0]] - logits[order[1]]))
        pos += 1
        if nxt == BOS or (stop_at_eos and nxt == EOS):
            stop = "bos" if nxt == BOS else "eos"
            break
        pieces.append(tok.decode_piece(seq[-1], nxt))
        seq.append(nxt)
    return Generation(text=printed_text(pieces), tokens=seq, pieces=pieces, margins=margins,
                      sampled_from=len(prompt_ids), stop=stop)
