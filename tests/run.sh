#!/usr/bin/env bash
# The whole test run from a clean checkout (README's test command; .ci/run calls it).
# 1. the package with its test extra; 2. the independent readers the tests check outputs
# with: exiftool and ICC profiles (Debian packages) and GIMP 3 (a Debian trixie chroot built
# by ../shared/gimp3/gimp3-chroot.sh, reused when present); 3. pytest.
# Steps 2 need root and apt; without them the tests that need those tools are skipped
# with a reason (never silently passed).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[test]"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! command -v exiftool >/dev/null || [ ! -f /usr/share/color/icc/colord/AdobeRGB1998.icc ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq libimage-exiftool-perl colord-data >/dev/null 2>&1 \
            || { apt-get update -qq && apt-get install -y -qq libimage-exiftool-perl colord-data >/dev/null; } \
            || echo "tests/run.sh: could not install exiftool/colord-data; their tests will be skipped" >&2
    fi
    CHROOT="${REFOCUS_GIMP3_CHROOT:-/tmp/gimp3-trixie}"
    GIMP_SCRIPT="../shared/gimp3/gimp3-chroot.sh"
    if [ ! -x "$CHROOT/usr/bin/gimp-console-3.0" ] && [ -f "$GIMP_SCRIPT" ] && [ "${REFOCUS_SKIP_GIMP:-0}" != 1 ]; then
        echo "tests/run.sh: building the GIMP 3 chroot in $CHROOT (a few minutes, once)" >&2
        bash "$GIMP_SCRIPT" "$CHROOT" >/tmp/gimp3-chroot.log 2>&1 \
            || echo "tests/run.sh: GIMP 3 chroot build failed (log: /tmp/gimp3-chroot.log); GIMP tests will be skipped" >&2
    fi
else
    echo "tests/run.sh: not root or no apt: exiftool/ICC/GIMP tests may be skipped" >&2
fi
python -m pytest -q tests "$@"
