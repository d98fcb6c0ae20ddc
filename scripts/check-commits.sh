#!/usr/bin/env bash
# Copyright: homelab.ai contributors
# Apache License 2.0 (see LICENSE)
#
# The commit rules of docs/DEVELOPMENT.md (make lint): every commit since the rules were kept has a subject of at
# most 72 characters and a body. Commits made before are left as they are; a clone without that history (a shallow
# CI checkout, an export) has nothing to check.
set -euo pipefail

base=${COMMIT_RULES_SINCE:-dd8e109}
cd "$(dirname "$0")/.."
if ! git rev-parse --git-dir >/dev/null 2>&1 || ! git cat-file -e "$base^{commit}" 2>/dev/null; then
    echo "check-commits: no history back to $base here, nothing to check"
    exit 0
fi
failed=0
while IFS= read -r commit; do
    subject=$(git log -1 --format=%s "$commit")
    if [ "${#subject}" -gt 72 ]; then
        echo "commit ${commit:0:10}: the subject has ${#subject} characters (at most 72): $subject" >&2
        failed=1
    fi
    if [ -z "$(git log -1 --format=%b "$commit" | tr -d '[:space:]')" ]; then
        echo "commit ${commit:0:10}: no body; say why the change is made (docs/DEVELOPMENT.md, "Contributing: commit messages")" >&2
        failed=1
    fi
done < <(git rev-list "$base..HEAD")
exit "$failed"
