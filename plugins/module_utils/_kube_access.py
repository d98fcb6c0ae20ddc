# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Can apply mode reach the cluster? The kubeconfig kubernetes.core will use, its context, and the API server's answer.

Apply mode asks this first (playbooks/kube_access.yml), before a node is contacted or anything rendered: a kubeconfig
that is missing, unreadable or wrong stops the run in seconds with one ``Problem`` naming the input and the fix,
instead of kubernetes.core's "Invalid kube-config file" at the end of the run.

The credentials are found the way kubernetes.core 6 finds them (``module_utils/k8s/client.py``; a unit test holds
``load`` to it): its ``kubeconfig``/``context`` options (the deliver role passes ``homelab_ai_kubeconfig`` and
``homelab_ai_kube_context``), else ``K8S_AUTH_KUBECONFIG``/``K8S_AUTH_CONTEXT``; with neither, a pod's service account
if there is one; then the kubernetes client's default, ``KUBECONFIG`` (files merged) else ``~/.kube/config``.
``K8S_AUTH_HOST`` with credentials replaces the kubeconfig, and every ``K8S_AUTH_*`` setting overrides it.
The kubernetes client reads, merges and loads the files; only the diagnosis is ours.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ._problems import Problem

__all__ = [
    "CONTEXT_VARIABLE",
    "K3S_KUBECONFIG",
    "KUBECONFIG_VARIABLE",
    "Access",
    "AccessError",
    "Source",
    "Target",
    "check_access",
    "load",
    "probe",
    "resolve",
]

KUBECONFIG_VARIABLE = "homelab_ai_kubeconfig"
CONTEXT_VARIABLE = "homelab_ai_kube_context"
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
DEFAULT_KUBECONFIG = "~/.kube/config"  # the kubernetes client's default where KUBECONFIG is not set
_PATH_SEPARATOR = ":"  # the client splits every kubeconfig string on it (POSIX), not only KUBECONFIG

# kubernetes.core's options over the kubeconfig (its AUTH_ARG_MAP less kubeconfig, context, persist_config):
# option -> the client's Configuration attribute; each is read from K8S_AUTH_<OPTION>, else K8S_AUTH_<ATTRIBUTE>
_AUTH_OPTIONS = {
    "host": "host",
    "api_key": "api_key",
    "username": "username",
    "password": "password",
    "validate_certs": "verify_ssl",
    "ca_cert": "ssl_ca_cert",
    "client_cert": "cert_file",
    "client_key": "key_file",
    "proxy": "proxy",
    "no_proxy": "no_proxy",
}
_PROXY_HEADERS = ("proxy_basic_auth", "basic_auth", "user_agent")  # K8S_AUTH_PROXY_HEADERS_<NAME>


class AccessError(Exception):
    """The one problem that keeps apply mode from the cluster."""

    def __init__(self, problem: Problem):
        self.problem = problem
        super().__init__(str(problem))


@dataclass(frozen=True)
class Source:
    """Where kubernetes.core will take the cluster's address and credentials from."""

    origin: str  # what names the kubeconfig: homelab_ai_kubeconfig, K8S_AUTH_KUBECONFIG, KUBECONFIG or DEFAULT_KUBECONFIG
    paths: Tuple[str, ...]  # its files, ~ expanded, in the order the client merges them
    context: Optional[str]  # None: the kubeconfig's current-context
    context_origin: str  # homelab_ai_kube_context or K8S_AUTH_CONTEXT ("" without one)
    auth: Mapping[str, Any]  # K8S_AUTH_* settings, by Configuration attribute, set over what the kubeconfig says
    parameters_only: bool = False  # K8S_AUTH_HOST with credentials: no kubeconfig is read at all
    in_cluster_first: bool = False  # neither kubeconfig nor context given: a pod's service account wins


@dataclass
class Target:
    """A loaded client configuration and the names a message about it needs."""

    configuration: Any  # kubernetes.client.Configuration
    where: str  # e.g. "context default of /etc/rancher/k3s/k3s.yaml"
    context: str
    cluster: str
    user: str
    ca: str  # what the server's certificate is checked against, in words
    kubeconfig: Tuple[str, ...]  # the files read
    origin: str = ""  # where no kubeconfig is read: the pod's service account, K8S_AUTH_HOST


