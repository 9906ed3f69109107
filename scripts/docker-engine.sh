#!/bin/sh
# A Docker engine for the container tests and for developers, as root:
#
#   scripts/docker-engine.sh start   installs Debian's docker.io and debootstrap if
#                                    missing, starts dockerd if none answers, and
#                                    makes the debian:bookworm base images if none
#                                    exist and none can be pulled
#   scripts/docker-engine.sh stop    stops dockerd if `start` started it
#   scripts/docker-engine.sh status  says whether an engine answers (exit 0) or not
#
# A daemon this script starts gives its bridges addresses from 198.18.0.0/15
# (the benchmarking range, used nowhere else) and never from the private
# ranges; a daemon already running keeps its own configuration. Every step
# prints what it does on stderr; `start` exits 77 when no engine can run here
# (no root, no kernel support), which tests read as "skip".
set -eu

STATE=${PRISM_DOCKER_STATE:-/run/prism-docker}
PIDFILE=$STATE/dockerd.pid
# The default bridge, then the pool user networks (compose's) are cut from.
BIP=198.19.255.1/24
POOL=198.18.0.0/16
RELEASE=bookworm

say() { echo "docker-engine: $*" >&2; }

# Debian's client: the engine is Debian's too, and a newer client elsewhere on
# PATH may want plugins (buildx) that Debian does not ship.
docker_cli() {
    if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker; fi
}

answers() {
    cli=$(docker_cli 2>/dev/null) || return 1
    [ -n "$cli" ] && timeout 10 "$cli" info >/dev/null 2>&1
}

install_packages() {
    missing=''
    command -v dockerd >/dev/null 2>&1 || missing="$missing docker.io"
    command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
    command -v docker-compose >/dev/null 2>&1 || missing="$missing docker-compose"
    [ -z "$missing" ] && return 0
    say "installing$missing"
    # Recommends come along (as they did where this was tried), but not
    # needrestart, which would restart services of the machine.
    # shellcheck disable=SC2086 # one word a package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing needrestart- >&2 || {
        apt-get update -q >&2 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing needrestart- >&2
    }
}

start_daemon() {
    mkdir -p "$STATE"
    cat >"$STATE/daemon.json" <<EOF
{
  "bip": "$BIP",
  "default-address-pools": [{"base": "$POOL", "size": 24}],
  "log-level": "warn"
}
EOF
    # dockerd turns iptables' FORWARD policy to DROP; `stop` puts back what was
    iptables -S FORWARD 2>/dev/null | sed -n 's/^-P FORWARD //p' >"$STATE/forward-policy" || true
    say "starting dockerd (bridges from 198.18.0.0/15; log in $STATE/dockerd.log)"
    # Own process group: the caller's signals do not stop it mid-test.
    setsid dockerd --config-file "$STATE/daemon.json" --pidfile "$PIDFILE" \
        >"$STATE/dockerd.log" 2>&1 </dev/null &
    i=0
    while [ $i -lt 60 ]; do
        answers && return 0
        if [ -f "$PIDFILE" ] && ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then break; fi
        sleep 1
        i=$((i + 1))
    done
    say "dockerd did not come up; the end of its log:"
    tail -n 15 "$STATE/dockerd.log" >&2 || true
    stop_daemon
    return 1
}

stop_daemon() {
    [ -f "$PIDFILE" ] || return 0
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping dockerd ($pid)"
        kill "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 30 ]; do
            sleep 1
            i=$((i + 1))
        done
    fi
    rm -f "$PIDFILE"
    policy=$(cat "$STATE/forward-policy" 2>/dev/null || true)
    if [ -n "$policy" ]; then
        iptables -P FORWARD "$policy" 2>/dev/null || true
        rm -f "$STATE/forward-policy"
    fi
}

# debian:RELEASE and debian:RELEASE-slim, pulled or else made offline-capable
# from Debian's archive: a minbase debootstrap, imported. The slim tag drops
# documentation and locales the way Debian's slim images do.
base_images() {
    cli=$(docker_cli)
    if "$cli" image inspect "debian:$RELEASE" >/dev/null 2>&1 &&
        "$cli" image inspect "debian:$RELEASE-slim" >/dev/null 2>&1; then
        return 0
    fi
    if timeout 60 "$cli" pull -q "debian:$RELEASE" >/dev/null 2>&1 &&
        timeout 60 "$cli" pull -q "debian:$RELEASE-slim" >/dev/null 2>&1; then
        say "pulled debian:$RELEASE and debian:$RELEASE-slim"
        return 0
    fi
    root=$(mktemp -d "${TMPDIR:-/tmp}/prism-rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    mirror=${PRISM_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' \
        /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)}
    say "no debian:$RELEASE image: making one with debootstrap from ${mirror:-the default mirror}"
    debootstrap --variant=minbase "$RELEASE" "$root" ${mirror:+"$mirror"} >"$STATE/debootstrap.log" 2>&1 || {
        say "debootstrap failed; the end of its log:"
        tail -n 15 "$STATE/debootstrap.log" >&2
        return 1
    }
    # as Debian's own images: apt keeps no caches in a layer
    cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . | "$cli" import - "debian:$RELEASE" >/dev/null
    mkdir -p "$root/etc/dpkg/dpkg.cfg.d"
    cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
    rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
    tar -C "$root" -c . | "$cli" import - "debian:$RELEASE-slim" >/dev/null
    rm -rf "$root"
    trap - EXIT
    say "made debian:$RELEASE and debian:$RELEASE-slim"
}

case ${1:-} in
start)
    if [ "$(id -u)" != 0 ]; then
        answers && { base_images; exit 0; }
        say "not root and no engine answers: cannot start one"
        exit 77
    fi
    mkdir -p "$STATE"
    install_packages || { say "could not install the engine's packages"; exit 77; }
    if answers; then
        say "an engine is running already; its configuration is kept"
    else
        start_daemon || exit 77
    fi
    base_images
    ;;
stop)
    stop_daemon
    ;;
status)
    answers
    ;;
*)
    sed -n '2,16s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
