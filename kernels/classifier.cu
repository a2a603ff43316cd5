// The fused classifier (llm.c's idea): over one chunk of rows of bf16 logits [rows, vp],
// one kernel computes the softmax statistics, the loss, and (with write_grad) overwrites
// the logits with the gradient of grad_scale · Σ losses: grad_scale · (softmax − onehot).
// The host runs the output layer chunk by chunk, so at most one chunk of logits exists at a
// time. The softmax covers the padded vocabulary, as the CPU backend's does (the padded rows
// of the output layer are trained towards −∞).
//
// The row is read twice and written once, so the kernel is bound by memory: when vp is a
// multiple of 8 (the padded vocabulary is a multiple of 64) it moves 16 bytes (8 logits) per
// load and store; rows are then 16-byte aligned.
#include "common.cuh"

// Folds 8 logits into a running (max, Σ exp(x − max)).
__device__ __forceinline__ void fold8(float& m, float& s, const float* v) {
    float m8 = v[0];
    for (int e = 1; e < 8; e++) m8 = fmaxf(m8, v[e]);
    if (m8 > m) {
        s = (m == -INFINITY) ? 0.0f : s * __expf(m - m8);
        m = m8;
    }
    for (int e = 0; e < 8; e++) s += __expf(v[e] - m);
}

__device__ __forceinline__ void unpack8(const uint4& u, float* v) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&u);
    for (int e = 0; e < 4; e++) {
        const float2 f = __bfloat1622float2(h[e]);
        v[2 * e] = f.x;
        v[2 * e + 1] = f.y;
    }
}

__device__ __forceinline__ uint4 pack8(const float* v) {
    uint4 u;
    __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&u);
    for (int e = 0; e < 4; e++) h[e] = __floats2bfloat162_rn(v[2 * e], v[2 * e + 1]);
    return u;
}

// grid: (rows), block 512; one row per block.
extern "C" __global__ void classifier_forward_backward_bf16(bf16* logits, float* losses, const u32* targets,
                                                            int rows, int vp, float grad_scale, int write_grad) {
    __shared__ float scratch[32];
    const int row = blockIdx.x;
    if (row >= rows) return;
    bf16* x = logits + (long)row * vp;
    const bool vec = vp % 8 == 0;
    // Online max and sum of exponentials, per thread, then across the block.
    float m = -INFINITY, s = 0.0f;
    if (vec) {
        const uint4* x8 = reinterpret_cast<const uint4*>(x);
        for (int j = threadIdx.x; j < vp / 8; j += blockDim.x) {
            float v[8];
            unpack8(x8[j], v);
            fold8(m, s, v);
        }
    } else {
        for (int j = threadIdx.x; j < vp; j += blockDim.x) {
            const float v = __bfloat162float(x[j]);
            if (v > m) {
                s = s * __expf(m - v) + 1.0f;
                m = v;
            } else {
                s += __expf(v - m);
            }
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
    if (vec) {
        uint4* x8 = reinterpret_cast<uint4*>(x);
        for (int j = threadIdx.x; j < vp / 8; j += blockDim.x) {
            float v[8];
            unpack8(x8[j], v);
            for (int e = 0; e < 8; e++) {
                v[e] = __expf(v[e] - mx) * k;
                if (j * 8 + e == (int)y) v[e] -= grad_scale;
            }
            x8[j] = pack8(v);
        }
    } else {
        for (int j = threadIdx.x; j < vp; j += blockDim.x) {
            const float p = __expf(__bfloat162float(x[j]) - mx) * k;
            x[j] = __float2bfloat16(j == (int)y ? p - grad_scale : p);
        }
    }
}
