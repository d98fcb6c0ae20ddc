# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from typing import Any

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._gguf import HeaderUnavailable
from ansible_collections.homelab.ai.plugins.module_utils._placement import node_gpu
from ansible_collections.homelab.ai.plugins.module_utils._vram_estimate import RUNTIME_OVERHEAD, LlamaSettings, estimate_llamacpp, settings_for_model
from ansible_collections.homelab.ai.plugins.module_utils._vram_plan import make_vram_plan
from tests.support.example import components_of
from tests.support.example import normalised_example as example_inventory
from tests.support.gguf_models import header

MIB, GIB = 2**20, 2**30


# --- the plan --------------------------------------------------------------------------------------------------------


def offline(uri: str):
    raise HeaderUnavailable(f"{uri}: cannot connect (no network)")


def test_offline_an_embedding_model_says_what_its_estimate_leaves_out() -> None:
    inv = example_inventory()
    plan = make_vram_plan(inv, components_of(inv), header=offline)
    notes = [note for note in plan.notes if "not counted without the header" in note]
    # qwen-embed: context 8192, so one micro-batch of 8192 tokens; 151936 x 8192 x 4 bytes = 4.6 GiB
    assert len(notes) == 1 and notes[0].startswith("homelab_ai_models[0] (qwen-embed): "), plan.notes
    assert "micro-batch of 8192 tokens" in notes[0] and "4.6 GiB for Qwen3's 151936 tokens" in notes[0]
    assert "deliver_vram_fetch" in notes[0] and "vram:" in notes[0]


def test_example_inventory_offline_fits() -> None:
    inv = example_inventory()
    plan = make_vram_plan(inv, components_of(inv), header=offline)
    assert plan.ok, plan.problems
    rows = {row.gpu: row for row in plan.rows}
    nvidia = rows["gpu-nvidia-01/gpu0"]
    entries = {e.workload: e for e in nvidia.entries}
    # qwen2.5-coder:14b from its tag: 14e9 * 0.61 bytes, + 10 % + 512 MiB, + the CUDA runtime
    weights = int(14e9 * 0.61)
    assert entries["ollama"].bytes == weights + int(weights * 0.1) + 512 * MIB + RUNTIME_OVERHEAD["nvidia"]
    assert "qwen2.5-coder" in entries["ollama"].basis and "one loaded at a time" in entries["ollama"].basis
    assert entries["stable-diffusion"].bytes == 12 * GIB and entries["stable-diffusion"].basis == "declared budget"
    strix = rows["strix-02/gpu0"].entries[0]
    assert strix.basis == "catalog size + allowance (no header)"
    assert any("llama-3.3-70b" in note and "cannot connect" in note for note in plan.notes)
    assert rows["media-01/gpu0"].entries == []
    table = plan.table()
    assert "gpu-nvidia-01/gpu0  RTX 4000 SFF (nvidia, time-sliced x4)" in table
    assert "(nothing placed on it)" in table
    markdown = plan.markdown("homelab")
    assert markdown.startswith("# VRAM plan of homelab")
    assert "| gpu-nvidia-01/gpu0 (RTX 4000 SFF) | gpu-nvidia-01 | 24.0 GiB | time-sliced x4 |" in markdown


def test_overcommit_names_gpu_workloads_and_numbers() -> None:
    inv = example_inventory()
    plan = make_vram_plan(inv, components_of(inv, ollama_vram=16 * GIB), header=offline)
    [problem] = plan.problems
    assert problem.where == "VRAM of gpu-nvidia-01/gpu0 (RTX 4000 SFF on gpu-nvidia-01)"
    assert problem.message == "ollama 16.0 GiB + stable-diffusion 12.0 GiB = 28.0 GiB, 4.0 GiB more than its 24.0 GiB"
    assert "homelab_ai_vram_overcommit: true" in problem.fix
    assert "**over-committed**" in plan.markdown()
    assert "OVER-COMMITTED" in plan.table()
    allowed = make_vram_plan(example_inventory(homelab_ai_vram_overcommit=True), components_of(inv, ollama_vram=16 * GIB), header=offline)
    assert allowed.ok and allowed.overcommit_allowed
    assert any("allowed by homelab_ai_vram_overcommit" in w for w in allowed.warnings)


