# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Make ``ansible_collections.homelab.ai`` importable from this checkout (the source, not an installed copy)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_LINK_BASE = ROOT / ".cache" / "src"
_LINK = _LINK_BASE / "ansible_collections" / "homelab" / "ai"


def _ensure_link() -> None:
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    if not _LINK.is_symlink():
        with contextlib.suppress(FileExistsError):  # another xdist worker made it
            os.symlink(ROOT, _LINK)
    if str(_LINK_BASE) not in sys.path:
        sys.path.insert(0, str(_LINK_BASE))
    # ansible's own collections (kubernetes.core ...) stay importable through the installed ansible package
    import ansible_collections  # noqa: F401


_ensure_link()


def pytest_terminal_summary(terminalreporter, config):
    """The order's seed (pytest-randomly), also under `pytest -q`: a failure that depends on the order comes back with
    `--randomly-seed=N`."""
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None:
        terminalreporter.write_line(f"tests ran in random order: rerun it with --randomly-seed={seed}")
