from __future__ import annotations

from ansible_collections.homelab.ai.plugins.module_utils._workloads import normalize_workloads

GIB = 2**30


def test_workload_problems_name_the_component() -> None:
    components = [
        {
            "name": "ollama",
            "gpu_workloads": [
                {"name": "ollama", "kind": "ollama", "node": "n", "gpu": "n/gpu0", "vram": "16Gi", "models": ["a"]},
                {"name": "x", "kind": "training", "node": "n", "gpu": "n/gpu0"},
                {"name": "y", "kind": "other", "node": "n"},
                {"name": "z", "kind": "other", "node": "n", "gpu": "n/gpu0", "vram": "12 GB", "colour": "red"},
                "nope",
            ],
        }
    ]
    workloads, problems = normalize_workloads(components)
    assert [(w.name, w.vram) for w in workloads] == [("ollama", 16 * GIB)]
    text = [str(p) for p in problems]
    assert text[0].startswith("component ollama.gpu_workloads[1].kind: 'training' is not a workload kind")
    assert text[1].startswith("component ollama.gpu_workloads[2]: is missing gpu")
    assert "unknown keys ['colour']" in text[2]
    assert text[3].startswith("component ollama.gpu_workloads[3].vram: '12 GB' is not a Kubernetes quantity")
    assert "is not a mapping" in text[4]
