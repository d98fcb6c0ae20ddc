# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Random-weight LLaMA-architecture GGUF files of any shape, written with ``gguf.GGUFWriter``.

Used by the unit tests, the end-to-end test and the benchmarks. Tensors are given shaped like PyTorch Linear
weights ``(out, in)``; the writer reverses them into GGUF's order. The tokenizer is SentencePiece-style
(``llama``) with byte tokens, which is what llama.cpp needs to load the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

import gguf
import numpy as np

from ansible_collections.homelab.ai.plugins.module_utils._gguf import GgufInfo


@dataclass(frozen=True)
class Shape:
    name: str
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    n_ff: int
    n_vocab: int
    weights: str = "f16"  # f32 | f16 | q8_0 | q4_0
    tied: bool = False  # no output.weight: llama.cpp uses token_embd for the output too
    head_dim: int = 0  # 0: n_embd // n_head
    n_expert: int = 0  # a mixture of experts (Mixtral-style) with n_ff per expert
    n_expert_used: int = 0
    ctx_train: int = 32768
    pooling: str = ""  # mean | cls | last: an embedding model (llama-server --embeddings needs a pooling type)
    chat_template: str = ""  # Jinja, as in tokenizer.chat_template; empty: llama.cpp's default

    @property
    def d_head(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


_TYPES = {
    "f32": gguf.GGMLQuantizationType.F32,
    "f16": gguf.GGMLQuantizationType.F16,
    "q8_0": gguf.GGMLQuantizationType.Q8_0,
    "q4_0": gguf.GGMLQuantizationType.Q4_0,
}


def write_model(path: Path, shape: Shape, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(shape.name)
    writer.add_context_length(shape.ctx_train)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(shape.d_head)
    if shape.n_expert:
        writer.add_expert_count(shape.n_expert)
        writer.add_expert_used_count(shape.n_expert_used)
    if shape.head_dim:
        writer.add_key_length(shape.head_dim)
        writer.add_value_length(shape.head_dim)
    writer.add_file_type(int(_TYPES[shape.weights]) if shape.weights != "q4_0" else 2)
    if shape.pooling:
        writer.add_pooling_type(gguf.PoolingType[shape.pooling.upper()])
    if shape.chat_template:
        writer.add_chat_template(shape.chat_template)
    _tokenizer(writer, shape.n_vocab)

    def matrix(name: str, rows: int, cols: int, experts: int = 0) -> None:
        data = (rng.standard_normal((experts, rows, cols) if experts else (rows, cols), dtype=np.float32) * 0.02).astype(np.float32)
        kind = _TYPES[shape.weights]
        if kind == gguf.GGMLQuantizationType.F32:
            writer.add_tensor(name, data)
        elif kind == gguf.GGMLQuantizationType.F16:
            writer.add_tensor(name, data.astype(np.float16))
        else:
            writer.add_tensor(name, gguf.quants.quantize(data, kind), raw_dtype=kind)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(shape.n_embd, dtype=np.float32))

    q_dim, kv_dim = shape.n_head * shape.d_head, shape.n_head_kv * shape.d_head
    matrix("token_embd.weight", shape.n_vocab, shape.n_embd)
    for i in range(shape.n_layer):
        norm(f"blk.{i}.attn_norm.weight")
        matrix(f"blk.{i}.attn_q.weight", q_dim, shape.n_embd)
        matrix(f"blk.{i}.attn_k.weight", kv_dim, shape.n_embd)
        matrix(f"blk.{i}.attn_v.weight", kv_dim, shape.n_embd)
        matrix(f"blk.{i}.attn_output.weight", shape.n_embd, q_dim)
        norm(f"blk.{i}.ffn_norm.weight")
        if shape.n_expert:
            writer.add_tensor(f"blk.{i}.ffn_gate_inp.weight", (rng.standard_normal((shape.n_expert, shape.n_embd)) * 0.02).astype(np.float32))
            matrix(f"blk.{i}.ffn_gate_exps.weight", shape.n_ff, shape.n_embd, shape.n_expert)
            matrix(f"blk.{i}.ffn_up_exps.weight", shape.n_ff, shape.n_embd, shape.n_expert)
            matrix(f"blk.{i}.ffn_down_exps.weight", shape.n_embd, shape.n_ff, shape.n_expert)
        else:
            matrix(f"blk.{i}.ffn_gate.weight", shape.n_ff, shape.n_embd)
            matrix(f"blk.{i}.ffn_up.weight", shape.n_ff, shape.n_embd)
            matrix(f"blk.{i}.ffn_down.weight", shape.n_embd, shape.n_ff)
    norm("output_norm.weight")
    if not shape.tied:
        matrix("output.weight", shape.n_vocab, shape.n_embd)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _tokenizer(writer: gguf.GGUFWriter, n_vocab: int) -> None:
    special = ["<unk>", "<s>", "</s>"]
    tokens = special + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256
    filler = max(0, n_vocab - len(tokens))
    tokens += [f"\u2581t{i}" for i in range(filler)]
    types += [gguf.TokenType.NORMAL] * filler
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens[:n_vocab])
    writer.add_token_scores([0.0] * 3 + [0.0] * 256 + [-float(i) for i in range(filler)])
    writer.add_token_types(types[:n_vocab])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)


def header(*, n_layer=4, n_embd=256, n_head=4, n_head_kv=4, n_ff=704, n_vocab=4000, arch="llama", tied=False, extra=None, tensor_bytes=1000) -> GgufInfo:
    """A parsed GGUF header of a small llama-like model, without a file: what the VRAM estimate reads."""
    metadata: Dict[str, Any] = {
        "general.architecture": arch,
        f"{arch}.block_count": n_layer,
        f"{arch}.embedding_length": n_embd,
        f"{arch}.attention.head_count": n_head,
        f"{arch}.attention.head_count_kv": n_head_kv,
        f"{arch}.feed_forward_length": n_ff,
        "tokenizer.ggml.tokens": {"array_length": n_vocab},
        **(extra or {}),
    }
    tensors = [("token_embd.weight", 1, 10 * tensor_bytes)]
    for i in range(n_layer):
        tensors += [(f"blk.{i}.attn_q.weight", 1, tensor_bytes), (f"blk.{i}.ffn_up.weight", 1, tensor_bytes)]
    tensors.append(("output_norm.weight", 0, 7))
    if not tied:
        tensors.append(("output.weight", 1, 10 * tensor_bytes))
    return GgufInfo(architecture=arch, metadata=metadata, tensors=tensors, header_size=4096, source="test")
