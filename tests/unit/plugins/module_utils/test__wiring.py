from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError
from ansible_collections.homelab.ai.plugins.module_utils._wiring import build_wiring, load_declarations, service_url
from tests.support.example import ROOT, example_preflight

DECLARATIONS = load_declarations(str(ROOT / "roles"))


def test_every_component_role_declares_itself():
    assert {d["component"] for d in DECLARATIONS.values()} == {
        "gpu-plugins",
        "longhorn",
        "llamacpp",
        "ollama",
        "litellm",
        "qdrant",
        "stable-diffusion",
        "open-webui",
    }


def test_one_function_builds_every_in_cluster_url():
    assert service_url("litellm", "ai", 4000, "/v1") == "http://litellm.ai.svc.cluster.local:4000/v1"


def test_the_example_wiring(age_key):
    wiring = example_preflight(age_key)["wiring"]
    litellm = wiring["litellm"]
    assert litellm["enabled"] and litellm["layer"] == "apps" and litellm["needs"] == ["llamacpp", "ollama"]
    assert litellm["service"]["url"] == "http://litellm.ai.svc.cluster.local:4000/v1"
    assert (litellm["exposure"]["url"], litellm["exposure"]["kind"]) == ("http://llm.home.arpa/v1", "ingress")
    assert litellm["service"]["secret_file"] == "/x/build/homelab/apps/litellm/secret-litellm.sops.yaml"
    assert wiring["llamacpp"]["service"]["models"]["qwen-embed"] == {
        "service": "llamacpp-qwen-embed",
        "url": "http://llamacpp-qwen-embed.ai.svc.cluster.local:8080/v1",
    }
    assert "llama3.2" not in wiring["llamacpp"]["service"]["models"]  # an Ollama model
    assert wiring["open-webui"]["consumes"] == [{"name": "litellm", "required": True}, {"name": "qdrant"}, {"name": "stable-diffusion"}]
    assert wiring["gpu-plugins"]["service"] is None and wiring["gpu-plugins"]["layer"] == "infrastructure"


def test_the_wiring_follows_the_role_variables(age_key):
    wiring = example_preflight(age_key, litellm_port=4444, litellm_ingress_tls_secret="tls", qdrant_enabled=False, homelab_ai_namespace="llm")["wiring"]
    assert wiring["litellm"]["service"]["url"] == "http://litellm.llm.svc.cluster.local:4444/v1"
    assert wiring["litellm"]["exposure"]["url"] == "https://llm.home.arpa/v1"
    assert wiring["qdrant"]["enabled"] is False
    hidden = example_preflight(age_key, litellm_ingress_enabled=False)["wiring"]["litellm"]["exposure"]
    assert hidden["kind"] == "none" and hidden["url"] == "" and hidden["how"].startswith("in the cluster only: http://litellm.ai.svc")


def test_a_consumer_without_what_it_needs_is_refused(age_key):
    with pytest.raises(InputError) as info:
        example_preflight(age_key, litellm_enabled=False, homelab_ai_models=[])
    assert [str(p) for p in info.value.problems] == [
        "open_webui_enabled: open-webui works only with litellm, and litellm_enabled is false. Fix: set litellm_enabled: true, or open_webui_enabled: false"
    ]


def test_a_model_whose_backend_is_off_is_refused(age_key):
    with pytest.raises(InputError) as info:
        example_preflight(age_key, ollama_enabled=False)
    assert [p.where for p in info.value.problems] == ["homelab_ai_models[3] (llama3.2)", "homelab_ai_models[4] (qwen2.5-coder)"]
    assert "its backend is off (ollama_enabled is false)" in str(info.value.problems[0])


def test_a_declaration_with_an_unknown_key_is_a_bug_of_the_role():
    with pytest.raises(ValueError, match="needs component, knows"):
        build_wiring({"x": {"component": "x", "offer": {}}}, lambda role, name: None, namespace="ai", models=[], secret_file=lambda *a: "")


def test_a_component_turned_off_names_what_its_consumers_no_longer_find():
    from ansible_collections.homelab.ai.plugins.module_utils._wiring import unreached_data

    wiring = {
        "qdrant": {"enabled": False, "role": "qdrant", "consumes": []},
        "open-webui": {"enabled": True, "role": "open_webui", "consumes": [{"name": "litellm"}, {"name": "qdrant"}]},
        "litellm": {"enabled": True, "role": "litellm", "consumes": []},
        "ollama": {"enabled": False, "role": "ollama", "consumes": []},
    }
    kept = {"qdrant": ["PersistentVolumeClaim ai/qdrant-data"], "ollama": ["PersistentVolumeClaim ai/ollama-models"]}
    (note,) = unreached_data(wiring, kept)
    assert note.startswith("qdrant is off and its data stays in the cluster (PersistentVolumeClaim ai/qdrant-data), but open-webui no longer")
    assert note.endswith("until qdrant_enabled is true again")
    assert unreached_data({**wiring, "qdrant": {**wiring["qdrant"], "enabled": True}}, kept) == []
