//! Hypernetwork directories: `hypernetwork_config.json`, `hypernetwork.safetensors` (every
//! shared tensor, PyTorch's `[out, in]` layout for Linear weights) and
//! `task_embeddings.safetensors` (one `[task_embedding_dim]` tensor per task, keyed by its name).
//! The tensor names are HyperFormer's modules renamed (`docs/HYPERNETWORKS.md`, section 9):
//!
//! | variant | names |
//! |---|---|
//! | any, with `train_task_embeddings` | `task_projector.{hidden,out}.{weight,bias}` |
//! | meta-adapter | `{sublayer}.{up,down}.{weight,bias}_generator.*`, `{sublayer}.{pre,post}_layer_norm.{weight_generator.*, bias_generator.*}` (generated) or `.{weight,bias}` (plain) |
//! | HyperFormer | `{stack}.layer_embeddings.weight`, `{stack}.input_projector.*`, `{stack}.input_norm.*`, `{stack}.{self_attention,feed_forward}.{up,down,pre_layer_norm,post_layer_norm}.{weight,bias}_generator.*` |
//! | HyperFormer++ | as HyperFormer, plus `{stack}.position_embeddings.weight`, with one `{stack}.{up,down,...}` set |

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;

use super::config::HyperNetworkConfig;
use super::generator::{AdapterGenerators, Projector};
use super::meta::SublayerHyperNet;
use super::unique::StackHyperNet;
use super::{Body, HyperNetwork};
use crate::adapter::bottleneck::{AdapterLayerNorm, AdapterNorms};
use crate::adapter::format::save_adapter;
use crate::adapter::set::{position_name, Sublayer};
use crate::config::T5Config;
use crate::error::{Error, Result};
use crate::files::{HYPER_CONFIG, HYPER_WEIGHTS, TASK_EMBEDDINGS};
use crate::weights::{write_safetensors, Weights};

/// Reads a hypernetwork directory and checks it against the backbone `model`.
pub fn load_hypernetwork<B: Backend>(
    dir: &Path,
    model: &T5Config,
    device: &B::Device,
) -> Result<HyperNetwork<B>> {
    if !dir.is_dir() {
        return Err(Error::MissingFiles(format!(
            "{}: not a hypernetwork directory",
            dir.display()
        )));
    }
    let read = |name: &str| -> Result<(PathBuf, Vec<u8>)> {
        let path = crate::io::file_inside(dir, name, None)?;
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        Ok((path, bytes))
    };
    build(
        read(HYPER_CONFIG)?,
        read(HYPER_WEIGHTS)?,
        read(TASK_EMBEDDINGS)?,
        model,
        device,
    )
}

/// [`load_hypernetwork`] from the three files' bytes (the browser's); errors name the files.
pub fn load_hypernetwork_from_bytes<B: Backend>(
    config: Vec<u8>,
    weights: Vec<u8>,
    embeddings: Vec<u8>,
    model: &T5Config,
    device: &B::Device,
) -> Result<HyperNetwork<B>> {
    build(
        (HYPER_CONFIG.into(), config),
        (HYPER_WEIGHTS.into(), weights),
        (TASK_EMBEDDINGS.into(), embeddings),
        model,
        device,
    )
}

type File = (PathBuf, Vec<u8>);

fn build<B: Backend>(
    (config_path, config): File,
    (weights_path, weights): File,
    (embeddings_path, embeddings): File,
    model: &T5Config,
    device: &B::Device,
) -> Result<HyperNetwork<B>> {
    let text = String::from_utf8(config)
        .map_err(|e| Error::config(&config_path, format!("not UTF-8 text: {e}")))?;
    let config: HyperNetworkConfig = crate::io::parse_json(&text, &config_path)?;
    config
        .validate(model)
        .map_err(|msg| Error::config(&config_path, msg))?;
    let mut weights = Weights::from_buffers(vec![(weights_path.clone(), Arc::from(weights))])?;
    let mut hyper = HyperNetwork::<B>::init(config, device)?;
    for (name, slot) in slots(&mut hyper) {
        fill(slot, &name, &mut weights, device)?;
    }
    if let Some(extra) = weights.untaken().first() {
        return Err(Error::checkpoint(
            &weights_path,
            format!(
                "unexpected tensor `{extra}` (not part of a {} of this shape)",
                hyper.config.variant
            ),
        ));
    }
    load_embeddings(&mut hyper, embeddings_path, embeddings, device)?;
    Ok(hyper)
}

