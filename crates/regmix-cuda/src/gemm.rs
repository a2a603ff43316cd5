//! Matrix products through cuBLAS (`cublasGemmEx`): bf16 operands, fp32 accumulation, and an
//! fp32 or bf16 result. Everything here is row-major, as the layout table is.

use std::sync::Arc;

use cudarc::cublas::{result, sys, CudaBlas};
use cudarc::driver::CudaStream;

use crate::{Error, Result};

/// Element type of a matrix in device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    Bf16,
    F32,
}

impl Ty {
    fn cuda(self) -> sys::cudaDataType {
        match self {
            Ty::Bf16 => sys::cudaDataType::CUDA_R_16BF,
            Ty::F32 => sys::cudaDataType::CUDA_R_32F,
        }
    }
}

/// One operand: device address, type, leading dimension (row stride), transposed or not.
#[derive(Clone, Copy, Debug)]
pub struct Mat {
    pub addr: u64,
    pub ty: Ty,
    pub ld: usize,
    pub trans: bool,
}

pub struct Gemm {
    blas: CudaBlas,
    stream: Arc<CudaStream>,
}

impl Gemm {
    pub fn new(stream: Arc<CudaStream>) -> Result<Gemm> {
        let blas =
            CudaBlas::new(stream.clone()).map_err(|e| Error::Cuda(format!("creating the cuBLAS handle: {e:?}")))?;
        Ok(Gemm { blas, stream })
    }

    /// Row-major `C[m, n] = op(A)[m, k] · op(B)[k, n] + beta · C`, where `op` transposes when
    /// asked. cuBLAS is column-major, and a row-major matrix read column-major is its
    /// transpose, so this computes `Cᵀ = op(B)ᵀ · op(A)ᵀ`: the operands swap places and keep
    /// their transpose flags.
    pub fn gemm(&self, m: usize, n: usize, k: usize, a: Mat, b: Mat, c: Mat, beta: f32) -> Result<()> {
        if a.ty != Ty::Bf16 || b.ty != Ty::Bf16 || c.trans {
            return Err(Error::Shape(format!(
                "gemm: operands must be bf16 and the result not transposed ({a:?}, {b:?}, {c:?})"
            )));
        }
        let op = |t: bool| if t { sys::cublasOperation_t::CUBLAS_OP_T } else { sys::cublasOperation_t::CUBLAS_OP_N };
        let alpha = 1.0f32;
        // SAFETY: the handle is valid for this Gemm's lifetime; alpha and beta are host f32s
        // (the handle's default pointer mode); the caller passes device addresses of matrices
        // of the stated shapes and leading dimensions (every call site takes them from the
        // layout table and the activation buffers sized for the batch).
        unsafe {
            result::gemm_ex(
                *self.blas.handle(),
                op(b.trans),
                op(a.trans),
                n as i32,
                m as i32,
                k as i32,
                &alpha as *const f32 as *const _,
                b.addr as *const _,
                b.ty.cuda(),
                b.ld as i32,
                a.addr as *const _,
                a.ty.cuda(),
                a.ld as i32,
                &beta as *const f32 as *const _,
                c.addr as *mut _,
                c.ty.cuda(),
                c.ld as i32,
                sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT_TENSOR_OP,
            )
        }
        .map_err(|e| Error::Cuda(format!("cublasGemmEx {m}×{n}×{k}: {e:?}")))?;
        if crate::launch::sync_after_launch() {
            self.stream.synchronize().map_err(|e| Error::Cuda(format!("cublasGemmEx {m}×{n}×{k} failed: {e:?}")))?;
        }
        Ok(())
    }
}
