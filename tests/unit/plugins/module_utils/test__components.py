from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._components import (
    MARKER,
    apply_batches,
    collect_components,
    delivery_plan,
    delivery_secrets,
    describe_component,
    endpoints,
    namespace_objects,
    namespaces_of,
    normalize_component,
    order_components,
    secret_checksums,
    with_checksums,
)
from ansible_collections.homelab.ai.plugins.module_utils._problems import InputError


def deployment(name, namespace=None, replicas=1):
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    spec = {} if replicas is None else {"replicas": replicas}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": spec}


def component(name, objects=(), needs=(), **extra):
    return normalize_component({"name": name, "objects": list(objects), "needs": list(needs), **extra}, "ai")


def test_normalize_fills_namespace_and_common_labels():
    c = component("x", [deployment("a"), {"apiVersion": "nfd.k8s-sigs.io/v1alpha1", "kind": "NodeFeatureRule", "metadata": {"name": "r"}}])
    assert c["objects"][0]["metadata"]["namespace"] == "ai"
    assert c["objects"][0]["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "homelab.ai"
    assert "namespace" not in c["objects"][1]["metadata"]  # cluster-scoped
    assert c["layer"] == "apps"


def test_what_holds_data_is_never_pruned_by_flux():
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "annotations": {"a": "b"}}}
    c = component("x", [pvc, deployment("d")])
    assert c["objects"][0]["metadata"]["annotations"] == {"a": "b", "kustomize.toolkit.fluxcd.io/prune": "disabled"}
    assert "annotations" not in c["objects"][1]["metadata"]
    (ns,) = namespace_objects([c])
    assert ns["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/prune": "disabled"}


def test_a_component_names_a_layer_of_the_tree():
    assert component("x", layer="infrastructure")["layer"] == "infrastructure"
    with pytest.raises(InputError, match=r"component x.layer: 'platform' is not a layer of the tree"):
        component("x", layer="platform")


def test_normalize_refuses_objects_without_identity_and_duplicates():
    with pytest.raises(InputError, match=r"objects\[0\]: has no apiVersion"):
        component("x", [{"kind": "Service", "metadata": {"name": "s"}}])
    with pytest.raises(InputError, match="renders Deployment a 2 times"):
        component("x", [deployment("a"), deployment("a", "ai")])
    with pytest.raises(InputError, match="is not a component name"):
        component("Not_A_Label")


def test_order_follows_needs_and_ignores_missing_components():
    ordered = order_components([component("webui", needs=["litellm"]), component("litellm", needs=["longhorn-absent"]), component("qdrant")])
    assert [c["name"] for c in ordered] == ["litellm", "webui", "qdrant"]


def test_a_cycle_is_an_error():
    with pytest.raises(InputError, match="cycle: a -> b -> a"):
        order_components([component("a", needs=["b"]), component("b", needs=["a"])])


def test_namespaces_of_skips_system_and_created_ones():
    created = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "longhorn-system"}}
    chart = {"name": "l", "namespace": "longhorn-system", "repo_name": "r", "repo_url": "https://x", "chart": "c", "version": "1"}
    comps = [component("a", [deployment("d"), deployment("k", "kube-system"), created], helm=[chart])]
    assert namespaces_of(comps) == ["ai"]


