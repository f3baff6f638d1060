"""Float64 numpy reference of the quantized model of design.md section 2: RTN int-b weights
(one group per row), per-token int-b KV groups with the stored fp16 minimum and scale, static
channel smoothing from calibration statistics, and teacher-forced POQ attention.

Written from the design's formulas, independently of the C++ runtime.
"""
from __future__ import annotations

import numpy as np

from reference.model import Model, apply_rope, forward, rmsnorm, silu


def f16(x: np.ndarray) -> np.ndarray:
    """Round to IEEE half (nearest even), back to float64."""
    return np.asarray(x, np.float32).astype(np.float16).astype(np.float64)


def rtn_rows(w: np.ndarray, bits: int) -> np.ndarray:
    """W^ of group-wise asymmetric RTN with one group per row; the range is widened to include 0
    (formats/weight_quant.h), the scale stored in fp16."""
    hi = np.maximum(w.max(1, keepdims=True), 0.0)
    lo = np.minimum(w.min(1, keepdims=True), 0.0)
    s = f16(np.maximum((hi - lo) / (2 ** bits - 1), 1e-5))
    z = np.round(-lo / s)
    q = np.clip(np.round(w / s) + z, 0, 2 ** bits - 1)
    return (q - z) * s


def rtn_model(model: Model, bits: int) -> Model:
    out = model.with_weights(lambda a: a)
    for layer in out.weights.layers:
        for n in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            setattr(layer, n, rtn_rows(getattr(layer, n), bits))
    return out


