//! Matrix products with few rows (`m ≤ MAX_ROWS`), as in token-by-token decoding and short
//! inputs: `x · W` with the weight `[k, n]` and `x · Eᵀ` with a `[n, k]` table (the tied LM
//! head). Each weight is streamed once per group of up to 8 rows, with the rows' partial sums
//! kept in registers, so the product runs at memory bandwidth; a general GEMM packs the weight
//! first and wastes most of its register tile on rows that do not exist.
//!
//! The loops are written once over a small vector trait ([`Simd`]) and compiled per instruction
//! set (`#[target_feature]`), picked at run time.

// Register tiles are indexed by row and lane on purpose.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Above this many rows the backend's GEMM is faster (the weight is re-read once per 8 rows
/// here). Measured on t5-small: a 64-token encoder pass is faster here, 512 rows are not.
pub const MAX_ROWS: usize = 64;

/// Rows handled per pass over the weight.
const ROW_GROUP: usize = 8;
/// Rows of `w` streamed together in `x · W`, so each output tile is loaded and stored once per
/// `KROWS` rows.
const KROWS: usize = 8;
/// How far ahead, in table rows, `x · Eᵀ` prefetches.
const PF_ROWS: usize = 8;
/// Widest column block of a task in `x · W` (32 KB per row; its partial sums stay in cache).
const BLOCK_COLS: usize = 8192;
/// Table rows per parallel task in `x · Eᵀ` (~0.5 MB of a 512-wide table).
const TASK_COLS: usize = 256;

/// The instruction set the kernels were compiled for on this CPU, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    Avx512,
    Avx2Fma,
}

/// The best instruction set available, or `None` (then callers use the general GEMM).
pub fn detect() -> Option<Isa> {
    if std::is_x86_feature_detected!("avx512f") {
        Some(Isa::Avx512)
    } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        Some(Isa::Avx2Fma)
    } else {
        None
    }
}

/// `y[m, n] = x[m, k] · w[k, n]`, all row-major and contiguous.
pub fn xw(isa: Isa, x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(x.len() == m * k && w.len() == k * n);
    // Tasks own blocks of `w`: whole rows when `n ≤ BLOCK_COLS` (so a task streams one
    // contiguous range), else column blocks of `BLOCK_COLS`; rows are split so that every thread
    // gets about two tasks. Row blocks of one column block produce partial sums, added at the
    // end (m is small, so they are cheap).
    let width = n.clamp(1, BLOCK_COLS);
    let col_blocks = n.div_ceil(width);
    let row_blocks = (2 * rayon::current_num_threads())
        .div_ceil(col_blocks)
        .max(1);
    let rows_per_task = k.div_ceil(row_blocks).next_multiple_of(KROWS);
    let tasks: Vec<(usize, usize)> = (0..n)
        .step_by(width)
        .flat_map(|c0| (0..k).step_by(rows_per_task).map(move |k0| (c0, k0)))
        .collect();
    let partials: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(c0, k0)| {
            let (c1, k1) = ((c0 + width).min(n), (k0 + rows_per_task).min(k));
            let mut part = vec![0.0f32; m * (c1 - c0)];
            xw_block(isa, x, w, m, k, n, (k0, k1), (c0, c1), &mut part);
            part
        })
        .collect();
    let mut y = vec![0.0f32; m * n];
    for (&(c0, _), part) in tasks.iter().zip(&partials) {
        let cw = (c0 + width).min(n) - c0;
        for r in 0..m {
            for (a, b) in y[r * n + c0..r * n + c0 + cw]
                .iter_mut()
                .zip(&part[r * cw..(r + 1) * cw])
            {
                *a += b;
            }
        }
    }
    y
}

/// `y[m, n] = x[m, k] · e[n, k]ᵀ`, all row-major and contiguous.
pub fn xet(isa: Isa, x: &[f32], e: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    assert!(x.len() == m * k && e.len() == n * k);
    let mut yt = vec![0.0f32; n * m]; // [n, m]: each task owns whole rows
    yt.par_chunks_mut(TASK_COLS * m)
        .enumerate()
        .for_each(|(t, out)| {
            let v0 = t * TASK_COLS;
            let v1 = v0 + out.len() / m;
            xet_rows(isa, x, e, m, k, v0, v1, out);
        });
    if m == 1 {
        return yt;
    }
    // [n, m] -> [m, n]; m is small, so this is one cheap pass.
    let mut y = vec![0.0f32; m * n];
    for v in 0..n {
        for r in 0..m {
            y[r * n + v] = yt[v * m + r];
        }
    }
    y
}

