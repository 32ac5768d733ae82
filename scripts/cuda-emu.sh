#!/usr/bin/env bash
# scripts/cuda-emu.sh CMD [ARGS...]: build the emulated CUDA libraries if
# needed (tools/cuda-emu, its own Cargo workspace, into target/cuda-emu),
# and run CMD with them on the library path, so that voxide's CUDA backend
# runs on the CPU: `scripts/cuda-emu.sh target/release/voxide speak --device
# cuda ...`. The emulator answers to libcuda.so(.1), libcublas.so(.12) and
# libnvrtc.so(.12); it forwards NVRTC to the real library from
# scripts/fetch-nvrtc.sh (fetched here when missing) and compiles the kernels
# for the host with g++. Its device calls itself "voxide emulated CUDA
# device (CPU)". See docs/cuda.md ("Without a GPU: the emulator").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
  echo "usage: scripts/cuda-emu.sh CMD [ARGS...]" >&2
  exit 2
fi
command -v g++ >/dev/null || { echo "cuda-emu: g++ is needed (apt-get install -y g++)" >&2; exit 1; }
out="$here/target/cuda-emu"
nvrtc_dir=$("$here/scripts/fetch-nvrtc.sh")
(cd "$here/tools/cuda-emu" && CARGO_TARGET_DIR="$out" cargo build --release --quiet)
mkdir -p "$out/lib"
for name in libcuda.so libcuda.so.1 libcublas.so libcublas.so.12 libnvrtc.so libnvrtc.so.12; do
  ln -sfn ../release/libvoxide_cuda_emu.so "$out/lib/$name"
done
export VOXIDE_EMU_NVRTC="$nvrtc_dir/libnvrtc.so.12"
export VOXIDE_EMU_CACHE="${VOXIDE_EMU_CACHE:-$out/modules}"
export LD_LIBRARY_PATH="$out/lib:$nvrtc_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$@"
