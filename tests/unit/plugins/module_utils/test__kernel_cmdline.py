# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._kernel_cmdline import (
    CmdlineError,
    edit_grub_defaults,
    edit_plain,
    format_args,
    merge,
    missing,
    normalise_args,
    param_name,
    param_value,
    split,
)

GTT = {"amdgpu.gttsize": "98304", "ttm.pages_limit": "25165824"}


def test_split_keeps_quoted_values_together() -> None:
    assert split('  root=/dev/sda1  ro dyndbg="file drm.c +p" quiet ') == ["root=/dev/sda1", "ro", 'dyndbg="file drm.c +p"', "quiet"]
    assert split("") == []


def test_names_treat_dash_and_underscore_alike() -> None:
    assert param_name("ttm.pages-limit=5") == "ttm.pages_limit"
    assert param_value('dyndbg="a b"') == "a b"
    assert param_value("quiet") is None
    assert param_value("foo=") == ""


def test_merge_replaces_in_place_appends_new_and_drops_later_duplicates() -> None:
    words = ["quiet", "amdgpu.gttsize=4096", "splash", "amdgpu.gttsize=8192", "ttm.pages-limit=1"]
    assert merge(words, GTT) == ["quiet", "amdgpu.gttsize=98304", "splash", "ttm.pages_limit=25165824"]
    assert merge(["quiet"], {"amd_iommu": "off", "nomodeset": None}) == ["quiet", "amd_iommu=off", "nomodeset"]


def test_merge_is_idempotent() -> None:
    once = merge(["ro", "quiet"], GTT)
    assert merge(once, GTT) == once


def test_values_are_quoted_when_they_hold_spaces() -> None:
    assert format_args({"dyndbg": "file drm.c +p", "quiet": None, "n": 3}) == 'dyndbg="file drm.c +p" quiet n=3'


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"bad name": "1"}, "not a kernel parameter name"),
        ({"x": 'a"b'}, "double quote"),
        ({"x": ["a"]}, "give a string or a number"),
    ],
)
def test_bad_arguments_are_refused(args, message) -> None:
    with pytest.raises(CmdlineError, match=message):
        normalise_args(args)


def test_booleans_become_the_kernels_numbers() -> None:
    assert normalise_args({"a": True, "b": False}) == {"a": "1", "b": "0"}


def test_missing_compares_with_the_last_occurrence() -> None:
    running = "BOOT_IMAGE=/vmlinuz ro amdgpu.gttsize=4096 quiet amdgpu.gttsize=98304"
    assert missing(running, GTT) == ["ttm.pages_limit=25165824"]
    assert missing(running + " ttm.pages-limit=25165824", GTT) == []
    assert missing("quiet", {"quiet": None, "splash": None}) == ["splash"]
    assert missing("quiet=1", {"quiet": None}) == ["quiet"]


DEBIAN_GRUB = """# If you change this file, run 'update-grub' afterwards
GRUB_DEFAULT=0
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""
"""


def test_grub_variable_is_merged_and_other_lines_kept() -> None:
    text, old, new = edit_grub_defaults(DEBIAN_GRUB, "GRUB_CMDLINE_LINUX", GTT)
    assert old == ""
    assert new == "amdgpu.gttsize=98304 ttm.pages_limit=25165824"
    assert text.splitlines() == [
        "# If you change this file, run 'update-grub' afterwards",
        "GRUB_DEFAULT=0",
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet"',
        'GRUB_CMDLINE_LINUX="amdgpu.gttsize=98304 ttm.pages_limit=25165824"',
    ]
    again, _, _ = edit_grub_defaults(text, "GRUB_CMDLINE_LINUX", GTT)
    assert again == text


def test_grub_edit_rewrites_the_last_assignment_and_keeps_user_arguments() -> None:
    text = "GRUB_CMDLINE_LINUX='pcie_aspm=off amdgpu.gttsize=1024'\nexport GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX iommu=pt\"  # mine\n"
    new_text, old, new = edit_grub_defaults(text, "GRUB_CMDLINE_LINUX", {"amdgpu.gttsize": "98304"})
    assert old == "$GRUB_CMDLINE_LINUX iommu=pt"
    assert new == "$GRUB_CMDLINE_LINUX iommu=pt amdgpu.gttsize=98304"
    assert new_text.splitlines() == [
        "GRUB_CMDLINE_LINUX='pcie_aspm=off amdgpu.gttsize=1024'",
        'export GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX iommu=pt amdgpu.gttsize=98304"',
    ]


def test_grub_edit_appends_a_missing_variable_and_escapes_quotes() -> None:
    text, _, new = edit_grub_defaults("GRUB_TIMEOUT=5", "GRUB_CMDLINE_LINUX", {"dyndbg": "file drm.c +p"})
    assert new == 'dyndbg="file drm.c +p"'
    assert text == 'GRUB_TIMEOUT=5\nGRUB_CMDLINE_LINUX="dyndbg=\\"file drm.c +p\\""\n'
    # and the escaped value reads back as the same argument
    again, old, _ = edit_grub_defaults(text, "GRUB_CMDLINE_LINUX", {"dyndbg": "file drm.c +p"})
    assert (again, old) == (text, 'dyndbg="file drm.c +p"')


def test_grub_edit_refuses_what_it_cannot_read() -> None:
    with pytest.raises(CmdlineError, match="cannot read"):
        edit_grub_defaults('GRUB_CMDLINE_LINUX="unterminated\n', "GRUB_CMDLINE_LINUX", GTT)
    with pytest.raises(CmdlineError, match="shell variable"):
        edit_grub_defaults("", "NOT-A-NAME", GTT)


def test_plain_file_keeps_comments() -> None:
    text, old, new = edit_plain("# kernel-install reads this\nroot=UUID=1 ro quiet\n", GTT)
    assert old == "root=UUID=1 ro quiet"
    assert text == f"# kernel-install reads this\n{new}\n"
    assert edit_plain(text, GTT)[0] == text
    assert edit_plain("", {"quiet": None})[0] == "quiet\n"
    with pytest.raises(CmdlineError, match="more than one line"):
        edit_plain("a\nb\n", GTT)
