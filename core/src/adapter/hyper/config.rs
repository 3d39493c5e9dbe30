//! The seed's meta-adapter keys as a run config sets them ([`HyperConfig`]), and what a
//! hypernetwork directory records ([`HyperNetworkConfig`], `hypernetwork_config.json`): one
//! resolved, checked description of a hypernetwork that training, loading and export share.
//! The meaning of every key is in `docs/HYPERNETWORKS.md` (sections 3, 4 and 7).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::adapter::config::{non_linearity, BottleneckConfig, SeedAdapterConfig};
use crate::config::{Activation, T5Config};

/// Which of the seed's hypernetworks generates the adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// `meta-adapter`: generators per adapted sublayer (`MetaAdapterController`).
    MetaAdapter,
    /// `unique_hyper_net`: one generator per stack, layer-id embeddings.
    HyperFormer,
    /// `efficient_unique_hyper_net`: one generator per stack shared by both positions, plus an
    /// adapter-position embedding.
    HyperFormerPlusPlus,
}

impl Variant {
    /// HyperFormer's `T5Stack` builds the unique controller and then overwrites it with the
    /// efficient one, so with both flags the model is HyperFormer++.
    pub fn from_flags(unique: bool, efficient: bool) -> Self {
        if efficient {
            Variant::HyperFormerPlusPlus
        } else if unique {
            Variant::HyperFormer
        } else {
            Variant::MetaAdapter
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::MetaAdapter => "meta-adapter",
            Variant::HyperFormer => "hyperformer",
            Variant::HyperFormerPlusPlus => "hyperformer++",
        }
    }
}

/// The seed's keys of `adapter_config_name: "meta-adapter"` (HyperFormer's
/// `AdapterTrainingArguments`, ruse's meta-adapter arguments): top-level keys of a run config.
/// The adapter's shape (`reduction_factor`, `non_linearity`, `add_layer_norm_*_adapter`) comes
/// from [`SeedAdapterConfig`], as for per-task adapters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HyperConfig {
    /// Size `t` of a task embedding. Required with `meta-adapter`.
    pub task_embedding_dim: Option<usize>,
    /// Size `p` of the projected task embedding (the unique generators' input).
    pub projected_task_embedding_dim: usize,
    /// Hidden width of the task projector (`TaskHyperNet`).
    pub task_hidden_dim: usize,
    /// Project task embeddings through a `TaskHyperNet` (HyperFormer's meaning; embeddings
    /// train either way, see `parametric_task_embedding`).
    pub train_task_embeddings: bool,
    /// ruse: initial task embeddings from `<dir>/<task>.npy`.
    pub task_embedding_dir: Option<PathBuf>,
    /// ruse: whether task embeddings train. Unset: they do, unless `task_embedding_dir` gives
    /// them.
    pub parametric_task_embedding: Option<bool>,
    /// Task -> embedding name, so tasks can share an embedding (default: its own).
    pub task_embeddings: Option<BTreeMap<String, String>>,
    /// HyperFormer: one hypernetwork per stack.
    pub unique_hyper_net: bool,
    /// HyperFormer++: one hypernetwork per stack, shared by both adapter positions.
    pub efficient_unique_hyper_net: bool,
    /// A LayerNorm (eps 1e-6) on the unique generators' input.
    pub unique_hyper_net_layer_norm: bool,
    /// meta-adapter: adapter norms generated per task instead of shared plain ones.
    pub conditional_layer_norm: bool,
    /// ruse's two-layer generator width; HyperFormer stores and ignores it (a warning).
    pub hidden_dim: Option<usize>,
    /// false: no adapter blocks at all (the seed's "layer norms only" baseline).
    pub train_adapters_blocks: bool,
    /// Train only the raw task embeddings (a new task on a trained hypernetwork).
    pub freeze_model_but_task_embeddings: bool,
    /// Declared by the seed, never implemented there: only `false`.
    pub generate_classifier_weights: bool,
    /// ruse only (deletes T5's own norms): only `false`.
    pub remove_original_layer_norms: bool,
    /// A trained hypernetwork directory to start from (needed by
    /// `freeze_model_but_task_embeddings`).
    pub hypernetwork: Option<PathBuf>,
}

