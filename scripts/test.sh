#!/usr/bin/env bash
# Every test, in both runtimes; `make test` (after `make setup`) and CI run this.
# Each stage writes JUnit XML; the last line sums them up.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 RASA_TELEMETRY_ENABLED=false TOKENIZERS_PARALLELISM=false
out=results/junit
rm -rf "$out" && mkdir -p "$out"
status=0

stage() { printf '\n==> %s\n' "$1"; }

stage "unit tests, action runtime (Python 3.11)"
.venvs/actions/bin/python -m pytest -q -p no:cacheprovider --junitxml="$out/actions.xml" \
  tests/actions tests/knowledge_base tests/analytics tests/console tests/scripts || status=1

stage "unit tests, Rasa runtime (Python 3.10)"
.venvs/rasa/bin/python -m pytest -q -p no:cacheprovider --junitxml="$out/rasa.xml" \
  tests/bot tests/connectors tests/stories || status=1

stage "end-to-end: Redis + action server + Rasa server"
.venvs/actions/bin/python -m pytest -q -p no:cacheprovider --junitxml="$out/e2e.xml" tests/e2e || status=1

.venvs/actions/bin/python scripts/junit_summary.py "$out"/*.xml || status=1
exit $status
