"""Independent PyTorch (float64) forward of the decoder families wkvq runs, read straight from a
Hugging Face config.json dict and a {tensor name: array} dict: Llama (with rope_scaling linear
or llama3, optional attention biases), Mistral, Qwen2 (q/k/v biases) and Qwen3 (per-head q/k
RMSNorm, explicit head_dim).

Written from the published definitions, not from wkvq or Hugging Face code:
  x_0 = E[tokens];  for each layer:
    a = rmsnorm(x) * g_in;  q = a Wq^T + bq;  k = a Wk^T + bk;  v = a Wv^T + bv
    (Qwen3) q_h = rmsnorm(q_h) * g_q, k_h = rmsnorm(k_h) * g_k for every head h
    q, k rotated by RoPE (rotate-half pairs (i, i + hd/2), angle pos * freq_i)
    o = softmax(q k^T / sqrt(hd) + causal mask) v  (GQA: query head h reads kv head h // group)
    x = x + o Wo^T (+ bo);  m = rmsnorm(x) * g_post;  x = x + (silu(m Wg^T) * (m Wu^T)) Wd^T
  logits = (rmsnorm(x) * g_final) W_head^T, W_head = E when tie_word_embeddings.
RoPE frequencies, with base_i = theta^(-2i/hd):
  linear: base_i / factor;
  llama3: wavelength w_i = 2 pi / base_i; w_i > L/low -> base_i / factor; w_i < L/high -> base_i;
          else (1 - s) base_i / factor + s base_i with s = (L / w_i - low) / (high - low),
          L = original_max_position_embeddings.
"""
from __future__ import annotations

import math
from typing import Dict, List

import numpy as np
import torch


def rope_frequencies(cfg: dict, head_dim: int) -> torch.Tensor:
    """(hd/2,) float64 rotation frequencies of the config's RoPE (with its rope_scaling)."""
    theta = float(cfg.get("rope_theta", 10000.0))
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    base = theta ** (-2.0 * i / head_dim)
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return base
    factor = float(rs["factor"])
    if kind == "linear":
        return base / factor
    if kind != "llama3":
        raise ValueError(f"reference: unknown rope_scaling {kind}")
    low, high = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
    orig = float(rs["original_max_position_embeddings"])
    out = torch.empty_like(base)
    for j in range(base.numel()):
        b = float(base[j])
        wavelen = 2.0 * math.pi / b
        if wavelen > orig / low:
            out[j] = b / factor
        elif wavelen < orig / high:
            out[j] = b
        else:
            s = (orig / wavelen - low) / (high - low)
            out[j] = (1.0 - s) * b / factor + s * b
    return out


def _rmsnorm(x: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * g


def _rope(x: torch.Tensor, freq: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """x: (T, H, hd), rotate-half pairs."""
    ang = positions[:, None].to(torch.float64) * freq[None, :]  # (T, hd/2)
    c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


def family_features(cfg: dict) -> Dict[str, bool]:
    """Which optional parts the config's architecture has."""
    arch = cfg["architectures"][0]
    bias = bool(cfg.get("attention_bias", False))
    return {"qkv_bias": arch == "Qwen2ForCausalLM" or bias,
            "o_bias": arch != "Qwen2ForCausalLM" and bias,
            "qk_norm": arch == "Qwen3ForCausalLM"}


def forward(cfg: dict, tensors: Dict[str, np.ndarray], tokens: List[int],
            magnitude: bool = False, keys: list = None):
    """(T, vocab) float64 logits of one causal pass over tokens at positions 0..T-1. With
    magnitude, also max over (t, v) of sum_j |head_vj| |x_tj| for the final normed state x: the
    absolute size of the last dot product, which scales rounding-error bounds. A `keys` list gets
    each layer's keys as the attention sees them (after q/k norm and RoPE), (T, n_kv * hd)."""
    W = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in tensors.items()}
    H, KV = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = float(cfg.get("rms_norm_eps", 1e-6))
    feat = family_features(cfg)
    freq = rope_frequencies(cfg, hd)
    T = len(tokens)
    pos = torch.arange(T)
    mask = torch.triu(torch.full((T, T), float("-inf"), dtype=torch.float64), diagonal=1)
    x = W["model.embed_tokens.weight"][torch.tensor(tokens)]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        a = _rmsnorm(x, W[p + "input_layernorm.weight"], eps)

        def proj(name: str, inp: torch.Tensor, has_bias: bool) -> torch.Tensor:
            y = inp @ W[p + name + ".weight"].T
            return y + W[p + name + ".bias"] if has_bias else y

        q = proj("self_attn.q_proj", a, feat["qkv_bias"]).reshape(T, H, hd)
        k = proj("self_attn.k_proj", a, feat["qkv_bias"]).reshape(T, KV, hd)
        v = proj("self_attn.v_proj", a, feat["qkv_bias"]).reshape(T, KV, hd)
        if feat["qk_norm"]:
            q = _rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = _rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = _rope(q, freq, pos), _rope(k, freq, pos)
        if keys is not None:
            keys.append(k.reshape(T, KV * hd).numpy().copy())
        rep = H // KV
        k = k.repeat_interleave(rep, dim=1)  # (T, H, hd): query head h reads kv head h // rep
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.einsum("thd,shd->hts", q, k) / math.sqrt(hd) + mask
        o = torch.einsum("hts,shd->thd", torch.softmax(scores, dim=-1), v).reshape(T, H * hd)
        x = x + proj("self_attn.o_proj", o, feat["o_bias"])
        m = _rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        hmid = torch.nn.functional.silu(m @ W[p + "mlp.gate_proj.weight"].T) * (
            m @ W[p + "mlp.up_proj.weight"].T)
        x = x + hmid @ W[p + "mlp.down_proj.weight"].T
    x = _rmsnorm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings", False) else \
        W["lm_head.weight"]
    logits = (x @ head.T).numpy()
    if not magnitude:
        return logits
    return logits, float((x.abs() @ head.abs().T).max())
