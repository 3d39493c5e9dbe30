//! The fused operations on burn's CPU backend (Flex): the one-pass kernels of
//! [`crate::kernels`] on f32 tensors; other dtypes take the composed operations.

use burn::backend::Flex;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{DType, Shape, TensorData, TensorMetadata};
use burn_flex::FlexTensor;

use super::{reference, AdamWStep, AttentionGrads, FusedOps, MaskPrimitives, Needs};
use crate::kernels::matmul::View;
use crate::kernels::{adamw, attention, cross_entropy, linear, norm};

/// The tensor with its elements in one contiguous run starting at its first (a copy only when
/// it is a view).
fn dense(t: &FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

/// A 2-D f32 tensor as a strided matrix over its storage (no copy).
fn matrix(t: &FlexTensor) -> Option<View<'_>> {
    let (shape, layout) = (t.shape(), t.layout());
    let strides = layout.strides();
    if t.dtype() != DType::F32 || shape.num_dims() != 2 || strides.iter().any(|&s| s < 0) {
        return None;
    }
    let storage = t.storage::<f32>();
    let (rows, cols) = (shape[0], shape[1]);
    Some(View::new(
        storage,
        layout.start_offset(),
        rows,
        cols,
        strides[0] as usize,
        strides[1] as usize,
    ))
}

/// The elements of a tensor made by [`dense`].
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("made contiguous f32 by `dense`")
}

fn new_tensor(data: Vec<f32>, shape: impl Into<Shape>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape.into()))
}

/// A tensor this code may write into: the same one when it owns a dense buffer of exactly its
/// elements, else a contiguous copy.
fn writable(t: FlexTensor) -> FlexTensor {
    let n = t.shape().num_elements();
    let whole = t.as_slice::<f32>().is_some_and(|s| s.len() == n) && t.bytes().len() == n * 4;
    if t.is_unique() && whole {
        t
    } else {
        new_tensor(values(&dense(&t)).to_vec(), t.shape())
    }
}

/// The elements of a tensor made by [`writable`].
fn values_mut(t: &mut FlexTensor) -> &mut [f32] {
    t.try_storage_mut::<f32>()
        .expect("made unique by `writable`")
}

fn all_f32(tensors: &[&FlexTensor]) -> bool {
    tensors.iter().all(|t| t.dtype() == DType::F32)
}

fn dims2(t: &FlexTensor) -> [usize; 2] {
    let s = t.shape();
    [s[0], s[1]]
}

/// Integer labels as i64, whatever the integer dtype.
fn labels_i64(t: &IntTensor<Flex>) -> Vec<i64> {
    let data = t.clone().into_data();
    data.convert::<i64>().into_vec::<i64>().unwrap_or_default()
}

impl FusedOps for Flex {
    fn data_parallel_shards() -> usize {
        rayon::current_num_threads()
    }