@dataclass(frozen=True)
class Access:
    """What the run will use, and what the API server said."""

    origin: str
    kubeconfig: Tuple[str, ...]
    context: str
    cluster: str
    user: str
    server: str
    version: str

    def describe(self) -> str:
        files = ", ".join(self.kubeconfig) or self.origin
        return f"the API server {self.server} ({self.version}) answers user {self.user} of context {self.context} in {files}"


# --- which kubeconfig --------------------------------------------------------------------------------------------------


def _auth_from_env(environ: Mapping[str, str]) -> Dict[str, Any]:
    auth: Dict[str, Any] = {}
    for option, attribute in _AUTH_OPTIONS.items():
        value: Any = environ.get(f"K8S_AUTH_{option.upper()}") or environ.get(f"K8S_AUTH_{attribute.upper()}")
        if value is None:
            continue
        auth[attribute] = value.lower() not in ("0", "false", "no") if option == "validate_certs" else value
    headers = {name: environ[f"K8S_AUTH_PROXY_HEADERS_{name.upper()}"] for name in _PROXY_HEADERS if f"K8S_AUTH_PROXY_HEADERS_{name.upper()}" in environ}
    if headers:
        auth["proxy_headers"] = headers
    return auth


def resolve(kubeconfig: Optional[str], context: Optional[str], environ: Mapping[str, str]) -> Source:
    """The kubeconfig and context kubernetes.core picks for these options in this environment (reads no file)."""
    auth = _auth_from_env(environ)
    origin = KUBECONFIG_VARIABLE
    if kubeconfig is None and environ.get("K8S_AUTH_KUBECONFIG") is not None:
        kubeconfig, origin = environ["K8S_AUTH_KUBECONFIG"], "K8S_AUTH_KUBECONFIG"
    context_origin = CONTEXT_VARIABLE if context is not None else ""
    if context is None and environ.get("K8S_AUTH_CONTEXT") is not None:
        context, context_origin = environ["K8S_AUTH_CONTEXT"], "K8S_AUTH_CONTEXT"
    if not kubeconfig:  # an empty option counts as none, as in kubernetes.core
        kubeconfig, origin = (environ["KUBECONFIG"], "KUBECONFIG") if "KUBECONFIG" in environ else (DEFAULT_KUBECONFIG, DEFAULT_KUBECONFIG)
    paths = tuple(os.path.expanduser(path) for path in kubeconfig.split(_PATH_SEPARATOR) if path)

    def given(*names: str) -> bool:
        return all(auth.get(name) for name in names)

    parameters_only = given("host") and (given("username", "password") or given("api_key") or given("cert_file", "key_file"))
    in_cluster_first = origin in (DEFAULT_KUBECONFIG, "KUBECONFIG") and not context
    return Source(origin, paths, context or None, context_origin, auth, parameters_only, in_cluster_first)


# --- loading it ----------------------------------------------------------------------------------------------------------


def _file_fix(distribution: str) -> str:
    if distribution == "generic":
        return f"set {KUBECONFIG_VARIABLE} to your cluster's kubeconfig (kubectl config view --minify --flatten writes one)"
    return (
        f"on the k3s server, set {KUBECONFIG_VARIABLE}: {K3S_KUBECONFIG} (readable by root only); elsewhere, copy that file to "
        f"~/.kube/config (or set {KUBECONFIG_VARIABLE} to where you put it) and replace 127.0.0.1 in its server: by the server's address"
    )


def _unreadable_fix(path: str) -> str:
    if os.path.realpath(path) == K3S_KUBECONFIG:
        return (
            f"k3s writes {K3S_KUBECONFIG} readable by root only: run ansible-playbook as root, or copy it to a file of yours "
            f"(sudo install -m 600 -o $(id -u) {K3S_KUBECONFIG} ~/.kube/config) and set {KUBECONFIG_VARIABLE} to that file"
        )
    return "make it readable by the user that runs ansible-playbook, or run ansible-playbook as its owner"


