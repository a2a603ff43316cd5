// Rotary position embedding on bf16 queries/keys [n, heads·hd], in place; the two halves of
// each head are the two coordinates of each rotated pair (as the CPU backend and Hugging
// Face's LLaMA). The backward pass is the transposed rotation. cos/sin: [context, hd/2] fp32.
#include "common.cuh"

__device__ __forceinline__ void rope_apply(bf16* x, const float* cosv, const float* sinv, int n, int heads,
                                           int hd, int context, float sign) {
    const int half = hd / 2;
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;  // over n · heads · half
    if (i >= (long)n * heads * half) return;
    const int k = i % half;
    const long rh = i / half;  // row · heads + head
    const long row = rh / heads;
    const int t = row % context;
    bf16* h = x + rh * hd;
    const float c = cosv[t * half + k], s = sign * sinv[t * half + k];
    const float x1 = __bfloat162float(h[k]), x2 = __bfloat162float(h[k + half]);
    h[k] = __float2bfloat16(x1 * c - x2 * s);
    h[k + half] = __float2bfloat16(x2 * c + x1 * s);
}

extern "C" __global__ void rope_forward_bf16(bf16* x, const float* cosv, const float* sinv, int n, int heads,
                                             int hd, int context) {
    rope_apply(x, cosv, sinv, n, heads, hd, context, 1.0f);
}

extern "C" __global__ void rope_backward_bf16(bf16* x, const float* cosv, const float* sinv, int n, int heads,
                                              int hd, int context) {
    rope_apply(x, cosv, sinv, n, heads, hd, context, -1.0f);
}
