"""Llama decoder reference forward in numpy (float64 by default).

Shapes follow the (out, in) convention of both llama2.c and Hugging Face: y = W @ x, so a batch
of row vectors X (..., in) is multiplied as X @ W.T.

RoPE layouts (head size hd, pair index i = 0 .. hd/2 - 1, angle = pos * theta^(-2i/hd)):
  interleaved  (llama2.c): channels (2i, 2i + 1) of every head rotate together;
  rotate_half  (HF):       channels (i, i + hd/2) rotate together.
The rotation is (a, b) -> (a cos - b sin, a sin + b cos) in both cases, so the two layouts give
identical results when each head's q/k projection rows are permuted accordingly
(see interleaved_to_rotate_half_rows).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

INTERLEAVED = "interleaved"
ROTATE_HALF = "rotate_half"


@dataclass
class Config:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    vocab_size: int
    seq_len: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    rope_layout: str = INTERLEAVED
    tied_output: bool = True
    bos_id: int = 1
    eos_id: int = 2

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim


@dataclass
class Layer:
    att_norm: np.ndarray  # (dim,)
    wq: np.ndarray  # (n_heads * hd, dim)
    wk: np.ndarray  # (n_kv * hd, dim)
    wv: np.ndarray  # (n_kv * hd, dim)
    wo: np.ndarray  # (dim, n_heads * hd)
    ffn_norm: np.ndarray  # (dim,)
    w1: np.ndarray  # (hidden, dim)   gate
    w2: np.ndarray  # (dim, hidden)   down
    w3: np.ndarray  # (hidden, dim)   up

    NAMES = ("att_norm", "wq", "wk", "wv", "wo", "ffn_norm", "w1", "w2", "w3")


@dataclass
class Weights:
    emb: np.ndarray  # (vocab, dim)
    layers: List[Layer]
    final_norm: np.ndarray  # (dim,)
    wcls: np.ndarray  # (vocab, dim); the same array as emb when tied

    def map(self, fn) -> "Weights":
        """A copy with fn applied to every tensor (tied heads stay tied)."""
        emb = fn(self.emb)
        wcls = emb if self.wcls is self.emb else fn(self.wcls)
        layers = [Layer(*[fn(getattr(l, n)) for n in Layer.NAMES]) for l in self.layers]
        return Weights(emb, layers, fn(self.final_norm), wcls)


@dataclass
class Model:
    config: Config
    weights: Weights

    def astype(self, dtype) -> "Model":
        return Model(self.config, self.weights.map(lambda a: np.asarray(a, dtype=dtype)))

    def with_weights(self, fn) -> "Model":
        return Model(self.config, self.weights.map(fn))


# ------------------------------------------------------------------------------------------
# RoPE

def interleaved_to_rotate_half_rows(w: np.ndarray, n_heads: int, head_dim: int) -> np.ndarray:
    """Permutes the rows of a q/k projection (n_heads*hd, in) from the interleaved pair layout to
    the rotate-half layout: within each head new row j = old row 2j, new row j + hd/2 = old row
    2j + 1 (j < hd/2)."""
    half = head_dim // 2
    perm = np.concatenate([np.arange(0, head_dim, 2), np.arange(1, head_dim, 2)])
    assert perm.shape == (head_dim,) and half * 2 == head_dim
    w = w.reshape(n_heads, head_dim, -1)
    return w[:, perm, :].reshape(n_heads * head_dim, -1)


def rope_angles(positions: np.ndarray, head_dim: int, theta: float) -> np.ndarray:
    """angle[p, i] = pos_p * theta^(-2i/hd), float64, shape (n_pos, hd/2)."""
    i = np.arange(head_dim // 2, dtype=np.float64)
    inv_freq = 1.0 / (float(theta) ** (2.0 * i / head_dim))
    return np.asarray(positions, dtype=np.float64)[:, None] * inv_freq[None, :]


def apply_rope(x: np.ndarray, positions: np.ndarray, theta: float, layout: str) -> np.ndarray:
    """x: (..., T, H, hd). Returns the rotated copy (dtype preserved)."""
    hd = x.shape[-1]
    ang = rope_angles(positions, hd, theta)  # (T, hd/2)
    cos = np.cos(ang).astype(x.dtype)[:, None, :]  # (T, 1, hd/2) broadcast over heads
    sin = np.sin(ang).astype(x.dtype)[:, None, :]
    if layout == INTERLEAVED:
        a, b = x[..., 0::2], x[..., 1::2]
    elif layout == ROTATE_HALF:
        a, b = x[..., : hd // 2], x[..., hd // 2:]
    else:
        raise ValueError(f"unknown RoPE layout {layout!r}")
    ra = a * cos - b * sin
    rb = a * sin + b * cos
    out = np.empty_like(x)
    if layout == INTERLEAVED:
        out[..., 0::2], out[..., 1::2] = ra, rb
    else:
        out[..., : hd // 2], out[..., hd // 2:] = ra, rb
    return out


# ------------------------------------------------------------------------------------------
# Forward

def linear(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y = x @ w.T for w of shape (out, in). einsum's own loops are ~2x faster here than the
    reference BLAS that Debian's numpy links by default."""
    return np.einsum("...i,oi->...o", x, w)


