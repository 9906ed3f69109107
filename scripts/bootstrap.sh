#!/bin/sh
# Installs the Debian packages Prism builds and tests with, when missing.
set -eu
pkgs="build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
libsqlite3-dev libnats-dev libssl-dev zlib1g-dev libgnutls28-dev libjpeg62-turbo-dev libturbojpeg0-dev libpng-dev libcsv-dev nats-server libcmocka-dev python3 python3-yaml
python3-websockets curl tar gzip
procps iproute2 docker-compose clang libclang-rt-14-dev clang-format openssl chromium
libarchive-dev"
# Node.js and npm (the OpenAPI tools, the API reference, the TypeScript
# client): Debian's, unless a Node.js with its npm is installed already.
# Bookworm's Node.js is 18: the lint, the rendered reference and the client's
# test want 20 (Redocly 20.19), and skip themselves with the reason below it.
command -v npm >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "bootstrap: installing$missing"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
# The npm packages, at the versions each package-lock.json pins: installed
# here so that builds and tests download nothing.
root=$(cd "$(dirname "$0")/.." && pwd)
for d in tools/openapi tools/s3rver clients/typescript; do
  [ -f "$root/$d/package-lock.json" ] || continue
  if [ ! -f "$root/$d/node_modules/.package-lock.json" ] ||
     [ "$root/$d/package-lock.json" -nt "$root/$d/node_modules/.package-lock.json" ]; then
    echo "bootstrap: npm ci in $d"
    (cd "$root/$d" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done
