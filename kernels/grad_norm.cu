// The global gradient norm: each block writes the sum of squares of its fixed slice of the
// flat gradient buffer (a tree inside the block, no atomics), and the host adds the partials
// in order in f64, so the norm does not depend on scheduling. Clipping is applied as the
// grad_scale of the AdamW step.
#include "common.cuh"

// grid: (blocks), block 1024; block b reduces elements [b·chunk, (b+1)·chunk).
extern "C" __global__ void grad_norm_forward_f32(float* partials, const float* grads, long len, long chunk) {
    __shared__ float scratch[32];
    const long start = (long)blockIdx.x * chunk;
    const long end = min(start + chunk, len);
    float s = 0.0f;
    for (long i = start + threadIdx.x; i < end; i += blockDim.x) s += grads[i] * grads[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}