impl Default for HyperConfig {
    /// The seed's defaults (HyperFormer's `MetaAdapterConfig`).
    fn default() -> Self {
        Self {
            task_embedding_dim: None,
            projected_task_embedding_dim: 64,
            task_hidden_dim: 128,
            train_task_embeddings: false,
            task_embedding_dir: None,
            parametric_task_embedding: None,
            task_embeddings: None,
            unique_hyper_net: false,
            efficient_unique_hyper_net: false,
            unique_hyper_net_layer_norm: true,
            conditional_layer_norm: false,
            hidden_dim: None,
            train_adapters_blocks: true,
            freeze_model_but_task_embeddings: false,
            generate_classifier_weights: false,
            remove_original_layer_norms: false,
            hypernetwork: None,
        }
    }
}

impl HyperConfig {
    pub fn variant(&self) -> Variant {
        Variant::from_flags(self.unique_hyper_net, self.efficient_unique_hyper_net)
    }

    /// Whether the task embeddings train: `parametric_task_embedding` when set, else yes
    /// unless `task_embedding_dir` provides them (ruse's only use of that key).
    pub fn embeddings_trainable(&self) -> bool {
        self.parametric_task_embedding
            .unwrap_or(self.task_embedding_dir.is_none())
    }

    /// The embedding task `task` uses (its `task_embeddings` entry, else its own).
    pub fn embedding_of<'a>(&'a self, task: &'a str) -> &'a str {
        self.task_embeddings
            .as_ref()
            .and_then(|m| m.get(task))
            .map_or(task, String::as_str)
    }

    /// Warnings for keys that are accepted but do nothing here.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.hidden_dim.is_some() {
            out.push(
                "`hidden_dim` has no effect: HyperFormer's generators are one linear layer \
                 (ruse's two-layer generators are not implemented)"
                    .into(),
            );
        }
        if self.unique_hyper_net && self.efficient_unique_hyper_net {
            out.push(
                "`unique_hyper_net` and `efficient_unique_hyper_net` are both set: the model is \
                 HyperFormer++ (`efficient_unique_hyper_net`), as in HyperFormer"
                    .into(),
            );
        }
        if self.variant() != Variant::MetaAdapter && !self.train_adapters_blocks {
            out.push(
                "`train_adapters_blocks: false` has no effect with a unique hypernetwork, as in \
                 HyperFormer"
                    .into(),
            );
        }
        out
    }

    /// Checks what can be checked without a backbone.
    pub fn check(&self, adapter: &SeedAdapterConfig) -> Result<(), String> {
        if self.generate_classifier_weights {
            return Err(
                "`generate_classifier_weights: true` is not implemented (neither the \
                        seed nor HyperFormer implements it); remove it or set it to false"
                    .into(),
            );
        }
        if self.remove_original_layer_norms {
            return Err(
                "`remove_original_layer_norms: true` is not implemented (a ruse-only \
                        experiment HyperFormer dropped); remove it or set it to false"
                    .into(),
            );
        }
        let Some(t) = self.task_embedding_dim else {
            return Err(
                "`adapter_config_name: \"meta-adapter\"` needs `task_embedding_dim`".into(),
            );
        };
        for (key, v) in [
            ("task_embedding_dim", t),
            (
                "projected_task_embedding_dim",
                self.projected_task_embedding_dim,
            ),
            ("task_hidden_dim", self.task_hidden_dim),
        ] {
            if v == 0 {
                return Err(format!("`{key}` must be at least 1"));
            }
        }
        if self.variant() != Variant::MetaAdapter {
            if self.train_task_embeddings && self.projected_task_embedding_dim != t {
                return Err(format!(
                    "`train_task_embeddings` with a unique hypernetwork needs \
                     `projected_task_embedding_dim` ({}) equal to `task_embedding_dim` ({t}): \
                     the projected task vector is concatenated with layer embeddings of \
                     `task_embedding_dim` (HyperFormer fails there)",
                    self.projected_task_embedding_dim
                ));
            }
            let all = adapter.add_adapter_in_feed_forward
                && adapter.add_adapter_in_self_attention
                && adapter.add_adapters_in_decoder;
            if !all {
                return Err(
                    "a unique hypernetwork generates adapters for every sublayer: \
                            `add_adapter_in_feed_forward`, `add_adapter_in_self_attention` and \
                            `add_adapters_in_decoder` must stay true"
                        .into(),
                );
            }
        }
        if self.freeze_model_but_task_embeddings && !self.embeddings_trainable() {
            return Err(
                "`freeze_model_but_task_embeddings` with fixed task embeddings \
                        (`parametric_task_embedding: false` or `task_embedding_dir`) trains \
                        nothing"
                    .into(),
            );
        }
        if self.freeze_model_but_task_embeddings && self.hypernetwork.is_none() {
            return Err(
                "`freeze_model_but_task_embeddings` needs `hypernetwork`: the trained \
                        hypernetwork directory whose generators stay fixed"
                    .into(),
            );
        }
        adapter.check()
    }
}

