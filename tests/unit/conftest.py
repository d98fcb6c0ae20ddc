from __future__ import annotations

import pytest

PUBLIC_KEY = "age1cx5crtrxtzwq8j383v7u3zkdmspc3my6yayylrd2t5zslkurs33svafqlw"


@pytest.fixture
def age_key(tmp_path):
    """An age key file as age-keygen writes it (the preflight reads its public key; nothing decrypts with it)."""
    path = tmp_path / "keys.txt"
    path.write_text(f"# created: now\n# public key: {PUBLIC_KEY}\nAGE-SECRET-KEY-1XYZ\n")
    return str(path)
