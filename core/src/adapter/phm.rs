//! Parameterized hypercomplex multiplication (PHM) layers, the projections of Compacter and
//! Compacter++ (Mahabadi et al. 2021; rabeehk/compacter, as the `adapters` library implements
//! them in `methods/modeling.py` `PHMLayer`): a `[d_in, d_out]` weight built as
//! `H = Σ_i rule_i ⊗ W_i` from `n = phm_dim` small "rule" matrices `[n, n]` and `n` blocks
//! `W_i` `[d_in / n, d_out / n]`. The rule may be one per adapter (shared by every layer,
//! `shared_phm_rule`) and factorized as `left [n, n, 1] · right [n, 1, n]`; `W` may be shared by
//! every layer (`shared_W_phm`) and factorized as `left [n, d_in/n, rank] · right [n, rank, d_out/n]`.

use burn::module::{Initializer, Param, ParamId};
use burn::nn::Linear;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The PHM options of an AdapterHub bottleneck config (`phm_layer: true`), under its key names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhmConfig {
    pub phm_dim: usize,
    pub shared_phm_rule: bool,
    pub factorized_phm_rule: bool,
    #[serde(rename = "shared_W_phm")]
    pub shared_w_phm: bool,
    #[serde(rename = "factorized_phm_W")]
    pub factorized_phm_w: bool,
    pub phm_rank: usize,
    pub phm_bias: bool,
    /// How a new rule is drawn: `normal` (N(0, `phm_init_range`)) or `uniform`.
    pub phm_c_init: String,
    pub phm_init_range: f64,
    pub learn_phm: bool,
    pub hypercomplex_nonlinearity: String,
}

impl Default for PhmConfig {
    /// The library's `BnConfig` defaults.
    fn default() -> Self {
        Self {
            phm_dim: 4,
            shared_phm_rule: true,
            factorized_phm_rule: false,
            shared_w_phm: false,
            factorized_phm_w: true,
            phm_rank: 1,
            phm_bias: true,
            phm_c_init: "normal".into(),
            phm_init_range: 1e-4,
            learn_phm: true,
            hypercomplex_nonlinearity: "glorot-uniform".into(),
        }
    }
}

impl PhmConfig {
    /// Checks the options against a projection of `d_in` -> `d_out` features.
    pub fn check(&self, d_model: usize, bottleneck: usize) -> Result<(), String> {
        let n = self.phm_dim;
        if n == 0 || !d_model.is_multiple_of(n) || !bottleneck.is_multiple_of(n) {
            return Err(format!(
                "`phm_dim` {n} must divide d_model ({d_model}) and the bottleneck ({bottleneck})"
            ));
        }
        if self.phm_rank == 0 {
            return Err("`phm_rank` must be at least 1".into());
        }
        if !["normal", "uniform"].contains(&self.phm_c_init.as_str()) {
            return Err(format!(
                "`phm_c_init` `{}` is not one of normal, uniform",
                self.phm_c_init
            ));
        }
        Ok(())
    }
}

/// A tensor, or the product of two factors along its last two dimensions.
#[derive(Module, Debug)]
pub struct Factored<B: Backend> {
    pub full: Option<Param<Tensor<B, 3>>>,
    pub left: Option<Param<Tensor<B, 3>>>,
    pub right: Option<Param<Tensor<B, 3>>>,
}

impl<B: Backend> Factored<B> {
    pub fn full(t: Tensor<B, 3>) -> Self {
        Self {
            full: Some(Param::from_tensor(t)),
            left: None,
            right: None,
        }
    }

    pub fn factors(left: Tensor<B, 3>, right: Tensor<B, 3>) -> Self {
        Self {
            full: None,
            left: Some(Param::from_tensor(left)),
            right: Some(Param::from_tensor(right)),
        }
    }

    /// The tensor (`left · right`, batched over the first dimension, when factorized).
    pub fn value(&self) -> Tensor<B, 3> {
        match (&self.full, &self.left, &self.right) {
            (Some(full), _, _) => full.val(),
            (None, Some(l), Some(r)) => l.val().matmul(r.val()),
            _ => unreachable!("a Factored holds `full` or both factors"),
        }
    }

    /// `(suffix, tensor)` of each stored tensor: `("", full)` or `("_left", l), ("_right", r)`.
    pub fn stored(&self) -> Vec<(&'static str, Tensor<B, 3>)> {
        match (&self.full, &self.left, &self.right) {
            (Some(full), _, _) => vec![("", full.val())],
            (None, Some(l), Some(r)) => vec![("_left", l.val()), ("_right", r.val())],
            _ => Vec::new(),
        }
    }
}

/// One PHM projection's own parameters (the rule and `W` are `None` where the adapter shares
/// them across layers: [`PhmShared`]).
#[derive(Module, Debug)]
pub struct PhmLinear<B: Backend> {
    pub rule: Option<Factored<B>>,
    pub w: Option<Factored<B>>,
    pub bias: Option<Param<Tensor<B, 1>>>,
}

/// The parameters one adapter shares across its layers: the rule, and `W` of the down and up
/// projections.
#[derive(Module, Debug)]
pub struct PhmShared<B: Backend> {
    pub rule: Option<Factored<B>>,
    pub w_down: Option<Factored<B>>,
    pub w_up: Option<Factored<B>>,
}

