// AdamW over the flat fp32 parameter buffer, as torch.optim.AdamW: decay first, then the
// Adam step with bias correction; the gradient is multiplied by grad_scale first (clipping).
// Also refreshes the bf16 copy of the weights that the matrix products read.
#include "common.cuh"

extern "C" __global__ void adamw_step_f32(float* params, bf16* params_bf16, const float* grads, float* m,
                                          float* v, long len, float lr, float beta1, float beta2, float eps,
                                          float decay, float step_size, float sqrt_bc2, float grad_scale) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= len) return;
    const float g = grads[i] * grad_scale;
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float p = params[i] * decay;
    p -= step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
    params[i] = p;
    params_bf16[i] = __float2bfloat16(p);
}
