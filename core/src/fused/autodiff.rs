//! The fused operations under burn's autodiff: each is one node of the graph whose backward
//! calls the inner backend's fused backward (burn's custom-operation pattern), instead of the
//! dozen nodes, allocations and broadcast reductions of the composed operations.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::TensorMetadata;

use super::{FusedOps, MaskPrimitives, Needs};

/// Adds a gradient to a parent's (when the parent requires one). A macro because the node type
/// is private to burn-autodiff.
macro_rules! register {
    ($grads:expr, $parent:expr, $grad:expr) => {
        if let (Some(node), Some(grad)) = ($parent, $grad) {
            $grads.register::<B>(node.id, grad);
        }
    };
}

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
    fn data_parallel_shards() -> usize {
        B::data_parallel_shards()
    }

    fn fused_linear(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: Option<FloatTensor<Self>>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Linear;

        impl<B: FusedOps> Backward<B, 3> for Linear {
            /// The input (kept only when the weight trains: a frozen layer keeps no activation)
            /// and the weight.
            type State = (Option<FloatTensor<B>>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [px, pw, pb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight) = ops.state;
                let needs = Needs([px.is_some(), pw.is_some(), pb.is_some()]);
                let [dx, dw, db] = B::linear_backward(x, weight, grad, needs);
                register!(grads, px, dx);
                register!(grads, pw, dw);
                register!(grads, pb, db);
            }
        }

        let y = B::linear_forward(
            x.primitive.clone(),
            weight.primitive.clone(),
            bias.as_ref().map(|b| b.primitive.clone()),
        );
        // A missing bias is a constant (a node that never requires a gradient).
        let bias = bias.unwrap_or_else(|| Self::from_inner(y.clone()));
        let w_tracked = weight.is_tracked();
        match Linear
            .prepare::<C>([x.node, weight.node, bias.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((w_tracked.then_some(x.primitive), weight.primitive), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fused_embedding(weight: FloatTensor<Self>, indices: IntTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Embedding;

        impl<B: FusedOps> Backward<B, 1> for Embedding {
            /// The table (for its shape) and the indices.
            type State = (FloatTensor<B>, IntTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (weight, indices) = ops.state;
                if let Some(node) = parent {
                    grads
                        .register::<B>(node.id, B::embedding_table_backward(weight, grad, indices));
                }
            }
        }

        let y = B::embedding(weight.primitive.clone(), indices.clone());
        match Embedding
            .prepare::<C>([weight.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((weight.primitive, indices), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fused_rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RmsNorm;

        impl<B: FusedOps> Backward<B, 2> for RmsNorm {
            /// Input, weight, reciprocal RMS per row.
            type State = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [px, pw] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight, rstd) = ops.state;
                let needs = Needs([px.is_some(), pw.is_some()]);
                let (dx, dw) = B::rms_norm_backward(x, weight, rstd, grad, needs);
                register!(grads, px, dx);
                register!(grads, pw, dw);
            }
        }

        let (y, rstd) = B::rms_norm_forward(x.primitive.clone(), weight.primitive.clone(), eps);
        match RmsNorm
            .prepare::<C>([x.node, weight.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish((x.primitive, weight.primitive, rstd), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fused_layer_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct LayerNorm;

        impl<B: FusedOps> Backward<B, 3> for LayerNorm {
            /// Input, weight, mean and reciprocal standard deviation per row.
            type State = [FloatTensor<B>; 4];

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [px, pw, pb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let [x, weight, mean, rstd] = ops.state;
                let needs = Needs([px.is_some(), pw.is_some(), pb.is_some()]);
                let [dx, dw, db] = B::layer_norm_backward(x, weight, mean, rstd, grad, needs);
                register!(grads, px, dx);
                register!(grads, pw, dw);
                register!(grads, pb, db);
            }
        }

        let (y, mean, rstd) = B::layer_norm_forward(
            x.primitive.clone(),
            weight.primitive.clone(),
            bias.primitive,
            eps,
        );
        match LayerNorm
            .prepare::<C>([x.node, weight.node, bias.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish([x.primitive, weight.primitive, mean, rstd], y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn fused_attention(
        query: FloatTensor<Self>,
        key: FloatTensor<Self>,
        value: FloatTensor<Self>,
        mask: MaskPrimitives<Self>,
        num_heads: usize,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Attention;

        #[derive(Clone, Debug)]
        struct State<B: FusedOps> {
            query: FloatTensor<B>,
            key: FloatTensor<B>,
            value: FloatTensor<B>,
            probs: FloatTensor<B>,
            dropout: Option<FloatTensor<B>>,
            num_heads: usize,
            bias_shape: Option<[usize; 4]>,
        }

        impl<B: FusedOps> Backward<B, 4> for Attention {
            type State = State<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 4>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [pq, pk, pv, pb] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let s = ops.state;
                let needs = Needs([pq.is_some(), pk.is_some(), pv.is_some(), pb.is_some()]);
                let g = B::attention_backward(
                    s.query,
                    s.key,
                    s.value,
                    s.probs,
                    s.dropout,
                    grad,
                    s.num_heads,
                    s.bias_shape,
                    needs,
                );
                register!(grads, pq, g.query);
                register!(grads, pk, g.key);
                register!(grads, pv, g.value);
                register!(grads, pb, g.bias);
            }
        }

        // Padding and dropout are constants; a missing bias is a constant too (a node that
        // never requires a gradient).
        let bias_shape = mask.bias.as_ref().map(|b| dims4(&b.primitive));
        let bias = mask
            .bias
            .unwrap_or_else(|| Self::from_inner(query.primitive.clone()));
        let inner = MaskPrimitives {
            bias: bias_shape.map(|_| bias.primitive.clone()),
            padding: mask.padding.map(Self::inner),
            dropout: mask.dropout.map(Self::inner),
        };
        let dropout = inner.dropout.clone();
        let (out, probs) = B::attention_forward(
            query.primitive.clone(),
            key.primitive.clone(),
            value.primitive.clone(),
            inner,
            num_heads,
        );
        match Attention
            .prepare::<C>([query.node, key.node, value.node, bias.node])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                State {
                    query: query.primitive,
                    key: key.primitive,
                    value: value.primitive,
                    probs,
                    dropout,
                    num_heads,
                    bias_shape,
                },
                out,
            ),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }

    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        labels: IntTensor<Self>,
        smoothing: f64,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CrossEntropy;

        impl<B: FusedOps> Backward<B, 1> for CrossEntropy {
            /// Logits, labels, log-sum-exp per row, label smoothing.
            type State = (FloatTensor<B>, IntTensor<B>, FloatTensor<B>, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (logits, labels, lse, smoothing) = ops.state;
                if let Some(node) = parent {
                    let d = B::cross_entropy_backward(logits, labels, lse, smoothing, grad);
                    grads.register::<B>(node.id, d);
                }
            }
        }

        let (loss, lse) =
            B::cross_entropy_forward(logits.primitive.clone(), labels.clone(), smoothing);
        match CrossEntropy
            .prepare::<C>([logits.node])
            .compute_bound()
            .stateful()
        {
            // The logits move into the state, so the backward can write the gradient into their
            // buffer when nothing else holds them.
            OpsKind::Tracked(prep) => prep.finish((logits.primitive, labels, lse, smoothing), loss),
            OpsKind::UnTracked(prep) => prep.finish(loss),
        }
    }
}

fn dims4<T: TensorMetadata>(t: &T) -> [usize; 4] {
    let shape = t.shape();
    [shape[0], shape[1], shape[2], shape[3]]
}
