# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""A stand-in of Qdrant's REST API: the part qdrant-client (as Open WebUI 0.11.3 drives it) uses, in memory.

No Qdrant server can be installed here, so the rendered Qdrant StatefulSet runs this program instead (``e2e.images``
maps the image to it, with the release of the image's tag). It reads what the real server reads from its
environment: ``QDRANT__SERVICE__API_KEY`` (from the rendered Secret), ``QDRANT__SERVICE__HOST``/``HTTP_PORT`` and
``QDRANT__STORAGE__STORAGE_PATH``, and writes every request it gets to ``requests.jsonl`` there, so a test can see
what was stored and asked for.

Shapes follow Qdrant's OpenAPI (``{"result": ..., "status": "ok", "time": ...}``; errors ``{"status": {"error": ...}}``):
collections (list, exists, info, create, delete), payload indexes, points (upsert as a list or a batch, count, scroll,
query, search, retrieve, delete by ids or filter). Filters: ``must``/``should``/``must_not`` of ``match`` (``value``,
``any``, ``except``) on dotted payload keys and ``has_id``. Scores are cosine similarities. As Qdrant's API key
middleware does, every path but ``/``, ``/healthz``, ``/readyz*`` and ``/livez*`` needs the key in the ``api-key``
header (or as a bearer token), else 403.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

if __package__ in (None, ""):  # started as the image's program: import the helpers from this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.servers import JsonHandler, StandIn

Json = Dict[str, Any]
OPEN_PATHS = ("/", "/healthz")  # and what starts with /readyz or /livez: Qdrant's whitelist
NO_KEY = "Must provide an API key or an Authorization bearer token"
WRONG_KEY = "Invalid API key or JWT"


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _payload_value(payload: Json, key: str) -> Any:
    value: Any = payload
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _condition(point_id: Any, payload: Json, condition: Json) -> bool:
    if "has_id" in condition:
        return point_id in condition["has_id"]
    if "must" in condition or "should" in condition or "must_not" in condition:
        return matches(point_id, payload, condition)
    if "match" not in condition:
        raise Refused(400, f"Wrong input: this stand-in does not know the condition {json.dumps(condition)}")
    value, match = _payload_value(payload, condition["key"]), condition["match"]
    values = value if isinstance(value, list) else [value]
    if "value" in match:
        return match["value"] in values
    if "any" in match:
        return any(v in match["any"] for v in values)
    if "except" in match:
        return not any(v in match["except"] for v in values)
    raise Refused(400, f"Wrong input: this stand-in does not know the match {json.dumps(match)}")


def matches(point_id: Any, payload: Json, flt: Optional[Json]) -> bool:
    if not flt:
        return True
    must = all(_condition(point_id, payload, c) for c in flt.get("must") or [])
    should = not flt.get("should") or any(_condition(point_id, payload, c) for c in flt["should"])
    must_not = not any(_condition(point_id, payload, c) for c in flt.get("must_not") or [])
    return must and should and must_not


def cosine(a: List[float], b: List[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


class Collection:
    def __init__(self, name: str, size: int, distance: str) -> None:
        self.name, self.size, self.distance = name, size, distance
        self.points: Dict[Any, Json] = {}  # id -> {"vector", "payload"}
        self.indexes: Dict[str, Any] = {}

    def info(self) -> Json:
        return {
            "status": "green",
            "optimizer_status": "ok",
            "points_count": len(self.points),
            "indexed_vectors_count": 0,
            "segments_count": 1,
            "config": {"params": {"vectors": {"size": self.size, "distance": self.distance}}},
            "payload_schema": {k: {"data_type": "keyword", "params": v, "points": len(self.points)} for k, v in self.indexes.items()},
        }

    def record(self, point_id: Any, with_payload: Any, with_vector: Any) -> Json:
        point = self.points[point_id]
        out: Json = {"id": point_id}
        out["payload"] = point["payload"] if with_payload not in (False, None) else None
        out["vector"] = point["vector"] if with_vector not in (False, None) else None
        return out

    def selected(self, flt: Optional[Json]) -> List[Any]:
        return [pid for pid, p in self.points.items() if matches(pid, p["payload"], flt)]


class Qdrant:
    """The state and the API, apart from HTTP (what ``QdrantServer`` serves)."""

    def __init__(self, version: str, api_key: Optional[str]) -> None:
        self.version = version
        self.api_key = api_key or None
        self.collections: Dict[str, Collection] = {}
        self.lock = threading.Lock()
        self.operation = 0

    def check_key(self, path: str, headers: Any) -> None:
        if not self.api_key or path in OPEN_PATHS or path.startswith(("/readyz", "/livez")):
            return
        given = headers.get("api-key")
        bearer = headers.get("Authorization", "")
        if given is None and bearer.startswith("Bearer "):
            given = bearer[len("Bearer ") :]
        if given is None:
            raise Refused(403, NO_KEY)
        if given != self.api_key:
            raise Refused(403, WRONG_KEY)

    def _collection(self, name: str) -> Collection:
        if name not in self.collections:
            raise Refused(404, f"Not found: Collection `{name}` doesn't exist!")
        return self.collections[name]

    def _updated(self) -> Json:
        self.operation += 1
        return {"operation_id": self.operation, "status": "completed"}

    def handle(self, method: str, path: str, body: Json) -> Any:
        parts = [p for p in path.split("/") if p]
        with self.lock:
            if method == "GET" and not parts:
                return {"title": "qdrant - vector search engine", "version": self.version, "commit": "homelab.ai stand-in"}
            if parts[:1] != ["collections"]:
                raise Refused(404, f"this stand-in has no {method} {path}")
            if len(parts) == 1 and method == "GET":
                return {"collections": [{"name": n} for n in sorted(self.collections)]}
            name, rest = parts[1], parts[2:]
            if not rest:
                return self._collection_op(method, name, body)
            if rest == ["exists"] and method == "GET":
                return {"exists": name in self.collections}
            if rest == ["index"] and method == "PUT":
                self._collection(name).indexes[body["field_name"]] = body.get("field_schema")
                return self._updated()
            if rest[0] == "points":
                return self._points(method, self._collection(name), rest[1:], body)
            raise Refused(404, f"this stand-in has no {method} {path}")

    def _collection_op(self, method: str, name: str, body: Json) -> Any:
        if method == "GET":
            return self._collection(name).info()
        if method == "PUT":
            if name in self.collections:
                raise Refused(409, f"Wrong input: Collection `{name}` already exists!")
            vectors = body.get("vectors") or {}
            if "size" not in vectors:
                raise Refused(400, "Wrong input: this stand-in knows one unnamed vector per point (vectors.size)")
            self.collections[name] = Collection(name, int(vectors["size"]), vectors.get("distance", "Cosine"))
            return True
        if method == "DELETE":
            return self.collections.pop(name, None) is not None
        raise Refused(405, f"{method} /collections/{name}")

    def _points(self, method: str, collection: Collection, rest: List[str], body: Json) -> Any:
        op = "/".join(rest)
        if method == "PUT" and op == "":
            return self._upsert(collection, body)
        if method != "POST":
            raise Refused(405, f"{method} points/{op}")
        if op == "":  # retrieve by ids
            return [collection.record(i, body.get("with_payload", True), body.get("with_vector", False)) for i in body["ids"] if i in collection.points]
        if op == "count":
            return {"count": len(collection.selected(body.get("filter")))}
        if op == "scroll":
            ids = collection.selected(body.get("filter"))
            limit = int(body.get("limit") or 10)
            offset = ids.index(body["offset"]) if body.get("offset") in ids else 0
            page = ids[offset : offset + limit]
            following = ids[offset + limit] if offset + limit < len(ids) else None
            records = [collection.record(i, body.get("with_payload", True), body.get("with_vector", False)) for i in page]
            return {"points": records, "next_page_offset": following}
        if op == "query":
            query = body.get("query")
            vector = query.get("nearest") if isinstance(query, dict) else query
            return {"points": self._nearest(collection, vector, body.get("filter"), body)}
        if op == "search":
            return self._nearest(collection, body.get("vector"), body.get("filter"), body)
        if op == "delete":
            gone = [i for i in body["points"] if i in collection.points] if "points" in body else collection.selected(body.get("filter"))
            for i in gone:
                del collection.points[i]
            return self._updated()
        raise Refused(404, f"this stand-in has no POST points/{op}")

    def _upsert(self, collection: Collection, body: Json) -> Json:
        if "batch" in body:
            batch = body["batch"]
            payloads = batch.get("payloads") or [None] * len(batch["ids"])
            if not len(batch["ids"]) == len(batch["vectors"]) == len(payloads):  # Qdrant refuses a ragged batch
                raise Refused(400, "the batch's ids, vectors and payloads differ in length")
            points = [{"id": i, "vector": v, "payload": p} for i, v, p in zip(batch["ids"], batch["vectors"], payloads, strict=True)]
        else:
            points = body["points"]
        for point in points:
            vector = point["vector"]
            if not isinstance(vector, list) or len(vector) != collection.size:
                got = len(vector) if isinstance(vector, list) else 0
                raise Refused(400, f"Wrong input: Vector dimension error: expected dim: {collection.size}, got {got}")
        for point in points:
            collection.points[point["id"]] = {"vector": [float(x) for x in point["vector"]], "payload": point.get("payload") or {}}
        return self._updated()

    def _nearest(self, collection: Collection, vector: Any, flt: Optional[Json], body: Json) -> List[Json]:
        if not isinstance(vector, list) or len(vector) != collection.size:
            raise Refused(400, f"Wrong input: Vector dimension error: expected dim: {collection.size}, got {len(vector) if isinstance(vector, list) else 0}")
        scored = sorted(((cosine(vector, collection.points[i]["vector"]), i) for i in collection.selected(flt)), key=lambda s: -s[0])
        limit, offset = int(body.get("limit") or 10), int(body.get("offset") or 0)
        out = []
        for score, i in scored[offset : offset + limit]:
            record = collection.record(i, body.get("with_payload", False), body.get("with_vector", False))
            out.append({**record, "version": 0, "score": score})
        return out


class QdrantServer(StandIn):
    """``Qdrant`` over HTTP on 127.0.0.1; each request is appended to ``log`` (a JSON object a line) if given."""

    def __init__(self, qdrant: Qdrant, host: str = "127.0.0.1", port: int = 0, log: Optional[Path] = None) -> None:
        self.qdrant = qdrant
        self.log = log
        self.requests: List[Json] = []
        server = self

        class Handler(JsonHandler):
            def _serve(self) -> None:
                split = urlsplit(self.path)
                record: Json = {"method": self.command, "path": split.path, "query": parse_qs(split.query), "time": time.time()}
                begin = time.perf_counter()
                try:
                    body = self.read_json() if self.command in ("POST", "PUT") else {}
                    record["body"] = body
                    try:
                        qdrant.check_key(split.path, self.headers)
                        record["key"] = "ok" if qdrant.api_key else "none set"
                    except Refused:
                        record["key"] = "missing" if self.headers.get("api-key") is None and "Authorization" not in self.headers else "wrong"
                        raise
                    result = qdrant.handle(self.command, split.path, body)
                    record["status"] = 200
                    if split.path == "/":  # the version, bare (qdrant-client's compatibility check reads it so)
                        self.send_json(200, result)
                    else:
                        self.send_json(200, {"result": result, "status": "ok", "time": time.perf_counter() - begin})
                except Refused as refused:
                    record["status"], record["error"] = refused.status, str(refused)
                    if refused.status == 403:  # the middleware answers in plain text
                        data = str(refused).encode()
                        self.send_response(403)
                        self.send_header("Content-Type", "text/plain; charset=utf-8")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                    else:
                        self.send_json(refused.status, {"status": {"error": str(refused)}, "time": time.perf_counter() - begin})
                except (ValueError, KeyError, TypeError) as bad:
                    record["status"], record["error"] = 400, f"Format error: {bad!r}"
                    self.send_json(400, {"status": {"error": record["error"]}, "time": 0.0})
                server._record(record)

            def do_GET(self) -> None:
                if self.path in ("/healthz", "/livez") or self.path.startswith("/readyz"):
                    data = b"healthz check passed" if not self.path.startswith("/readyz") else b"all shards are ready"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self._serve()

            do_PUT = do_POST = do_DELETE = _serve

        super().__init__(Handler, host=host, port=port)

    def _record(self, record: Json) -> None:
        self.requests.append(record)
        if self.log:
            with open(self.log, "a") as out:
                out.write(json.dumps(record) + "\n")


def read_log(storage: Path) -> List[Json]:
    """What the stand-in running on ``storage`` recorded, oldest first."""
    path = storage / "requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def release_of(image: str) -> Tuple[str, str]:
    """(repository, Qdrant release) of a Qdrant image (``docker.io/qdrant/qdrant:v1.19.0-unprivileged[@sha256:…]``)."""
    repository, _, tag = image.partition("@")[0].rpartition(":")
    return repository, tag.lstrip("v").removesuffix("-unprivileged")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="the Qdrant release this stands in for (the image's)")
    args = parser.parse_args(argv)
    storage = Path(os.environ.get("QDRANT__STORAGE__STORAGE_PATH", "./storage"))
    storage.mkdir(parents=True, exist_ok=True)
    host = os.environ.get("QDRANT__SERVICE__HOST", "0.0.0.0")
    port = int(os.environ.get("QDRANT__SERVICE__HTTP_PORT", "6333"))
    server = QdrantServer(Qdrant(args.version, os.environ.get("QDRANT__SERVICE__API_KEY")), host, port, storage / "requests.jsonl")
    print(f"Qdrant stand-in {args.version} on {server.url}, key {'set' if server.qdrant.api_key else 'not set'}", flush=True)
    server.server.serve_forever()


if __name__ == "__main__":
    main()
