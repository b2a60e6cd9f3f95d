#!/usr/bin/env bash
# Builds a real kube-apiserver (Kubernetes 1.20.2) from Debian bookworm's
# `kubernetes` source package, for the tests that check Apiary against a
# real API server (tests/src/kube.rs). Everything comes from Debian: the
# source, Go 1.19 (golang-go), etcd 3.4 (etcd-server, which the tests run
# next to it) and reflect2 1.0.2, which replaces the vendored 1.0.1 that
# corrupts memory under Go >= 1.18 (the server dies on the first custom
# resource it stores).
#
# Usage: bash scripts/kube-apiserver.sh
#   The binary is cached outside the checkout, at
#   ${APIARY_CACHE:-$HOME/.cache/apiary}/kube-apiserver-1.20.2/kube-apiserver;
#   its path is printed on stdout (the only line there, so
#   `bin=$(bash scripts/kube-apiserver.sh)` works); progress goes to stderr.
#   Idempotent: with a cached binary that runs `--version` it does nothing.
#   The first build takes 6-10 minutes and about 1.5 GB of RAM, and needs
#   root for apt (a deb-src entry, apt-get update, build dependencies).
#   APIARY_KEEP_SRC=1 keeps the source tree (about 1.5 GB after a build).
set -euo pipefail

# stdout carries only the binary's path; everything else goes to stderr.
exec 3>&1 1>&2

version=1.20.2
cache=${APIARY_CACHE:-$HOME/.cache/apiary}
dir=$cache/kube-apiserver-$version
bin=$dir/kube-apiserver
start=$(date +%s)
log() { echo "kube-apiserver.sh: $* ($(($(date +%s) - start))s)"; }
done_() {
  log "ready: $bin"
  echo "$bin" >&3
  exit 0
}
cached() { [ -x "$bin" ] && "$bin" --version >/dev/null 2>&1; }

if cached; then
  done_
fi

mkdir -p "$dir"
# One build at a time per cache directory.
exec 9>"$dir/.lock"
log "waiting for the lock on $dir"
flock 9
if cached; then
  done_
fi

as_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "kube-apiserver.sh: need root to: $*" >&2
    exit 1
  fi
}
export DEBIAN_FRONTEND=noninteractive

# --- deb-src ------------------------------------------------------------------
# The source package lives in bookworm main. If apt has no deb-src for it,
# add one for the mirror that is already configured for Debian's main
# archive (deb822 `.sources` or one-line `.list` format), falling back to
# deb.debian.org.
has_source() {
  apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: .*really$version"
}
if ! has_source; then
  as_root "add a deb-src entry"
  codename=bookworm
  if [ -r /etc/os-release ]; then
    # shellcheck source=/dev/null
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  fi
  shopt -s nullglob
  deb822=()
  for f in /etc/apt/sources.list.d/*.sources; do deb822+=("$f"); done
  shopt -u nullglob
  stanza=""
  if [ ${#deb822[@]} -gt 0 ]; then
    # The first stanza of type deb whose Suites has the bare codename.
    stanza=$(awk -v want="$codename" '
      function flush() {
        if (types ~ /(^|[ \t])deb([ \t]|$)/ && (" " suites " ") ~ ("[ \t]" want "[ \t]") && !found) {
          print "Types: deb-src"; print "URIs: " uris; print "Suites: bookworm"
          print "Components: main"
          if (signed != "") print "Signed-By: " signed
          found = 1
        }
        types = ""; suites = ""; uris = ""; signed = ""
      }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]*#/ { next }
      tolower($1) == "types:" { sub(/^[^:]*:[ \t]*/, ""); types = $0 }
      tolower($1) == "suites:" { sub(/^[^:]*:[ \t]*/, ""); suites = $0 }
      tolower($1) == "uris:" { sub(/^[^:]*:[ \t]*/, ""); uris = $0 }
      tolower($1) == "signed-by:" { sub(/^[^:]*:[ \t]*/, ""); signed = $0 }
      END { flush() }
    ' "${deb822[@]}")
  fi
  if [ -n "$stanza" ]; then
    log "adding /etc/apt/sources.list.d/apiary-deb-src.sources (same mirror as the configured deb entry)"
    printf '%s\n' "$stanza" >/etc/apt/sources.list.d/apiary-deb-src.sources
  else
    line=""
    if [ -r /etc/apt/sources.list ]; then
      # deb [options] URI suite components...
      line=$(awk -v want="$codename" '$1 == "deb" {
          opts = ""; i = 2
          if ($2 ~ /^\[/) { opts = $2; i = 3; while (opts !~ /\]$/ && i <= NF) { opts = opts " " $i; i++ } }
          if ($(i + 1) == want) { print "deb-src " (opts != "" ? opts " " : "") $i " bookworm main"; exit }
        }' /etc/apt/sources.list)
    fi
    [ -n "$line" ] || line="deb-src http://deb.debian.org/debian bookworm main"
    log "adding /etc/apt/sources.list.d/apiary-deb-src.list: $line"
    echo "$line" >/etc/apt/sources.list.d/apiary-deb-src.list
  fi
  log "apt-get update"
  apt-get update -qq
  has_source || {
    echo "kube-apiserver.sh: apt has no source package kubernetes *really$version" >&2
    exit 1
  }
