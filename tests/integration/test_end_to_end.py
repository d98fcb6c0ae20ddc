# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The data path with the real programs on loopback: model pull -> llama-server -> LiteLLM -> an OpenAI client.

site.yml renders the example homelab with a catalog of two tiny generated models (a chat model that scales to zero,
an embedding model pinned by digest). The pull Jobs' own code fetches them from the Hugging Face stand-in; the real
``llama-server`` (built from the llama.cpp release the rendered images carry) starts with each rendered Deployment's
arguments, and the real LiteLLM proxy (the release of the rendered image) with the rendered config and the master key
from the SOPS-encrypted Secret. Random weights answer gibberish: the checks are on structure and token counts.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import urllib.error
import urllib.request
import warnings

import openai
import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils._scale_to_zero import uptime_query
from tests.support.e2e import (
    CHAT,
    EMBED,
    EOS,
    LITELLM,
    LLAMA_CPP_PYTHON,
    LLAMA_SERVER,
    Stack,
    binary_release,
    describe,
    fallback_release,
    llama_cpp_python_args,
    sha256_of,
)
from tests.support.example import EXAMPLE
from tests.support.playbook import run_site
from tests.support.prometheus import PROMETHEUS, Prometheus, pod_targets, podmonitor_jobs, self_job
from tests.support.tree_checks import wiring_problems

MAX_TOKENS = 12
NO_EOS = {str(EOS): -100}  # random weights may pick end-of-sequence at any step: exact token counts need it away


@pytest.fixture(scope="module")
def stack(collections, age_key, tmp_path_factory):
    missing = [f"LiteLLM at {LITELLM}"] if not LITELLM.exists() else []
    if not LLAMA_SERVER.exists() and not fallback_release():
        missing.append(f"llama-server at {LLAMA_SERVER} (nor llama-cpp-python's server at {LLAMA_CPP_PYTHON})")
    if missing:
        pytest.skip(f"no {' and no '.join(missing)}: `make integration` builds and installs them")
    stack = Stack(collections, age_key, tmp_path_factory.mktemp("e2e")).start()
    print("\n" + describe(stack))
    if stack.fallback:
        warnings.warn(UserWarning(stack.fallback), stacklevel=1)
    yield stack
    stack.stop_checked()


@pytest.fixture(scope="module")
def client(stack):
    return openai.OpenAI(base_url=stack.gateway_url, api_key=stack.master_key, max_retries=0, timeout=60)


def objects(stack):
    return stack.cluster.objects


def test_the_pull_jobs_placed_each_model_whole_and_verified(stack):
    for name, path in stack.pulled.items():
        assert sha256_of(path) == sha256_of(stack.files[name]), name
        assert {m.why for m in stack.pull_mapped[name]} <= {"path", "host"}, stack.pull_mapped[name]
    # resolved at the stand-in Hub (HF_ENDPOINT), the one address the test gave the Job
    sent = {r["path"].rsplit("/", 1)[-1] for r in stack.hub.requests("origin") if r["method"] == "GET"}
    assert {CHAT.filename, EMBED.filename} <= sent


def only_with_llama_server(stack):
    if stack.fallback:
        pytest.skip(stack.fallback)


def test_llama_server_runs_with_the_rendered_arguments(stack):
    only_with_llama_server(stack)
    for name, started in stack.servers.items():
        container = stack.deployment_of(name)["spec"]["template"]["spec"]["containers"][0]
        rendered, local = [str(a) for a in container["args"]], started.argv[1:]
        assert len(local) == len(rendered)
        changed = {(i, r, v) for i, (r, v) in enumerate(zip(rendered, local, strict=True)) if r != v}
        assert changed == {(int(m.where[5:-1]), m.rendered, m.local) for m in started.mapped if m.where.startswith("args[")}
        assert {m.why for m in started.mapped} == {"path", "host", "port"}, started.mapped
        # the environment too: each rendered variable, its value kept or its path mapped
        env_mapped = {m.where[4:]: m.local for m in started.mapped if m.where.startswith("env ")}
        assert {e["name"]: env_mapped.get(e["name"], e["value"]) for e in container["env"]}.items() <= started.env.items()
        # the image's llama.cpp release is the one that runs here
        assert container["image"].endswith("-" + binary_release(stack.llama_server)), container["image"]


