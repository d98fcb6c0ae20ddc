from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._flux import chart_objects, flux_kustomization, keeps_data, layer_of, providers

CHART = {"name": "elasti", "namespace": "elasti", "repo_name": "kubeelasti", "repo_url": "oci://reg/charts", "chart": "elasti", "version": "0.1.24"}


def obj(api_version, kind, name="x"):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}


def test_chart_objects_for_http_and_oci_repositories():
    repo, release = chart_objects({**CHART, "values": {"a": 1}})
    assert repo["spec"] == {"interval": "1h", "url": "oci://reg/charts", "type": "oci"}
    assert release["spec"]["chart"]["spec"] == {
        "chart": "elasti",
        "version": "0.1.24",
        "sourceRef": {"kind": "HelmRepository", "name": "kubeelasti", "namespace": "flux-system"},
    }
    assert release["spec"]["install"]["crds"] == release["spec"]["upgrade"]["crds"] == "CreateReplace"
    assert release["spec"]["values"] == {"a": 1}
    assert "annotations" not in release["metadata"]
    repo, _ = chart_objects({**CHART, "repo_url": "https://charts.example"})
    assert "type" not in repo["spec"]


def test_a_chart_that_holds_volumes_is_never_pruned():
    _, release = chart_objects({**CHART, "keeps_data": True})
    assert release["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/prune": "disabled"}


def test_custom_resources_go_into_the_layer_after_their_chart():
    provided = providers([("infrastructure", {**CHART, "provides": ["elasti.truefoundry.com"]})])
    assert provided == {"elasti.truefoundry.com": ("infrastructure", "elasti")}
    assert layer_of(obj("elasti.truefoundry.com/v1alpha1", "ElastiService"), "infrastructure", provided) == "apps"
    assert layer_of(obj("elasti.truefoundry.com/v1alpha1", "ElastiService"), "apps", provided) == "apps"
    # what the layers need first, wherever its component lives
    assert layer_of(obj("v1", "Namespace"), "apps", provided) == "infrastructure"
    assert layer_of(obj("helm.toolkit.fluxcd.io/v2", "HelmRelease"), "apps", provided) == "infrastructure"
    assert layer_of(obj("source.toolkit.fluxcd.io/v1", "HelmRepository"), "apps", provided) == "infrastructure"
    # the rest where its component says
    assert layer_of(obj("apps/v1", "DaemonSet"), "infrastructure", provided) == "infrastructure"
    assert layer_of(obj("apps/v1", "Deployment"), "apps", provided) == "apps"


def test_a_custom_resource_of_a_chart_in_the_last_layer_has_nowhere_to_go():
    provided = providers([("apps", {**CHART, "provides": ["elasti.truefoundry.com"]})])
    with pytest.raises(ValueError, match="its CRD comes from chart elasti in the last layer"):
        layer_of(obj("elasti.truefoundry.com/v1alpha1", "ElastiService"), "apps", provided)


def test_flux_kustomizations_wait_for_the_infrastructure_and_depend_on_it():
    infra = flux_kustomization("homelab", "infrastructure", path="./homelab/infrastructure", source="flux-system", depends_on=None, decrypt=False, labels={})
    apps = flux_kustomization("homelab", "apps", path="./homelab/apps", source="flux-system", depends_on="infrastructure", decrypt=True, labels={})
    assert infra["metadata"] == {"name": "homelab-infrastructure", "namespace": "flux-system", "labels": {}}
    assert infra["spec"]["wait"] is True and "dependsOn" not in infra["spec"] and "decryption" not in infra["spec"]
    assert apps["spec"]["dependsOn"] == [{"name": "homelab-infrastructure"}]
    assert apps["spec"]["wait"] is False and apps["spec"]["prune"] is True
    assert apps["spec"]["decryption"] == {"provider": "sops", "secretRef": {"name": "sops-age"}}
    assert apps["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "flux-system", "namespace": "flux-system"}


def test_what_keeps_data():
    assert keeps_data({"kind": "PersistentVolumeClaim"}) and keeps_data({"kind": "Namespace"})
    assert not keeps_data({"kind": "Deployment"}) and not keeps_data({"kind": "Secret"})
