#!/bin/sh
# What TLS on the workers' TCP ports costs (docs/security.md#tls): the same
# Prism benchmarks over a worker's Unix socket, over its TCP port in the
# clear and over its TCP port with TLS, taking turns in one run:
#
#   bench/security/tls.sh BUILD [TURNS]
#
# BUILD is a Release build. Each turn starts a 1-node cluster (2 CPUs) with
# `prism up` and runs tasks sync, cold (a new lease and connection per task)
# and async, and actors sync and async. On one machine a driver reaches the
# workers through their Unix sockets; for `tcp` and `tls` the benchmarks run
# in a mount namespace where the nodes' directories are an empty tmpfs, so
# they connect as owners on other nodes do (needs root and unshare(1)). For
# `tls` the cluster has a certificate for 127.0.0.1 made here (its own CA),
# so its REST ports speak HTTPS and NATS runs over TLS too. TURNS (default 2) turns per setup.
# Prints the JSON lines, tagged with the setup.
set -eu
BUILD=$1 TURNS=${2:-2}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-tls-bench.XXXXXX")
trap 'PRISM_HOME=$WORK/home "$BUILD/bin/prism" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
export PRISM_HOME="$WORK/home"
unset PRISM_ADDRESS PRISM_TOKEN PRISM_NATS_URL PRISM_STORE_SOCKET PRISM_NODE_ID
unset PRISM_TLS_CERT PRISM_TLS_KEY PRISM_TLS_CA
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 1 -subj /CN=prism-bench \
  -addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1
hidden() { # COMMAND...: run where no worker socket can be seen
  mkdir -p "$PRISM_HOME/nodes"
  unshare --mount --propagation private sh -c 'mount -t tmpfs none "$0" && exec "$@"' \
    "$PRISM_HOME/nodes" "$@"
}
turn() { # unix|tcp|tls
  if [ "$1" = tls ]; then
    export PRISM_TLS_CERT="$WORK/cert.pem" PRISM_TLS_KEY="$WORK/key.pem" PRISM_TLS_CA="$WORK/cert.pem"
  fi
  "$BUILD/bin/prism" up --nodes 1 --num-cpus 2 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; exit 1; }
  wrap=""
  [ "$1" = unix ] || wrap=hidden
  for b in "sync --n 20000" "cold" "async"; do
    # shellcheck disable=SC2086
    $wrap "$BUILD/bin/prism-tasks-bench" $b | sed "s/^{/{\"setup\": \"$1\", /"
  done
  for b in sync async; do
    $wrap "$BUILD/bin/prism-actors-bench" $b | sed "s/^{/{\"setup\": \"$1\", /"
  done
  "$BUILD/bin/prism" down >/dev/null 2>&1
  unset PRISM_TLS_CERT PRISM_TLS_KEY PRISM_TLS_CA
}
i=0
while [ "$i" -lt "$TURNS" ]; do
  for s in unix tcp tls; do
    turn "$s"
  done
  i=$((i + 1))
done
