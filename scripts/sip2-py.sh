#!/usr/bin/env bash
# Installs the independent SIP2 peers the bridge's end-to-end test runs
# (tests/sip2/requirements.txt: pysip2, a SIP2 server framework, and Sip2, a
# SIP2 client, both from PyPI) into target/sip2-venv. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/sip2-venv
REQ=tests/sip2/requirements.txt
if [ -x "$VENV/bin/python" ] && cmp -s "$REQ" "$VENV/requirements.txt"; then
  echo "sip2-py: $VENV is up to date"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
cp "$REQ" "$VENV/requirements.txt"
echo "sip2-py: installed $(tr '\n' ' ' < <(grep -v '^#' "$REQ"))into $VENV"
