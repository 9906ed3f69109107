#!/bin/sh
# Lints every OpenAPI spec in openapi/ with Redocly's CLI, at the version
# pinned in tools/openapi/package-lock.json, under the rules of
# tools/openapi/redocly.yaml (Redocly's recommended set). Installs the CLI
# from the npm registry on first use. Exits 77 (a skip for CTest) with the
# reason when Node.js/npm is missing or the CLI cannot be installed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tools=$root/tools/openapi
cli=$tools/node_modules/.bin/redocly
if [ ! -x "$cli" ] || [ "$tools/package-lock.json" -nt "$tools/node_modules/.package-lock.json" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "skipped: npm is not installed (Node.js 20 and npm lint the OpenAPI specs)"
        exit 77
    fi
    if ! (cd "$tools" && npm ci --no-audit --no-fund --loglevel=error); then
        echo "skipped: @redocly/cli could not be installed from the npm registry"
        exit 77
    fi
fi
# Redocly's CLI runs on Node.js 20.19 or later (Debian bookworm's is 18).
node_ok=$(node -e 'const [a, b] = process.versions.node.split(".").map(Number);
process.stdout.write(a > 20 || (a === 20 && b >= 19) ? "yes" : process.versions.node)' 2>/dev/null ||
    echo none)
if [ "$node_ok" != yes ]; then
    echo "skipped: Redocly's CLI needs Node.js 20.19 or later (found: $node_ok)"
    exit 77
fi
# No usage reports sent and no update check: the lint is offline.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
# Each spec by name: tools/openapi/redocly.yaml is not one.
set -- "$root"/openapi/*.yaml
exec "$cli" lint --config "$tools/redocly.yaml" --format=stylish "$@"