def test_one_workload_larger_than_the_gpu() -> None:
    inv = example_inventory()
    plan = make_vram_plan(inv, components_of(inv, ollama_vram=2 * GIB, sd_vram=30 * GIB), header=offline)
    assert plan.problems[0].message == "stable-diffusion alone needs 30.0 GiB, more than the 24.0 GiB of one GPU"


def test_estimate_from_the_header() -> None:
    inv = example_inventory()
    info = header(
        n_layer=28,
        n_embd=1024,
        n_head=16,
        n_head_kv=8,
        n_ff=3072,
        n_vocab=151669,
        extra={"llama.attention.key_length": 128, "llama.attention.value_length": 128},
    )
    seen = []

    def lookup(uri: str):
        seen.append(uri)
        if "Qwen3-Embedding" in uri:
            return info, "cache"
        raise HeaderUnavailable("offline")

    plan = make_vram_plan(inv, components_of(inv), header=lookup)
    entry = next(row for row in plan.rows if row.gpu == "gpu-amd-01/gpu0").entries[0]
    estimate = estimate_llamacpp(info, LlamaSettings(n_ctx=8192, n_ubatch=8192))  # an embedding model: one micro-batch
    assert entry.bytes == estimate.total + RUNTIME_OVERHEAD["amd"]
    assert entry.detail == {"weights": estimate.weights, "kv_cache": estimate.kv_cache, "compute": estimate.compute, "runtime": RUNTIME_OVERHEAD["amd"]}
    assert entry.basis == "GGUF header, context 8192, KV f16/f16"
    assert entry.detail["kv_cache"] == 2 * 28 * 8192 * 8 * 128 * 2
    assert len(seen) == len(set(seen))  # one lookup per source


def test_catalog_vram_wins() -> None:
    inv = example_inventory()
    inv["models"][0]["vram"] = 3 * GIB

    def lookup(uri: str):
        assert "Qwen3-Embedding" not in uri, "no lookup for a model with vram"
        return offline(uri)

    plan = make_vram_plan(inv, components_of(inv), header=lookup)
    entry = next(row for row in plan.rows if row.gpu == "gpu-amd-01/gpu0").entries[0]
    assert (entry.bytes, entry.basis) == (3 * GIB, "declared budget")


def test_nothing_known_is_a_problem() -> None:
    inv = example_inventory()
    inv["models"][0]["size"] = None
    inv["models"][4]["source"] = "ollama://nomic-embed-text"  # no parameter count in the tag
    plan = make_vram_plan(inv, components_of(inv), header=offline)
    wheres = [p.where for p in plan.problems]
    assert "homelab_ai_models[0] (qwen-embed)" in wheres
    problem = plan.problems[wheres.index("homelab_ai_models[0] (qwen-embed)")]
    assert "neither vram nor size" in problem.message and "set vram:" in problem.fix
    # Ollama still has llama3.2:3b to size itself by
    assert "homelab_ai_models[4] (qwen2.5-coder)" in wheres


def test_ollama_keeps_several_models_loaded() -> None:
    inv = example_inventory()
    one = make_vram_plan(inv, components_of(inv, sd_vram=1 * GIB), header=offline)
    two = make_vram_plan(inv, components_of(inv, sd_vram=1 * GIB, max_loaded=2), header=offline)

    def ollama(plan):
        return next(e for row in plan.rows for e in row.entries if e.workload == "ollama")

    three_b = int(3e9 * 0.61)
    assert ollama(two).bytes - ollama(one).bytes == three_b + int(three_b * 0.1) + 512 * MIB
    assert "2 loaded at once" in ollama(two).basis