def rmsnorm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    ms = np.mean(x * x, axis=-1, keepdims=True)
    return x * (w / np.sqrt(ms + x.dtype.type(eps)))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def softmax_last(s: np.ndarray) -> np.ndarray:
    m = np.max(s, axis=-1, keepdims=True)
    e = np.exp(s - m)
    return e / np.sum(e, axis=-1, keepdims=True)


def softmax_inplace(s: np.ndarray) -> np.ndarray:
    """softmax over the last axis, overwriting s (the (B, H, T, T) score tensors are large)."""
    s -= np.max(s, axis=-1, keepdims=True)
    np.exp(s, out=s)
    s /= np.sum(s, axis=-1, keepdims=True)
    return s


ATTN_CHUNK = 128  # query rows per block: keeps the score block in cache, skips j > t blocks


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray):
    """softmax(q k^T + mask) v per (batch, head); q is already scaled by 1/sqrt(hd).
    q, k, v: (B, H, T, hd); mask: (T, T) with -inf where key j > query t. Done in query blocks
    [a, b) against keys [0, b) only; the result is the same math as one full (T, T) product."""
    T = q.shape[2]
    out = np.empty_like(q)
    kt = np.ascontiguousarray(k.transpose(0, 1, 3, 2))
    for a in range(0, T, ATTN_CHUNK):
        b = min(T, a + ATTN_CHUNK)
        s = np.ascontiguousarray(q[:, :, a:b]) @ kt[:, :, :, :b]  # (B, H, b-a, b)
        s += mask[a:b, :b]
        softmax_inplace(s)
        out[:, :, a:b] = s @ v[:, :, :b]
    return out


def forward(model: Model, tokens, dtype=np.float64, return_hidden: bool = False):
    """Logits at every position of one causal pass over `tokens`.

    tokens: (T,) or (B, T) integer ids; position of column t is t (each row a fresh context).
    Returns (T, V) or (B, T, V) logits in `dtype` (weights are cast to dtype first, so pass a
    Model already cast with model.astype(dtype) to avoid repeated casts in loops).
    With return_hidden, also returns the residual stream after each layer: list of (B, T, D).
    """
    cfg, W = model.config, model.weights
    toks = np.asarray(tokens, dtype=np.int64)
    squeeze = toks.ndim == 1
    if squeeze:
        toks = toks[None, :]
    if toks.min() < 0 or toks.max() >= cfg.vocab_size:
        raise ValueError("token id out of range")
    B, T = toks.shape
    hd, H, KV = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    group = H // KV
    cast = (lambda a: a if a.dtype == dtype else a.astype(dtype))
    scale = dtype(1.0 / np.sqrt(hd))
    pos = np.arange(T)
    mask = np.where(np.triu(np.ones((T, T), dtype=bool), k=1), -np.inf, 0.0).astype(dtype)

    x = cast(W.emb)[toks]  # (B, T, D)
    hidden = []
    for L in W.layers:
        xb = rmsnorm(x, cast(L.att_norm), cfg.norm_eps)
        q = linear(xb, cast(L.wq)).reshape(B, T, H, hd)
        k = linear(xb, cast(L.wk)).reshape(B, T, KV, hd)
        v = linear(xb, cast(L.wv)).reshape(B, T, KV, hd)
        q = apply_rope(q, pos, cfg.rope_theta, cfg.rope_layout)
        k = apply_rope(k, pos, cfg.rope_theta, cfg.rope_layout)
        # GQA: query head h reads kv head h // group. Heads to axis 1 for batched matmuls.
        qh = (q * scale).transpose(0, 2, 1, 3)  # (B, H, T, hd)
        kh = np.repeat(k.transpose(0, 2, 1, 3), group, axis=1)  # (B, H, T, hd)
        vh = np.repeat(v.transpose(0, 2, 1, 3), group, axis=1)
        att = causal_attention(qh, kh, vh, mask)  # (B, H, T, hd)
        att = att.transpose(0, 2, 1, 3).reshape(B, T, H * hd)
        x = x + linear(att, cast(L.wo))
        xb = rmsnorm(x, cast(L.ffn_norm), cfg.norm_eps)
        h = silu(linear(xb, cast(L.w1))) * linear(xb, cast(L.w3))
        x = x + linear(h, cast(L.w2))
        if return_hidden:
            hidden.append(x)
    x = rmsnorm(x, cast(W.final_norm), cfg.norm_eps)
    logits = linear(x, cast(W.wcls))
    if squeeze:
        logits = logits[0]
        hidden = [h[0] for h in hidden]
    return (logits, hidden) if return_hidden else logits


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] along the last axis, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    m = np.max(z, axis=-1, keepdims=True)
    lse = m[..., 0] + np.log(np.sum(np.exp(z - m), axis=-1))
    picked = np.take_along_axis(z, np.asarray(targets)[..., None], axis=-1)[..., 0]
    return lse - picked


def logit_magnitude(model: Model, tokens) -> np.ndarray:
    """|W_cls| @ |x_final| per position and vocab entry: the sum of absolute products that the
    last dot product accumulates (float64). Used to scale rounding-error bounds."""
    cfg, W = model.config, model.weights
    # Recompute the final normalised hidden state via a forward with hidden states.
    _, hidden = forward(model, tokens, return_hidden=True)
    x = rmsnorm(hidden[-1], W.final_norm.astype(np.float64), cfg.norm_eps)
    return np.abs(x) @ np.abs(W.wcls.astype(np.float64)).T
