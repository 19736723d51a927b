#!/usr/bin/env bash
# Set up a virtual environment with the test tools and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check src tests benchmarks examples fuzz
# A one-node Slurm for the factory tests: installs Debian's slurm-wlm and munge when root,
# starts them if not running, does nothing when Slurm already answers (their tests skip if not).
bash tests/slurm_setup.sh || echo "run-tests.sh: Slurm is not available; its tests will skip"
exec .venv/bin/python -m pytest "$@"
