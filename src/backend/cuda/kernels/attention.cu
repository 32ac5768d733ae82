// Relative-position attention pieces around two cuBLAS GEMMs per head
// (logits = (q/sqrt(d))^T k, y = v P^T). rel_k/rel_v are [2w+1, d] tables;
// row r + w is the offset r = key - query; outside the window the term is 0.
// CPU twin: src/backend/cpu/attention.rs.
#include "common.cuh"

// logits[i, j] += (q_i * scale) . rel_k[j - i + w] for |j - i| <= w.
// q is the head's [d, t] view; one thread per (i, offset).
VX_EXTERN void vx_rel_logits(const float *q, View qm, const float *rel_k, int w, float scale,
                             float *logits, int t) {
    int d = qm.rows;
    long long total = (long long)t * (2 * w + 1);
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int i = (int)(e / (2 * w + 1)), r = (int)(e % (2 * w + 1));
        int j = i + r - w;
        if (j < 0 || j >= t) continue;
        float s = 0.0f;
        for (int c = 0; c < d; ++c) s += q[vx_at(qm, c, i)] * scale * rel_k[r * d + c];
        logits[(long long)i * t + j] += s;
    }
}

// Row softmax of a dense [t, t] matrix, in place; one block per row.
VX_EXTERN void vx_softmax_rows(float *logits, int t) {
    extern __shared__ float sh[];
    int i = blockIdx.x;
    if (i >= t) return;
    float *row = logits + (long long)i * t;
    float m = VX_NEG_INF;
    for (int j = threadIdx.x; j < t; j += blockDim.x) m = fmaxf(m, row[j]);
    sh[threadIdx.x] = m;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    m = sh[0];
    __syncthreads();
    float sum = 0.0f;
    for (int j = threadIdx.x; j < t; j += blockDim.x) {
        float e = expf(row[j] - m);
        row[j] = e;
        sum += e;
    }
    sh[threadIdx.x] = sum;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    float inv = 1.0f / sh[0];
    for (int j = threadIdx.x; j < t; j += blockDim.x) row[j] *= inv;
}

// y[c, i] += sum over |j - i| <= w of P[i, j] * rel_v[j - i + w, c]; one thread per (c, i).
VX_EXTERN void vx_rel_values(const float *p, const float *rel_v, int w, int t, float *y, View ym) {
    int d = ym.rows;
    long long total = (long long)d * t;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int c = (int)(e / t), i = (int)(e % t);
        float s = 0.0f;
        for (int r = 0; r <= 2 * w; ++r) {
            int j = i + r - w;
            if (j >= 0 && j < t) s += p[(long long)i * t + j] * rel_v[r * d + c];
        }
        y[vx_at(ym, c, i)] += s;
    }
}
