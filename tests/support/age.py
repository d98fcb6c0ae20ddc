# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Throwaway age keys in age-keygen's file format."""

from __future__ import annotations

from pathlib import Path

import pyrage


def make_age_key(path: Path) -> str:
    """Write a new identity to ``path`` and return its public key."""
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    path.write_text(f"# created: test\n# public key: {public}\n{identity}\n")
    path.chmod(0o600)
    return public
