// Convolutions as im2col + cuBLAS SGEMM (W [cout, cin*k] x cols [cin*k, T])
// with a bias/activation epilogue; depthwise convs directly; transposed convs
// as one GEMM over the stacked phases (like the CPU's direct path) and an
// interleave. CPU twins: src/backend/cpu/conv.rs and direct.rs.
#include "common.cuh"

// cols[(i*k + j), t] = x[i, t - padl + j*dil] (0 outside x); cols is dense
// [cin*k, n] with n output columns.
VX_EXTERN void vx_im2col(const float *x, View xm, float *cols, int k, int dil, int padl, int n) {
    long long total = (long long)xm.rows * k * n;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int t = (int)(e % n);
        long long row = e / n;
        int j = (int)(row % k), i = (int)(row / k);
        int s = t - padl + j * dil;
        cols[e] = (s >= 0 && s < xm.cols) ? x[vx_at(xm, i, s)] : 0.0f;
    }
}

// In place after a GEMM wrote (or accumulated into) y: y += bias[row], then
// ReLU when relu != 0.
VX_EXTERN void vx_bias_act(float *y, View ym, const float *bias, int relu) {
    long long total = (long long)ym.rows * ym.cols;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int r = (int)(e / ym.cols), c = (int)(e % ym.cols);
        long long k = vx_at(ym, r, c);
        float v = y[k] + bias[r];
        y[k] = relu ? fmaxf(v, 0.0f) : v;
    }
}

// Depthwise conv (one input channel per output channel), "same" padding.
VX_EXTERN void vx_depthwise(const float *w, const float *bias, const float *x, View xm, float *y,
                            View ym, int k, int dil, int mode) {
    int pad = dil * (k - 1) / 2;
    long long total = (long long)ym.rows * ym.cols;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int c = (int)(e / ym.cols), t = (int)(e % ym.cols);
        float acc = bias[c];
        for (int j = 0; j < k; ++j) {
            int s = t + j * dil - pad;
            if (s >= 0 && s < xm.cols) acc += w[c * k + j] * x[vx_at(xm, c, s)];
        }
        long long o = vx_at(ym, c, t);
        if (mode == 1) acc = fmaxf(acc, 0.0f);
        if (mode == 2) acc += y[o];
        y[o] = acc;
    }
}

// Transposed conv (kernel 2u, stride u, padding u/2) from the stacked-phase
// product ph [u*cout, L+1] (row r*cout + o, column t = b + W_r x[t] + W_{r+u} x[t-1]
// without bias): y[o, n] = ph[((n + u/2) % u)*cout + o, (n + u/2) / u] + bias[o].
VX_EXTERN void vx_convt_interleave(const float *ph, const float *bias, float *y, View ym, int u,
                                   int cout, int l) {
    long long total = (long long)ym.rows * ym.cols;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        int o = (int)(e / ym.cols), n = (int)(e % ym.cols);
        int q = n + u / 2;
        y[vx_at(ym, o, n)] = ph[((long long)(q % u) * cout + o) * (l + 1) + q / u] + bias[o];
    }
}