fi

# --- build dependencies -------------------------------------------------------
reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
packages=(golang-go etcd-server golang-github-modern-go-reflect2-dev dpkg-dev make rsync jq util-linux)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  as_root "apt-get install ${missing[*]}"
  log "apt-get install ${missing[*]}"
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    log "apt-get update, then install again"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi
log "$(go version), etcd $(etcd --version | awk 'NR == 1 { print $3 }')"
[ -f "$reflect2/reflect2.go" ] || {
  echo "kube-apiserver.sh: no reflect2 sources at $reflect2" >&2
  exit 1
}

# --- source -------------------------------------------------------------------
work=$dir/work
rm -rf "$work"
mkdir -p "$work"
log "apt-get source kubernetes into $work"
(cd "$work" && apt-get source -qq kubernetes) 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name "kubernetes-*really$version" | head -n1)
[ -n "$src" ] && [ -f "$src/Makefile" ] || {
  echo "kube-apiserver.sh: apt-get source did not unpack kubernetes-*really$version under $work" >&2
  exit 1
}
log "unpacked $(basename "$src")"

old=$(grep -m1 '^# github.com/modern-go/reflect2 ' "$src/vendor/modules.txt" || true)
log "replacing vendored reflect2 (${old#\# }) with Debian's $(dpkg-query -W -f='${Version}' golang-github-modern-go-reflect2-dev)"
rsync -a --delete --exclude '*_test.go' "$reflect2/" "$src/vendor/github.com/modern-go/reflect2/"

# --- build --------------------------------------------------------------------
# The Debian tree is no git checkout: give the version explicitly. The tree
# builds in GOPATH mode (hack/lib/init.sh sets GO111MODULE=off) from vendor/,
# so no module proxy is involved.
cat >"$work/version-vars" <<EOF
KUBE_GIT_COMMIT='faecb196815e248d3ecfb03c680a4507229c2a56'
KUBE_GIT_TREE_STATE='clean'
KUBE_GIT_VERSION='v$version'
KUBE_GIT_MAJOR='1'
KUBE_GIT_MINOR='20'
EOF
log "make WHAT=cmd/kube-apiserver (6-10 minutes)"
(
  cd "$src"
  env -u GOFLAGS -u GO111MODULE GOPROXY=off CGO_ENABLED=0 \
    KUBE_GIT_VERSION_FILE="$work/version-vars" HOME="$work" \
    make WHAT=cmd/kube-apiserver
)
built=$src/_output/bin/kube-apiserver
[ -x "$built" ] || {
  echo "kube-apiserver.sh: make produced no $built" >&2
  exit 1
}
cp -L "$built" "$bin.tmp"
"$bin.tmp" --version
mv -f "$bin.tmp" "$bin"
log "built $bin ($(du -h "$bin" | cut -f1))"

if [ "${APIARY_KEEP_SRC:-0}" != 1 ]; then
  log "removing the source tree (APIARY_KEEP_SRC=1 keeps it)"
  rm -rf "$work"
fi
done_
