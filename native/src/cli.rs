//! Command-line arguments. Every option is documented here; `native <command> --help` shows it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Multi-task fine-tuning of T5 with adapter layers: train, generate, evaluate, export.
#[derive(Debug, Parser)]
#[command(name = "native", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Multi-task fine-tuning (full or per-task adapters) from a JSON run config in the seed's
    /// vocabulary (see configs/README.md). Resumes from the newest checkpoint in output_dir.
    Train(TrainArgs),
    /// Evaluate a model (and adapters) on the validation or test split of a run config's tasks.
    Eval(EvalArgs),
    /// Write a task's predictions (JSONL: input, prediction, target).
    Predict(PredictArgs),
    /// Generate text with a T5 model (greedy or beam search).
    Generate(GenerateArgs),
    /// Measure generation speed on a random model of t5-small's shape (JSON lines; see
    /// benches/compare.py for the side-by-side with PyTorch).
    Bench(BenchArgs),
    /// Turn a checkpoint the seed saved (ruse / hyperformer: `pytorch_model.bin` with the
    /// backbone and every task's adapter, or a meta-adapter / HyperFormer / HyperFormer++
    /// hypernetwork) into a model directory and one adapter directory per task or a hypernetwork
    /// directory: `OUTPUT/model/`, `OUTPUT/adapters/<task>/` or `OUTPUT/hypernetwork/`, and
    /// `OUTPUT/run.json` from the seed's run config when one sits next to the checkpoint.
    Import(ImportArgs),
    /// Fold a LoRA or (IA)³ adapter into its backbone and write the result as a plain HF model directory
    /// (PEFT's `merge_and_unload` + `save_pretrained`).
    Merge(MergeArgs),
    /// Combine several adapters of one model into a new adapter directory: LoRAs as PEFT's
    /// `add_weighted_adapter` does (written in PEFT's format), bottleneck adapters as the
    /// `adapters` library's `average_adapter` does (written in the first input's format).
    MergeAdapters(MergeAdaptersArgs),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The seed's checkpoint directory (config.json and pytorch_model.bin, or its shards, or
    /// safetensors).
    pub checkpoint: PathBuf,

    /// Where to write the model and adapter directories (created).
    #[arg(long, short)]
    pub output: PathBuf,
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// A GPU through wgpu when one is found, else the CPU.
    Auto,
    /// wgpu (Vulkan, Metal, DX12), also on a software adapter such as lavapipe.
    Wgpu,
    /// The CPU backend.
    Cpu,
}

