from __future__ import annotations

import errno
import os

import pytest
import yaml

from ansible_collections.homelab.ai.plugins.module_utils import _tree
from ansible_collections.homelab.ai.plugins.module_utils._components import normalize_component
from ansible_collections.homelab.ai.plugins.module_utils._tree import HEADER, TreeError, contents_of, layout, render_files, secret_path, sync_tree

AGE = "age1cx5crtrxtzwq8j383v7u3zkdmspc3my6yayylrd2t5zslkurs33svafqlw"
FLUX = {"cluster": "homelab", "flux_path": "./homelab", "flux_source": "flux-system"}
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ai"}}


def components():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "qdrant"}, "spec": {"ports": [{"port": 6333}]}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "qdrant-data"}, "spec": {}}
    elasti = {"apiVersion": "elasti.truefoundry.com/v1alpha1", "kind": "ElastiService", "metadata": {"name": "m"}, "spec": {}}
    chart = {
        "name": "elasti",
        "namespace": "elasti",
        "repo_name": "kubeelasti",
        "repo_url": "oci://charts.example",
        "chart": "elasti",
        "version": "0.1.24",
        "provides": ["elasti.truefoundry.com"],
    }
    longhorn = {
        "name": "longhorn",
        "namespace": "longhorn-system",
        "repo_name": "longhorn",
        "repo_url": "https://charts.example",
        "chart": "longhorn",
        "version": "1",
    }
    return [
        normalize_component({"name": "longhorn", "layer": "infrastructure", "helm": [longhorn]}, "ai"),
        normalize_component({"name": "llamacpp", "objects": [elasti], "helm": [chart]}, "ai"),
        normalize_component({"name": "qdrant", "objects": [svc, pvc], "secrets": [{"name": "qdrant", "keys": {"api-key": {}}}]}, "ai"),
    ]


def files():
    return render_files(components(), [NAMESPACE], age_recipients=[AGE], **FLUX)


def test_the_tree_has_layers_each_applied_by_a_flux_kustomization():
    rendered = files()
    assert sorted(rendered) == [
        ".sops.yaml",
        "apps/kustomization.yaml",
        "apps/llamacpp/elastiservice-m.yaml",
        "apps/llamacpp/kustomization.yaml",
        "apps/qdrant/kustomization.yaml",
        "apps/qdrant/persistentvolumeclaim-qdrant-data.yaml",
        "apps/qdrant/service-qdrant.yaml",
        "flux/apps.yaml",
        "flux/infrastructure.yaml",
        "infrastructure/kustomization.yaml",
        "infrastructure/llamacpp/helmrelease-elasti.yaml",
        "infrastructure/llamacpp/helmrepository-kubeelasti.yaml",
        "infrastructure/llamacpp/kustomization.yaml",
        "infrastructure/longhorn/helmrelease-longhorn.yaml",
        "infrastructure/longhorn/helmrepository-longhorn.yaml",
        "infrastructure/longhorn/kustomization.yaml",
        "infrastructure/namespaces/kustomization.yaml",
        "infrastructure/namespaces/namespace-ai.yaml",
    ]
    assert yaml.safe_load(rendered["infrastructure/kustomization.yaml"])["resources"] == ["namespaces", "longhorn", "llamacpp"]
    assert yaml.safe_load(rendered["apps/kustomization.yaml"])["resources"] == ["llamacpp", "qdrant"]
    assert yaml.safe_load(rendered["apps/qdrant/kustomization.yaml"])["resources"] == [
        "service-qdrant.yaml",
        "persistentvolumeclaim-qdrant-data.yaml",
        "secret-qdrant.sops.yaml",
    ]
    infra, apps = yaml.safe_load(rendered["flux/infrastructure.yaml"]), yaml.safe_load(rendered["flux/apps.yaml"])
    assert (infra["spec"]["path"], infra["spec"]["wait"], "decryption" in infra["spec"]) == ("./homelab/infrastructure", True, False)
    assert (apps["spec"]["path"], apps["spec"]["dependsOn"], "decryption" in apps["spec"]) == ("./homelab/apps", [{"name": "homelab-infrastructure"}], True)
    rule = yaml.safe_load(rendered[".sops.yaml"])["creation_rules"][0]
    assert rule == {"path_regex": r".*\.sops\.yaml$", "encrypted_regex": "^(data|stringData)$", "age": AGE}
    assert all(text.startswith(HEADER) for text in rendered.values())
    assert secret_path(components()[2], "qdrant") == "apps/qdrant/secret-qdrant.sops.yaml"