    fn linear_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        let bias_f32 = bias.as_ref().is_none_or(|b| all_f32(&[b]));
        let (Some(xv), Some(wv), true) = (matrix(&x), matrix(&weight), bias_f32) else {
            return reference::linear_forward::<Self>(x, weight, bias);
        };
        let b = bias.as_ref().map(dense);
        let y = linear::forward(xv, wv, b.as_ref().map(values));
        new_tensor(y, [xv.shape().0, wv.shape().1])
    }

    fn linear_backward(
        x: Option<FloatTensor<Self>>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<3>,
    ) -> [Option<FloatTensor<Self>>; 3] {
        let x_ok = x.as_ref().is_none_or(|x| matrix(x).is_some());
        let (Some(wv), Some(g), true) = (matrix(&weight), matrix(&grad), x_ok) else {
            return reference::linear_backward::<Self>(x, weight, grad, needs);
        };
        let [need_x, need_w, need_b] = needs.0;
        let ((rows, d_out), d_in) = (g.shape(), wv.shape().0);
        let dx = need_x.then(|| new_tensor(linear::grad_input(g, wv), [rows, d_in]));
        let dw = x.as_ref().and_then(matrix).filter(|_| need_w).map(|xv| {
            // In the weight's own layout: a weight stored transposed gets its gradient so too.
            if wv.is_column_major() {
                new_tensor(linear::grad_weight(xv, g, true), [d_out, d_in]).transpose(0, 1)
            } else {
                new_tensor(linear::grad_weight(xv, g, false), [d_in, d_out])
            }
        });
        let db =
            need_b.then(|| new_tensor(linear::grad_bias(values(&dense(&grad)), d_out), [d_out]));
        [dx, dw, db]
    }

    fn embedding_table_backward(
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        indices: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        // burn-flex's own zero-fills a table, copies it into an aligned buffer and copies it
        // again before adding the rows: three passes over t5-small's 64 MB table per step.
        let [n, d] = dims2(&weight);
        let ids = labels_i64(&indices);
        if !all_f32(&[&weight, &grad]) || grad.shape().num_elements() != ids.len() * d {
            return reference::embedding_backward::<Self>(weight, grad, indices);
        }
        let grad = dense(&grad);
        let mut table = vec![0f32; n * d];
        for (row, &id) in values(&grad).chunks_exact(d.max(1)).zip(&ids) {
            // Indices outside the table failed in the forward already.
            if let Some(dst) = usize::try_from(id).ok().filter(|&i| i < n) {
                for (t, g) in table[dst * d..][..d].iter_mut().zip(row) {
                    *t += g;
                }
            }
        }
        new_tensor(table, [n, d])
    }

    fn rms_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&x, &weight]) {
            return reference::rms_norm_forward::<Self>(x, weight, eps);
        }
        let [rows, d] = dims2(&x);
        let (x, w) = (dense(&x), dense(&weight));
        let (mut y, mut rstd) = (vec![0f32; rows * d], vec![0f32; rows]);
        norm::rms_norm_forward(values(&x), values(&w), eps as f32, &mut y, &mut rstd);
        (new_tensor(y, [rows, d]), new_tensor(rstd, [rows]))
    }

    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<2>,
    ) -> (Option<FloatTensor<Self>>, Option<FloatTensor<Self>>) {
        if !all_f32(&[&x, &weight, &rstd, &grad]) {
            return reference::rms_norm_backward::<Self>(x, weight, rstd, grad, needs);
        }
        let [rows, d] = dims2(&x);
        let (x, w, rstd, grad) = (dense(&x), dense(&weight), dense(&rstd), dense(&grad));
        let mut dx = needs.0[0].then(|| vec![0f32; rows * d]);
        let dw = norm::rms_norm_backward(
            values(&x),
            values(&w),
            values(&rstd),
            values(&grad),
            dx.as_deref_mut(),
            needs.0[1],
        );
        (
            dx.map(|dx| new_tensor(dx, [rows, d])),
            dw.map(|dw| new_tensor(dw, [d])),
        )
    }

    fn layer_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&x, &weight, &bias]) {
            return reference::layer_norm_forward::<Self>(x, weight, bias, eps);
        }
        let [rows, d] = dims2(&x);
        let (x, w, b) = (dense(&x), dense(&weight), dense(&bias));
        let (mut y, mut mean, mut rstd) =
            (vec![0f32; rows * d], vec![0f32; rows], vec![0f32; rows]);
        norm::layer_norm_forward(
            values(&x),
            values(&w),
            values(&b),
            eps as f32,
            &mut y,
            &mut mean,
            &mut rstd,
        );
        (
            new_tensor(y, [rows, d]),
            new_tensor(mean, [rows]),
            new_tensor(rstd, [rows]),
        )
    }

    fn layer_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        needs: Needs<3>,
    ) -> [Option<FloatTensor<Self>>; 3] {
        if !all_f32(&[&x, &weight, &mean, &rstd, &grad]) {
            return reference::layer_norm_backward::<Self>(x, weight, mean, rstd, grad, needs);
        }
        let [rows, d] = dims2(&x);
        let (x, w, mean, rstd, grad) = (
            dense(&x),
            dense(&weight),
            dense(&mean),
            dense(&rstd),
            dense(&grad),
        );
        let mut dx = needs.0[0].then(|| vec![0f32; rows * d]);
        let params = norm::layer_norm_backward(
            values(&x),
            values(&w),
            values(&mean),
            values(&rstd),
            values(&grad),
            dx.as_deref_mut(),
            needs.0[1] || needs.0[2],
        );
        let (dw, db) = match params {
            Some((dw, db)) => (
                needs.0[1].then(|| new_tensor(dw, [d])),
                needs.0[2].then(|| new_tensor(db, [d])),
            ),
            None => (None, None),
        };
        [dx.map(|dx| new_tensor(dx, [rows, d])), dw, db]
    }

    fn attention_forward(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        mask: MaskPrimitives<Self>,
        num_heads: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let Some(dims) = attention_dims(&query, &key, &value, &mask, num_heads) else {
            return reference::attention_forward::<Self>(query, key, value, mask, num_heads);
        };
        let (q, k, v) = (dense(&query), dense(&key), dense(&value));
        let bias = mask.bias.as_ref().map(dense);
        let padding = mask.padding.as_ref().map(dense);
        let dropout = mask.dropout.as_ref().map(dense);
        let masks = attention::Masks {
            bias: bias.as_ref().map(|b| (values(b), b.shape()[0] > 1)),
            padding: padding.as_ref().map(values),
            dropout: dropout.as_ref().map(values),
        };
        let inner = num_heads * dims.d_kv;
        let mut out = vec![0f32; dims.batch * dims.q_len * inner];
        let mut probs = vec![0f32; dims.batch * num_heads * dims.q_len * dims.k_len];
        attention::forward(
            dims,
            values(&q),
            values(&k),
            values(&v),
            masks,
            &mut out,
            &mut probs,
        );
        (
            new_tensor(out, [dims.batch, dims.q_len, inner]),
            new_tensor(probs, [dims.batch, num_heads, dims.q_len, dims.k_len]),
        )
    }

    fn attention_backward(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        probs: FloatTensor<Self>,
        dropout: Option<FloatTensor<Self>>,
        grad: FloatTensor<Self>,
        num_heads: usize,
        bias_shape: Option<[usize; 4]>,
        needs: Needs<4>,
    ) -> AttentionGrads<Self> {
        let mask = MaskPrimitives {
            bias: None,
            padding: None,
            dropout: dropout.clone(),
        };
        let dims = attention_dims(&query, &key, &value, &mask, num_heads);
        let (Some(dims), true) = (dims, all_f32(&[&probs, &grad])) else {
            return reference::attention_backward::<Self>(
                query, key, value, probs, dropout, grad, num_heads, bias_shape, needs,
            );
        };
        let [need_q, need_k, need_v, need_bias] = needs.0;
        let need_bias = need_bias && bias_shape.is_some();
        let (q, k, v, p, g) = (
            dense(&query),
            dense(&key),
            dense(&value),
            dense(&probs),
            dense(&grad),
        );
        let dropout = dropout.as_ref().map(dense);
        let inner = num_heads * dims.d_kv;
        let q_size = dims.batch * dims.q_len * inner;
        let k_size = dims.batch * dims.k_len * inner;
        let mut dq = need_q.then(|| vec![0f32; q_size]);
        let mut dk = need_k.then(|| vec![0f32; k_size]);
        let mut dv = need_v.then(|| vec![0f32; k_size]);
        let mut ds =
            need_bias.then(|| vec![0f32; dims.batch * num_heads * dims.q_len * dims.k_len]);
        let grads = attention::Grads {
            query: dq.as_deref_mut(),
            key: dk.as_deref_mut(),
            value: dv.as_deref_mut(),
            scores: ds.as_deref_mut(),
        };
        attention::backward(
            dims,
            values(&q),
            values(&k),
            values(&v),
            values(&p),
            dropout.as_ref().map(values),
            values(&g),
            grads,
        );
        let bias = match (ds, bias_shape) {
            (Some(ds), Some(shape @ [1, ..])) if dims.batch > 1 => {
                let mut sum = vec![0f32; num_heads * dims.q_len * dims.k_len];
                attention::sum_batches(&ds, dims.batch, &mut sum);
                Some(new_tensor(sum, shape))
            }
            (Some(ds), Some(shape)) => Some(new_tensor(ds, shape)),
            _ => None,
        };
        let (ql, kl, b) = (dims.q_len, dims.k_len, dims.batch);
        AttentionGrads {
            query: dq.map(|d| new_tensor(d, [b, ql, inner])),
            key: dk.map(|d| new_tensor(d, [b, kl, inner])),
            value: dv.map(|d| new_tensor(d, [b, kl, inner])),
            bias,
        }
    }

    fn cross_entropy_forward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        smoothing: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if !all_f32(&[&logits]) {
            return reference::cross_entropy_forward::<Self>(logits, labels, smoothing);
        }
        let [n, vocab] = dims2(&logits);
        let z = dense(&logits);
        let mut lse = vec![0f32; n];
        let loss = cross_entropy::forward(
            values(&z),
            vocab,
            &labels_i64(&labels),
            smoothing as f32,
            &mut lse,
        );
        (new_tensor(vec![loss], [1]), new_tensor(lse, [n]))
    }

    fn cross_entropy_backward(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        lse: FloatTensor<Self>,
        smoothing: f64,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        if !all_f32(&[&logits, &lse, &grad]) {
            return reference::cross_entropy_backward::<Self>(logits, labels, lse, smoothing, grad);
        }
        let [_, vocab] = dims2(&logits);
        let g = values(&dense(&grad))[0];
        let lse = dense(&lse);
        // The logits' own buffer when nothing else holds it: one `[n, vocab]` buffer for the
        // logits and their gradient.
        let mut z = writable(logits);
        let labels = labels_i64(&labels);
        cross_entropy::backward(
            values_mut(&mut z),
            vocab,
            &labels,
            values(&lse),
            smoothing as f32,
            g,
        );
        z
    }

    fn adamw_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        moments: Option<[FloatTensor<Self>; 2]>,
        s: AdamWStep,
    ) -> [FloatTensor<Self>; 3] {
        let moments_f32 = moments.as_ref().is_none_or(|[m, v]| all_f32(&[m, v]));
        if !all_f32(&[&param, &grad]) || !moments_f32 {
            return reference::adamw_step::<Self>(param, grad, moments, s);
        }
        let shape = param.shape();
        let n = shape.num_elements();
        let grad = dense(&grad);
        let mut p = writable(param);
        let [mut m, mut v] = match moments {
            Some([m, v]) => [writable(m), writable(v)],
            None => [
                new_tensor(vec![0f32; n], shape.clone()),
                new_tensor(vec![0f32; n], shape),
            ],
        };
        let t = s.time as i32;
        let decay = s.lr * s.weight_decay as f64;
        let constants = adamw::Constants {
            lr: s.lr as f32,
            beta_1: s.beta_1,
            beta_2: s.beta_2,
            epsilon: s.epsilon,
            bias_1: 1f32 - s.beta_1.powi(t),
            bias_2: 1f32 - s.beta_2.powi(t),
            keep: (decay != 0.0).then_some((1.0 - decay) as f32),
        };
        adamw::step(
            values_mut(&mut p),
            values(&grad),
            values_mut(&mut m),
            values_mut(&mut v),
            constants,
        );
        [p, m, v]
    }
}

