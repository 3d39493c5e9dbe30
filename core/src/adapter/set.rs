//! Adapters of many tasks over one frozen backbone, and which rows of a batch use which.

use burn::prelude::*;

use crate::fused::FusedOps;

use super::bottleneck::{AdapterNorms, Bottleneck};
use super::config::BottleneckConfig;
use super::ia3::{Ia3Config, Ia3Vector};
use super::lora::{LoraConfig, LoraLinear};
use super::phm::PhmShared;
use crate::config::{Activation, T5Config};
use crate::error::{Error, Result};

/// Which of a block's sublayers an adapter follows. Cross-attention is never adapted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sublayer {
    SelfAttention = 0,
    FeedForward = 1,
}

/// Adapter positions are numbered `2 * layer + sublayer`, where encoder block `i` is layer `i`
/// and decoder block `i` is layer `num_layers + i` (AdapterHub's `leave_out` numbering).
pub fn position(layer: usize, sublayer: Sublayer) -> usize {
    2 * layer + sublayer as usize
}

/// Number of positions in a model.
pub fn num_positions(model: &T5Config) -> usize {
    2 * (model.num_layers + model.num_decoder_layers())
}

/// HF's name of the sublayer at `position`: `encoder.block.1.layer.0`, `decoder.block.0.layer.2`.
pub fn position_name(model: &T5Config, position: usize) -> String {
    let (layer, sub) = (position / 2, position % 2);
    if layer < model.num_layers {
        format!("encoder.block.{layer}.layer.{sub}")
    } else {
        format!(
            "decoder.block.{}.layer.{}",
            layer - model.num_layers,
            if sub == 0 { 0 } else { 2 }
        )
    }
}

/// Whether `config` puts an adapter at `position`.
pub fn has_adapter(config: &BottleneckConfig, position: usize) -> bool {
    let (layer, sub) = (position / 2, position % 2);
    let wanted = if sub == 0 {
        config.mh_adapter
    } else {
        config.output_adapter
    };
    wanted && !config.leave_out.contains(&layer)
}

/// The on-disk format an adapter came from (and is saved back in).
#[derive(Clone, Debug, PartialEq)]
pub enum AdapterFormat {
    /// This project's format (`adapter_config.json` with `"format": "t5-adapters"`).
    Native,
    /// The `adapters` library's (AdapterHub) format; keeps the library's config as loaded.
    AdapterHub {
        name: String,
        config: serde_json::Value,
    },
    /// HF PEFT's format (`adapter_model.safetensors`); keeps PEFT's config as loaded.
    Peft { config: serde_json::Value },
}

/// One task's adapters: bottleneck adapters after sublayers, LoRA updates of linear layers.
#[derive(Module, Debug)]
pub struct TaskAdapter<B: Backend> {
    /// Indexed by [`position`]; `None` where the config puts no adapter.
    pub positions: Vec<Option<Bottleneck<B>>>,
    /// Indexed by [`super::lora::site`]; empty when the adapter has no LoRA.
    pub linears: Vec<Option<LoraLinear<B>>>,
    /// (IA)³ vectors, indexed by [`super::lora::site`]; empty when the adapter has none.
    pub scales: Vec<Option<Ia3Vector<B>>>,
    /// The PHM parameters a Compacter shares across its layers.
    pub phm: Option<PhmShared<B>>,
    #[module(skip)]
    pub name: String,
    /// The bottleneck adapters' settings ([`BottleneckConfig::none`] for a LoRA).
    #[module(skip)]
    pub config: BottleneckConfig,
    /// The LoRA settings, for a LoRA.
    #[module(skip)]
    pub lora: Option<LoraConfig>,
    /// The (IA)³ settings, for an (IA)³ adapter.
    #[module(skip)]
    pub ia3: Option<Ia3Config>,
    #[module(skip)]
    pub activation: Activation,
    #[module(skip)]
    pub format: AdapterFormat,
    /// Use the set's shared norms instead of `positions[p].norms` (the seed's default while
    /// training several tasks).
    #[module(skip)]
    pub shared_norms: bool,
}