/// `Σ_i rule_i ⊗ w_i` (the library's `kronecker_product(rule, W).sum(0)`).
///
/// # Shapes
/// - rule: `[n, n, n]`, w: `[n, a, b]` -> `[n a, n b]`
pub fn phm_matrix<B: Backend>(rule: Tensor<B, 3>, w: Tensor<B, 3>) -> Tensor<B, 2> {
    let [n, a, b] = w.dims();
    // H[(p, q), (r, s)] = Σ_i rule[i, p, r] w[i, q, s]: one product over `i`, then the
    // Kronecker layout (a product rather than a broadcast sum keeps the gradients' sums in
    // the matmul kernels).
    let m = rule
        .reshape([n, n * n])
        .transpose()
        .matmul(w.reshape([n, a * b]));
    m.reshape([n, n, a, b])
        .swap_dims(1, 2)
        .reshape([n * a, n * b])
}

impl<B: Backend> PhmLinear<B> {
    /// The projection as a linear layer (`[d_in, d_out]` weight and bias) whose weight stays a
    /// node of the graph that built it, so gradients reach the rule and `W`. `shared_w` is the
    /// adapter's shared `W` of this projection's side.
    pub fn linear(&self, shared: Option<&PhmShared<B>>, up: bool) -> Linear<B> {
        let rule = self
            .rule
            .as_ref()
            .or(shared.and_then(|s| s.rule.as_ref()))
            .expect("a PHM layer has its rule or a shared one")
            .value();
        let shared_w = shared.and_then(|s| {
            if up {
                s.w_up.as_ref()
            } else {
                s.w_down.as_ref()
            }
        });
        let w = self
            .w
            .as_ref()
            .or(shared_w)
            .expect("a PHM layer has its W or a shared one")
            .value();
        Linear {
            weight: Param::initialized(ParamId::new(), phm_matrix(rule, w)),
            bias: self.bias.clone(),
        }
    }
}

/// N(0, std) or U(-a, a) draws of `shape`.
fn draw<B: Backend>(shape: [usize; 3], init: Initializer, device: &B::Device) -> Tensor<B, 3> {
    init.init::<B, 3, _>(shape, device).val()
}

/// The library's initialization of `W` (`init_W`): each of the `n` blocks Xavier-normal (its
/// `hypercomplex_nonlinearity` test is on the string's truth, so every setting draws this).
fn init_w<B: Backend>(c: &PhmConfig, [n, a, b]: [usize; 3], device: &B::Device) -> Factored<B> {
    let xavier = |rows: usize, cols: usize| Initializer::Normal {
        mean: 0.0,
        std: (2.0 / (rows + cols) as f64).sqrt(),
    };
    if c.factorized_phm_w {
        let r = c.phm_rank;
        Factored::factors(
            draw([n, a, r], xavier(a, r), device),
            draw([n, r, b], xavier(r, b), device),
        )
    } else {
        Factored::full(draw([n, a, b], xavier(a, b), device))
    }
}

/// The library's initialization of a rule: N(0, `phm_init_range`) or U(-`range`, `range`), with
/// `range` 0.01 for a rule per layer and 1 for a shared one.
fn init_rule<B: Backend>(c: &PhmConfig, uniform_range: f64, device: &B::Device) -> Factored<B> {
    let n = c.phm_dim;
    let init = match c.phm_c_init.as_str() {
        "uniform" => Initializer::Uniform {
            min: -uniform_range,
            max: uniform_range,
        },
        _ => Initializer::Normal {
            mean: 0.0,
            std: c.phm_init_range,
        },
    };
    if c.factorized_phm_rule {
        Factored::factors(
            draw([n, n, 1], init.clone(), device),
            draw([n, 1, n], init, device),
        )
    } else {
        Factored::full(draw([n, n, n], init, device))
    }
}

impl<B: Backend> PhmLinear<B> {
    /// A new projection `d_in` -> `d_out` (the library's `PHMLayer.reset_parameters`).
    pub fn init(c: &PhmConfig, (d_in, d_out): (usize, usize), device: &B::Device) -> Self {
        let n = c.phm_dim;
        Self {
            rule: (!c.shared_phm_rule).then(|| init_rule(c, 0.01, device)),
            w: (!c.shared_w_phm).then(|| init_w(c, [n, d_in / n, d_out / n], device)),
            bias: c.phm_bias.then(|| Initializer::Zeros.init([d_out], device)),
        }
    }
}

impl<B: Backend> PhmShared<B> {
    /// New shared parameters (the library's `init_shared_parameters`), `None` when the config
    /// shares nothing.
    pub fn init(c: &PhmConfig, (d, r): (usize, usize), device: &B::Device) -> Option<Self> {
        let n = c.phm_dim;
        (c.shared_phm_rule || c.shared_w_phm).then(|| Self {
            rule: c.shared_phm_rule.then(|| init_rule(c, 1.0, device)),
            w_down: c.shared_w_phm.then(|| init_w(c, [n, d / n, r / n], device)),
            w_up: c.shared_w_phm.then(|| init_w(c, [n, r / n, d / n], device)),
        })
    }
}