def test_contents_per_directory():
    assert contents_of(components(), [NAMESPACE]) == {
        "infrastructure/namespaces": {"Namespace": 1},
        "infrastructure/longhorn": {"HelmRepository": 1, "HelmRelease": 1},
        "infrastructure/llamacpp": {"HelmRepository": 1, "HelmRelease": 1},
        "apps/llamacpp": {"ElastiService": 1},
        "apps/qdrant": {"Service": 1, "PersistentVolumeClaim": 1, "Secret (SOPS)": 1},
    }


def test_one_helm_repository_for_charts_of_one_repository():
    chart = {"namespace": "monitoring", "repo_name": "community", "repo_url": "https://charts.example", "version": "1"}
    comps = [
        normalize_component({"name": "a", "helm": [{**chart, "name": "one", "chart": "one"}]}, "ai"),
        normalize_component({"name": "b", "helm": [{**chart, "name": "two", "chart": "two"}]}, "ai"),
    ]
    kinds = [o["kind"] for directories in layout(comps, []).values() for _, objects, _ in directories for o in objects]
    assert kinds.count("HelmRepository") == 1 and kinds.count("HelmRelease") == 2
    comps[1]["helm"][0]["repo_url"] = "https://elsewhere.example"
    with pytest.raises(ValueError, match="HelmRepository community: two charts name it with different URLs"):
        layout(comps, [])


def test_rendering_is_deterministic():
    assert files() == files()


def test_sync_writes_then_changes_nothing(tmp_path):
    root = tmp_path / "homelab"
    first = sync_tree(str(root), files())
    assert first.changed and len(first.created) == len(files())
    second = sync_tree(str(root), files())
    assert not second.changed and second.unchanged == len(files())


def test_check_mode_writes_nothing(tmp_path):
    root = tmp_path / "tree"
    result = sync_tree(str(root), files(), check_mode=True)
    assert result.changed and not root.exists() and os.listdir(tmp_path) == []


def test_sync_prunes_what_it_wrote_before_keeps_secrets_and_foreign_files_and_names_the_data_flux_keeps(tmp_path):
    root = tmp_path / "homelab"
    sync_tree(str(root), files())
    (root / "apps" / "qdrant" / "secret-qdrant.sops.yaml").write_text("sops: {}\n")
    (root / "apps" / "qdrant" / "notes.txt").write_text("mine\n")
    (root / "flux" / "flux-system").mkdir()  # flux bootstrap writes here
    (root / "flux" / "flux-system" / "gotk-sync.yaml").write_text("kind: Kustomization\n")
    (root / ".git").mkdir()
    (root / ".git" / "x.yaml").write_text(HEADER)
    (root / "empty").mkdir()
    os.symlink("apps", root / "link")
    smaller = {path: text for path, text in files().items() if "/qdrant/" not in path}
    result = sync_tree(str(root), smaller, want_diff=True)
    assert sorted(result.removed) == ["apps/qdrant/kustomization.yaml", "apps/qdrant/persistentvolumeclaim-qdrant-data.yaml", "apps/qdrant/service-qdrant.yaml"]
    assert result.kept_secrets == ["apps/qdrant/secret-qdrant.sops.yaml"]
    assert result.kept_data == ["PersistentVolumeClaim ai/qdrant-data"]
    assert (root / "apps" / "qdrant" / "secret-qdrant.sops.yaml").read_text() == "sops: {}\n"
    assert (root / "apps" / "qdrant" / "notes.txt").exists() and (root / ".git" / "x.yaml").exists()
    assert (root / "flux" / "flux-system" / "gotk-sync.yaml").exists() and (root / "empty").is_dir()
    assert os.readlink(root / "link") == "apps"
    assert any(diff["after_header"] == "/dev/null" for diff in result.diffs)
    # a secret file goes only when asked
    gone = sync_tree(str(root), smaller, prune_secrets=True)
    assert gone.removed == ["apps/qdrant/secret-qdrant.sops.yaml"] and (root / "apps" / "qdrant" / "notes.txt").exists()