/// HF's `early_stopping` for beam search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EarlyStoppingArg {
    /// Stop when no running beam can beat the finished ones (HF `early_stopping=False`).
    False,
    /// Stop as soon as `num_beams` hypotheses are finished (HF `early_stopping=True`).
    True,
    /// Canonical beam search: run until no improvement is possible at any length.
    Never,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// A model directory (config.json, model.safetensors, tokenizer.json) or a Hugging Face hub
    /// name such as `t5-small` or `google/flan-t5-base` (downloaded into the HF cache; honors
    /// HF_HOME, HF_ENDPOINT and HF_HUB_OFFLINE).
    #[arg(long, short)]
    pub model: String,

    /// Input texts; one output per input. Without any, inputs are read from stdin, one per line.
    pub text: Vec<String>,

    /// Maximum number of tokens to generate per input.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,

    /// Inputs longer than this many tokens are cut to it (their first tokens and `</s>`, as
    /// transformers' `truncation=True`), with a warning. 512 is T5's `model_max_length`, the
    /// length it was trained on.
    #[arg(long, default_value_t = t5_core::generation::limits::DEFAULT_MAX_SOURCE_LENGTH)]
    pub max_source_length: usize,

    /// Minimum number of tokens before end-of-sequence may be generated.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,

    /// Beam width; 1 is greedy decoding.
    #[arg(long, default_value_t = 1)]
    pub num_beams: usize,

    /// Beam search: finished hypotheses are scored sum(log p) / length^length_penalty.
    #[arg(long, default_value_t = 1.0)]
    pub length_penalty: f32,

    /// Beam search stopping rule, as in HF transformers.
    #[arg(long, value_enum, default_value_t = EarlyStoppingArg::False)]
    pub early_stopping: EarlyStoppingArg,

    /// Inputs decoded together in one batch.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,

    /// Where to run: auto picks a GPU through wgpu when one exists, else the CPU.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,

    /// Print one JSON object per input: {"input", "output", "ids"}; `ids` are the generated
    /// token ids without the decoder start token, up to and including end-of-sequence.
    #[arg(long)]
    pub json: bool,

    /// Read inputs from this file (one per line) instead of stdin.
    #[arg(long)]
    pub input_file: Option<PathBuf>,

    /// An adapter directory to attach to the backbone (this project's format or the `adapters`
    /// library's `save_adapter` output); repeat for several tasks.
    #[arg(long = "adapter", value_name = "DIR")]
    pub adapters: Vec<PathBuf>,

    /// A trained hypernetwork directory (a run's `hypernetwork/`): generates the adapter of
    /// `--task` from its task embedding and runs the inputs through it, as `--adapter` would.
    #[arg(
        long,
        value_name = "DIR",
        requires = "task",
        conflicts_with = "adapters"
    )]
    pub hypernetwork: Option<PathBuf>,

    /// The task (adapter name) to run the inputs through; defaults to the only attached adapter.
    /// With `--hypernetwork`, the task embedding to generate the adapter from.
    #[arg(long)]
    pub task: Option<String>,
}

/// What `native bench` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Generation: tokens/s.
    Generate,
    /// A full fine-tuning step (AdamW): examples/s.
    TrainFull,
    /// An adapter-only training step on a frozen backbone (the seed's adapter): examples/s.
    TrainAdapters,
}

/// The shape of `native bench`'s random model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchSize {
    /// The t5-tiny preset's dims (d_model 64, d_ff 256, 2+2 layers, 4 heads) with vocab 32128.
    Tiny,
    /// t5-small's shape: d_model 512, d_ff 2048, 6+6 layers, 8 heads, vocab 32128.
    Small,
    /// t5-base's shape: d_model 768, d_ff 3072, 12+12 layers, 12 heads.
    Base,
    /// t5-large's shape: d_model 1024, d_ff 4096, 24+24 layers, 16 heads.
    Large,
    /// t5-3b's shape: d_model 1024, d_kv 128, d_ff 16384, 24+24 layers, 32 heads.
    #[value(name = "3b")]
    ThreeB,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The workload to time.
    #[arg(long, value_enum, default_value_t = Workload::Generate)]
    pub workload: Workload,
    /// Training: target length in tokens (the source length is --src-len).
    #[arg(long, default_value_t = 16)]
    pub tgt_len: usize,
    /// Training with adapters: the adapters' reduction factor.
    #[arg(long, default_value_t = 16)]
    pub reduction_factor: usize,
    /// Batch sizes to measure.
    #[arg(long, num_args = 1.., default_values_t = [1, 8])]
    pub batch: Vec<usize>,
    /// Beam widths to measure (1 = greedy).
    #[arg(long, num_args = 1.., default_values_t = [1])]
    pub beams: Vec<usize>,
    /// Source length in tokens.
    #[arg(long, default_value_t = 64)]
    pub src_len: usize,
    /// Tokens generated per input (end-of-sequence is suppressed until then).
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Timed repetitions per configuration (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Untimed runs before timing.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Feed-forward variant of the random model: `relu` (t5-small) or `gated-gelu` (v1.1).
    #[arg(long, default_value = "relu")]
    pub feed_forward_proj: String,
    /// The random model's shape.
    #[arg(long, value_enum, default_value_t = BenchSize::Small)]
    pub size: BenchSize,
    /// Generation: time this checkpoint (directory or hub name) instead of a random model of
    /// t5-small's shape, e.g. web/demo/model to compare with the browser demo's benchmark.
    #[arg(long)]
    pub model: Option<String>,
    /// Generation: also time each batch with its rows routed round-robin over this many
    /// distinct LoRAs (r 8 on q, k, v, o, wi, wo; e.g. `--loras 1 2 8 32`). 0: no adapters.
    #[arg(long, num_args = 1.., default_values_t = [0])]
    pub loras: Vec<usize>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendArg::Cpu)]
    pub backend: BackendArg,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run config (JSON), e.g. configs/test.json.
    pub config: PathBuf,
    /// Where to run; overrides the config's `backend`.
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Override the config's `output_dir`.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Override the config's `max_steps`.
    #[arg(long)]
    pub max_steps: Option<i64>,
    /// Data-parallel training: the number of processes (one per machine), each with its
    /// `--devices`. Defaults to SLURM's `SLURM_NNODES`, else 1.
    #[arg(long, env = "SLURM_NNODES", default_value_t = 1)]
    pub nodes: usize,
    /// This process among the `--nodes`, from 0; rank 0 hosts the coordinator and writes the
    /// outputs. Defaults to SLURM's `SLURM_NODEID`, else 0.
    #[arg(long, env = "SLURM_NODEID", default_value_t = 0)]
    pub node_rank: usize,
    /// `HOST:PORT` of the coordinator (node 0) that the nodes meet at; node R also listens on
    /// PORT+1+R. Needed with more than one node.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Devices of this process that train side by side, one rank each (e.g. `0,1,2,3`, wgpu's
    /// discrete GPUs by index; with the CPU backend, threads sharing the CPU).
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<usize>,
    /// Seconds a rank waits for the others (at start-up, at each step's gradient exchange and
    /// each evaluation's gathering) before it gives up with an error: a rank that died, a node
    /// that cannot connect. Rank 0's checkpoints happen while the others wait, so leave room
    /// for them.
    #[arg(long, default_value_t = 600)]
    pub collective_timeout: u64,
}

