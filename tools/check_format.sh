#!/usr/bin/env bash
# Fails when a tracked C or C++ file is not formatted as .clang-format says.
# Fix with: git ls-files '*.cpp' '*.hpp' '*.c' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.cpp' '*.hpp' '*.c' '*.h')
[[ -z "$files" ]] && exit 0
echo "$files" | xargs clang-format --dry-run --Werror
echo "format: $(echo "$files" | wc -l) files clean"
