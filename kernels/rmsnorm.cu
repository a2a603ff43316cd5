// RMSNorm fused with the residual add. The residual stream is fp32; the normalised output
// feeds matrix products and is bf16.
#include "common.cuh"

// x_out = x_in + proj (proj may be null: x_out = x_in; x_out may alias x_in);
// rstd = 1 / sqrt(mean(x_out²) + eps); out = x_out · rstd · w.
// One warp per row; grid (ceil(n / 8)), block 256.
extern "C" __global__ void rmsnorm_forward_bf16(float* x_out, bf16* out, float* rstd, const float* x_in,
                                                const float* proj, const float* w, int n, int d, float eps) {
    const int row = blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    const int lane = threadIdx.x % WARP;
    if (row >= n) return;
    const float* xi = x_in + (long)row * d;
    const float* pi = proj ? proj + (long)row * d : nullptr;
    float* xo = x_out + (long)row * d;
    float ss = 0.0f;
    for (int c = lane; c < d; c += WARP) {
        float v = xi[c] + (pi ? pi[c] : 0.0f);
        xo[c] = v;
        ss += v * v;
    }
    ss = warp_sum(ss);
    const float r = rsqrtf(ss / d + eps);
    if (lane == 0) rstd[row] = r;
    bf16* o = out + (long)row * d;
    for (int c = lane; c < d; c += WARP) o[c] = __float2bfloat16(xo[c] * r * w[c]);
}

// With x̂ = x·r and g = dy ⊙ w: dx = r·(g − x̂·mean(g ⊙ x̂)). The residual stream's gradient
// is accumulated in place (dres += dx; this is the residual add's backward) and also
// written as bf16 for the matrix products that read it.
// dw = Σ_rows dy ⊙ x̂ is summed in a fixed order, so it has the same bits every run (atomics,
// as before, added in scheduling order): block b takes rows [b·rows_per_block,
// (b+1)·rows_per_block), one warp per row for dx, then one thread per column adds the
// block's rows in order into dw_partials[b, :]; rmsnorm_backward_dw_f32 adds the blocks'
// partials in order into dw.
// grid (ceil(n / rows_per_block)), block 256.
extern "C" __global__ void rmsnorm_backward_f32(float* dres, bf16* dres_bf16, float* dw_partials, const float* dy,
                                                const float* x, const float* w, const float* rstd,
                                                int n, int d, int rows_per_block) {
    const int first = blockIdx.x * rows_per_block;
    const int last = min(first + rows_per_block, n);
    const int lane = threadIdx.x % WARP, warps = blockDim.x / WARP;
    for (int row = first + threadIdx.x / WARP; row < last; row += warps) {
        const float r = rstd[row];
        const float* xr = x + (long)row * d;
        const float* g = dy + (long)row * d;
        float dot = 0.0f;
        for (int c = lane; c < d; c += WARP) dot += g[c] * w[c] * xr[c] * r;
        const float mean = warp_sum(dot) / d;
        float* dr = dres + (long)row * d;
        bf16* db = dres_bf16 + (long)row * d;
        for (int c = lane; c < d; c += WARP) {
            const float xh = xr[c] * r;
            const float v = dr[c] + r * (g[c] * w[c] - xh * mean);
            dr[c] = v;
            db[c] = __float2bfloat16(v);
        }
    }
    // The block's rows were just read, so this second pass over them mostly hits the caches;
    // reading them per column (rather than keeping per-warp partials in shared memory) keeps
    // the order fixed for any d without shared memory that grows with d.
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
        float s = 0.0f;
#pragma unroll 8
        for (int row = first; row < last; ++row) s += dy[(long)row * d + c] * (x[(long)row * d + c] * rstd[row]);
        dw_partials[(long)blockIdx.x * d + c] = s;
    }
}

// dw[c] += Σ_b dw_partials[b, c], the blocks in order. One thread per column;
// grid (ceil(d / 256)), block 256.
extern "C" __global__ void rmsnorm_backward_dw_f32(float* dw, const float* dw_partials, int blocks, int d) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= d) return;
    float s = 0.0f;
    // Independent loads, one chain of additions: unrolling keeps several loads in flight.
#pragma unroll 8
    for (int b = 0; b < blocks; ++b) s += dw_partials[(long)b * d + c];
    dw[c] += s;
}