impl<B: Backend> TaskAdapter<B> {
    /// Fresh adapters for `name` (weights N(0, 0.01), biases 0, norms identity).
    pub fn init(
        name: &str,
        config: BottleneckConfig,
        model: &T5Config,
        device: &B::Device,
    ) -> Result<Self> {
        config
            .validate(model)
            .map_err(|e| Error::Invalid(format!("adapter `{name}`: {e}")))?;
        let activation = config.activation().map_err(Error::Invalid)?;
        let positions = (0..num_positions(model))
            .map(|p| {
                has_adapter(&config, p).then(|| Bottleneck::init(&config, model.d_model, device))
            })
            .collect();
        let phm = config.phm.as_ref().and_then(|c| {
            PhmShared::init(c, (model.d_model, config.bottleneck(model.d_model)), device)
        });
        Ok(Self {
            positions,
            linears: Vec::new(),
            scales: Vec::new(),
            phm,
            name: name.to_string(),
            config,
            lora: None,
            ia3: None,
            activation,
            format: AdapterFormat::Native,
            shared_norms: false,
        })
    }

    /// A fresh LoRA for `name` (PEFT's initialization: `B` zero, so it starts as the backbone),
    /// saved in PEFT's format.
    pub fn init_lora(
        name: &str,
        config: LoraConfig,
        model: &T5Config,
        device: &B::Device,
    ) -> Result<Self> {
        let bad = |e: String| Error::Invalid(format!("LoRA `{name}`: {e}"));
        let mut linears: Vec<Option<LoraLinear<B>>> =
            (0..super::lora::num_sites(model)).map(|_| None).collect();
        for s in config.sites(model).map_err(bad)? {
            let (d_in, d_out) = super::lora::site_dims(model, s.site);
            linears[s.site] = Some(LoraLinear::init(
                d_in,
                d_out,
                s.r,
                s.scaling,
                config.lora_dropout,
                device,
            ));
        }
        let format = AdapterFormat::Peft {
            config: super::lora::new_peft_config(&config, None),
        };
        Ok(Self::with_lora(name, config, linears, format, model))
    }

    /// A task adapter that is a LoRA only.
    pub fn with_lora(
        name: &str,
        config: LoraConfig,
        linears: Vec<Option<LoraLinear<B>>>,
        format: AdapterFormat,
        model: &T5Config,
    ) -> Self {
        Self {
            positions: (0..num_positions(model)).map(|_| None).collect(),
            linears,
            scales: Vec::new(),
            phm: None,
            name: name.to_string(),
            config: BottleneckConfig::none(),
            lora: Some(config),
            ia3: None,
            activation: Activation::Relu,
            format,
            shared_norms: false,
        }
    }

    /// A fresh (IA)³ adapter for `name` (vectors of ones, so it starts as the backbone), saved
    /// in PEFT's format.
    pub fn init_ia3(
        name: &str,
        config: Ia3Config,
        model: &T5Config,
        device: &B::Device,
    ) -> Result<Self> {
        let sites = config
            .sites(model)
            .map_err(|e| Error::Invalid(format!("(IA)³ `{name}`: {e}")))?;
        let mut scales: Vec<Option<Ia3Vector<B>>> =
            (0..super::lora::num_sites(model)).map(|_| None).collect();
        for s in sites {
            let (d_in, d_out) = super::lora::site_dims(model, s.site);
            let d = if s.feedforward { d_in } else { d_out };
            scales[s.site] = Some(Ia3Vector::init(d, s.feedforward, config.alpha, device));
        }
        let format = AdapterFormat::Peft {
            config: super::ia3::new_peft_ia3_config(&config, model),
        };
        Ok(Self::with_ia3(name, config, scales, format, model))
    }

    /// A task adapter that is an (IA)³ adapter only.
    pub fn with_ia3(
        name: &str,
        config: Ia3Config,
        scales: Vec<Option<Ia3Vector<B>>>,
        format: AdapterFormat,
        model: &T5Config,
    ) -> Self {
        Self {
            positions: (0..num_positions(model)).map(|_| None).collect(),
            linears: Vec::new(),
            scales,
            phm: None,
            name: name.to_string(),
            config: BottleneckConfig::none(),
            lora: None,
            ia3: Some(config),
            activation: Activation::Relu,
            format,
            shared_norms: false,
        }
    }

