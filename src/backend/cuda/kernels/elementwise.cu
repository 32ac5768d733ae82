// Element-wise ops: one thread per element of a 2-D view (grid-stride loop).
// CPU twins: src/backend/cpu/mod.rs (leaky_relu, gate_tanh_sigmoid, tanh,
// axpy, scale, copy, flip_rows, embed, expand_prior).
#include "common.cuh"

#define VX_FOR_EACH(v)                                                        \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x;      \
         i < (long long)(v).rows * (v).cols;                                  \
         i += (long long)gridDim.x * blockDim.x)

VX_EXTERN void vx_leaky_relu(const float *x, View xm, float *y, View ym, float slope) {
    VX_FOR_EACH(ym) {
        int r = (int)(i / ym.cols), c = (int)(i % ym.cols);
        float v = x[vx_at(xm, r, c)];
        y[vx_at(ym, r, c)] = v >= 0.0f ? v : v * slope;
    }
}

// y = tanh(a[0:C]) * sigmoid(a[C:2C]).
VX_EXTERN void vx_gate_tanh_sigmoid(const float *a, View am, float *y, View ym) {
    VX_FOR_EACH(ym) {
        int r = (int)(i / ym.cols), c = (int)(i % ym.cols);
        float t = a[vx_at(am, r, c)];
        float s = a[vx_at(am, r + ym.rows, c)];
        y[vx_at(ym, r, c)] = tanhf(t) * (1.0f / (1.0f + expf(-s)));
    }
}

VX_EXTERN void vx_tanh(float *x, View xm) {
    VX_FOR_EACH(xm) {
        int r = (int)(i / xm.cols), c = (int)(i % xm.cols);
        long long k = vx_at(xm, r, c);
        x[k] = tanhf(x[k]);
    }
}

// y += alpha * x
VX_EXTERN void vx_axpy(float alpha, const float *x, View xm, float *y, View ym) {
    VX_FOR_EACH(ym) {
        int r = (int)(i / ym.cols), c = (int)(i % ym.cols);
        y[vx_at(ym, r, c)] += alpha * x[vx_at(xm, r, c)];
    }
}

VX_EXTERN void vx_scale(float alpha, float *x, View xm) {
    VX_FOR_EACH(xm) {
        int r = (int)(i / xm.cols), c = (int)(i % xm.cols);
        x[vx_at(xm, r, c)] *= alpha;
    }
}

VX_EXTERN void vx_copy(const float *x, View xm, float *y, View ym) {
    VX_FOR_EACH(ym) {
        int r = (int)(i / ym.cols), c = (int)(i % ym.cols);
        y[vx_at(ym, r, c)] = x[vx_at(xm, r, c)];
    }
}

// y = x with the row order reversed.
VX_EXTERN void vx_flip_rows(const float *x, View xm, float *y, View ym) {
    VX_FOR_EACH(ym) {
        int r = (int)(i / ym.cols), c = (int)(i % ym.cols);
        y[vx_at(ym, r, c)] = x[vx_at(xm, xm.rows - 1 - r, c)];
    }
}

// y[:, t] = table[ids[t], :] * scale; table is [symbols, y.rows]; an id
// outside the table gives a zero column.
VX_EXTERN void vx_embed(const float *table, long long symbols, const long long *ids, float scale,
                        float *y, View ym) {
    VX_FOR_EACH(ym) {
        int r = (int)(i / ym.cols), c = (int)(i % ym.cols);
        long long id = ids[c];
        y[vx_at(ym, r, c)] = (id >= 0 && id < symbols) ? table[id * ym.rows + r] * scale : 0.0f;
    }
}

// Zero columns [c0, c1) of every row of the view.
VX_EXTERN void vx_zero_cols(float *x, View xm, int c0, int c1) {
    long long w = c1 - c0;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (long long)xm.rows * w;
         i += (long long)gridDim.x * blockDim.x) {
        int r = (int)(i / w), c = c0 + (int)(i % w);
        x[vx_at(xm, r, c)] = 0.0f;
    }
}

// y[:, f] = m[:, owner[f]] + noise[:, f] * exp(logs[:, owner[f]]) * noise_scale;
// ml holds m (rows 0..H) and logs (rows H..2H); owner 0xffffffff -> zero column.
VX_EXTERN void vx_expand_prior(const float *ml, View mlm, const unsigned *owner, const float *noise,
                               float noise_scale, float *y, View ym) {
    VX_FOR_EACH(ym) {
        int r = (int)(i / ym.cols), c = (int)(i % ym.cols);
        unsigned t = owner[c];
        float out = 0.0f;
        if (t != 0xffffffffu) {
            float m = ml[vx_at(mlm, r, (int)t)];
            float l = ml[vx_at(mlm, r + ym.rows, (int)t)];
            out = noise[(long long)r * ym.cols + c] * expf(l) * noise_scale + m;
        }
        y[vx_at(ym, r, c)] = out;
    }
}
