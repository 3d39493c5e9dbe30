//! T5's feed-forward sublayer: `DenseReluDense` (v1.0, `wi`/`wo`) or `DenseGatedActDense`
//! (v1.1, flan-T5, mT5: `wi_0`/`wi_1`/`wo`).

use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;

use crate::adapter::lora::Target;
use crate::adapter::{set::project_adapted, Adapters};
use crate::config::{Activation, T5Config};
use crate::error::Result;
use crate::fused::FusedOps;
use crate::layers::{activate, init_linear, load_linear};
use crate::weights::Weights;

/// `wo(dropout(act(wi(x))))`, or `wo(dropout(act(wi_0(x)) * wi_1(x)))` when gated.
#[derive(Module, Debug)]
pub struct DenseActDense<B: Backend> {
    /// `wi` (ungated) or `wi_0` (gated): `[d_model, d_ff]`.
    pub wi: Linear<B>,
    /// `wi_1`, the linear gate of the gated variant.
    pub wi_1: Option<Linear<B>>,
    /// `[d_ff, d_model]`.
    pub wo: Linear<B>,
    pub dropout: Dropout,
    #[module(skip)]
    pub activation: Activation,
}

impl<B: Backend> DenseActDense<B> {
    pub fn init(c: &T5Config, device: &B::Device) -> Self {
        let ff = c.feed_forward().expect("validated config");
        let (d, f) = (c.d_model, c.initializer_factor);
        let std_in = f * (d as f64).powf(-0.5);
        Self {
            wi: init_linear(d, c.d_ff, std_in, device),
            wi_1: ff.gated.then(|| init_linear(d, c.d_ff, std_in, device)),
            wo: init_linear(c.d_ff, d, f * (c.d_ff as f64).powf(-0.5), device),
            dropout: DropoutConfig::new(c.dropout_rate).init(),
            activation: ff.activation,
        }
    }

    pub fn load(w: &mut Weights, name: &str, c: &T5Config, device: &B::Device) -> Result<Self> {
        let ff = c.feed_forward().expect("validated config");
        let (d, d_ff) = (c.d_model, c.d_ff);
        let (wi, wi_1) = if ff.gated {
            (
                load_linear(w, &format!("{name}.wi_0"), d, d_ff, device)?,
                Some(load_linear(w, &format!("{name}.wi_1"), d, d_ff, device)?),
            )
        } else {
            (
                load_linear(w, &format!("{name}.wi"), d, d_ff, device)?,
                None,
            )
        };
        Ok(Self {
            wi,
            wi_1,
            wo: load_linear(w, &format!("{name}.wo"), d_ff, d, device)?,
            dropout: DropoutConfig::new(c.dropout_rate).init(),
            activation: ff.activation,
        })
    }
}

impl<B: FusedOps> DenseActDense<B> {
    /// `at`: the adapters and this block's layer number (for LoRA).
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_model]` -> `[batch, seq, d_model]`
    pub fn forward(&self, x: Tensor<B, 3>, at: Option<(&Adapters<B>, usize)>) -> Tensor<B, 3> {
        let h = activate(
            self.activation,
            project_adapted(&self.wi, x.clone(), at, Target::Wi),
        );
        let h = match &self.wi_1 {
            Some(gate) => h * project_adapted(gate, x, at, Target::Wi1),
            None => h,
        };
        project_adapted(&self.wo, self.dropout.forward(h), at, Target::Wo)
    }
}
