#!/usr/bin/env bash
# Set up a virtual environment and run the demo: a manager with local workers compressing files.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
exec .venv/bin/python examples/gzip_demo.py "$@"
