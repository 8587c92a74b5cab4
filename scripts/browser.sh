#!/usr/bin/env bash
# Make sure Debian's Chromium is installed for the browser tests (tests/browser/, driven by Playwright through
# `executable_path`: Playwright's own browser downloads are never used). Idempotent: does nothing when the
# browser is already there; FAILS (never falls back) when it cannot be installed.
# AVA_CHROMIUM overrides the browser path (default /usr/bin/chromium, the Debian package's).
set -euo pipefail
chromium="${AVA_CHROMIUM:-/usr/bin/chromium}"

works() { "$chromium" --version >/dev/null 2>&1; }

if [ -x "$chromium" ]; then
  works || { echo "ERROR: $chromium is installed but does not run ('$chromium --version' failed)" >&2; exit 1; }
  exit 0
fi
if [ "$chromium" != /usr/bin/chromium ]; then
  echo "ERROR: AVA_CHROMIUM=$chromium does not exist (unset it to install Debian's /usr/bin/chromium)" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ERROR: Chromium is missing at /usr/bin/chromium and apt-get is not available: install Chromium," \
    "then set AVA_CHROMIUM to its path" >&2
  exit 1
fi
if [ "$(id -u)" = 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "ERROR: Chromium is missing at /usr/bin/chromium; install it as root: apt-get install -y chromium" >&2
  exit 1
fi

echo "installing Chromium (Debian package) for the browser tests"
export DEBIAN_FRONTEND=noninteractive
# A fresh CI image has empty package lists: refresh them once when the first attempt cannot find the package.
if ! "${as_root[@]}" apt-get install -y -q chromium; then
  "${as_root[@]}" apt-get update -q
  "${as_root[@]}" apt-get install -y -q chromium || {
    echo "ERROR: 'apt-get install chromium' failed: the browser tests need Debian's Chromium" >&2
    exit 1
  }
fi
if ! { [ -x "$chromium" ] && works; }; then
  echo "ERROR: Chromium was installed but $chromium is missing or does not run" \
    "(on Ubuntu the package is a snap stub: set AVA_CHROMIUM to a real Chromium)" >&2
  exit 1
fi
echo "Chromium installed: $("$chromium" --version)"