def test_a_rendered_secret_is_never_removed(tmp_path):
    root = tmp_path / "homelab"
    sync_tree(str(root), files())
    (root / "apps" / "qdrant" / "secret-qdrant.sops.yaml").write_text("sops: {}\n")
    result = sync_tree(str(root), files(), secrets=["apps/qdrant/secret-qdrant.sops.yaml"], prune_secrets=True)
    assert not result.changed and result.kept_secrets == []


def test_a_change_swaps_in_a_whole_new_tree_and_leaves_nothing_beside_it(tmp_path):
    root = tmp_path / "homelab"
    sync_tree(str(root), files())
    before = os.stat(root / "flux" / "apps.yaml").st_ino
    changed = {**files(), "apps/kustomization.yaml": HEADER + "resources: [qdrant]\n"}
    result = sync_tree(str(root), changed)
    assert result.updated == ["apps/kustomization.yaml"]
    assert os.stat(root / "flux" / "apps.yaml").st_ino == before  # unchanged files are carried over, not copied
    assert os.listdir(tmp_path) == ["homelab"]
    assert [p for _, _, names in os.walk(root) for p in names if p.startswith(".homelab-ai-")] == []


def test_without_an_atomic_exchange_the_swap_takes_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(_tree, "_exchange", lambda first, second: False)
    root = tmp_path / "homelab"
    sync_tree(str(root), files())
    result = sync_tree(str(root), {**files(), "apps/kustomization.yaml": HEADER + "resources: []\n"})
    assert result.updated == ["apps/kustomization.yaml"] and os.listdir(tmp_path) == ["homelab"]


def test_a_full_disk_leaves_the_old_tree_and_no_leftovers(tmp_path, monkeypatch):
    root = tmp_path / "homelab"
    sync_tree(str(root), files())
    old = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    real_write = _tree._write

    def write(path, text):
        if path.endswith("kustomization.yaml"):
            raise OSError(errno.ENOSPC, "No space left on device", path)
        real_write(path, text)

    monkeypatch.setattr(_tree, "_write", write)
    smaller = {path: text for path, text in files().items() if "/qdrant/" not in path}
    smaller["apps/kustomization.yaml"] = HEADER + "resources: [llamacpp]\n"
    with pytest.raises(TreeError, match=r"the disk is full\); the tree there is unchanged"):
        sync_tree(str(root), smaller)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == old
    assert os.listdir(tmp_path) == ["homelab"]


def test_the_next_run_cleans_up_after_a_killed_one(tmp_path):
    root = tmp_path / "homelab"
    sync_tree(str(root), files())
    staging = tmp_path / ".homelab-ai-homelab.new.abc"
    staging.mkdir()
    (staging / "half.yaml").write_text("x")
    (root / "apps" / ".homelab-ai-tmp123").write_text("partial")
    result = sync_tree(str(root), files())
    assert sorted(result.cleaned) == [".homelab-ai-homelab.new.abc", "apps/.homelab-ai-tmp123"]
    assert not result.changed and os.listdir(tmp_path) == ["homelab"]


