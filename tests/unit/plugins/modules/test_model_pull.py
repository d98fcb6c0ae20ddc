"""homelab.ai.model_pull run as Ansible runs it: a process, JSON in and out."""

from __future__ import annotations

import os

import pytest

from tests.support.model_server import ModelServer
from tests.support.modules import run_module

TOKEN = "hf_module_secret"


@pytest.fixture
def hub():
    with ModelServer(token=TOKEN) as srv:
        srv.add_hf("org/m-GGUF", "m.gguf", os.urandom(1_500_000))
        srv.gated.add("org/m-GGUF")
        yield srv


def args(hub, tmp_path, **kw):
    return {"source": "hf://org/m-GGUF/m.gguf", "dest": str(tmp_path), "endpoint": hub.url, "token": TOKEN, "part_size": "256Ki", **kw}


def test_download_then_unchanged_and_the_token_never_shows(hub, tmp_path):
    result = run_module("model_pull", args(hub, tmp_path))
    assert result["changed"] and result["action"] == "downloaded", result
    assert result["size"] == 1_500_000 and result["bytes_transferred"] == 1_500_000 and result["throughput"] > 0
    assert TOKEN not in result["_stdout"]
    again = run_module("model_pull", args(hub, tmp_path))
    assert (again["changed"], again["action"], again["bytes_transferred"]) == (False, "unchanged", 0)


def test_check_mode_writes_nothing(hub, tmp_path):
    result = run_module("model_pull", args(hub, tmp_path), check_mode=True)
    assert (result["changed"], result["action"], result["size"]) == (True, "would download", 1_500_000)
    assert list(tmp_path.iterdir()) == []


def test_failures_are_clear_and_leak_no_token(hub, tmp_path):
    result = run_module("model_pull", args(hub, tmp_path, token="hf_wrong_value"))
    assert result["failed"] and "token given was refused" in result["msg"]
    assert "hf_wrong_value" not in result["_stdout"]
    fresh = tmp_path / "fresh"
    result = run_module("model_pull", args(hub, fresh, part_size="lots"))
    assert result["failed"] and result["msg"].startswith("part_size:")
    result = run_module("model_pull", args(hub, fresh, sha256="xyz", connections=100))
    assert result["failed"] and "- sha256:" in result["msg"] and "- connections:" in result["msg"]
    assert not fresh.exists()  # bad input: nothing written