def _missing(source: Source, distribution: str) -> Problem:
    fix = _file_fix(distribution)
    if source.origin == KUBECONFIG_VARIABLE:
        return Problem(KUBECONFIG_VARIABLE, f"{', '.join(source.paths) or repr('')} does not exist", fix)
    if source.origin == DEFAULT_KUBECONFIG:
        return Problem(KUBECONFIG_VARIABLE, f"is not set, and the default {source.paths[0]} ({DEFAULT_KUBECONFIG}) does not exist", fix)
    named = ", ".join(source.paths) or "no file"
    return Problem(source.origin, f"names {named}, and none exists ({KUBECONFIG_VARIABLE} is not set, so it is what counts)", fix)


def _entries(entries: Any) -> List[Dict[str, Any]]:
    """The named entries of a merged kubeconfig list (the client wraps them in ConfigNodes)."""
    return [value for value in (getattr(entry, "value", entry) for entry in entries or []) if isinstance(value, dict)]


def _named(entries: Any, name: str, key: str) -> Dict[str, Any]:
    return next((dict(entry.get(key) or {}) for entry in _entries(entries) if entry.get("name") == name), {})


def _in_cluster(environ: Mapping[str, str], service_account: Optional[Tuple[str, str]]) -> Optional[Target]:
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, incluster_config

    token, ca = service_account or (incluster_config.SERVICE_TOKEN_FILENAME, incluster_config.SERVICE_CERT_FILENAME)
    configuration = Configuration()
    try:
        incluster_config.InClusterConfigLoader(token_filename=token, cert_filename=ca, environ=environ).load_and_set(configuration)
    except ConfigException:  # not in a pod: the kubeconfig it is
        return None
    account = "the pod's service account"
    return Target(configuration, account, "in-cluster", "in-cluster", account, f"the service account's CA {ca}", (), account)


def load(source: Source, distribution: str = "k3s", service_account: Optional[Tuple[str, str]] = None, environ: Optional[Mapping[str, str]] = None) -> Target:
    """The client configuration kubernetes.core would build from ``source``, or the ``AccessError`` that keeps it from one."""
    from kubernetes.client import Configuration

    target: Optional[Target] = None
    if source.parameters_only:
        target = Target(Configuration(), "K8S_AUTH_HOST", "", "", "the K8S_AUTH_* credentials", "the system's CA certificates", (), "K8S_AUTH_HOST")
    elif source.in_cluster_first:
        target = _in_cluster(os.environ if environ is None else environ, service_account)
    if target is None:
        target = _load_kubeconfig(source, distribution)
    _override(target, source.auth)
    return target


def _load_kubeconfig(source: Source, distribution: str) -> Target:
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, kube_config

    label = source.origin if source.origin != DEFAULT_KUBECONFIG else KUBECONFIG_VARIABLE
    existing = [path for path in source.paths if os.path.exists(path)]
    if not existing:
        raise AccessError(_missing(source, distribution))
    files = ", ".join(existing)
    not_a_kubeconfig = f"point {label} at a kubeconfig file (kubectl config view --minify --flatten writes one)"
    try:
        merged = kube_config.KubeConfigMerger(_PATH_SEPARATOR.join(existing)).config
    except IsADirectoryError as exc:
        raise AccessError(Problem(label, f"{exc.filename or files} is a directory", not_a_kubeconfig)) from exc
    except OSError as exc:
        path = str(exc.filename or files)
        raise AccessError(Problem(label, f"{path} cannot be read by uid {os.geteuid()} ({exc.strerror})", _unreadable_fix(path))) from exc
    except Exception as exc:  # YAML errors name the file and line themselves
        raise AccessError(Problem(label, f"{files} is not a kubeconfig: {' '.join(str(exc).split())}", not_a_kubeconfig)) from exc
    config = getattr(merged, "value", None)
    if not isinstance(config, dict) or not config.get("contexts"):
        raise AccessError(Problem(label, f"{files} is not a kubeconfig: it has no contexts", not_a_kubeconfig))
    known = [str(entry.get("name")) for entry in _entries(config.get("contexts"))]
    listed = ", ".join(known)
    name = source.context or config.get("current-context")
    if not name:
        raise AccessError(
            Problem(CONTEXT_VARIABLE, f"is not set, and {files} names no current-context; its contexts: {listed}", f"set {CONTEXT_VARIABLE} to one of them")
        )
    if name not in known:
        if source.context:
            fix = f"set {CONTEXT_VARIABLE} to one of them" + (f" ({source.context_origin} sets it now)" if source.context_origin != CONTEXT_VARIABLE else "")
            raise AccessError(Problem(source.context_origin, f"{name!r} is not a context of {files}; it has {listed}", fix))
        raise AccessError(Problem(f"{files}: current-context", f"{name!r} is not one of its contexts ({listed})", f"set {CONTEXT_VARIABLE} to one of them"))
    where = f"context {name} of {files}"
    try:
        loader = kube_config.KubeConfigLoader(config_dict=merged, active_context=name, config_base_path=None)
        configuration = Configuration()
        loader.load_and_set(configuration)
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        raise AccessError(
            Problem(
                where,
                " ".join(str(exc).split()),
                "a context names a cluster and a user of the same kubeconfig, and the files they name must exist; copy the kubeconfig anew from the server",
            )
        ) from exc
    spec = _named(config.get("contexts"), name, "context")
    cluster_name, user = str(spec.get("cluster") or ""), str(spec.get("user") or "(none)")
    cluster = _named(config.get("clusters"), cluster_name, "cluster")
    if cluster.get("insecure-skip-tls-verify"):
        ca = "nothing (insecure-skip-tls-verify)"
    elif cluster.get("certificate-authority-data"):
        ca = f"the certificate-authority-data of cluster {cluster_name}"
    elif cluster.get("certificate-authority"):
        ca = f"the certificate-authority {cluster['certificate-authority']} of cluster {cluster_name}"
    else:
        ca = f"the system's CA certificates (cluster {cluster_name} gives no certificate-authority)"
    return Target(configuration, where, name, cluster_name, user, ca, tuple(existing))


