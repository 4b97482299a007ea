#!/usr/bin/env bash
# ctest entry of the browser tests: checks that Node.js (20 or newer), playwright-core
# (tools/setup.sh installs it from tests/browser/package-lock.json) and Debian's chromium
# are there, then runs run.mjs. Missing pieces fail the suite with one clear line.
#   run_browser.sh SERVER_BIN ADMIN_BIN WEB_DIR SCREENSHOT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null; then
    echo "run_browser: node is not installed (run tools/setup.sh)" >&2
    exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if ((major < 20)); then
    echo "run_browser: node $(node --version) is too old; playwright-core needs 20 or newer" >&2
    exit 1
fi
if [[ ! -f $here/node_modules/playwright-core/package.json ]]; then
    echo "run_browser: playwright-core is not installed (run tools/setup.sh)" >&2
    exit 1
fi
if [[ ! -x /usr/bin/chromium ]]; then
    echo "run_browser: /usr/bin/chromium is missing (run tools/setup.sh)" >&2
    exit 1
fi
exec node "$here/run.mjs" "$@"
