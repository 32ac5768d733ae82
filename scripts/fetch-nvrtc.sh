#!/usr/bin/env bash
# Put NVRTC (libnvrtc.so.12 + builtins) from the PyPI wheel
# nvidia-cuda-nvrtc-cu12 into target/nvrtc/lib, so that tests/cuda.rs can
# compile every CUDA kernel on a machine without a GPU or a CUDA install.
# Idempotent; needs python3 + pip. Prints the library directory.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dest="${1:-$here/target/nvrtc/lib}"
version=12.9.86
if ls "$dest"/libnvrtc.so.12 >/dev/null 2>&1; then
  echo "$dest"
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --disable-pip-version-check \
  --only-binary=:all: --platform manylinux_2_17_x86_64 --platform manylinux2010_x86_64 \
  "nvidia-cuda-nvrtc-cu12==$version" -d "$tmp" >/dev/null
python3 - "$tmp" "$dest" <<'PY'
import sys, zipfile, glob, os
tmp, dest = sys.argv[1:3]
whl = glob.glob(os.path.join(tmp, "nvidia_cuda_nvrtc_cu12-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    for m in z.namelist():
        if m.startswith("nvidia/cuda_nvrtc/lib/") and ".so" in m:
            out = os.path.join(dest, os.path.basename(m))
            with z.open(m) as src, open(out + ".part", "wb") as f:
                f.write(src.read())
            os.replace(out + ".part", out)
PY
ls "$dest"/libnvrtc.so.12 >/dev/null
echo "$dest"
