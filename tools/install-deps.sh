#!/usr/bin/env bash
# Installs the Debian packages the project uses, only those that are missing.
# Quick when everything is there; needs root (or sudo) to install.
set -euo pipefail
want=(build-essential luajit libluajit-5.1-dev libopenblas-openmp-dev libcriterion-dev
      libstb-dev libjansson-dev pkg-config gnuplot-nox)
if [ "${RECLF_EXTRA_DEPS:-}" != "" ]; then
  read -r -a extra <<<"$RECLF_EXTRA_DEPS"
  want+=("${extra[@]}")
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "install-deps: missing packages (${missing[*]}) and not root; install them with apt-get" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
