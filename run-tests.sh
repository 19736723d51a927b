#!/usr/bin/env bash
# Set up a virtual environment with the test tools and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check src tests benchmarks examples fuzz
exec .venv/bin/python -m pytest "$@"
