//! Building, saving and loading the pipeline's LoRA adapters: on the q/k/v(/out) projections of
//! every self-attention, either restricted to a head group (ST-LoRA) or over all heads (plain).

use std::path::Path;

use anyhow::{Context, Result};
use fym_model::lora::{Adapter, AdapterKind, Attn, LoraSite, LoraTarget};
use fym_model::lora_io::{read_lora, write_lora, HeadAssignment};
use rand::SeedableRng;

use super::model::Model;

/// Rank, alpha and targets of every adapter the pipeline trains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoraShape {
    pub rank: usize,
    pub alpha: f32,
    /// Adapt `to_out.0` too (the paper's text names q/k/v/o; the released code q/k/v).
    pub include_out: bool,
}

/// A new trainable adapter (`B` = 0, so the model starts exactly at the base model). `heads`
/// restricts it to those heads of each layer (ST-LoRA); `None` adapts all heads.
pub fn new_adapter(
    model: &Model,
    kind: AdapterKind,
    heads: Option<HeadAssignment>,
    shape: &LoraShape,
    seed: u64,
) -> Result<Adapter> {
    let c = &model.wan.config;
    let targets: &[LoraTarget] = if shape.include_out {
        &LoraTarget::ALL
    } else {
        &LoraTarget::ALL[..3]
    };
    let d = c.dim();
    let sites: Vec<(LoraSite, usize, usize)> = (0..c.num_layers)
        .flat_map(|block| {
            targets.iter().map(move |&target| {
                (
                    LoraSite {
                        block,
                        attn: Attn::SelfAttn,
                        target,
                    },
                    d,
                    d,
                )
            })
        })
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut adapter = Adapter::new(
        kind,
        shape.rank,
        shape.alpha,
        &sites,
        heads,
        c.attention_head_dim,
        &mut rng,
    )?;
    adapter.to_device(model.device())?;
    Ok(adapter)
}

/// Writes `adapter` in the PEFT naming (masks applied), atomically.
pub fn save_adapter(path: &Path, adapter: &Adapter, stage: &str, model: &Model) -> Result<()> {
    let io = adapter.to_io(Some(stage), model.wan.config.attention_head_dim)?;
    write_lora(path, &io).with_context(|| format!("write {}", path.display()))
}

/// Reads an adapter written by [`save_adapter`], frozen, checked against the model.
pub fn load_adapter(path: &Path, model: &Model) -> Result<Adapter> {
    let io = read_lora(path).with_context(|| format!("read {}", path.display()))?;
    io.check_against_config(&model.wan.config, path)?;
    let mut adapter = Adapter::from_io(&io, model.wan.config.attention_head_dim, false)?;
    adapter.to_device(model.device())?;
    Ok(adapter)
}
