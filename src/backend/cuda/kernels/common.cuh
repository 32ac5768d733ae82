// Shared helpers for voxide's CUDA kernels. Views are 2-D [rows, cols] with a
// row stride `ld` and a start offset `off`, exactly like the Rust `Mat`.
#pragma once
#define VX_EXTERN extern "C" __global__

struct View {
    long long off;
    int rows;
    int cols;
    int ld;
};

__device__ __forceinline__ long long vx_at(View v, int r, int c) {
    return v.off + (long long)r * v.ld + c;
}

// NVRTC has no <math.h> macros.
#define VX_NEG_INF __int_as_float(0xff800000)