/// Which split to score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    Validation,
    Test,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A run config naming the tasks and their data (e.g. configs/test.json).
    pub config: PathBuf,
    /// The model (directory or hub name); defaults to the config's model_name_or_path.
    #[arg(long)]
    pub model: Option<String>,
    /// Adapter directories, one per task (named by task); repeatable.
    #[arg(long = "adapter", value_name = "DIR")]
    pub adapters: Vec<PathBuf>,
    /// A trained hypernetwork directory instead of adapter directories: each task's adapter is
    /// generated from its embedding (the config's `task_embeddings` and `adapters` apply).
    #[arg(long, value_name = "DIR", conflicts_with = "adapters")]
    pub hypernetwork: Option<PathBuf>,
    /// The split to score.
    #[arg(long, value_enum, default_value_t = SplitArg::Validation)]
    pub split: SplitArg,
    /// Cut inputs to this many tokens (their first tokens and `</s>`); overrides the config's
    /// `max_source_length`.
    #[arg(long)]
    pub max_source_length: Option<usize>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A run config naming the tasks and their data.
    pub config: PathBuf,
    /// The task whose inputs to predict.
    #[arg(long)]
    pub task: String,
    /// The model (directory or hub name); defaults to the config's model_name_or_path.
    #[arg(long)]
    pub model: Option<String>,
    /// Adapter directories, one per task; repeatable.
    #[arg(long = "adapter", value_name = "DIR")]
    pub adapters: Vec<PathBuf>,
    /// A trained hypernetwork directory instead of adapter directories: the task's adapter is
    /// generated from its embedding (the config's `task_embeddings` and `adapters` apply).
    #[arg(long, value_name = "DIR", conflicts_with = "adapters")]
    pub hypernetwork: Option<PathBuf>,
    /// The split whose inputs to predict.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    pub split: SplitArg,
    /// Cut inputs to this many tokens (their first tokens and `</s>`); overrides the config's
    /// `max_source_length`.
    #[arg(long)]
    pub max_source_length: Option<usize>,
    /// Write the JSONL here (atomically) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The backbone: a model directory or a hub name.
    #[arg(long)]
    pub model: String,
    /// The LoRA or (IA)³ directory (PEFT's or AdapterHub's format).
    #[arg(long)]
    pub adapter: std::path::PathBuf,
    /// The new model directory (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub output: std::path::PathBuf,
}

