# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import contextlib
import io
import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Iterator, List

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._gguf import (
    GgufInfo,
    HeaderCache,
    HeaderUnavailable,
    NeedMore,
    default_cache_dir,
    fetch_header,
    header_for_source,
    parse_prefix,
    read_local,
    source_url,
)
from ansible_collections.homelab.ai.plugins.module_utils._sources import parse_source
from tests.support.gguf_models import Shape, write_model
from tests.support.servers import StandIn

SHAPE = Shape("tiny", n_layer=3, n_embd=128, n_head=4, n_head_kv=2, n_ff=352, n_vocab=1000, weights="q8_0")


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("gguf") / "tiny.gguf", SHAPE)


def test_local_header(model: Path) -> None:
    info = read_local(str(model))
    assert info.architecture == "llama"
    assert info.get("block_count") == 3
    assert info.get("attention.head_count_kv") == 2
    assert info.get("general.name") == "tiny"
    assert info.n_vocab == 1000
    assert info.metadata["tokenizer.ggml.tokens"] == {"array_length": 1000}  # never the vocabulary itself
    assert "tokenizer.ggml.scores" not in info.metadata
    assert len(info.tensors) == 1 + 3 * 9 + 2
    # q8_0: 34 bytes per 32 weights
    assert dict((n, b) for n, _, b in info.tensors)["token_embd.weight"] == 1000 * 128 * 34 // 32
    assert info.file_size == model.stat().st_size
    assert info.header_size + info.weights_bytes <= info.file_size


def test_prefix_parser_agrees_with_the_gguf_package(model: Path) -> None:
    local = read_local(str(model))
    remote = parse_prefix(model.read_bytes()[: local.header_size], source="x", file_size=local.file_size)
    assert remote.metadata == local.metadata
    assert remote.tensors == local.tensors
    assert remote.header_size == local.header_size


def test_prefix_too_short(model: Path) -> None:
    data = model.read_bytes()
    with pytest.raises(NeedMore) as caught:
        parse_prefix(data[:1000])
    assert caught.value.wanted >= 2000
    with pytest.raises(ValueError, match="GGUF magic"):
        parse_prefix(b"PK\x03\x04" + data[4:1000])


def test_not_a_gguf_file(tmp_path: Path) -> None:
    path = tmp_path / "x.gguf"
    path.write_bytes(b"nope" * 100)
    with pytest.raises(HeaderUnavailable, match="not a readable GGUF file"):
        read_local(str(path))


def test_info_round_trips_through_json(model: Path) -> None:
    info = read_local(str(model))
    assert GgufInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info


# --- HTTP ----------------------------------------------------------------------------------------------------------------


class Server(StandIn):
    def __init__(self, payload: bytes, ranges: bool = True):
        self.payload = payload
        self.ranges = ranges
        self.requests: List[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.headers.get("Range") or "")
                if self.path != "/model.gguf":
                    self.send_error(404)
                    return
                header = self.headers.get("Range")
                if header and outer.ranges:
                    start, end = (int(x) for x in header.split("=")[1].split("-"))
                    end = min(end, len(outer.payload) - 1)
                    body = outer.payload[start : end + 1]
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(outer.payload)}")
                else:
                    body = outer.payload
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        super().__init__(Handler, path="/model.gguf")


@pytest.fixture
def served(model: Path) -> Iterator[Server]:
    with Server(model.read_bytes()) as server:
        yield server


def test_fetch_grows_the_prefix(served: Server, model: Path) -> None:
    info = fetch_header(served.url, first=4096)
    assert info.tensors == read_local(str(model)).tensors
    assert info.file_size == model.stat().st_size
    assert served.requests[0] == "bytes=0-4095"
    assert len(served.requests) >= 2  # the vocabulary alone is more than 4 KiB
    sizes = [int(r.split("-")[1]) + 1 for r in served.requests]
    assert sizes == sorted(sizes) and sizes[-1] < model.stat().st_size  # never the whole file


def test_fetch_without_range_support_reads_a_prefix(model: Path) -> None:
    with Server(model.read_bytes(), ranges=False) as server:
        info = fetch_header(server.url, first=1 << 20)
    assert info.get("block_count") == 3


def test_fetch_errors(served: Server, tmp_path: Path) -> None:
    with pytest.raises(HeaderUnavailable, match="HTTP 404"):
        fetch_header(served.url.replace("model", "other"))
    with pytest.raises(HeaderUnavailable, match="cannot connect"):
        fetch_header("http://127.0.0.1:9/model.gguf", timeout=2)
    with pytest.raises(HeaderUnavailable, match="within the first"):
        fetch_header(served.url, first=1024, limit=2048)


def test_fetch_of_a_truncated_file(model: Path) -> None:
    with Server(model.read_bytes()[:3000]) as server, pytest.raises(HeaderUnavailable, match="ends inside its GGUF header"):
        fetch_header(server.url, first=1024)


