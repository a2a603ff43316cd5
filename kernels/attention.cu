// Causal grouped-query attention, flash style: the T×T scores are never written to memory.
// q [n, heads·HD], k/v [n, groups·HD] (bf16, after RoPE), out [n, heads·HD] bf16, and the
// log-sum-exp of every query row, lse [batch, heads, T] fp32, kept for the backward pass.
// Each thread owns one query (or key) row and keeps it in registers; the block shares tiles
// of the other side's rows through shared memory, with fp32 arithmetic throughout.
// Head h reads key/value group h / (heads / groups). Scores are scaled by 1/sqrt(HD).
#include "common.cuh"

// TILE (query/key rows per block) is defined by the launcher, which sizes its grids with the
// same constant: NVRTC gets -DTILE=<regmix_cuda::compile::ATTN_TILE>.
#ifndef TILE
#error "TILE is passed by regmix_cuda::compile (-DTILE=ATTN_TILE)"
#endif

template <int HD>
__device__ void load_tile(bf16 (*dst)[HD], const bf16* src, long row0, int rows_left, int stride, int col0) {
    for (int e = threadIdx.x; e < TILE * HD; e += blockDim.x) {
        const int r = e / HD, c = e % HD;
        dst[r][c] = r < rows_left ? src[(row0 + r) * stride + col0 + c] : __float2bfloat16(0.0f);
    }
}

// grid (ceil(T / TILE), heads, batch), block TILE.
template <int HD>
__device__ void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T,
                                  int heads, int groups) {
    __shared__ bf16 ks[TILE][HD];
    __shared__ bf16 vs[TILE][HD];
    const int b = blockIdx.z, h = blockIdx.y, g = h / (heads / groups);
    const int qd = heads * HD, kvd = groups * HD;
    const int i = blockIdx.x * TILE + threadIdx.x;
    const bool valid = i < T;
    const float scale = rsqrtf((float)HD);
    float qr[HD], acc[HD];
    const long qrow = (long)b * T + (valid ? i : 0);
    for (int c = 0; c < HD; c++) {
        qr[c] = __bfloat162float(q[qrow * qd + h * HD + c]) * scale;
        acc[c] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    const int last = min(T - 1, (int)(blockIdx.x * TILE + TILE - 1));
    for (int j0 = 0; j0 <= last; j0 += TILE) {
        __syncthreads();
        load_tile<HD>(ks, k, (long)b * T + j0, T - j0, kvd, g * HD);
        load_tile<HD>(vs, v, (long)b * T + j0, T - j0, kvd, g * HD);
        __syncthreads();
        if (!valid) continue;
        const int jn = min(TILE, i - j0 + 1);
        for (int jj = 0; jj < jn; jj++) {
            float s = 0.0f;
            for (int c = 0; c < HD; c++) s += qr[c] * __bfloat162float(ks[jj][c]);
            if (s > m) {
                const float r = __expf(m - s);
                l *= r;
                for (int c = 0; c < HD; c++) acc[c] *= r;
                m = s;
            }
            const float p = __expf(s - m);
            l += p;
            for (int c = 0; c < HD; c++) acc[c] += p * __bfloat162float(vs[jj][c]);
        }
    }
    if (!valid) return;
    const float inv = 1.0f / l;
    for (int c = 0; c < HD; c++) out[qrow * qd + h * HD + c] = __float2bfloat16(acc[c] * inv);
    lse[((long)b * heads + h) * T + i] = m + logf(l);
}

// D[b, h, i] = Σ_c dO[i, c] · O[i, c]; one thread per (row, head). grid (ceil(n·heads / 256)).
extern "C" __global__ void attention_backward_preprocess_bf16(float* dsum, const bf16* dout, const bf16* out,
                                                              int n, int T, int heads, int hd) {
    const long e = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long)n * heads) return;
    const long row = e / heads;
    const int h = e % heads;
    const long off = row * heads * hd + h * hd;
    float s = 0.0f;
    for (int c = 0; c < hd; c++) s += __bfloat162float(dout[off + c]) * __bfloat162float(out[off + c]);
    const long b = row / T, i = row % T;
    dsum[(b * heads + h) * T + i] = s;
}

