# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The formats of the values the inventory gives: one validator per kind of value, which variable has which, and the
readers of a field (a whole number, a boolean, a size, a choice) that every parser of the inventory shares.

Each validator returns what is wrong with a value ("" when nothing is), so that the preflight can name the input,
what is wrong and the fix, for every problem at once. Templates emit every value as data (``to_json``), so a value can
never add a key; these checks make sure it is also a value the API server, the app or the registry takes, where the
API server would take a wrong one silently (``loadBalancerIP: 10.10.2.325``) or the cluster would fail late.

Standard library only: the node-side code imports nothing from here, but the pull Job's code may one day.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlsplit

from ._names import is_dns_label, is_dns_subdomain
from ._problems import Problem, suggest
from ._quantity import QuantityError, to_bytes, to_quantity

__all__ = [
    "BOUNDS",
    "FORMATS",
    "bearer_token",
    "command_word",
    "dns_label",
    "dns_subdomain",
    "env_name",
    "go_duration",
    "group_name",
    "hostname",
    "http_password",
    "http_user",
    "image_reference",
    "image_size",
    "ip_address",
    "label_key",
    "label_value",
    "promql_matchers",
    "read_bool",
    "read_choice",
    "read_int",
    "read_quantity",
    "relative_path",
    "secret_text",
    "semver",
    "size_problem",
    "text_line",
    "unknown_keys",
    "url",
    "variable_problems",
]

Check = Callable[[Any], str]

MAX_SIZE = 64 * 2**40  # a model file, a volume: 64Ti
# no memory, volume or model is this small: below it the unit was left out (24 is 24 bytes, not 24Gi)
MIN_SIZE = 2**20

