// SwiGLU: g = silu(h1) ⊙ h3 (bf16 in and out, fp32 arithmetic) and its gradient from the
// fp32 dg written by the down projection's backward matrix product.
#include "common.cuh"

extern "C" __global__ void swiglu_forward_bf16(bf16* g, const bf16* h1, const bf16* h3, long len) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    const float a = __bfloat162float(h1[i]), b = __bfloat162float(h3[i]);
    const float sig = 1.0f / (1.0f + __expf(-a));
    g[i] = __float2bfloat16(a * sig * b);
}

// d silu(a)/da = σ(a)·(1 + a·(1 − σ(a))).
extern "C" __global__ void swiglu_backward_bf16(bf16* dh1, bf16* dh3, const float* dg, const bf16* h1,
                                                const bf16* h3, long len) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    const float a = __bfloat162float(h1[i]), b = __bfloat162float(h3[i]);
    const float sig = 1.0f / (1.0f + __expf(-a));
    const float silu = a * sig;
    dh1[i] = __float2bfloat16(dg[i] * b * sig * (1.0f + a * (1.0f - sig)));
    dh3[i] = __float2bfloat16(dg[i] * silu);
}
