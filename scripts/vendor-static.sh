#!/usr/bin/env bash
# Re-vendor the browser libraries (htmx, its SSE extension, Pico CSS, Swagger UI) into
# static/vendor/ from the npm registry, at the pinned versions below, and record them in
# static/vendor/VERSIONS; and axe-core, which only the browser tests load (e2e/vendor/). Run by
# hand when upgrading.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HTMX=2.0.11          # htmx 4 breaks htmx-ext-sse: stay on 2.x
HTMX_SSE=2.2.4
PICO=2.1.1
SWAGGER_UI=5.18.2   # the API explorer at /schema/swagger (app/http/swagger.py)
AXE=4.14.1          # accessibility checks in the browser tests (e2e/test_accessibility.py)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "htmx.org@$HTMX" "htmx-ext-sse@$HTMX_SSE" "@picocss/pico@$PICO" "swagger-ui-dist@$SWAGGER_UI" "axe-core@$AXE" >/dev/null)
for tarball in "$work"/*.tgz; do tar -xzf "$tarball" -C "$work" && mv "$work/package" "$work/$(basename "$tarball" .tgz)"; done

mkdir -p static/vendor
cp "$work/htmx.org-$HTMX/dist/htmx.min.js" static/vendor/htmx.min.js
cp "$work/htmx-ext-sse-$HTMX_SSE/dist/sse.min.js" static/vendor/htmx-ext-sse.min.js
cp "$work/picocss-pico-$PICO/css/pico.min.css" static/vendor/pico.min.css
mkdir -p static/vendor/swagger-ui
for file in swagger-ui-bundle.js swagger-ui-standalone-preset.js swagger-ui.css LICENSE; do
  cp "$work/swagger-ui-dist-$SWAGGER_UI/$file" static/vendor/swagger-ui/
done
mkdir -p e2e/vendor
cp "$work/axe-core-$AXE/axe.min.js" "$work/axe-core-$AXE/LICENSE" e2e/vendor/
echo "axe-core $AXE (axe.min.js, MPL-2.0)" > e2e/vendor/VERSIONS
cat > static/vendor/VERSIONS <<VERSIONS
htmx.org $HTMX (dist/htmx.min.js, BSD-0-Clause)
htmx-ext-sse $HTMX_SSE (dist/sse.min.js, BSD-0-Clause)
@picocss/pico $PICO (css/pico.min.css, MIT)
swagger-ui-dist $SWAGGER_UI (swagger-ui-bundle.js, swagger-ui-standalone-preset.js, swagger-ui.css, Apache-2.0)
VERSIONS
echo "vendored: $(tr '\n' ';' < static/vendor/VERSIONS) $(cat e2e/vendor/VERSIONS)"
