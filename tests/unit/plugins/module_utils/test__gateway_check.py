# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import json
import time
from typing import Any, Dict, Iterator, List

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._gateway_check import GatewayUnreachable, check_gateway
from tests.support.servers import JsonHandler, StandIn

KEY = "sk-master-0123456789"
CATALOG = [
    {"name": "chat", "mode": "chat", "backend": "llamacpp", "slug": "chat"},
    {"name": "embed", "mode": "embedding", "backend": "llamacpp", "slug": "embed"},
    {"name": "llama3.2", "mode": "chat", "backend": "ollama", "slug": "llama3-2"},
]


class Gateway(StandIn):
    """What LiteLLM answers, per model: ``ok``, ``error`` (a 500 from the backend) or ``slow`` (no answer in time)."""

    def __init__(self) -> None:
        self.listed = ["chat", "embed", "llama3.2"]
        self.behaviour: Dict[str, str] = {}
        self.anonymous_ok = False
        self.requests: List[Dict[str, Any]] = []
        gateway = self

        class Handler(JsonHandler):
            def reply(self, status: int, body: Any) -> None:
                self.send_json(status, body)

            def authorized(self) -> bool:
                header = self.headers.get("Authorization")
                if header == f"Bearer {KEY}" or (header is None and gateway.anonymous_ok):
                    return True
                self.reply(401 if header is None else 400, {"error": {"message": "Authentication Error" if header is None else "No connected db."}})
                return False

            def do_GET(self) -> None:
                gateway.requests.append({"path": self.path, "authorization": self.headers.get("Authorization")})
                if self.authorized():
                    self.reply(200, {"object": "list", "data": [{"id": name, "object": "model"} for name in gateway.listed]})

            def do_POST(self) -> None:
                body = self.read_json()
                gateway.requests.append({"path": self.path, "body": body})
                if not self.authorized():
                    return
                what = gateway.behaviour.get(body["model"], "ok")
                if what == "slow":
                    time.sleep(1.5)
                if what == "error":
                    self.reply(500, {"error": {"message": "litellm.APIConnectionError: Connection refused"}})
                elif self.path.endswith("/embeddings"):
                    self.reply(200, {"data": [{"index": 0, "embedding": [0.1, 0.2, 0.3]}], "usage": {"prompt_tokens": 4, "total_tokens": 4}})
                else:
                    self.reply(200, {"choices": [{"index": 0, "message": {"content": "x"}}], "usage": {"prompt_tokens": 4, "completion_tokens": 1}})

        super().__init__(Handler, path="/v1")


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway() as served:
        yield served


def test_every_model_answers(gateway: Gateway) -> None:
    report = check_gateway(gateway.url, KEY, CATALOG, timeout=5)
    assert report.ok and report.anonymous_refused and report.missing == []
    assert [(m.name, m.ok, m.detail) for m in report.models] == [
        ("chat", True, "1 token(s)"),
        ("embed", True, "3 dimensions"),
        ("llama3.2", True, "1 token(s)"),
    ]
    # each model gets the request its mode calls for, with one token at most
    posts = [(r["path"], r["body"]["model"], r["body"].get("max_tokens")) for r in gateway.requests if "body" in r]
    assert posts == [("/v1/chat/completions", "chat", 1), ("/v1/embeddings", "embed", None), ("/v1/chat/completions", "llama3.2", 1)]
    assert report.lines()[0].endswith("3 model(s) listed, refused without a key")
    assert KEY not in json.dumps(report.to_dict())


def test_failures_name_the_model_what_the_gateway_said_and_where_to_look(gateway: Gateway) -> None:
    gateway.listed = ["chat", "llama3.2"]
    gateway.behaviour = {"chat": "error", "llama3.2": "slow"}
    report = check_gateway(gateway.url, KEY, CATALOG, timeout=0.5, namespace="lab")
    assert not report.ok and report.missing == ["embed"]
    problems = report.problems()
    assert problems[0].startswith("chat: 500: litellm.APIConnectionError: Connection refused. Fix: see `kubectl -n lab get pods")
    assert "logs deploy/llamacpp-chat" in problems[0]
    assert problems[1].startswith("embed: the gateway does not list it. Fix: LiteLLM's config lacks it: re-run site.yml")
    assert problems[2].startswith("llama3.2: no answer within 0 s") or problems[2].startswith("llama3.2: no answer within 1 s")
    assert "logs statefulset/ollama" in problems[2]
    assert [line.split()[4] for line in report.lines()[1:]] == ["FAILED", "FAILED", "FAILED"]


def test_a_gateway_that_answers_without_a_key_fails(gateway: Gateway) -> None:
    gateway.anonymous_ok = True
    report = check_gateway(gateway.url, KEY, CATALOG[:1], timeout=5)
    assert not report.ok
    assert report.problems() == [f"{gateway.url}: answers /models without a key. Fix: the proxy runs without its master key; re-run site.yml"]


def test_a_wrong_key_or_no_gateway_stops_before_any_model(gateway: Gateway) -> None:
    with pytest.raises(GatewayUnreachable, match=r"refuses the master key \(400: No connected db.\). Fix: the key in the SOPS file differs"):
        check_gateway(gateway.url, "sk-other", CATALOG, timeout=5)
    assert not [r for r in gateway.requests if "body" in r]
    gateway.stop()
    with pytest.raises(GatewayUnreachable, match=r"cannot reach the gateway at .*port-forward svc/litellm 4000:4000"):
        check_gateway(gateway.url, KEY, CATALOG, timeout=5)
