from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._scale_to_zero import elasti_trigger, query, uptime_query


def test_the_query_counts_requests_in_flight_and_tokens_of_one_model_only():
    text = query("ai", "llamacpp-qwen")
    selector = '{namespace="ai",app_kubernetes_io_instance="llamacpp-qwen"}'
    assert f"(sum(max_over_time(llamacpp:requests_processing{selector}[5m])) or vector(0))" in text
    assert f"(sum(rate(llamacpp:prompt_tokens_total{selector}[5m])) or vector(0))" in text
    assert f"(sum(rate(llamacpp:tokens_predicted_total{selector}[5m])) or vector(0))" in text
    assert "pod=~" not in text  # llamacpp-qwen-.* would also match llamacpp-qwen-embed's pods


def test_the_trigger_is_what_kubeelasti_parses():
    trigger = elasti_trigger("ai", "llamacpp-m", "http://prometheus-operated.monitoring.svc.cluster.local:9090/", 'container="prometheus"')
    assert trigger["type"] == "prometheus"
    meta = trigger["metadata"]
    assert meta["serverAddress"] == "http://prometheus-operated.monitoring.svc.cluster.local:9090"  # it appends /api/v1/query
    assert meta["threshold"] == "0.01" and isinstance(meta["threshold"], str)
    assert meta["uptimeFilter"] == 'container="prometheus"'
    assert set(meta) == {"query", "serverAddress", "threshold", "uptimeFilter"}


def test_the_uptime_query_is_kubeelastis():
    assert uptime_query('container="prometheus",namespace="monitoring"', 900) == (
        'min_over_time((max(up{container="prometheus",namespace="monitoring"}) or vector(0))[900s:])'
    )
