"""Readers and writers for the model files wkvq consumes, in plain numpy.

llama2.c checkpoint (.bin, "v0"): 7 int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
  vocab_size [negative: separate classifier at the end], seq_len), then float32 tensors in the
  order listed in read_llama2c(). The freq_cis tables stored in the file are read and returned
  but the reference forward recomputes RoPE angles in float64.
llama2.c tokenizer (tok512.bin): int32 max_token_length, then per token: float32 score,
  int32 length, `length` bytes.
safetensors: u64 little-endian header length N, N bytes of JSON
  {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data;
  offsets are relative to the start of the data.
Hugging Face Llama directory: config.json + model.safetensors or sharded
  model-0000i-of-0000n.safetensors with model.safetensors.index.json {"weight_map": {...}}.
"""
from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Dict, List, Tuple

import numpy as np

from .model import INTERLEAVED, ROTATE_HALF, Config, Layer, Model, Weights

# ------------------------------------------------------------------------------------------
# llama2.c

LLAMA2C_HEADER = struct.Struct("<7i")


def read_llama2c(path: str) -> Tuple[Model, Dict[str, np.ndarray]]:
    """Returns (model, extras) where extras holds freq_cis_real/imag as stored in the file."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size < LLAMA2C_HEADER.size:
        raise ValueError(f"{path}: too short for a llama2.c header")
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = LLAMA2C_HEADER.unpack(
        data[: LLAMA2C_HEADER.size].tobytes())
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // n_heads
    floats = data[LLAMA2C_HEADER.size:]
    if floats.size % 4:
        raise ValueError(f"{path}: payload is not a whole number of float32")
    f = floats.view("<f4")
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        if off + n > f.size:
            raise ValueError(f"{path}: truncated while reading a tensor of shape {shape}")
        out = f[off: off + n].reshape(shape).astype(np.float32)
        off += n
        return out

    emb = take(vocab, dim)
    rms_att = take(n_layers, dim)
    wq = take(n_layers, n_heads * hs, dim)
    wk = take(n_layers, n_kv * hs, dim)
    wv = take(n_layers, n_kv * hs, dim)
    wo = take(n_layers, dim, n_heads * hs)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)
    freq_real = take(seq_len, hs // 2)
    freq_imag = take(seq_len, hs // 2)
    wcls = emb if shared else take(vocab, dim)
    if off != f.size:
        raise ValueError(f"{path}: {f.size - off} trailing floats")
    layers = [Layer(rms_att[l], wq[l], wk[l], wv[l], wo[l], rms_ffn[l], w1[l], w2[l], w3[l])
              for l in range(n_layers)]
    cfg = Config(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads,
                 n_kv_heads=n_kv, head_dim=hs, vocab_size=vocab, seq_len=seq_len,
                 rope_theta=10000.0, norm_eps=1e-5, rope_layout=INTERLEAVED, tied_output=shared)
    return Model(cfg, Weights(emb, layers, rms_final, wcls)), {
        "freq_cis_real": freq_real, "freq_cis_imag": freq_imag}


def read_llama2c_tokenizer(path: str, vocab_size: int) -> Tuple[List[bytes], List[float], int]:
    """Returns (pieces as bytes, scores, max_token_length)."""
    with open(path, "rb") as fh:
        data = fh.read()
    (max_len,) = struct.unpack_from("<i", data, 0)
    off = 4
    pieces, scores = [], []
    for i in range(vocab_size):
        if off + 8 > len(data):
            raise ValueError(f"{path}: truncated at token {i}")
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        if n < 0 or off + n > len(data):
            raise ValueError(f"{path}: token {i} has bad length {n}")
        pieces.append(data[off: off + n])
        scores.append(score)
        off += n
    return pieces, scores, max_len


# ------------------------------------------------------------------------------------------
# Floating-point formats

def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns (uint16), round to nearest, ties to even (finite input)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (np.asarray(b, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def round_to_bf16(x: np.ndarray) -> np.ndarray:
    return bf16_bits_to_f32(f32_to_bf16_bits(x)).reshape(np.shape(x))


def round_to_f16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


# ------------------------------------------------------------------------------------------
# safetensors

_ST_NUMPY = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"),
             "I32": np.dtype("<i4"), "I64": np.dtype("<i8"), "U8": np.dtype("u1"),
             "I8": np.dtype("i1"), "BF16": np.dtype("<u2")}


def read_safetensors(path: str) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Returns ({name: float32 array (or integer array)}, {name: dtype string})."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short")
    (n,) = struct.unpack_from("<Q", raw, 0)
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} beyond file size")
    header = json.loads(raw[8: 8 + n].decode("utf-8"))
    data = raw[8 + n:]
    tensors, dtypes = {}, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        shape = tuple(info["shape"])
        b, e = info["data_offsets"]
        np_dt = _ST_NUMPY[dt]
        count = int(np.prod(shape)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * np_dt.itemsize:
            raise ValueError(f"{path}: tensor {name} has bad offsets {b}..{e}")
        arr = np.frombuffer(data, dtype=np_dt, count=count, offset=b).reshape(shape)
        if dt == "BF16":
            arr = bf16_bits_to_f32(arr).reshape(shape)
        elif dt in ("F16", "F32", "F64"):
            arr = arr.astype(np.float32)
        tensors[name] = arr
        dtypes[name] = dt
    return tensors, dtypes


def write_safetensors(path: str, tensors: Dict[str, np.ndarray], dtype: str) -> int:
    """Writes float tensors converted to dtype (F32, F16 or BF16). Returns the data size."""
    header, chunks, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            buf = a.astype("<f4").tobytes()
        elif dtype == "F16":
            buf = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            buf = f32_to_bf16_bits(a).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [off, off + len(buf)]}
        chunks.append(buf)
        off += len(buf)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(hjson)))
        fh.write(hjson)
        for c in chunks:
            fh.write(c)
    return off


# ------------------------------------------------------------------------------------------
# Hugging Face Llama directories

def hf_tensor_names(n_layers: int) -> List[str]:
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    for l in range(n_layers):
        p = f"model.layers.{l}."
        names += [p + "input_layernorm.weight", p + "post_attention_layernorm.weight"]
        names += [p + f"self_attn.{x}_proj.weight" for x in "qkvo"]
        names += [p + f"mlp.{x}_proj.weight" for x in ("gate", "up", "down")]
    return names


def config_from_hf(cfg: dict) -> Config:
    dim = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    head_dim = int(cfg.get("head_dim") or dim // n_heads)
    return Config(
        dim=dim, hidden_dim=int(cfg["intermediate_size"]),
        n_layers=int(cfg["num_hidden_layers"]), n_heads=n_heads,
        n_kv_heads=int(cfg.get("num_key_value_heads") or n_heads), head_dim=head_dim,
        vocab_size=int(cfg["vocab_size"]), seq_len=int(cfg.get("max_position_embeddings", 2048)),
        rope_theta=float(cfg.get("rope_theta", 10000.0)),
        norm_eps=float(cfg.get("rms_norm_eps", 1e-6)), rope_layout=ROTATE_HALF,
        tied_output=bool(cfg.get("tie_word_embeddings", False)),
        bos_id=int(cfg.get("bos_token_id", 1)), eos_id=int(cfg.get("eos_token_id", 2)))


def read_hf_dir(path: str) -> Tuple[Model, Dict[str, str]]:
    """Returns (model in rotate-half layout, {tensor name: stored dtype})."""
    with open(os.path.join(path, "config.json")) as fh:
        cfg = config_from_hf(json.load(fh))
    index = os.path.join(path, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as fh:
            files = sorted(set(json.load(fh)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    t, dt = {}, {}
    for f in files:
        a, d = read_safetensors(os.path.join(path, f))
        t.update(a)
        dt.update(d)
    emb = t["model.embed_tokens.weight"]
    layers = []
    for l in range(cfg.n_layers):
        p = f"model.layers.{l}."
        layers.append(Layer(
            att_norm=t[p + "input_layernorm.weight"], wq=t[p + "self_attn.q_proj.weight"],
            wk=t[p + "self_attn.k_proj.weight"], wv=t[p + "self_attn.v_proj.weight"],
            wo=t[p + "self_attn.o_proj.weight"], ffn_norm=t[p + "post_attention_layernorm.weight"],
            w1=t[p + "mlp.gate_proj.weight"], w2=t[p + "mlp.down_proj.weight"],
            w3=t[p + "mlp.up_proj.weight"]))
    if "lm_head.weight" in t and not cfg.tied_output:
        wcls = t["lm_head.weight"]
    else:
        wcls = emb
    return Model(cfg, Weights(emb, layers, t["model.norm.weight"], wcls)), dt


def hf_tensors_from_model(model: Model, include_lm_head: bool) -> Dict[str, np.ndarray]:
    """HF tensor dict of a model that is already in the rotate-half layout."""
    W, cfg = model.weights, model.config
    assert cfg.rope_layout == ROTATE_HALF
    t = {"model.embed_tokens.weight": W.emb, "model.norm.weight": W.final_norm}
    for l, L in enumerate(W.layers):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = L.att_norm
        t[p + "post_attention_layernorm.weight"] = L.ffn_norm
        t[p + "self_attn.q_proj.weight"] = L.wq
        t[p + "self_attn.k_proj.weight"] = L.wk
        t[p + "self_attn.v_proj.weight"] = L.wv
        t[p + "self_attn.o_proj.weight"] = L.wo
        t[p + "mlp.gate_proj.weight"] = L.w1
        t[p + "mlp.up_proj.weight"] = L.w3
        t[p + "mlp.down_proj.weight"] = L.w2
    if include_lm_head:
        t["lm_head.weight"] = W.wcls
    return t


def hf_config_dict(cfg: Config, tied: bool, dtype_name: str) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": cfg.dim, "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.n_layers, "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads, "head_dim": cfg.head_dim,
        "vocab_size": cfg.vocab_size, "max_position_embeddings": cfg.seq_len,
        "rope_theta": float(cfg.rope_theta), "rms_norm_eps": float(cfg.norm_eps),
        "tie_word_embeddings": tied, "hidden_act": "silu",
        "bos_token_id": cfg.bos_id, "eos_token_id": cfg.eos_id, "torch_dtype": dtype_name,
        "attention_bias": False, "mlp_bias": False, "rope_scaling": None,
    }


def write_hf_dir(path: str, model: Model, dtype: str = "F32", shards: int = 1,
                 tied: bool = True) -> None:
    """Writes config.json + safetensors (one file or `shards` files with an index)."""
    os.makedirs(path, exist_ok=True)
    torch_dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype]
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(hf_config_dict(model.config, tied, torch_dtype), fh, indent=2)
    tensors = hf_tensors_from_model(model, include_lm_head=not tied)
    if shards == 1:
        write_safetensors(os.path.join(path, "model.safetensors"), tensors, dtype)
        return
    names = sorted(tensors)
    parts = [names[i::shards] for i in range(shards)]
    weight_map, total = {}, 0
    for i, part in enumerate(parts):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        total += write_safetensors(os.path.join(path, fname), {n: tensors[n] for n in part}, dtype)
        weight_map.update({n: fname for n in part})
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh, indent=2)


def llama2c_to_rotate_half(model: Model) -> Model:
    """The same function as an HF (rotate-half) model: q/k rows permuted within each head."""
    from .model import interleaved_to_rotate_half_rows
    cfg = model.config
    assert cfg.rope_layout == INTERLEAVED
    layers = []
    for L in model.weights.layers:
        layers.append(Layer(
            att_norm=L.att_norm,
            wq=interleaved_to_rotate_half_rows(L.wq, cfg.n_heads, cfg.head_dim),
            wk=interleaved_to_rotate_half_rows(L.wk, cfg.n_kv_heads, cfg.head_dim),
            wv=L.wv, wo=L.wo, ffn_norm=L.ffn_norm, w1=L.w1, w2=L.w2, w3=L.w3))
    W = model.weights
    new_cfg = dataclasses.replace(cfg, rope_layout=ROTATE_HALF)
    return Model(new_cfg, Weights(W.emb, layers, W.final_norm, W.wcls))
