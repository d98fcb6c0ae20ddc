# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Open WebUI, the front door, as a person uses it.

The end-to-end stack (tiny models pulled by the rendered Jobs, the real llama-server and LiteLLM) gets the real Open
WebUI of the image's release, run as rendered (``Stack.start_open_webui``), with the Qdrant stand-in
(``tests/support/qdrant.py``) as its vector store. Debian's Chromium, driven by playwright, signs up the first admin,
signs in, picks the catalog's chat model, chats, and asks a document it uploaded: the document is split, embedded by
the catalog's embedding model on llama-server through LiteLLM, stored in Qdrant, and found again.

Screenshots go to ``.cache/artifacts/open-webui/`` (made anew each run). Open WebUI and Chromium come from ``make
integration`` (``.cache/venv-open-webui``, ``scripts/debian-programs.py``); where the Makefile named them
(``OPEN_WEBUI_BIN``, ``CHROMIUM_BIN``) and they are missing, the test fails, elsewhere it skips and says why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import pytest

from tests.support.e2e import CHAT, CHECKPOINT_FILE, EMBED, LITELLM, LLAMA_SERVER, NAMESPACE, OPEN_WEBUI, Stack, describe, open_webui_release
from tests.support.example import ROOT
from tests.support.qdrant import NO_KEY, WRONG_KEY, read_log, release_of
from tests.support.webui import CHROMIUM, Answer, Session, chromium_release, provided_chromium

ARTIFACTS = ROOT / ".cache" / "artifacts" / "open-webui"
ADMIN = {"name": "Homelab Admin", "email": "admin@home.arpa", "password": "correct horse battery staple"}
MAX_TOKENS = 24  # a random-weight model may otherwise answer with thousands of tokens
# a random-weight model's titles, tags, follow-ups and search queries are noise that runs for thousands of tokens:
# the admin turns them off (the search then uses the question itself)
QUIET_TASKS = {"Title Generation": False, "Follow Up Generation": False, "Tags Generation": False, "Retrieval Query Generation": False}
DOCUMENT = """Homelab runbook: the GPU shelf.

The AMD R9700 card in gpu-amd-01 runs the embedding model for the whole stack. It sits in the lower slot, because the
upper slot shares its lanes with the NVMe drive.

The two Strix Halo machines, strix-01 and strix-02, run the larger chat models. Each has 128 GB of unified memory, of
which 96 GB go to the GPU through the GTT size on the kernel command line.

The secret word of the homelab is PERIWINKLE-42.

The NVIDIA RTX 4000 SFF is shared by Ollama and Stable Diffusion through time-slicing with four replicas. There is no
memory isolation, so the VRAM budget table is kept by hand.
"""


