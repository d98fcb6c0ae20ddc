# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""What llama.cpp allocates on the GPU for a model: the memory estimate the VRAM plan (``_vram_plan``) sizes with.

The estimate follows what llama.cpp allocates (measured, see benchmarks/README-vram.md):
weights of the offloaded layers (the token embedding stays on the CPU), the KV cache
``n_layer * n_ctx * n_head_kv * (key_length * bytes(type_k) + value_length * bytes(type_v))`` with ``n_ctx``
rounded up to a multiple of 256, and the compute buffer of one micro-batch. Ollama runs llama.cpp too, so its
models are estimated the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ._gguf import GgufInfo
from ._llama_server import micro_batch

__all__ = [
    "KV_CACHE_TYPES",
    "RUNTIME_OVERHEAD",
    "LlamaEstimate",
    "LlamaSettings",
    "estimate_llamacpp",
    "settings_for_model",
]

MIB = 2**20
# bytes per block and elements per block of the KV cache types llama.cpp accepts (--cache-type-k/-v)
KV_CACHE_TYPES = {
    "f32": (4, 1),
    "f16": (2, 1),
    "bf16": (2, 1),
    "q8_0": (34, 32),
    "q4_0": (18, 32),
    "q4_1": (20, 32),
    "iq4_nl": (18, 32),
    "q5_0": (22, 32),
    "q5_1": (24, 32),
}
_KV_PAD = 256  # llama.cpp rounds the context up to a multiple of this (measured)
# Encoder-only architectures keep no KV cache.
_NO_KV_ARCHS = frozenset({"bert", "nomic-bert", "nomic-bert-moe", "jina-bert-v2", "jina-bert-v3", "neo-bert", "modern-bert", "t5encoder"})
# What a GPU process holds beyond llama.cpp's own buffers (CUDA context and cuBLAS workspace; ROCm/Vulkan/SYCL runtime).
# An allowance from the vendors' documentation and common reports, not measured here (no GPU on the build machine).
RUNTIME_OVERHEAD = {"nvidia": 384 * MIB, "amd": 256 * MIB, "intel": 256 * MIB}


@dataclass
class LlamaSettings:
    n_ctx: int  # --ctx-size: the whole KV cache, shared by the --parallel sequences
    n_gpu_layers: int = 999
    n_parallel: int = 1
    n_ubatch: int = 512
    type_k: str = "f16"
    type_v: str = "f16"
    flash_attn: str = "auto"  # on | off | auto (llama.cpp turns it on where the backend supports it)