def test_litellm_runs_with_the_rendered_arguments_environment_and_config(stack):
    container = stack.cluster.get("Deployment", "litellm")["spec"]["template"]["spec"]["containers"][0]
    rendered, local = [str(a) for a in container["args"]], stack.gateway.argv[1:]
    assert local[: len(rendered)] == [next((m.local for m in stack.gateway.mapped if m.where == f"args[{i}]"), a) for i, a in enumerate(rendered)]
    assert local[len(rendered) :] == ["--host", "127.0.0.1"]
    assert {m.why for m in stack.gateway.mapped} == {"path", "host", "port"}
    # the environment as rendered, the master key from the SOPS-encrypted Secret
    for item in container["env"]:
        assert stack.gateway.env[item["name"]] == item.get("value", stack.master_key), item["name"]
    # the config as rendered but for the Services' addresses
    config = stack.litellm_config()
    for entry in config["model_list"]:
        entry["litellm_params"]["api_base"] = next(m.local for m in stack.config_mapped if m.rendered == entry["litellm_params"]["api_base"])
    served = yaml.safe_load((stack.cluster.workdir / "configmap" / "litellm-config" / "config.yaml").read_text())
    assert served == config


def test_the_rendered_objects_agree_with_each_other(stack):
    assert wiring_problems(objects(stack)) == []
    # the scale-to-zero model has its ElastiService, the other a fixed replica count
    (elasti,) = [o for o in objects(stack) if o["kind"] == "ElastiService"]
    assert elasti["spec"]["scaleTargetRef"]["name"] == stack.deployment_of(CHAT.name)["metadata"]["name"]
    assert stack.deployment_of(EMBED.name)["spec"]["replicas"] == 1


