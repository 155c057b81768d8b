# Shared by scripts/run and scripts/test: a project virtualenv with requirements.txt installed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
STAMP=".venv/.requirements.sha"
WANT="$(cat requirements.txt constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
  echo "installing requirements into .venv (log: .venv/pip.log)" >&2
  if ! { .venv/bin/python -m pip install --disable-pip-version-check --upgrade pip \
         && .venv/bin/python -m pip install --disable-pip-version-check -r requirements.txt -c constraints.txt; } \
       > .venv/pip.log 2>&1; then
    tail -n 40 .venv/pip.log >&2
    exit 1
  fi
  echo "$WANT" > "$STAMP"
fi
# Notice boards as PNG need a CJK font (PDF uses reportlab's built-in STSong-Light): Debian's
# fonts-wqy-microhei, installed once when missing.
if [ ! -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] && command -v apt-get >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei) >/dev/null 2>&1 \
      || echo "could not install fonts-wqy-microhei: PNG notice boards are unavailable" >&2
  elif command -v sudo >/dev/null; then
    (sudo apt-get update -qq && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei) \
      >/dev/null 2>&1 || echo "could not install fonts-wqy-microhei: PNG notice boards are unavailable" >&2
  fi
fi
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
