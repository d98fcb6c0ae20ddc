# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Apply mode's memory of what it applied, and the removal of what it no longer renders.

Server-side apply never deletes: a model removed from the catalog would keep its Deployment, and its GPU, for good.
So every apply run records what it applied (a ConfigMap, like Flux's own inventory in a Kustomization's status), and
the next run removes what the record names and the run no longer renders:

- only objects that still carry the collection's ``app.kubernetes.io/managed-by`` label (one that someone took
  over is left alone and reported);
- never a volume claim or a namespace, nor a Helm release that holds volumes (Longhorn), unless asked
  (``homelab_ai_prune_data``): those stay in the record, so a later run that is asked can still remove them;
- workloads first, volume claims and namespaces last; Helm releases are uninstalled by the caller (kubernetes.core.helm)
  and leave the record once Helm no longer has them.

``plan`` is pure; ``Pruner`` talks to the cluster through a small client, so the logic is tested without one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Protocol, Sequence, Tuple

from ._flux import keeps_data

__all__ = ["MANAGED_BY", "PruneResult", "Pruner", "Ref", "plan", "record_name"]

MANAGED_BY = ("app.kubernetes.io/managed-by", "homelab.ai")
RECORD_NAMESPACE = "kube-system"
# what goes first when several objects go: what uses the others, then what holds data, last of all the namespaces
_ORDER = ("Deployment", "StatefulSet", "DaemonSet", "Job", "ElastiService", "PodMonitor", "Ingress", "Service")
_LAST = ("PersistentVolumeClaim", "Namespace")


@dataclass(frozen=True, order=True)
class Ref:
    api_version: str
    kind: str
    namespace: str  # "" for a cluster-scoped object
    name: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Ref:
        metadata = obj.get("metadata") or {}
        return cls(str(obj["apiVersion"]), str(obj["kind"]), str(metadata.get("namespace") or ""), str(metadata["name"]))

    @property
    def data(self) -> bool:
        return keeps_data({"kind": self.kind})

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace + '/' if self.namespace else ''}{self.name}"


Chart = Tuple[str, str]  # (namespace, release name)


def record_name(cluster: str) -> str:
    return f"homelab-ai-applied-{cluster}"


def _sort_key(ref: Ref) -> Tuple[int, Ref]:
    if ref.kind in _ORDER:
        return _ORDER.index(ref.kind), ref
    if ref.kind in _LAST:
        return len(_ORDER) + 1 + _LAST.index(ref.kind), ref
    return len(_ORDER), ref


@dataclass
class Plan:
    delete: List[Ref] = field(default_factory=list)
    keep: List[Ref] = field(default_factory=list)  # stale, but data: only removed when asked
    uninstall: List[Chart] = field(default_factory=list)
    keep_charts: List[Chart] = field(default_factory=list)


def plan(
    recorded: Iterable[Ref],
    recorded_charts: Iterable[Chart],
    current: Iterable[Ref],
    current_charts: Iterable[Chart],
    data_charts: Iterable[Chart],
    prune_data: bool,
) -> Plan:
    """What leaves the cluster: recorded and no longer rendered, data only when asked."""
    result = Plan()
    for ref in sorted(set(recorded) - set(current), key=_sort_key):
        (result.keep if ref.data and not prune_data else result.delete).append(ref)
    data = set(data_charts)
    for chart in sorted(set(recorded_charts) - set(current_charts)):
        (result.keep_charts if chart in data and not prune_data else result.uninstall).append(chart)
    return result


class Client(Protocol):
    def get(self, ref: Ref) -> Optional[Dict[str, Any]]: ...

    def delete(self, ref: Ref) -> None: ...

    def release_exists(self, chart: Chart) -> bool: ...

    def read_record(self, name: str) -> Optional[Dict[str, str]]: ...

    def write_record(self, name: str, data: Dict[str, str]) -> None: ...


@dataclass
class PruneResult:
    removed: List[str] = field(default_factory=list)
    kept: List[str] = field(default_factory=list)  # data, not removed unless asked
    foreign: List[str] = field(default_factory=list)  # no longer carries our label: someone else's now
    uninstall: List[Dict[str, str]] = field(default_factory=list)  # Helm releases for the caller to uninstall
    kept_charts: List[str] = field(default_factory=list)
    record_changed: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.record_changed)


@dataclass
class Pruner:
    client: Client
    cluster: str
    check_mode: bool = False

    def run(
        self,
        objects: Sequence[Mapping[str, Any]],
        charts: Sequence[Mapping[str, Any]],
        *,
        prune_data: bool = False,
        write_record: bool = False,
    ) -> PruneResult:
        """Remove what the record names and ``objects``/``charts`` do not; with ``write_record``, record them."""
        current = {Ref.of(obj) for obj in objects}
        current_charts = {(str(c["namespace"]), str(c["name"])) for c in charts}
        data_charts = {(str(c["namespace"]), str(c["name"])) for c in charts if c.get("keeps_data")}
        stored = self.client.read_record(record_name(self.cluster)) or {}
        recorded = {Ref(*item) for item in json.loads(stored.get("objects") or "[]")}
        recorded_charts = {(str(ns), str(name)) for ns, name, *_ in json.loads(stored.get("charts") or "[]")}
        data_charts |= {(str(ns), str(name)) for ns, name, keeps in json.loads(stored.get("charts") or "[]") if keeps}
        decided = plan(recorded, recorded_charts, current, current_charts, data_charts, prune_data)
        result = PruneResult()
        for ref in decided.delete:
            live = self.client.get(ref)
            if live is None:
                continue
            labels = (live.get("metadata") or {}).get("labels") or {}
            if labels.get(MANAGED_BY[0]) != MANAGED_BY[1]:
                result.foreign.append(str(ref))  # not ours any more: forgotten, never deleted
                continue
            if not self.check_mode:
                self.client.delete(ref)
            result.removed.append(str(ref))
        result.kept = [str(ref) for ref in decided.keep]
        result.kept_charts = [f"{ns}/{name}" for ns, name in decided.keep_charts]
        still_installed = [chart for chart in decided.uninstall if self.client.release_exists(chart)]
        result.uninstall = [{"namespace": ns, "name": name} for ns, name in still_installed]
        if write_record:
            objects_after = sorted(current | set(decided.keep))
            charts_after = sorted(current_charts | set(decided.keep_charts) | set(still_installed))
            data = {
                "objects": json.dumps([[r.api_version, r.kind, r.namespace, r.name] for r in objects_after]),
                "charts": json.dumps([[ns, name, (ns, name) in data_charts] for ns, name in charts_after]),
            }
            if data != {key: stored.get(key) for key in data}:
                result.record_changed = True
                if not self.check_mode:
                    self.client.write_record(record_name(self.cluster), data)
        return result
