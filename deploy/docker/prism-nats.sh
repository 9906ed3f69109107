#!/bin/sh
# prism-nats: nats-server for a Prism cluster in a container (compose, Kubernetes).
# The token comes from PRISM_TOKEN and is written, quoted, into a private
# config file: nats-server would parse the value of an unquoted $VARIABLE in
# its config, and a hex token such as 1e5c... then reads as a number.
#   PRISM_NATS_PORT          client port (4222)
#   PRISM_NATS_MONITOR_PORT  monitoring port, serves /healthz (8222)
#   PRISM_NATS_RUN_DIR       where the config is written (/tmp/prism-nats)
set -eu
: "${PRISM_TOKEN:?prism-nats: PRISM_TOKEN is not set}"
case $PRISM_TOKEN in
  *[!A-Za-z0-9._~+/=-]*)
    echo "prism-nats: PRISM_TOKEN may hold only letters, digits and ._~+/=-" >&2
    exit 2 ;;
esac
port=${PRISM_NATS_PORT:-4222}
monitor=${PRISM_NATS_MONITOR_PORT:-8222}
dir=${PRISM_NATS_RUN_DIR:-/tmp/prism-nats}
umask 077
mkdir -p "$dir"
cat > "$dir/nats.conf" <<CONF
# written by prism-nats at start
listen: "0.0.0.0:$port"
http: "0.0.0.0:$monitor"
authorization {
  token: "$PRISM_TOKEN"
}
CONF
exec "$(command -v nats-server || echo /usr/sbin/nats-server)" -c "$dir/nats.conf" "$@"