def test_ollama_without_catalog_models_plans_nothing() -> None:
    # a catalog of llama.cpp models only: the Ollama server loads nothing, and needs no budget
    inv = example_inventory()
    inv["models"] = [m for m in inv["models"] if m["backend"] != "ollama"]
    plan = make_vram_plan(inv, components_of(inv), header=offline)
    assert not plan.problems
    (ollama,) = [e for row in plan.rows for e in row.entries if e.workload == "ollama"]
    assert (ollama.bytes, ollama.basis) == (0, "no catalog models: loads none")
    # a declared budget still counts
    plan = make_vram_plan(inv, components_of(inv, ollama_vram=4 * GIB), header=offline)
    assert [e.bytes for row in plan.rows for e in row.entries if e.workload == "ollama"] == [4 * GIB]


def test_an_exclusive_gpu_runs_one_workload_that_never_scales_to_zero() -> None:
    inv = example_inventory()
    amd = node_gpu(inv, "gpu-amd-01")  # qwen-embed is there, always on
    extra = {"name": "extra", "gpu_workloads": [{"name": "other", "kind": "other", "node": amd["node"], "gpu": amd["gpu_id"], "vram": GIB}]}
    plan = make_vram_plan(inv, [*components_of(inv), extra], header=offline)
    [problem] = plan.problems
    assert problem.where == "GPU slots of gpu-amd-01/gpu0 (Radeon AI PRO R9700 on gpu-amd-01)"
    assert problem.message == "2 workloads always run there (qwen-embed, other), but it has 1 slot(s) (exclusive): 1 would stay Pending for good"
    assert "scale_to_zero: true" in problem.fix and "homelab_ai_gpu_sharing" in problem.fix
    # the VRAM fits, and the table said "ok" before: it is the slot, not the memory
    assert not plan.rows[1].overcommitted


def test_models_that_scale_to_zero_take_turns_for_a_slot_and_count_once() -> None:
    inv = example_inventory()
    strix = node_gpu(inv, "strix-01")  # qwen3-30b-a3b scales to zero there
    turns = {
        "name": "extra",
        "gpu_workloads": [
            {"name": f"other-{n}", "kind": "other", "node": strix["node"], "gpu": strix["gpu_id"], "vram": n * 40 * GIB, "scale_to_zero": True} for n in (1, 2)
        ],
    }
    plan = make_vram_plan(inv, [*components_of(inv), turns], header=offline)
    assert plan.ok, plan.problems
    row = next(r for r in plan.rows if r.gpu == "strix-01/gpu0")
    # 20.5 + 40 + 80 GiB would not fit 96 GiB, but only one of them holds the GPU at a time: the largest counts
    assert [(e.workload, e.at_once) for e in row.entries] == [("qwen3-30b-a3b", False), ("other-1", False), ("other-2", True)]
    assert row.used == 80 * GIB and not row.overcommitted
    assert any("strix-01/gpu0: 3 workloads for 1 slot(s) (exclusive): other-1, qwen3-30b-a3b start only when a slot is free" in w for w in plan.warnings)
    assert "takes turns for a slot: not counted" in plan.table() and "takes turns for a slot: not counted" in plan.markdown()


def test_unknown_gpu_and_model_are_problems() -> None:
    inv = example_inventory()
    bad = {
        "name": "x",
        "gpu_workloads": [
            {"name": "a", "kind": "other", "node": "n", "gpu": "n/gpu9", "vram": 1},
            {"name": "b", "kind": "llamacpp", "node": "strix-01", "gpu": "strix-01/gpu0", "model": "nope"},
        ],
    }
    plan = make_vram_plan(inv, [bad], header=offline)
    assert [p.message for p in plan.problems] == ["names GPU 'n/gpu9', which the inventory does not have", "names model 'nope', which is not in the catalog"]


def test_plan_as_dict() -> None:
    inv = example_inventory()
    data = make_vram_plan(inv, components_of(inv), header=None).to_dict()
    nvidia = next(g for g in data["gpus"] if g["gpu"] == "gpu-nvidia-01/gpu0")
    assert nvidia["capacity"] == 24 * GIB and nvidia["used"] + nvidia["free"] == 24 * GIB and data["ok"] is True
    assert any("no header lookup" in n for n in data["notes"])


