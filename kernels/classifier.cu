// The fused classifier (llm.c's idea): over one chunk of rows of bf16 logits [rows, vp],
// one kernel computes the softmax statistics, the loss, and (with write_grad) overwrites
// the logits with the gradient of grad_scale · Σ losses: grad_scale · (softmax − onehot).
// The host runs the output layer chunk by chunk, so at most one chunk of logits, sized to
// stay in L2, exists at a time. The softmax covers the padded vocabulary, as the CPU
// backend's does (the padded rows of the output layer are trained towards −∞).
#include "common.cuh"

// grid: (rows), block 512; one row per block.
extern "C" __global__ void classifier_forward_backward_bf16(bf16* logits, float* losses, const u32* targets,
                                                            int rows, int vp, float grad_scale, int write_grad) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    bf16* x = logits + (long)row * vp;
    // Online max and sum of exponentials, per thread, then across the block.
    float m = -INFINITY, s = 0.0f;
    for (int j = threadIdx.x; j < vp; j += blockDim.x) {
        const float v = __bfloat162float(x[j]);
        if (v > m) {
            s = s * __expf(m - v) + 1.0f;
            m = v;
        } else {
            s += __expf(v - m);
        }
    }
    const float mx = block_max(m, scratch);
    const float sum = block_sum(m == -INFINITY ? 0.0f : s * __expf(m - mx), scratch);
    const u32 y = targets[row];
    const float target_logit = __bfloat162float(x[y]);
    if (threadIdx.x == 0) losses[row] = mx + logf(sum) - target_logit;
    if (!write_grad) return;
    __syncthreads();  // everyone has read x[y] before it is overwritten
    const float k = grad_scale / sum;
    for (int j = threadIdx.x; j < vp; j += blockDim.x) {
        const float p = __expf(__bfloat162float(x[j]) - mx) * k;
        x[j] = __float2bfloat16(j == (int)y ? p - grad_scale : p);
    }
}
