#!/bin/sh
# Install Debian's chromium for the report's browser test (tests/test_report.py).
# Idempotent: does nothing when a chromium is already on PATH. Needs root (or sudo) and apt.
# Usage (Makefile / CI):  sh tests/browser/install-chromium.sh
set -eu
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        echo "install-chromium: $(command -v "$name") already installed"
        exit 0
    fi
done
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
# another apt run (e.g. a parallel CI step) holds the dpkg lock for a while: wait for it
i=0
until $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; do
    i=$((i + 1))
    if [ "$i" -ge 20 ]; then
        echo "install-chromium: apt-get install chromium failed" >&2
        exit 1
    fi
    [ "$i" -eq 1 ] && $SUDO apt-get update -qq || true
    sleep 15
done
echo "install-chromium: $(command -v chromium)"
