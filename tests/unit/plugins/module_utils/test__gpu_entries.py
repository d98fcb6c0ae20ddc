# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._gpu_entries import gpu_entry


def test_one_parser_strict_for_the_inventory_lenient_for_the_node_bootstrap():
    detected = {"vendor": "intel", "model": "Arc", "memory": None, "driver": "i915", "pci_addresses": ["0000:03:00.0"]}
    problems: list = []
    assert gpu_entry("h", detected, problems, strict=False) == {"vendor": "intel", "model": "Arc", "memory": None, "count": 1, "apu": False}
    assert problems == []
    assert gpu_entry("h", detected, problems) is not None
    assert sorted(p.where for p in problems) == ["h.driver", "h.memory", "h.pci_addresses"]


def test_every_field_is_read_under_the_same_rules():
    for strict in (True, False):
        problems: list = []
        entry = gpu_entry("h", {"vendor": "amd", "memory": "96Gi", "count": "2", "apu": True}, problems, strict=strict)
        assert entry == {"vendor": "amd", "model": "amd", "memory": 96 * 2**30, "count": 2, "apu": True} and problems == []
        gpu_entry("h", {"vendor": "amd", "memory": "lots", "count": 0, "apu": "yes"}, problems, strict=strict)
        assert [p.where for p in problems] == ["h.apu", "h.memory", "h.count"]
        assert gpu_entry("h", {"vendor": "amdgpu"}, problems, strict=strict) is None and "did you mean amd?" in str(problems[-1])
