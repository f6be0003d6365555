#!/bin/sh
# make install's first step: a working virtual environment at VENV, made by PYTHON when there is none.
#
#     tools/venv.sh VENV PYTHON
#
# - a VENV without a working python and pip (left so by a `python3 -m venv` that failed halfway, e.g. Debian without
#   python3-venv) is removed and made again; a folder that is not a virtual environment is never removed;
# - PYTHON (and an existing VENV's python) must be Python 3.10 or newer, else the message says what was found.
set -eu
venv=$1
python=$2
at_least_310='import sys; sys.exit(sys.version_info < (3, 10))'

if [ -e "$venv" ] && ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    if [ ! -f "$venv/pyvenv.cfg" ]; then
        echo "$venv is not a virtual environment (no pyvenv.cfg) and has no working pip: move it away or set VENV" >&2
        exit 1
    fi
    echo "$venv has no working python or pip (a venv that failed halfway?): removing it and making it again"
    rm -rf "$venv"
fi
if [ -e "$venv" ]; then
    if ! "$venv/bin/python" -c "$at_least_310"; then
        echo "$venv runs $("$venv/bin/python" --version 2>&1); vlmlearn needs Python 3.10 or newer:" \
             "rm -rf $venv, then make install PYTHON=python3.11" >&2
        exit 1
    fi
    exit 0
fi
if ! "$python" -c "$at_least_310" 2>/dev/null; then
    found=$("$python" --version 2>&1) || found="no interpreter named $python"
    echo "vlmlearn needs Python 3.10 or newer (3.11 or newer for make site); PYTHON=$python gives: $found." >&2
    echo "Install a newer Python (python.org, pyenv, uv python install 3.11, apt-get install python3.11) and run" \
         "make install PYTHON=python3.11" >&2
    exit 1
fi
if ! "$python" -m venv "$venv" || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    rm -rf "$venv"
    echo "$python -m venv $venv failed (on Debian and Ubuntu: apt-get install python3-venv, or the" \
         "python3.X-venv of your version)" >&2
    exit 1
fi