/// How `merge-adapters` combines the adapters: PEFT's `combination_type` names for LoRAs,
/// `average` for bottleneck adapters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum CombinationArg {
    /// LoRA, equal ranks: `A` and `B` each weighted by `sign·sqrt(|w·scaling|)` and summed.
    Linear,
    /// LoRA: the scaled pairs side by side (rank: the sum of the ranks).
    Cat,
    /// LoRA: the weighted sum of the updates `scaling·B·A`, factored at `--svd-rank`.
    Svd,
    /// LoRA, equal ranks: TIES (magnitude pruning to `--density`, sign election) on `A` and `B`.
    Ties,
    /// LoRA: TIES on the updates, then SVD.
    TiesSvd,
    /// LoRA, equal ranks: DARE (random pruning to `--density`, rescaled) then a weighted sum.
    DareLinear,
    /// LoRA: DARE on the updates, then SVD.
    DareLinearSvd,
    /// LoRA, equal ranks: DARE then TIES' sign election.
    DareTies,
    /// LoRA: DARE-TIES on the updates, then SVD.
    DareTiesSvd,
    /// LoRA, equal ranks: magnitude pruning to `--density`, then a weighted sum.
    MagnitudePrune,
    /// LoRA: magnitude pruning of the updates, then SVD.
    MagnitudePruneSvd,
    /// Bottleneck adapters: the weighted average of every parameter (AdapterHub's
    /// `average_adapter`, `combine_strategy="linear"`).
    Average,
}

/// TIES' sign election (PEFT's `majority_sign_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MajoritySignArg {
    /// The sign of the sum of the values.
    Total,
    /// The sign most of the adapters hold.
    Frequency,
}

#[derive(Debug, Args)]
pub struct MergeAdaptersArgs {
    /// The backbone the adapters were made for: a model directory or a hub name.
    #[arg(long)]
    pub model: String,
    /// An adapter directory to combine; repeat for each (at least one; all LoRAs or all
    /// bottleneck adapters).
    #[arg(long = "adapter", value_name = "DIR", required = true)]
    pub adapters: Vec<PathBuf>,
    /// One weight per adapter, in order (negative weights subtract). Required for LoRAs; for
    /// `average` the default gives each adapter 1/n.
    #[arg(long, num_args = 1.., allow_negative_numbers = true)]
    pub weights: Vec<f64>,
    /// How to combine them.
    #[arg(long, value_enum)]
    pub combination: CombinationArg,
    /// SVD combinations: the new rank (default: the largest input rank).
    #[arg(long)]
    pub svd_rank: Option<usize>,
    /// SVD combinations: clamp the factors at this quantile of their values (PEFT's `svd_clamp`).
    #[arg(long)]
    pub svd_clamp: Option<f64>,
    /// Pruning combinations (ties, dare_*, magnitude_prune*): the fraction of values kept.
    #[arg(long)]
    pub density: Option<f64>,
    /// TIES combinations: how the sign of each value is elected.
    #[arg(long, value_enum, default_value_t = MajoritySignArg::Total)]
    pub majority_sign_method: MajoritySignArg,
    /// DARE combinations: the seed of the random masks (not torch's generator: the masks differ
    /// from PEFT's for the same seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// `average`: use the weights as given instead of dividing them by their sum (AdapterHub's
    /// `normalize_weights=False`).
    #[arg(long)]
    pub no_normalize: bool,
    /// The new adapter's name (AdapterHub and this project's formats store one); defaults to
    /// the output directory's name.
    #[arg(long)]
    pub name: Option<String>,
    /// The new adapter directory (created; must be empty or new).
    #[arg(long)]
    pub output: PathBuf,
}
