"""The Ollama API client against a fake Ollama that speaks the real shapes (NDJSON pull stream included)."""

from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._ollama import OllamaApi, OllamaError, ensure_model
from tests.support.ollama_api import FakeOllama


@pytest.fixture
def ollama():
    with FakeOllama() as fake:
        fake.publish("llama3.2:3b")
        yield fake


def test_present_pulls_once_then_is_unchanged(ollama):
    api = OllamaApi(ollama.url)
    result = ensure_model(api, "llama3.2:3b")
    assert (result.changed, result.action, result.statuses[-1]) == (True, "pulled", "success")
    assert result.digest == ollama.registry["llama3.2:3b"]["digest"] and result.details["quantization_level"] == "Q4_K_M"
    result = ensure_model(api, "ollama://llama3.2:3b")
    assert (result.changed, result.action) == (False, "unchanged")
    assert len(ollama.calls("/api/pull")) == 1


def test_names_default_to_latest(ollama):
    ollama.publish("qwen2.5-coder:latest")
    assert ensure_model(OllamaApi(ollama.url), "qwen2.5-coder").name == "qwen2.5-coder:latest"


def test_latest_reports_a_change_only_when_the_digest_moves(ollama):
    api = OllamaApi(ollama.url)
    ensure_model(api, "llama3.2:3b")
    result = ensure_model(api, "llama3.2:3b", "latest")
    assert (result.changed, result.action) == (False, "unchanged")
    ollama.publish("llama3.2:3b", version="2")
    result = ensure_model(api, "llama3.2:3b", "latest")
    assert (result.changed, result.action) == (True, "updated") and result.before_digest != result.digest


def test_check_mode_pulls_and_deletes_nothing(ollama):
    api = OllamaApi(ollama.url)
    assert ensure_model(api, "llama3.2:3b", check_mode=True).action == "would pull"
    assert not ollama.calls("/api/pull")
    ensure_model(api, "llama3.2:3b")
    digest = ollama.models["llama3.2:3b"]["digest"]
    assert ensure_model(api, "llama3.2:3b", "latest", check_mode=True, registry_digest=lambda s: digest).changed is False
    assert ensure_model(api, "llama3.2:3b", "latest", check_mode=True, registry_digest=lambda s: "f" * 64).action == "would update"
    assert ensure_model(api, "llama3.2:3b", "absent", check_mode=True).action == "would delete"
    assert "llama3.2:3b" in ollama.models and len(ollama.calls("/api/pull")) == 1


def test_absent_deletes_then_is_unchanged(ollama):
    api = OllamaApi(ollama.url)
    ensure_model(api, "llama3.2:3b")
    assert ensure_model(api, "llama3.2:3b", "absent").action == "deleted"
    assert ensure_model(api, "llama3.2:3b", "absent").changed is False
    assert ollama.calls("/api/delete")[0]["body"] == {"model": "llama3.2:3b"}


def test_errors_in_the_stream_and_unknown_models_fail_clearly(ollama):
    api = OllamaApi(ollama.url)
    with pytest.raises(OllamaError, match="file does not exist"):
        ensure_model(api, "nope:1")
    ollama.fail_pull = "max retries exceeded: unexpected EOF"
    with pytest.raises(OllamaError, match="unexpected EOF"):
        ensure_model(api, "llama3.2:3b")
    with pytest.raises(OllamaError, match="not a valid Ollama model name"):
        ensure_model(api, "Bad Name")


def test_an_unreachable_ollama_says_where_it_looked():
    with pytest.raises(OllamaError, match="did not answer"):
        OllamaApi("http://127.0.0.1:9", timeout=2).tags()
