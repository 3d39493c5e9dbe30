//! AdamW's update in one pass over each parameter, its gradient and both moments, in place.

use rayon::prelude::*;

use super::vector::multiversion;

/// The step's constants, already combined as burn's `AdamW` combines them.
#[derive(Clone, Copy, Debug)]
pub struct Constants {
    pub lr: f32,
    pub beta_1: f32,
    pub beta_2: f32,
    pub epsilon: f32,
    /// `1 - beta_1^t` and `1 - beta_2^t`.
    pub bias_1: f32,
    pub bias_2: f32,
    /// `1 - lr · weight_decay` when there is weight decay.
    pub keep: Option<f32>,
}

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// Updates `param`, `m` and `v` from `grad`, elementwise in burn's order of operations.
pub fn step(param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32], c: Constants) {
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK).zip(v.par_chunks_mut(CHUNK)))
        .for_each(|((p, g), (m, v))| step_chunk(p, g, m, v, c));
}

multiversion! {
    fn step_chunk(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], c: Constants) {
        let (f1, f2) = (1.0 - c.beta_1, 1.0 - c.beta_2);
        for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            *m = *m * c.beta_1 + g * f1;
            *v = *v * c.beta_2 + g * g * f2;
            let delta = (*m / c.bias_1) / ((*v / c.bias_2).sqrt() + c.epsilon);
            let decayed = match c.keep {
                Some(keep) => *p * keep,
                None => *p,
            };
            *p = decayed - delta * c.lr;
        }
    }
}
