from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from ansible_collections.homelab.ai.plugins.module_utils._prune import Pruner, Ref, plan, record_name

OURS = {"app.kubernetes.io/managed-by": "homelab.ai"}


def obj(kind, name, namespace="ai", api_version=None):
    version = api_version or {"Deployment": "apps/v1", "Job": "batch/v1", "ElastiService": "elasti.truefoundry.com/v1alpha1"}.get(kind, "v1")
    return {"apiVersion": version, "kind": kind, "metadata": {"name": name, **({"namespace": namespace} if namespace else {})}}


class Cluster:
    """What Pruner asks of a cluster: objects by reference, Helm's release Secrets, the record ConfigMap."""

    def __init__(self) -> None:
        self.objects: Dict[Ref, Dict[str, Any]] = {}
        self.releases: set = set()
        self.records: Dict[str, Dict[str, str]] = {}
        self.deleted: List[Ref] = []

    def add(self, o: Dict[str, Any], labels: Optional[Dict[str, str]] = None) -> None:
        self.objects[Ref.of(o)] = {**o, "metadata": {**o["metadata"], "labels": dict(OURS if labels is None else labels)}}

    def get(self, ref: Ref) -> Optional[Dict[str, Any]]:
        return self.objects.get(ref)

    def delete(self, ref: Ref) -> None:
        self.deleted.append(ref)
        self.objects.pop(ref, None)

    def release_exists(self, chart: Tuple[str, str]) -> bool:
        return chart in self.releases

    def read_record(self, name: str) -> Optional[Dict[str, str]]:
        return self.records.get(name)

    def write_record(self, name: str, data: Dict[str, str]) -> None:
        self.records[name] = dict(data)


MODEL = [
    obj("Deployment", "llamacpp-m"),
    obj("Service", "llamacpp-m"),
    obj("Job", "pull-m-1234"),
    obj("ElastiService", "llamacpp-m"),
    obj("PersistentVolumeClaim", "llamacpp-m-cache"),
]
BASE = [obj("Namespace", "ai", namespace=None), obj("Deployment", "litellm")]
ELASTI = {"namespace": "elasti", "name": "elasti"}
LONGHORN = {"namespace": "longhorn-system", "name": "longhorn", "keeps_data": True}


def applied(cluster: Cluster, objects, charts=()) -> None:
    for o in objects:
        cluster.add(o)
    for chart in charts:
        cluster.releases.add((chart["namespace"], chart["name"]))
    Pruner(cluster, "homelab").run(objects, list(charts), write_record=True)


def test_the_first_run_records_what_it_applied_and_removes_nothing():
    cluster = Cluster()
    applied(cluster, BASE + MODEL, [ELASTI])
    record = cluster.records[record_name("homelab")]
    assert json.loads(record["objects"])[0] == ["apps/v1", "Deployment", "ai", "litellm"]
    assert json.loads(record["charts"]) == [["elasti", "elasti", False]]
    assert cluster.deleted == []


def test_a_model_removed_from_the_catalog_loses_its_objects_but_keeps_its_volume():
    cluster = Cluster()
    applied(cluster, BASE + MODEL, [ELASTI])
    result = Pruner(cluster, "homelab").run(BASE, [], write_record=True)
    assert result.removed == ["Deployment ai/llamacpp-m", "Job ai/pull-m-1234", "ElastiService ai/llamacpp-m", "Service ai/llamacpp-m"]
    assert result.kept == ["PersistentVolumeClaim ai/llamacpp-m-cache"]
    assert result.uninstall == [{"namespace": "elasti", "name": "elasti"}]
    assert Ref.of(MODEL[4]) in cluster.objects
    # the kept volume stays in the record, so that a run asked to remove data still can
    again = Pruner(cluster, "homelab").run(BASE, [], prune_data=True, write_record=True)
    assert again.removed == ["PersistentVolumeClaim ai/llamacpp-m-cache"]
    assert Pruner(cluster, "homelab").run(BASE, [], write_record=True).changed is False


def test_check_mode_lists_and_changes_nothing():
    cluster = Cluster()
    applied(cluster, BASE + MODEL)
    before = dict(cluster.records)
    result = Pruner(cluster, "homelab", check_mode=True).run(BASE, [], write_record=True)
    assert "Deployment ai/llamacpp-m" in result.removed and result.changed
    assert cluster.deleted == [] and cluster.records == before


def test_an_object_someone_took_over_is_left_alone_and_forgotten():
    cluster = Cluster()
    applied(cluster, BASE + MODEL[:1])
    cluster.add(MODEL[0], labels={"app.kubernetes.io/managed-by": "Helm"})
    result = Pruner(cluster, "homelab").run(BASE, [], write_record=True)
    assert result.foreign == ["Deployment ai/llamacpp-m"] and result.removed == [] and cluster.deleted == []
    assert "llamacpp-m" not in cluster.records[record_name("homelab")]["objects"]


def test_a_chart_that_holds_volumes_stays_unless_asked_and_a_gone_release_leaves_the_record():
    cluster = Cluster()
    applied(cluster, BASE, [LONGHORN, ELASTI])
    kept = Pruner(cluster, "homelab").run(BASE, [ELASTI], write_record=True)
    assert kept.kept_charts == ["longhorn-system/longhorn"] and kept.uninstall == []
    asked = Pruner(cluster, "homelab").run(BASE, [ELASTI], prune_data=True)
    assert asked.uninstall == [{"namespace": "longhorn-system", "name": "longhorn"}]
    cluster.releases.discard(("longhorn-system", "longhorn"))  # kubernetes.core.helm uninstalled it
    Pruner(cluster, "homelab").run(BASE, [ELASTI], prune_data=True, write_record=True)
    assert json.loads(cluster.records[record_name("homelab")]["charts"]) == [["elasti", "elasti", False]]


def test_namespaces_and_volumes_go_last_and_only_when_asked():
    decided = plan([Ref.of(o) for o in BASE + MODEL], [], [], [], [], prune_data=True)
    assert [r.kind for r in decided.delete][-2:] == ["PersistentVolumeClaim", "Namespace"]
    assert decided.delete[0].kind == "Deployment"
    assert [r.kind for r in plan([Ref.of(o) for o in BASE + MODEL], [], [], [], [], prune_data=False).keep] == ["PersistentVolumeClaim", "Namespace"]
