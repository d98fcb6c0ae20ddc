# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""A fake Ollama HTTP API on 127.0.0.1, speaking the real shapes: /api/tags, /api/show, streaming NDJSON
/api/pull, /api/delete, /api/version. ``registry`` is what a pull would fetch; ``models`` what Ollama has."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .servers import JsonHandler, StandIn


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def entry(name: str, digest: str, size: int = 2_019_393_189) -> Dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2026-11-23T12:00:00.000000000Z",
        "size": size,
        "digest": digest,
        "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"], "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
    }


@dataclass
class FakeOllama(StandIn):
    registry: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # name:tag -> entry a pull installs
    models: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # name:tag -> entry
    log: List[Dict[str, Any]] = field(default_factory=list)
    fail_pull: Optional[str] = None  # an error line in mid-stream

    def __post_init__(self) -> None:
        fake = self

        class Handler(JsonHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> Dict[str, Any]:
                return self.read_json()

            def _json(self, status: int, body: Any) -> None:
                self.send_json(status, body, content_type="application/json; charset=utf-8")

            def _record(self, body: Dict[str, Any]) -> None:
                fake.log.append({"method": self.command, "path": self.path, "body": body})

            def do_GET(self) -> None:
                self._record({})
                if self.path == "/api/tags":
                    return self._json(200, {"models": list(fake.models.values())})
                if self.path == "/api/version":
                    return self._json(200, {"version": "0.35.1"})
                return self._json(404, {"error": "not found"})

            def do_POST(self) -> None:
                body = self._body()
                self._record(body)
                name = _full(body.get("model") or body.get("name") or "")
                if self.path == "/api/show":
                    model = fake.models.get(name)
                    if model is None:
                        return self._json(404, {"error": f"model '{name}' not found"})
                    return self._json(
                        200, {"modelfile": "FROM x", "parameters": "", "template": "{{ .Prompt }}", "details": model["details"], "model_info": {}}
                    )
                if self.path == "/api/pull":
                    return self._pull(name)
                return self._json(404, {"error": "not found"})

            def do_DELETE(self) -> None:
                body = self._body()
                self._record(body)
                name = _full(body.get("model") or body.get("name") or "")
                if self.path != "/api/delete":
                    return self._json(404, {"error": "not found"})
                if fake.models.pop(name, None) is None:
                    return self._json(404, {"error": f"model '{name}' not found"})
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _pull(self, name: str) -> None:
                # Ollama streams NDJSON with chunked transfer encoding
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

                def line(obj: Dict[str, Any]) -> None:
                    data = json.dumps(obj).encode() + b"\n"
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

                line({"status": "pulling manifest"})
                target = fake.registry.get(name)
                if target is None:
                    line({"error": "pull model manifest: file does not exist"})
                elif fake.fail_pull:
                    line({"status": f"pulling {target['digest'][:12]}", "digest": "sha256:" + target["digest"], "total": 100, "completed": 50})
                    line({"error": fake.fail_pull})
                else:
                    for done in (0, 50, 100):
                        line({"status": f"pulling {target['digest'][:12]}", "digest": "sha256:" + target["digest"], "total": 100, "completed": done})
                        time.sleep(0.01)
                    for status in ("verifying sha256 digest", "writing manifest", "success"):
                        line({"status": status})
                    fake.models[name] = dict(target)
                self.wfile.write(b"0\r\n\r\n")

        super().__init__(Handler)

    def publish(self, name: str, version: str = "1") -> Dict[str, Any]:
        self.registry[name] = entry(name, digest_of(f"{name}@{version}"))
        return self.registry[name]

    def calls(self, path: str) -> List[Dict[str, Any]]:
        return [r for r in self.log if r["path"] == path]


def _full(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"
