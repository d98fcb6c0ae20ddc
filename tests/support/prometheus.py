# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""The real Prometheus (Debian's 2.42, scripts/install-prometheus.sh) scraping processes that local_pods started.

Two stand-ins, for what cannot run here:

- prometheus-operator, which turns a PodMonitor into a scrape job: ``podmonitor_jobs`` writes the job its
  ``generatePodMonitorConfig`` writes (pkg/prometheus/promcfg.go, v0.93, the operator kube-prometheus-stack 88.5.3
  pins): the relabelings in its order, the sharding rules with ``$(SHARD)`` as its config-reloader fills it in. Only
  how targets are found differs: a file (``file_sd``) instead of the Kubernetes API, holding for each pod the
  ``__meta_kubernetes_*`` labels Kubernetes discovery gives a pod (``pod_targets``).
- the chart's own ServiceMonitor of Prometheus, whose ``up`` series KubeElasti's uptime check reads: ``self_job``
  gives it the labels the operator's relabelings give it there (``container``, ``namespace``, ``job``, ...).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import yaml

from .example import ROOT
from .local_pods import Cluster
from .servers import free_port

PROMETHEUS = Path(os.environ.get("PROMETHEUS_BIN") or ROOT / ".cache" / "prometheus" / "prometheus")
SHARD = "0"  # one Prometheus, one shard: what the config-reloader puts in for $(SHARD)


def sanitize(name: str) -> str:
    """prometheus-operator's sanitizeLabelName: what is not a letter, digit or '_' becomes '_'."""
    return "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)


def podmonitor_jobs(podmonitor: Dict[str, Any], targets_file: Path, interval: Optional[str] = None) -> List[Dict[str, Any]]:
    """The scrape jobs prometheus-operator generates for a PodMonitor, with file_sd in place of kubernetes_sd."""
    meta, spec = podmonitor["metadata"], podmonitor["spec"]
    jobs = []
    for index, endpoint in enumerate(spec["podMetricsEndpoints"]):
        relabel: List[Dict[str, Any]] = [
            {"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"},
            {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
        ]
        for key in sorted((spec.get("selector") or {}).get("matchLabels") or {}):
            value = spec["selector"]["matchLabels"][key]
            relabel.append(
                {
                    "action": "keep",
                    "source_labels": [f"__meta_kubernetes_pod_label_{sanitize(key)}", f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"],
                    "regex": f"({value});true",
                }
            )
        if endpoint.get("port"):
            relabel.append({"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_name"], "regex": endpoint["port"]})
        relabel += [
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ]
        for label in spec.get("podTargetLabels") or []:
            relabel.append(
                {"source_labels": [f"__meta_kubernetes_pod_label_{sanitize(label)}"], "target_label": sanitize(label), "regex": "(.+)", "replacement": "${1}"}
            )
        relabel.append({"target_label": "job", "replacement": f"{meta['namespace']}/{meta['name']}"})
        if endpoint.get("port"):
            relabel.append({"target_label": "endpoint", "replacement": endpoint["port"]})
        relabel += [
            {"target_label": "__tmp_current_shard", "replacement": SHARD, "action": "replace"},
            {"source_labels": ["__tmp_current_shard"], "regex": SHARD, "action": "keep"},
            {"source_labels": ["__address__", "__tmp_hash"], "target_label": "__tmp_hash", "regex": "(.+);", "replacement": "$1", "action": "replace"},
            {"source_labels": ["__tmp_hash"], "target_label": "__tmp_hash", "modulus": 1, "action": "hashmod"},
            {"source_labels": ["__tmp_hash", "__tmp_disable_sharding"], "regex": f"{SHARD};|.+;.+", "action": "keep"},
        ]
        job: Dict[str, Any] = {
            "job_name": f"podMonitor/{meta['namespace']}/{meta['name']}/{index}",
            "honor_labels": False,
            "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "1s"}],
            "scrape_interval": interval or endpoint.get("interval") or "30s",
            "metrics_path": endpoint.get("path") or "/metrics",
            "relabel_configs": relabel,
        }
        jobs.append(job)
    return jobs


def pod_targets(cluster: Cluster) -> List[Dict[str, Any]]:
    """What Kubernetes discovery (role pod) finds for every started Deployment or StatefulSet: a target per port."""
    found = []
    for started in cluster.started:
        workload = next((o for o in cluster.objects if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] == started.name), None)
        if workload is None:
            continue
        template = workload["spec"]["template"]
        labels: Dict[str, str] = {
            "__meta_kubernetes_namespace": workload["metadata"].get("namespace", ""),
            "__meta_kubernetes_pod_name": f"{started.name}-5d8f7c9b6-x7k2p",
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_ready": "true",
            "__meta_kubernetes_pod_ip": "127.0.0.1",
        }
        for key, value in (template["metadata"].get("labels") or {}).items():
            labels[f"__meta_kubernetes_pod_label_{sanitize(key)}"] = value
            labels[f"__meta_kubernetes_pod_labelpresent_{sanitize(key)}"] = "true"
        for key, value in (template["metadata"].get("annotations") or {}).items():
            labels[f"__meta_kubernetes_pod_annotation_{sanitize(key)}"] = value
            labels[f"__meta_kubernetes_pod_annotationpresent_{sanitize(key)}"] = "true"
        for container in template["spec"]["containers"]:
            for port in container.get("ports") or []:
                found.append(
                    {
                        "targets": [f"127.0.0.1:{started.ports[port['containerPort']]}"],
                        "labels": {
                            **labels,
                            "__meta_kubernetes_pod_container_name": container["name"],
                            "__meta_kubernetes_pod_container_port_name": port.get("name", ""),
                            "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
                            "__meta_kubernetes_pod_container_port_protocol": port.get("protocol", "TCP"),
                        },
                    }
                )
    return found


