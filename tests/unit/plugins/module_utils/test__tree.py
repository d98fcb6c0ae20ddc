from __future__ import annotations

import os

import yaml

from ansible_collections.homelab.ai.plugins.module_utils._components import normalize_component
from ansible_collections.homelab.ai.plugins.module_utils._tree import HEADER, render_files, sync_tree

AGE = "age1cx5crtrxtzwq8j383v7u3zkdmspc3my6yayylrd2t5zslkurs33svafqlw"


def components():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "qdrant"}, "spec": {"ports": [{"port": 6333}]}}
    chart = {
        "name": "longhorn",
        "namespace": "longhorn-system",
        "repo_name": "longhorn",
        "repo_url": "https://charts.example",
        "chart": "longhorn",
        "version": "1.10.1",
    }
    return [
        normalize_component({"name": "longhorn", "helm": [chart]}, "ai"),
        normalize_component({"name": "qdrant", "objects": [svc], "secrets": [{"name": "qdrant", "keys": {"api-key": {}}}]}, "ai"),
    ]


def test_render_files_lays_out_one_directory_per_component():
    files = render_files(components(), [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ai"}}], age_recipients=[AGE])
    assert sorted(files) == [
        ".sops.yaml",
        "kustomization.yaml",
        "longhorn/helmrelease-longhorn.yaml",
        "longhorn/helmrepository-longhorn.yaml",
        "longhorn/kustomization.yaml",
        "namespaces/kustomization.yaml",
        "namespaces/namespace-ai.yaml",
        "qdrant/kustomization.yaml",
        "qdrant/service-qdrant.yaml",
    ]
    assert yaml.safe_load(files["kustomization.yaml"])["resources"] == ["namespaces", "longhorn", "qdrant"]
    assert yaml.safe_load(files["qdrant/kustomization.yaml"])["resources"] == ["service-qdrant.yaml", "secret-qdrant.sops.yaml"]
    rule = yaml.safe_load(files[".sops.yaml"])["creation_rules"][0]
    assert rule == {"path_regex": r".*\.sops\.yaml$", "encrypted_regex": "^(data|stringData)$", "age": AGE}
    assert all(text.startswith(HEADER) for text in files.values())


def test_rendering_is_deterministic():
    assert render_files(components(), [], age_recipients=[AGE]) == render_files(components(), [], age_recipients=[AGE])


def test_sync_writes_then_changes_nothing(tmp_path):
    files = render_files(components(), [], age_recipients=[AGE])
    first = sync_tree(str(tmp_path), files)
    assert first.changed and len(first.created) == len(files)
    second = sync_tree(str(tmp_path), files)
    assert not second.changed and second.unchanged == len(files)


def test_check_mode_writes_nothing(tmp_path):
    root = tmp_path / "tree"
    result = sync_tree(str(root), render_files(components(), [], age_recipients=[AGE]), check_mode=True)
    assert result.changed and not root.exists()


def test_sync_prunes_what_it_wrote_before_and_keeps_foreign_and_kept_files(tmp_path):
    files = render_files(components(), [], age_recipients=[AGE])
    sync_tree(str(tmp_path), files)
    (tmp_path / "qdrant" / "secret-qdrant.sops.yaml").write_text("sops: {}\n")
    (tmp_path / "qdrant" / "secret-old.sops.yaml").write_text("sops: {}\n")
    (tmp_path / "notes.yaml").write_text("mine: true\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.yaml").write_text(HEADER)
    smaller = {path: text for path, text in files.items() if not path.startswith("longhorn/")}
    result = sync_tree(str(tmp_path), smaller, keep=["qdrant/secret-qdrant.sops.yaml"], want_diff=True)
    assert sorted(result.removed) == [
        "longhorn/helmrelease-longhorn.yaml",
        "longhorn/helmrepository-longhorn.yaml",
        "longhorn/kustomization.yaml",
        "qdrant/secret-old.sops.yaml",
    ]
    assert not (tmp_path / "longhorn").exists()
    assert (tmp_path / "notes.yaml").exists() and (tmp_path / ".git" / "x.yaml").exists()
    assert (tmp_path / "qdrant" / "secret-qdrant.sops.yaml").exists()
    assert any(diff["after_header"] == "/dev/null" for diff in result.diffs)


def test_sync_updates_changed_files_atomically(tmp_path):
    files = {"a/kustomization.yaml": HEADER + "resources: []\n"}
    sync_tree(str(tmp_path), files)
    result = sync_tree(str(tmp_path), {"a/kustomization.yaml": HEADER + "resources: [x.yaml]\n"})
    assert result.updated == ["a/kustomization.yaml"]
    assert [p for p in os.listdir(tmp_path / "a") if p.startswith(".homelab-ai-")] == []