def test_apply_batches_put_namespaces_first_and_wait_for_workloads_not_scaled_to_zero():
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "longhorn-system"}}
    comps = [component("a", [ns, deployment("d1"), deployment("d0", replicas=0), deployment("dz", replicas=None)])]
    batches = apply_batches(comps, [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ai"}}])
    assert [o["metadata"]["name"] for o in batches[0]["objects"]] == ["ai", "longhorn-system"]
    assert [o["metadata"]["name"] for o in batches[1]["objects"]] == ["d1", "d0", "dz"]
    assert [w["name"] for w in batches[1]["wait"]] == ["d1", "dz"]


def test_delivery_secrets_give_paths_and_value_variables_never_values():
    secret = {"name": "litellm", "keys": {"master-key": {"var": "litellm_master_key", "prefix": "sk-"}}}
    (entry,) = delivery_secrets([component("litellm", [deployment("litellm")], secrets=[secret])], "/t/homelab")
    assert entry["path"] == "/t/homelab/apps/litellm/secret-litellm.sops.yaml"
    assert entry["previous_path"] == "/t/homelab/litellm/secret-litellm.sops.yaml"  # where the tree kept it before layers
    assert entry["generate"] == {"master-key": {"prefix": "sk-"}}
    assert entry["value_vars"] == {"master-key": "litellm_master_key"}


def test_namespace_objects_are_labelled_for_pod_security():
    (ns,) = namespace_objects([component("a", [deployment("d")])])
    assert ns["metadata"]["name"] == "ai" and ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"


def test_delivery_plan_orders_and_batches():
    plan = delivery_plan([component("b", [deployment("db")], needs=["a"]), component("a", [deployment("da")])])
    assert plan["components"] == ["a", "b"]
    assert [batch["name"] for batch in plan["batches"]] == ["namespaces", "a", "b"]


def test_delivery_plan_names_what_it_applies_for_the_record():
    chart = {"name": "l", "namespace": "longhorn-system", "repo_name": "r", "repo_url": "https://x", "chart": "c", "version": "1", "keeps_data": True}
    secret = {"name": "s", "keys": {"k": {}}}
    plan = delivery_plan([component("a", [deployment("da")], helm=[chart], secrets=[secret])])
    assert plan["refs"] == [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ai"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "longhorn-system"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "da", "namespace": "ai"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "ai"}},
    ]
    assert plan["charts"] == [{"namespace": "longhorn-system", "name": "l", "keeps_data": True}]


def test_components_are_collected_from_variables_by_marker():
    variables = {"_b_component": component("b"), "_a_component": component("a"), "x_component": {"name": "not one"}, "other": component("c")}
    assert [c["name"] for c in collect_components(variables)] == ["a", "b"]
    assert variables["_a_component"][MARKER] is True


def test_endpoints_in_delivery_order():
    comps = [
        component("b", needs=["a"], summary={"endpoints": [{"name": "B", "url": "http://b"}]}),
        component("a", summary={"endpoints": [{"name": "A", "url": "http://a"}]}),
    ]
    assert [e["name"] for e in endpoints(comps)] == ["A", "B"]


def test_a_role_describes_its_component_by_its_declaration(age_key):
    from tests.support.example import example_preflight

    inventory = example_preflight(age_key)
    c = describe_component({"objects": [deployment("litellm")]}, inventory, "litellm")
    assert (c["name"], c["layer"], c["needs"]) == ("litellm", "apps", ["llamacpp", "ollama"])
    with pytest.raises(InputError, match=r"component litellm: sets needs, which meta/component\.yml declares"):
        describe_component({"needs": ["x"]}, inventory, "litellm")
    with pytest.raises(InputError, match="role nothing: declares no component"):
        describe_component({}, inventory, "nothing")


def test_workloads_carry_the_checksum_of_what_they_read_and_each_secret_names_its_readers():
    env = [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "litellm", "key": "master-key"}}}]
    pod = {"containers": [{"name": "c", "env": env}], "volumes": [{"name": "v", "configMap": {"name": "cfg"}}]}
    workload = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "litellm"}, "spec": {"template": {"metadata": {}, "spec": pod}}}
    reader = {**workload, "metadata": {"name": "open-webui"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "env": env}]}}}}
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pull"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "env": env}]}}}}
    cfg = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"config.yaml": "a: 1"}}
    comps = [component("litellm", [cfg, workload, reader, job])]
    results = [{"item": {"namespace": "ai", "name": "litellm"}, "checksum": "abc"}]
    annotated, readers = with_checksums(comps, secret_checksums(results))
    first = {o["metadata"]["name"]: o for o in annotated[0]["objects"]}
    assert readers == {"ai/litellm": ["Deployment litellm", "Deployment open-webui"]}  # the Job's template cannot change
    assert "annotations" not in first["pull"]["spec"]["template"].get("metadata", {})
    checksum = first["litellm"]["spec"]["template"]["metadata"]["annotations"]["homelab.ai/checksum"]
    # a new secret value, or a new config, rolls the pods; the same ones do not
    again, _ = with_checksums(comps, secret_checksums(results))
    assert again[0]["objects"][1]["spec"]["template"]["metadata"]["annotations"]["homelab.ai/checksum"] == checksum
    rotated, _ = with_checksums(comps, secret_checksums([{**results[0], "checksum": "def"}]))
    assert rotated[0]["objects"][1]["spec"]["template"]["metadata"]["annotations"]["homelab.ai/checksum"] != checksum
    cfg["data"]["config.yaml"] = "a: 2"
    changed, _ = with_checksums([component("litellm", [cfg, workload])], secret_checksums(results))
    assert changed[0]["objects"][1]["spec"]["template"]["metadata"]["annotations"]["homelab.ai/checksum"] != checksum
    assert "annotations" not in workload["spec"]["template"]["metadata"]  # the input is left as it was
