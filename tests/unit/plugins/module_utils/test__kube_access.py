# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils import _kube_access
from ansible_collections.homelab.ai.plugins.module_utils._kube_access import (
    CONTEXT_VARIABLE,
    DEFAULT_KUBECONFIG,
    K3S_KUBECONFIG,
    KUBECONFIG_VARIABLE,
    AccessError,
    check_access,
    load,
    resolve,
)
from tests.support.fake_kube import FakeKube
from tests.support.model_server import tls_certificate
from tests.support.servers import JsonHandler, StandIn
from tests.support.servers import free_port as closed_port

TOKEN = "k3s-token-0123"
_ENVIRONMENT = ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "NO_PROXY", "no_proxy")
_PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """What a user's shell may hold must not decide a test: no KUBECONFIG, K8S_AUTH_*, proxy or pod; HOME is tmp."""
    for name in list(os.environ):
        if name.startswith("K8S_AUTH_") or name in _ENVIRONMENT + _PROXIES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def write_kubeconfig(path: Path, server: str, *, context: str = "default", current: Optional[str] = "default", **cluster: Any) -> Path:
    """A kubeconfig as k3s writes one: one cluster, user and context, all named ``context``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    config: Dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, **cluster}}],
        "users": [{"name": context, "user": {"token": TOKEN}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
    }
    if current:
        config["current-context"] = current
    path.write_text(yaml.safe_dump(config))
    return path


def problem(kubeconfig: Optional[str], context: Optional[str] = None, **kwargs: Any) -> str:
    with pytest.raises(AccessError) as caught:
        check_access(kubeconfig, context, timeout=kwargs.pop("timeout", 2.0), **kwargs)
    return str(caught.value)


class ApiStub(StandIn):
    """An API server's answers to /version and /api: 401 for a wrong token, 403 for /api without one, or ``status``."""

    def __init__(self, tls: Optional[tuple] = None, status: int = 200) -> None:
        stub = self
        self.status = status
        self.seen: list = []

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                auth = self.headers.get("Authorization")
                auth = auth and auth.replace("bearer ", "Bearer ", 1)  # the in-cluster loader writes the scheme in lower case
                stub.seen.append((self.path, auth))
                if stub.status != 200:
                    self.send_json(stub.status, {"kind": "Status", "status": "Failure", "message": "etcd is not ready", "code": stub.status})
                elif auth not in (None, f"Bearer {TOKEN}"):
                    self.send_json(401, {"kind": "Status", "status": "Failure", "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
                elif auth is None and self.path.startswith("/api"):
                    message = 'forbidden: User "system:anonymous" cannot get path "/api"'
                    self.send_json(403, {"kind": "Status", "status": "Failure", "message": message, "reason": "Forbidden", "code": 403})
                elif self.path.startswith("/version"):
                    self.send_json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.5+k3s1"})
                else:
                    self.send_json(200, {"kind": "APIVersions", "versions": ["v1"]})

        super().__init__(Handler, tls=tls)


@pytest.fixture
def stub() -> Iterator[ApiStub]:
    server = ApiStub().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Two self-signed certificates for 127.0.0.1: the server's, and one that did not sign it."""
    base = tmp_path_factory.mktemp("tls")
    (base / "server").mkdir()
    (base / "other").mkdir()
    return tls_certificate(str(base / "server")), tls_certificate(str(base / "other"))


@pytest.fixture
def tls_stub(certificates) -> Iterator[ApiStub]:
    server = ApiStub(tls=certificates[0]).start()
    yield server
    server.stop()


def ca_data(cert: str) -> str:
    return base64.b64encode(Path(cert).read_bytes()).decode()


# --- which kubeconfig: kubernetes.core's order ------------------------------------------------------------------------------


def test_the_options_come_before_the_environment():
    env = {"K8S_AUTH_KUBECONFIG": "/env/config", "KUBECONFIG": "/a:/b", "K8S_AUTH_CONTEXT": "env-context"}
    source = resolve("/etc/rancher/k3s/k3s.yaml", "homelab", env)
    assert (source.origin, source.paths, source.context, source.context_origin) == (KUBECONFIG_VARIABLE, (K3S_KUBECONFIG,), "homelab", CONTEXT_VARIABLE)
    assert not source.in_cluster_first


def test_then_k8s_auth_then_kubeconfig_then_the_default(tmp_path):
    env = {"K8S_AUTH_KUBECONFIG": "/env/config", "KUBECONFIG": "/a:/b", "K8S_AUTH_CONTEXT": "env-context"}
    auth = resolve(None, None, env)
    assert (auth.origin, auth.paths, auth.context, auth.context_origin) == ("K8S_AUTH_KUBECONFIG", ("/env/config",), "env-context", "K8S_AUTH_CONTEXT")
    listed = resolve(None, None, {"KUBECONFIG": "/a::/b"})
    assert (listed.origin, listed.paths, listed.context) == ("KUBECONFIG", ("/a", "/b"), None)
    assert listed.in_cluster_first  # neither kubeconfig nor context: kubernetes.core tries a pod's service account first
    default = resolve(None, None, {})
    assert (default.origin, default.paths) == (DEFAULT_KUBECONFIG, (str(tmp_path / "home" / ".kube" / "config"),))
    assert resolve("", None, {"KUBECONFIG": "/a"}).origin == "KUBECONFIG"  # an empty option is no option


def test_k8s_auth_host_with_credentials_replaces_the_kubeconfig():
    assert resolve(None, None, {"K8S_AUTH_HOST": "https://h:6443", "K8S_AUTH_API_KEY": "t"}).parameters_only
    assert not resolve(None, None, {"K8S_AUTH_HOST": "https://h:6443"}).parameters_only  # a host alone overrides the kubeconfig's
    assert resolve(None, None, {"K8S_AUTH_VERIFY_SSL": "no"}).auth == {"verify_ssl": False}


# the same environments given to kubernetes.core's own loader and to ours: the configurations must be the same
SCENARIOS = {
    "option": ("{a}", None, {}),
    "K8S_AUTH_KUBECONFIG": (None, None, {"K8S_AUTH_KUBECONFIG": "{b}"}),
    "KUBECONFIG merged, K8S_AUTH_CONTEXT": (None, None, {"KUBECONFIG": "{a}:{b}", "K8S_AUTH_CONTEXT": "b"}),
    "KUBECONFIG merged, current-context of the last file": (None, None, {"KUBECONFIG": "{a}:{b}"}),
    "default ~/.kube/config": (None, None, {}),
    "option and K8S_AUTH_* overrides": ("{a}", "a", {"K8S_AUTH_HOST": "https://other:6443", "K8S_AUTH_VERIFY_SSL": "no", "K8S_AUTH_API_KEY": "t"}),
    "K8S_AUTH_HOST and a key, no kubeconfig": (None, None, {"K8S_AUTH_HOST": "https://h:6443", "K8S_AUTH_API_KEY": "t", "KUBECONFIG": "{a}"}),
}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=list(SCENARIOS))
def test_load_builds_what_kubernetes_core_builds(scenario, tmp_path, monkeypatch, certificates):
    from kubernetes.client import Configuration
    from kubernetes.config import kube_config

    core = pytest.importorskip("ansible_collections.kubernetes.core.plugins.module_utils.k8s.client")
    a = write_kubeconfig(
        tmp_path / "a.yaml", "https://a.home.arpa:6443", context="a", current="a", **{"certificate-authority-data": ca_data(certificates[0][0])}
    )
    b = write_kubeconfig(tmp_path / "b.yaml", "http://b.home.arpa:8080", context="b", current="b")
    write_kubeconfig(tmp_path / "home" / ".kube" / "config", "https://home.arpa:6443", context="home", current="home", **{"insecure-skip-tls-verify": True})
    option, context, env = SCENARIOS[scenario]
    option = option.format(a=a, b=b) if option else option
    for name, value in env.items():
        monkeypatch.setenv(name, value.format(a=a, b=b))
    # what a fresh module process sees: the client reads KUBECONFIG on import, and has no default configuration yet
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", os.environ.get("KUBECONFIG", "~/.kube/config"))
    monkeypatch.setattr(Configuration, "_default", None)
    theirs = core._create_configuration(core._create_auth_spec(None, kubeconfig=option, context=context))
    ours = load(resolve(option, context, os.environ)).configuration

    def seen(configuration):
        files = {key: Path(getattr(configuration, key)).read_bytes() if getattr(configuration, key) else None for key in ("ssl_ca_cert", "cert_file")}
        return configuration.host, configuration.verify_ssl, configuration.api_key, configuration.proxy, files

    assert seen(ours) == seen(theirs)


# --- the kubeconfig file ------------------------------------------------------------------------------------------------------


def test_a_missing_kubeconfig_names_the_variable_and_k3s_s_file(tmp_path):
    message = problem(str(tmp_path / "nope.yaml"))
    assert message.startswith(
        f"{KUBECONFIG_VARIABLE}: {tmp_path / 'nope.yaml'} does not exist. Fix: on the k3s server, set {KUBECONFIG_VARIABLE}: {K3S_KUBECONFIG}"
    )
    assert "replace 127.0.0.1 in its server: by the server's address" in message
    generic = problem(str(tmp_path / "nope.yaml"), distribution="generic")
    assert "k3s" not in generic and "kubectl config view --minify --flatten" in generic


def test_without_any_kubeconfig_the_default_is_named(tmp_path):
    message = problem(None)
    assert message.startswith(f"{KUBECONFIG_VARIABLE}: is not set, and the default {tmp_path / 'home' / '.kube' / 'config'} (~/.kube/config) does not exist")
    assert K3S_KUBECONFIG in message


def test_a_kubeconfig_list_that_names_no_file_names_kubeconfig(tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path}/one:{tmp_path}/two")
    message = problem(None)
    assert message.startswith(f"KUBECONFIG: names {tmp_path}/one, {tmp_path}/two, and none exists ({KUBECONFIG_VARIABLE} is not set")


def test_an_unreadable_kubeconfig_says_how_to_read_k3s_s(tmp_path, monkeypatch):
    from kubernetes.config import kube_config

    path = tmp_path / "k3s.yaml"
    write_kubeconfig(tmp_path / "rancher" / "k3s.yaml", "https://127.0.0.1:6443")
    monkeypatch.setattr(_kube_access, "K3S_KUBECONFIG", str(tmp_path / "rancher" / "k3s.yaml"))
    path.symlink_to(tmp_path / "rancher" / "k3s.yaml")  # a link to k3s's file is k3s's file

    def refuse(name, *args, **kwargs):  # what a user who is not root meets in /etc/rancher/k3s/k3s.yaml (root reads anything)
        raise PermissionError(13, "Permission denied", name)

    monkeypatch.setattr(kube_config, "open", refuse, raising=False)
    message = problem(str(path))
    k3s_file = tmp_path / "rancher" / "k3s.yaml"
    assert message.startswith(f"{KUBECONFIG_VARIABLE}: {path} cannot be read by uid {os.geteuid()} (Permission denied). Fix: k3s writes {k3s_file}")
    assert f"sudo install -m 600 -o $(id -u) {k3s_file} ~/.kube/config" in message
    own = write_kubeconfig(tmp_path / "own.yaml", "https://127.0.0.1:6443")
    assert problem(str(own)).endswith("Fix: make it readable by the user that runs ansible-playbook, or run ansible-playbook as its owner")


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("", "file is empty"),
        ("clusters: [\n", "line 2"),
        ("- a list\n", "is not a kubeconfig"),
        ("apiVersion: v1\nkind: Config\ncontexts: []\n", "it has no contexts"),
    ],
    ids=["empty", "not YAML", "a list", "no contexts"],
)
def test_a_file_that_is_no_kubeconfig_says_so(tmp_path, content, says):
    path = tmp_path / "config"
    path.write_text(content)
    message = problem(str(path))
    assert message.startswith(f"{KUBECONFIG_VARIABLE}: {path} ") and says in message
    assert f"Fix: point {KUBECONFIG_VARIABLE} at a kubeconfig file" in message