// dK and dV: each thread owns key row j of group g and visits every query i ≥ j of every
// head in the group. grid (ceil(T / TILE), groups, batch), block TILE. No atomics.
template <int HD>
__device__ void attention_backward_dkv(bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum,
                                       const bf16* q, const bf16* k, const bf16* v, int T, int heads, int groups) {
    __shared__ bf16 qs[TILE][HD];
    __shared__ bf16 dos[TILE][HD];
    __shared__ float lses[TILE];
    __shared__ float ds_[TILE];
    const int b = blockIdx.z, g = blockIdx.y, per = heads / groups;
    const int qd = heads * HD, kvd = groups * HD;
    const int j = blockIdx.x * TILE + threadIdx.x;
    const bool valid = j < T;
    const float scale = rsqrtf((float)HD);
    const long krow = (long)b * T + (valid ? j : 0);
    float kr[HD], vr[HD], dkr[HD], dvr[HD];
    for (int c = 0; c < HD; c++) {
        kr[c] = __bfloat162float(k[krow * kvd + g * HD + c]);
        vr[c] = __bfloat162float(v[krow * kvd + g * HD + c]);
        dkr[c] = 0.0f;
        dvr[c] = 0.0f;
    }
    const int first = blockIdx.x * TILE;
    for (int h = g * per; h < (g + 1) * per; h++) {
        for (int i0 = first; i0 < T; i0 += TILE) {
            __syncthreads();
            load_tile<HD>(qs, q, (long)b * T + i0, T - i0, qd, h * HD);
            load_tile<HD>(dos, dout, (long)b * T + i0, T - i0, qd, h * HD);
            if (threadIdx.x < TILE) {
                const int i = i0 + threadIdx.x;
                lses[threadIdx.x] = i < T ? lse[((long)b * heads + h) * T + i] : 0.0f;
                ds_[threadIdx.x] = i < T ? dsum[((long)b * heads + h) * T + i] : 0.0f;
            }
            __syncthreads();
            if (!valid) continue;
            const int in = min(TILE, T - i0);
            for (int ii = 0; ii < in; ii++) {
                if (i0 + ii < j) continue;
                float s = 0.0f, dp = 0.0f;
                for (int c = 0; c < HD; c++) {
                    s += __bfloat162float(qs[ii][c]) * kr[c];
                    dp += __bfloat162float(dos[ii][c]) * vr[c];
                }
                const float p = __expf(s * scale - lses[ii]);
                const float dsc = p * (dp - ds_[ii]) * scale;
                for (int c = 0; c < HD; c++) {
                    dvr[c] += p * __bfloat162float(dos[ii][c]);
                    dkr[c] += dsc * __bfloat162float(qs[ii][c]);
                }
            }
        }
    }
    if (!valid) return;
    for (int c = 0; c < HD; c++) {
        dk[krow * kvd + g * HD + c] = __float2bfloat16(dkr[c]);
        dv[krow * kvd + g * HD + c] = __float2bfloat16(dvr[c]);
    }
}

// dQ: each thread owns query row i of head h. grid (ceil(T / TILE), heads, batch), block TILE.
template <int HD>
__device__ void attention_backward_dq(bf16* dq, const bf16* dout, const float* lse, const float* dsum,
                                      const bf16* q, const bf16* k, const bf16* v, int T, int heads, int groups) {
    __shared__ bf16 ks[TILE][HD];
    __shared__ bf16 vs[TILE][HD];
    const int b = blockIdx.z, h = blockIdx.y, g = h / (heads / groups);
    const int qd = heads * HD, kvd = groups * HD;
    const int i = blockIdx.x * TILE + threadIdx.x;
    const bool valid = i < T;
    const float scale = rsqrtf((float)HD);
    const long qrow = (long)b * T + (valid ? i : 0);
    float qr[HD], dor[HD], dqr[HD];
    for (int c = 0; c < HD; c++) {
        qr[c] = __bfloat162float(q[qrow * qd + h * HD + c]);
        dor[c] = __bfloat162float(dout[qrow * qd + h * HD + c]);
        dqr[c] = 0.0f;
    }
    const float l = valid ? lse[((long)b * heads + h) * T + i] : 0.0f;
    const float dd = valid ? dsum[((long)b * heads + h) * T + i] : 0.0f;
    const int last = min(T - 1, (int)(blockIdx.x * TILE + TILE - 1));
    for (int j0 = 0; j0 <= last; j0 += TILE) {
        __syncthreads();
        load_tile<HD>(ks, k, (long)b * T + j0, T - j0, kvd, g * HD);
        load_tile<HD>(vs, v, (long)b * T + j0, T - j0, kvd, g * HD);
        __syncthreads();
        if (!valid) continue;
        const int jn = min(TILE, i - j0 + 1);
        for (int jj = 0; jj < jn; jj++) {
            float s = 0.0f, dp = 0.0f;
            for (int c = 0; c < HD; c++) {
                s += qr[c] * __bfloat162float(ks[jj][c]);
                dp += dor[c] * __bfloat162float(vs[jj][c]);
            }
            const float p = __expf(s * scale - l);
            const float dsc = p * (dp - dd) * scale;
            for (int c = 0; c < HD; c++) dqr[c] += dsc * __bfloat162float(ks[jj][c]);
        }
    }
    if (!valid) return;
    for (int c = 0; c < HD; c++) dq[qrow * qd + h * HD + c] = __float2bfloat16(dqr[c]);
}