    /// Trainable parameters.
    pub fn num_params(&self) -> usize {
        burn::module::Module::num_params(self)
    }
}

/// Adapters of several tasks, attached to and removed from a backbone by name at run time.
#[derive(Module, Debug)]
pub struct AdapterSet<B: Backend> {
    pub tasks: Vec<TaskAdapter<B>>,
    /// Per position, the norms shared by tasks with `shared_norms` (empty when none share).
    pub shared_norms: Vec<Option<AdapterNorms<B>>>,
}

impl<B: Backend> Default for AdapterSet<B> {
    fn default() -> Self {
        Self {
            tasks: Vec::new(),
            shared_norms: Vec::new(),
        }
    }
}

impl<B: Backend> AdapterSet<B> {
    pub fn names(&self) -> Vec<&str> {
        self.tasks.iter().map(|t| t.name.as_str()).collect()
    }

    /// The index of task `name`, or an error listing the tasks that exist.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.tasks
            .iter()
            .position(|t| t.name == name)
            .ok_or_else(|| {
                let known = self.names();
                Error::Invalid(if known.is_empty() {
                    format!("unknown task `{name}`: no adapters are attached")
                } else {
                    format!(
                        "unknown task `{name}`; attached adapters: {}",
                        known.join(", ")
                    )
                })
            })
    }

    /// Attaches `adapter`, replacing one of the same name.
    pub fn insert(&mut self, adapter: TaskAdapter<B>) {
        match self.tasks.iter().position(|t| t.name == adapter.name) {
            Some(i) => self.tasks[i] = adapter,
            None => self.tasks.push(adapter),
        }
    }

    /// Detaches and returns task `name`.
    pub fn remove(&mut self, name: &str) -> Result<TaskAdapter<B>> {
        let i = self.index(name)?;
        Ok(self.tasks.remove(i))
    }

    /// Makes every task with this set's seed config share one set of norms per position, as
    /// the seed does (the norms start from the first task's).
    pub fn share_norms(&mut self) {
        let n = self.tasks.first().map(|t| t.positions.len()).unwrap_or(0);
        self.shared_norms = (0..n)
            .map(|p| {
                self.tasks
                    .iter()
                    .find_map(|t| t.positions[p].as_ref().map(|b| b.norms.detached_copy()))
            })
            .collect();
        for t in &mut self.tasks {
            t.shared_norms = true;
        }
    }

    /// The norms task `task` uses at `position`.
    pub fn norms(&self, task: usize, position: usize) -> Option<&AdapterNorms<B>> {
        let t = &self.tasks[task];
        if t.shared_norms {
            self.shared_norms.get(position).and_then(Option::as_ref)
        } else {
            t.positions[position].as_ref().map(|b| &b.norms)
        }
    }

    /// Every task's trainable parameters.
    pub fn num_params(&self) -> usize {
        burn::module::Module::num_params(self)
    }

    /// Whether any task has a LoRA at `site`.
    pub fn has_lora_at(&self, site: usize) -> bool {
        self.tasks
            .iter()
            .any(|t| t.linears.get(site).is_some_and(Option::is_some))
    }

    pub fn has_ia3_at(&self, site: usize) -> bool {
        self.tasks
            .iter()
            .any(|t| t.scales.get(site).is_some_and(Option::is_some))
    }
}

/// Which adapter each row of a batch goes through.
#[derive(Clone, Debug, PartialEq)]
pub enum Routing {
    /// Every row through task `i`.
    Task(usize),
    /// Row `r` through `rows[r]`; `None` is the plain backbone.
    Rows(Vec<Option<usize>>),
}

impl Routing {
    /// The routing after each row is repeated `k` times (beam search).
    pub fn repeat_rows(&self, k: usize) -> Self {
        match self {
            Routing::Task(t) => Routing::Task(*t),
            Routing::Rows(rows) => Routing::Rows(
                rows.iter()
                    .flat_map(|r| std::iter::repeat_n(*r, k))
                    .collect(),
            ),
        }
    }
}

/// Each site's gathered per-row LoRA pairs ([`super::lora::rows::gather_per_row`]).
type Gathered<B> = std::collections::HashMap<usize, (Tensor<B, 3>, Tensor<B, 3>)>;

