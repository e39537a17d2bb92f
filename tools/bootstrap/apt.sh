#!/usr/bin/env bash
# Debian packages lazyshift's local stack and tests need. Idempotent: installs only what is
# missing, and runs `apt-get update` only when something has to be installed.
set -euo pipefail
PKGS=(mariadb-server mariadb-client python3-venv nodejs npm ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm may come from elsewhere (e.g. a preinstalled Node 20): accept a working `node`.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
# python3-venv: Debian's own python3 must make venvs (the Ansible venv is built from it, so the
# local inventory's targets share its interpreter); a preinstalled pyenv python3 does not count.
if /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then missing=("${missing[@]/python3-venv}"); fi
read -r -a missing <<< "${missing[*]}"
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || { echo "Go is needed to build FerretDB: apt-get install golang-go (>= 1.22) or install Go" >&2; exit 1; }