def kv_fake_quant(x: np.ndarray, bits: int, group: int) -> np.ndarray:
    """x^ of per-token groups: min and scale = (max - min) / (2^b - 1) stored in fp16,
    q = clamp(round((x - m) / s)), x^ = m + q s (a constant group decodes to m)."""
    t, c = x.shape
    xs = x.reshape(t, c // group, group)
    mn = xs.min(-1, keepdims=True)
    mx = xs.max(-1, keepdims=True)
    qmax = 2 ** bits - 1
    s = f16((mx - mn) / qmax)
    m = f16(mn)
    q = np.where(s > 0, np.clip(np.round((xs - m) / np.where(s > 0, s, 1.0)), 0, qmax), 0.0)
    return (m + q * s).reshape(t, c)


def rel8_levels(lo: float, hi: float) -> np.ndarray:
    """The 256 levels of a group's static range [lo, hi] (formats/kv_quant.h, rel8): 224 evenly
    across it, 16 beyond each end at u 2^(j/2) / 16 (u = hi - lo, or max(1, |lo|) when 0)."""
    r = hi - lo
    u = r if r > 0 else max(1.0, abs(lo))
    tail = u * 2.0 ** (np.arange(16) / 2.0) / 16.0
    core = np.minimum(lo + np.arange(224) * (r / 223.0), hi)
    core[-1] = hi
    return np.concatenate([(lo - tail)[::-1], core, hi + tail])


def kv_rel8_fake_quant(x: np.ndarray, bits: int, group: int, levels: np.ndarray) -> np.ndarray:
    """x^ of per-token groups with rel8 metadata: m = the last level <= min, t = the first level
    >= max (clamped to the ends), s = (t - m) / (2^b - 1), q = clamp(round((x - m) / s)),
    x^ = m + q s. levels: (groups, 256)."""
    t, c = x.shape
    xs = x.reshape(t, c // group, group)
    qmax = 2 ** bits - 1
    out = np.empty_like(xs)
    for g in range(c // group):
        lv = levels[g]
        m8 = np.clip(np.searchsorted(lv, xs[:, g].min(-1), "right") - 1, 0, 255)
        t8 = np.clip(np.searchsorted(lv, xs[:, g].max(-1), "left"), 0, 255)
        m, s = lv[m8][:, None], ((lv[t8] - lv[m8]) / qmax)[:, None]
        q = np.where(s > 0, np.clip(np.round((xs[:, g] - m) / np.where(s > 0, s, 1.0)), 0, qmax),
                     0.0)
        out[:, g] = m + q * s
    return out.reshape(t, c)


def rel8_group_levels(ranges, smoothing, kv_dim: int, group: int) -> list:
    """Per layer (K levels, V levels), each (kv_dim / group, 256): the static ranges of the
    smoothed channels ((x - d) / s of each channel's min and max), merged per group."""
    out = []
    for (lo, hi), (dk, sk, dv, sv) in zip(ranges, smoothing):
        per = []
        for sl, d, s in ((slice(0, kv_dim), dk, sk), (slice(kv_dim, 2 * kv_dim), dv, sv)):
            a, b = ((lo[sl] - d) / s).reshape(-1, group), ((hi[sl] - d) / s).reshape(-1, group)
            per.append(np.stack([rel8_levels(x, y) for x, y in zip(a.min(1), b.max(1))]))
        out.append(tuple(per))
    return out


def kv_channel_ranges(model: Model, windows, sinks: int = 0) -> list:
    """Per layer (min, max) over tokens of K (after RoPE) and V, concatenated: (2 * kv_dim,),
    leaving out the first `sinks` positions of every window (the attention sink)."""
    cfg, w = model.config, model.weights
    acc = [None] * cfg.n_layers
    for toks in windows:
        t = len(toks)
        _, hidden = forward(model, toks, return_hidden=True)
        inputs = [w.emb[toks]] + hidden[:-1]
        for li, layer in enumerate(w.layers):
            xb = rmsnorm(inputs[li], layer.att_norm, cfg.norm_eps)
            k = apply_rope((xb @ layer.wk.T).reshape(t, cfg.n_kv_heads, cfg.head_dim),
                           np.arange(t), cfg.rope_theta, cfg.rope_layout).reshape(t, -1)
            kv = np.concatenate([k, xb @ layer.wv.T], 1)[sinks:]
            lo, hi = kv.min(0), kv.max(0)
            acc[li] = (lo, hi) if acc[li] is None else (np.minimum(acc[li][0], lo),
                                                       np.maximum(acc[li][1], hi))
    return acc


def stats_smoothing(ranges, kv_dim: int, floor: float = 1e-2) -> list:
    """Per layer (dK, sK, dV, sV): d = (max + min) / 2, s = max(r / mean(r), floor)."""
    out = []
    for lo, hi in ranges:
        d, r = (hi + lo) / 2, (hi - lo) / 2
        parts = []
        for sl in (slice(0, kv_dim), slice(kv_dim, 2 * kv_dim)):
            parts += [d[sl], np.maximum(r[sl] / r[sl].mean(), floor)]
        out.append(tuple(parts))
    return out


def quantized_logits(model: Model, toks: np.ndarray, bits: int, group: int, poq: bool,
                     smoothing=None, vbits: int = 0, window: int = 0, rel8=None) -> np.ndarray:
    """Logits of one window in the teacher-forced decode form: token t sees K^, V^ of j < t and,
    with POQ, its own full-precision k_t, v_t (without POQ its own K^, V^ too). Values at `vbits`
    when given; with a window of W, the W most recent tokens the cache holds (j in [t - W, t)
    under POQ, [t + 1 - W, t] without) are seen rounded to fp16 instead of K^, V^. With rel8
    (per layer (K levels, V levels), rel8_group_levels) the groups' metadata is rel8."""
    cfg, w = model.config, model.weights
    t = len(toks)
    hd, heads, kvh = cfg.head_dim, cfg.n_heads, cfg.n_kv_heads
    pos, diag = np.arange(t), (np.arange(t), np.arange(t))
    future = np.triu(np.ones((t, t), bool), 1)
    x = w.emb[toks].astype(np.float64)
    for li, layer in enumerate(w.layers):
        xb = rmsnorm(x, layer.att_norm, cfg.norm_eps)
        q = apply_rope((xb @ layer.wq.T).reshape(t, heads, hd), pos, cfg.rope_theta,
                       cfg.rope_layout)
        k = apply_rope((xb @ layer.wk.T).reshape(t, kvh, hd), pos, cfg.rope_theta,
                       cfg.rope_layout).reshape(t, -1)
        v = xb @ layer.wv.T
        dk, sk, dv, sv = smoothing[li] if smoothing is not None else (0.0, 1.0, 0.0, 1.0)
        if rel8 is None:
            kq = kv_fake_quant((k - dk) / sk, bits, group)
            vq = kv_fake_quant((v - dv) / sv, vbits or bits, group)
        else:
            kq = kv_rel8_fake_quant((k - dk) / sk, bits, group, rel8[li][0])
            vq = kv_rel8_fake_quant((v - dv) / sv, vbits or bits, group, rel8[li][1])
        kh = (kq * sk + dk).reshape(t, kvh, hd)
        vh = (vq * sv + dv).reshape(t, kvh, hd)
        k, v = k.reshape(t, kvh, hd), v.reshape(t, kvh, hd)
        held = pos[:, None] + (0 if poq else 1)  # the tokens the cache holds for query t
        win = (pos[None, :] >= held - window) & (pos[None, :] < held)  # (query, key)
        out = np.zeros((t, heads, hd))
        for h in range(heads):
            g = h // (heads // kvh)
            s = np.where(win, q[:, h] @ f16(k[:, g]).T, q[:, h] @ kh[:, g].T) / np.sqrt(hd)
            if poq:
                s[diag] = (q[:, h] * k[:, g]).sum(-1) / np.sqrt(hd)
            s = np.where(future, -np.inf, s)
            p = np.exp(s - s.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            if poq:
                own = p[diag].copy()
                p[diag] = 0.0
            seen = np.where(win, 0.0, p) @ vh[:, g] + np.where(win, p, 0.0) @ f16(v[:, g])
            out[:, h] = seen + own[:, None] * v[:, g] if poq else seen
        x = x + out.reshape(t, -1) @ layer.wo.T
        xb = rmsnorm(x, layer.ffn_norm, cfg.norm_eps)
        x = x + (silu(xb @ layer.w1.T) * (xb @ layer.w3.T)) @ layer.w2.T
    x = rmsnorm(x, w.final_norm, cfg.norm_eps)
    return x @ w.wcls.T