/// Adapters for one forward pass (or one generation): the set and the routing of its rows.
#[derive(Clone, Debug)]
pub struct Adapters<'a, B: Backend> {
    pub set: &'a AdapterSet<B>,
    pub routing: Routing,
    /// The per-row LoRA pairs gathered so far, by site: the routing does not change while
    /// this lives, so every decoding step reuses them.
    gathered: std::cell::RefCell<Gathered<B>>,
}

impl<'a, B: Backend> Adapters<'a, B> {
    /// All rows through task `name`.
    pub fn task(set: &'a AdapterSet<B>, name: &str) -> Result<Self> {
        Ok(Self {
            set,
            routing: Routing::Task(set.index(name)?),
            gathered: Default::default(),
        })
    }

    /// Row `r` through task `names[r]` (`None`: no adapter).
    pub fn per_row(set: &'a AdapterSet<B>, names: &[Option<&str>]) -> Result<Self> {
        let rows = names
            .iter()
            .map(|n| n.map(|n| set.index(n)).transpose())
            .collect::<Result<_>>()?;
        Ok(Self {
            set,
            routing: Routing::Rows(rows),
            gathered: Default::default(),
        })
    }

    pub fn repeat_rows(&self, k: usize) -> Self {
        Self {
            set: self.set,
            routing: self.routing.repeat_rows(k),
            gathered: Default::default(),
        }
    }
}

