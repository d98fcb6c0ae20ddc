# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.homelab.ai.plugins.filter.core import FilterModule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "module_utils"))
from test__vram_plan import example_inventory

FILTERS = FilterModule().filters()


def test_gpu_filters() -> None:
    inv = example_inventory()
    rules = FILTERS["node_feature_rules"](inv)
    assert {r["metadata"]["name"] for r in rules} == {f"homelab-ai-node-{n}" for n in ("gpu-nvidia-01", "gpu-amd-01", "strix-01", "strix-02", "media-01")}
    configmap = FILTERS["nvidia_device_plugin_configmap"](inv, "kube-system")
    assert sorted(configmap["data"]) == ["default", "gpu-nvidia-01"]
    assert FILTERS["intel_plugin_groups"](inv)[0]["shared_dev_num"] == 2


def test_errors_name_the_filter() -> None:
    with pytest.raises(AnsibleFilterError, match=r"homelab.ai.node_feature_rules: 'nodes'"):
        FILTERS["node_feature_rules"]({})


def test_every_filter_is_documented_and_every_document_is_a_filter() -> None:
    from ansible_collections.homelab.ai.plugins.filter.node_bootstrap import FilterModule as NodeFilters

    names = set(FILTERS) | set(NodeFilters().filters())
    docs = {path.stem for path in (Path(__file__).resolve().parents[4] / "plugins" / "filter").glob("*.yml")}
    assert names == docs
