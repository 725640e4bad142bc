#!/usr/bin/env bash
# Renders a verification report (report.html of `nopekit verify --report DIR` or of
# `nopekit extend`, in OUT/report) in headless Chromium and saves a full-page screenshot, so a
# person can look at the page as a browser draws it. A dev-time check, not part of CI (CI parses
# the HTML and SVG as XML instead). Needs `apt-get install chromium`.
#
#   scripts/dev/screenshot_report.sh REPORT_DIR [OUT.png] [WIDTH] [HEIGHT]
set -euo pipefail
dir=${1:?usage: screenshot_report.sh REPORT_DIR [OUT.png] [WIDTH] [HEIGHT]}
out=${2:-$dir/report.png}
width=${3:-1280}
height=${4:-2600}
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$browser" ] || { echo "no chromium found: apt-get install chromium" >&2; exit 1; }
page=$(cd "$dir" && pwd)/report.html
[ -f "$page" ] || { echo "$page does not exist" >&2; exit 1; }
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --allow-file-access-from-files \
  --window-size="$width,$height" --screenshot="$out" "file://$page" 2>/dev/null
echo "wrote $out"
