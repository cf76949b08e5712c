#!/usr/bin/env bash
# Headless Chromium for the dashboard's browser test: Debian's `chromium` package.
# (Playwright's own browser download does not work on these machines: the test drives
# /usr/bin/chromium through the Python playwright package instead.)
# Prints the browser's path on success; exits 1 (saying why) when it cannot be had, and the
# browser test then skips with that reason. Never asks: installs only as root with apt-get.
set -uo pipefail
BROWSER=${REBALANCER_CHROMIUM:-/usr/bin/chromium}
if [ -x "$BROWSER" ]; then echo "$BROWSER"; exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "browser.sh: $BROWSER missing; install Debian's chromium (apt-get install chromium)" >&2
  exit 1
fi
echo "browser.sh: installing Debian's chromium (once)..." >&2
if ! { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
       apt-get install -y -q --no-install-recommends chromium >/dev/null; }; then
  echo "browser.sh: apt-get could not install chromium" >&2
  exit 1
fi
[ -x "$BROWSER" ] && echo "$BROWSER" && exit 0
echo "browser.sh: chromium installed but $BROWSER not found" >&2
exit 1
