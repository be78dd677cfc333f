#!/bin/sh
# ctest's test_sdk_js: builds the package and runs its tests against the lelantosd given as $1.
# Skipped (77) when the dev dependencies are not installed (tools/setup.sh runs npm ci here).
# Where the repository has the OpenAPI document, src/schema.ts must be what it generates.
set -e
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/tsc ]; then
  echo "SKIPPED: tools/sdk-js/node_modules is missing (tools/setup.sh runs npm ci there)"
  exit 77
fi
if [ -f ../../docs/openapi.json ]; then
  node scripts/gen-types.mjs --check
else
  echo "note: no docs/openapi.json in this tree: src/schema.ts not checked against it"
fi
node scripts/build.mjs
node node_modules/typescript/bin/tsc -p test/tsconfig.json # the .d.ts as a TypeScript user meets them
LELANTOSD="$1" exec node --test test/
