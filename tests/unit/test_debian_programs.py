"""scripts/debian-programs.py: the ranges of requirements/*.debian, read in Debian's version order."""

from __future__ import annotations

import importlib.util
import shutil
import sys

import pytest

from tests.support.example import ROOT

_SPEC = importlib.util.spec_from_file_location("debian_programs", ROOT / "scripts" / "debian-programs.py")
assert _SPEC and _SPEC.loader
programs = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = programs  # dataclasses look their module up
_SPEC.loader.exec_module(programs)

pytestmark = pytest.mark.skipif(shutil.which("dpkg") is None, reason="Debian's version order needs dpkg")


def _want(spec: str):
    (want,) = programs.parse_spec(spec, "test.debian")
    return want


def test_every_spec_of_the_project_reads():
    specs = sorted((ROOT / "requirements").glob("*.debian"))
    assert [s.stem for s in specs] == ["chromium", "nginx", "prometheus"]
    wants = [w for spec in specs for w in programs.parse_spec(spec.read_text(), spec.name)]
    assert {w.package: w.mode for w in wants} == {"chromium": "install", "nginx": "unpack", "gettext-base": "unpack", "prometheus": "unpack"}


@pytest.mark.parametrize(
    ("spec", "newest"),
    [
        # a security update moves Chromium on: the newer one is taken, an older major release is not
        ("install chromium >=156 usr/lib/chromium/chromium", "157.0.1.2-1~deb12u1"),
        # a point release and the security archive of 1.22: the newest 1.22 is taken, never 1.23
        ("unpack nginx >=1.22.1,<1.23~ usr/sbin/nginx", "1.22.1-9+deb12u12"),
        ("unpack prometheus >=2.42,<2.43~ usr/bin/prometheus", "2.42.0+ds-5+deb12u1"),
    ],
)
def test_the_newest_version_within_the_range_is_chosen(spec, newest):
    offered = ["150.0.7871.100-1~deb12u1", "156.0.8078.129-1~deb12u1", "157.0.1.2-1~deb12u1", "1.22.1-9+deb12u9", "1.22.1-9+deb12u12"]
    offered += ["1.23.0-1", "1.22.0-1", "2.42.0+ds-5+deb12u1", "2.43.0-1", "2.42.0~rc1-1"]
    assert programs.newest(offered, _want(spec)) == newest


def test_nothing_within_the_range_is_none():
    assert programs.newest(["150.0.7871.100-1~deb12u1"], _want("install chromium >=156 usr/lib/chromium/chromium")) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("chromium >=156", "is not 'MODE PACKAGE RANGE"),
        ("unpack nginx 1.22.1 usr/sbin/nginx", "is not a version constraint"),
        ("install chromium >=156", "names the program DEST links to"),
        ("# only a comment", "names no package"),
    ],
)
def test_a_bad_spec_is_refused_with_its_fix(spec, message):
    with pytest.raises(programs.Refused, match=message):
        programs.parse_spec(spec, "test.debian")