def _require(path: Path, what: str, variable: str) -> None:
    """Fail where the Makefile named the program (CI: it must run there), skip elsewhere."""
    if path.exists():
        return
    message = f"no {what} at {path}: `make integration` installs it"
    if os.environ.get(variable):
        pytest.fail(f"{message}, and it did not (see its output above)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def stack(collections, age_key, tmp_path_factory):
    _require(LITELLM, "LiteLLM", "LITELLM_BIN")
    _require(LLAMA_SERVER, "llama-server", "LLAMA_SERVER_BIN")
    _require(OPEN_WEBUI, "Open WebUI", "OPEN_WEBUI_BIN")
    stack = Stack(collections, age_key, tmp_path_factory.mktemp("webui")).start()
    try:
        stack.start_image_generation()  # before Open WebUI, so that its address of ComfyUI reaches the pod
        stack.start_open_webui()
    except BaseException:
        stack.stop()
        raise
    print("\n" + describe(stack))
    yield stack
    stack.stop_checked()


@pytest.fixture(scope="module")
def shots() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\nscreenshots: {ARTIFACTS}")
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    _require(CHROMIUM, "Chromium", "CHROMIUM_BIN")
    assert chromium_release() == provided_chromium(), f"{CHROMIUM} is Chromium {chromium_release()}, scripts/debian-programs.py provided {provided_chromium()}"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def person(stack, browser, shots):
    """The first person: signs up (and so becomes the admin), then signs in again in a fresh browser, as on another day."""
    first = Session(browser, stack.webui_url, shots)
    first.sign_up_first_admin(ADMIN["name"], ADMIN["email"], ADMIN["password"])
    first.close()
    session = Session(browser, stack.webui_url, shots)
    session.sign_in(ADMIN["email"], ADMIN["password"], shot="sign-in")
    session.admin_switches("interface", QUIET_TASKS)
    # and the rewrite of a picture's prompt by the chat model: the prompt as typed reaches ComfyUI
    session.admin_switches("images", {"Image Prompt Generation": False})
    yield session
    session.close()


def _metrics(url: str) -> Dict[str, float]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/metrics", timeout=10) as response:
        return {m.group(1): float(m.group(2)) for m in re.finditer(r"^(llamacpp:\w+) (\S+)$", response.read().decode(), re.M)}


def _tokens(stack: Stack, model: str, text: str) -> int:
    request = urllib.request.Request(
        stack.server_url(model).removesuffix("/v1") + "/tokenize", data=json.dumps({"content": text}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return len(json.load(response)["tokens"])


def _embedding(stack: Stack, text: str) -> List[float]:
    request = urllib.request.Request(
        stack.server_url(EMBED.name) + "/embeddings",
        data=json.dumps({"model": EMBED.name, "input": text, "encoding_format": "float"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["data"][0]["embedding"]


def _qdrant(stack: Stack, path: str, headers: Dict[str, str]) -> urllib.request.Request:
    assert stack.vector_store
    return urllib.request.Request(stack.vector_store.url(6333) + path, headers=headers)


def test_open_webui_runs_the_images_release_with_the_rendered_environment(stack):
    deployment = stack.cluster.get("Deployment", "open-webui", NAMESPACE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].rsplit(":", 1)[1].removeprefix("v") == open_webui_release(stack.open_webui)
    # every rendered variable as rendered, but for a path or a Service address mapped to this machine, or a secret
    # decrypted from its SOPS file
    mapped = {m.where[len("env ") :]: m for m in stack.webui.mapped if m.where.startswith("env ")}
    secrets = {(s["metadata"]["name"]): s["stringData"] for s in stack.cluster.secrets.values()}
    for item in container["env"]:
        name = item["name"]
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert stack.webui.env[name] == secrets[ref["name"]][ref["key"]], name
        elif name in mapped:
            assert (mapped[name].rendered, stack.webui.env[name]) == (item["value"], mapped[name].local), name
        elif "$(" in item["value"]:  # the kubelet's expansion of earlier variables
            assert "$(" not in stack.webui.env[name], name
        else:
            assert stack.webui.env[name] == item["value"], name
    assert {m.why for m in stack.webui.mapped} <= {"path", "host", "port", "cluster-dns", "cluster-dns, nothing started behind it"}
    # the rendered choices this test relies on: a quiet version check, the catalog's chat models only
    assert stack.webui.env["ENABLE_VERSION_UPDATE_CHECK"] == "False" and stack.webui.env["ENABLE_EVALUATION_ARENA_MODELS"] == "False"
    assert json.loads(stack.webui.env["OPENAI_API_CONFIGS"]) == {"0": {"enable": True, "model_ids": [CHAT.name]}}
    # Open WebUI reaches LiteLLM (chat and embeddings) and Qdrant through the loopback ports behind their Services
    assert stack.webui.env["OPENAI_API_BASE_URL"] == stack.gateway_url == stack.webui.env["RAG_OPENAI_API_BASE_URL"]
    assert stack.webui.env["QDRANT_URI"] == stack.vector_store.url(6333)
    # the stand-in holds the key the rendered Secret gives Qdrant, which is the one Open WebUI got
    assert stack.vector_store.env["QDRANT__SERVICE__API_KEY"] == stack.webui.env["QDRANT_API_KEY"] == secrets["qdrant"]["api-key"]


def test_the_first_person_signs_up_as_admin_and_signs_in(stack, person):
    assert (ARTIFACTS / "sign-in.png").stat().st_size > 10_000
    me = person.page.evaluate(
        "async (token) => (await fetch('/api/v1/auths/', {headers: {Authorization: `Bearer ${token}`}})).json()",
        person.token(),
    )
    assert (me["email"], me["role"]) == (ADMIN["email"], "admin")


def test_the_model_picker_offers_the_catalog_chat_models_only(person):
    # the embedding model answers no chat, and the arena pseudo-model is off
    person.new_chat()
    assert person.offered_models(shot="model-picker") == [CHAT.name]


def _check_streamed(answer: Answer) -> None:
    assert answer.done, answer.events
    assert len(answer.deltas) >= 5, answer.deltas  # piece by piece, not in one block
    assert answer.deltas[-1][0] > answer.deltas[0][0]
    assert answer.done["usage"]["output_tokens"] == MAX_TOKENS
    shown = answer.shown.split("\n", 1)[1] if "\n" in answer.shown else ""
    assert shown.strip(), answer.shown  # the page shows it under the model's name


def test_a_chat_streams_its_answer_from_llama_server(stack, person):
    before = _metrics(stack.server_url(CHAT.name))
    person.new_chat()
    person.pick_model(CHAT.name)
    person.limit_answer(MAX_TOKENS)
    answer = person.send("Hello from the homelab. Say something.")
    person.shot("chat")
    _check_streamed(answer)
    assert answer.shown.startswith(CHAT.name)
    # llama-server made those tokens
    after = _metrics(stack.server_url(CHAT.name))
    assert after["llamacpp:tokens_predicted_total"] - before["llamacpp:tokens_predicted_total"] >= MAX_TOKENS


@dataclass
class Upload:
    path: Path
    before: Dict[str, float]  # the embedding server's metrics before the upload
    after: Dict[str, float]
    log: List[Dict]  # what reached Qdrant during the upload
    answer: Answer  # the question asked in the same chat after the upload
    asked: List[Dict]  # what reached Qdrant while it was answered


@pytest.fixture(scope="module")
def document(stack, person, tmp_path_factory) -> Upload:
    """The runbook, uploaded into a new chat through the message box, then a question about it in that chat, with what
    the embedding server and Qdrant saw of each (one fixture: the tests that check them run in any order)."""
    path = tmp_path_factory.mktemp("docs") / "gpu-shelf.txt"
    path.write_text(DOCUMENT)
    person.new_chat()
    person.pick_model(CHAT.name)
    person.limit_answer(MAX_TOKENS)
    seen = len(read_log(stack.qdrant_storage))
    before = _metrics(stack.server_url(EMBED.name))
    person.attach(path)
    after = _metrics(stack.server_url(EMBED.name))
    uploaded = len(read_log(stack.qdrant_storage))
    answer = person.send("What is the secret word of the homelab?")
    person.shot("chat-with-document")
    log = read_log(stack.qdrant_storage)
    return Upload(path, before, after, log[seen:uploaded], answer, log[uploaded:])


def test_a_document_is_embedded_by_the_catalog_model_and_stored_in_qdrant(stack, document):
    before, after, log = document.before, document.after, document.log
    upserts = [r for r in log if r["method"] == "PUT" and r["path"].endswith("/points") and r["status"] == 200]
    assert upserts, [(r["method"], r["path"], r["status"]) for r in log]
    points = [p for r in upserts for p in r["body"]["points"]]
    # split: several chunks, together the whole document
    texts = [p["payload"]["text"] for p in points]
    assert len(texts) > 1 and all(len(t) <= 250 for t in texts)
    assert "PERIWINKLE-42" in " ".join(texts)
    # one collection for all files (multitenancy), the file as its tenant
    (collection,) = {r["path"].split("/")[2] for r in upserts}
    assert collection == "open-webui_files"
    assert {p["payload"]["tenant_id"] for p in points} == {f"file-{points[0]['payload']['metadata']['file_id']}"}
    created = [r for r in log if r["method"] == "PUT" and r["path"] == f"/collections/{collection}"]
    assert created and created[0]["body"]["vectors"]["size"] == EMBED.shape.n_embd
    # each vector has the embedding model's dimension and is what llama-server's embedding model gives for its text
    assert all(len(p["vector"]) == EMBED.shape.n_embd for p in points)
    for point in points[:2]:
        direct = _embedding(stack, point["payload"]["text"].replace("\n", " "))  # Open WebUI embeds lines joined
        assert max(abs(a - b) for a, b in zip(direct, point["vector"], strict=True)) < 1e-4
    assert after["llamacpp:prompt_tokens_total"] - before["llamacpp:prompt_tokens_total"] >= sum(_tokens(stack, EMBED.name, t) for t in texts) - len(texts)
    # every request Open WebUI made carried the key
    assert {r["key"] for r in log} == {"ok"}


def test_a_later_chat_with_the_document_retrieves_it(stack, document):
    answer = document.answer
    _check_streamed(answer)
    # the question was embedded and searched among the file's chunks
    queries = [r for r in document.asked if r["path"].endswith("/points/query")]
    assert queries and all(r["status"] == 200 for r in queries)
    body = queries[-1]["body"]
    (source,) = answer.sources
    assert len(body["query"]["nearest"]) == EMBED.shape.n_embd
    assert body["filter"]["must"][0] == {"key": "tenant_id", "match": {"value": f"file-{source['source']['id']}"}}
    # what it found, chunks of the document, went to the model, and the page shows where it came from
    assert source["source"]["name"] == document.path.name
    found = source["document"]
    words = " ".join(DOCUMENT.split())
    assert found and all(" ".join(chunk.split()) in words for chunk in found), found
    assert answer.done["usage"]["input_tokens"] > sum(_tokens(stack, CHAT.name, chunk) for chunk in found)
    assert "1 Source" in answer.shown


def test_qdrant_refuses_a_request_without_its_api_key(stack):
    """With the rendered key a collection is made and listed; without it, or with another, nothing is."""
    key = stack.vector_store.env["QDRANT__SERVICE__API_KEY"]
    collection = "api-key-check"
    body = json.dumps({"vectors": {"size": EMBED.shape.n_embd, "distance": "Cosine"}}).encode()
    for headers, refusal in (({}, NO_KEY), ({"api-key": "wrong"}, WRONG_KEY)):
        for path, data in ((f"/collections/{collection}", body), ("/collections", None)):
            request = _qdrant(stack, path, {**headers, "Content-Type": "application/json"})
            if data is not None:
                request.data, request.method = data, "PUT"
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            assert (refused.value.code, refused.value.read().decode()) == (403, refusal)
    made = _qdrant(stack, f"/collections/{collection}", {"api-key": key, "Content-Type": "application/json"})
    made.data, made.method = body, "PUT"
    with urllib.request.urlopen(made, timeout=10) as response:
        assert json.load(response)["result"] is True
    try:
        with urllib.request.urlopen(_qdrant(stack, "/collections", {"api-key": key}), timeout=10) as response:
            assert collection in [c["name"] for c in json.load(response)["result"]["collections"]]
    finally:
        gone = _qdrant(stack, f"/collections/{collection}", {"api-key": key})
        gone.method = "DELETE"
        urllib.request.urlopen(gone, timeout=10).close()
    # as Qdrant's own middleware: its version and probes need no key
    image = stack.cluster.get("StatefulSet", "qdrant", NAMESPACE)["spec"]["template"]["spec"]["containers"][0]["image"]
    with urllib.request.urlopen(_qdrant(stack, "/", {}), timeout=10) as response:
        assert json.load(response)["version"] == release_of(image)[1]


def _png_size(data: bytes) -> tuple:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _comfyui_requests(stack: Stack, since: int = 0) -> List[Dict]:
    return stack.image_generation.requests()[since:]


def test_open_webui_makes_a_picture_with_comfyui_behind_the_rendered_proxy(stack, person):
    """Open WebUI's own image request (its comfyui engine, the rendered workflow, URL and key) through the pod's
    real nginx, which admits only that key, to ComfyUI (the stand-in), and the picture back."""
    secrets = {(s["metadata"]["name"]): s["stringData"] for s in stack.cluster.secrets.values()}
    assert stack.webui.env["COMFYUI_BASE_URL"] == stack.image_generation.api_url
    assert stack.webui.env["COMFYUI_API_KEY"] == secrets["stable-diffusion"]["api-key"]
    seen = len(_comfyui_requests(stack))
    token = person.token()
    request = urllib.request.Request(
        stack.webui_url + "/api/v1/images/generations",
        data=json.dumps({"prompt": "a lighthouse at dusk"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        (image,) = json.load(response)
    with urllib.request.urlopen(urllib.request.Request(stack.webui_url + image["url"], headers={"Authorization": f"Bearer {token}"}), timeout=30) as r:
        assert _png_size(r.read()) == (1024, 1024)  # open_webui_image_resolution
    calls = _comfyui_requests(stack, seen)
    # the websocket is logged when it closes: order by what each call is
    by_path = {r["path"].split("/")[1]: r for r in calls}
    assert sorted((r["method"], r["path"].split("/")[1]) for r in calls) == [("GET", "history"), ("GET", "view"), ("GET", "ws"), ("POST", "prompt")]
    assert all(r["status"] in (101, 200) for r in calls)
    workflow = by_path["prompt"]["body"]["prompt"]
    # the rendered workflow with what Open WebUI filled in by the rendered node map
    assert workflow["6"]["inputs"]["text"] == "a lighthouse at dusk"
    assert workflow["4"]["inputs"]["ckpt_name"] == CHECKPOINT_FILE  # stable_diffusion_model, pulled by the rendered Job
    assert (workflow["5"]["inputs"]["width"], workflow["5"]["inputs"]["height"], workflow["3"]["inputs"]["steps"]) == (1024, 1024, 30)
    assert by_path["prompt"]["body"]["client_id"] == by_path["ws"]["query"]["clientId"]
    # the key stopped at the proxy
    assert not any("Authorization" in r["headers"] or "authorization" in r["headers"] for r in calls)


def test_a_picture_appears_in_the_chat_when_the_image_button_is_on(stack, person):
    seen = len(_comfyui_requests(stack))
    person.new_chat()
    person.pick_model(CHAT.name)
    person.limit_answer(MAX_TOKENS)
    person.toggle_image()
    answer = person.send("a red fox in the snow", timeout=180)
    (picture,) = person.pictures(answer.message_id)
    person.shot("chat-image")
    assert (picture["width"], picture["height"]) == (1024, 1024)
    prompts = [r["body"]["prompt"] for r in _comfyui_requests(stack, seen) if r["method"] == "POST"]
    assert [p["6"]["inputs"]["text"] for p in prompts] == ["a red fox in the snow"]


def test_open_webui_reached_for_nothing_outside_this_machine(stack):
    # after start, sign-up, chats and a document: its proxy variables name a recorder that lets nothing through
    assert stack.webui.env["HTTPS_PROXY"] == stack.egress.url
    assert stack.egress.requests == []
