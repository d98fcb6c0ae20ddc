# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Scale to zero with KubeElasti: what Prometheus must scrape and what the ElastiService asks it.

KubeElasti (v0.1.24, operator/internal/scaling/scalers/prometheus_scaler.go) polls the trigger's ``query`` every 30 s
and scales the Deployment to zero when the single value it returns stays below ``threshold`` for ``cooldownPeriod``
seconds. Before it scales down it asks whether Prometheus itself was up all that time:
``min_over_time((max(up{<uptimeFilter>}) or vector(0))[<cooldown>s:])`` must be exactly 1, else it never scales down.

While a model serves, its requests bypass KubeElasti, so Prometheus is the only witness of activity: the query counts
the requests llama-server is processing (a long generation finishes no tokens until it ends) besides the prompt and
generated tokens of the last minutes. The counters reach Prometheus through a PodMonitor, which copies the pod label
``app.kubernetes.io/instance`` onto every series, so one model's query never reads another's.
"""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["INSTANCE_LABEL", "METRICS", "WINDOW", "elasti_trigger", "query", "uptime_query"]

INSTANCE_LABEL = "app.kubernetes.io/instance"
# llama-server --metrics: a gauge of requests in flight, counters of tokens read and written
METRICS = ("llamacpp:requests_processing", "llamacpp:prompt_tokens_total", "llamacpp:tokens_predicted_total")
WINDOW = "5m"


def _target_label(label: str) -> str:
    """The name prometheus-operator gives a pod label it copies (podTargetLabels): non-alphanumerics become '_'."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in label)


def query(namespace: str, instance: str) -> str:
    """Activity of one llama.cpp server: above zero while it works or worked within the last minutes."""
    selector = f'{{namespace="{namespace}",{_target_label(INSTANCE_LABEL)}="{instance}"}}'
    processing, prompt, predicted = METRICS
    # every term answers 0 without series (pods gone, or not scraped yet): A + B is empty when one side is
    return (
        f"(sum(max_over_time({processing}{selector}[{WINDOW}])) or vector(0))"
        f" + (sum(rate({prompt}{selector}[{WINDOW}])) or vector(0))"
        f" + (sum(rate({predicted}{selector}[{WINDOW}])) or vector(0))"
    )


def uptime_query(uptime_filter: str, cooldown: int) -> str:
    """The query KubeElasti sends before it scales down (its own code, filled in)."""
    return f"min_over_time((max(up{{{uptime_filter}}}) or vector(0))[{int(cooldown)}s:])"


def elasti_trigger(namespace: str, instance: str, server_address: str, uptime_filter: str) -> Dict[str, Any]:
    """The ``prometheus`` trigger of an ElastiService for one llama.cpp server."""
    return {
        "type": "prometheus",
        "metadata": {
            "query": query(namespace, instance),
            "serverAddress": server_address.rstrip("/"),
            # KubeElasti reads it as a JSON string (json:"threshold,string"): a bare number fails
            "threshold": "0.01",
            "uptimeFilter": uptime_filter,
        },
    }
