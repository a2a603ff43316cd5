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

// Rows repeat tokens, and atomics would add a token's rows in whatever order the blocks
// happen to run, so its gradient's last bits (and the training run after it) would change
// from run to run. Instead the host groups the rows by token (`TokenBuckets` in launch.rs):
// bucket b is token bucket_tokens[b] with rows bucket_rows[bucket_offsets[b] ..
// bucket_offsets[b + 1]], ascending. One block per bucket and column slice; each thread owns
// one column and adds the bucket's rows in that order, then adds the sum to dtable once. No
// two buckets share a token, so no two threads write the same element: the result is the
// same bits every run.
// grid (buckets, ceil(d / blockDim.x)), block ≤ 256 (a multiple of 32).
extern "C" __global__ void embedding_backward_f32(float* dtable, const u32* bucket_tokens, const u32* bucket_offsets,
                                                  const u32* bucket_rows, const float* dout, int d) {
    const int col = blockIdx.y * blockDim.x + threadIdx.x;
    if (col >= d) return;
    const u32 begin = bucket_offsets[blockIdx.x], end = bucket_offsets[blockIdx.x + 1];
    float s = 0.0f;
    // The loads are independent of the running sum, so unrolling keeps several in flight for
    // the long buckets of frequent tokens; the additions still happen in row order.
#pragma unroll 8
    for (u32 i = begin; i < end; ++i) s += dout[(long)bucket_rows[i] * d + col];
    dtable[(long)bucket_tokens[blockIdx.x] * d + col] += s;
}
