#!/usr/bin/env python3
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
"""Make an age key in age-keygen's file format, for machines without the `age` package.

    scripts/age-keygen.py [--if-missing] PATH

With --if-missing an existing key is kept (and its public key printed).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--if-missing", action="store_true", help="keep an existing key")
    args = parser.parse_args()
    path = os.path.expanduser(args.path)
    if os.path.exists(path):
        if not args.if_missing:
            print(f"{path} exists; not overwriting an age key", file=sys.stderr)
            return 1
        with open(path, encoding="utf-8") as handle:
            public = [line.split(":", 1)[1].strip() for line in handle if line.startswith("# public key:")]
        print(f"age key: {path} ({', '.join(public) or 'no public key comment'})")
        return 0
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"# created: {created}\n# public key: {identity.to_public()}\n{identity}\n")
    print(f"created a new age key: {path} (public key {identity.to_public()})")
    print("keep a copy of it somewhere safe: without it the SOPS-encrypted secrets cannot be decrypted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
