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
    /// Projections the appearance adapter (and naive two-stage's, and single LoRA's) adapts.
    pub spatial_targets: Targets,
    /// Projections the motion adapter adapts.
    pub temporal_targets: Targets,
}

/// A set of self-attention projections (q, k, v, out) an adapter adapts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Targets([bool; 4]);

/// The names [`Targets::parse`] reads, in the order of [`LoraTarget::ALL`].
const TARGET_NAMES: [&str; 4] = ["q", "k", "v", "out"];

impl Targets {
    /// q, k, v and out (the paper's text names q/k/v/o; the released code q/k/v).
    pub const ALL: Targets = Targets([true; 4]);

    /// Parses a comma-separated list of `q`, `k`, `v`, `out` (at least one, each at most once).
    pub fn parse(list: &str) -> Result<Targets> {
        let mut set = [false; 4];
        for name in list.split(',').map(str::trim) {
            let i = TARGET_NAMES
                .iter()
                .position(|&n| n == name)
                .with_context(|| {
                    format!("LoRA target {name:?} in {list:?}: choose from q, k, v, out")
                })?;
            anyhow::ensure!(!set[i], "LoRA target {name:?} given twice in {list:?}");
            set[i] = true;
        }
        Ok(Targets(set))
    }

    /// The adapted projections, in the order q, k, v, out.
    pub fn list(&self) -> Vec<LoraTarget> {
        LoraTarget::ALL
            .iter()
            .zip(self.0)
            .filter_map(|(&t, on)| on.then_some(t))
            .collect()
    }
}

/// `q,k,v,out`-style, as [`Targets::parse`] reads it.
impl std::fmt::Display for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = TARGET_NAMES
            .iter()
            .zip(self.0)
            .filter_map(|(&n, on)| on.then_some(n))
            .collect();
        f.write_str(&names.join(","))
    }
}

impl std::fmt::Debug for Targets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// A new trainable adapter (`B` = 0, so the model starts exactly at the base model) on the
/// `targets` projections. `heads` restricts it to those heads of each layer (ST-LoRA); `None`
/// adapts all heads.
pub fn new_adapter(
    model: &Model,
    kind: AdapterKind,
    heads: Option<HeadAssignment>,
    shape: &LoraShape,
    targets: Targets,
    seed: u64,
) -> Result<Adapter> {
    let c = &model.wan.config;
    let targets = targets.list();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_print_and_list_in_projection_order() {
        let t = Targets::parse("k, q").unwrap();
        assert_eq!(t.to_string(), "q,k");
        assert_eq!(t.list(), vec![LoraTarget::ToQ, LoraTarget::ToK]);
        assert_eq!(Targets::parse("q,k,v,out").unwrap(), Targets::ALL);
        assert_eq!(Targets::ALL.list(), LoraTarget::ALL.to_vec());
        for bad in ["", "q,x", "q,q", "q,,k"] {
            let e = Targets::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("q, k, v, out") || e.contains("twice"),
                "{bad:?}: {e}"
            );
        }
    }
}