def test_a_directory_is_no_kubeconfig(tmp_path):
    assert problem(str(tmp_path)).startswith(f"{KUBECONFIG_VARIABLE}: {tmp_path} is a directory. Fix: point {KUBECONFIG_VARIABLE} at a kubeconfig file")


# --- the context ---------------------------------------------------------------------------------------------------------------


def test_an_unknown_context_lists_the_known_ones(tmp_path):
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    assert problem(str(path), "homelab") == (
        f"{CONTEXT_VARIABLE}: 'homelab' is not a context of {path}; it has default. Fix: set {CONTEXT_VARIABLE} to one of them"
    )


def test_an_unknown_context_from_the_environment_names_the_environment(tmp_path, monkeypatch):
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443")
    monkeypatch.setenv("K8S_AUTH_CONTEXT", "homelab")
    assert problem(str(path)).startswith(f"K8S_AUTH_CONTEXT: 'homelab' is not a context of {path}; it has default. Fix: set {CONTEXT_VARIABLE}")


def test_no_current_context_asks_for_one(tmp_path):
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", current=None)
    message = problem(str(path))
    assert message == f"{CONTEXT_VARIABLE}: is not set, and {path} names no current-context; its contexts: default. Fix: set {CONTEXT_VARIABLE} to one of them"


