"""Minimal SentencePiece tokenizer.model reader, to make realistic token ids for test inputs.

tokenizer.model is a protobuf ModelProto whose field 1 is a repeated SentencePiece message
{1: piece (string), 2: score (float), 3: type (enum)}. Only that is parsed; everything else is
skipped by wire type. approx_encode() is a plain score-ordered BPE over the pieces (space ->
U+2581, dummy prefix, byte fallback) - close to, but not claimed identical to, SentencePiece's
own encoder; the logits tests only need plausible in-vocabulary text, not exact tokenization.
"""
from __future__ import annotations

import struct
from typing import List, Tuple

from .bpe import Llama2cTokenizer


def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift, val = 0, 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        if not b & 0x80:
            return val, i
        shift += 7


def protobuf_fields(buf: bytes):
    """(field number, wire type, value, the field's raw bytes) for each field of a message."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            val, i = buf[i: i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            val, i = buf[i: i + n], i + n
        elif wire == 5:
            val, i = buf[i: i + 4], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, val, buf[start:i]


def read_spm_pieces(path: str) -> Tuple[List[str], List[float], List[int]]:
    with open(path, "rb") as fh:
        buf = fh.read()
    pieces, scores, types = [], [], []
    for num, wire, val, _ in protobuf_fields(buf):
        if num != 1 or wire != 2:
            continue
        piece, score, typ = "", 0.0, 1
        for n2, w2, v2, _ in protobuf_fields(val):
            if n2 == 1 and w2 == 2:
                piece = v2.decode("utf-8")
            elif n2 == 2 and w2 == 5:
                (score,) = struct.unpack("<f", v2)
            elif n2 == 3 and w2 == 0:
                typ = v2
        pieces.append(piece)
        scores.append(score)
        types.append(typ)
    return pieces, scores, types


def approx_encode(path: str, text: str, bos: bool = True) -> List[int]:
    pieces, scores, types = read_spm_pieces(path)
    # Reuse the llama2.c BPE machinery: pieces as UTF-8 bytes, with U+2581 for spaces.
    # Control/unknown pieces (types 2, 3) must never be produced by merging.
    as_bytes = [p.encode("utf-8") if t in (1, 6) else b"\x00<ctl%d>" % i
                for i, (p, t) in enumerate(zip(pieces, types))]
    tok = Llama2cTokenizer(as_bytes, scores)
    sp = "\u2581".encode("utf-8")
    data = sp + text.replace(" ", "\u2581").encode("utf-8")
    # Byte fallback: byte b is the piece "<0xXX>" (type 6), not b + 3 as in llama2.c.
    byte_id = {p: i for i, (p, t) in enumerate(zip(pieces, types)) if t == 6}
    fixed: List[int] = []
    grouped = []
    i = 0
    while i < len(data):  # regroup exactly like _initial_symbols to map fallbacks
        j = i + 1
        while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        grouped.append(data[i:j])
        i = j
    for g in grouped:
        tid = tok.lookup.get(g)
        if tid is not None:
            fixed.append(tid)
        else:
            fixed.extend(byte_id.get("<0x%02X>" % b, 0) for b in g)
    out = tok._merge(fixed)
    return ([1] if bos else []) + out
