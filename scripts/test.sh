#!/usr/bin/env bash
# Command 2: set up once (system packages when root, the environment, the web demo's npm packages), then run
# every test with the README's test command. .ci/run runs this very script.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

# Debian/Ubuntu packages for the demo tests: Kotlin + JUnit (Android core), Chromium (web demo).
missing=()
command -v kotlinc >/dev/null || missing+=(kotlin)
[ -e /usr/share/java/junit4.jar ] || missing+=(junit4)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]} (apt-get, as root)"
    if ! { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
        echo "cannot install ${missing[*]} (not root, no sudo?): run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
        echo "the tests that need them will be skipped" >&2
    fi
fi

ensure_venv "all,test"
step "installing the web demo's locked npm packages (web_demo/node_modules)"
(cd web_demo && npm ci --no-audit --no-fund --loglevel=error)

step "running the tests: python -m pytest -n 2 (about 25 minutes on 2 cores)"
python -m pytest -n 2
