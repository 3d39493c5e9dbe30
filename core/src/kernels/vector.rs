//! Loops the compiler vectorizes: sums and maxima over independent lanes (a float reduction in
//! source order cannot be vectorized), a branch-free `exp`, and [`multiversion!`], which
//! compiles a kernel a second time for AVX2 + FMA and picks that copy at run time on CPUs that
//! have them (the baseline x86-64 target has only SSE2).

/// Independent accumulators per reduction: two 8-lane AVX registers.
const LANES: usize = 16;

/// Whether this CPU runs the AVX2 + FMA copies (checked once by the standard library).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Defines a function whose body is compiled twice, for the baseline target and for AVX2 + FMA,
/// and runs the second where the CPU has those extensions. Helpers it calls must be
/// `#[inline(always)]` to be compiled into each copy.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::kernels::vector::has_avx2() {
                    // SAFETY: the CPU has AVX2 and FMA, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Combines the lanes pairwise (a fixed order, so results do not depend on the CPU).
#[inline(always)]
fn fold(mut acc: [f32; LANES], op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut n = LANES;
    while n > 1 {
        n /= 2;
        for i in 0..n {
            acc[i] = op(acc[i], acc[i + n]);
        }
    }
    acc[0]
}

/// `Σ f(x_i, y_i)` over two equally long slices, in [`LANES`] independent lanes.
#[inline(always)]
pub fn sum_zip(x: &[f32], y: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    debug_assert_eq!(x.len(), y.len());
    let mut acc = [0f32; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for i in 0..LANES {
            acc[i] += f(a[i], b[i]);
        }
    }
    for (i, (a, b)) in xr.iter().zip(yr).enumerate() {
        acc[i] += f(*a, *b);
    }
    fold(acc, |a, b| a + b)
}

/// `Σ f(x_i, y_i, z_i)` over three equally long slices.
#[inline(always)]
pub fn sum_zip3(x: &[f32], y: &[f32], z: &[f32], f: impl Fn(f32, f32, f32) -> f32) -> f32 {
    debug_assert!(x.len() == y.len() && y.len() == z.len());
    let mut acc = [0f32; LANES];
    let n = x.len() / LANES * LANES;
    let (xc, yc, zc) = (
        x[..n].chunks_exact(LANES),
        y[..n].chunks_exact(LANES),
        z[..n].chunks_exact(LANES),
    );
    for ((a, b), c) in xc.zip(yc).zip(zc) {
        for i in 0..LANES {
            acc[i] += f(a[i], b[i], c[i]);
        }
    }
    for i in n..x.len() {
        acc[i - n] += f(x[i], y[i], z[i]);
    }
    fold(acc, |a, b| a + b)
}

/// `Σ f(x_i)`.
#[inline(always)]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += f(c[i]);
        }
    }
    for (i, v) in rest.iter().enumerate() {
        acc[i] += f(*v);
    }
    fold(acc, |a, b| a + b)
}

/// The largest element (`-inf` for an empty slice; NaNs are skipped as `f32::max` does).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    for (i, v) in rest.iter().enumerate() {
        acc[i] = acc[i].max(*v);
    }
    fold(acc, f32::max)
}

/// `e^x` within 2 ulp for normal results, 0 below the normal range; branch-free so that loops
/// over it vectorize (Cephes' `expf`: `2^k · e^r` with `|r| ≤ ln2 / 2`).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOW: f32 = -87.336_54; // e^LOW is the smallest normal f32
    const HIGH: f32 = 88.0; // keeps 2^k finite
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let xc = x.clamp(LOW, HIGH);
    let t = xc * std::f32::consts::LOG2_E + SHIFT;
    let k = t - SHIFT;
    let r = xc - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // k as an integer: the low bits of `t`, whose exponent is fixed by SHIFT.
    let k = (t.to_bits() as i32).wrapping_sub(SHIFT.to_bits() as i32);
    let scale = f32::from_bits(((k + 127) << 23) as u32);
    if x < LOW {
        0.0
    } else {
        y * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_to_two_ulp() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, std) = (exp(x), x.exp());
            worst = worst.max(((ours - std) / std).abs());
            x += 0.0137;
        }
        assert!(worst < 2.5e-7, "relative error {worst}");
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn reductions_cover_every_element() {
        for n in [0, 1, 7, 16, 17, 33, 100] {
            let x: Vec<f32> = (0..n).map(|i| i as f32 - 20.0).collect();
            let expect: f32 = x.iter().sum();
            assert_eq!(sum_map(&x, |v| v), expect);
            assert_eq!(
                sum_zip(&x, &x, |a, b| a * b),
                x.iter().map(|v| v * v).sum::<f32>()
            );
            let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(max(&x), m);
        }
    }
}
