"""Apply mode checks the way to the cluster first, and contacts only the nodes whose GPUs it must read.

site.yml in apply mode with a kubeconfig that is missing, names an unknown context or a server that refuses the
connection stops in its first play, with the message of homelab.ai.kube_access: before any node is contacted and
before anything is rendered or written. With a good kubeconfig the run goes on (tests/integration/test_apply.py applies
against the stand-in API server). Nodes that declare homelab_ai_gpus are not contacted unless homelab_ai_verify_gpus
asks for it.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils._gpu_facts import gather_gpu_facts
from tests.support.example import ROOT, copy_example
from tests.support.fake_kube import FakeKube
from tests.support.playbook import Run, run_site
from tests.support.servers import free_port

INVENTORY = ROOT / "extensions" / "molecule" / "apply_kind" / "inventory"
NODE = "homelab-ai-molecule-control-plane"
LATER_PLAYS = ("PLAY [Prepare the nodes", "PLAY [Find the GPUs of the nodes]", "PLAY [Render or apply the homelab.ai stack]")


def apply(collections: Path, age_key: Path, tmp_path: Path, kubeconfig: Path, inventory: Path = INVENTORY, args=(), **extra: Any) -> Run:
    return run_site(
        collections,
        inventory,
        age_key=age_key,
        extra_vars={"homelab_ai_render_dir": str(tmp_path / "state"), "homelab_ai_kubeconfig": str(kubeconfig), "homelab_ai_mode": "apply", **extra},
        args=args,
    )


def said(run: Run) -> str:
    """The output with the YAML callback's line folding undone."""
    return " ".join(run.output.split())


def recap(run: Run) -> Dict[str, Dict[str, int]]:
    lines = run.output.rsplit("PLAY RECAP", 1)[-1].splitlines()
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))} for m in (re.match(r"(\S+)\s*:\s*(.*)", line) for line in lines) if m}


def assert_stopped_first(run: Run, tmp_path: Path) -> None:
    assert run.rc != 0, run.output[-3000:]
    assert "PLAY [Check the way to the cluster (apply mode)]" in run.output
    assert not [play for play in LATER_PLAYS if play in run.output], run.output[-3000:]  # no node task, no preflight, no render
    assert "UNREACHABLE" not in run.output
    assert list(recap(run)) == ["localhost"]  # no node host took part
    assert not (tmp_path / "state").exists()  # no tree, no secret file


def test_a_missing_kubeconfig_stops_the_run_before_anything_else(collections, age_key, tmp_path):
    missing = tmp_path / "kubeconfig"
    run = apply(collections, age_key, tmp_path, missing, homelab_ai_kube_distribution="k3s")
    assert_stopped_first(run, tmp_path)
    assert (
        f"homelab_ai_kubeconfig: {missing} does not exist. Fix: on the k3s server, set homelab_ai_kubeconfig: /etc/rancher/k3s/k3s.yaml (readable by root only)"
    ) in said(run)
    assert "Invalid kube-config" not in run.output


def test_an_unknown_context_stops_the_run_and_lists_the_known_ones(collections, age_key, tmp_path):
    with FakeKube(nodes=[NODE]) as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        run = apply(collections, age_key, tmp_path, kubeconfig, homelab_ai_kube_context="homelab")
        assert [o["metadata"]["name"] for o in kube.objects()] == [NODE]  # nothing applied
    assert_stopped_first(run, tmp_path)
    assert f"is not a context of {kubeconfig}; it has fake. Fix: set homelab_ai_kube_context to one of them" in said(run)


def test_a_server_that_refuses_the_connection_stops_the_run(collections, age_key, tmp_path):
    port = free_port()  # nothing listens there
    with FakeKube() as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig().replace(kube.url, f"http://127.0.0.1:{port}"))
    run = apply(collections, age_key, tmp_path, kubeconfig)
    assert_stopped_first(run, tmp_path)
    assert f"context fake of {kubeconfig}: server http://127.0.0.1:{port}: refused the connection. Fix: check that the API server runs" in said(run)