/// Fills the task embeddings from their file, whose keys must be the config's `tasks`.
fn load_embeddings<B: Backend>(
    hyper: &mut HyperNetwork<B>,
    path: PathBuf,
    bytes: Vec<u8>,
    device: &B::Device,
) -> Result<()> {
    let mut file = Weights::from_buffers(vec![(path.clone(), Arc::from(bytes))])?;
    let tasks = hyper.config.tasks.clone();
    let t = hyper.config.task_embedding_dim;
    for name in &tasks {
        if !file.contains(name) {
            return Err(Error::checkpoint(
                &path,
                format!("no task `{name}` (tasks: {})", file.names().join(", ")),
            ));
        }
        let value = file.take::<B, 1>(name, [t], device)?;
        hyper.embeddings.insert(name, value);
    }
    if let Some(extra) = file.untaken().first() {
        return Err(Error::checkpoint(
            &path,
            format!(
                "task `{extra}` is not among the config's `tasks` ({})",
                tasks.join(", ")
            ),
        ));
    }
    let trainable = hyper.config.parametric_task_embedding;
    hyper.embeddings = hyper.embeddings.clone().set_trainable(trainable);
    Ok(())
}

/// Writes `hyper` as a hypernetwork directory (each file atomically).
pub fn save_hypernetwork<B: Backend>(hyper: &HyperNetwork<B>, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut copy = hyper.clone();
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = slots(&mut copy)
        .into_iter()
        .flat_map(|(name, slot)| file_tensors(&name, slot))
        .collect();
    write_safetensors(&dir.join(HYPER_WEIGHTS), &tensors, None)?;
    let embeddings: Vec<(String, Vec<usize>, Vec<f32>)> = hyper
        .embeddings
        .names
        .iter()
        .zip(&hyper.embeddings.table)
        .map(|(name, p)| (name.clone(), p.val().dims().to_vec(), values(p.val())))
        .collect();
    write_safetensors(&dir.join(TASK_EMBEDDINGS), &embeddings, None)?;
    let mut config = hyper.config.clone();
    config.tasks = hyper.embeddings.names.clone();
    let text = serde_json::to_string_pretty(&config).expect("serializable");
    crate::io::write_atomic(&dir.join(HYPER_CONFIG), text.as_bytes())
}

/// Writes the adapter generated from embedding `embedding` to `dir` as an ordinary adapter
/// directory of task `task`.
pub fn save_materialized<B: crate::fused::FusedOps>(
    hyper: &HyperNetwork<B>,
    embedding: &str,
    task: &str,
    model: &T5Config,
    dir: &Path,
) -> Result<()> {
    let set = hyper.materialize(embedding, task)?;
    save_adapter(&set, task, model, dir)
}

/// Where a tensor of the file goes.
enum Slot<'a, B: Backend> {
    /// `{name}.weight` (`[out, in]` in the file) and `{name}.bias`.
    Linear(&'a mut Linear<B>),
    Matrix(&'a mut Param<Tensor<B, 2>>),
    Vector(&'a mut Param<Tensor<B, 1>>),
}

type Slots<'a, B> = Vec<(String, Slot<'a, B>)>;

/// Every tensor of `hyper.safetensors`, by its file name.
fn slots<B: Backend>(hyper: &mut HyperNetwork<B>) -> Slots<'_, B> {
    let shape = hyper.config.model_shape();
    let mut out = Vec::new();
    if let Some(p) = hyper.embeddings.task_projector.as_mut() {
        projector_slots("task_projector", p, &mut out);
    }
    match &mut hyper.body {
        Body::Meta(meta) => {
            for (pos, sub) in meta.positions.iter_mut().enumerate() {
                if let Some(sub) = sub {
                    sublayer_slots(&position_name(&shape, pos), sub, &mut out);
                }
            }
        }
        Body::Unique(unique) => {
            stack_slots("encoder", &mut unique.encoder, &mut out);
            stack_slots("decoder", &mut unique.decoder, &mut out);
        }
    }
    out
}

fn projector_slots<'a, B: Backend>(name: &str, p: &'a mut Projector<B>, out: &mut Slots<'a, B>) {
    out.push((format!("{name}.hidden"), Slot::Linear(&mut p.hidden)));
    out.push((format!("{name}.out"), Slot::Linear(&mut p.out)));
}

fn sublayer_slots<'a, B: Backend>(
    name: &str,
    sub: &'a mut SublayerHyperNet<B>,
    out: &mut Slots<'a, B>,
) {
    generator_slots(name, &mut sub.generators, out);
    let AdapterNorms { before, after } = &mut sub.norms;
    for (which, ln) in [("pre_layer_norm", before), ("post_layer_norm", after)] {
        if let Some(ln) = ln.as_mut() {
            norm_slots(&format!("{name}.{which}"), ln, out);
        }
    }
}