def _override(target: Target, auth: Mapping[str, Any]) -> None:
    """K8S_AUTH_* settings over the kubeconfig's, as kubernetes.core sets them."""
    import urllib3

    configuration = target.configuration
    for attribute, value in auth.items():
        if attribute == "api_key":
            configuration.api_key = {"authorization": f"Bearer {value}"}
            target.user = "the K8S_AUTH_API_KEY token"
        elif attribute == "proxy_headers":
            configuration.proxy_headers = urllib3.util.make_headers(**value)
        else:
            setattr(configuration, attribute, value)
            if attribute == "username":
                target.user = str(value)
            if attribute == "ssl_ca_cert":
                target.ca = f"K8S_AUTH_CA_CERT {value}"
    if "host" in auth and target.origin != "K8S_AUTH_HOST":
        target.where += " (server from K8S_AUTH_HOST)"


# --- asking the server -----------------------------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _network_problem(target: Target, exc: BaseException, timeout: float, distribution: str) -> Problem:
    import urllib3

    server = target.configuration.host
    host = urlsplit(server).hostname or server
    where = f"{target.where}: server {server}"
    k3s = distribution != "generic"
    if isinstance(exc, urllib3.exceptions.ProxyError):
        proxy = target.configuration.proxy
        return Problem(where, f"cannot be reached through the proxy {proxy} ({exc})", "add the server's address to NO_PROXY, or repair the proxy")
    if isinstance(exc, urllib3.exceptions.NameResolutionError):
        return Problem(where, f"its host {host} does not resolve", "write the server's IP address in server:, or a name this machine resolves")
    if isinstance(exc, urllib3.exceptions.NewConnectionError) and "refused" in str(exc).lower():
        if _loopback(host) and k3s:
            fix = (
                f"127.0.0.1 is this machine. A kubeconfig copied from a k3s server ({K3S_KUBECONFIG}) names 127.0.0.1: replace it in server: "
                "by the server's address; on the server itself, start k3s (systemctl status k3s)"
            )
        else:
            fix = "check that the API server runs (systemctl status k3s on a k3s server) and listens on that address and port"
        return Problem(where, "refused the connection", fix)
    # urllib3's NewConnectionError is a ConnectTimeoutError too: only an error that says so is a timeout
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, TimeoutError)) or (
        isinstance(exc, urllib3.exceptions.ConnectTimeoutError) and "timed out" in str(exc).lower()
    ):
        return Problem(
            where,
            f"did not answer within {timeout:g} s",
            "check the address and port in server:, that the API server is up, and that no firewall drops the port" + (" (6443/tcp on k3s)" if k3s else ""),
        )
    return Problem(where, f"cannot be reached ({' '.join(str(exc).split())})", "check the address and port in server: and that the API server is up")


