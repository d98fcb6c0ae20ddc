"""The real LiteLLM proxy with the configuration site.yml rendered: every catalog model, routed, behind the master key."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.example import ROOT
from tests.support.servers import OpenAIStub, free_port, wait_http

LITELLM = Path(os.environ.get("LITELLM_BIN") or ROOT / ".cache" / "venv-litellm" / "bin" / "litellm")
KEY = "sk-test-" + "0123456789abcdef" * 2


def call(url, key=None, body=None):
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture(scope="module")
def proxy(rendered, tmp_path_factory):
    if not LITELLM.exists():
        pytest.skip(f"no LiteLLM proxy at {LITELLM}: `make integration` installs it (requirements/litellm.lock)")
    tree, _ = rendered
    configmap = yaml.safe_load((tree / "apps" / "litellm" / "configmap-litellm-config.yaml").read_text())
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    with OpenAIStub() as stub:
        # one llama.cpp route goes to a stand-in llama-server on loopback; the others keep their cluster addresses
        for entry in config["model_list"]:
            if entry["model_name"] == "qwen3-30b-a3b":
                entry["litellm_params"]["api_base"] = stub.url
        path = tmp_path_factory.mktemp("litellm") / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        port = free_port()
        env = {
            **os.environ,
            "LITELLM_MASTER_KEY": KEY,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the cost map at start
            "HTTP_PROXY": "http://127.0.0.1:9",  # anything not on loopback fails at once
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        proc = subprocess.Popen(
            [str(LITELLM), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health/liveliness", 120, proc)
            yield f"http://127.0.0.1:{port}", config, stub
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_models_lists_every_catalog_model(proxy):
    url, config, _ = proxy
    status, body = call(f"{url}/v1/models", KEY)
    assert status == 200
    assert sorted(m["id"] for m in body["data"]) == sorted(["qwen-embed", "qwen3-30b-a3b", "llama-3.3-70b", "llama3.2", "qwen2.5-coder"])
    assert len(config["model_list"]) == 5


def test_a_request_without_the_master_key_is_refused(proxy):
    url, _, _ = proxy
    status, body = call(f"{url}/v1/models")
    assert status == 401, body
    status, _ = call(f"{url}/v1/chat/completions", body={"model": "qwen3-30b-a3b", "messages": [{"role": "user", "content": "ping"}]})
    assert status == 401
    status, _ = call(f"{url}/v1/models", "sk-wrong-key")
    assert status in (400, 401, 403)


def test_a_chat_request_reaches_the_models_server(proxy):
    url, _, stub = proxy
    status, body = call(f"{url}/v1/chat/completions", KEY, {"model": "qwen3-30b-a3b", "messages": [{"role": "user", "content": "ping"}]})
    assert status == 200, body
    assert body["choices"][0]["message"]["content"] == "pong"
    (request,) = [r for r in stub.requests if r["path"].endswith("/chat/completions")]
    assert request["body"]["model"] == "qwen3-30b-a3b"  # the alias llama-server answers to
    assert request["authorization"] == "Bearer none"  # the master key never reaches a backend
