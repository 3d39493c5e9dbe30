//! T5's attention core on the CPU, forward and backward, with the heads packed in the last
//! dimension (`[batch, seq, heads · d_kv]`, as the projections produce them): no head
//! transposes, one task per batch row, the small per-head products on the `gemm` crate with
//! strides, and the bias, padding, softmax and dropout in one pass over each score row.

use rayon::prelude::*;

use super::matmul::{matmul, Out, View};
use super::vector::{exp, max, multiversion, sum_map, sum_zip};

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub q_len: usize,
    pub k_len: usize,
    pub d_kv: usize,
}

impl Dims {
    fn inner(&self) -> usize {
        self.heads * self.d_kv
    }

    /// Elements of one `[q_len, k_len]` score matrix.
    fn scores(&self) -> usize {
        self.q_len * self.k_len
    }
}

/// What is added to the scores and multiplied into the weights (see `fused::AttentionMask`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Masks<'a> {
    /// `[1 or batch, heads, q_len, k_len]`, and whether it has a batch dimension.
    pub bias: Option<(&'a [f32], bool)>,
    /// `[batch, k_len]`.
    pub padding: Option<&'a [f32]>,
    /// `[batch, heads, q_len, k_len]`.
    pub dropout: Option<&'a [f32]>,
}

/// `(out, probs)`: `out: [batch, q_len, inner]`, `probs: [batch, heads, q_len, k_len]` the
/// softmax weights before dropout.
pub fn forward(
    dims: Dims,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    masks: Masks,
    out: &mut [f32],
    probs: &mut [f32],
) {
    let (inner, hs) = (dims.inner(), dims.heads * dims.scores());
    out.par_chunks_mut(dims.q_len * inner)
        .zip(probs.par_chunks_mut(hs))
        .enumerate()
        .for_each(|(b, (out, probs))| forward_row(dims, b, q, k, v, masks, out, probs));
}

#[allow(clippy::too_many_arguments)]
fn forward_row(
    dims: Dims,
    b: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    masks: Masks,
    out: &mut [f32],
    probs: &mut [f32],
) {
    let Dims {
        heads,
        q_len,
        k_len,
        d_kv,
        ..
    } = dims;
    let (inner, n) = (dims.inner(), dims.scores());
    let (q0, k0) = (b * q_len * inner, b * k_len * inner);
    let mut weights = masks.dropout.map(|_| vec![0f32; n]);
    for h in 0..heads {
        let p = h * n;
        let qv = View::new(q, q0 + h * d_kv, q_len, d_kv, inner, 1);
        let kt = View::new(k, k0 + h * d_kv, d_kv, k_len, 1, inner);
        matmul(
            Out {
                data: probs,
                start: p,
                row: k_len,
            },
            qv,
            kt,
            false,
        );
        let bias = masks.bias.map(|(bias, per_batch)| {
            let start = (if per_batch { b * heads + h } else { h }) * n;
            &bias[start..start + n]
        });
        let padding = masks.padding.map(|m| &m[b * k_len..(b + 1) * k_len]);
        softmax_rows(&mut probs[p..p + n], k_len, bias, padding);
        let w = match (&mut weights, masks.dropout) {
            (Some(w), Some(keep)) => {
                let keep = &keep[(b * heads + h) * n..][..n];
                for ((w, p), m) in w.iter_mut().zip(&probs[p..p + n]).zip(keep) {
                    *w = p * m;
                }
                View::new(w, 0, q_len, k_len, k_len, 1)
            }
            _ => View::new(probs, p, q_len, k_len, k_len, 1),
        };
        let vv = View::new(v, k0 + h * d_kv, k_len, d_kv, inner, 1);
        matmul(
            Out {
                data: out,
                start: h * d_kv,
                row: inner,
            },
            w,
            vv,
            false,
        );
    }
}

multiversion! {
    /// Adds bias and padding to each score row of `s: [rows, k_len]` and takes its softmax.
    fn softmax_rows(s: &mut [f32], k_len: usize, bias: Option<&[f32]>, padding: Option<&[f32]>) {
        for (i, row) in s.chunks_exact_mut(k_len).enumerate() {
            if let Some(bias) = bias {
                for (x, b) in row.iter_mut().zip(&bias[i * k_len..(i + 1) * k_len]) {
                    *x += b;
                }
            }
            if let Some(padding) = padding {
                for (x, m) in row.iter_mut().zip(padding) {
                    *x += m;
                }
            }
            let m = max(row);
            for x in row.iter_mut() {
                *x = exp(*x - m);
            }
            let inv = 1.0 / sum_map(row, |x| x);
            for x in row.iter_mut() {
                *x *= inv;
            }
        }
    }
}

/// What the backward computes, and where.
pub struct Grads<'a> {
    pub query: Option<&'a mut [f32]>,
    pub key: Option<&'a mut [f32]>,
    pub value: Option<&'a mut [f32]>,
    /// The scores' gradient `[batch, heads, q_len, k_len]`, kept for the bias' gradient.
    pub scores: Option<&'a mut [f32]>,
}

/// Splits an optional buffer into `n` chunks of `len` (all `None` when absent).
fn chunks(buf: Option<&mut [f32]>, len: usize, n: usize) -> Vec<Option<&mut [f32]>> {
    match buf {
        Some(b) => b.chunks_mut(len).map(Some).collect(),
        None => (0..n).map(|_| None).collect(),
    }
}

