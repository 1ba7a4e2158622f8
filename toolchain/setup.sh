#!/usr/bin/env bash
# Idempotent set-up of everything perpsim needs, inside the checkout:
#   .venv/                 Python environment (pinned by pyproject.toml + toolchain/constraints.txt)
#   node_modules/          solc (WebAssembly), anvil and cast from npm (pinned by package-lock.json)
#   .solcx/solc-v0.8.37    the offline compiler stand-in, where py-solc-x looks for compilers
#   .venv/.../perpsim_env.pth  points Ape, py-solc-x and matplotlib at folders in the checkout
# Each step is skipped when its inputs have not changed since it last ran, so a second run
# takes well under a second.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
stamps="$root/.cache/stamps"
mkdir -p "$stamps"
export PIP_CACHE_DIR="$root/.cache/pip" npm_config_cache="$root/.cache/npm" PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'perpsim setup: %s\n' "$*" >&2; }
# stale STAMP INPUT...: true when STAMP is missing or older than any input
stale() { local stamp="$stamps/$1"; shift; [ ! -f "$stamp" ] && return 0; for f in "$@"; do [ "$f" -nt "$stamp" ] && return 0; done; return 1; }

python_bin="${PERPSIM_PYTHON:-python3}"
if ! command -v "$python_bin" >/dev/null; then say "python3 not found; install Python 3.10-3.12"; exit 1; fi
if ! command -v npm >/dev/null; then say "npm not found; install Node.js 18+ with npm (Debian: apt-get install nodejs npm)"; exit 1; fi

if [ ! -x .venv/bin/python ] || stale python pyproject.toml toolchain/constraints.txt; then
  say "installing the Python environment in .venv (about 40 s the first time)"
  [ -x .venv/bin/python ] || "$python_bin" -m venv .venv
  .venv/bin/python -m pip install -q -c toolchain/constraints.txt -e ".[test]"
  touch "$stamps/python"
fi

if [ ! -x node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil ] || stale npm package.json package-lock.json; then
  say "installing solc, anvil and cast from npm"
  # Optional dependencies carry anvil's native binary: never --omit=optional.
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch "$stamps/npm"
fi

# The compiler stand-in, registered where py-solc-x finds installed compilers.
solc_version="$(.venv/bin/python -c 'import yaml; print(yaml.safe_load(open("ape-config.yaml"))["solidity"]["version"])')"
standin=".solcx/solc-v$solc_version"
if [ ! -x "$standin" ] || stale solc toolchain/solc-standin.cjs ape-config.yaml; then
  mkdir -p .solcx
  printf '#!/bin/sh\nexec node "%s/toolchain/solc-standin.cjs" "$@"\n' "$root" > "$standin"
  chmod +x "$standin"
  got="$("$standin" --version | sed -n 's/^Version: \([0-9.]*\)+.*/\1/p')"
  if [ "$got" != "$solc_version" ]; then say "npm solc is $got but ape-config.yaml pins $solc_version"; exit 1; fi
  touch "$stamps/solc"
fi

# Hermetic state for every Python process of this environment (ape, pytest, perpsim), activated or not.
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
pth="$site/perpsim_env.pth"
if [ ! -f "$pth" ] || stale env toolchain/setup.sh; then
  cat > "$pth" <<PTH
import os; os.environ.setdefault('APE_DATA_FOLDER', '$root/.ape'); os.environ.setdefault('SOLCX_BINARY_PATH', '$root/.solcx'); os.environ.setdefault('MPLCONFIGDIR', '$root/.cache/matplotlib'); os.environ['PATH'] = '$root/toolchain/bin' + os.pathsep + os.environ.get('PATH', '') if not os.environ.get('PATH', '').startswith('$root/toolchain/bin') else os.environ['PATH']
PTH
  touch "$stamps/env"
fi