def test_a_current_context_that_is_not_there_is_named(tmp_path):
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", current="gone")
    assert problem(str(path)).startswith(f"{path}: current-context: 'gone' is not one of its contexts (default)")


def test_a_context_whose_files_are_missing_names_the_context(tmp_path):
    path = write_kubeconfig(tmp_path / "config", "https://127.0.0.1:6443", **{"certificate-authority": "ca.crt"})
    message = problem(str(path))
    assert message.startswith(f"context default of {path}: File does not exist: {tmp_path / 'ca.crt'}")


# --- the API server ---------------------------------------------------------------------------------------------------------------


def test_a_good_kubeconfig_reaches_the_server(tmp_path):
    with FakeKube() as kube:
        path = tmp_path / "config"
        path.write_text(kube.kubeconfig())
        access = check_access(str(path), None)
    assert (access.origin, access.kubeconfig, access.context, access.user, access.server) == (KUBECONFIG_VARIABLE, (str(path),), "fake", "fake", kube.url)
    assert access.version == "v1.33.0"
    assert access.describe() == f"the API server {kube.url} (v1.33.0) answers user fake of context fake in {path}"


def test_the_token_goes_to_the_server_and_a_check_mode_run_only_reads(tmp_path, stub):
    path = write_kubeconfig(tmp_path / "config", stub.url)
    assert check_access(str(path), "default").version == "v1.33.5+k3s1"
    assert stub.seen == [("/version/", f"Bearer {TOKEN}"), ("/api/", f"Bearer {TOKEN}")]


