# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Kernel command lines: split, merge, compare with the running kernel, and the files boot loaders keep them in.

Runs on the nodes (module ``kernel_cmdline``) and on the controller (the node bootstrap plan): standard library
only, Python 3.9+. Nothing here reads or writes files; callers pass text in and get text out.

The kernel's own rules (``lib/cmdline.c``, ``kernel/params.c``) decide what "the same argument" means:
words are separated by spaces, double quotes keep spaces inside a word, and ``-`` and ``_`` are the same
character in a parameter name (``ttm.pages-limit`` is ``ttm.pages_limit``). When a parameter is given twice
the later one wins.
"""

from __future__ import annotations

import re
import shlex
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "CmdlineError",
    "edit_grub_defaults",
    "edit_plain",
    "format_args",
    "merge",
    "missing",
    "normalise_args",
    "param_name",
    "param_value",
    "split",
]

Args = Mapping[str, Optional[str]]  # parameter -> value; None for a bare flag such as ``quiet``

_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_ASSIGNMENT = re.compile(r"^(?P<lead>\s*(?:export\s+)?)(?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")


class CmdlineError(ValueError):
    """Arguments or a file that cannot be handled safely."""


def split(cmdline: str) -> List[str]:
    """The words of a kernel command line, each as written (quotes kept), like the kernel's ``next_arg``."""
    words: List[str] = []
    word: List[str] = []
    quoted = False
    for char in cmdline:
        if char == '"':
            quoted = not quoted
        elif char.isspace() and not quoted:
            if word:
                words.append("".join(word))
                word = []
            continue
        word.append(char)
    if word:
        words.append("".join(word))
    return words


def param_name(word: str) -> str:
    """The parameter a word sets, with ``-`` read as ``_`` as the kernel does."""
    return word.split("=", 1)[0].strip('"').replace("-", "_")


def param_value(word: str) -> Optional[str]:
    """The value a word gives its parameter (quotes removed), or None for a bare flag."""
    if "=" not in word:
        return None
    value = word.split("=", 1)[1]
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        value = value[1:-1]
    return value


def normalise_args(args: Mapping[str, object]) -> Dict[str, Optional[str]]:
    """Check parameter names and turn values into strings (integers as digits, booleans as the kernel's 1/0)."""
    result: Dict[str, Optional[str]] = {}
    for name, value in args.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise CmdlineError(f"{name!r} is not a kernel parameter name (letters, digits, '.', '_' and '-')")
        if value is None:
            text: Optional[str] = None
        elif isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, (int, str)):
            text = str(value)
        else:
            raise CmdlineError(f"the value of {name} is a {type(value).__name__}; give a string or a number")
        if text is not None and ('"' in text or "\n" in text):
            raise CmdlineError(f"the value of {name} contains a double quote or a new line")
        result[name] = text
    return result


def _word(name: str, value: Optional[str]) -> str:
    if value is None:
        return name
    if value == "" or any(char.isspace() for char in value):
        return f'{name}="{value}"'
    return f"{name}={value}"


def format_args(args: Args) -> str:
    """``name=value ...`` in the order given, as a boot loader tool such as ``grubby --args`` takes them."""
    return " ".join(_word(name, value) for name, value in normalise_args(args).items())


def merge(words: Sequence[str], args: Args) -> List[str]:
    """``words`` with each parameter of ``args`` set to its value.

    The first word setting a parameter is replaced where it stands, later ones are dropped (they would win),
    and parameters not yet there are appended in the order of ``args``. Other words are kept as they are.
    """
    wanted = {param_name(name): (name, value) for name, value in normalise_args(args).items()}
    result: List[str] = []
    placed = set()
    for word in words:
        key = param_name(word)
        if key in wanted:
            if key not in placed:
                result.append(_word(*wanted[key]))
                placed.add(key)
            continue
        result.append(word)
    result.extend(_word(name, value) for key, (name, value) in wanted.items() if key not in placed)
    return result


def missing(cmdline: str, args: Args) -> List[str]:
    """The words of ``args`` that are not in effect in ``cmdline`` (such as ``/proc/cmdline``), in order."""
    effective: Dict[str, Tuple[bool, Optional[str]]] = {}
    for word in split(cmdline):
        effective[param_name(word)] = ("=" in word, param_value(word))
    absent = []
    for name, value in normalise_args(args).items():
        present = effective.get(param_name(name))
        if present is None or present != (value is not None, value):
            absent.append(_word(name, value))
    return absent


# --- files ------------------------------------------------------------------------------------------


def edit_plain(text: str, args: Args) -> Tuple[str, str, str]:
    """A file holding just a command line (``/etc/kernel/cmdline``): (new text, old line, new line)."""
    lines = text.splitlines()
    content = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if len(content) > 1:
        raise CmdlineError("the file has more than one line of arguments; join them into one line first")
    old = content[0].strip() if content else ""
    new = " ".join(merge(split(old), args))
    if old == new:
        return text, old, new
    if content:
        index = lines.index(content[0])
        lines[index] = new
    else:
        lines.append(new)
    return "\n".join(lines) + "\n", old, new


def _shell_words(value: str) -> List[str]:
    try:
        return shlex.split(value, comments=True, posix=True)
    except ValueError as exc:
        raise CmdlineError(f"cannot read the shell value {value!r}: {exc}") from exc


def _double_quote(text: str) -> str:
    # $ stays as it is: GRUB files expand variables such as $GRUB_CMDLINE_LINUX_DEFAULT on purpose
    return '"' + re.sub(r'(["\\`])', r"\\\1", text) + '"'


def edit_grub_defaults(text: str, variable: str, args: Args) -> Tuple[str, str, str]:
    """Set ``args`` in the shell variable ``variable`` of a GRUB defaults file (``/etc/default/grub``).

    The last assignment is the one GRUB sees, so that one is rewritten (double-quoted); without one, an
    assignment is appended. Returns (new text, old value, new value).
    """
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", variable):
        raise CmdlineError(f"{variable!r} is not a shell variable name")
    lines = text.splitlines()
    last: Optional[Tuple[int, str]] = None
    for index, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if match and match.group("name") == variable:
            last = (index, match.group("lead"))
    old = ""
    if last is not None:
        raw = _ASSIGNMENT.match(lines[last[0]]).group("value")  # type: ignore[union-attr]
        old = " ".join(_shell_words(raw))
    new = " ".join(merge(split(old), args))
    if last is not None and old == new:
        return text, old, new
    assignment = f"{variable}={_double_quote(new)}"
    if last is None:
        lines.append(assignment)
    else:
        lines[last[0]] = last[1] + assignment
    return "\n".join(lines) + "\n", old, new
