from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._sops import AgeKeyError, encryption_recipients

PUBLIC = "age1cx5crtrxtzwq8j383v7u3zkdmspc3my6yayylrd2t5zslkurs33svafqlw"


def test_the_recipients_given_win_over_the_key_file(tmp_path: Path) -> None:
    assert encryption_recipients([PUBLIC], str(tmp_path / "absent.txt")) == [PUBLIC]


def test_without_recipients_the_key_files_own_are_used(tmp_path: Path) -> None:
    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"# created: 2026-12-03T00:00:00Z\n# public key: {PUBLIC}\nAGE-SECRET-KEY-1QQQ\n")
    assert encryption_recipients([], str(key_file)) == [PUBLIC]


def test_a_recipient_that_is_no_age_key_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(AgeKeyError, match=r"age_recipients: \['ssh-ed25519 AAAA'\] are not age public keys .*age-keygen -y KEYFILE"):
        encryption_recipients([PUBLIC, "ssh-ed25519 AAAA"], str(tmp_path / "absent.txt"))


def test_no_recipients_and_no_key_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(AgeKeyError, match="no age key at"):
        encryption_recipients([], str(tmp_path / "absent.txt"))
