from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.age import make_age_key
from tests.support.example import EXAMPLE, ROOT
from tests.support.playbook import install_collection, run_site


@pytest.fixture(scope="session")
def collections(tmp_path_factory):
    """The collection built from this checkout and installed, as ansible-galaxy would."""
    return install_collection(tmp_path_factory.mktemp("collection"))


@pytest.fixture(scope="session")
def age_key(tmp_path_factory):
    path = tmp_path_factory.mktemp("age") / "keys.txt"
    make_age_key(path)
    return path


@pytest.fixture(scope="session")
def rendered(collections, age_key, tmp_path_factory):
    """(tree, run) of site.yml on the example inventory in render mode."""
    out = tmp_path_factory.mktemp("render")
    run = run_site(collections, EXAMPLE, age_key=age_key, extra_vars={"homelab_ai_render_dir": str(out)})
    assert run.rc == 0, run.output[-3000:]
    return out / "homelab", run


def pytest_terminal_summary(terminalreporter):
    """The versions of Debian's programs that this run used (scripts/debian-programs.py takes the newest in range),
    at the end, where `pytest -q` still shows it."""
    found = []
    for program in ("chromium", "nginx", "prometheus"):
        binary = os.environ.get(f"{program.upper()}_BIN")
        versions = (Path(binary).parent if binary else ROOT / ".cache" / program) / "versions"
        found.append(versions.read_text().strip().replace("\n", ", ") if versions.is_file() else f"{program}: not provided")
    terminalreporter.write_line("Debian's programs: " + "; ".join(found))