def _find(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize(
    "break_it, expected",
    [
        (
            lambda o: _find(o, "Service", "llamacpp-tiny-chat")["spec"]["ports"][0].update(port=8081),
            "llamacpp-tiny-chat.ai.svc.cluster.local:8080: Service llamacpp-tiny-chat has no port 8080 ([8081])",
        ),
        (
            lambda o: _find(o, "Service", "llamacpp-tiny-chat")["spec"]["ports"][0].update(targetPort="web"),
            "no workload behind Service llamacpp-tiny-chat listens on its target port 'web'",
        ),
        (lambda o: _find(o, "ElastiService", "llamacpp-tiny-chat")["spec"].update(service="llamacpp-tiny"), "service 'llamacpp-tiny' is not rendered"),
        (lambda o: _find(o, "ElastiService", "llamacpp-tiny-chat")["spec"]["scaleTargetRef"].update(name="llamacpp-tiny-embed"), "does not select"),
        (lambda o: _container(o, "llamacpp-tiny-embed")["ports"][0].update(containerPort=9090), "listens on 8080, its container port is 9090"),
        (lambda o: _container(o, "llamacpp-tiny-embed")["args"].__setitem__(5, "qwen-embed"), "answers to 'qwen-embed'"),
        (lambda o: _find(o, "Deployment", "llamacpp-tiny-chat")["spec"].update(replicas=1), "fixes replicas"),
        (lambda o: _find(o, "Deployment", "llamacpp-tiny-embed")["spec"].pop("replicas"), "no replica count and no ElastiService"),
        (lambda o: _container(o, "llamacpp-tiny-chat")["readinessProbe"]["httpGet"].update(port="metrics"), "readinessProbe port 'metrics'"),
        (lambda o: _point_open_webui(o, ":4000/", ":4001/"), "open-webui: http://litellm.ai.svc.cluster.local:4001: Service litellm has no port 4001"),
        (lambda o: _find(o, "Service", "qdrant").update(metadata={"name": "vectors", "namespace": "ai"}), "Service ai/qdrant is not rendered"),
    ],
    ids=[
        *("service-port", "target-port", "elasti-service", "elasti-target", "container-port", "alias", "replicas", "no-scaler", "probe-port"),
        *("client-url-port", "client-url-service"),
    ],
)
def test_a_mismatch_between_objects_fails(stack, break_it, expected):
    objs = copy.deepcopy(objects(stack))
    break_it(objs)
    problems = wiring_problems(objs)
    assert any(expected in p for p in problems), problems


def _container(objs, deployment):
    return _find(objs, "Deployment", deployment)["spec"]["template"]["spec"]["containers"][0]


def _point_open_webui(objs, old, new):
    for item in _container(objs, "open-webui")["env"]:
        if "litellm.ai.svc" in item.get("value", ""):
            item["value"] = item["value"].replace(old, new)


def test_each_server_answers_under_its_catalog_name_and_exports_what_scale_to_zero_reads(stack):
    for name in stack.servers:
        with urllib.request.urlopen(stack.server_url(name) + "/models", timeout=10) as response:
            assert [m["id"] for m in json.load(response)["data"]] == [name]
    # the ElastiService's Prometheus query reads these counters of the chat server (its pod annotation says /metrics)
    only_with_llama_server(stack)
    (elasti,) = [o for o in objects(stack) if o["kind"] == "ElastiService"]
    wanted = set(re.findall(r"llamacpp:[a-z_]+", elasti["spec"]["triggers"][0]["metadata"]["query"]))
    with urllib.request.urlopen(stack.server_url(CHAT.name).removesuffix("/v1") + "/metrics", timeout=10) as response:
        exported = set(re.findall(r"^(llamacpp:[a-z_]+)", response.read().decode(), re.M))
    assert wanted and wanted <= exported, (wanted, exported)


def test_scale_to_zero_reads_what_the_real_prometheus_scrapes_from_the_real_servers(stack, tmp_path):
    """The rendered PodMonitor's job (as prometheus-operator writes it) scrapes the running llama-servers; the
    ElastiService's own query is 0 while idle and above its threshold while requests run, and its uptime check holds."""
    only_with_llama_server(stack)
    if not PROMETHEUS.exists():
        pytest.fail(f"no Prometheus at {PROMETHEUS}: `make integration` unpacks it (scripts/install-prometheus.sh)")
    (podmonitor,) = [o for o in objects(stack) if o["kind"] == "PodMonitor"]
    (release,) = [o for o in objects(stack) if o["kind"] == "HelmRelease" and o["spec"]["chart"]["spec"]["chart"] == "kube-prometheus-stack"]
    elasti = stack.cluster.get("ElastiService", "llamacpp-tiny-chat")
    trigger = elasti["spec"]["triggers"][0]["metadata"]
    assert trigger["serverAddress"] == f"http://prometheus-operated.{release['metadata']['namespace']}.svc.cluster.local:9090"
    targets = tmp_path / "targets.json"
    prometheus = Prometheus(tmp_path / "prometheus")
    # the rendered job, found through a file instead of the API, every second instead of every 30 s
    jobs = podmonitor_jobs(podmonitor, targets, interval="1s")
    prometheus.write_targets(targets, pod_targets(stack.cluster))
    try:
        prometheus.start(lambda port: [*jobs, self_job(port, release["metadata"]["namespace"])])
        instance = 'app_kubernetes_io_instance="llamacpp-tiny-chat"'
        prometheus.wait_for(f"max(up{{{trigger['uptimeFilter']}}})", lambda v: v == 1, 30, "Prometheus scrapes itself")
        self_up_since = time.monotonic()
        prometheus.wait_for(f"count(up{{{instance}}} == 1)", lambda v: v == 1, 30, "the chat server is scraped")
        prometheus.wait_for('count(up{app_kubernetes_io_instance="llamacpp-tiny-embed"} == 1)', lambda v: v == 1, 30, "the embedding server too")
        threshold = float(trigger["threshold"])
        # idle: the counters do not move and nothing is in flight
        idle = prometheus.wait_for(trigger["query"], lambda v: v == 0, 15, "idle")
        assert idle < threshold
        # busy: streamed requests, one after the other, for a few scrapes
        busy_client = openai.OpenAI(base_url=stack.server_url(CHAT.name), api_key="none", max_retries=0, timeout=60)
        stop = threading.Event()

        def work():
            while not stop.is_set():
                stream = busy_client.completions.create(model=CHAT.name, prompt="Count:", max_tokens=400, logit_bias=NO_EOS, stream=True)
                for _ in stream:
                    pass

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        try:
            busy = prometheus.wait_for(trigger["query"], lambda v: v > threshold, 30, "busy")
        finally:
            stop.set()
            worker.join(timeout=60)
        assert busy > threshold
        # the other model's query stays 0: the instance label keeps them apart
        embed_trigger = [o for o in objects(stack) if o["kind"] == "ElastiService"]
        assert len(embed_trigger) == 1  # only the chat model scales to zero
        other = trigger["query"].replace("llamacpp-tiny-chat", "llamacpp-tiny-embed")
        assert prometheus.query(other) == 0
        # the uptime check, as KubeElasti words it: 1 once Prometheus was up for a whole cooldown
        cooldown = int(elasti["spec"]["cooldownPeriod"])
        time.sleep(max(0.0, self_up_since + cooldown + 1 - time.monotonic()))
        assert prometheus.query(uptime_query(trigger["uptimeFilter"], cooldown)) == 1
        # a filter that matches nothing keeps it from ever scaling down, as KubeElasti's default does without this one
        assert prometheus.query(uptime_query('container="prometheus",namespace="elsewhere"', cooldown)) == 0
    finally:
        prometheus.stop()


def test_the_gateway_lists_the_catalog(client):
    assert sorted(m.id for m in client.models.list()) == sorted([CHAT.name, EMBED.name])


def test_a_chat_completion_through_the_gateway(client):
    answer = client.chat.completions.create(
        model=CHAT.name, messages=[{"role": "user", "content": "Say something."}], max_tokens=MAX_TOKENS, logit_bias=NO_EOS, temperature=0
    )
    (choice,) = answer.choices
    assert answer.model.endswith(CHAT.name)
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str) and choice.message.content
    assert choice.finish_reason == "length"
    assert answer.usage.completion_tokens == MAX_TOKENS
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


