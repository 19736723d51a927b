#!/usr/bin/env bash
# Set up a virtual environment with the test tools and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/ruff check src tests benchmarks examples fuzz
# The pure layers are typed strictly: protocol (bytes <-> messages) and core (events -> instructions).
.venv/bin/mypy --strict src/work_queue/protocol src/work_queue/core
# A one-node Slurm for the factory tests: installs Debian's slurm-wlm and munge when root,
# starts them if not running, does nothing when Slurm already answers (their tests skip if not).
bash tests/slurm_setup.sh || echo "run-tests.sh: Slurm is not available; its tests will skip"
# Headless Chromium for the status page test: Debian's chromium, installed only when missing
# (as root with apt-get); tests/test_status_page.py skips with a reason when there is none.
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends chromium) >/dev/null 2>&1 || true
    fi
    command -v chromium >/dev/null 2>&1 || \
        echo "run-tests.sh: chromium is not available; the status page test will skip"
fi
# Coffea 0.7 (the TopCoffea slides' version) pins an old numpy and awkward, so it gets a venv of
# its own with this package; tests/test_coffea.py runs its example there (about a minute to set up).
if [ -z "${WQ_COFFEA_PYTHON:-}" ]; then
    if [ ! -x .venv-coffea/bin/python ]; then python3 -m venv .venv-coffea; fi
    if .venv-coffea/bin/pip install -q --disable-pip-version-check 'coffea==0.7.31' -e .; then
        export WQ_COFFEA_PYTHON="$PWD/.venv-coffea/bin/python"
    else
        echo "run-tests.sh: coffea 0.7.31 could not be installed; its tests will skip"
    fi
fi
exec .venv/bin/python -m pytest "$@"
