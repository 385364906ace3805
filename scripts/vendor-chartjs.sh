#!/usr/bin/env bash
# Refresh the console's vendored Chart.js from the npm registry: `npm pack` checks the
# tarball against the registry's integrity, and the file, its licence and VENDORED
# (version, integrity, sha256) are replaced together. Usage: scripts/vendor-chartjs.sh [4.6.2]
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-4.6.2}
dest=src/wellcar/server/api/console/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "chart.js@$version" >/dev/null && tar xzf chart.js-*.tgz)
integrity=$(npm view "chart.js@$version" dist.integrity)
cp "$work/package/dist/chart.umd.min.js" "$dest/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$dest/chart.js.LICENSE.md"
cat >"$dest/VENDORED" <<END
# What is vendored here, from the npm registry (scripts/vendor-chartjs.sh refreshes it).
package=chart.js
version=$version
file=dist/chart.umd.min.js
integrity=$integrity
sha256=$(sha256sum "$dest/chart.umd.min.js" | cut -d' ' -f1)
END
echo "vendored chart.js $version into $dest"
