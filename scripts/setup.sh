#!/usr/bin/env bash
# Set up a development environment in .venv: cleanfit (editable) with its test dependencies.
# torch is pinned by requirements-dev.txt to the CPU build that lies on the development machines' disk.
# Headless Chromium (for the HTML report test) is installed with apt-get when running as root.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "setup: chromium could not be installed; the report screenshot test will say so"
fi
echo "setup: ready (.venv)"
