# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Does the deployed stack answer? The requests an OpenAI client would send, one per catalog model, through LiteLLM.

- the gateway lists every catalog model on ``/v1/models`` with the master key, and refuses that list without a key;
- each chat model answers a one-token chat completion, each completion model a one-token completion, and each
  embedding model an embedding.

A model that scales to zero starts on its first request, which may take minutes: each request waits ``timeout``.
Every failure names the model, what the gateway said, and where to look next. The key never appears in a result.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = ["GatewayReport", "GatewayUnreachable", "ModelCheck", "check_gateway"]

PROMPT = "Reply with one word."
_REQUESTS = {
    "chat": ("/chat/completions", lambda name: {"model": name, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 1}),
    "completion": ("/completions", lambda name: {"model": name, "prompt": PROMPT, "max_tokens": 1}),
    "embedding": ("/embeddings", lambda name: {"model": name, "input": PROMPT}),
}


class GatewayUnreachable(Exception):
    """The gateway itself did not answer, or refused the key: no model can be checked."""


@dataclass
class ModelCheck:
    name: str
    mode: str
    ok: bool
    seconds: float
    detail: str  # "1 token", "1024 dimensions", or what went wrong
    fix: str = ""


@dataclass
class GatewayReport:
    url: str
    listed: List[str]
    anonymous_refused: bool
    models: List[ModelCheck] = field(default_factory=list)

    @property
    def missing(self) -> List[str]:
        """Catalog models the gateway does not list (each also a failed check)."""
        return sorted({m.name for m in self.models} - set(self.listed))

    @property
    def ok(self) -> bool:
        return self.anonymous_refused and all(m.ok for m in self.models)

    def problems(self) -> List[str]:
        found = []
        if not self.anonymous_refused:
            found.append(f"{self.url}: answers /models without a key. Fix: the proxy runs without its master key; re-run site.yml")
        found.extend(f"{m.name}: {m.detail}. Fix: {m.fix}" for m in self.models if not m.ok)
        return found

    def lines(self) -> List[str]:
        """A line per model for the output: name, mode, seconds, what it answered or what went wrong."""
        width = max([len(m.name) for m in self.models] + [4])
        head = f"{self.url}: {len(self.listed)} model(s) listed, " + ("refused without a key" if self.anonymous_refused else "ANSWERS WITHOUT A KEY")
        return [head] + [f"{m.name:<{width}}  {m.mode:<10} {m.seconds:7.2f} s  {'ok' if m.ok else 'FAILED'}  {m.detail}" for m in self.models]

    def to_dict(self) -> Dict[str, Any]:
        return {**asdict(self), "missing": self.missing, "ok": self.ok, "lines": self.lines()}


def _call(url: str, key: Optional[str], body: Optional[Mapping[str, Any]], timeout: float) -> Tuple[int, Any]:
    """(status, parsed body or text) of one request; raises OSError where no HTTP answer came."""
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")[:500]


def _message(body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or body["error"])
    return str(body)[:500]


def _server_hint(model: Mapping[str, Any], namespace: str) -> str:
    if model.get("backend") == "ollama":
        return f"see `kubectl -n {namespace} logs statefulset/ollama`; is the model pulled (its pull Job) and does it fit the GPU?"
    name = f"llamacpp-{model.get('slug') or model['name']}"
    return f"see `kubectl -n {namespace} get pods -l app.kubernetes.io/instance={name}` and `kubectl -n {namespace} logs deploy/{name}`"


def _answer(mode: str, body: Any) -> Optional[str]:
    """What a good answer shows ("1 token", "1024 dimensions"), or None when the body is not one."""
    if not isinstance(body, dict):
        return None
    if mode == "embedding":
        data = body.get("data") or []
        vector = data[0].get("embedding") if data and isinstance(data[0], dict) else None
        return f"{len(vector)} dimensions" if isinstance(vector, list) and vector else None
    usage = body.get("usage") or {}
    if body.get("choices") and isinstance(usage.get("completion_tokens"), int):
        return f"{usage['completion_tokens']} token(s)"
    return None


def check_model(base: str, key: str, model: Mapping[str, Any], listed: Sequence[str], timeout: float, namespace: str) -> ModelCheck:
    name, mode = str(model["name"]), str(model.get("mode") or "chat")
    if name not in listed:
        return ModelCheck(name, mode, False, 0.0, "the gateway does not list it", "LiteLLM's config lacks it: re-run site.yml (and let Flux reconcile)")
    path, body = _REQUESTS.get(mode, _REQUESTS["chat"])
    started = time.monotonic()
    try:
        status, answer = _call(base + path, key, body(name), timeout)
    except OSError as exc:  # refused, reset, or timed out (socket.timeout is an OSError)
        seconds = time.monotonic() - started
        return ModelCheck(name, mode, False, seconds, f"no answer within {timeout:.0f} s ({exc})", _server_hint(model, namespace))
    seconds = time.monotonic() - started
    shown = _answer(mode, answer) if status == 200 else None
    if shown:
        return ModelCheck(name, mode, True, seconds, shown)
    return ModelCheck(name, mode, False, seconds, f"{status}: {_message(answer)}", _server_hint(model, namespace))


def check_gateway(url: str, key: str, models: Sequence[Mapping[str, Any]], timeout: float = 300.0, namespace: str = "ai") -> GatewayReport:
    """Check the gateway at ``url`` (its OpenAI base, ``.../v1``) with the master key ``key``."""
    base = url.rstrip("/")
    try:
        status, body = _call(base + "/models", key, None, min(timeout, 30.0))
    except OSError as exc:
        raise GatewayUnreachable(
            f"cannot reach the gateway at {base} ({exc}). Fix: give the address clients use (the Ingress, "
            f"http://<litellm_ingress_host>/v1), or run `kubectl -n {namespace} port-forward svc/litellm 4000:4000` "
            "and check http://127.0.0.1:4000/v1"
        ) from None
    if status in (400, 401, 403):
        raise GatewayUnreachable(
            f"the gateway at {base} refuses the master key ({status}: {_message(body)}). Fix: the key in the SOPS file differs from "
            f"the one the proxy runs with; re-run site.yml, then `kubectl -n {namespace} rollout restart deploy/litellm`"
        )
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise GatewayUnreachable(f"{base}/models answered {status}: {_message(body)}. Fix: is this LiteLLM's OpenAI base URL (ending in /v1)?")
    listed = sorted(str(m.get("id")) for m in body["data"] if isinstance(m, dict))
    try:
        anonymous, _ = _call(base + "/models", None, None, min(timeout, 30.0))
    except OSError:
        anonymous = 0
    checks = [check_model(base, key, model, listed, timeout, namespace) for model in models]
    return GatewayReport(base, listed, anonymous in (400, 401, 403), checks)