def test_killed_between_the_two_renames_the_old_tree_comes_back(tmp_path):
    root = tmp_path / "homelab"
    sync_tree(str(root), files())
    os.rename(root, tmp_path / ".homelab-ai-homelab.old.xyz")  # what a kill between the fallback's renames leaves
    result = sync_tree(str(root), files())
    assert result.cleaned == [".homelab-ai-homelab.old.xyz"]
    assert not result.changed and (root / "flux" / "apps.yaml").exists()


def test_a_tree_reached_through_a_symlink_is_swapped_where_it_is(tmp_path):
    real = tmp_path / "real" / "homelab"
    real.parent.mkdir()
    os.symlink(real.parent, tmp_path / "build")
    sync_tree(str(tmp_path / "build" / "homelab"), files())
    sync_tree(str(tmp_path / "build" / "homelab"), {**files(), "apps/kustomization.yaml": HEADER + "resources: []\n"})
    assert os.path.islink(tmp_path / "build") and (real / "apps" / "kustomization.yaml").read_text().endswith("resources: []\n")


def _pull_job(name: str, model: str, source: str) -> str:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": "ai", "annotations": {"homelab.ai/model": model, "homelab.ai/source": source}},
        "spec": {"template": {"spec": {"volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "ollama-models"}}]}}},
    }
    return HEADER + yaml.safe_dump(job)


def test_an_ollama_model_that_left_the_catalog_is_named_with_the_volume_that_keeps_it(tmp_path):
    root = tmp_path / "tree"
    jobs = {
        "apps/ollama/job-pull-llama3-2-aaaa.yaml": _pull_job("pull-llama3-2-aaaa", "llama3.2", "ollama://llama3.2:3b"),
        "apps/ollama/job-pull-qwen-bbbb.yaml": _pull_job("pull-qwen-bbbb", "qwen", "ollama://qwen2.5-coder:14b"),
        "apps/llamacpp/job-pull-embed-cccc.yaml": _pull_job("pull-embed-cccc", "embed", "hf://org/repo/embed.gguf"),
    }
    sync_tree(str(root), {**files(), **jobs})
    # qwen's pull is a new Job (another digest), llama3.2's and the llama.cpp model's are gone
    after = {**files(), "apps/ollama/job-pull-qwen-dddd.yaml": _pull_job("pull-qwen-dddd", "qwen", "ollama://qwen2.5-coder:14b")}
    result = sync_tree(str(root), after)
    assert result.left_models == [{"model": "llama3.2", "name": "llama3.2:3b", "pvc": "ollama-models", "namespace": "ai"}]
    assert sync_tree(str(root), after).left_models == []


def test_the_trees_pages_open_with_their_title_and_name_the_age_key(tmp_path):
    from ansible_collections.homelab.ai.plugins.module_utils._tree import MD_HEADER, readme

    flux = {k: v for k, v in FLUX.items() if k != "cluster"}
    page = readme("homelab", {"apps/qdrant": {"Service": 1}}, age_key_file="/home/me/.config/sops/age/keys.txt", **flux)
    extra = {"README.md": page, "vram-plan.md": "# VRAM plan of homelab\n"}
    rendered = render_files(components(), [NAMESPACE], age_recipients=[AGE], extra_files=extra, **FLUX)
    for name, title in (("README.md", "# homelab: the homelab.ai GitOps tree"), ("vram-plan.md", "# VRAM plan of homelab")):
        first, second = rendered[name].splitlines()[:2]
        assert (first + "\n", second) == (MD_HEADER, title)  # the generated-by line is a comment, not a heading
    assert "--from-file=age.agekey=/home/me/.config/sops/age/keys.txt" in rendered["README.md"]
    root = tmp_path / "tree"
    sync_tree(str(root), rendered)
    assert sync_tree(str(root), {k: v for k, v in rendered.items() if k != "vram-plan.md"}).removed == ["vram-plan.md"]  # still ours
