# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._vram_estimate import LlamaSettings, estimate_llamacpp, settings_for_model
from tests.support.gguf_models import header

MIB = 2**20


# --- settings --------------------------------------------------------------------------------------------------------


def test_settings_from_the_catalog() -> None:
    settings = settings_for_model({"context": 8192, "parallel": 2, "gpu_layers": 20, "args": []})
    assert (settings.n_ctx, settings.n_parallel, settings.n_gpu_layers, settings.type_k, settings.flash_attn) == (16384, 2, 20, "f16", "auto")


def test_settings_from_args() -> None:
    model = {"context": 8192, "args": ["--cache-type-k", "q8_0", "-ctv=q4_0", "--flash-attn", "on", "-ub", "1024", "--ctx-size", "4000"]}
    settings = settings_for_model(model)
    assert (settings.type_k, settings.type_v, settings.flash_attn, settings.n_ubatch, settings.n_ctx) == ("q8_0", "q4_0", "on", 1024, 4000)
    assert settings_for_model({"context": 512, "args": ["-fa"]}).flash_attn == "on"  # the older flag form


# --- the llama.cpp estimate ------------------------------------------------------------------------------------------


def test_kv_cache_is_exact() -> None:
    # 2 * n_layer * n_ctx (rounded up to 256) * n_head_kv * head_dim * bytes
    estimate = estimate_llamacpp(header(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8), LlamaSettings(n_ctx=8000))
    assert estimate.n_ctx == 8192
    assert estimate.kv_cache == 2 * 32 * 8192 * 8 * 128 * 2
    q8 = estimate_llamacpp(header(n_layer=32, n_embd=4096, n_head=32, n_head_kv=8), LlamaSettings(n_ctx=8192, type_k="q8_0", type_v="q4_0", flash_attn="on"))
    assert q8.kv_cache == 32 * 8192 * 8 * 128 * (34 + 18) // 32


def test_kv_cache_with_per_layer_heads_and_own_key_length() -> None:
    info = header(n_layer=3, n_embd=512, n_head=8, n_head_kv=[2, 0, 4], extra={"llama.attention.key_length": 192, "llama.attention.value_length": 128})
    estimate = estimate_llamacpp(info, LlamaSettings(n_ctx=256))
    assert estimate.kv_cache == 256 * (2 + 0 + 4) * (192 + 128) * 2


def test_weights_on_the_gpu() -> None:
    info = header(n_layer=4, tensor_bytes=1000)
    full = estimate_llamacpp(info, LlamaSettings(n_ctx=512))
    assert full.weights_total == 10000 + 8 * 1000 + 7 + 10000
    assert full.weights == 8 * 1000 + 7 + 10000  # the token embedding stays on the CPU
    partial = estimate_llamacpp(info, LlamaSettings(n_ctx=512, n_gpu_layers=2))
    assert partial.weights == 2 * 2 * 1000  # the last two blocks; the output layer stays behind
    assert partial.kv_cache == full.kv_cache // 2
    assert partial.notes == ["2 of 4 layers on the GPU"]
    cpu = estimate_llamacpp(info, LlamaSettings(n_ctx=512, n_gpu_layers=0))
    assert (cpu.weights, cpu.kv_cache, cpu.compute) == (0, 0, 0)


def test_tied_embeddings_put_a_copy_on_the_gpu() -> None:
    estimate = estimate_llamacpp(header(tied=True, tensor_bytes=1000), LlamaSettings(n_ctx=512))
    assert estimate.weights == 10000 + 8000 + 7


def test_compute_buffer_follows_llama_cpp() -> None:
    # figures llama.cpp reported for the benchmark's s-f16 model (n_ubatch 512): see benchmarks/README-vram.md
    info = header(n_layer=4, n_embd=256, n_head=4, n_head_kv=4, n_ff=704, n_vocab=4000)
    for n_ctx, flash, measured_mib in ((1000, "off", 13.51), (16384, "off", 163.5), (1000, "on", 8.8), (16384, "on", 22.1)):
        compute = estimate_llamacpp(info, LlamaSettings(n_ctx=n_ctx, flash_attn=flash)).compute
        assert abs(compute / MIB - measured_mib) < 2, (n_ctx, flash, compute / MIB)


def test_encoder_only_models_keep_no_kv_cache() -> None:
    estimate = estimate_llamacpp(header(arch="bert"), LlamaSettings(n_ctx=512))
    assert estimate.kv_cache == 0 and "bert keeps no KV cache" in estimate.notes


def test_notes_on_quantized_v_cache_and_sliding_window() -> None:
    info = header(n_embd=400, n_head=4, extra={"llama.attention.sliding_window": 4096})  # head size 100
    notes = estimate_llamacpp(info, LlamaSettings(n_ctx=512, type_v="q8_0", flash_attn="off")).notes
    assert any("needs flash attention" in n for n in notes)
    assert any("multiple of 32 (this model's is 100)" in n for n in notes)
    assert any("sliding-window" in n for n in notes)


def test_bad_headers_and_settings() -> None:
    with pytest.raises(ValueError, match="block_count"):
        estimate_llamacpp(header(n_layer=0), LlamaSettings(n_ctx=512))
    with pytest.raises(ValueError, match="not a KV cache type"):
        estimate_llamacpp(header(), LlamaSettings(n_ctx=512, type_k="q3_k"))


def test_mixture_of_experts_computes_the_chosen_experts() -> None:
    dense = header(n_ff=1024, n_vocab=300)
    moe = header(n_ff=1024, n_vocab=300, extra={"llama.expert_count": 8, "llama.expert_used_count": 2})
    settings = LlamaSettings(n_ctx=4096, flash_attn="on")
    assert estimate_llamacpp(moe, settings).compute - estimate_llamacpp(dense, settings).compute == 3 * 1024 * 512 * 4
    own = header(
        n_ff=6144, n_vocab=300, extra={"llama.expert_used_count": 8, "llama.expert_feed_forward_length": 768, "llama.expert_shared_feed_forward_length": 2048}
    )
    assert estimate_llamacpp(own, settings).compute == estimate_llamacpp(header(n_ff=8 * 768 + 2048, n_vocab=300), settings).compute


def test_an_embedding_model_embeds_a_whole_context_in_one_micro_batch() -> None:
    from ansible_collections.homelab.ai.plugins.module_utils._llama_server import embedding_args

    model = {"name": "e", "mode": "embedding", "context": 8192, "pooling": "last", "args": []}
    assert embedding_args(model) == ["--embeddings", "--pooling", "last", "--batch-size", "8192", "--ubatch-size", "8192"]
    assert settings_for_model(model).n_ubatch == 8192
    assert embedding_args({**model, "args": ["-ub", "1024"], "pooling": None}) == ["--embeddings"]
    assert settings_for_model({**model, "args": ["-ub", "1024"]}).n_ubatch == 1024
    assert embedding_args({"mode": "chat", "context": 4096}) == [] and settings_for_model({"context": 4096}).n_ubatch == 512
