#!/usr/bin/env bash
# Idempotent set-up on Debian bookworm (run as root): system packages, local services,
# the .venv with the project, and Debian's gfal2 binding made importable from the venv.
# Re-running it is fast: every step checks first and does nothing when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"

APT_PACKAGES=(
  python3 python3-venv python3-dev build-essential
  gfal2 gfal2-plugin-http gfal2-plugin-file gfal2-util-scripts python3-gfal2
  xrootd-server xrootd-client xrootd-scitokens-plugins   # WLCG bearer tokens at the WebDAV endpoint
  oidc-agent-cli             # how the DAQ and people get tokens (device flow, refresh) from the identity provider
  swig libssl-dev            # M2Crypto, needed by the fts3 client
  postgresql postgresql-client rabbitmq-server
  procps psmisc curl openssl
)

log() { printf '[setup] %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# PostgreSQL on 127.0.0.1:5432 with trust auth (the production-grade backend the tests use).
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  hba=/etc/postgresql/$ver/main/pg_hba.conf
  if ! grep -q "cygno-dm trust" "$hba"; then
    log "configuring PostgreSQL $ver for trust auth on loopback"
    sed -i '1i host all all 127.0.0.1/32 trust # cygno-dm trust\nlocal all all trust # cygno-dm trust' "$hba"
  fi
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

# RabbitMQ with STOMP (Rucio Hermes events); optional for the embedded default.
if command -v rabbitmq-server >/dev/null; then
  if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
    log "starting RabbitMQ"; rabbitmq-server -detached || true
    for _ in $(seq 60); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 1; done
  fi
  if ! rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_stomp; then
    rabbitmq-plugins enable rabbitmq_stomp >/dev/null 2>&1 || log "warning: could not enable rabbitmq_stomp"
  fi
fi

# The virtualenv, on Debian's Python 3.11 (the interpreter python3-gfal2 is built for).
PY=/usr/bin/python3
if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
fi
stamp="$VENV/.cygno-dm-installed"
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing the project into $VENV"
  "$VENV/bin/pip" install -q -e ".[test]"
  echo "$want" > "$stamp"
fi

# Debian's gfal2 binding: PyPI's gfal2-python does not build against Debian's gfal2 2.21.
site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
so=$(dpkg -L python3-gfal2 | grep -E '/gfal2\..*\.so$' | head -1)
[ -e "$site/$(basename "$so")" ] || ln -sf "$so" "$site/"
"$VENV/bin/python" -c 'import gfal2, rucio, cygno_dm' || { echo "setup: venv import check failed" >&2; exit 1; }
log "ready: $VENV"
