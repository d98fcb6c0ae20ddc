# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.homelab.ai.plugins.module_utils._gguf import HeaderCache, read_local
from ansible_collections.homelab.ai.plugins.modules import vram_plan
from tests.support.gguf_models import Shape, write_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils"))
from test__vram_plan import GIB, components_of, example_inventory


def run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        vram_plan.main()
    return json.loads(capsys.readouterr().out)


def test_offline_plan_of_the_example(tmp_path: Path, capsys) -> None:
    inv = example_inventory()
    result = run_module({"inventory": inv, "components": components_of(inv), "fetch": False, "cache_dir": str(tmp_path)}, capsys)
    assert result["ok"] is True and result["changed"] is False
    assert "gpu-nvidia-01/gpu0" in result["table"]
    assert result["markdown"].startswith("# VRAM plan of homelab")
    assert any("not in the header cache, and fetching is off" in note for note in result["notes"])
    assert result["headers"] == {}


def test_cached_header_is_used(tmp_path: Path, capsys) -> None:
    inv = example_inventory()
    model = write_model(tmp_path / "embed.gguf", Shape("embed", n_layer=2, n_embd=128, n_head=4, n_head_kv=2, n_ff=256, n_vocab=300))
    uri = inv["models"][0]["source"]
    HeaderCache(str(tmp_path / "cache")).put(uri, read_local(str(model)))
    result = run_module({"inventory": inv, "components": components_of(inv), "fetch": False, "cache_dir": str(tmp_path / "cache")}, capsys)
    assert result["headers"] == {uri: "cache"}
    amd = next(g for g in result["plan"]["gpus"] if g["gpu"] == "gpu-amd-01/gpu0")
    assert amd["entries"][0]["basis"].startswith("GGUF header, context 8192")


def test_overcommit_fails_with_the_numbers(tmp_path: Path, capsys) -> None:
    inv = example_inventory()
    args = {"inventory": inv, "components": components_of(inv, ollama_vram=16 * GIB), "fetch": False, "cache_dir": str(tmp_path)}
    result = run_module(args, capsys)
    assert result["failed"] is True
    assert "VRAM of gpu-nvidia-01/gpu0 (RTX 4000 SFF on gpu-nvidia-01)" in result["msg"]
    assert "ollama 16.0 GiB + stable-diffusion 12.0 GiB = 28.0 GiB" in result["msg"]
    assert "OVER-COMMITTED" in result["msg"]  # the table comes with it
    allowed = run_module({**args, "overcommit": True}, capsys)
    assert allowed["ok"] is True and "allowed by homelab_ai_vram_overcommit" in json.dumps(allowed["plan"]["warnings"])


def test_check_mode_writes_no_cache(tmp_path: Path, capsys, monkeypatch) -> None:
    import ansible_collections.homelab.ai.plugins.module_utils._gguf as gguf_utils

    inv = example_inventory()
    model = write_model(tmp_path / "m.gguf", Shape("m", n_layer=2, n_embd=128, n_head=4, n_head_kv=2, n_ff=256, n_vocab=300))
    info = read_local(str(model))
    monkeypatch.setattr(gguf_utils, "source_url", lambda source, **kwargs: "https://example.invalid/m.gguf")
    monkeypatch.setattr(gguf_utils, "fetch_header", lambda url, **kwargs: info)
    cache = tmp_path / "cache"
    result = run_module({"inventory": inv, "components": components_of(inv), "cache_dir": str(cache), "_ansible_check_mode": True}, capsys)
    assert set(result["headers"].values()) == {"fetched"}
    assert not cache.exists()
    result = run_module({"inventory": inv, "components": components_of(inv), "cache_dir": str(cache)}, capsys)
    assert len(list(cache.glob("*.json"))) == len(result["headers"]) == 5


def test_bad_inventory(capsys) -> None:
    result = run_module({"inventory": {"nodes": "x"}, "components": []}, capsys)
    assert result["failed"] and "homelab_ai_inventory" in result["msg"]
