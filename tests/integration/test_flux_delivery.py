"""The tree as Flux receives it: layers in an order that works on a fresh cluster, and nothing lost between runs.

Flux's order is checked with the real kustomize (``kubectl kustomize``, the binary from requirements/kube-tools.lock)
against which chart installs which CRD (tests/fixtures/crds/providers.yaml). The runs below change the inventory the
way a person does (a tag, a node gone, a component off) and check what stays.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.example import EXAMPLE, copy_example
from tests.support.flux_order import KUBECTL, layers, order_problems
from tests.support.playbook import run_site
from tests.support.tree_checks import decrypt_secrets, kustomization_problems, load_objects, schema_problems


@pytest.fixture(scope="module")
def kubectl():
    if not Path(KUBECTL).exists():
        if os.environ.get("KUBECTL"):
            pytest.fail(f"KUBECTL={KUBECTL} does not exist: `make .cache/kube-tools/.stamp` installs it")
        pytest.skip(f"no kubectl at {KUBECTL}: `make integration` installs it from requirements/kube-tools.lock")
    return KUBECTL


def snapshot(tree: Path):
    return {str(p.relative_to(tree)): p.read_bytes() for p in tree.rglob("*") if p.is_file()}


def test_each_layer_builds_with_real_kustomize_and_every_custom_resource_finds_its_crd_in_time(rendered, kubectl):
    tree, _ = rendered
    found = layers(tree)
    assert [layer.name for layer in found] == ["homelab-apps", "homelab-infrastructure"]
    assert order_problems(found) == []
    infrastructure, apps = found[1], found[0]
    assert infrastructure.spec["wait"] is True and apps.spec["dependsOn"] == [{"name": "homelab-infrastructure"}]
    assert infrastructure.charts == {"longhorn", "nvidia-device-plugin", "node-feature-discovery", "elasti", "kube-prometheus-stack"}
    assert {o["kind"] for o in apps.objects} >= {"ElastiService", "PodMonitor", "NodeFeatureRule", "Deployment", "Secret"}
    # the Flux Kustomizations themselves validate against Flux's CRD
    flux = [(str(p), yaml.safe_load(p.read_text())) for p in (tree / "flux").glob("*.yaml")]
    assert schema_problems(flux) == ([], [])


def _move(tree: Path, source: str, target_dir: str) -> None:
    """Move one object file into another directory of the tree, keeping both kustomizations true."""
    src = tree / source
    for directory, change in ((src.parent, "remove"), (tree / target_dir, "append")):
        kustomization = directory / "kustomization.yaml"
        doc = yaml.safe_load(kustomization.read_text())
        getattr(doc["resources"], change)(src.name)
        kustomization.write_text(yaml.safe_dump(doc))
    shutil.move(str(src), str(tree / target_dir / src.name))


def test_a_mis_layered_tree_fails_the_order_check(rendered, kubectl, tmp_path):
    tree, _ = rendered
    copy = tmp_path / "homelab"
    shutil.copytree(tree, copy)
    _move(copy, "apps/llamacpp/elastiservice-llamacpp-qwen3-30b-a3b.yaml", "infrastructure/llamacpp")
    assert kustomization_problems(copy) == []
    assert order_problems(layers(copy)) == [
        "homelab-infrastructure: ElastiService llamacpp-qwen3-30b-a3b: its CRD comes from chart elasti, "
        "a HelmRelease of the same Kustomization (Flux's dry run refuses it)"
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda infra, apps: apps["spec"].pop("dependsOn"), "which no Kustomization it depends on installs"),
        (lambda infra, apps: infra["spec"].update(wait=False), "whose Kustomization does not wait (wait: true) for it"),
    ],
    ids=["no dependsOn", "no wait"],
)
def test_the_apps_need_a_waited_for_infrastructure(rendered, kubectl, tmp_path, change, problem):
    tree, _ = rendered
    copy = tmp_path / "homelab"
    shutil.copytree(tree, copy)
    infra_file, apps_file = copy / "flux" / "infrastructure.yaml", copy / "flux" / "apps.yaml"
    infra, apps = yaml.safe_load(infra_file.read_text()), yaml.safe_load(apps_file.read_text())
    change(infra, apps)
    infra_file.write_text(yaml.safe_dump(infra))
    apps_file.write_text(yaml.safe_dump(apps))
    problems = order_problems(layers(copy))
    assert problems and all(problem in p for p in problems)
    assert any("ElastiService llamacpp-qwen3-30b-a3b" in p for p in problems)


def test_the_tree_says_how_to_hand_it_to_flux(rendered):
    tree, run = rendered
    readme = (tree / "README.md").read_text()
    assert "flux bootstrap git --url=ssh://git@example/homelab.git --branch=main --path=./homelab/flux" in readme
    assert "kubectl -n flux-system create secret generic sops-age --from-file=age.agekey=" in readme
    assert "kubectl apply -f flux/" in readme
    assert "Flux: point it once at ./homelab/flux in the Git repository" in run.output


def test_volumes_and_namespaces_are_never_pruned_by_flux(rendered):
    tree, _ = rendered
    objects = [obj for _, obj in load_objects(tree)]
    keep = {"kustomize.toolkit.fluxcd.io/prune": "disabled"}
    data = [o for o in objects if o["kind"] in ("PersistentVolumeClaim", "Namespace")]
    assert len(data) >= 10
    assert [o["metadata"]["name"] for o in data if not keep.items() <= (o["metadata"].get("annotations") or {}).items()] == []
    (longhorn,) = [o for o in objects if o["kind"] == "HelmRelease" and o["metadata"]["name"] == "longhorn"]
    assert longhorn["metadata"]["annotations"] == keep  # uninstalling Longhorn takes the volumes with it
    assert [o["metadata"]["name"] for o in objects if o["kind"] == "HelmRelease" and o["metadata"].get("annotations")] == ["longhorn"]


@pytest.fixture(scope="module")
def lived(collections, age_key, tmp_path_factory):
    """A tree rendered once, then run over as a person does; each test looks at one step."""
    base = tmp_path_factory.mktemp("lived")
    out = base / "out"
    first = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert first.rc == 0, first.output[-3000:]
    return base, out / "homelab"


@pytest.mark.parametrize("args", [["--skip-tags", "stable_diffusion"], ["--tags", "render"], ["--tags", "llamacpp"]], ids=" ".join)
def test_a_run_limited_by_tags_removes_nothing(lived, collections, age_key, args):
    _, tree = lived
    before = snapshot(tree)
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(tree.parent)}, args=args)
    assert run.rc == 0 and run.recap["changed"] == 0, run.output[-3000:]
    assert snapshot(tree) == before


def test_a_node_that_leaves_the_inventory_loses_its_labels_and_no_node_is_deleted(lived, collections, age_key, tmp_path):
    _, tree = lived
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy / "homelab")
    inventory = copy_example(tmp_path / "inventory")
    hosts = yaml.safe_load((inventory / "hosts.yml").read_text())
    del hosts["all"]["children"]["homelab_ai_nodes"]["hosts"]["strix-02"]
    (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
    models = yaml.safe_load((inventory / "group_vars" / "all" / "models.yml").read_text())
    models["homelab_ai_models"] = [m for m in models["homelab_ai_models"] if m.get("node") != "strix-02"]
    (inventory / "group_vars" / "all" / "models.yml").write_text(yaml.safe_dump(models))
    run = run_site(collections, inventory, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(copy)})
    assert run.rc == 0, run.output[-3000:]
    after = copy / "homelab"
    rules = sorted(p.name for p in (after / "apps" / "gpu-plugins").glob("nodefeaturerule-*.yaml"))
    assert "nodefeaturerule-homelab-ai-node-strix-02.yaml" not in rules and len(rules) == 4
    assert [obj for _, obj in load_objects(after) if obj["kind"] == "Node"] == []
    # the model that ran there goes; its downloaded weights stay in the cluster
    assert "kept in the cluster: PersistentVolumeClaim ai/llamacpp-llama-3-3-70b-cache left the tree" in run.output
    assert kustomization_problems(after) == []


def test_a_component_turned_off_keeps_its_volume_and_its_secret_and_gets_them_back(lived, collections, age_key, tmp_path):
    _, tree = lived
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy / "homelab")
    after = copy / "homelab"
    secret = "apps/stable-diffusion/secret-stable-diffusion.sops.yaml"
    password = dict(decrypt_secrets(after, str(age_key)))[secret]["stringData"]["password"]
    off = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(copy), "stable_diffusion_enabled": False})
    assert off.rc == 0, off.output[-3000:]
    assert not (after / "apps" / "stable-diffusion" / "deployment-stable-diffusion.yaml").exists()
    assert "kept in the cluster: PersistentVolumeClaim ai/sd-data left the tree" in off.output
    assert f"kept: {secret} is no longer used" in off.output
    assert (after / secret).exists() and kustomization_problems(after) == []
    back = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(copy)})
    assert back.rc == 0, back.output[-3000:]
    assert dict(decrypt_secrets(after, str(age_key)))[secret]["stringData"]["password"] == password
    # only an explicit request removes a secret file
    asked = run_site(
        collections,
        EXAMPLE,
        age_key=age_key,
        extra_vars={"homelab_ai_render_dir": str(copy), "stable_diffusion_enabled": False, "homelab_ai_prune_data": True},
    )
    assert asked.rc == 0 and not (after / secret).exists(), asked.output[-3000:]


def test_a_tree_of_the_earlier_layout_moves_its_secrets_unchanged(lived, collections, age_key, tmp_path):
    _, tree = lived
    copy = tmp_path / "tree"
    shutil.copytree(tree, copy / "homelab")
    old = copy / "homelab"
    # the layout before layers: one directory per component at the top, secrets inside, a root kustomization
    (old / "litellm").mkdir()
    encrypted = (old / "apps" / "litellm" / "secret-litellm.sops.yaml").read_bytes()
    shutil.move(str(old / "apps" / "litellm" / "secret-litellm.sops.yaml"), str(old / "litellm" / "secret-litellm.sops.yaml"))
    header = "# Generated by homelab.ai from the inventory: edit the inventory, not this file.\n"
    (old / "litellm" / "kustomization.yaml").write_text(header + "resources: [secret-litellm.sops.yaml]\n")
    (old / "kustomization.yaml").write_text(header + "resources: [litellm]\n")
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(copy)})
    assert run.rc == 0, run.output[-3000:]
    assert (old / "apps" / "litellm" / "secret-litellm.sops.yaml").read_bytes() == encrypted  # the very file, moved
    assert not (old / "litellm").exists() and not (old / "kustomization.yaml").exists()
    assert kustomization_problems(old) == []


def _more_models(count: int):
    models = yaml.safe_load((EXAMPLE / "group_vars" / "all" / "models.yml").read_text())["homelab_ai_models"]
    extra = [
        # they take turns for strix-01's one slot (the VRAM plan refuses more always-on models than slots)
        {
            "name": f"extra-{i:02d}",
            "backend": "llamacpp",
            "source": f"hf://org/extra-GGUF/extra-{i:02d}.gguf",
            "node": "strix-01",
            "size": "100Mi",
            "scale_to_zero": True,
        }
        for i in range(count)
    ]
    return models + extra


def test_a_run_killed_while_it_writes_the_tree_leaves_a_whole_one_and_the_next_run_completes(collections, age_key, tmp_path):
    out = tmp_path / "out"
    first = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert first.rc == 0, first.output[-3000:]
    tree = out / "homelab"
    old = snapshot(tree)
    bigger = {"homelab_ai_render_dir": str(out), "homelab_ai_models": _more_models(40)}
    killed = None
    for _attempt in range(5):
        proc = run_site(collections, EXAMPLE, age_key=age_key, extra_vars=bigger, background=True)
        # SIGKILL to the whole process group (the tree is written in a worker process) while the new tree is half built
        killed = _kill_when(proc, lambda: any(name.startswith(".homelab-ai-homelab.new.") for name in os.listdir(out)))
        if killed:
            break
    assert killed, "no run was caught while it wrote the tree"
    after_kill = snapshot(tree)
    assert kustomization_problems(tree) == []
    done = run_site(collections, EXAMPLE, age_key=age_key, extra_vars=bigger)
    assert done.rc == 0, done.output[-3000:]
    assert os.listdir(out) == ["homelab"]  # what the killed run left beside the tree is gone
    new = snapshot(tree)
    assert after_kill in (old, new)  # the old tree or the new one, never a mix
    assert [p for p in new if "/.homelab-ai-" in p or p.startswith(".homelab-ai-")] == []


def _kill_when(proc, condition) -> bool:
    import signal
    import time

    try:
        while proc.poll() is None:
            if condition():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.0005)
        return False
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (root only): room for the example tree, not for a much bigger one beside it."""
    import subprocess

    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


def test_a_full_disk_leaves_the_old_tree_says_so_and_the_next_run_completes(collections, age_key, small_disk):
    import subprocess

    first = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(small_disk)})
    assert first.rc == 0, first.output[-3000:]
    tree = small_disk / "homelab"
    old = snapshot(tree)
    bigger = {"homelab_ai_render_dir": str(small_disk), "homelab_ai_models": _more_models(40)}
    full = run_site(collections, EXAMPLE, age_key=age_key, extra_vars=bigger)
    assert full.rc != 0
    assert f"could not write the new tree beside {tree} (the disk is full); the tree there is unchanged" in full.output
    assert snapshot(tree) == old and os.listdir(small_disk) == ["homelab"]
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    done = run_site(collections, EXAMPLE, age_key=age_key, extra_vars=bigger)
    assert done.rc == 0, done.output[-3000:]
    assert (tree / "apps" / "llamacpp" / "deployment-llamacpp-extra-39.yaml").exists()
    assert kustomization_problems(tree) == [] and os.listdir(small_disk) == ["homelab"]
