#!/bin/sh
# Writes deploy/docker/prism.env with a fresh random cluster token (mode 0600),
# unless it exists. docker compose hands it to every container.
set -eu
cd "$(dirname "$0")"
if [ -e prism.env ]; then
  echo "prism.env exists; remove it first to make a new token" >&2
  exit 0
fi
umask 077
token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
printf 'PRISM_TOKEN=%s\n' "$token" > prism.env
echo "wrote $(pwd)/prism.env"