def _tls_problem(target: Target, reason: str, distribution: str) -> Problem:
    server = target.configuration.host
    host = urlsplit(server).hostname or server
    where = f"{target.where}: server {server}"
    detail = " ".join(reason.replace("SSLError", "").split())
    lowered = detail.lower()
    if "mismatch" in lowered or "doesn't match" in lowered or "not valid for" in lowered:
        fix = "use an address its certificate names"
        if distribution != "generic":
            fix += f", or add this one to it: k3s server --tls-san {host} (tls-san: in /etc/rancher/k3s/config.yaml), then restart k3s"
        return Problem(where, f"presents a certificate that is not valid for {host} ({detail})", fix)
    if "certificate_verify_failed" in lowered or "certificate verify failed" in lowered:
        return Problem(
            where,
            f"presents a certificate that {target.ca} does not vouch for ({detail})",
            "copy the kubeconfig anew from the server: its certificate-authority-data must be the cluster's CA"
            + (f" (on k3s, {K3S_KUBECONFIG} holds it)" if distribution != "generic" else ""),
        )
    return Problem(where, f"TLS failed ({detail}), checked against {target.ca}", "check that server: names the API server's https address and port")


def _status_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "").strip()


def probe(target: Target, timeout: float = 10.0, distribution: str = "k3s") -> str:
    """GET /version (the server answers, TLS, credentials) and /api (what kubernetes.core asks first, authenticated only)."""
    import urllib3
    from kubernetes.client import ApiClient, CoreApi, VersionApi
    from kubernetes.client.exceptions import ApiException

    configuration = target.configuration
    configuration.retries = False  # one try, and urllib3's own error rather than MaxRetryError
    server = configuration.host
    where = f"{target.where}: server {server}"
    with ApiClient(configuration) as client:
        try:
            # raw answers: the typed models refuse a /version that leaves out a field
            version: Any = VersionApi(client).get_code(_request_timeout=(timeout, timeout), _preload_content=False)
            answer = version.data
            discovery: Any = CoreApi(client).get_api_versions(_request_timeout=(timeout, timeout), _preload_content=False)
            discovery.release_conn()
        except ApiException as exc:
            if exc.status == 0:  # the client wraps urllib3's SSLError so
                raise AccessError(_tls_problem(target, str(exc.reason), distribution)) from exc
            message = _status_message(exc)
            if exc.status == 401:
                raise AccessError(
                    Problem(
                        f"{target.where}: user {target.user}",
                        f"the API server {server} refuses its credentials (401 {message})",
                        "its token or client certificate is wrong or has expired: copy the kubeconfig anew from the server"
                        + (f" ({K3S_KUBECONFIG} on k3s)" if distribution != "generic" else ""),
                    )
                ) from exc
            if exc.status == 403:
                raise AccessError(
                    Problem(
                        f"{target.where}: user {target.user}",
                        f"the API server {server} forbids it to read the API ({message})",
                        "use a kubeconfig of a user that administers the cluster: apply mode creates namespaces, CRDs and cluster-wide objects",
                    )
                ) from exc
            raise AccessError(
                Problem(where, f"answers {exc.status} {exc.reason} ({message})", "check the API server's health: kubectl get --raw /readyz?verbose")
            ) from exc
        except urllib3.exceptions.SSLError as exc:
            raise AccessError(_tls_problem(target, str(exc), distribution)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise AccessError(_network_problem(target, exc, timeout, distribution)) from exc
    try:
        said = json.loads(answer or b"{}")
    except ValueError:
        said = {}
    return str(said.get("gitVersion") or "") if isinstance(said, dict) else ""


def check_access(
    kubeconfig: Optional[str],
    context: Optional[str],
    *,
    distribution: str = "k3s",
    timeout: float = 10.0,
    environ: Optional[Mapping[str, str]] = None,
    service_account: Optional[Tuple[str, str]] = None,
) -> Access:
    """Find, load and try what apply mode will use; ``AccessError`` with the first thing that keeps it from the cluster."""
    env = os.environ if environ is None else environ
    source = resolve(kubeconfig, context, env)
    target = load(source, distribution, service_account, env)
    version = probe(target, timeout, distribution)
    return Access(target.origin or source.origin, target.kubeconfig, target.context, target.cluster, target.user, target.configuration.host, version)
