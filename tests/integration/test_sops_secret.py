"""homelab.ai.sops_secret with the real sops binary and throwaway age keys."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest
import yaml

from tests.support import tree_checks
from tests.support.age import make_age_key
from tests.support.modules import run_module

SOPS = shutil.which("sops") or os.path.join(os.path.dirname(sys.executable), "sops")


@pytest.fixture
def key(tmp_path):
    path = tmp_path / "keys.txt"
    return path, make_age_key(path)


def decrypt(path, key_file):
    return tree_checks.decrypt(path, key_file, SOPS)


def args(path, key_file, **extra):
    return {"path": str(path), "name": "open-webui", "namespace": "ai", "age_key_file": str(key_file), "keys": {"secret-key": {}}, **extra}


def test_round_trip_generates_keeps_and_never_shows_values(tmp_path, key):
    key_file, public = key
    target = tmp_path / "tree" / "open-webui" / "secret-open-webui.sops.yaml"
    first = run_module(
        "sops_secret", args(target, key_file, values={"user": "alice"}, keys={"secret-key": {}, "pw": {"charset": "alnum", "length": 20}}), diff=True
    )
    assert first["changed"] and first["action"] == "created" and sorted(first["generated"]) == ["pw", "secret-key"]
    plain = decrypt(target, key_file)
    values = plain["stringData"]
    assert len(values["secret-key"]) == 64 and all(c in "0123456789abcdef" for c in values["secret-key"])
    assert len(values["pw"]) == 20 and values["pw"].isalnum()
    assert values["user"] == "alice"
    assert plain["metadata"] == {"name": "open-webui", "namespace": "ai"} and plain["kind"] == "Secret"
    text = target.read_text()
    stored = yaml.safe_load(text)
    assert stored["sops"]["age"][0]["recipient"] == public
    assert stored["sops"]["encrypted_regex"] == "^(data|stringData)$"
    assert stored["metadata"]["name"] == "open-webui"  # only data/stringData are encrypted
    for value in values.values():
        assert value not in text
        assert value not in first["_stdout"]

    before = target.read_bytes()
    second = run_module("sops_secret", args(target, key_file, values={"user": "alice"}, keys={"secret-key": {}, "pw": {"charset": "alnum", "length": 20}}))
    assert not second["changed"] and second["action"] == "unchanged"
    assert target.read_bytes() == before  # SOPS output differs on every encryption: no rewrite means no change
    assert decrypt(target, key_file)["stringData"] == values


def test_check_mode_writes_nothing(tmp_path, key):
    key_file, _ = key
    target = tmp_path / "secret.sops.yaml"
    result = run_module("sops_secret", args(target, key_file), check_mode=True)
    assert result["changed"] and result["action"] == "created" and not target.exists()


def test_a_given_value_updates_and_the_diff_names_keys_only(tmp_path, key):
    key_file, _ = key
    target = tmp_path / "secret.sops.yaml"
    run_module("sops_secret", args(target, key_file))
    result = run_module("sops_secret", args(target, key_file, values={"secret-key": "s3cr3t-from-inventory"}), diff=True)
    assert result["changed"] and result["reasons"] == ["keys changed: secret-key"]
    assert "s3cr3t-from-inventory" not in result["_stdout"]
    assert decrypt(target, key_file)["stringData"]["secret-key"] == "s3cr3t-from-inventory"


def test_regenerate_rotates_a_kept_value(tmp_path, key):
    key_file, _ = key
    target = tmp_path / "secret.sops.yaml"
    run_module("sops_secret", args(target, key_file))
    old = decrypt(target, key_file)["stringData"]["secret-key"]
    result = run_module("sops_secret", args(target, key_file, regenerate=["secret-key"]))
    assert result["changed"] and decrypt(target, key_file)["stringData"]["secret-key"] != old


def test_a_new_recipient_re_encrypts(tmp_path, key):
    key_file, public = key
    other = make_age_key(tmp_path / "other.txt")
    target = tmp_path / "secret.sops.yaml"
    run_module("sops_secret", args(target, key_file))
    result = run_module("sops_secret", args(target, key_file, age_recipients=[public, other]))
    assert result["changed"] and result["reasons"] == ["age recipients changed"]
    assert decrypt(target, tmp_path / "other.txt")["kind"] == "Secret"


def test_the_wrong_key_is_a_clear_error_and_the_file_stays(tmp_path, key):
    key_file, _ = key
    target = tmp_path / "secret.sops.yaml"
    run_module("sops_secret", args(target, key_file))
    before = target.read_bytes()
    make_age_key(tmp_path / "wrong.txt")
    result = run_module("sops_secret", args(target, tmp_path / "wrong.txt"))
    assert result["failed"] and "cannot decrypt" in result["msg"] and "only if that key is lost, delete the file" in result["msg"]
    assert target.read_bytes() == before


def test_no_age_key_says_how_to_make_one(tmp_path):
    result = run_module("sops_secret", args(tmp_path / "s.sops.yaml", tmp_path / "missing.txt"))
    assert result["failed"] and "no age key at" in result["msg"] and "age-keygen -o" in result["msg"]
    assert not (tmp_path / "s.sops.yaml").exists()


def test_state_absent_removes_the_file(tmp_path, key):
    key_file, _ = key
    target = tmp_path / "secret.sops.yaml"
    run_module("sops_secret", args(target, key_file))
    assert run_module("sops_secret", {**args(target, key_file), "state": "absent"})["changed"]
    assert not target.exists()


def test_many_secrets_in_one_go_keep_their_values_and_return_none_of_them(tmp_path, key):
    """homelab.ai.sops_secrets' work (keep_secrets): what the deliver role runs for every Secret of the stack."""
    from ansible_collections.homelab.ai.plugins.module_utils._sops import keep_secrets

    key_file, public = key
    entries = [
        {
            "name": name,
            "namespace": "ai",
            "type": "Opaque",
            "labels": {"app.kubernetes.io/part-of": "homelab-ai"},
            "path": str(tmp_path / "tree" / f"secret-{name}.sops.yaml"),
            "previous_path": str(tmp_path / "old" / f"secret-{name}.sops.yaml"),
            "generate": {"password": {"charset": "alnum", "length": 24}},
            "value_vars": {"username": f"{name}_username"},
        }
        for name in ("one", "two")
    ]
    values = {"one": {"username": "alice"}, "two": {"username": ""}}
    dry = keep_secrets(entries, values, [public], str(key_file), check_mode=True, sops=SOPS)
    assert [r["action"] for r in dry] == ["created", "created"] and not (tmp_path / "tree").exists()
    first = keep_secrets(entries, values, [public], str(key_file), check_mode=False, sops=SOPS)
    assert [(r["item"]["name"], r["changed"], r["generated"]) for r in first] == [("one", True, ["password"]), ("two", True, ["password", "username"])]
    one = decrypt(entries[0]["path"], key_file)["stringData"]
    assert one["username"] == "alice" and len(one["password"]) == 24
    assert one["password"] not in json.dumps(first)  # a result never carries a value
    again = keep_secrets(entries, values, [public], str(key_file), check_mode=False, sops=SOPS)
    assert [r["action"] for r in again] == ["unchanged", "unchanged"]
    assert [r["checksum"] for r in again] == [r["checksum"] for r in first]
    changed = keep_secrets(entries, {**values, "one": {"username": "bob"}}, [public], str(key_file), check_mode=False, sops=SOPS)
    assert [r["action"] for r in changed] == ["updated", "unchanged"] and changed[0]["checksum"] != first[0]["checksum"]
