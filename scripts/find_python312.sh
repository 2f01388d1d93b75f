#!/usr/bin/env bash
# Print the path of a working Python 3.12 interpreter, or nothing. A pyenv shim on PATH may
# exist yet refuse to run, so every candidate is run, not just looked up.
works() { "$@" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; }

if works python3.12; then
    python3.12 -c 'import sys; print(sys.executable)'
    exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.12(\.|$)' | sort -rV); do
        if PYENV_VERSION="$v" works python3.12; then
            PYENV_VERSION="$v" python3.12 -c 'import sys; print(sys.executable)'
            exit 0
        fi
    done
fi
for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /usr/bin/python3.12 /usr/local/bin/python3.12; do
    if [ -x "$candidate" ] && works "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
exit 0
