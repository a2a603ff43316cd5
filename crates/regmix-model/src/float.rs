//! The element type of the CPU backend. Training runs in `f32`; the gradient checks run the
//! very same code in `f64`, which is why every operation is generic over [`Float`].

use std::fmt::Debug;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

pub trait Float:
    Copy
    + Send
    + Sync
    + Default
    + Debug
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn from_f64(x: f64) -> Self;
    fn to_f64(self) -> f64;
    fn exp(self) -> Self;
    /// `exp` for the hot loops (softmax, cross-entropy, SiLU): branch-free so it
    /// vectorises. f32: within 3e-7 relative of `f32::exp` on [-87, 88] (about 2 ulp); f64: `f64::exp` itself, so
    /// the gradient checks see the exact function.
    fn fast_exp(self) -> Self {
        self.exp()
    }
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn max(self, other: Self) -> Self;
    fn is_finite(self) -> bool;

    /// `C = A·B` (or `C += A·B` when `accumulate`), all row-major views given by their row
    /// and column strides, so transposes are free. `threaded` lets the GEMM use every core;
    /// pass `false` when the caller already runs in parallel.
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        n: usize,
        k: usize,
        a: &[Self],
        a_rs: usize,
        a_cs: usize,
        b: &[Self],
        b_rs: usize,
        b_cs: usize,
        c: &mut [Self],
        c_rs: usize,
        accumulate: bool,
        threaded: bool,
    ) {
        assert!(a.len() >= extent(m, k, a_rs, a_cs), "gemm: A too short");
        assert!(b.len() >= extent(k, n, b_rs, b_cs), "gemm: B too short");
        assert!(c.len() >= extent(m, n, c_rs, 1), "gemm: C too short");
        // SAFETY: the asserts prove every element the GEMM addresses lies inside the
        // slices, and `c` is a unique borrow, so it aliases neither `a` nor `b`.
        unsafe {
            Self::gemm_raw(
                m,
                n,
                k,
                a.as_ptr(),
                a_rs,
                a_cs,
                b.as_ptr(),
                b_rs,
                b_cs,
                c.as_mut_ptr(),
                c_rs,
                accumulate,
                threaded,
            )
        }
    }

    /// [`Float::gemm`] on raw pointers, for rayon tasks that write disjoint strided parts
    /// of one buffer (attention heads).
    ///
    /// # Safety
    /// Every element of the three strided views must be valid, and no other thread may
    /// touch the elements of `c`'s view while the call runs.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        n: usize,
        k: usize,
        a: *const Self,
        a_rs: usize,
        a_cs: usize,
        b: *const Self,
        b_rs: usize,
        b_cs: usize,
        c: *mut Self,
        c_rs: usize,
        accumulate: bool,
        threaded: bool,
    );
}

/// The extent a strided `rows × cols` view touches, so the slices can be checked before the
/// GEMM reads through raw pointers.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

macro_rules! impl_float {
    ($t:ty, $mm:path $(, $fast:path)?) => {
        impl Float for $t {
            $(
            #[inline(always)]
            fn fast_exp(self) -> Self {
                $fast(self)
            }
            )?
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline]
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            unsafe fn gemm_raw(
                m: usize,
                n: usize,
                k: usize,
                a: *const Self,
                a_rs: usize,
                a_cs: usize,
                b: *const Self,
                b_rs: usize,
                b_cs: usize,
                c: *mut Self,
                c_rs: usize,
                accumulate: bool,
                threaded: bool,
            ) {
                let beta = if accumulate { 1.0 } else { 0.0 };
                if threaded {
                    // matrixmultiply with its thread pool: the fastest measured on this
                    // model's shapes (see ARCHITECTURE.md, "CPU GEMM").
                    // SAFETY: the caller guarantees the views are valid and `c`'s is
                    // exclusively ours (see the function's contract).
                    unsafe {
                        $mm(
                            m, k, n, 1.0, a, a_rs as isize, a_cs as isize, b, b_rs as isize,
                            b_cs as isize, beta, c, c_rs as isize, 1,
                        )
                    }
                } else {
                    // The `gemm` crate without threads: used inside rayon tasks (attention),
                    // where matrixmultiply's own pool would oversubscribe the cores.
                    // SAFETY: as above; gemm's argument order is (dst, dst_cs, dst_rs,
                    // read_dst, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs, alpha, beta) with
                    // dst = alpha·dst + beta·lhs·rhs.
                    unsafe {
                        gemm::gemm(
                            m, n, k, c, 1, c_rs as isize, accumulate, a, a_cs as isize,
                            a_rs as isize, b, b_cs as isize, b_rs as isize, 1.0, 1.0, false,
                            false, false, gemm::Parallelism::None,
                        )
                    }
                }
            }
        }
    };
}

impl_float!(f32, matrixmultiply::sgemm, exp_f32);

/// Branch-free `exp` for f32: e^x = 2^n · e^r with n = round(x·log2 e), |r| ≤ ln2/2, e^r by
/// its degree-6 Taylor polynomial (truncation < 2e-8 relative), 2^n built in the exponent bits.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Clamp into the normal range; below -87 the result flushes towards 0 like exp does.
    let x = x.clamp(-87.0, 88.0);
    // Round to nearest with the 1.5·2^23 trick (vectorises, unlike f32::round).
    const SHIFT: f32 = 12_582_912.0;
    let n = (x * LOG2E + SHIFT) - SHIFT;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    f32::from_bits(((n as i32 + 127) << 23) as u32) * p
}
impl_float!(f64, matrixmultiply::dgemm);

/// A raw pointer that may cross into rayon tasks which write disjoint parts of one buffer
/// (one attention head each). Every use states why the parts are disjoint.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);

impl<T> SendPtr<T> {
    /// The pointer. A method, not the field, so closures capture the `Send` wrapper rather
    /// than the bare pointer (edition 2021 captures fields precisely).
    #[inline]
    pub fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: the pointer is only dereferenced by tasks writing disjoint index sets, as argued at
// each use; the pointee type is Send + Sync.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: see above.
unsafe impl<T: Sync> Sync for SendPtr<T> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(m: usize, n: usize, k: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn fast_exp_f32_is_within_3e_7_relative_of_std_exp() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp_f32(x) as f64, x.exp() as f64);
            worst = worst.max(((a - b) / b).abs());
            x += 0.001_3;
        }
        assert!(worst < 3e-7, "worst relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert!(exp_f32(-1000.0) < 1e-37 && exp_f32(f32::NEG_INFINITY) < 1e-37);
    }

    #[test]
    fn both_gemm_paths_match_the_naive_product_with_transposes_and_accumulation() {
        let (m, n, k) = (7, 5, 9);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.91).cos()).collect();
        let want = naive(m, n, k, &a, &b);
        // B given transposed: bt[j, p] = b[p, j]
        let mut bt = vec![0.0; n * k];
        for p in 0..k {
            for j in 0..n {
                bt[j * k + p] = b[p * n + j];
            }
        }
        for threaded in [false, true] {
            let mut c = vec![1.0; m * n];
            f64::gemm(m, n, k, &a, k, 1, &bt, 1, k, &mut c, n, false, threaded);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - y).abs() < 1e-12);
            }
            f64::gemm(m, n, k, &a, k, 1, &b, n, 1, &mut c, n, true, threaded);
            for (x, y) in c.iter().zip(&want) {
                assert!((x - 2.0 * y).abs() < 1e-12);
            }
        }
    }
}
