#!/bin/sh
# Before the test suite: the browser test needs chromium and chromedriver (Debian packages).
# As root with apt-get, install them when missing; otherwise say that the browser leg skips.
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver for the browser test (apt-get)"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q chromium chromium-driver >/dev/null; }; then
        exit 0
    fi
    echo "NOTICE: apt-get could not install chromium; the browser test will be skipped."
    exit 0
fi
echo "NOTICE: chromium/chromedriver missing and not root: the browser test" \
     "(tests/test_example_browser.py) will be skipped."
