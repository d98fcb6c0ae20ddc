"""Image generation as rendered: ComfyUI (a stand-in) behind the pod's real nginx, with the Secret's key and password.

The proxy's configuration is the rendered ConfigMap, written by envsubst as the nginx image's entrypoint writes it,
and served by Debian's nginx; the requests are the ones Open WebUI's ``comfyui`` engine and a browser send.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import aiohttp
import pytest

from tests.support import sd_pod
from tests.support.tree_checks import decrypt_secrets, load_objects

pytestmark = pytest.mark.skipif(
    not (sd_pod.NGINX.exists() and sd_pod.ENVSUBST.exists()), reason=f"no nginx at {sd_pod.NGINX}: `make integration` unpacks it (.cache/nginx)"
)
MODEL = "sd_xl_base_1.0.safetensors"


@pytest.fixture(scope="module")
def secrets(rendered, age_key):
    tree, _ = rendered
    return {secret["metadata"]["name"]: secret["stringData"] for _, secret in decrypt_secrets(tree, str(age_key))}


def _claims(root: Path) -> dict:
    """The model volume, with the checkpoint where the example's pull Job puts it."""
    (root / "sd-data" / "checkpoints").mkdir(parents=True)
    (root / "sd-data" / "checkpoints" / MODEL).write_bytes(b"not really a checkpoint")
    return {"sd-data": root / "sd-data"}


@pytest.fixture()
def pod(rendered, secrets, tmp_path):
    tree, _ = rendered
    started = sd_pod.start([obj for _, obj in load_objects(tree)], secrets, tmp_path, _claims(tmp_path))
    yield started
    started.stop()


async def _get(url: str, headers=None):
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers or {}) as response:
        return response.status, dict(response.headers), await response.read()


async def _websocket(url: str, headers=None):
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers or {}) as ws:
                return 101, await ws.receive_json(timeout=5)
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status, None


def test_the_api_admits_open_webuis_bearer_key_only_on_http_and_the_websocket(pod, secrets):
    key = secrets["stable-diffusion"]["api-key"]
    assert len(key) == 48
    started = len(pod.requests())  # the start's own wait for ComfyUI
    bearer = {"Authorization": f"Bearer {key}", "User-Agent": "Mozilla/5.0"}
    assert asyncio.run(_get(f"{pod.api_url}/prompt"))[0] == 401
    assert asyncio.run(_get(f"{pod.api_url}/prompt", {"Authorization": f"Bearer {key}x"}))[0] == 401
    assert asyncio.run(_get(f"{pod.api_url}/prompt", {"Authorization": f"Basic {key}"}))[0] == 401
    status, _, body = asyncio.run(_get(f"{pod.api_url}/prompt", bearer))
    assert status == 200 and json.loads(body) == {"exec_info": {"queue_remaining": 0}}
    ws_url = pod.api_url.replace("http://", "ws://")
    assert asyncio.run(_websocket(f"{ws_url}/ws?clientId=abc"))[0] == 401
    status, first = asyncio.run(_websocket(f"{ws_url}/ws?clientId=abc", {"Authorization": f"Bearer {key}"}))
    assert status == 101 and first["type"] == "status" and first["data"]["sid"] == "abc"
    # the key stops at the proxy: ComfyUI never sees it, and saw nothing the proxy refused
    seen = pod.requests()[started:]
    assert [r["path"] for r in seen] == ["/prompt", "/ws"]
    assert all("Authorization" not in r["headers"] and "authorization" not in r["headers"] for r in seen)