def test_a_refused_connection_to_127_0_0_1_is_k3s_s_copied_kubeconfig(tmp_path):
    port = closed_port()
    path = write_kubeconfig(tmp_path / "config", f"https://127.0.0.1:{port}")
    message = problem(str(path))
    assert message.startswith(f"context default of {path}: server https://127.0.0.1:{port}: refused the connection. Fix: 127.0.0.1 is this machine.")
    assert f"({K3S_KUBECONFIG}) names 127.0.0.1: replace it in server: by the server's address" in message
    assert "systemctl status k3s" in problem(str(path), distribution="generic")


def test_a_server_that_does_not_answer_times_out(tmp_path):
    with socket.socket() as listening:  # accepts connections in the kernel, never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        port = listening.getsockname()[1]
        path = write_kubeconfig(tmp_path / "config", f"http://127.0.0.1:{port}")
        message = problem(str(path), timeout=0.3)
    assert message.startswith(f"context default of {path}: server http://127.0.0.1:{port}: did not answer within 0.3 s. Fix: check the address and port")


def test_a_name_that_does_not_resolve_is_named(tmp_path, monkeypatch):
    def unknown(host, *args, **kwargs):  # no resolver is asked: nothing leaves this machine
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    path = write_kubeconfig(tmp_path / "config", "https://k3s-server.home.arpa:6443")
    assert problem(str(path)).startswith(f"context default of {path}: server https://k3s-server.home.arpa:6443: its host k3s-server.home.arpa does not resolve")


