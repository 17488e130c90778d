#!/usr/bin/env bash
# Copies an example run into the docs: results.json to
# docs/examples/results/<example>.json and each PNG to
# docs/examples/img/<example>_<name>.png, <example>.png as it is (the names the
# example pages use).
#   bash scripts/publish_example_run.sh <example> [output dir, default outputs/<example>]
set -euo pipefail
cd "$(dirname "$0")/.."
example=$1
output=${2:-outputs/$example}
[ -f "$output/results.json" ] || { echo "no $output/results.json" >&2; exit 1; }
cp "$output/results.json" "docs/examples/results/$example.json"
for png in "$output"/*.png; do
  [ -e "$png" ] || continue
  name=$(basename "$png")
  [ "$name" = "$example.png" ] || name="${example}_$name"
  cp "$png" "docs/examples/img/$name"
done
echo "published $output -> docs/examples/{results,img}/$example*"
