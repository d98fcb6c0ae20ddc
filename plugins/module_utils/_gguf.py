# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""GGUF headers: what the VRAM plan needs to know about a model before it is downloaded.

- ``read_local`` reads a file with the ``gguf`` package (llama.cpp's own reader).
- ``parse_prefix`` reads the first bytes of a file (a remote header fetched with HTTP range requests); it raises
  ``NeedMore`` while the prefix ends inside the header. ``fetch_header`` grows the prefix until it parses.
- ``HeaderCache`` keeps what was fetched on the controller, so reruns are offline and fast.

Only the header is kept: architecture hyper-parameters (scalars; arrays only where per-layer, such as
``head_count_kv``), the vocabulary size, and each tensor's name, type and size in bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._hf import hf_endpoint, hf_token
from ._sources import Source, parse_source

__all__ = [
    "CACHE_VERSION",
    "GgufInfo",
    "HeaderCache",
    "HeaderLookup",
    "HeaderUnavailable",
    "NeedMore",
    "default_cache_dir",
    "fetch_header",
    "header_for_source",
    "parse_prefix",
    "read_local",
    "source_url",
]

GGUF_MAGIC = b"GGUF"
CACHE_VERSION = 1
_ARRAY_KEEP = 4096  # arrays up to this length are kept (per-layer values); longer ones (vocabularies) only by length
_FIRST_FETCH = 1 << 20
_MAX_FETCH = 256 << 20  # a header larger than this is not a GGUF header worth planning with
_USER_AGENT = "homelab.ai-vram-plan"
# GGUF value types: (struct format, size) of the scalars
_SCALARS = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<?", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
_STRING, _ARRAY = 8, 9


class NeedMore(ValueError):
    """The prefix ends inside the header; ``wanted`` is a size that is sure to hold more of it."""

    def __init__(self, wanted: int):
        super().__init__(f"the GGUF header goes on past the first {wanted} bytes")
        self.wanted = wanted


class HeaderUnavailable(RuntimeError):
    """The header could not be had (no network, no such file, not a GGUF file); the message says why.

    ``unreachable`` marks a host that could not be connected to at all, so that a run asks it only once.
    """

    def __init__(self, message: str, unreachable: bool = False, reason: str = ""):
        super().__init__(message)
        self.unreachable = unreachable
        self.reason = reason or message


@dataclass
class GgufInfo:
    architecture: str
    metadata: Dict[str, Any]  # key -> value; long arrays as {"array_length": n}
    tensors: List[Tuple[str, int, int]]  # (name, ggml type, bytes)
    header_size: int  # bytes before the tensor data
    file_size: Optional[int] = None
    source: str = ""
    notes: List[str] = field(default_factory=list)

    def get(self, key: str, default: Any = None) -> Any:
        """An architecture key without its prefix (``block_count``) or a full key (``general.name``)."""
        if key in self.metadata:
            return self.metadata[key]
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def n_vocab(self) -> Optional[int]:
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, dict):
            return int(tokens["array_length"])
        return len(tokens) if isinstance(tokens, list) else self.get("vocab_size")

    @property
    def weights_bytes(self) -> int:
        return sum(size for _, _, size in self.tensors)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> GgufInfo:
        return cls(
            architecture=data["architecture"],
            metadata=dict(data["metadata"]),
            tensors=[(str(n), int(t), int(b)) for n, t, b in data["tensors"]],
            header_size=int(data["header_size"]),
            file_size=data.get("file_size"),
            source=data.get("source", ""),
            notes=list(data.get("notes") or []),
        )


