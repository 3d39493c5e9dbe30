//! Reductions over the units of one cube, through shared memory: the row statistics of the
//! row kernels (one cube per row). A tree in shared memory rather than plane operations, because
//! WebGPU does not guarantee subgroups.

use cubecl::prelude::*;

/// Units per cube of the row kernels, and the size of their shared memory; a power of two (the
/// tree halves it), at most WebGPU's guaranteed 256 invocations per workgroup.
pub const MAX_UNITS: usize = 256;

/// The sum of `value` over the units of the cube, known to every unit. Every unit must call it
/// (it synchronizes the cube); `CUBE_DIM` must be a power of two no larger than [`MAX_UNITS`].
#[cube]
pub fn cube_sum(shared: &mut SharedMemory<f32>, value: f32) -> f32 {
    let unit = UNIT_POS as usize;
    shared[unit] = value;
    sync_cube();
    let mut stride = (CUBE_DIM / 2) as usize;
    while stride > 0 {
        if unit < stride {
            shared[unit] = shared[unit] + shared[unit + stride];
        }
        sync_cube();
        stride /= 2;
    }
    let total = shared[0];
    // The next reduction overwrites `shared`: every unit must have read the total first.
    sync_cube();
    total
}

/// The maximum of `value` over the units of the cube, as [`cube_sum`].
#[cube]
pub fn cube_max(shared: &mut SharedMemory<f32>, value: f32) -> f32 {
    let unit = UNIT_POS as usize;
    shared[unit] = value;
    sync_cube();
    let mut stride = (CUBE_DIM / 2) as usize;
    while stride > 0 {
        if unit < stride {
            shared[unit] = max(shared[unit], shared[unit + stride]);
        }
        sync_cube();
        stride /= 2;
    }
    let total = shared[0];
    sync_cube();
    total
}

/// The softmax statistics of a row from each unit's running `(max, sum of exp(x - max))` over
/// its share of the row (an online softmax: one pass over the row instead of two): `(max, sum)`
/// of the whole row, the sum relative to the row's max.
#[cube]
pub fn cube_softmax_stats(
    shared: &mut SharedMemory<f32>,
    unit_max: f32,
    unit_sum: f32,
) -> (f32, f32) {
    let row_max = cube_max(shared, unit_max);
    // A unit that saw nothing has max = f32::MIN and sum = 0: it adds exactly 0.
    let row_sum = cube_sum(shared, unit_sum * (unit_max - row_max).exp());
    (row_max, row_sum)
}

/// A running `(max, sum of exp(x - max))` with `x` added. Starting from `(f32::MIN, 0)`: WGSL
/// has no infinity literal, and a masked score of `f32::MIN` then still counts as
/// `exp(0)` relative to itself, as in the composed softmax.
#[cube]
pub fn online_softmax_add(run_max: f32, run_sum: f32, x: f32) -> (f32, f32) {
    let top = max(run_max, x);
    (top, run_sum * (run_max - top).exp() + (x - top).exp())
}
