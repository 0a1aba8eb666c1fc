#!/usr/bin/env bash
# Everything `make run` and `make test` need, from nothing; each step is skipped when
# its inputs are unchanged (environments, encoder and model are keyed by hashes).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# A Python >= 3.11 to run the set-up scripts (they read pyproject.toml with tomllib).
host_python() {
  for candidate in python3 python3.11 "$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3 2>/dev/null | tail -n1)"; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "error: Python 3.11 is needed to set up (pyenv install 3.11)" >&2; return 1
}

step "redis-server"
if [ -n "${REDIS_URL:-}" ]; then
  echo "using the external Redis in REDIS_URL"
elif command -v redis-server >/dev/null 2>&1; then
  redis-server --version
else
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    redis-server --version
  else
    echo "error: redis-server is missing. Install it (Debian/Ubuntu: sudo apt-get install redis-server)," >&2
    echo "       or point REDIS_URL at a Redis you run." >&2
    exit 1
  fi
fi

step "Chromium for the web-chat browser test"
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  chromium --version 2>/dev/null || true
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver from Debian's packages (no browser downloads)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
  chromium --version
else
  echo "warning: chromium and chromedriver are missing; the browser test will fail." >&2
  echo "         Install them (Debian/Ubuntu: sudo apt-get install chromium chromium-driver)." >&2
fi

PY=$(host_python)
step "Python environments (Rasa 3.10 + actions 3.11)"
"$PY" scripts/envs.py

if [ -f scripts/export_minilm_onnx.py ]; then
  step "MiniLM sentence encoder for the Rasa runtime (ONNX)"
  HF_HUB_OFFLINE=1 .venvs/actions/bin/python scripts/export_minilm_onnx.py
fi

step "FAQ index (FAISS) for the action server"
PYTHONPATH="$PWD" HF_HUB_OFFLINE=1 .venvs/actions/bin/python -m knowledge_base build knowledge_base/faqs \
  --out "${ENGAGE_FAQ_INDEX:-${ENGAGE_CACHE:-$HOME/.cache/engage}/faq-index}"

step "Rasa model"
"$PY" scripts/train.py