/// `hypernetwork_config.json`: the format header, the backbone's shape, the tasks with an
/// embedding, and the resolved seed keys.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HyperNetworkConfig {
    /// Always `t5-adapters`.
    pub format: String,
    pub format_version: u32,
    /// Always `hypernetwork`.
    pub kind: String,
    /// `meta-adapter`, `hyperformer` or `hyperformer++`; must agree with the flags.
    pub variant: String,
    pub d_model: usize,
    pub num_layers: usize,
    pub num_decoder_layers: usize,
    /// The embeddings' names, in the order of `task_embeddings.safetensors`' keys.
    pub tasks: Vec<String>,
    /// Always `meta-adapter`.
    pub adapter_config_name: String,
    pub unique_hyper_net: bool,
    pub efficient_unique_hyper_net: bool,
    pub task_embedding_dim: usize,
    pub projected_task_embedding_dim: usize,
    pub task_hidden_dim: usize,
    pub train_task_embeddings: bool,
    /// Whether the embeddings trained (the effective value).
    pub parametric_task_embedding: bool,
    pub unique_hyper_net_layer_norm: bool,
    pub conditional_layer_norm: bool,
    pub add_layer_norm_before_adapter: bool,
    pub add_layer_norm_after_adapter: bool,
    pub reduction_factor: usize,
    pub non_linearity: String,
    #[serde(default = "yes")]
    pub add_adapter_in_feed_forward: bool,
    #[serde(default = "yes")]
    pub add_adapter_in_self_attention: bool,
    #[serde(default = "yes")]
    pub add_adapters_in_decoder: bool,
}

fn yes() -> bool {
    true
}

/// Version of the hypernetwork directory format.
pub const HYPER_FORMAT_VERSION: u32 = 1;

impl HyperNetworkConfig {
    /// The hypernetwork a run config describes, over `model`, with an embedding per name of
    /// `tasks`. The run config has been checked ([`HyperConfig::check`]).
    pub fn new(
        hyper: &HyperConfig,
        adapter: &SeedAdapterConfig,
        model: &T5Config,
        tasks: Vec<String>,
    ) -> Self {
        let variant = hyper.variant();
        Self {
            format: "t5-adapters".into(),
            format_version: HYPER_FORMAT_VERSION,
            kind: "hypernetwork".into(),
            variant: variant.name().into(),
            d_model: model.d_model,
            num_layers: model.num_layers,
            num_decoder_layers: model.num_decoder_layers(),
            tasks,
            adapter_config_name: "meta-adapter".into(),
            unique_hyper_net: hyper.unique_hyper_net,
            efficient_unique_hyper_net: hyper.efficient_unique_hyper_net,
            task_embedding_dim: hyper.task_embedding_dim.unwrap_or(0),
            projected_task_embedding_dim: hyper.projected_task_embedding_dim,
            task_hidden_dim: hyper.task_hidden_dim,
            train_task_embeddings: hyper.train_task_embeddings,
            parametric_task_embedding: hyper.embeddings_trainable(),
            unique_hyper_net_layer_norm: hyper.unique_hyper_net_layer_norm,
            conditional_layer_norm: hyper.conditional_layer_norm,
            add_layer_norm_before_adapter: adapter.add_layer_norm_before_adapter,
            add_layer_norm_after_adapter: adapter.add_layer_norm_after_adapter,
            reduction_factor: adapter.reduction_factor,
            non_linearity: adapter.non_linearity.clone(),
            add_adapter_in_feed_forward: adapter.add_adapter_in_feed_forward,
            add_adapter_in_self_attention: adapter.add_adapter_in_self_attention,
            add_adapters_in_decoder: adapter.add_adapters_in_decoder,
        }
    }

