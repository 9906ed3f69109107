#!/bin/sh
# prism-tls-init: a TLS certificate signed by the cluster's CA, for the
# names and addresses clients use, written where the services read it
# (PRISM_TLS_CERT, PRISM_TLS_KEY, PRISM_TLS_CA). The chart runs it as the init
# container of every pod when tls.enabled is set; compose's
# docker-compose.tls.yml runs it once, as the one-shot service tls-init, for
# every service. A new key and certificate each run; the CA stays.
#   PRISM_TLS_CA_DIR      the CA: ca.crt and ca.key (the Secret tls.secretName)
#                         (/etc/prism/ca). Its key stays with this program: the
#                         services get only the CA's certificate.
#   PRISM_TLS_MAKE_CA     1: make the CA there first when there is none (compose:
#                         the directory is private to this program, mode 0700)
#   PRISM_TLS_OWNER       UID:GID to give tls.key to (compose runs this as root
#                         for the services' user, 10001:10001)
#   PRISM_TLS_DIR         written here: tls.crt, tls.key (mode 0600) and ca.crt,
#                         a copy of the CA's certificate (/etc/prism/tls)
#   PRISM_TLS_DNS_NAMES   DNS names, separated by spaces: each also with
#                         .NAMESPACE, .NAMESPACE.svc and .NAMESPACE.svc.DOMAIN
#   PRISM_TLS_IP_ADDRESSES  IP addresses, separated by spaces (the pod's IP)
#   PRISM_TLS_EXTRA_NAMES DNS names or IP addresses, separated by spaces, named
#                         as they are (what clients outside the cluster use)
#   PRISM_TLS_NAMESPACE   the pod's namespace (the downward API's metadata.namespace)
#   PRISM_TLS_CLUSTER_DOMAIN  the cluster's DNS domain (cluster.local)
#   PRISM_TLS_DAYS        how long the certificate is valid (365)
# localhost, 127.0.0.1 and ::1 are always named (probes, port-forwards).
set -eu
ca=${PRISM_TLS_CA_DIR:-/etc/prism/ca}
out=${PRISM_TLS_DIR:-/etc/prism/tls}
ns=${PRISM_TLS_NAMESPACE:-}
domain=${PRISM_TLS_CLUSTER_DOMAIN:-cluster.local}
days=${PRISM_TLS_DAYS:-365}
die() { echo "prism-tls-init: $*" >&2; exit 2; }
[ -d "$out" ] || { mkdir -p "$out" && chmod 755 "$out"; } || die "cannot make $out"
if [ "${PRISM_TLS_MAKE_CA:-}" = 1 ] && [ ! -s "$ca/ca.key" ]; then
  (umask 077 && mkdir -p "$ca" && chmod 0700 "$ca" &&
   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
     -keyout "$ca/ca.key" -out "$ca/ca.crt" -days 3650 -subj "/CN=Prism cluster CA" \
     2>/dev/null) || die "cannot make a CA in $ca"
  echo "prism-tls-init: made a CA in $ca"
fi
for f in "$ca/ca.crt" "$ca/ca.key"; do
  [ -r "$f" ] || die "cannot read $f (the CA Secret holds ca.crt and ca.key)"
done
case $days in ''|*[!0-9]*) die "PRISM_TLS_DAYS must be a number of days" ;; esac
case $ns$domain in *[!A-Za-z0-9.-]*) die "bad namespace or cluster domain" ;; esac
san="DNS:localhost,IP:127.0.0.1,IP:::1"
first=""
for n in ${PRISM_TLS_DNS_NAMES:-}; do
  case $n in
    *[!A-Za-z0-9.-]*|.*|*.) die "not a DNS name: $n" ;;
  esac
  [ -n "$first" ] || first=$n
  san="$san,DNS:$n"
  if [ -n "$ns" ]; then
    san="$san,DNS:$n.$ns,DNS:$n.$ns.svc,DNS:$n.$ns.svc.$domain"
  fi
done
ips=${PRISM_TLS_IP_ADDRESSES:-}
for n in ${PRISM_TLS_EXTRA_NAMES:-}; do
  case $n in
    *:*) ips="$ips $n"; continue ;;  # IPv6
    *[!0-9.]*) ;;                    # a DNS name
    *) ips="$ips $n"; continue ;;    # IPv4
  esac
  case $n in
    *[!A-Za-z0-9.-]*|.*|*.) die "not a DNS name or an IP address: $n" ;;
  esac
  [ -n "$first" ] || first=$n
  san="$san,DNS:$n"
done
for a in $ips; do
  case $a in
    *[!0-9A-Fa-f.:]*) die "not an IP address: $a" ;;
  esac
  san="$san,IP:$a"
done
umask 077
tmp=$(mktemp -d "$out/.new.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "basicConstraints = critical, CA:FALSE" \
  "keyUsage = critical, digitalSignature" \
  "extendedKeyUsage = serverAuth, clientAuth" \
  "subjectAltName = $san" > "$tmp/ext"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tmp/tls.key" -subj "/CN=${first:-prism}" -out "$tmp/tls.csr" 2>"$tmp/log" ||
  { cat "$tmp/log" >&2; die "cannot make a key"; }
openssl x509 -req -in "$tmp/tls.csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
  -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/ext" \
  -out "$tmp/tls.crt" 2>"$tmp/log" ||
  { cat "$tmp/log" >&2; die "cannot sign the certificate with $ca/ca.key"; }
# a CA key that does not belong to ca.crt would make certificates nobody trusts
openssl verify -CAfile "$ca/ca.crt" "$tmp/tls.crt" >/dev/null 2>"$tmp/log" ||
  { cat "$tmp/log" >&2; die "the certificate does not verify against $ca/ca.crt"; }
cp "$ca/ca.crt" "$tmp/ca.crt"
chmod 600 "$tmp/tls.key"
chmod 644 "$tmp/tls.crt" "$tmp/ca.crt"
if [ -n "${PRISM_TLS_OWNER:-}" ]; then
  case $PRISM_TLS_OWNER in *[!0-9:]*|:*|*:) die "PRISM_TLS_OWNER must be UID:GID" ;; esac
  chown "$PRISM_TLS_OWNER" "$tmp/tls.key" || die "cannot give tls.key to $PRISM_TLS_OWNER"
fi
for f in ca.crt tls.key tls.crt; do mv -f "$tmp/$f" "$out/$f"; done
echo "prism-tls-init: $out/tls.crt for $san"
