from __future__ import annotations

import pytest

from tests.support.age import make_age_key
from tests.support.example import EXAMPLE
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