/// The sizes of an attention call the kernel handles: f32 throughout, `[batch, seq, heads·d_kv]`
/// inputs, a bias of `[1 or batch, heads, q_len, k_len]`, padding `[batch, k_len]`, dropout
/// `[batch, heads, q_len, k_len]`. `None` sends the call to the composed operations.
fn attention_dims(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    mask: &MaskPrimitives<Flex>,
    heads: usize,
) -> Option<attention::Dims> {
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    if qs.num_dims() != 3 || ks.num_dims() != 3 || ks != vs || heads == 0 {
        return None;
    }
    let (batch, q_len, inner) = (qs[0], qs[1], qs[2]);
    let k_len = ks[1];
    if ks[0] != batch || ks[2] != inner || inner % heads != 0 || !all_f32(&[q, k, v]) {
        return None;
    }
    let scores = [batch, heads, q_len, k_len];
    let bias_ok = mask.bias.as_ref().is_none_or(|b| {
        let s = b.shape();
        b.dtype() == DType::F32
            && s.num_dims() == 4
            && (s[0] == 1 || s[0] == batch)
            && s[1..] == scores[1..]
    });
    let padding_ok = mask.padding.as_ref().is_none_or(|p| {
        p.dtype() == DType::F32
            && p.shape().num_dims() == 2
            && p.shape().dims::<2>() == [batch, k_len]
    });
    let dropout_ok = mask.dropout.as_ref().is_none_or(|d| {
        d.dtype() == DType::F32 && d.shape().num_dims() == 4 && d.shape().dims::<4>() == scores
    });
    (bias_ok && padding_ok && dropout_ok).then_some(attention::Dims {
        batch,
        heads,
        q_len,
        k_len,
        d_kv: inner / heads,
    })
}
