#!/usr/bin/env bash
# Regenerate the committed example report: the default run, written to reports/default/.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf reports/default
mkdir -p reports/default
gradxval run --out reports/default --quiet "$@" | tee reports/default/terminal.txt || true
# the lock file and an empty logs/ belong to a live run, not to the example
rm -f reports/default/.gradxval.lock
rmdir reports/default/logs 2>/dev/null || true
# results.jsonl of the default run is a few MB; keep it compressed in the repository
gzip -9 -f reports/default/results.jsonl
# the README's screenshot, where Playwright and the distribution's Chromium are installed
if python -c "import playwright" 2>/dev/null && [ -x /usr/bin/chromium ]; then
  python scripts/screenshot.py reports/default/report.html reports/default/report.png
fi