def test_the_web_ui_asks_a_person_for_the_password_and_passes_a_browsers_origin(pod, secrets):
    user, password = secrets["stable-diffusion"]["username"], secrets["stable-diffusion"]["password"]
    status, headers, _ = asyncio.run(_get(f"{pod.ui_url}/"))
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="ComfyUI"'
    wrong = base64.b64encode(f"{user}:{password}x".encode()).decode()
    assert asyncio.run(_get(f"{pod.ui_url}/prompt", {"Authorization": f"Basic {wrong}"}))[0] == 401
    right = base64.b64encode(f"{user}:{password}".encode()).decode()
    # a browser names the address it opened in Host and Origin; ComfyUI refuses a loopback Host with another Origin
    host = "10.10.2.26"
    browser = {"Authorization": f"Basic {right}", "Host": host, "Origin": f"http://{host}"}
    assert asyncio.run(_get(f"{pod.ui_url}/prompt", browser))[0] == 200
    status, _ = asyncio.run(_websocket(f"{pod.ui_url.replace('http://', 'ws://')}/ws?clientId=ui", browser))
    assert status == 101
    # the Bearer key of the API is no password of the web UI
    assert asyncio.run(_get(f"{pod.ui_url}/prompt", {"Authorization": f"Bearer {secrets['stable-diffusion']['api-key']}"}))[0] == 401


def test_the_templates_take_every_character_the_preflight_lets_through(rendered, secrets, tmp_path):
    tree, _ = rendered
    tricky = {
        "username": "admin.home_lab-1",
        "password": "p$ass\"w{PLAIN}d\\${COMFYUI_API_KEY}'#;",
        "api-key": "Ab0._~+/-" + "k" * 40 + "==",
    }
    started = sd_pod.start([obj for _, obj in load_objects(tree)], {**secrets, "stable-diffusion": tricky}, tmp_path, _claims(tmp_path))
    try:
        basic = base64.b64encode(f"{tricky['username']}:{tricky['password']}".encode()).decode()
        assert asyncio.run(_get(f"{started.ui_url}/prompt", {"Authorization": f"Basic {basic}"}))[0] == 200
        assert asyncio.run(_get(f"{started.api_url}/prompt", {"Authorization": f"Bearer {tricky['api-key']}"}))[0] == 200
        # the password's ${COMFYUI_API_KEY} stays text: envsubst replaces variables of the template, not of the values
        literal = base64.b64encode(f"{tricky['username']}:p$ass\"w{{PLAIN}}d\\{tricky['api-key']}'#;".encode()).decode()
        assert asyncio.run(_get(f"{started.ui_url}/prompt", {"Authorization": f"Basic {literal}"}))[0] == 401
    finally:
        started.stop()


def test_nginx_ends_a_password_at_a_colon_which_is_why_the_preflight_refuses_one(rendered, secrets, tmp_path):
    tree, _ = rendered
    colon = {**secrets["stable-diffusion"], "password": "first:second"}
    started = sd_pod.start([obj for _, obj in load_objects(tree)], {**secrets, "stable-diffusion": colon}, tmp_path, _claims(tmp_path))
    try:
        for password, status in (("first:second", 401), ("first", 200)):
            basic = base64.b64encode(f"{colon['username']}:{password}".encode()).decode()
            assert asyncio.run(_get(f"{started.ui_url}/prompt", {"Authorization": f"Basic {basic}"}))[0] == status
    finally:
        started.stop()


def test_only_the_ports_and_paths_of_the_pod_were_changed_to_run_it_here(pod):
    assert sorted(where for where, _, _ in pod.mapped) == ["comfyui CLI_ARGS --port", "conf.d/comfyui.conf", "conf.d/comfyui.conf", "conf.d/comfyui.conf"]
    assert sorted(rendered for _, rendered, _ in pod.mapped) == ["127.0.0.1:8188", "8188", "listen 8080;", "listen 8081;"]


def test_the_probes_see_the_checkpoint_open_webui_asks_for(pod, rendered):
    tree, _ = rendered
    deployment = next(obj for _, obj in load_objects(tree) if obj["kind"] == "Deployment" and obj["metadata"]["name"] == "stable-diffusion")
    comfy = deployment["spec"]["template"]["spec"]["containers"][0]
    assert sd_pod.exec_probe(pod, comfy["readinessProbe"]) == 0
    assert sd_pod.exec_probe(pod, comfy["livenessProbe"]) == 0
    (Path(pod.root) / "sd-data" / "checkpoints" / MODEL).unlink()
    assert sd_pod.exec_probe(pod, comfy["readinessProbe"]) == 1  # a pull Job still filling the volume: not ready
    assert sd_pod.exec_probe(pod, comfy["livenessProbe"]) == 0
