"""Homelabs unlike the example, as a newcomer writes them from the README (tests/fixtures/newcomers/): each renders
with no warning a newcomer cannot act on, into a tree the checks accept, and a second run changes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.example import EXAMPLE, ROOT
from tests.support.playbook import run_site
from tests.support.tree_checks import check_tree, load_objects

NEWCOMERS = ROOT / "tests" / "fixtures" / "newcomers"


def _without_nvidia(dest: Path) -> Path:
    """The example less its NVIDIA node, as its owner would change it: Stable Diffusion off, Ollama on any node's CPU."""
    shutil.copytree(EXAMPLE, dest)
    hosts = yaml.safe_load((dest / "hosts.yml").read_text())
    del hosts["all"]["children"]["homelab_ai_nodes"]["hosts"]["gpu-nvidia-01"]
    (dest / "hosts.yml").write_text(yaml.safe_dump(hosts))
    (dest / "host_vars" / "gpu-nvidia-01.yml").unlink()
    services = yaml.safe_load((dest / "group_vars" / "all" / "services.yml").read_text())
    services = {k: v for k, v in services.items() if not k.startswith("stable_diffusion") and k != "ollama_node"}
    (dest / "group_vars" / "all" / "services.yml").write_text(yaml.safe_dump({**services, "stable_diffusion_enabled": False}))
    return dest


def _inventory(name: str, dest: Path) -> Path:
    if name == "example-without-nvidia":
        return _without_nvidia(dest)
    shutil.copytree(NEWCOMERS / name, dest)
    return dest


@pytest.mark.parametrize("name", ["ollama-3090", "all-amd", "cpu-only", "example-without-nvidia"])
def test_a_newcomers_homelab_renders_cleanly_and_a_second_run_changes_nothing(name, collections, age_key, tmp_path):
    inventory = _inventory(name, tmp_path / "inventory")
    out = tmp_path / "out"
    first = run_site(collections, inventory, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert first.rc == 0, first.output[-3000:]
    assert "[WARNING]" not in first.output, first.output[-3000:]
    (tree,) = [p for p in out.iterdir() if p.is_dir()]
    assert check_tree(tree, str(age_key)) == []
    objects = [obj for _, obj in load_objects(tree)]
    if name == "ollama-3090":  # Longhorn off: nothing of it in the tree, the volumes on local-path
        assert not [o for o in objects if "longhorn" in str(o).lower()]
        assert {o["spec"]["storageClassName"] for o in objects if o["kind"] == "PersistentVolumeClaim"} == {"local-path"}
    if name == "cpu-only":  # the explicit CPU choice: Ollama on mini-2, no GPU asked for
        (ollama,) = [o for o in objects if o["kind"] == "StatefulSet" and o["metadata"]["name"] == "ollama"]
        pod = ollama["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == {"kubernetes.io/hostname": "mini-2"}
        assert not [k for k in pod["containers"][0]["resources"]["limits"] if "gpu" in k]
    before = {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()}
    second = run_site(collections, inventory, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert second.rc == 0 and second.recap["changed"] == 0, second.output[-3000:]
    assert {p: p.read_bytes() for p in tree.rglob("*") if p.is_file()} == before
