"""llama2.c-style BPE tokenizer (the tok512.bin kind), written from its description.

encode(text, bos, eos):
  1. BOS (id 1) first if asked;
  2. if the text is non-empty, a dummy-prefix token: the id of the piece " ";
  3. the UTF-8 bytes are grouped into code points (a lead byte plus up to 3 continuation bytes
     10xxxxxx, grouped exactly as llama2.c does, so invalid UTF-8 behaves the same); a group
     that is a piece becomes that id, otherwise each of its bytes becomes id byte + 3;
  4. repeatedly merge the adjacent pair with the highest score whose concatenation is a piece
     (strictly higher wins, so the leftmost pair wins ties) until no pair merges;
  5. EOS (id 2) last if asked.
Step 4 is done with a heap over candidate pairs keyed by (-score, position of the left symbol):
each pop is the global best-and-leftmost pair, the same sequence of merges as the quadratic scan,
in O(n log n), so whole evaluation files tokenize in seconds.

decode(prev, token): the piece; with a leading space dropped after BOS; "<0xXX>" is byte XX.
"""
from __future__ import annotations

import heapq
import re
from typing import Dict, List, Optional, Sequence

from .formats import read_llama2c_tokenizer

BOS, EOS = 1, 2
_BYTE_PIECE = re.compile(rb"^<0x([0-9A-Fa-f]{2})>")


class Llama2cTokenizer:
    def __init__(self, pieces: Sequence[bytes], scores: Sequence[float]):
        self.pieces = list(pieces)
        self.scores = [float(s) for s in scores]
        self.lookup: Dict[bytes, int] = {}
        for i, p in enumerate(self.pieces):
            self.lookup.setdefault(p, i)  # first id wins if a piece repeats

    @classmethod
    def load(cls, path: str, vocab_size: int) -> "Llama2cTokenizer":
        pieces, scores, _ = read_llama2c_tokenizer(path, vocab_size)
        return cls(pieces, scores)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    # --------------------------------------------------------------------------------------
    def _initial_symbols(self, data: bytes) -> List[int]:
        ids: List[int] = []
        i, n = 0, len(data)
        while i < n:
            j = i + 1
            # Continuation bytes join the current group, at most 4 bytes per group.
            while j < n and (data[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            group = data[i:j]
            tid = self.lookup.get(group)
            if tid is not None:
                ids.append(tid)
            else:
                ids.extend(b + 3 for b in group)
            i = j
        return ids

    def _merge(self, ids: List[int]) -> List[int]:
        n = len(ids)
        if n < 2:
            return ids
        sym = list(ids)
        nxt = list(range(1, n)) + [-1]
        prv = [-1] + list(range(0, n - 1))
        alive = [True] * n
        pieces, lookup, scores = self.pieces, self.lookup, self.scores
        heap = []

        def push(left: int) -> None:
            right = nxt[left]
            if left < 0 or right < 0:
                return
            mid = lookup.get(pieces[sym[left]] + pieces[sym[right]])
            if mid is not None:
                heap.append((-scores[mid], left, sym[left], sym[right], mid))

        for i in range(n - 1):
            push(i)
        heapq.heapify(heap)
        while heap:
            _, left, lid, rid, mid = heapq.heappop(heap)
            right = nxt[left]
            # Stale entry: the left symbol changed or was absorbed. A symbol's piece only grows,
            # and its right neighbour only changes when it absorbs it, so (left, lid, rid)
            # identifies the pair state uniquely.
            if not alive[left] or sym[left] != lid or right < 0 or sym[right] != rid:
                continue
            sym[left] = mid
            alive[right] = False
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prv[nxt[right]] = left
            for cand in (prv[left], left):
                if cand >= 0:
                    r = nxt[cand]
                    if r >= 0:
                        m2 = lookup.get(pieces[sym[cand]] + pieces[sym[r]])
                        if m2 is not None:
                            heapq.heappush(heap, (-scores[m2], cand, sym[cand], sym[r], m2))
        out, i = [], 0
        while i >= 0:
            out.append(sym[i])
            i = nxt[i]
        return out

    def _merge_naive(self, ids: List[int]) -> List[int]:
        """The quadratic scan, for cross-checking _merge on short inputs."""
        ids = list(ids)
        while True:
            best, best_i, best_id = -1e10, -1, -1
            for i in range(len(ids) - 1):
                m = self.lookup.get(self.pieces[ids[i]] + self.pieces[ids[i + 1]])
                if m is not None and self.scores[m] > best:
                    best, best_i, best_id = self.scores[m], i, m
            if best_i < 0:
                return ids
            ids[best_i: best_i + 2] = [best_id]

    def encode(self, text, bos: bool = True, eos: bool = False, naive: bool = False) -> List[int]:
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        ids: List[int] = []
        if data:
            ids.append(self.lookup[b" "])
        ids.extend(self._initial_symbols(data))
        ids = self._merge_naive(ids) if naive else self._merge(ids)
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    # --------------------------------------------------------------------------------------
    def decode_piece(self, prev: int, token: int) -> bytes:
        piece = self.pieces[token]
        if prev == BOS and piece.startswith(b" "):
            piece = piece[1:]
        m = _BYTE_PIECE.match(piece)
        if m:
            piece = bytes([int(m.group(1), 16)])
        return piece
