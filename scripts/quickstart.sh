#!/usr/bin/env bash
# Command 1: set up once, then export the bundled digits model to Core ML and verify it. Works offline after the
# first install: the model ships in the repository (models/digits_v2_x0_5.pt). Run it again any time.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/setup.sh
. scripts/setup.sh

ensure_venv "coreml"
step "exporting models/digits_v2_x0_5.pt to Core ML (exports/digits)"
sdeploy export --weights models/digits_v2_x0_5.pt --target coreml --out exports/digits --force
step "verifying exports/digits against eager PyTorch"
sdeploy verify exports/digits --samples 16

cat <<'NEXT'

Done. Your artifacts are in exports/digits:
  exports/digits/v2_x0_5.mlpackage   Core ML classifier (image in, class label and probabilities out)
  exports/digits/sdeploy.json        the manifest: weights, input contract, hashes, tool versions
  exports/digits/labels.txt          the 10 digit classes

What next (activate the environment first: . .venv/bin/activate):
  sdeploy export --arch v2_x0_5 --target coreml          the ImageNet model (downloads its weights once)
  sdeploy export --weights models/digits_v2_x0_5.pt --target all --out exports/digits
                                                          every format; then: sdeploy verify exports/digits
  sdeploy bundle --app ios --from exports/digits          put the model into the iOS demo app
  sdeploy doctor                                          what this machine can export, run and build
NEXT
