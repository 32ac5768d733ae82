// LayerNorm over channels (rows) for each column, eps 1e-5; one block per
// column, a shared-memory tree reduction. CPU twin: elementwise::layer_norm.
#include "common.cuh"

__device__ __forceinline__ float vx_erf_gelu(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

__device__ float vx_block_sum(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

// x = LN(x + r) (has_r) or LN(x); then GELU when gelu != 0.
// blockDim.x is a power of two; dynamic shared memory blockDim.x floats.
VX_EXTERN void vx_layer_norm(float *x, View xm, const float *res, View rm, int has_r,
                             const float *gamma, const float *beta, int gelu) {
    extern __shared__ float sh[];
    int c = blockIdx.x;
    if (c >= xm.cols) return;
    float s = 0.0f;
    for (int r = threadIdx.x; r < xm.rows; r += blockDim.x) {
        float v = x[vx_at(xm, r, c)];
        if (has_r) {
            v += res[vx_at(rm, r, c)];
            x[vx_at(xm, r, c)] = v;
        }
        s += v;
    }
    float mean = vx_block_sum(s, sh) / xm.rows;
    float q = 0.0f;
    for (int r = threadIdx.x; r < xm.rows; r += blockDim.x) {
        float d = x[vx_at(xm, r, c)] - mean;
        q += d * d;
    }
    float inv = rsqrtf(vx_block_sum(q, sh) / xm.rows + 1e-5f);
    for (int r = threadIdx.x; r < xm.rows; r += blockDim.x) {
        float n = (x[vx_at(xm, r, c)] - mean) * inv * gamma[r] + beta[r];
        x[vx_at(xm, r, c)] = gelu ? vx_erf_gelu(n) : n;
    }
}
