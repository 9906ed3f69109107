#!/bin/sh
# Regenerates src/gcs.ts, the types of the GCS's REST API, from
# openapi/gcs.yaml with the openapi-typescript pinned in package-lock.json.
# The file is never edited by hand: change the spec, then run this.
#   sh scripts/generate.sh          rewrite src/gcs.ts
#   sh scripts/generate.sh --check  exit 1 when src/gcs.ts is not what the
#                                   spec generates (the drift check)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
spec=$here/../../openapi/gcs.yaml
gen=$here/node_modules/.bin/openapi-typescript
out=$here/src/gcs.ts
if [ ! -x "$gen" ]; then
    echo "openapi-typescript is not installed: run 'npm ci' in clients/typescript" \
         "(scripts/bootstrap.sh does)" >&2
    exit 2
fi
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$gen" "$spec" --output "$tmp" >/dev/null
if [ "${1:-}" = "--check" ]; then
    if ! cmp -s "$tmp" "$out"; then
        diff -u "$out" "$tmp" | head -40 >&2 || true
        echo "src/gcs.ts is out of date with openapi/gcs.yaml: run 'npm run generate'" \
             "in clients/typescript and commit the result" >&2
        exit 1
    fi
    echo "src/gcs.ts matches openapi/gcs.yaml"
    exit 0
fi
cp "$tmp" "$out"
echo "wrote src/gcs.ts"