fn norm_slots<'a, B: Backend>(name: &str, ln: &'a mut AdapterLayerNorm<B>, out: &mut Slots<'a, B>) {
    out.push((format!("{name}.weight"), Slot::Vector(&mut ln.weight)));
    out.push((format!("{name}.bias"), Slot::Vector(&mut ln.bias)));
}

fn generator_slots<'a, B: Backend>(
    name: &str,
    g: &'a mut AdapterGenerators<B>,
    out: &mut Slots<'a, B>,
) {
    let mut pair = |what: &str, w: &'a mut Linear<B>, b: &'a mut Linear<B>| {
        out.push((format!("{name}.{what}.weight_generator"), Slot::Linear(w)));
        out.push((format!("{name}.{what}.bias_generator"), Slot::Linear(b)));
    };
    pair("up", &mut g.up.weight_generator, &mut g.up.bias_generator);
    pair(
        "down",
        &mut g.down.weight_generator,
        &mut g.down.bias_generator,
    );
    if let Some(n) = g.pre_layer_norm.as_mut() {
        pair(
            "pre_layer_norm",
            &mut n.weight_generator,
            &mut n.bias_generator,
        );
    }
    if let Some(n) = g.post_layer_norm.as_mut() {
        pair(
            "post_layer_norm",
            &mut n.weight_generator,
            &mut n.bias_generator,
        );
    }
}

fn stack_slots<'a, B: Backend>(stack: &str, s: &'a mut StackHyperNet<B>, out: &mut Slots<'a, B>) {
    out.push((
        format!("{stack}.layer_embeddings.weight"),
        Slot::Matrix(&mut s.layer_embeddings),
    ));
    if let Some(p) = s.position_embeddings.as_mut() {
        out.push((
            format!("{stack}.position_embeddings.weight"),
            Slot::Matrix(p),
        ));
    }
    projector_slots(
        &format!("{stack}.input_projector"),
        &mut s.input_projector,
        out,
    );
    if let Some(ln) = s.input_norm.as_mut() {
        norm_slots(&format!("{stack}.input_norm"), ln, out);
    }
    let shared = s.generators.len() == 1;
    for (i, g) in s.generators.iter_mut().enumerate() {
        let name = if shared {
            stack.to_string()
        } else if i == Sublayer::SelfAttention as usize {
            format!("{stack}.self_attention")
        } else {
            format!("{stack}.feed_forward")
        };
        generator_slots(&name, g, out);
    }
}

/// Reads the tensors of `slot` from `weights`, with the shapes the slot already has.
fn fill<B: Backend>(
    slot: Slot<'_, B>,
    name: &str,
    weights: &mut Weights,
    device: &B::Device,
) -> Result<()> {
    match slot {
        Slot::Linear(linear) => {
            let [d_in, d_out] = linear.weight.lazy_shape().dims();
            let w = weights.take_linear(&format!("{name}.weight"), d_in, d_out, device)?;
            let b = weights.take::<B, 1>(&format!("{name}.bias"), [d_out], device)?;
            linear.weight = Param::from_tensor(w);
            linear.bias = Some(Param::from_tensor(b));
        }
        Slot::Matrix(p) => {
            let dims: [usize; 2] = p.lazy_shape().dims();
            *p = Param::from_tensor(weights.take::<B, 2>(name, dims, device)?);
        }
        Slot::Vector(p) => {
            let dims: [usize; 1] = p.lazy_shape().dims();
            *p = Param::from_tensor(weights.take::<B, 1>(name, dims, device)?);
        }
    }
    Ok(())
}

/// The file's tensors of `slot`: `(name, shape, values)`, Linear weights as `[out, in]`.
fn file_tensors<B: Backend>(name: &str, slot: Slot<'_, B>) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    match slot {
        Slot::Linear(linear) => {
            let w = linear.weight.val().transpose();
            let mut out = vec![(format!("{name}.weight"), w.dims().to_vec(), values(w))];
            if let Some(b) = &linear.bias {
                out.push((
                    format!("{name}.bias"),
                    b.val().dims().to_vec(),
                    values(b.val()),
                ));
            }
            out
        }
        Slot::Matrix(p) => vec![(name.to_string(), p.val().dims().to_vec(), values(p.val()))],
        Slot::Vector(p) => vec![(name.to_string(), p.val().dims().to_vec(), values(p.val()))],
    }
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .into_vec()
        .expect("f32 after convert")
}