# distribution/reference's grammar: [domain[:port]/]path[:tag][@digest]
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_IMAGE = re.compile(rf"^(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*(?::(?P<tag>[\w][\w.-]{{0,127}}))?(?:@(?P<digest>sha256:[a-f0-9]{{64}}))?$")
_SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
_GO_DURATION = re.compile(r"^-?(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$|^-?\d+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_MATCHER = re.compile(r'\s*[a-zA-Z_][a-zA-Z0-9_]*\s*(?:=|!=|=~|!~)\s*"(?:[^"\\\n]|\\.)*"\s*')
_PATH_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+=-]*$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
_SECRET = re.compile(r"^[\x21-\x7e]{1,512}$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_GROUP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HTTP_USER = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# printable without spaces or ':', where nginx's auth_basic_user_file ends a password
_HTTP_PASSWORD = re.compile(r"^[\x21-\x39\x3b-\x7e]{8,256}$")
# RFC 6750's b64token: what a Bearer header carries, and what nginx compares without reading $ or quotes in it
_BEARER = re.compile(r"^[A-Za-z0-9._~+/-]{32,256}=*$")
_SIZE = re.compile(r"^([1-9][0-9]{1,3})x([1-9][0-9]{1,3})$")
# one word of a command line that a shell splits and expands: no spaces, quotes, globs or $
_WORD = re.compile(r"^[A-Za-z0-9_.,:=/+-]{1,200}$")


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def dns_label(value: Any) -> str:
    if not is_dns_label(value):
        return "is not a DNS label (lower case letters, digits and '-', at most 63, starting and ending with a letter or digit)"
    return ""


def dns_subdomain(value: Any) -> str:
    if not is_dns_subdomain(value):
        return "is not a DNS subdomain (lower case DNS labels joined by '.', at most 253 characters)"
    return ""


def hostname(value: Any) -> str:
    """A host name for an Ingress rule: DNS labels joined by '.', optionally a leading '*.' wildcard."""
    text = _text(value)
    host = text[2:] if text and text.startswith("*.") else text
    if not is_dns_subdomain(host):
        return "is not a host name (lower case letters, digits and '-' in labels joined by '.'; an Ingress takes no IP address or port)"
    return ""


def ip_address(value: Any) -> str:
    text = _text(value)
    try:
        ipaddress.ip_address(text or "")
    except ValueError:
        return "is not an IPv4 or IPv6 address"
    return ""


def image_reference(value: Any) -> str:
    text = _text(value)
    match = _IMAGE.match(text or "") if text and len(text) <= 512 else None
    if match is None:
        return "is not an image reference ([registry/]repository:tag[@sha256:digest])"
    if not match.group("tag") and not match.group("digest"):
        return "names no tag or digest: the image would change under the cluster"
    if match.group("tag") == "latest" and not match.group("digest"):
        return "is :latest, which moves: pin a version"
    return ""


def semver(value: Any) -> str:
    text = _text(value) if isinstance(value, str) else None
    if text is None or not _SEMVER.match(text):
        return "is not a version as Helm reads it (semantic versioning, like 1.10.1)"
    return ""


def go_duration(value: Any) -> str:
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not _GO_DURATION.match(text):
        return "is not a duration (like 5m, 1h30m, or seconds as a whole number; -1 keeps models loaded)"
    return ""


def env_name(value: Any) -> str:
    text = _text(value)
    if text is None or not _ENV_NAME.match(text):
        return "is not an environment variable name (letters, digits and '_', not starting with a digit)"
    return ""


def label_key(value: Any) -> str:
    """A label or annotation key: [DNS subdomain/]name."""
    text = _text(value)
    if text is None:
        return "is not a label key"
    prefix, _, name = text.rpartition("/")
    if (prefix and dns_subdomain(prefix)) or not _LABEL_NAME.match(name):
        return "is not a label key ([DNS subdomain/]name, the name at most 63 letters, digits, '-', '_', '.')"
    return ""


def promql_matchers(value: Any) -> str:
    """Label matchers without braces (``a="x",b=~"y.*"``): what KubeElasti puts between ``up{`` and ``}``."""
    text = _text(value)
    if text is None or not text.strip() or not all(_MATCHER.fullmatch(part) for part in _split_matchers(text)):
        return 'is not a list of label matchers (like container="prometheus",namespace="monitoring")'
    return ""


def _split_matchers(text: str) -> List[str]:
    parts, current, quoted, escaped = [], "", False, False
    for char in text:
        if char == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    return [*parts, current]


def label_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else None
    if text is None or not _LABEL_VALUE.match(text):
        return "is not a label value (at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit)"
    return ""


def secret_text(value: Any) -> str:
    """A password, key or token: printable, without spaces, so that it reaches the app as it was given."""
    text = _text(value)
    if text is None or not _SECRET.match(text):
        return "is not a secret an app can take as given (1 to 512 printable characters, no spaces or line breaks)"
    return ""


def http_user(value: Any) -> str:
    """A user name of HTTP Basic authentication, which ends at the first ':' (and of an htpasswd line)."""
    text = _text(value)
    if text is None or not _HTTP_USER.match(text):
        return "is not a user name of 1 to 64 letters, digits, '.', '_' and '-'"
    return ""


def http_password(value: Any) -> str:
    """A password of HTTP Basic authentication that nginx checks from a password file."""
    text = _text(value)
    if text is None or not _HTTP_PASSWORD.match(text):
        return "is not 8 to 256 printable characters without spaces or ':' (nginx's password file ends a password at ':')"
    return ""


def bearer_token(value: Any) -> str:
    text = _text(value)
    if text is None or not _BEARER.match(text):
        return "is not a key of 32 to 256 letters, digits and . _ ~ + / - (a Bearer token's alphabet)"
    return ""


def image_size(value: Any) -> str:
    """WIDTHxHEIGHT of a picture: latent images come in multiples of 8 pixels, from 64 to 4096."""
    match = _SIZE.match(_text(value) or "")
    if not match or not all(64 <= int(side) <= 4096 and int(side) % 8 == 0 for side in match.groups()):
        return "is not WIDTHxHEIGHT with each side a multiple of 8 from 64 to 4096"
    return ""


def command_word(value: Any) -> str:
    text = _text(value)
    if text is None or not _WORD.match(text):
        return "is not one word of letters, digits and . , : = / + - _ (a start script splits and expands the words it is given)"
    return ""


def text_line(value: Any) -> str:
    """A name or path given as text: one line, printable."""
    text = _text(value)
    if text is None or len(text) > 4096 or not _PRINTABLE.match(text):
        return "is not one line of printable text"
    return ""


def group_name(value: Any) -> str:
    text = _text(value)
    if text is None or not _GROUP.match(text):
        return "is not an Ansible group name (letters, digits and '_', not starting with a digit)"
    return ""


def relative_path(value: Any) -> str:
    text = _text(value) or ""
    parts = text.split("/") if text else []
    if not parts or text.startswith("/") or not all(_PATH_PART.match(part) and part not in (".", "..") for part in parts):
        return "is not a relative path (names of letters, digits, '.', '_', '+', '=', '-' joined by '/', no '..')"
    return ""


def url(value: Any, schemes: Sequence[str] = ("http", "https")) -> str:
    """A URL of one of ``schemes``, with a host, and no credentials: they would be written into the tree."""
    text = _text(value)
    if text is None or not _PRINTABLE.match(text) or " " in text:
        return "is not a URL"
    split = urlsplit(text)
    if split.scheme not in schemes or not split.hostname:
        return f"is not a URL of {' or '.join(s + '://' for s in schemes)} with a host"
    if split.username or split.password:
        return "carries credentials (user:password@), which would show in plain text in the tree or the output"
    if split.query:
        return "carries a query string, where tokens hide, which would show in plain text in the tree or the output"
    try:
        split.port  # noqa: B018 - a port that is no number raises
    except ValueError:
        return "has a port that is not a number"
    host_problem = ip_address(split.hostname) and hostname(split.hostname)
    if host_problem:
        return f"has a host that {host_problem}"
    return ""


def _chart_repo(value: Any) -> str:
    return url(value, ("https", "oci"))


# What each variable of a role must hold, by name (fnmatch patterns, first match wins): the format and the fix.
FORMATS: List[Tuple[str, Check, str]] = [
    ("*_chart_repo", _chart_repo, "use the chart repository's https:// or oci:// URL"),
    ("*_chart_version", semver, "use the chart's version, like 1.10.1"),
    ("*_namespace", dns_label, "use a namespace name such as monitoring"),
    ("*_storage_class", dns_subdomain, "use the name of a StorageClass (`kubectl get storageclass`)"),
    ("*_pvc_name", dns_subdomain, "use a name such as open-webui-data"),
    ("*_image", image_reference, "use an image pinned to a version, such as docker.io/ollama/ollama:0.35.1"),
    ("*_image_rocm", image_reference, "use an image pinned to a version, such as docker.io/ollama/ollama:0.35.1-rocm"),
    ("llamacpp_images.*", image_reference, "use an image pinned to a release, such as ghcr.io/ggml-org/llama.cpp:server-cuda-b6000"),
    ("*_load_balancer_ip", ip_address, "use an address of your load balancer's pool, such as 10.10.2.25, or leave it empty"),
    ("*_ingress_host", hostname, "use the host name clients use, such as llm.home.arpa"),
    ("*_ingress_class", dns_subdomain, "use the name of an IngressClass (`kubectl get ingressclass`), or leave it empty"),
    ("*_ingress_tls_secret", dns_subdomain, "use the name of a TLS Secret in the namespace, or leave it empty"),
    ("*_prometheus_url", url, "use Prometheus' base URL, such as http://prometheus-operated.monitoring.svc.cluster.local:9090"),
    ("check_url", url, "use LiteLLM's OpenAI base URL, such as http://127.0.0.1:4000/v1"),
    ("*_uptime_filter", promql_matchers, 'write label matchers without braces, such as container="prometheus",namespace="monitoring"'),
    ("*_keep_alive", go_duration, "write a duration such as 5m"),
    ("*_checkpoint_dir", relative_path, "write a path inside the volume, such as models/Stable-diffusion"),
    ("stable_diffusion_args.*", command_word, "write each argument as one list item, such as --lowvram"),
    ("stable_diffusion_model", relative_path, "use the checkpoint's file name as ComfyUI lists it, such as sd_xl_base_1.0.safetensors"),
    ("*_image_resolution", image_size, "write WIDTHxHEIGHT, such as 1024x1024 for SDXL or 512x512 for SD 1.5"),
    ("*_env.*", env_name, "name environment variables with letters, digits and '_'"),
    ("*_annotations.*", label_key, "use annotation keys such as metallb.universe.tf/address-pool"),
    ("*_labels.*", label_key, "use label keys such as release"),
    ("*_labels.*=", label_value, "use label values of letters, digits, '-', '_' and '.'"),
    # secrets go into Secrets as given: a line break or a space would not survive every app's parsing
    ("stable_diffusion_username", http_user, "use letters, digits, '.', '_' and '-', such as admin"),
    ("stable_diffusion_password", http_password, "use 8 or more printable characters without spaces or ':', or leave it empty to have one generated"),
    ("stable_diffusion_api_key", bearer_token, "use 32 to 256 letters and digits, or leave it empty to have one generated"),
    ("*_password", secret_text, "use printable characters without spaces, or leave it empty to have one generated"),
    ("*_master_key", secret_text, "use printable characters without spaces, starting with sk-, or leave it empty to have one generated"),
    ("*_api_key", secret_text, "use printable characters without spaces, or leave it empty to have one generated"),
    ("*_secret_key", secret_text, "use printable characters without spaces, or leave it empty to have one generated"),
    ("*_hf_token", secret_text, "use the token as the Hub shows it (hf_...)"),
    ("*_username", secret_text, "use printable characters without spaces"),
    ("homelab_ai_node_group", group_name, "use the inventory group of the nodes, such as homelab_ai_nodes"),
    ("*_dir", text_line, "write the path on one line"),
    ("*_key_file", text_line, "write the path on one line"),
    ("homelab_ai_kubeconfig", text_line, "write the path on one line"),
    ("homelab_ai_kube_context", text_line, "use the context's name as `kubectl config get-contexts` shows it"),
    ("deliver_field_manager", text_line, "use a name such as homelab-ai"),
]

# Bounds of the whole numbers of the roles: (lowest, highest), past which the value is a slip, not a choice.
BOUNDS: Dict[str, Tuple[int, int]] = {
    "*_node_port": (0, 65535),  # 0: Kubernetes picks; the exposure checks the node port range
    "*_port": (1, 65535),
    "*_replicas": (1, 20),
    "longhorn_replica_count": (0, 10),
    "longhorn_models_replica_count": (1, 10),
    "*_timeout": (1, 86400),
    "llamacpp_scale_to_zero_cooldown": (0, 604800),  # the ElastiService CRD's maximum
    "ollama_max_loaded_models": (1, 16),
    "ollama_num_parallel": (1, 64),
    "open_webui_image_steps": (1, 200),
    "*_device_gids.*": (0, 2**31 - 1),
}


def _find(table: Sequence[Tuple[str, Check, str]], name: str) -> Optional[Tuple[Check, str]]:
    """The first entry whose pattern matches; ``name.*=`` (a map's values) matches only patterns that end in '='."""
    for pattern, check, fix in table:
        if pattern.endswith("=") == name.endswith("=") and fnmatch.fnmatchcase(name, pattern):
            return check, fix
    return None


def _bounds(name: str) -> Optional[Tuple[int, int]]:
    return next((bounds for pattern, bounds in BOUNDS.items() if fnmatch.fnmatchcase(name, pattern)), None)


# the checks of a map that apply to its keys (environment names, label keys); the others to its values
_KEY_CHECKS = (env_name, label_key)


def variable_problems(name: str, value: Any) -> List[Problem]:
    """What is wrong with a role variable's value: the format of a string, the keys or values of a map, the bounds
    of a number (``name.*`` in the tables means the map's keys or values, or the list's items)."""
    if value is None or value == "":
        return []  # empty means "not set" for the optional ones; the argument spec says which are required
    problems: List[Problem] = []

    def check(where: str, pattern: str, item: Any) -> None:
        found = _find(FORMATS, pattern)
        if found and found[0](item):
            problems.append(Problem(where, f"{item!r} {found[0](item)}", found[1]))
        bounds = _bounds(pattern)
        if bounds and isinstance(item, int) and not isinstance(item, bool) and not bounds[0] <= item <= bounds[1]:
            problems.append(Problem(where, f"{item} is not between {bounds[0]} and {bounds[1]}", f"write a whole number from {bounds[0]} to {bounds[1]}"))

    if isinstance(value, Mapping):
        found = _find(FORMATS, f"{name}.*")
        for key, item in value.items():
            check(f"{name}.{key}", f"{name}.*", key if found and found[0] in _KEY_CHECKS else item)
            if _find(FORMATS, f"{name}.*="):  # the map's values have a format of their own too
                check(f"{name}.{key}", f"{name}.*=", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check(f"{name}[{index}]", f"{name}.*", item)
    else:
        check(name, name, value)
    return problems


# --- reading a field of the inventory: its value, or a problem and the default ------------------------------------------


def read_choice(values: Mapping[str, Any], key: str, choices: Sequence[str], problems: List[Problem]) -> str:
    value = values[key]
    if value not in choices:
        problems.append(
            Problem(key, f"{value!r} is not one of {', '.join(choices)}{suggest(str(value), choices)}", f"set {key} to one of {', '.join(choices)}")
        )
        return choices[0]
    return str(value)


def unknown_keys(where: str, raw: Mapping[str, Any], allowed: Sequence[str], problems: List[Problem]) -> None:
    for key in raw:
        if key not in allowed:
            problems.append(Problem(f"{where}.{key}", f"is not a known key{suggest(str(key), allowed)}", f"use one of {', '.join(allowed)}"))


def read_quantity(where: str, value: Any, problems: List[Problem], *, required: bool = False, maximum: int = MAX_SIZE) -> Optional[int]:
    if value is None:
        if required:
            problems.append(Problem(where, "is missing", "give a size such as 24Gi"))
        return None
    try:
        size = to_bytes(value)
    except QuantityError as exc:
        problems.append(Problem(where, str(exc), "write a Kubernetes quantity such as 24Gi or 512Mi"))
        return None
    too_small = size_problem(where, value, size)
    if too_small:
        problems.append(too_small)
        return None
    if size > maximum:
        problems.append(Problem(where, f"{value!r} is more than {to_quantity(maximum)}", "write the size in Gi, such as 24Gi"))
        return None
    return size


def size_problem(where: str, value: Any, size: int) -> Optional[Problem]:
    """A memory or storage size below MIN_SIZE: most often a number written without its unit."""
    if size >= MIN_SIZE:
        return None
    text = str(value).strip()
    if size > 0 and re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return Problem(where, f"{value!r} has no unit, so it is {text} bytes", f"write the unit: {text}Gi (or {text}Mi)")
    return Problem(where, f"{value!r} is {size} bytes, less than {to_quantity(MIN_SIZE)}", "write the size with its unit, such as 24Gi or 512Mi")


def read_int(where: str, value: Any, problems: List[Problem], *, minimum: int, default: int, maximum: int = 2**31 - 1) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        else:
            problems.append(Problem(where, f"{value!r} is not a whole number", f"write a whole number from {minimum} to {maximum}"))
            return default
    if not minimum <= value <= maximum:
        problems.append(Problem(where, f"{value} is not between {minimum} and {maximum}", f"write a whole number from {minimum} to {maximum}"))
        return default
    return int(value)


def read_bool(where: str, value: Any, problems: List[Problem], default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    # the strings Ansible itself reads as booleans, as `-e name=true` hands them over
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    problems.append(Problem(where, f"{value!r} is not true or false", "write true or false"))
    return default


_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})