def example_on_loopback(tmp_path: Path) -> Path:
    """The example inventory with every node at a closed port of this machine: a connection attempt fails at once, here."""
    inventory = copy_example(tmp_path / "inventory")
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    for node in hosts["all"]["children"]["homelab_ai_nodes"]["hosts"].values():
        node.update(ansible_host="127.0.0.1", ansible_port=9)
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    return inventory


def test_apply_mode_contacts_no_node_that_declares_its_gpus(collections, age_key, tmp_path):
    inventory = example_on_loopback(tmp_path)
    nodes = ["gpu-nvidia-01", "gpu-amd-01", "strix-01", "strix-02", "media-01"]
    with FakeKube(nodes=nodes) as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        # up to the preflight and the VRAM plan: the example's Helm charts cannot be had here
        run = apply(collections, age_key, tmp_path, kubeconfig, inventory=inventory, args=["--tags", "gpu_facts"])
        assert run.rc == 0, run.output[-3000:]
        gpu_task = run.output.split("TASK [Read the GPUs from sysfs and nvidia-smi]", 1)[1].split("PLAY [", 1)[0]
        assert sorted(re.findall(r"skipping: \[(.+?)\]", gpu_task)) == sorted(nodes)
        assert "UNREACHABLE" not in run.output
        assert all(recap(run)[node]["ignored"] == 0 and recap(run)[node]["unreachable"] == 0 for node in nodes)

        # the counterpart: asked to verify, every node is tried (and, at a closed port, found unreachable)
        verify = apply(collections, age_key, tmp_path, kubeconfig, inventory=inventory, args=["--tags", "gpu_facts"], homelab_ai_verify_gpus=True)
    assert verify.rc == 0, verify.output[-3000:]
    assert sorted(re.findall(r"fatal: \[(.+?)\]: UNREACHABLE", verify.output)) == sorted(nodes)


def test_verifying_declared_gpus_compares_them_with_the_node(collections, age_key, tmp_path):
    """A node reached (here: this machine, which has no GPU) that declares an NVIDIA GPU fails the preflight when verified."""
    if gather_gpu_facts()["gpus"]:
        pytest.skip("this machine has a GPU: it would not contradict the declaration")
    inventory = tmp_path / "inventory"
    shutil.copytree(INVENTORY, inventory)
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    hosts["all"]["children"]["homelab_ai_nodes"]["hosts"][NODE] = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "homelab_ai_gpus": [{"vendor": "nvidia", "model": "RTX 4000 SFF", "memory": "20Gi"}],
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    with FakeKube(nodes=[NODE]) as kube:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kube.kubeconfig())
        trusted = apply(collections, age_key, tmp_path, kubeconfig, inventory=inventory, args=["--tags", "gpu_facts"])
        verified = apply(collections, age_key, tmp_path, kubeconfig, inventory=inventory, args=["--tags", "gpu_facts"], homelab_ai_verify_gpus=True)
    assert trusted.rc == 0, trusted.output[-3000:]
    assert verified.rc != 0
    assert f"{NODE}: homelab_ai_gpus: declares 1 nvidia GPU(s), but the node has 0 (none)" in said(verified)


def test_a_run_whose_node_bootstrap_installs_k3s_checks_after_the_nodes(collections, age_key, tmp_path):
    """Such a run may be making the cluster: the first check waits (here the node preflight stops the run before SSH)."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    node = {"ansible_host": "127.0.0.1", "ansible_port": 9, "node_bootstrap_enabled": True, "node_bootstrap_k3s_join": True}
    hosts = {
        "all": {
            "children": {"homelab_ai_nodes": {"hosts": {"k3s-01": node}}, "server": {"hosts": {"k3s-01": {}}}},
            "hosts": {"localhost": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        }
    }
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    run = apply(collections, age_key, tmp_path, tmp_path / "kubeconfig", inventory=inventory, node_bootstrap_k3s_token="not-a-real-token")
    assert run.rc != 0
    first_check = run.output.split("PLAY [Prepare the nodes", 1)[0]
    assert "skipping: [localhost]" in first_check and "homelab_ai_kubeconfig:" not in run.output
    assert "k3s-01: ansible_user: is not set" in said(run)
    assert "UNREACHABLE" not in run.output
