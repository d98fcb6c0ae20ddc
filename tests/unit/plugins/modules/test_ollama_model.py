"""homelab.ai.ollama_model against a fake Ollama API, and check mode against a local registry."""

from __future__ import annotations

import hashlib

from tests.support.model_server import ModelServer
from tests.support.modules import run_module
from tests.support.ollama_api import FakeOllama, entry


def test_present_latest_absent_and_check_mode():
    with FakeOllama() as ollama, ModelServer() as registry:
        raw = registry.add_ollama("llama3.2", "3b", [("application/vnd.ollama.image.model", b"weights")])
        ollama.registry["llama3.2:3b"] = entry("llama3.2:3b", hashlib.sha256(raw).hexdigest())
        base = {"name": "llama3.2:3b", "url": ollama.url, "registry": registry.url}
        result = run_module("ollama_model", base, check_mode=True)
        assert (result["changed"], result["action"]) == (True, "would pull") and not ollama.calls("/api/pull")
        result = run_module("ollama_model", base)
        assert (result["changed"], result["action"]) == (True, "pulled"), result
        assert run_module("ollama_model", base)["changed"] is False
        # check mode for latest asks the registry, not Ollama: same manifest digest, no change
        result = run_module("ollama_model", {**base, "state": "latest"}, check_mode=True)
        assert (result["changed"], result["action"]) == (False, "unchanged")
        assert len(ollama.calls("/api/pull")) == 1
        result = run_module("ollama_model", {**base, "state": "absent"})
        assert (result["changed"], result["action"]) == (True, "deleted")


def test_an_unreachable_ollama_fails_clearly():
    result = run_module("ollama_model", {"name": "llama3.2", "url": "http://127.0.0.1:9", "timeout": 2})
    assert result["failed"] and "did not answer" in result["msg"]