// The entry points, one per head size the launcher supports (regmix_cuda::launch::HEAD_DIMS:
// micro 16, small/regmix-1m 32, tinyllama 64, regmix-60m 96, and 128), each written out so
// that its name is what grep and the launcher find.
// Head size 16.
extern "C" __global__ void __launch_bounds__(TILE) attention_forward_bf16_hd16(
    bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_forward<16>(out, lse, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dkv_bf16_hd16(
    bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
    const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_backward_dkv<16>(dk, dv, dout, lse, dsum, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dq_bf16_hd16(
    bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
    const bf16* v, int T, int heads, int groups) {
    attention_backward_dq<16>(dq, dout, lse, dsum, q, k, v, T, heads, groups);
}

// Head size 32.
extern "C" __global__ void __launch_bounds__(TILE) attention_forward_bf16_hd32(
    bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_forward<32>(out, lse, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dkv_bf16_hd32(
    bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
    const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_backward_dkv<32>(dk, dv, dout, lse, dsum, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dq_bf16_hd32(
    bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
    const bf16* v, int T, int heads, int groups) {
    attention_backward_dq<32>(dq, dout, lse, dsum, q, k, v, T, heads, groups);
}

// Head size 64.
extern "C" __global__ void __launch_bounds__(TILE) attention_forward_bf16_hd64(
    bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_forward<64>(out, lse, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dkv_bf16_hd64(
    bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
    const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_backward_dkv<64>(dk, dv, dout, lse, dsum, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dq_bf16_hd64(
    bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
    const bf16* v, int T, int heads, int groups) {
    attention_backward_dq<64>(dq, dout, lse, dsum, q, k, v, T, heads, groups);
}

// Head size 96.
extern "C" __global__ void __launch_bounds__(TILE) attention_forward_bf16_hd96(
    bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_forward<96>(out, lse, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dkv_bf16_hd96(
    bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
    const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_backward_dkv<96>(dk, dv, dout, lse, dsum, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dq_bf16_hd96(
    bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
    const bf16* v, int T, int heads, int groups) {
    attention_backward_dq<96>(dq, dout, lse, dsum, q, k, v, T, heads, groups);
}

// Head size 128.
extern "C" __global__ void __launch_bounds__(TILE) attention_forward_bf16_hd128(
    bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_forward<128>(out, lse, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dkv_bf16_hd128(
    bf16* dk, bf16* dv, const bf16* dout, const float* lse, const float* dsum, const bf16* q,
    const bf16* k, const bf16* v, int T, int heads, int groups) {
    attention_backward_dkv<128>(dk, dv, dout, lse, dsum, q, k, v, T, heads, groups);
}
extern "C" __global__ void __launch_bounds__(TILE) attention_backward_dq_bf16_hd128(
    bf16* dq, const bf16* dout, const float* lse, const float* dsum, const bf16* q, const bf16* k,
    const bf16* v, int T, int heads, int groups) {
    attention_backward_dq<128>(dq, dout, lse, dsum, q, k, v, T, heads, groups);
}