def test_a_streamed_chat_completion_through_the_gateway(stack, client):
    chunks = list(
        client.chat.completions.create(
            model=CHAT.name,
            messages=[{"role": "user", "content": "Count."}],
            max_tokens=MAX_TOKENS,
            logit_bias=NO_EOS,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    usage = [c.usage for c in chunks if c.usage]
    assert 0 < len(pieces) <= MAX_TOKENS  # one chunk per token; a token may decode to no text yet
    assert finish == ["length"]
    assert usage and usage[-1].prompt_tokens > 0
    # llama-server counts the tokens it streamed; llama-cpp-python's server sends no usage, and LiteLLM's estimate
    # from the text uses another tokenizer
    assert usage[-1].completion_tokens == MAX_TOKENS or stack.fallback


def test_embeddings_through_the_gateway(client):
    answer = client.embeddings.create(model=EMBED.name, input=["a document about GPUs", "a question"])
    assert [d.index for d in answer.data] == [0, 1]
    assert all(len(d.embedding) == EMBED.shape.n_embd and all(isinstance(x, float) for x in d.embedding) for d in answer.data)
    assert answer.data[0].embedding != answer.data[1].embedding
    assert answer.usage.prompt_tokens > 0


def _served_prompt_tokens(stack) -> float:
    with urllib.request.urlopen(stack.server_url(CHAT.name).removesuffix("/v1") + "/metrics", timeout=10) as response:
        return float(re.search(r"^llamacpp:prompt_tokens_total (\S+)", response.read().decode(), re.M).group(1))


def test_an_input_longer_than_the_default_micro_batch_is_embedded(stack, client):
    # llama-server embeds an input in one micro-batch: the rendered one is the model's context, not 512 tokens
    text = " ".join(f"GPU shelf note {i}: the R9700 embeds every document of the homelab." for i in range(12))
    request = urllib.request.Request(
        stack.server_url(EMBED.name).removesuffix("/v1") + "/tokenize",
        data=json.dumps({"content": text}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        tokens = len(json.load(response)["tokens"])
    assert 512 < tokens < 2048, tokens
    answer = client.embeddings.create(model=EMBED.name, input=text)
    assert len(answer.data[0].embedding) == EMBED.shape.n_embd
    assert answer.usage.prompt_tokens >= tokens


def test_embeddings_through_the_gateway_as_curl_sends_them(stack):
    # no encoding_format, as curl examples and many RAG tools send it (the OpenAI client always adds one); LiteLLM
    # forwards a null then, which llama-server refuses unless the route gives a format
    request = urllib.request.Request(
        stack.gateway_url + "/embeddings",
        data=json.dumps({"model": EMBED.name, "input": "a document about GPUs"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {stack.master_key}"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        (item,) = json.load(response)["data"]
    assert len(item["embedding"]) == EMBED.shape.n_embd


@pytest.mark.parametrize("key", [None, "", "sk-wrong-key"], ids=["no-header", "empty-key", "wrong-key"])
def test_a_request_without_the_master_key_is_refused(stack, key):
    served = _served_prompt_tokens(stack) if not stack.fallback else None
    request = urllib.request.Request(
        stack.gateway_url + "/chat/completions",
        data=json.dumps({"model": CHAT.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key is not None else {})},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    error = json.loads(refused.value.read())["error"]
    if key == "sk-wrong-key":
        # LiteLLM without a database (as deployed) looks any other key up in the database it lacks: 400, not 401
        assert (refused.value.code, error["message"]) in ((400, "No connected db."), (401, error["message"])), error
    else:
        assert refused.value.code == 401, error
        assert error["type"] == "auth_error"
    if served is not None:
        assert _served_prompt_tokens(stack) == served  # nothing reached llama-server


def test_a_model_not_in_the_catalog_gets_a_clear_error(client):
    # the error names the model and where to look: a client with a stale model list learns what to fix
    for call in (
        lambda: client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=1),
        lambda: client.embeddings.create(model="gpt-4o", input="hi"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            call()
        message = refused.value.message
        assert "Invalid model name passed in model=gpt-4o" in message and "/v1/models" in message, message


def test_the_fallback_server_gets_each_rendered_argument_in_its_own_spelling():
    rendered = ["--host", "127.0.0.1", "--port", "8080", "--alias", "m", "--ctx-size", "4096", "--parallel", "2", "--n-gpu-layers", "999"]
    rendered += ["--metrics", "--embeddings", "--pooling", "last", "--batch-size", "2048", "--ubatch-size", "2048"]
    rendered += ["--model", "/models/m.gguf", "--flash-attn", "on"]
    assert llama_cpp_python_args(rendered) == [
        "--host", "127.0.0.1", "--port", "8080", "--model_alias", "m", "--n_ctx", "4096", "--n_gpu_layers", "999",
        "--embedding", "true", "--n_batch", "2048", "--n_ubatch", "2048", "--model", "/models/m.gguf", "--flash_attn", "true",
    ]  # fmt: skip
    # a catalog argument it cannot honour stops the fallback instead of being dropped
    with pytest.raises(RuntimeError, match="no equivalent of llama-server's --cache-type-k"):
        llama_cpp_python_args(["--cache-type-k", "q8_0"])


def _check(stack, **extra_vars):
    """check.yml on the example inventory with the stack's catalog and tree."""
    extra = {"homelab_ai_render_dir": str(stack.tree.parent), "homelab_ai_models": stack.catalog(), **extra_vars}
    return run_site(stack.collections, EXAMPLE, age_key=stack.age_key, extra_vars=extra, playbook="check.yml")


def test_the_check_playbook_asks_every_model_through_the_gateway(stack):
    run = _check(stack, check_url=stack.gateway_url)
    assert run.rc == 0, run.output[-3000:]
    assert re.search(r"tiny-chat +chat +[0-9.]+ s  ok  1 token\(s\)", run.output), run.output[-3000:]
    assert re.search(r"tiny-embed +embedding +[0-9.]+ s  ok  64 dimensions", run.output)
    assert "2 model(s) listed, refused without a key" in run.output
    assert stack.master_key not in run.output


def test_the_check_playbook_names_what_does_not_answer(stack):
    ghost = {"name": "ghost", "backend": "llamacpp", "source": "hf://homelab-e2e/ghost-GGUF/ghost.gguf", "node": "strix-02", "size": "1Mi"}
    run = _check(stack, check_url=stack.gateway_url, homelab_ai_models=[*stack.catalog(), ghost])
    assert run.rc != 0
    assert "ghost: the gateway does not list it. Fix: LiteLLM's config lacks it: re-run site.yml" in run.output
    assert stack.master_key not in run.output
    # no check_url: the Ingress of the inventory (llm.home.arpa), which this machine cannot reach
    run = _check(stack)
    assert run.rc != 0
    assert "cannot reach the gateway at http://llm.home.arpa/v1" in run.output and "port-forward svc/litellm 4000:4000" in run.output