def _type_sizes() -> Dict[int, Tuple[int, int]]:
    """ggml type -> (elements per block, bytes per block), from the gguf package (the controller has it)."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(kind): (int(block), int(size)) for kind, (block, size) in GGML_QUANT_SIZES.items()}


def tensor_bytes(ggml_type: int, n_elements: int, sizes: Optional[Dict[int, Tuple[int, int]]] = None) -> int:
    sizes = sizes or _type_sizes()
    if ggml_type not in sizes:
        raise ValueError(f"unknown ggml tensor type {ggml_type}; a newer gguf package may know it")
    block, size = sizes[ggml_type]
    return n_elements * size // block


def _wanted_key(key: str) -> bool:
    # tokenizer arrays are kept by length only; the chat template and the like are of no use to the plan
    return not key.startswith("tokenizer.") or key == "tokenizer.ggml.tokens" or key == "tokenizer.ggml.model"


# --- local files: the gguf package ------------------------------------------------------------------------------------


def read_local(path: str) -> GgufInfo:
    """The header of a local GGUF file, read with the ``gguf`` package."""
    from gguf import GGUFReader
    from gguf.constants import GGUFValueType

    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise HeaderUnavailable(f"{path}: not a readable GGUF file ({exc})") from exc
    metadata: Dict[str, Any] = {}
    for key, reader_field in reader.fields.items():
        if key.startswith("GGUF.") or not _wanted_key(key):
            continue
        if reader_field.types and reader_field.types[0] == GGUFValueType.ARRAY and (len(reader_field.data) > _ARRAY_KEEP or key.startswith("tokenizer.")):
            metadata[key] = {"array_length": len(reader_field.data)}
        else:
            value = reader_field.contents()
            metadata[key] = value.item() if hasattr(value, "item") else value
    sizes = _type_sizes()
    tensors = [(t.name, int(t.tensor_type), tensor_bytes(int(t.tensor_type), int(t.n_elements), sizes)) for t in reader.tensors]
    return GgufInfo(
        architecture=str(metadata.get("general.architecture", "")),
        metadata=metadata,
        tensors=tensors,
        header_size=int(reader.data_offset),
        file_size=os.path.getsize(path),
        source=path,
    )


# --- a prefix of a file: a minimal parser ------------------------------------------------------------------------------


class _Cursor:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            # at least double, and at least what this read needs
            raise NeedMore(max(end, 2 * len(self.data)))
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str, size: int) -> Any:
        return struct.unpack(fmt, self.take(size))[0]

    def string(self) -> str:
        length = self.unpack("<Q", 8)
        if length > _MAX_FETCH:
            raise ValueError(f"a string of {length} bytes: not a GGUF header")
        return self.take(length).decode("utf-8", errors="replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            fmt, size = _SCALARS[kind]
            return self.unpack(fmt, size)
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item_kind = self.unpack("<I", 4)
            length = self.unpack("<Q", 8)
            if item_kind in _SCALARS:
                fmt, size = _SCALARS[item_kind]
                raw = self.take(size * length)
                if length > _ARRAY_KEEP:
                    return {"array_length": length}
                return list(struct.unpack(f"<{length}{fmt[1]}", raw))
            if length > _ARRAY_KEEP:
                for _ in range(length):
                    self.value(item_kind)
                return {"array_length": length}
            return [self.value(item_kind) for _ in range(length)]
        raise ValueError(f"unknown GGUF value type {kind}")


def parse_prefix(data: bytes, source: str = "", file_size: Optional[int] = None) -> GgufInfo:
    """The header from the first bytes of a GGUF file (little-endian, version 2 or 3)."""
    cursor = _Cursor(data)
    if cursor.take(4) != GGUF_MAGIC:
        raise ValueError("not a GGUF file (no GGUF magic)")
    version = cursor.unpack("<I", 4)
    if version not in (2, 3):
        raise ValueError(f"GGUF version {version} is not supported (2 and 3 are)")
    n_tensors = cursor.unpack("<Q", 8)
    n_kv = cursor.unpack("<Q", 8)
    metadata: Dict[str, Any] = {}
    for _ in range(n_kv):
        key = cursor.string()
        value = cursor.value(cursor.unpack("<I", 4))
        if _wanted_key(key):
            metadata[key] = {"array_length": len(value)} if key.startswith("tokenizer.") and isinstance(value, list) else value
    sizes = _type_sizes()
    tensors = []
    for _ in range(n_tensors):
        name = cursor.string()
        n_dims = cursor.unpack("<I", 4)
        n_elements = 1
        for _ in range(n_dims):
            n_elements *= cursor.unpack("<Q", 8)
        kind = cursor.unpack("<I", 4)
        cursor.unpack("<Q", 8)  # offset
        tensors.append((name, kind, tensor_bytes(kind, n_elements, sizes)))
    alignment = int(metadata.get("general.alignment", 32))
    header_size = -(-cursor.pos // alignment) * alignment
    return GgufInfo(
        architecture=str(metadata.get("general.architecture", "")),
        metadata=metadata,
        tensors=tensors,
        header_size=header_size,
        file_size=file_size,
        source=source,
    )


# --- remote files: HTTP range requests ---------------------------------------------------------------------------------

Opener = Callable[..., Any]


def source_url(source: Source, *, timeout: float = 20, opener: Optional[Opener] = None) -> str:
    """The URL of the GGUF file a catalog source names (for Ollama: the model blob of the registry manifest)."""
    if source.scheme == "hf":
        return source.resolve_url(hf_endpoint())
    if source.scheme == "https":
        return source.url
    request = urllib.request.Request(
        source.manifest_url(), headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json", "User-Agent": _USER_AGENT}
    )
    try:
        with (opener or urllib.request.urlopen)(request, timeout=timeout) as response:
            manifest = json.loads(response.read(1 << 20))
    except (OSError, ValueError) as exc:
        raise HeaderUnavailable(f"{source.uri}: the registry manifest could not be fetched ({_reason(exc)})", _unreachable(exc), _reason(exc)) from exc
    for layer in manifest.get("layers") or []:
        if layer.get("mediaType") == "application/vnd.ollama.image.model":
            return source.blob_url(layer["digest"])
    raise HeaderUnavailable(f"{source.uri}: the registry manifest names no model layer")


def fetch_header(
    url: str, *, timeout: float = 20, opener: Optional[Opener] = None, first: int = _FIRST_FETCH, limit: int = _MAX_FETCH, token: Optional[str] = None
) -> GgufInfo:
    """Fetch a growing prefix with ``Range: bytes=0-N`` until the header parses; a server without ranges is read as a
    stream and closed once the header is in. ``token`` (else ``HF_TOKEN``) is sent to the Hub only, for gated repositories."""
    headers = {"User-Agent": _USER_AGENT}
    token = hf_token(token) if url.startswith(hf_endpoint() + "/") else None
    size = first
    while True:
        request = urllib.request.Request(url, headers={**headers, "Range": f"bytes=0-{size - 1}"})
        if token:
            # unredirected: the Hub redirects to a CDN on another host, which must never see the token
            request.add_unredirected_header("Authorization", f"Bearer {token}")
        try:
            with (opener or urllib.request.urlopen)(request, timeout=timeout) as response:
                data = response.read(size)
                total = _total_size(response)
        except (OSError, ValueError) as exc:
            raise HeaderUnavailable(f"{url}: {_reason(exc)}", _unreachable(exc), _reason(exc)) from exc
        try:
            return parse_prefix(data, source=url, file_size=total)
        except NeedMore as more:
            if total is not None and len(data) >= total:
                raise HeaderUnavailable(f"{url}: the file ends inside its GGUF header") from more
            if len(data) < size:
                raise HeaderUnavailable(f"{url}: the server sent {len(data)} bytes where {size} were asked for") from more
            if size >= limit:
                raise HeaderUnavailable(f"{url}: no GGUF header within the first {limit >> 20} MiB") from more
            size = min(limit, max(more.wanted, size * 4))
        except ValueError as exc:
            raise HeaderUnavailable(f"{url}: {exc}") from exc


def _total_size(response: Any) -> Optional[int]:
    content_range = response.headers.get("Content-Range") or ""
    match = re.match(r"^bytes \d+-\d+/(\d+)$", content_range.strip())
    if match:
        return int(match.group(1))
    if getattr(response, "status", 200) == 200 and response.headers.get("Content-Length"):
        return int(response.headers["Content-Length"])
    return None


def _unreachable(exc: BaseException) -> bool:
    """No connection at all (name resolution, refused, timed out), as opposed to an HTTP answer."""
    return not isinstance(exc, urllib.error.HTTPError) and isinstance(exc, (urllib.error.URLError, OSError))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return str(exc) or type(exc).__name__


# --- the cache on the controller --------------------------------------------------------------------------------------


def default_cache_dir(env: Optional[Dict[str, str]] = None) -> str:
    env = dict(os.environ if env is None else env)
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "homelab.ai", "gguf")


class HeaderCache:
    """One JSON file per source URI. A header does not change for a pinned file; delete the directory to refetch
    files that a branch name (``@main``) points at."""

    def __init__(self, directory: str):
        self.directory = directory

    def path(self, uri: str) -> str:
        return os.path.join(self.directory, hashlib.sha256(uri.encode()).hexdigest()[:32] + ".json")

    def get(self, uri: str) -> Optional[GgufInfo]:
        try:
            with open(self.path(uri), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        if data.get("version") != CACHE_VERSION or data.get("uri") != uri:
            return None
        try:
            return GgufInfo.from_dict(data["info"])
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, uri: str, info: GgufInfo) -> None:
        os.makedirs(self.directory, exist_ok=True)
        payload = json.dumps({"version": CACHE_VERSION, "uri": uri, "fetched": int(time.time()), "info": info.to_dict()}, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".gguf-", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(payload)
            os.replace(tmp, self.path(uri))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def header_for_source(
    uri: str,
    cache: Optional[HeaderCache],
    *,
    fetch: bool = True,
    write_cache: bool = True,
    timeout: float = 20,
    opener: Optional[Opener] = None,
    token: Optional[str] = None,
) -> Tuple[GgufInfo, str]:
    """The header of a catalog source and where it came from (``cache`` or ``fetched``); ``HeaderUnavailable`` else."""
    if cache is not None:
        cached = cache.get(uri)
        if cached is not None:
            return cached, "cache"
    if not fetch:
        raise HeaderUnavailable(f"{uri}: not in the header cache, and fetching is off")
    source = parse_source(uri)
    info = fetch_header(source_url(source, timeout=timeout, opener=opener), timeout=timeout, opener=opener, token=token)
    info.source = uri
    if cache is not None and write_cache:
        cache.put(uri, info)
    return info, "fetched"


class HeaderLookup:
    """``header_for_source`` for a whole plan: a host that cannot be reached is asked once, not once per model."""

    def __init__(
        self,
        cache: Optional[HeaderCache],
        *,
        fetch: bool = True,
        write_cache: bool = True,
        timeout: float = 10,
        opener: Optional[Opener] = None,
        token: Optional[str] = None,
    ):
        self.cache = cache
        self.token = token
        self.fetch = fetch
        self.write_cache = write_cache
        self.timeout = timeout
        self.opener = opener
        self.unreachable: Dict[str, str] = {}
        self.origins: Dict[str, str] = {}  # uri -> cache | fetched

    def __call__(self, uri: str) -> Tuple[GgufInfo, str]:
        host = _host(uri)
        if host in self.unreachable and (self.cache is None or self.cache.get(uri) is None):
            raise HeaderUnavailable(self.unreachable[host], True)
        try:
            info, origin = header_for_source(
                uri, self.cache, fetch=self.fetch, write_cache=self.write_cache, timeout=self.timeout, opener=self.opener, token=self.token
            )
        except HeaderUnavailable as exc:
            if exc.unreachable:
                # one short reason for every model on that host
                self.unreachable[host] = f"{host} cannot be reached: {exc.reason}"
                raise HeaderUnavailable(self.unreachable[host], True) from exc
            raise
        self.origins[uri] = origin
        return info, origin


def _host(uri: str) -> str:
    source = parse_source(uri)
    if source.scheme == "hf":
        return "huggingface.co"
    if source.scheme == "ollama":
        return source.registry
    return urllib.parse.urlsplit(source.url).netloc