def test_bad_server_arguments_are_problems() -> None:
    with pytest.raises(ValueError, match="--ctx-size 'lots' is not a whole number"):
        settings_for_model({"context": 512, "args": ["-c", "lots"]})
    inv = example_inventory()
    inv["models"][0]["args"] = ["--cache-type-v", "q3_k"]
    plan = make_vram_plan(inv, components_of(inv), header=offline)
    [problem] = plan.problems
    assert problem.where == "homelab_ai_models[0] (qwen-embed).args"
    assert problem.message.startswith("--cache-type-v 'q3_k' is not a KV cache type of llama.cpp")


def test_offline_the_catalog_size_counts_the_layers_on_the_gpu_where_the_catalog_gives_them() -> None:
    def plan_for(**entry: Any):
        inv = example_inventory()
        model = next(m for m in inv["models"] if m["name"] == "llama-3.3-70b")
        model.update(entry)
        return make_vram_plan(inv, components_of(inv), header=offline)

    def strix(plan):
        return next(row for row in plan.rows if row.gpu == "strix-02/gpu0").entries[0]

    everything = strix(plan_for())
    half = strix(plan_for(gpu_layers=40, layers=80))
    unknown = strix(plan_for(gpu_layers=40))
    size = 40 * GIB  # the catalog's size of the file
    assert everything.bytes == size + int(size * 0.1) + 512 * MIB + RUNTIME_OVERHEAD["amd"]
    assert half.bytes == size // 2 + int(size // 2 * 0.1) + 512 * MIB + RUNTIME_OVERHEAD["amd"]
    assert half.notes == ["40 of 80 layers on the GPU"]
    assert unknown.bytes == everything.bytes and "needs the model's layers:" in unknown.notes[0]


def test_the_fix_for_an_over_commitment_offers_what_changes_the_estimate() -> None:
    inv = example_inventory()
    model = next(m for m in inv["models"] if m["name"] == "llama-3.3-70b")
    model["size"] = 100 * GIB  # sized offline from the catalog: a shorter context or the cache type change nothing
    problem = make_vram_plan(inv, components_of(inv), header=offline).problems[0]
    assert problem.where.startswith("VRAM of strix-02/gpu0")
    assert "shorter context" not in problem.fix and "--cache-type" not in problem.fix
    assert "fewer gpu_layers with the model's layers: in the catalog" in problem.fix and "deliver_vram_fetch: true" in problem.fix
    budgets = make_vram_plan(inv, components_of(inv, ollama_vram=16 * GIB), header=offline).problems
    nvidia = next(p for p in budgets if p.where.startswith("VRAM of gpu-nvidia-01"))
    assert "gpu_layers" not in nvidia.fix and "ollama_vram" in nvidia.fix  # two declared budgets


def test_an_embedding_model_without_a_pooling_it_declares_is_a_problem() -> None:
    def problems_with(pooling_in_header, **entry: Any):
        inv = example_inventory()
        embed = inv["models"][0]
        embed.update({"pooling": None, **entry})
        metadata = {} if pooling_in_header in (None, "offline") else {"llama.pooling_type": pooling_in_header}

        def lookup(uri: str):
            if pooling_in_header == "offline":
                raise HeaderUnavailable(f"{uri}: cannot connect")
            return header(n_layer=4, extra=metadata), "cache"

        return [str(p) for p in make_vram_plan(inv, components_of(inv), header=lookup).problems if ".pooling" in p.where]

    assert problems_with(3) == []  # the GGUF says last
    assert problems_with(None, pooling="last") == []  # the catalog says
    [none] = problems_with(None)
    assert none.startswith("homelab_ai_models[0] (qwen-embed).pooling: is not set and its GGUF declares no pooling type")
    assert "last for Qwen3-Embedding" in none
    assert "declares pooling type 0" in problems_with(0)[0]
    assert "its GGUF header cannot be read" in problems_with("offline")[0]