/// The gradients of [`forward`] given `grad: [batch, q_len, inner]`, into `grads`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    dims: Dims,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dropout: Option<&[f32]>,
    grad: &[f32],
    grads: Grads,
) {
    let (inner, b) = (dims.inner(), dims.batch);
    let hs = dims.heads * dims.scores();
    let rows: Vec<_> = chunks(grads.query, dims.q_len * inner, b)
        .into_iter()
        .zip(chunks(grads.key, dims.k_len * inner, b))
        .zip(chunks(grads.value, dims.k_len * inner, b))
        .zip(chunks(grads.scores, hs, b))
        .map(|(((dq, dk), dv), ds)| RowGrads { dq, dk, dv, ds })
        .collect();
    rows.into_par_iter()
        .enumerate()
        .for_each(|(b, g)| backward_row(dims, b, q, k, v, probs, dropout, grad, g));
}

struct RowGrads<'a> {
    dq: Option<&'a mut [f32]>,
    dk: Option<&'a mut [f32]>,
    dv: Option<&'a mut [f32]>,
    ds: Option<&'a mut [f32]>,
}

#[allow(clippy::too_many_arguments)]
fn backward_row(
    dims: Dims,
    b: usize,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    probs: &[f32],
    dropout: Option<&[f32]>,
    grad: &[f32],
    mut g: RowGrads,
) {
    let Dims {
        heads,
        q_len,
        k_len,
        d_kv,
        ..
    } = dims;
    let (inner, n) = (dims.inner(), dims.scores());
    let (q0, k0) = (b * q_len * inner, b * k_len * inner);
    let need_scores = g.dq.is_some() || g.dk.is_some() || g.ds.is_some();
    let mut weights = dropout.map(|_| vec![0f32; n]);
    let mut scratch = if g.ds.is_none() && need_scores {
        vec![0f32; n]
    } else {
        Vec::new()
    };
    for h in 0..heads {
        let p = &probs[(b * heads + h) * n..][..n];
        let keep = dropout.map(|m| &m[(b * heads + h) * n..][..n]);
        let dout = View::new(grad, q0 + h * d_kv, q_len, d_kv, inner, 1);
        if let Some(dv) = g.dv.as_deref_mut() {
            // dV = Wᵀ · dO with W the weights after dropout.
            let wt = match (&mut weights, keep) {
                (Some(w), Some(keep)) => {
                    for ((w, p), m) in w.iter_mut().zip(p).zip(keep) {
                        *w = p * m;
                    }
                    View::new(w, 0, k_len, q_len, 1, k_len)
                }
                _ => View::new(p, 0, k_len, q_len, 1, k_len),
            };
            matmul(
                Out {
                    data: dv,
                    start: h * d_kv,
                    row: inner,
                },
                wt,
                dout,
                false,
            );
        }
        if !need_scores {
            continue;
        }
        let ds: &mut [f32] = match g.ds.as_deref_mut() {
            Some(all) => &mut all[h * n..(h + 1) * n],
            None => &mut scratch,
        };
        // dW = dO · Vᵀ, then through dropout and the softmax.
        let vt = View::new(v, k0 + h * d_kv, d_kv, k_len, 1, inner);
        matmul(
            Out {
                data: ds,
                start: 0,
                row: k_len,
            },
            dout,
            vt,
            false,
        );
        softmax_backward_rows(ds, p, keep, k_len);
        let ds_view = View::new(ds, 0, q_len, k_len, k_len, 1);
        if let Some(dq) = g.dq.as_deref_mut() {
            let kv = View::new(k, k0 + h * d_kv, k_len, d_kv, inner, 1);
            matmul(
                Out {
                    data: dq,
                    start: h * d_kv,
                    row: inner,
                },
                ds_view,
                kv,
                false,
            );
        }
        if let Some(dk) = g.dk.as_deref_mut() {
            let dst = View::new(ds, 0, k_len, q_len, 1, k_len);
            let qv = View::new(q, q0 + h * d_kv, q_len, d_kv, inner, 1);
            matmul(
                Out {
                    data: dk,
                    start: h * d_kv,
                    row: inner,
                },
                dst,
                qv,
                false,
            );
        }
    }
}

multiversion! {
    /// `ds = p · (dw·keep − Σ p · dw·keep)` per row, in place over `dw`.
    fn softmax_backward_rows(dw: &mut [f32], p: &[f32], keep: Option<&[f32]>, k_len: usize) {
        if let Some(keep) = keep {
            for (d, m) in dw.iter_mut().zip(keep) {
                *d *= m;
            }
        }
        for (d, p) in dw.chunks_exact_mut(k_len).zip(p.chunks_exact(k_len)) {
            let c = sum_zip(d, p, |d, p| d * p);
            for (d, p) in d.iter_mut().zip(p) {
                *d = p * (*d - c);
            }
        }
    }
}

/// The bias' gradient summed over the batch: `[heads, q_len, k_len]` from
/// `[batch, heads, q_len, k_len]`, adding the batch rows in order.
pub fn sum_batches(ds: &[f32], batch: usize, out: &mut [f32]) {
    let len = out.len();
    out.par_chunks_mut(4096).enumerate().for_each(|(c, out)| {
        let start = c * 4096;
        out.copy_from_slice(&ds[start..start + out.len()]);
        for b in 1..batch {
            for (o, d) in out.iter_mut().zip(&ds[b * len + start..]) {
                *o += d;
            }
        }
    });
}
