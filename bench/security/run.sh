#!/bin/sh
# What authenticating direct connections costs (docs/security.md): the same
# Prism benchmarks against two builds in one run, taking turns, so that both
# see the same machine:
#
#   bench/security/run.sh BUILD_WITH BUILD_WITHOUT [TURNS]
#
# BUILD_WITH is this tree's Release build (the handshake and the lease
# check); BUILD_WITHOUT one of a tree from before them (e.g. a worktree at the
# commit before, built the same way, with this prism_tasks_bench.c for its
# `cold` mode). Each turn starts a 1-node cluster (2 CPUs) of one build and
# runs: tasks sync (per call), tasks cold (each task after the idle lease was
# returned: a new lease and connection every time), tasks async, actors sync
# (with the actor's creation and first call) and actors async. TURNS
# (default 2) turns per build. Prints the JSON lines, tagged with the build.
set -eu
WITH=$1 WITHOUT=$2 TURNS=${3:-2}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-security-bench.XXXXXX")
trap 'for b in "$WITH" "$WITHOUT"; do PRISM_HOME=$WORK/home "$b/bin/prism" down >/dev/null 2>&1 || true; done; rm -rf "$WORK"' EXIT
export PRISM_HOME="$WORK/home"
unset PRISM_ADDRESS PRISM_TOKEN PRISM_NATS_URL PRISM_STORE_SOCKET PRISM_NODE_ID
turn() { # BUILD TAG
  "$1/bin/prism" up --nodes 1 --num-cpus 2 >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log" >&2; exit 1; }
  for b in "sync --n 20000" "cold" "async"; do
    # shellcheck disable=SC2086
    "$1/bin/prism-tasks-bench" $b | sed "s/^{/{\"build\": \"$2\", /"
  done
  for b in sync async; do
    "$1/bin/prism-actors-bench" $b | sed "s/^{/{\"build\": \"$2\", /"
  done
  "$1/bin/prism" down >/dev/null 2>&1
}
i=0
while [ "$i" -lt "$TURNS" ]; do
  turn "$WITHOUT" without
  turn "$WITH" with
  i=$((i + 1))
done
