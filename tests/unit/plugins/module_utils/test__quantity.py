from __future__ import annotations

from decimal import Decimal

import pytest

from ansible_collections.homelab.ai.plugins.module_utils._quantity import (
    QuantityError,
    format_bytes,
    is_quantity,
    parse_quantity,
    to_bytes,
    to_quantity,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100Gi", Decimal(100 * 2**30)),
        ("1.5Ti", Decimal(3 * 2**39)),
        ("500m", Decimal("0.5")),
        ("1G", Decimal(10**9)),
        ("12e3", Decimal(12000)),
        ("0", Decimal(0)),
        (".5Ki", Decimal(512)),
        (4096, Decimal(4096)),
    ],
)
def test_parse_quantity_accepts_what_the_api_server_accepts(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["100GB", "10 Gi", "Gi", "1.2.3Gi", "ten", "", "1gi", "5KiB", True, None, [1]])
def test_parse_quantity_refuses_the_rest(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)
    assert not is_quantity(text)


def test_the_error_says_how_to_write_binary_units():
    with pytest.raises(QuantityError, match="write 100Gi for binary units"):
        parse_quantity("100GB")


def test_to_bytes_rounds_up_and_refuses_negative_sizes():
    assert to_bytes("1.5") == 2
    assert to_bytes("640Mi") == 640 * 2**20
    with pytest.raises(QuantityError, match="negative"):
        to_bytes("-1Gi")


def test_to_quantity_is_the_shortest_exact_binary_form():
    assert to_quantity(100 * 2**30) == "100Gi"
    assert to_quantity(1536 * 2**20) == "1536Mi"
    assert to_quantity(1000) == "1000"
    assert to_bytes(to_quantity(123456789)) == 123456789


def test_format_bytes():
    assert format_bytes(512) == "512 B"
    assert format_bytes(1.5 * 2**30) == "1.5 GiB"