impl<B: FusedOps> Adapters<'_, B> {
    /// The output of the sublayer at `position` from its input `x` and raw output `h`.
    ///
    /// # Shapes
    /// - x, h: `[batch, seq, d_model]` -> `[batch, seq, d_model]`
    pub fn apply(
        &self,
        position: usize,
        x: Tensor<B, 3>,
        h: Tensor<B, 3>,
        dropout: &burn::nn::Dropout,
    ) -> Tensor<B, 3> {
        self.by_rows(vec![x, h], |task, mut xh| {
            let h = xh.pop().expect("two inputs");
            let x = xh.pop().expect("two inputs");
            self.apply_task(task, position, x, h, dropout)
        })
    }

    /// `layer(x)` through the linear-layer adapters of each row's task at `site`: the (IA)³
    /// vector scales the input (feed-forward modules) or the output, and the LoRA update is
    /// added. Rows whose task has neither get `layer(x)`.
    ///
    /// # Shapes
    /// - x: `[batch, seq, d_in]` -> `[batch, seq, d_out]`
    pub fn project(
        &self,
        site: usize,
        layer: &burn::nn::Linear<B>,
        x: Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let [_, _, d_in] = x.dims();
        let device = x.device();
        let y = match self.ia3_factors(site, true, d_in, &device) {
            Some(f) => crate::layers::project(layer, x.clone() * f),
            None => crate::layers::project(layer, x.clone()),
        };
        let d_out = y.dims()[2];
        let y = match self.ia3_factors(site, false, d_out, &device) {
            Some(f) => y * f,
            None => y,
        };
        if !self.set.has_lora_at(site) {
            return y;
        }
        y + self.lora_delta(site, x, d_out)
    }

    /// The (IA)³ factors `[rows or 1, 1, d]` at `site` on the input (`feedforward`) or output
    /// side, or `None` when no row's task scales that side.
    fn ia3_factors(
        &self,
        site: usize,
        feedforward: bool,
        d: usize,
        device: &B::Device,
    ) -> Option<Tensor<B, 3>> {
        if !self.set.has_ia3_at(site) {
            return None;
        }
        let of = |task: Option<usize>| {
            let v = self.set.tasks[task?].scales.get(site)?.as_ref()?;
            (v.feedforward == feedforward).then_some(v)
        };
        let rows: Vec<_> = match &self.routing {
            Routing::Task(t) => vec![of(Some(*t))],
            Routing::Rows(rows) => rows.iter().map(|&t| of(t)).collect(),
        };
        super::ia3::factors_per_row(&rows, d, device)
    }

    /// The LoRA update of each row's task at `site` (zero for rows without one).
    fn lora_delta(&self, site: usize, x: Tensor<B, 3>, d_out: usize) -> Tensor<B, 3> {
        let lora_of =
            |task: Option<usize>| task.and_then(|t| self.set.tasks[t].linears.get(site)?.as_ref());
        if let Routing::Rows(rows) = &self.routing {
            let cached = self.gathered.borrow().get(&site).cloned();
            let pair = cached.or_else(|| {
                let loras: Vec<_> = rows.iter().map(|&t| lora_of(t)).collect();
                let dims = (x.dims()[2], d_out);
                let pair = super::lora::rows::gather_per_row(&loras, dims, &x.device())?;
                self.gathered.borrow_mut().insert(site, pair.clone());
                Some(pair)
            });
            if let Some((a, b)) = pair {
                return x.matmul(a).matmul(b);
            }
        }
        self.by_rows(vec![x], |task, mut xs| {
            let x = xs.pop().expect("one input");
            match lora_of(task) {
                Some(lora) => lora.delta(x),
                None => {
                    let [b, s, _] = x.dims();
                    Tensor::zeros([b, s, d_out], &x.device())
                }
            }
        })
    }

    /// `f(task, rows)` for each task's rows of `inputs` (all rows at once when they share a
    /// task), with the results put back in row order.
    fn by_rows(
        &self,
        inputs: Vec<Tensor<B, 3>>,
        f: impl Fn(Option<usize>, Vec<Tensor<B, 3>>) -> Tensor<B, 3>,
    ) -> Tensor<B, 3> {
        let rows = match &self.routing {
            Routing::Task(t) => return f(Some(*t), inputs),
            Routing::Rows(rows) => rows,
        };
        if rows.windows(2).all(|w| w[0] == w[1]) {
            return f(rows.first().copied().flatten(), inputs);
        }
        let device = inputs[0].device();
        let mut groups: Vec<(Option<usize>, Vec<i64>)> = Vec::new();
        for (r, task) in rows.iter().enumerate() {
            match groups.iter_mut().find(|(t, _)| t == task) {
                Some((_, idx)) => idx.push(r as i64),
                None => groups.push((*task, vec![r as i64])),
            }
        }
        let mut outputs = Vec::with_capacity(groups.len());
        let mut order = Vec::with_capacity(rows.len());
        for (task, idx) in groups {
            let n = idx.len();
            order.extend(idx.iter().copied());
            let idx = Tensor::<B, 1, Int>::from_data(TensorData::new(idx, [n]), &device);
            let selected = inputs
                .iter()
                .map(|t| t.clone().select(0, idx.clone()))
                .collect();
            outputs.push(f(task, selected));
        }
        let mut inverse = vec![0i64; order.len()];
        for (i, &r) in order.iter().enumerate() {
            inverse[r as usize] = i as i64;
        }
        let inverse =
            Tensor::<B, 1, Int>::from_data(TensorData::new(inverse, [rows.len()]), &device);
        Tensor::cat(outputs, 0).select(0, inverse)
    }

    fn apply_task(
        &self,
        task: Option<usize>,
        position: usize,
        x: Tensor<B, 3>,
        h: Tensor<B, 3>,
        dropout: &burn::nn::Dropout,
    ) -> Tensor<B, 3> {
        let Some(t) = task else {
            return x + dropout.forward(h);
        };
        let adapter = &self.set.tasks[t];
        match (&adapter.positions[position], self.set.norms(t, position)) {
            (Some(bottleneck), Some(norms)) => bottleneck.forward(
                &adapter.config,
                adapter.activation,
                norms,
                adapter.phm.as_ref(),
                (x, h),
                dropout,
            ),
            _ => x + dropout.forward(h),
        }
    }
}

/// `layer(x)`, plus the LoRA update at `target` of layer `at.1` when adapters are given.
///
/// # Shapes
/// - x: `[batch, seq, d_in]` -> `[batch, seq, d_out]`
pub fn project_adapted<B: FusedOps>(
    layer: &burn::nn::Linear<B>,
    x: Tensor<B, 3>,
    at: Option<(&Adapters<B>, usize)>,
    target: super::lora::Target,
) -> Tensor<B, 3> {
    match at {
        Some((adapters, l)) => adapters.project(super::lora::site(l, target), layer, x),
        None => crate::layers::project(layer, x),
    }
}
