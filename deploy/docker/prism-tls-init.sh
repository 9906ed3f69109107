#!/bin/sh
# prism-tls-init: the certificates of a compose cluster run with
# docker-compose.tls.yml, made once into DIR (a volume every service mounts):
#   ca.pem        the cluster's own CA (ca-key.pem, its key, stays root's, 0600)
#   cert.pem      one certificate for every NAME given, localhost and 127.0.0.1,
#   key.pem       and PRISM_TLS_NAMES; its key is readable by the prism user only
# A restart keeps them; when the names change (a node added) the certificate
# is made again with the same CA, so clients that trust ca.pem keep working.
#   prism-tls-init DIR NAME...
#   PRISM_TLS_NAMES  more names, space- or comma-separated: DNS names, or
#                    IP:ADDRESS (e.g. the host the GCS port is published on)
#   PRISM_UID, PRISM_GID  owner of key.pem (the image's prism user, 10001)
set -eu
[ $# -ge 1 ] || { echo "usage: prism-tls-init DIR NAME..." >&2; exit 2; }
dir=$1
shift
sans="DNS:localhost,IP:127.0.0.1"
for n in "$@" $(printf '%s' "${PRISM_TLS_NAMES:-}" | tr ',' ' '); do
  case $n in
    IP:*[!0-9A-Fa-f.:]*|IP:) echo "prism-tls-init: not an IP address: $n" >&2; exit 2 ;;
    IP:*) sans="$sans,$n" ;;
    DNS:*[!A-Za-z0-9.-]*|*[!A-Za-z0-9.:-]*|DNS:) echo "prism-tls-init: not a DNS name: $n" >&2; exit 2 ;;
    DNS:*) sans="$sans,$n" ;;
    *) sans="$sans,DNS:$n" ;;
  esac
done
umask 077
mkdir -p "$dir"
cd "$dir"
if [ ! -s ca-key.pem ] || [ ! -s ca.pem ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca-key.pem \
    -out ca.pem -days 3650 -subj "/CN=Prism cluster CA" 2>/dev/null
  rm -f names
fi
if [ "$(cat names 2>/dev/null)" != "$sans" ] || [ ! -s cert.pem ] || [ ! -s key.pem ]; then
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout key.new \
    -out req.pem -subj "/CN=prism" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$sans" > ext.cnf
  openssl x509 -req -in req.pem -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 825 \
    -extfile ext.cnf -out cert.new 2>/dev/null
  mv key.new key.pem
  mv cert.new cert.pem
  printf '%s' "$sans" > names
  rm -f req.pem ext.cnf
  echo "prism-tls-init: certificate for $sans"
fi
chmod 0644 ca.pem cert.pem names
chmod 0600 key.pem ca-key.pem
chmod 0755 .
if [ "$(id -u)" -eq 0 ]; then
  chown "${PRISM_UID:-10001}:${PRISM_GID:-10001}" key.pem
fi