#[allow(clippy::too_many_arguments)]
fn xw_block(
    isa: Isa,
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    ks: (usize, usize),
    cs: (usize, usize),
    out: &mut [f32],
) {
    match isa {
        // SAFETY: `isa` came from `detect`, so the CPU has AVX-512F, AVX2 and FMA.
        Isa::Avx512 => unsafe { xw_block_avx512(x, w, m, k, n, ks, cs, out) },
        // SAFETY: `isa` came from `detect`, so the CPU has AVX2 and FMA.
        Isa::Avx2Fma => unsafe { xw_block_avx2(x, w, m, k, n, ks, cs, out) },
    }
}

#[allow(clippy::too_many_arguments)]
fn xet_rows(
    isa: Isa,
    x: &[f32],
    e: &[f32],
    m: usize,
    k: usize,
    v0: usize,
    v1: usize,
    out: &mut [f32],
) {
    match isa {
        // SAFETY: `isa` came from `detect`, so the CPU has AVX-512F, AVX2 and FMA.
        Isa::Avx512 => unsafe { xet_rows_avx512(x, e, m, k, v0, v1, out) },
        // SAFETY: `isa` came from `detect`, so the CPU has AVX2 and FMA.
        Isa::Avx2Fma => unsafe { xet_rows_avx2(x, e, m, k, v0, v1, out) },
    }
}

macro_rules! compiled_for {
    ($simd:ty, $xw:ident, $xet:ident, $features:literal) => {
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $xw(
            x: &[f32],
            w: &[f32],
            m: usize,
            k: usize,
            n: usize,
            ks: (usize, usize),
            cs: (usize, usize),
            out: &mut [f32],
        ) {
            // SAFETY: compiled with `$features`, which the caller guarantees the CPU has; the
            // generic body checks its own slice bounds.
            unsafe { xw_block_generic::<$simd>(x, w, m, k, n, ks, cs, out) }
        }

        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $xet(
            x: &[f32],
            e: &[f32],
            m: usize,
            k: usize,
            v0: usize,
            v1: usize,
            out: &mut [f32],
        ) {
            // SAFETY: as for `$xw`: the caller guarantees `$features`, the body checks bounds.
            unsafe { xet_rows_generic::<$simd>(x, e, m, k, v0, v1, out) }
        }
    };
}
compiled_for!(Avx512, xw_block_avx512, xet_rows_avx512, "avx512f,avx2,fma");
compiled_for!(Avx2, xw_block_avx2, xet_rows_avx2, "avx2,fma");