def test_a_proxy_that_cannot_be_reached_is_named(tmp_path, monkeypatch, stub):
    proxy = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HTTP_PROXY", proxy)
    path = write_kubeconfig(tmp_path / "config", stub.url)
    message = problem(str(path))
    assert f"server {stub.url}: cannot be reached through the proxy {proxy}" in message and "NO_PROXY" in message


def test_a_refused_token_names_the_user(tmp_path, stub):
    path = write_kubeconfig(tmp_path / "config", stub.url)
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"]["token"] = "expired"
    path.write_text(yaml.safe_dump(config))
    message = problem(str(path))
    assert message.startswith(f"context default of {path}: user default: the API server {stub.url} refuses its credentials (401 Unauthorized)")
    assert K3S_KUBECONFIG in message


def test_a_user_without_rights_is_named(tmp_path, stub):
    path = write_kubeconfig(tmp_path / "config", stub.url)
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"] = {}  # anonymous: /version answers, /api does not
    path.write_text(yaml.safe_dump(config))
    message = problem(str(path))
    assert message.startswith(
        f'context default of {path}: user default: the API server {stub.url} forbids it to read the API (forbidden: User "system:anonymous"'
    )
    assert "administers the cluster" in message


def test_a_server_in_trouble_says_what_it_answered(tmp_path):
    server = ApiStub(status=500).start()
    try:
        path = write_kubeconfig(tmp_path / "config", server.url)
        assert "answers 500 Internal Server Error (etcd is not ready)" in problem(str(path))
    finally:
        server.stop()


def test_the_kubeconfig_s_ca_checks_the_server(tmp_path, tls_stub, certificates):
    (server_cert, _), (other_cert, _) = certificates
    good = write_kubeconfig(tmp_path / "good", tls_stub.url, **{"certificate-authority-data": ca_data(server_cert)})
    assert check_access(str(good), None).version == "v1.33.5+k3s1"
    wrong = write_kubeconfig(tmp_path / "wrong", tls_stub.url, **{"certificate-authority-data": ca_data(other_cert)})
    message = problem(str(wrong))
    assert message.startswith(
        f"context default of {wrong}: server {tls_stub.url}: presents a certificate that the certificate-authority-data of cluster default"
    )
    assert "does not vouch for" in message and "certificate verify failed" in message
    assert f"Fix: copy the kubeconfig anew from the server: its certificate-authority-data must be the cluster's CA (on k3s, {K3S_KUBECONFIG}" in message
    as_file = write_kubeconfig(tmp_path / "as-file", tls_stub.url, **{"certificate-authority": other_cert})
    assert f"the certificate-authority {other_cert} of cluster default does not vouch for" in problem(str(as_file))


def test_a_certificate_for_another_address_says_tls_san(tmp_path, tls_stub, certificates):
    url = f"https://localhost:{tls_stub.port}"  # the certificate names 127.0.0.1 only
    path = write_kubeconfig(tmp_path / "config", url, **{"certificate-authority-data": ca_data(certificates[0][0])})
    message = problem(str(path))
    assert message.startswith(f"context default of {path}: server {url}: presents a certificate that is not valid for localhost")
    assert "k3s server --tls-san localhost" in message


def test_a_pod_s_service_account_comes_first(tmp_path, monkeypatch, tls_stub, certificates):
    token = tmp_path / "token"
    token.write_text(TOKEN)
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(tls_stub.port)}
    write_kubeconfig(tmp_path / "home" / ".kube" / "config", f"http://127.0.0.1:{closed_port()}")  # not what is used
    access = check_access(None, None, environ=env, service_account=(str(token), certificates[0][0]))
    assert (access.origin, access.kubeconfig, access.server) == ("the pod's service account", (), tls_stub.url)
    assert tls_stub.seen[-1] == ("/api/", f"Bearer {TOKEN}")
