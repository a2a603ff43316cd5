// Token embedding: out[i, :] = table[tokens[i], :] (fp32 master weights into the fp32
// residual stream) and its gradient, dtable[tokens[i], :] += dout[i, :].
#include "common.cuh"

// grid: (ceil(n·d / 256)), block 256; one element each.
extern "C" __global__ void embedding_forward_f32(float* out, const u32* tokens, const float* table,
                                                 int n, int d) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)n * d) return;
    long row = i / d, col = i % d;
    out[i] = table[(long)tokens[row] * d + col];
}

// Rows may repeat a token, so the sum uses atomics: the order of additions, and so the last
// bits of a repeated token's gradient, may vary between runs (the CPU backend is the
// bit-exact reference).
extern "C" __global__ void embedding_backward_f32(float* dtable, const u32* tokens, const float* dout,
                                                  int n, int d) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long)n * d) return;
    long row = i / d, col = i % d;
    atomicAdd(&dtable[(long)tokens[row] * d + col], dout[i]);
}
