//! The dense linear algebra of the Gaussian process's marginal-likelihood steps: Cholesky
//! factor, solves, and the inverse of a symmetric positive-definite matrix. Column-major
//! `n × n` slices (nalgebra's layout). The cubic loops are axpys over contiguous columns,
//! compiled a second time for AVX2+FMA and picked at run time (as in [`crate::score`]); the
//! product L⁻ᵀ L⁻¹ goes through `matrixmultiply`.

#[cfg(target_arch = "x86_64")]
use crate::wide;

/// Overwrites the lower triangle of `a` (column-major, n × n, symmetric positive definite)
/// with its Cholesky factor L (A = L Lᵀ); false if A is not positive definite. The strict
/// upper triangle is left as it was. Right-looking: after column j is final, every later
/// column takes away its share (an axpy over a contiguous column).
pub fn cholesky(a: &mut [f64], n: usize) -> bool {
    assert_eq!(a.len(), n * n);
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        return unsafe { cholesky_wide(a, n) };
    }
    cholesky_plain(a, n)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn cholesky_wide(a: &mut [f64], n: usize) -> bool {
    cholesky_plain(a, n)
}

#[inline(always)]
fn cholesky_plain(a: &mut [f64], n: usize) -> bool {
    for j in 0..n {
        let pivot = a[j * n + j];
        if !(pivot > 0.0) {
            return false;
        }
        let l_jj = pivot.sqrt();
        let (done, rest) = a.split_at_mut((j + 1) * n);
        let col = &mut done[j * n..];
        col[j] = l_jj;
        for v in &mut col[j + 1..] {
            *v /= l_jj;
        }
        // Column c > j: A[c.., c] −= L[c.., j] · L[c, j].
        for c in j + 1..n {
            let l_cj = col[c];
            let target = &mut rest[(c - j - 1) * n + c..(c - j) * n];
            for (t, &l) in target.iter_mut().zip(&col[c..]) {
                *t -= l * l_cj;
            }
        }
    }
    true
}

/// Solves L Lᵀ x = b in place, L from [`cholesky`].
pub fn cholesky_solve(l: &[f64], n: usize, b: &mut [f64]) {
    // L y = b: column-oriented forward substitution.
    for k in 0..n {
        b[k] /= l[k * n + k];
        let v = b[k];
        for (bi, &lik) in b[k + 1..].iter_mut().zip(&l[k * n + k + 1..(k + 1) * n]) {
            *bi -= lik * v;
        }
    }
    // Lᵀ x = y: row k of Lᵀ is column k of L.
    for k in (0..n).rev() {
        let s: f64 = l[k * n + k + 1..(k + 1) * n].iter().zip(&b[k + 1..]).map(|(a, b)| a * b).sum();
        b[k] = (b[k] - s) / l[k * n + k];
    }
}

/// A⁻¹ (column-major, full) from the Cholesky factor L of A (only L's lower triangle is
/// read): L⁻¹ by forward substitution, one column of the identity at a time starting at its
/// 1 (n³/3 flops, a third of solving against full columns), then A⁻¹ = L⁻ᵀ L⁻¹ as one matrix
/// product.
pub fn inverse_from_cholesky(l: &[f64], n: usize) -> Vec<f64> {
    assert_eq!(l.len(), n * n);
    let mut m = vec![0.0; n * n]; // L⁻¹, column-major, lower triangular
    #[cfg(target_arch = "x86_64")]
    if wide() {
        // SAFETY: the CPU has AVX2 and FMA (checked just above).
        unsafe { lower_inverse_wide(l, n, &mut m) };
    } else {
        lower_inverse_plain(l, n, &mut m);
    }
    #[cfg(not(target_arch = "x86_64"))]
    lower_inverse_plain(l, n, &mut m);
    let mut out = vec![0.0; n * n];
    // SAFETY: every pointer covers n×n f64 with the strides given: M read with rows and
    // columns swapped (row stride n, column stride 1) is Mᵀ, M is column-major (1, n), and
    // the output is a separate column-major buffer (1, n).
    unsafe {
        matrixmultiply::dgemm(
            n,
            n,
            n,
            1.0,
            m.as_ptr(),
            n as isize,
            1,
            m.as_ptr(),
            1,
            n as isize,
            0.0,
            out.as_mut_ptr(),
            1,
            n as isize,
        );
    }
    out
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn lower_inverse_wide(l: &[f64], n: usize, m: &mut [f64]) {
    lower_inverse_plain(l, n, m)
}

#[inline(always)]
fn lower_inverse_plain(l: &[f64], n: usize, m: &mut [f64]) {
    for j in 0..n {
        let col = &mut m[j * n..(j + 1) * n];
        col[j] = 1.0;
        for k in j..n {
            let v = col[k] / l[k * n + k];
            col[k] = v;
            for (c, &lik) in col[k + 1..].iter_mut().zip(&l[k * n + k + 1..(k + 1) * n]) {
                *c -= lik * v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    fn spd(n: usize) -> DMatrix<f64> {
        let a = DMatrix::from_fn(n, n, |i, j| ((i * 31 + j * 17) % 23) as f64 / 23.0 - 0.5);
        &a * a.transpose() + DMatrix::identity(n, n) * 0.5
    }

    #[test]
    fn cholesky_matches_nalgebra_and_solves() {
        let n = 37;
        let k = spd(n);
        let mut a = k.as_slice().to_vec();
        assert!(cholesky(&mut a, n));
        let theirs = k.clone().cholesky().unwrap();
        let l = theirs.l();
        for j in 0..n {
            for i in j..n {
                assert!((a[j * n + i] - l[(i, j)]).abs() < 1e-12, "L[{i},{j}]");
            }
        }
        let mut b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
        let want = theirs.solve(&nalgebra::DVector::from_vec(b.clone()));
        cholesky_solve(&a, n, &mut b);
        assert!(b.iter().zip(want.iter()).all(|(x, y)| (x - y).abs() < 1e-10));
        let mut not_pd = DMatrix::<f64>::identity(3, 3);
        not_pd[(2, 2)] = -1.0;
        assert!(!cholesky(&mut not_pd.as_mut_slice().to_vec(), 3));
    }

    #[test]
    fn inverse_from_cholesky_inverts() {
        let n = 37;
        let k = spd(n);
        let mut a = k.as_slice().to_vec();
        assert!(cholesky(&mut a, n));
        let inv = DMatrix::from_vec(n, n, inverse_from_cholesky(&a, n));
        let err = (&k * &inv - DMatrix::<f64>::identity(n, n)).abs().max();
        assert!(err < 1e-10, "‖A A⁻¹ − I‖max = {err}");
        assert!((&inv - k.try_inverse().unwrap()).abs().max() < 1e-10);
    }
}