def self_job(port: int, namespace: str, release: str = "kube-prometheus-stack") -> Dict[str, Any]:
    """Prometheus scraping itself, with the labels the chart's self-monitoring ServiceMonitor gives its ``up``."""
    service = f"{release}-prometheus"
    return {
        "job_name": f"serviceMonitor/{namespace}/{service}/0",
        "static_configs": [
            {
                "targets": [f"127.0.0.1:{port}"],
                "labels": {
                    "job": service,
                    "namespace": namespace,
                    "service": service,
                    "pod": f"prometheus-{service}-0",
                    "container": "prometheus",
                    "endpoint": "http-web",
                },
            }
        ],
    }


@dataclass
class Prometheus:
    workdir: Path
    binary: Path = PROMETHEUS
    port: int = 0
    process: Optional[subprocess.Popen] = None
    started_at: float = 0.0
    jobs: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, jobs: Callable[[int], List[Dict[str, Any]]], interval: str = "1s") -> Prometheus:
        """Start on a free loopback port with the scrape jobs ``jobs(port)`` gives (its own job needs the port)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.jobs = jobs(self.port)
        # the global evaluation interval is also the resolution of KubeElasti's uptime subquery ([<cooldown>s:])
        config = {"global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval}, "scrape_configs": self.jobs}
        (self.workdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        argv = [
            str(self.binary),
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-lifecycle",
        ]
        log = open(self.workdir / "prometheus.log", "wb")  # noqa: SIM115 - the process writes it until stop()
        self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at = time.monotonic()
        self._wait(lambda: self._get("/-/ready") is not None, 30, "Prometheus did not get ready")
        return self

    def write_targets(self, path: Path, targets: List[Dict[str, Any]]) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(targets))
        os.replace(tmp, path)

    def query(self, promql: str) -> Optional[float]:
        """One instant query, as KubeElasti sends it (GET /api/v1/query); None when the result is empty."""
        body = self._get("/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert body is not None, f"Prometheus did not answer {promql}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        assert len(result) <= 1, f"{promql} gives {len(result)} series; KubeElasti wants one"
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, promql: str, condition, timeout: float, what: str) -> float:
        found: List[Optional[float]] = []

        def check() -> bool:
            value = self.query(promql)
            found.append(value)
            return value is not None and condition(value)

        self._wait(check, timeout, f"{what}: {promql} gave {found[-5:]}")
        return found[-1] or 0.0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def output(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    def _get(self, path: str) -> Optional[bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.read()
        except OSError:
            return None

    def _wait(self, condition, timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"Prometheus exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            if condition():
                return
            time.sleep(0.25)
        raise AssertionError(f"{message} (within {timeout} s)")