@dataclass
class LlamaEstimate:
    weights: int  # on the GPU
    kv_cache: int
    compute: int
    n_ctx: int  # as llama.cpp rounds it
    weights_total: int
    offloaded_layers: int
    n_layer: int
    notes: List[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute


def _flag_values(args: Sequence[str]) -> Dict[str, Optional[str]]:
    """``--name value`` and ``--name=value`` pairs of llama-server arguments (a flag alone maps to None)."""
    values: Dict[str, Optional[str]] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if eq:
                values[name] = value
            elif index + 1 < len(args) and not args[index + 1].startswith("-"):
                values[name] = args[index + 1]
                index += 1
            else:
                values[name] = None
        index += 1
    return values


def settings_for_model(model: Mapping[str, Any]) -> LlamaSettings:
    """The settings the llamacpp role starts llama-server with: the catalog's context times parallel, its GPU layers,
    and what the catalog's ``args`` override (context, layers, micro-batch, cache types, flash attention)."""
    flags = _flag_values([str(a) for a in model.get("args") or []])

    def pick(names: Sequence[str], default: Any) -> Any:
        for name in names:
            if name in flags:
                return flags[name]
        return default

    def number(names: Sequence[str], default: Any) -> int:
        value = pick(names, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{names[-1]} {value!r} is not a whole number") from None

    parallel = number(("-np", "--parallel"), model.get("parallel") or 1)
    n_ctx = number(("-c", "--ctx-size"), int(model.get("context") or 4096) * parallel)
    flash = pick(("-fa", "--flash-attn"), "auto")
    settings = LlamaSettings(
        n_ctx=n_ctx,
        n_gpu_layers=number(("-ngl", "--gpu-layers", "--n-gpu-layers"), model.get("gpu_layers", 999)),
        n_parallel=parallel,
        n_ubatch=number(("-ub", "--ubatch-size"), micro_batch(model)),
        type_k=str(pick(("-ctk", "--cache-type-k"), "f16")).lower(),
        type_v=str(pick(("-ctv", "--cache-type-v"), "f16")).lower(),
        flash_attn="on" if flash is None else str(flash).lower(),  # the older flag form takes no value
    )
    for name, kind in (("--cache-type-k", settings.type_k), ("--cache-type-v", settings.type_v)):
        if kind not in KV_CACHE_TYPES:
            raise ValueError(f"{name} {kind!r} is not a KV cache type of llama.cpp (one of {', '.join(KV_CACHE_TYPES)})")
    return settings


def _per_layer(value: Any, n_layer: int) -> List[int]:
    if isinstance(value, list):
        return [int(v) for v in value[:n_layer]] + [int(value[-1]) if value else 0] * max(0, n_layer - len(value))
    return [int(value)] * n_layer


def _row_bytes(kind: str, elements: int) -> int:
    size, block = KV_CACHE_TYPES[kind]
    return -(-elements // block) * size


def estimate_llamacpp(info: GgufInfo, settings: LlamaSettings) -> LlamaEstimate:
    """What llama.cpp allocates on the GPU for a model with these settings (weights, KV cache, compute buffer)."""
    notes: List[str] = []
    n_layer = int(info.get("block_count") or 0)
    n_embd = int(info.get("embedding_length") or 0)
    if not n_layer or not n_embd:
        raise ValueError(f"{info.source or 'the model'}: the GGUF header has no {info.architecture}.block_count or .embedding_length")
    n_head = _per_layer(info.get("attention.head_count", 0), n_layer)
    n_head_kv = _per_layer(info.get("attention.head_count_kv", info.get("attention.head_count", 0)), n_layer)
    head = max(n_head) or 1
    key_length = int(info.get("attention.key_length") or n_embd // head)
    value_length = int(info.get("attention.value_length") or n_embd // head)
    n_ff = max(_per_layer(info.get("feed_forward_length", 0), n_layer) or [0])
    experts_used = int(info.get("expert_used_count") or 0)
    if experts_used:
        # a mixture of experts computes the chosen experts side by side (and any shared expert)
        expert_ff = int(info.get("expert_feed_forward_length") or n_ff)
        n_ff = max(n_ff, experts_used * expert_ff + int(info.get("expert_shared_feed_forward_length") or 0))
    n_vocab = int(info.n_vocab or 0)
    for kind in (settings.type_k, settings.type_v):
        if kind not in KV_CACHE_TYPES:
            raise ValueError(f"{kind!r} is not a KV cache type of llama.cpp; use one of {', '.join(KV_CACHE_TYPES)}")

    # which layers are offloaded: the last n_gpu_layers of the blocks, then the output layer
    offloaded = max(0, min(settings.n_gpu_layers, n_layer))
    first_gpu = n_layer - offloaded
    output_on_gpu = settings.n_gpu_layers > n_layer
    weights = 0
    tied = not any(name == "output.weight" for name, _, _ in info.tensors)
    for name, _, size in info.tensors:
        match = re.match(r"^blk\.(\d+)\.", name)
        if match:
            weights += size if int(match.group(1)) >= first_gpu else 0
        elif name.startswith("token_embd."):
            # the input layer always stays on the CPU; with tied embeddings the output layer holds a copy
            weights += size if tied and output_on_gpu and name == "token_embd.weight" else 0
        elif output_on_gpu:
            weights += size
    if offloaded < n_layer:
        notes.append(f"{offloaded} of {n_layer} layers on the GPU")

    n_ctx = -(-settings.n_ctx // _KV_PAD) * _KV_PAD
    kv = 0
    if info.architecture in _NO_KV_ARCHS:
        notes.append(f"{info.architecture} keeps no KV cache")
    else:
        for layer in range(first_gpu, n_layer):
            kv += n_ctx * (_row_bytes(settings.type_k, n_head_kv[layer] * key_length) + _row_bytes(settings.type_v, n_head_kv[layer] * value_length))
        if info.get("attention.sliding_window"):
            notes.append("sliding-window layers counted with the full context (an upper bound)")
    flash = settings.flash_attn != "off"
    if settings.type_v not in ("f32", "f16", "bf16"):
        if settings.flash_attn == "off":
            notes.append("a quantized V cache needs flash attention: llama.cpp refuses --cache-type-v without it")
        if value_length % 32:
            notes.append(f"a quantized V cache needs a head size that is a multiple of 32 (this model's is {value_length})")

    compute = 0
    if offloaded or output_on_gpu:
        compute = _compute_buffer(
            n_ctx=n_ctx,
            n_ubatch=settings.n_ubatch,
            n_embd=n_embd,
            n_head=head,
            head_dim=max(key_length, value_length),
            n_ff=n_ff,
            n_vocab=n_vocab,
            flash=flash,
        )
    return LlamaEstimate(
        weights=weights,
        kv_cache=kv,
        compute=compute,
        n_ctx=n_ctx,
        weights_total=info.weights_bytes,
        offloaded_layers=offloaded,
        n_layer=n_layer,
        notes=notes,
    )


def _compute_buffer(*, n_ctx: int, n_ubatch: int, n_embd: int, n_head: int, head_dim: int, n_ff: int, n_vocab: int, flash: bool) -> int:
    """The largest set of f32 intermediates alive at once while llama.cpp evaluates one micro-batch over a full cache.

    ggml's allocator reuses memory, so the buffer is the peak of two phases (fitted to llama.cpp's reports, see
    benchmarks/README-vram.md): a layer, where the attention mask (an input every layer reads, so alive throughout) comes
    on top of the larger of attention (without flash attention the n_ctx x n_tokens x n_head score matrix) and the
    feed-forward block; and the output logits of every token of the micro-batch.
    """
    n_tokens = min(n_ctx, n_ubatch)
    mask = n_ctx * n_tokens * (2 if flash else 4)  # f16 with flash attention, else f32
    attention = 2 * n_head * head_dim * n_tokens * 4 + (0 if flash else n_ctx * n_tokens * n_head * 4)
    feed_forward = 3 * n_ff * n_tokens * 4  # gate, up and their product
    layer = mask + max(attention, feed_forward) + 3 * n_embd * n_tokens * 4
    output = n_vocab * n_tokens * 4 + 2 * n_embd * n_tokens * 4
    return max(layer, output)
