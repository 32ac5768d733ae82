// Inverse rational-quadratic spline (duration predictor flows), one thread per
// column: z[t] <- RQS^-1(z[t]; theta[:, t]) with widths/heights divided by
// wh_scale, tail bound 5, linear tails, min bin size and derivative 1e-3.
// CPU twin: elementwise::rqs_inverse.
#include "common.cuh"

#define VX_MAX_BINS 64

__device__ float vx_softplus(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

__device__ void vx_knots(const float *theta, View thm, int t, int row0, int k, float wh_scale,
                         float tail, float *out) {
    const float MIN = 1e-3f;
    float mx = VX_NEG_INF;
    for (int i = 0; i < k; ++i) mx = fmaxf(mx, theta[vx_at(thm, row0 + i, t)] / wh_scale);
    float s = 0.0f;
    for (int i = 0; i < k; ++i) s += expf(theta[vx_at(thm, row0 + i, t)] / wh_scale - mx);
    out[0] = -tail;
    float cum = 0.0f;
    for (int i = 0; i < k; ++i) {
        float p = expf(theta[vx_at(thm, row0 + i, t)] / wh_scale - mx) / s;
        cum += MIN + (1.0f - MIN * k) * p;
        out[i + 1] = 2.0f * tail * cum - tail;
    }
    out[k] = tail;
}

VX_EXTERN void vx_rqs_inverse(float *z, View zm, const float *theta, View thm, int k, float wh_scale) {
    const float TAIL = 5.0f, MIN_D = 1e-3f;
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= zm.cols || k > VX_MAX_BINS || k < 1) return;
    long long zi = vx_at(zm, 0, t);
    float y = z[zi];
    if (!(y >= -TAIL && y <= TAIL)) return;
    float xk[VX_MAX_BINS + 1], yk[VX_MAX_BINS + 1];
    vx_knots(theta, thm, t, 0, k, wh_scale, TAIL, xk);
    vx_knots(theta, thm, t, k, k, wh_scale, TAIL, yk);
    float kappa = logf(expf(1.0f - MIN_D) - 1.0f);
    int bin = 0;
    for (int j = 0; j <= k; ++j) {
        float kn = j == k ? yk[j] + 1e-6f : yk[j];
        if (y >= kn) bin = j;
    }
    if (bin > k - 1) bin = k - 1;
    float d0 = (bin == 0) ? MIN_D + vx_softplus(kappa)
                          : MIN_D + vx_softplus(theta[vx_at(thm, 2 * k + bin - 1, t)]);
    float d1 = (bin + 1 == k) ? MIN_D + vx_softplus(kappa)
                              : MIN_D + vx_softplus(theta[vx_at(thm, 2 * k + bin, t)]);
    float x0 = xk[bin], w = xk[bin + 1] - xk[bin];
    float y0 = yk[bin], h = yk[bin + 1] - yk[bin];
    float s = h / w, dy = y - y0, ss = d0 + d1 - 2.0f * s;
    float a = dy * ss + h * (s - d0);
    float b = h * d0 - dy * ss;
    float c = -s * dy;
    float disc = fmaxf(b * b - 4.0f * a * c, 0.0f);
    float xi = (2.0f * c) / (-b - sqrtf(disc));
    z[zi] = xi * w + x0;
}
