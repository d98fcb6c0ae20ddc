# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes resource quantities (``100Gi``, ``500m``, ``1.5G``, ``12e3``).

Parsed exactly as the API server does (k8s.io/apimachinery resource.Quantity) so that a value
the preflight accepts is one the cluster accepts too, and byte arithmetic for PVCs and the VRAM
plan works on exact integers.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "QuantityError",
    "format_bytes",
    "is_quantity",
    "parse_quantity",
    "to_bytes",
    "to_quantity",
]

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
# <sign><digits>[.<digits>]<suffix>, suffix one of the binary or decimal SI ones or e<exp>.
_RE = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))((?:[KMGTPE]i)|[numkMGTPE]?|[eE][+-]?[0-9]+)$")


class QuantityError(ValueError):
    """A value that is not a Kubernetes quantity."""


def parse_quantity(value: object) -> Decimal:
    """Return the exact value of a quantity; plain numbers are accepted as they are."""
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a Kubernetes quantity")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise QuantityError(f"{value!r} is not a Kubernetes quantity")
    match = _RE.match(value.strip())
    if not match:
        raise QuantityError(_explain(value))
    number, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid numbers
        raise QuantityError(_explain(value)) from exc
    if suffix in _BINARY:
        return base * _BINARY[suffix]
    if suffix[:1] in ("e", "E"):
        return base * (Decimal(10) ** int(suffix[1:]))
    return base * _DECIMAL[suffix]


def is_quantity(value: object) -> bool:
    try:
        parse_quantity(value)
    except QuantityError:
        return False
    return True


def to_bytes(value: object) -> int:
    """A storage or memory quantity in whole bytes (rounded up, as the API server does)."""
    exact = parse_quantity(value)
    if exact < 0:
        raise QuantityError(f"{value!r} is negative; a size must be zero or more")
    return int(exact.to_integral_value(rounding="ROUND_CEILING"))


def to_quantity(num_bytes: int) -> str:
    """The shortest exact binary quantity for a byte count (``107374182400`` -> ``100Gi``)."""
    if num_bytes < 0:
        raise QuantityError(f"{num_bytes} is negative")
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = _BINARY[suffix]
        if num_bytes and num_bytes % unit == 0:
            return f"{num_bytes // unit}{suffix}"
    return str(num_bytes)


def format_bytes(num_bytes: int | float) -> str:
    """Human-readable size with binary units, for tables and messages (``1.5 GiB``)."""
    value = float(num_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _explain(value: object) -> str:
    text = str(value).strip()
    hint = ""
    upper = re.match(r"^([0-9.]+)\s*([KMGTPE])i?B$", text, re.IGNORECASE)
    if upper:
        hint = f" (write {upper.group(1)}{upper.group(2).upper()}i for binary units)"
    elif " " in text:
        hint = " (no space between number and unit)"
    return f"{value!r} is not a Kubernetes quantity{hint}; use a number with an optional suffix such as 512Mi, 10Gi, 1.5Ti or 500m"
