#!/usr/bin/env python3
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Wall time of site.yml in render mode: the example inventory (first run, second run with nothing changed),
and catalogs of 5 to 100 models, to show how the time grows with the catalog; each beside Ansible's own floor, a
one-task playbook on the same inventory, run alternately with it (this machine is shared: ratios, not seconds, are
what compares across runs).

    .venv/bin/python benchmarks/render_speed.py [--sizes 5 25 50 100] [--repeat 3]

Prints a Markdown table (medians of --repeat runs) for the README.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.age import make_age_key  # noqa: E402
from tests.support.example import copy_example  # noqa: E402
from tests.support.playbook import install_collection, run_site  # noqa: E402


def catalog(size: int):
    """ "``size`` models spread over the example's GPU nodes: two llama.cpp models in three, the rest Ollama."""
    nodes = ["gpu-amd-01", "strix-01", "strix-02"]
    models = []
    for index in range(size):
        if index % 3 == 2:
            models.append({"name": f"ollama-model-{index}", "backend": "ollama", "source": f"ollama://model{index}:7b"})
        else:
            models.append(
                {
                    "name": f"model-{index}",
                    "backend": "llamacpp",
                    "source": f"hf://org/repo-{index}/model-{index}-Q4_K_M.gguf",
                    "node": nodes[index % len(nodes)],
                    "context": 8192,
                    "size": "4Gi",
                    "vram": "512Mi",
                    # one always-on model per node: the GPUs have one slot each
                    "scale_to_zero": index >= len(nodes),
                }
            )
    return models


FLOOR = ROOT / "benchmarks" / "one_task.yml"


def timed(collections, inventory, key, out, args=(), playbook="site.yml"):
    start = time.perf_counter()
    run = run_site(collections, inventory, age_key=key, extra_vars={"homelab_ai_render_dir": str(out)}, args=args, playbook=playbook)
    elapsed = time.perf_counter() - start
    if run.rc != 0:
        raise SystemExit(run.output[-6000:])
    return elapsed, run.recap["changed"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 25, 50, 100])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        collections = install_collection(base / "collection")
        key = base / "keys.txt"
        make_age_key(key)
        rows = []

        def measure(label, inventory):
            first, second, floor = [], [], []
            objects = 0
            for attempt in range(args.repeat):
                out = base / f"out-{label}-{attempt}"
                floor.append(timed(collections, inventory, key, out, playbook=str(FLOOR))[0])
                seconds, _changed = timed(collections, inventory, key, out)
                first.append(seconds)
                seconds, changed_again = timed(collections, inventory, key, out)
                second.append(seconds)
                floor.append(timed(collections, inventory, key, out, playbook=str(FLOOR))[0])
                assert changed_again == 0, f"{label}: second run changed {changed_again}"
                objects = sum(1 for p in (out / "homelab").rglob("*.yaml") if p.name != "kustomization.yaml" and not p.name.startswith("."))
            row = (label, objects, statistics.median(first), statistics.median(second), statistics.median(floor))
            rows.append(row)
            print(f"{label}: {objects} files, first {row[2]:.1f} s, second {row[3]:.1f} s, floor {row[4]:.2f} s", file=sys.stderr)

        measure("example inventory (5 models)", ROOT / "inventory" / "example")
        for size in args.sizes:
            inventory = copy_example(base / f"inventory-{size}")
            (inventory / "group_vars" / "all" / "models.yml").write_text(yaml.safe_dump({"homelab_ai_models": catalog(size)}, sort_keys=False))
            measure(f"{size} models", inventory)

    print(f"\nsite.yml, render mode, median of {args.repeat} runs on this machine ({os.cpu_count()} cores):\n")
    print("| inventory | files in the tree | first run | second run (nothing changed) | one-task floor | second run / floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, objects, first_s, second_s, floor_s in rows:
        print(f"| {label} | {objects} | {first_s:.1f} s | {second_s:.1f} s | {floor_s:.2f} s | {second_s / floor_s:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