def test_source_urls() -> None:
    assert source_url(parse_source("hf://Qwen/Qwen3-Embedding-0.6B-GGUF/Qwen3-Embedding-0.6B-Q8_0.gguf")) == (
        "https://huggingface.co/Qwen/Qwen3-Embedding-0.6B-GGUF/resolve/main/Qwen3-Embedding-0.6B-Q8_0.gguf"
    )
    assert source_url(parse_source("hf://org/repo/sub/file.gguf@v1.0")) == "https://huggingface.co/org/repo/resolve/v1.0/sub/file.gguf"
    assert source_url(parse_source("https://example.org/m.gguf")) == "https://example.org/m.gguf"


def test_hub_header_through_hf_endpoint_keeps_the_token_from_the_cdn(model: Path, monkeypatch) -> None:
    from tests.support.model_server import ModelServer

    token = "hf_gated_token_value"
    with ModelServer(token=token) as hub:
        hub.add_hf("org/gated", "model.gguf", model.read_bytes())
        hub.gated.add("org/gated")
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        with pytest.raises(HeaderUnavailable):
            fetch_header(source_url(parse_source("hf://org/gated/model.gguf")))
        monkeypatch.setenv("HF_TOKEN", token)
        info = fetch_header(source_url(parse_source("hf://org/gated/model.gguf")))
        assert info.get("general.architecture") == "llama"
        assert any(r.get("authorization") == f"Bearer {token}" for r in hub.requests("origin"))
        assert hub.requests("cdn") and all(not r.get("authorization") for r in hub.requests("cdn"))


def test_ollama_source_url_from_the_manifest() -> None:
    manifest = {
        "layers": [
            {"mediaType": "application/vnd.ollama.image.license", "digest": "sha256:aaa"},
            {"mediaType": "application/vnd.ollama.image.model", "digest": "sha256:bbb", "size": 2019377376},
        ]
    }
    seen = []

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def opener(request, timeout):
        seen.append((request.full_url, request.get_header("Accept")))
        return Response(json.dumps(manifest).encode())

    url = source_url(parse_source("ollama://llama3.2:3b"), opener=opener)
    assert url == "https://registry.ollama.ai/v2/library/llama3.2/blobs/sha256:bbb"
    assert seen == [("https://registry.ollama.ai/v2/library/llama3.2/manifests/3b", "application/vnd.docker.distribution.manifest.v2+json")]
    with pytest.raises(HeaderUnavailable, match="no model layer"):
        source_url(parse_source("ollama://x:1"), opener=lambda request, timeout: Response(b'{"layers": []}'))


def test_cache_makes_reruns_offline(tmp_path: Path, served: Server, model: Path, monkeypatch) -> None:
    import ansible_collections.homelab.ai.plugins.module_utils._gguf as module

    monkeypatch.setattr(module, "source_url", lambda source, **kwargs: served.url)
    cache = HeaderCache(str(tmp_path / "cache"))
    uri = "hf://org/repo/tiny.gguf"
    with pytest.raises(HeaderUnavailable, match="fetching is off"):
        header_for_source(uri, cache, fetch=False)
    info, origin = header_for_source(uri, cache, write_cache=False)
    assert origin == "fetched" and cache.get(uri) is None  # check mode writes nothing
    info, origin = header_for_source(uri, cache)
    assert origin == "fetched" and info.source == uri
    count = len(served.requests)
    again, origin = header_for_source(uri, cache, fetch=False)
    assert origin == "cache" and again == info and len(served.requests) == count
    # a damaged cache file is a miss, not an error
    Path(cache.path(uri)).write_text("{")
    assert cache.get(uri) is None


def test_default_cache_dir() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/c"}) == "/c/homelab.ai/gguf"
    assert default_cache_dir({}).endswith("/.cache/homelab.ai/gguf")


def test_lookup_asks_an_unreachable_host_once(tmp_path: Path, monkeypatch) -> None:
    import ansible_collections.homelab.ai.plugins.module_utils._gguf as module
    from ansible_collections.homelab.ai.plugins.module_utils._gguf import HeaderLookup

    calls = []

    def fetch(url, **kwargs):
        calls.append(url)
        return fetch_header("http://127.0.0.1:9/x.gguf", timeout=2)

    monkeypatch.setattr(module, "fetch_header", fetch)
    lookup = HeaderLookup(HeaderCache(str(tmp_path)))
    for name in ("a", "b"):
        with pytest.raises(HeaderUnavailable) as caught:
            lookup(f"hf://org/repo/{name}.gguf")
        assert caught.value.unreachable
    assert len(calls) == 1
    assert str(caught.value).startswith("huggingface.co cannot be reached: cannot connect")
    with pytest.raises(HeaderUnavailable) as http, Server(b"") as server:
        fetch_header(server.url.replace("model", "missing"))
    assert not http.value.unreachable  # an HTTP answer: the host is there