    pub fn variant(&self) -> Variant {
        Variant::from_flags(self.unique_hyper_net, self.efficient_unique_hyper_net)
    }

    /// `d_model / reduction_factor`.
    pub fn bottleneck(&self) -> usize {
        self.d_model / self.reduction_factor.max(1)
    }

    /// Size of the task vector the embeddings hand on (projected or raw).
    pub fn task_vector_dim(&self) -> usize {
        if self.train_task_embeddings {
            self.projected_task_embedding_dim
        } else {
            self.task_embedding_dim
        }
    }

    /// The adapter every generated set of weights fills: the seed's.
    pub fn seed_adapter(&self) -> SeedAdapterConfig {
        SeedAdapterConfig {
            reduction_factor: self.reduction_factor,
            non_linearity: self.non_linearity.clone(),
            add_adapter_in_feed_forward: self.add_adapter_in_feed_forward,
            add_adapter_in_self_attention: self.add_adapter_in_self_attention,
            add_adapters_in_decoder: self.add_adapters_in_decoder,
            add_layer_norm_before_adapter: self.add_layer_norm_before_adapter,
            add_layer_norm_after_adapter: self.add_layer_norm_after_adapter,
        }
    }

    /// The backbone shape this hypernetwork generates for (enough for adapter positions).
    pub fn model_shape(&self) -> T5Config {
        let mut c = T5Config::t5_small();
        c.d_model = self.d_model;
        c.num_layers = self.num_layers;
        c.num_decoder_layers = Some(self.num_decoder_layers);
        c
    }

    /// The generated adapters' settings.
    pub fn bottleneck_config(&self) -> BottleneckConfig {
        BottleneckConfig::seed(&self.seed_adapter(), &self.model_shape())
    }

    pub fn activation(&self) -> Result<Activation, String> {
        non_linearity(&self.non_linearity)
    }

    /// Generated norms: always for the unique variants, with `conditional_layer_norm` for the
    /// meta-adapter (otherwise plain norms shared by every task).
    pub fn generated_norms(&self) -> bool {
        self.variant() != Variant::MetaAdapter || self.conditional_layer_norm
    }

    /// Checks the header, the values, and the fit to `model`; the message names the key.
    pub fn validate(&self, model: &T5Config) -> Result<(), String> {
        if self.format != "t5-adapters" || self.kind != "hypernetwork" {
            return Err(format!(
                "`format` `{}` / `kind` `{}` is not a hypernetwork of this toolkit \
                 (`t5-adapters` / `hypernetwork`)",
                self.format, self.kind
            ));
        }
        if self.format_version != HYPER_FORMAT_VERSION {
            return Err(format!(
                "`format_version` {} is not supported (this build reads {HYPER_FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.variant != self.variant().name() {
            return Err(format!(
                "`variant` `{}` disagrees with the flags, which make a `{}`",
                self.variant,
                self.variant().name()
            ));
        }
        if self.adapter_config_name != "meta-adapter" {
            return Err(format!(
                "`adapter_config_name` `{}`: a hypernetwork is `meta-adapter`",
                self.adapter_config_name
            ));
        }
        for (key, ours, theirs) in [
            ("d_model", self.d_model, model.d_model),
            ("num_layers", self.num_layers, model.num_layers),
            (
                "num_decoder_layers",
                self.num_decoder_layers,
                model.num_decoder_layers(),
            ),
        ] {
            if ours != theirs {
                return Err(format!("{key} {ours}, but the model has {theirs}"));
            }
        }
        if self.tasks.is_empty() {
            return Err("`tasks` is empty: a hypernetwork needs at least one task".into());
        }
        let run = HyperConfig {
            task_embedding_dim: Some(self.task_embedding_dim),
            projected_task_embedding_dim: self.projected_task_embedding_dim,
            task_hidden_dim: self.task_hidden_dim,
            train_task_embeddings: self.train_task_embeddings,
            unique_hyper_net: self.unique_hyper_net,
            efficient_unique_hyper_net: self.efficient_unique_hyper_net,
            ..HyperConfig::default()
        };
        run.check(&self.seed_adapter())?;
        if self.bottleneck() == 0 {
            return Err(format!(
                "`reduction_factor` {} leaves no bottleneck at d_model {}",
                self.reduction_factor, self.d_model
            ));
        }
        Ok(())
    }
}
