// voxide-cuda-emu: what a CUDA kernel source needs to compile as host C++.
// The emulator prepends this to the (already preprocessed) source; see
// hostcc.rs. Thread and block indices are read through a per-OS-thread
// pointer that the emulator updates whenever it switches to another thread
// of the block, so `threadIdx` is always the running thread's.
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <cstddef>
#include <type_traits>
#include <utility>

struct dim3 {
    unsigned int x, y, z;
};
typedef dim3 uint3;

struct __EmuThread {
    dim3 threadIdx;
    dim3 blockIdx;
    dim3 blockDim;
    dim3 gridDim;
    void *shared;
};

struct __EmuCallbacks {
    void (*syncthreads)(void);
    void (*trap)(const char *);
};

static const __EmuCallbacks *__emu_cb;
static thread_local __EmuThread *__emu_t __attribute__((tls_model("initial-exec")));

#define threadIdx (__emu_t->threadIdx)
#define blockIdx (__emu_t->blockIdx)
#define blockDim (__emu_t->blockDim)
#define gridDim (__emu_t->gridDim)
#define warpSize 32

static inline void __syncthreads(void) { __emu_cb->syncthreads(); }
static inline void __trap(void) { __emu_cb->trap("__trap()"); }
static inline void __threadfence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
static inline void __threadfence_block(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

static inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
static inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
#define __expf expf
#define __logf logf
static inline float __fdividef(float a, float b) { return a / b; }
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }
static inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
static inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
static inline long long min(long long a, long long b) { return a < b ? a : b; }
static inline long long max(long long a, long long b) { return a > b ? a : b; }
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }

// Blocks run on several OS threads at once: atomics are real atomics.
static inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline unsigned atomicAdd(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline float atomicAdd(float *p, float v) {
    unsigned *q = (unsigned *)p;
    unsigned old = __atomic_load_n(q, __ATOMIC_SEQ_CST), want;
    do {
        want = __float_as_uint(__uint_as_float(old) + v);
    } while (!__atomic_compare_exchange_n(q, &old, want, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
    return __uint_as_float(old);
}
static inline int atomicMax(int *p, int v) {
    int old = __atomic_load_n(p, __ATOMIC_SEQ_CST);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return old;
}
static inline int atomicExch(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }

// Trampolines: a kernel's arguments unpacked by its own signature.
template <typename F> struct __EmuSig;
template <typename... A> struct __EmuSig<void(A...)> {
    static constexpr unsigned n = sizeof...(A);
    static const unsigned *sizes() {
        static const unsigned s[] = {(unsigned)sizeof(A)..., 0u};
        return s;
    }
    static const unsigned char *ptrs() {
        static const unsigned char p[] = {(unsigned char)std::is_pointer<A>::value..., 0};
        return p;
    }
    template <std::size_t... I>
    static void call(void (*f)(A...), void **a, std::index_sequence<I...>) {
        f(*static_cast<typename std::remove_cv<A>::type *>(a[I])...);
        (void)a;
    }
    static void invoke(void (*f)(A...), void **a) { call(f, a, std::index_sequence_for<A...>()); }
};

struct __EmuKernel {
    const char *name;
    void (*tramp)(void **);
    unsigned n;
    const unsigned *sizes;
    const unsigned char *ptrs;
    const char *params;
    int barrier;
};

extern "C" __attribute__((visibility("default"))) void __emu_init(const __EmuCallbacks *cb) {
    __emu_cb = cb;
}
extern "C" __attribute__((visibility("default"))) void __emu_bind(__EmuThread *t) { __emu_t = t; }
