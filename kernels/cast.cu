// fp32 → bf16 copies: the bf16 weights the matrix products read, after a checkpoint is loaded.
#include "common.cuh"

extern "C" __global__ void cast_forward_f32_bf16(bf16* out, const float* in, long len) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < len) out[i] = __float2bfloat16(in[i]);
}
