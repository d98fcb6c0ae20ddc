# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._kube_client import KubeClient
from tests.support.fake_kube import FakeKube


def test_the_client_finds_the_cluster_where_kubernetes_core_does(tmp_path, monkeypatch):
    """kube_prune talks to the cluster the k8s modules of the run apply to, K8S_AUTH_KUBECONFIG included."""
    for name in ("KUBECONFIG", "K8S_AUTH_CONTEXT", "KUBERNETES_SERVICE_HOST", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config to fall back on
    with FakeKube() as kube:
        path = tmp_path / "kubeconfig"
        path.write_text(kube.kubeconfig())
        monkeypatch.setenv("K8S_AUTH_KUBECONFIG", str(path))
        assert KubeClient().read_record("homelab-ai-applied-homelab") is None
    assert [(r.method, r.kind, r.name) for r in kube.log] == [("GET", "ConfigMap", "homelab-ai-applied-homelab")]
