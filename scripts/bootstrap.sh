#!/bin/sh
# Installs the Debian packages Prism builds and tests with, when missing.
set -eu
pkgs="build-essential cmake pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
libsqlite3-dev libnats-dev libssl-dev zlib1g-dev libgnutls28-dev libturbojpeg0-dev libpng-dev libcsv-dev nats-server libcmocka-dev python3 python3-yaml
python3-websockets curl tar gzip
procps iproute2 docker-compose clang libclang-rt-14-dev clang-format openssl chromium"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "bootstrap: installing$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
