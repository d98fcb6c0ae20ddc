# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Models in a running Ollama, through its HTTP API: ``/api/tags``, streaming ``/api/pull``, ``/api/delete``,
``/api/show``. Standard library only.

State ``present`` pulls a model that is missing; ``latest`` pulls always and reports a change only when the
model's digest moved (Ollama's pull is itself incremental); ``absent`` deletes. In check mode ``latest`` compares
the digest Ollama has with the registry's manifest digest (the sha256 of the manifest, which is what Ollama
reports), so it can say whether a pull would change anything without pulling.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ._sources import Source, SourceError, parse_source

__all__ = ["OllamaApi", "OllamaError", "OllamaResult", "ensure_model", "model_name"]

STATES = ("present", "latest", "absent")


class OllamaError(RuntimeError):
    pass


def model_name(name: str) -> Source:
    """``llama3.2`` / ``llama3.2:3b`` / ``ollama://…``: the source, whose ``ollama_name`` is what Ollama lists."""
    uri = name if name.startswith("ollama://") else f"ollama://{name}"
    try:
        return parse_source(uri)
    except SourceError as exc:
        raise OllamaError(f"name: {exc}") from None


class OllamaApi:
    def __init__(self, url: str = "http://127.0.0.1:11434", timeout: float = 3600.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            return urllib.request.urlopen(request, timeout=timeout or 30.0)
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read() or b"{}").get("error") or exc.reason
            except ValueError:
                message = exc.reason
            raise OllamaError(f"{method} {self.url}{path}: HTTP {exc.code}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise OllamaError(f"Ollama at {self.url} did not answer ({getattr(exc, 'reason', exc)}); check url and that Ollama runs") from None

    def tags(self) -> List[Dict[str, Any]]:
        with self._call("GET", "/api/tags") as resp:
            return list(json.load(resp).get("models") or [])

    def find(self, name: str) -> Optional[Dict[str, Any]]:
        for model in self.tags():
            if name in (model.get("name"), model.get("model")):
                return model
        return None

    def show(self, name: str) -> Dict[str, Any]:
        with self._call("POST", "/api/show", {"model": name}) as resp:
            return dict(json.load(resp))

    def pull(self, name: str, insecure: bool = False, progress: Optional[Callable[[Dict[str, Any]], None]] = None) -> List[str]:
        """Stream the pull's NDJSON status lines; an ``error`` line fails. Returns the statuses seen."""
        statuses: List[str] = []
        with self._call("POST", "/api/pull", {"model": name, "insecure": insecure, "stream": True}, timeout=self.timeout) as resp:
            for raw in resp:
                if not raw.strip():
                    continue
                try:
                    line = json.loads(raw)
                except ValueError:
                    raise OllamaError(f"pull {name}: Ollama sent {raw[:200]!r}, not JSON") from None
                if line.get("error"):
                    raise OllamaError(f"pull {name}: {line['error']}")
                status = str(line.get("status") or "")
                if status and (not statuses or statuses[-1] != status):
                    statuses.append(status)
                if progress:
                    progress(line)
        if not statuses or statuses[-1] != "success":
            raise OllamaError(f"pull {name}: the stream ended without success (last: {statuses[-1] if statuses else 'nothing'})")
        return statuses

    def delete(self, name: str) -> bool:
        try:
            self._call("DELETE", "/api/delete", {"model": name}).close()
        except OllamaError as exc:
            if "HTTP 404" in str(exc):
                return False
            raise
        return True


@dataclass
class OllamaResult:
    changed: bool
    action: str  # pulled | updated | unchanged | deleted | absent; "would …" in check mode
    name: str
    digest: str = ""
    before_digest: str = ""
    size: int = 0
    details: Dict[str, Any] = field(default_factory=dict)
    statuses: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def ensure_model(
    api: OllamaApi,
    name: str,
    state: str = "present",
    *,
    check_mode: bool = False,
    insecure: bool = False,
    registry_digest: Optional[Callable[[Source], str]] = None,
) -> OllamaResult:
    if state not in STATES:
        raise OllamaError(f"state: {state!r} is not one of {', '.join(STATES)}")
    source = model_name(name)
    wanted = source.ollama_name
    before = api.find(wanted)
    before_digest = str(before.get("digest") or "") if before else ""
    if state == "absent":
        if before is None:
            return OllamaResult(False, "absent", wanted)
        if not check_mode:
            api.delete(wanted)
        return OllamaResult(True, "would delete" if check_mode else "deleted", wanted, before_digest=before_digest, size=int(before.get("size") or 0))
    if before is not None and state == "present":
        return _present(api, wanted, before, "unchanged", before_digest, [])
    if check_mode:
        if before is None:
            return OllamaResult(True, "would pull", wanted)
        remote = registry_digest(source) if registry_digest else ""
        changed = not remote or remote.replace("sha256:", "") != before_digest.replace("sha256:", "")
        return OllamaResult(changed, "would update" if changed else "unchanged", wanted, digest=remote or before_digest, before_digest=before_digest)
    statuses = api.pull(wanted, insecure=insecure)
    after = api.find(wanted)
    if after is None:
        raise OllamaError(f"pull {wanted}: Ollama said success but does not list the model")
    digest = str(after.get("digest") or "")
    if before is None:
        return _present(api, wanted, after, "pulled", "", statuses, changed=True)
    changed = digest != before_digest
    return _present(api, wanted, after, "updated" if changed else "unchanged", before_digest, statuses, changed=changed)


def _present(api: OllamaApi, name: str, model: Dict[str, Any], action: str, before: str, statuses: List[str], changed: bool = False) -> OllamaResult:
    details = dict(model.get("details") or {})
    return OllamaResult(changed, action, name, str(model.get("digest") or ""), before, int(model.get("size") or 0), details, statuses)
