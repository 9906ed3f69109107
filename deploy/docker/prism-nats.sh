#!/bin/sh
# prism-nats: nats-server for a Prism cluster in a container (compose, Kubernetes).
# The token comes from PRISM_TOKEN and is written, quoted, into a private
# config file: nats-server would parse the value of an unquoted $VARIABLE in
# its config, and a hex token such as 1e5c... then reads as a number.
#   PRISM_NATS_PORT          client port (4222)
#   PRISM_NATS_MONITOR_PORT  monitoring port on 127.0.0.1 only, serves /healthz (8222)
#   PRISM_NATS_RUN_DIR       where the config is written (/tmp/prism-nats)
#   PRISM_TLS_CERT, PRISM_TLS_KEY  when both are set, clients must speak TLS
#                            (the same certificate as the services' HTTPS)
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
# Monitoring listens on loopback only: its /connz?auth=1 shows the clients'
# token and /subsz every subject, so only the container's own healthcheck
# (or the pod's exec probes) may reach it.
tls=""
if [ -n "${PRISM_TLS_CERT:-}" ] && [ -n "${PRISM_TLS_KEY:-}" ]; then
  for f in "$PRISM_TLS_CERT" "$PRISM_TLS_KEY"; do
    case $f in
      *[!A-Za-z0-9._/-]*)
        echo "prism-nats: TLS file names may hold only letters, digits and ._/-" >&2
        exit 2 ;;
    esac
  done
  tls="tls {
  cert_file: \"$PRISM_TLS_CERT\"
  key_file: \"$PRISM_TLS_KEY\"
}"
fi
cat > "$dir/nats.conf" <<CONF
# written by prism-nats at start
listen: "0.0.0.0:$port"
http: "127.0.0.1:$monitor"
authorization {
  token: "$PRISM_TOKEN"
}
$tls
CONF
exec "$(command -v nats-server || echo /usr/sbin/nats-server)" -c "$dir/nats.conf" "$@"