/// The few vector operations the kernels need. Implementations are only called from functions
/// compiled with the matching `#[target_feature]`.
trait Simd {
    type V: Copy;
    const LANES: usize;
    unsafe fn zero() -> Self::V;
    unsafe fn splat(v: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn sum(v: Self::V) -> f32;
}

struct Avx512;
impl Simd for Avx512 {
    type V = __m512;
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> __m512 {
        _mm512_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m512 {
        _mm512_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m512 {
        // SAFETY: the caller passes a pointer to 16 readable floats (unaligned is fine).
        unsafe { _mm512_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m512) {
        // SAFETY: the caller passes a pointer to 16 writable floats (unaligned is fine).
        unsafe { _mm512_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m512, b: __m512, c: __m512) -> __m512 {
        _mm512_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn sum(v: __m512) -> f32 {
        _mm512_reduce_add_ps(v)
    }
}

struct Avx2;
impl Simd for Avx2 {
    type V = __m256;
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> __m256 {
        _mm256_setzero_ps()
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> __m256 {
        _mm256_set1_ps(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> __m256 {
        // SAFETY: the caller passes a pointer to 8 readable floats (unaligned is fine).
        unsafe { _mm256_loadu_ps(p) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: __m256) {
        // SAFETY: the caller passes a pointer to 8 writable floats (unaligned is fine).
        unsafe { _mm256_storeu_ps(p, v) }
    }
    #[inline(always)]
    unsafe fn fma(a: __m256, b: __m256, c: __m256) -> __m256 {
        _mm256_fmadd_ps(a, b, c)
    }
    #[inline(always)]
    unsafe fn sum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
        _mm_cvtss_f32(s)
    }
}

/// The block `k0..k1` × `c0..c1` of `w` (times columns `k0..k1` of `x`) into `out`
/// (`[m, c1 - c0]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn xw_block_generic<S: Simd>(
    x: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    (k0, k1): (usize, usize),
    (c0, c1): (usize, usize),
    out: &mut [f32],
) {
    let width = c1 - c0;
    let w = &w[c0..];
    let mut r0 = 0;
    while r0 < m {
        let rows = (m - r0).min(ROW_GROUP);
        let xs = &x[r0 * k..(r0 + rows) * k];
        let ys = &mut out[r0 * width..(r0 + rows) * width];
        let mut kk = k0;
        while kk < k1 {
            let kb = if k1 - kk >= KROWS { KROWS } else { 1 };
            macro_rules! strip {
                ($m:literal) => {
                    if kb == KROWS {
                        // SAFETY: our caller runs with `S`'s CPU features; `xw_strip` asserts
                        // its bounds (`kk + KROWS <= k1 <= k`, `rows` rows of `xs` and `ys`).
                        unsafe { xw_strip::<S, $m, KROWS>(xs, w, k, n, width, kk, ys) }
                    } else {
                        // SAFETY: as above, one row of `w` (`kk < k1 <= k`).
                        unsafe { xw_strip::<S, $m, 1>(xs, w, k, n, width, kk, ys) }
                    }
                };
            }
            match rows {
                1 => strip!(1),
                2 => strip!(2),
                3 => strip!(3),
                4 => strip!(4),
                5 => strip!(5),
                6 => strip!(6),
                7 => strip!(7),
                _ => strip!(8),
            }
            kk += kb;
        }
        r0 += rows;
    }
}

/// Adds `KB` rows of `w` (row stride `n`) from row `kk`, their first `width` columns swept left
/// to right in tiles of two vectors, into the `M` output rows `y` (row stride `width`): the rows
/// of `w` stream contiguously and each output tile stays in registers across the `KB` rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn xw_strip<S: Simd, const M: usize, const KB: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    n: usize,
    width: usize,
    kk: usize,
    y: &mut [f32],
) {
    let cols = 2 * S::LANES;
    assert!(
        x.len() >= M * k
            && kk + KB <= k
            && w.len() >= (kk + KB - 1) * n + width
            && y.len() >= M * width
    );
    let (wp, yp) = (w.as_ptr(), y.as_mut_ptr());
    let mut a = [[0.0f32; KB]; M];
    for r in 0..M {
        for i in 0..KB {
            a[r][i] = x[r * k + kk + i];
        }
    }
    let body = width - width % cols;
    let mut c = 0;
    // SAFETY: every pointer below stays inside the slices checked by the assert (`c + cols ≤ width`).
    unsafe {
        while c < body {
            let mut acc = [[S::zero(); 2]; M];
            for r in 0..M {
                acc[r][0] = S::load(yp.add(r * width + c));
                acc[r][1] = S::load(yp.add(r * width + c + S::LANES));
            }
            for i in 0..KB {
                let row = wp.add((kk + i) * n + c);
                // The same columns two strips ahead: rows are `n` apart, and the hardware
                // prefetchers stop at 4 KB pages, which halves the streaming rate of cold weights.
                if kk + 2 * KB + i < k {
                    let ahead = wp.add((kk + 2 * KB + i) * n + c) as *const i8;
                    _mm_prefetch::<_MM_HINT_T0>(ahead);
                    if S::LANES * 8 > 64 {
                        _mm_prefetch::<_MM_HINT_T0>(ahead.add(64));
                    }
                }
                let (w0, w1) = (S::load(row), S::load(row.add(S::LANES)));
                for r in 0..M {
                    let ar = S::splat(a[r][i]);
                    acc[r][0] = S::fma(ar, w0, acc[r][0]);
                    acc[r][1] = S::fma(ar, w1, acc[r][1]);
                }
            }
            for r in 0..M {
                S::store(yp.add(r * width + c), acc[r][0]);
                S::store(yp.add(r * width + c + S::LANES), acc[r][1]);
            }
            c += cols;
        }
    }
    // Ragged right edge.
    for i in 0..KB {
        for col in body..width {
            let wv = w[(kk + i) * n + col];
            for r in 0..M {
                y[r * width + col] = a[r][i].mul_add(wv, y[r * width + col]);
            }
        }
    }
}

/// Table rows `v0..v1` of `x · eᵀ` into `out` (`[v1 - v0, m]`).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn xet_rows_generic<S: Simd>(
    x: &[f32],
    e: &[f32],
    m: usize,
    k: usize,
    v0: usize,
    v1: usize,
    out: &mut [f32],
) {
    let mut r0 = 0;
    while r0 < m {
        let rows = (m - r0).min(ROW_GROUP);
        let xs = &x[r0 * k..(r0 + rows) * k];
        for v in v0..v1 {
            let erow = &e[v * k..(v + 1) * k];
            // Software prefetch of a row ahead: hardware prefetchers stop at 4 KB pages and
            // restart slowly, which halves the streaming rate of cold weights.
            if v + PF_ROWS < v1 {
                let ahead = e[(v + PF_ROWS) * k..].as_ptr() as *const i8;
                let mut b = 0;
                while b < k * 4 {
                    // SAFETY: `ahead + b` stays inside table row `v + PF_ROWS < v1` (its `4k`
                    // bytes), and a prefetch never faults or changes memory.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.add(b)) };
                    b += 64;
                }
            }
            // SAFETY: our caller runs with `S`'s CPU features; `xet_dots` asserts that `xs`
            // holds `rows` rows and `erow` one row of `k` values.
            let sums = unsafe {
                match rows {
                    1 => xet_dots::<S, 1>(xs, erow, k),
                    2 => xet_dots::<S, 2>(xs, erow, k),
                    3 => xet_dots::<S, 3>(xs, erow, k),
                    4 => xet_dots::<S, 4>(xs, erow, k),
                    5 => xet_dots::<S, 5>(xs, erow, k),
                    6 => xet_dots::<S, 6>(xs, erow, k),
                    7 => xet_dots::<S, 7>(xs, erow, k),
                    _ => xet_dots::<S, 8>(xs, erow, k),
                }
            };
            let o = (v - v0) * m + r0;
            out[o..o + rows].copy_from_slice(&sums[..rows]);
        }
        r0 += rows;
    }
}

/// Dot products of `M` rows of `x` with one table row.
#[inline(always)]
unsafe fn xet_dots<S: Simd, const M: usize>(x: &[f32], erow: &[f32], k: usize) -> [f32; 8] {
    assert!(x.len() >= M * k && erow.len() >= k);
    let (xp, ep) = (x.as_ptr(), erow.as_ptr());
    let body = k - k % S::LANES;
    let mut sums = [0.0f32; 8];
    // SAFETY: reads stay below `body ≤ k` in each row, as asserted.
    unsafe {
        let mut acc = [S::zero(); M];
        let mut kk = 0;
        while kk < body {
            let ev = S::load(ep.add(kk));
            for r in 0..M {
                acc[r] = S::fma(S::load(xp.add(r * k + kk)), ev, acc[r]);
            }
            kk += S::LANES;
        }
        for r in 0..M {
            sums[r] = S::sum(acc[r]);
        }
    }
    for r in 0..M {
        for t in body..k {
            sums[r] = x[r * k + t].mul_add(erow[t], sums[r]);
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut y = vec![0.0f64; m * n];
        for r in 0..m {
            for kk in 0..k {
                for c in 0..n {
                    y[r * n + c] += x[r * k + kk] as f64 * w[kk * n + c] as f64;
                }
            }
        }
        y.into_iter().map(|v| v as f32).collect()
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        // A small LCG: deterministic, no test-only dependency.
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(1664525).wrapping_add(1013904223);
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    #[test]
    fn both_forms_match_a_plain_product_for_ragged_shapes() {
        let Some(isa) = detect() else { return };
        for &(m, k, n) in &[
            (1, 512, 2048),
            (3, 77, 301),
            (8, 64, 33),
            (11, 130, 600),
            (16, 31, 7),
            (41, 96, 70),
            (64, 64, 130),
        ] {
            let x = values(m * k, 1);
            let w = values(k * n, 2);
            let want = reference(&x, &w, m, k, n);
            let got = xw(isa, &x, &w, m, k, n);
            let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect(); // [n, k]
            let got_t = xet(isa, &x, &wt, m, k, n);
            for i in 0..m * n {
                assert!(
                    (got[i] - want[i]).abs() < 1e-4,
                    "xw {m}x{k}x{n} at {i}: {} vs {}",
                    got[i],
                    want[i]
                );
                assert!(
                    (got_t[i] - want[i]).abs() < 1e-4,
                    "xet {m}x{k}x{n} at {i}: {} vs {}",
                    got_t[i],
                    want[i]
                );
            }
        }
    }
}
