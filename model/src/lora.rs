//! LoRA adapters on attention projections: plain PEFT LoRA and ST-LoRA (a spatial and a
//! temporal adapter, each restricted to its own heads).
//!
//! A head-restricted adapter keeps full-size PEFT factors and multiplies them by a fixed 0/1 mask
//! every forward: for to_q/to_k/to_v the mask keeps the rows of `B` (output features) of its
//! heads; for to_out.0 it keeps the columns of `A` (input features = the heads' outputs). The
//! other rows/columns therefore get zero gradient and stay exactly zero, and the exported factors
//! are ordinary PEFT factors that diffusers applies unchanged.

use std::collections::BTreeMap;

use fym_autograd::{Device, ParamSet, Tensor};

pub use crate::lora_io::{AdapterKind, Attn, HeadAssignment, LoraSite, LoraTarget};
use crate::lora_io::{LoraAdapter, LoraFactors as HostFactors};
use crate::{Error, HostTensor, Result, WanConfig};

/// Low-rank factors of one projection: `Δy = ((x·Aᵀ)·(B⊙M_B)ᵀ)·scale` with `A [r, in]`,
/// `B [out, r]`; `mask` (when head-restricted) is `[out, 1]` on B or `[1, in]` on A.
#[derive(Clone, Debug)]
pub struct LoraFactors {
    pub a: Tensor,
    pub b: Tensor,
    pub mask_b: Option<Tensor>,
    pub mask_a: Option<Tensor>,
}

/// A named set of LoRA factors with rank, alpha and (for ST-LoRA) the heads it touches per layer.
#[derive(Clone, Debug)]
pub struct Adapter {
    pub kind: AdapterKind,
    pub rank: usize,
    pub alpha: f32,
    /// Heads of each layer this adapter may change (None: all heads).
    pub heads: Option<BTreeMap<usize, Vec<usize>>>,
    pub factors: BTreeMap<LoraSite, LoraFactors>,
    pub enabled: bool,
}

impl Adapter {
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// A new adapter on `targets`: `A` ~ U(±1/√in) (PEFT's kaiming-uniform bound), `B` = 0 so the
    /// model starts exactly at the base model. `heads` restricts it per layer; `head_dim` gives the
    /// feature slice of a head. Factors are trainable.
    pub fn new(
        kind: AdapterKind,
        rank: usize,
        alpha: f32,
        targets: &[(LoraSite, usize, usize)],
        heads: Option<BTreeMap<usize, Vec<usize>>>,
        head_dim: usize,
        rng: &mut impl rand::Rng,
    ) -> Result<Self> {
        let mut factors = BTreeMap::new();
        for &(target, in_f, out_f) in targets {
            let a = Tensor::param(
                fym_autograd::init::uniform_vec(rng, rank * in_f, 1.0 / (in_f as f32).sqrt()),
                &[rank, in_f],
            )?;
            let b = Tensor::param(vec![0.0; out_f * rank], &[out_f, rank])?;
            factors.insert(
                target,
                LoraFactors {
                    a,
                    b,
                    mask_a: None,
                    mask_b: None,
                },
            );
        }
        let mut adapter = Adapter {
            kind,
            rank,
            alpha,
            heads,
            factors,
            enabled: true,
        };
        adapter.build_masks(head_dim)?;
        Ok(adapter)
    }

    /// An ST-LoRA adapter (spatial or temporal head group): self-attention `to_q`, `to_k`, `to_v`
    /// (and `to_out.0` when `include_out`) of every layer, each restricted to the heads
    /// `heads_by_layer` gives for its layer (a layer it omits gets no update). `B` = 0, so the
    /// model is unchanged until training moves it.
    #[allow(clippy::too_many_arguments)]
    pub fn st_lora(
        kind: AdapterKind,
        config: &WanConfig,
        heads_by_layer: HeadAssignment,
        rank: usize,
        alpha: f32,
        include_out: bool,
        rng: &mut impl rand::Rng,
    ) -> Result<Self> {
        let op = "Adapter::st_lora";
        if kind == AdapterKind::Plain {
            return Err(Error::shape(
                op,
                "an ST-LoRA adapter is spatial or temporal, not plain",
            ));
        }
        for (&layer, heads) in &heads_by_layer {
            if layer >= config.num_layers {
                return Err(Error::shape(
                    op,
                    format!(
                        "layer {layer}, but the model has {} layers",
                        config.num_layers
                    ),
                ));
            }
            if let Some(&h) = heads.iter().find(|&&h| h >= config.num_attention_heads) {
                return Err(Error::shape(
                    op,
                    format!(
                        "layer {layer}: head {h}, but the model has {} heads",
                        config.num_attention_heads
                    ),
                ));
            }
        }
        let targets: &[LoraTarget] = if include_out {
            &LoraTarget::ALL
        } else {
            &LoraTarget::ALL[..3]
        };
        let sites: Vec<LoraSite> = (0..config.num_layers)
            .flat_map(|block| {
                targets.iter().map(move |&target| LoraSite {
                    block,
                    attn: Attn::SelfAttn,
                    target,
                })
            })
            .collect();
        Self::on_sites(kind, config, &sites, rank, alpha, Some(heads_by_layer), rng)
    }

    /// A plain PEFT LoRA adapter (all heads) on any attention projections, self or cross.
    pub fn plain(
        config: &WanConfig,
        sites: &[LoraSite],
        rank: usize,
        alpha: f32,
        rng: &mut impl rand::Rng,
    ) -> Result<Self> {
        Self::on_sites(AdapterKind::Plain, config, sites, rank, alpha, None, rng)
    }

    /// Checks rank, alpha and sites against the config, then builds with [`Adapter::new`].
    fn on_sites(
        kind: AdapterKind,
        config: &WanConfig,
        sites: &[LoraSite],
        rank: usize,
        alpha: f32,
        heads: Option<HeadAssignment>,
        rng: &mut impl rand::Rng,
    ) -> Result<Self> {
        let op = "Adapter";
        if rank == 0 || !(alpha.is_finite() && alpha > 0.0) {
            return Err(Error::shape(
                op,
                format!("rank must be ≥ 1 and alpha positive, got rank {rank}, alpha {alpha}"),
            ));
        }
        if let Some(site) = sites.iter().find(|s| s.block >= config.num_layers) {
            return Err(Error::shape(
                op,
                format!("{site}: the model has only {} blocks", config.num_layers),
            ));
        }
        // Every attention projection is dim × dim in Wan.
        let d = config.dim();
        let targets: Vec<(LoraSite, usize, usize)> = sites.iter().map(|&s| (s, d, d)).collect();
        Self::new(
            kind,
            rank,
            alpha,
            &targets,
            heads,
            config.attention_head_dim,
            rng,
        )
    }

    /// Recomputes the head masks from `self.heads`.
    pub fn build_masks(&mut self, head_dim: usize) -> Result<()> {
        let Some(heads) = &self.heads else {
            for f in self.factors.values_mut() {
                f.mask_a = None;
                f.mask_b = None;
            }
            return Ok(());
        };
        for (target, f) in self.factors.iter_mut() {
            let layer_heads = heads
                .get(&target.block)
                .map(|v| v.as_slice())
                .unwrap_or(&[]);
            let features = |n: usize| -> Vec<f32> {
                let mut m = vec![0.0; n];
                for &h in layer_heads {
                    for v in m.iter_mut().skip(h * head_dim).take(head_dim) {
                        *v = 1.0;
                    }
                }
                m
            };
            if target.target == LoraTarget::ToOut {
                let n = f.a.dim(1);
                f.mask_a = Some(Tensor::from_vec(features(n), &[1, n])?.to_device(f.a.device())?);
                f.mask_b = None;
            } else {
                let n = f.b.dim(0);
                f.mask_b = Some(Tensor::from_vec(features(n), &[n, 1])?.to_device(f.b.device())?);
                f.mask_a = None;
            }
        }
        Ok(())
    }

    /// The adapter's delta on `x` for `target`, or None when it does not adapt it.
    pub fn delta(&self, target: LoraSite, x: &Tensor) -> Result<Option<Tensor>> {
        let Some(f) = self.factors.get(&target).filter(|_| self.enabled) else {
            return Ok(None);
        };
        let a = match &f.mask_a {
            Some(m) => f.a.mul(m)?,
            None => f.a.clone(),
        };
        let b = match &f.mask_b {
            Some(m) => f.b.mul(m)?,
            None => f.b.clone(),
        };
        Ok(Some(
            // Scaling the rank-r intermediate touches r/out as much memory as scaling the output.
            x.linear(&a, None)?.scale(self.scale())?.linear(&b, None)?,
        ))
    }

    /// Trainable factors under their PEFT names.
    pub fn params(&self) -> ParamSet {
        let mut set = ParamSet::new();
        for (target, f) in &self.factors {
            for (suffix, t) in [("lora_A.weight", &f.a), ("lora_B.weight", &f.b)] {
                if t.is_param() {
                    set.push(
                        format!("transformer.{}.{suffix}", target.module_path()),
                        t.clone(),
                    );
                }
            }
        }
        set
    }

    /// Moves factors and masks to `device` (trainable factors stay trainable, as new tensors).
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        for f in self.factors.values_mut() {
            for t in [&mut f.a, &mut f.b] {
                *t = t.to_device(device)?;
            }
            for m in [&mut f.mask_a, &mut f.mask_b].into_iter().flatten() {
                *m = m.to_device(device)?;
            }
        }
        Ok(())
    }

    /// Makes the factors frozen (no gradients) or trainable, keeping their values.
    pub fn set_trainable(&mut self, trainable: bool) -> Result<()> {
        for f in self.factors.values_mut() {
            for t in [&mut f.a, &mut f.b] {
                *t = if trainable { t.to_param() } else { t.detach() };
            }
        }
        Ok(())
    }

    /// The adapter as PEFT factors (masks applied: a head-restricted factor becomes an ordinary
    /// factor whose other heads' rows/columns are zero), ready to write with
    /// [`crate::lora_io::write_lora`].
    pub fn to_io(&self, stage: Option<&str>, head_dim: usize) -> Result<LoraAdapter> {
        let masked = |t: &Tensor, m: &Option<Tensor>| -> Result<HostTensor> {
            let v = match m {
                Some(m) => fym_autograd::no_grad(|| t.mul(m))?,
                None => t.clone(),
            };
            HostTensor::new(v.shape().to_vec(), v.to_vec())
        };
        let mut factors = BTreeMap::new();
        for (site, f) in &self.factors {
            factors.insert(
                *site,
                HostFactors {
                    a: masked(&f.a, &f.mask_a)?,
                    b: masked(&f.b, &f.mask_b)?,
                },
            );
        }
        Ok(LoraAdapter {
            rank: self.rank,
            alpha: self.alpha,
            kind: self.kind,
            stage: stage.map(str::to_string),
            heads: self.heads.clone(),
            head_dim: self.heads.as_ref().map(|_| head_dim),
            factors,
        })
    }

    /// An adapter from PEFT factors read from a file; `trainable` makes the factors parameters.
    pub fn from_io(io: &LoraAdapter, head_dim: usize, trainable: bool) -> Result<Self> {
        let mut factors = BTreeMap::new();
        for (site, f) in &io.factors {
            let make = |h: &HostTensor| -> Result<Tensor> {
                Ok(if trainable {
                    Tensor::param(h.data.clone(), &h.shape)?
                } else {
                    Tensor::from_vec(h.data.clone(), &h.shape)?
                })
            };
            factors.insert(
                *site,
                LoraFactors {
                    a: make(&f.a)?,
                    b: make(&f.b)?,
                    mask_a: None,
                    mask_b: None,
                },
            );
        }
        let mut adapter = Adapter {
            kind: io.kind,
            rank: io.rank,
            alpha: io.alpha,
            heads: io.heads.clone(),
            factors,
            enabled: true,
        };
        adapter.build_masks(io.head_dim.unwrap_or(head_dim))?;
        Ok(adapter)
    }
}

/// Every adapter attached to a model; their deltas add up on each adapted projection.
#[derive(Clone, Debug, Default)]
pub struct Adapters {
    pub list: Vec<Adapter>,
}

impl Adapters {
    /// `base + Σ deltas` for `target`.
    pub fn apply(&self, target: LoraSite, x: &Tensor, base: Tensor) -> Result<Tensor> {
        let mut y = base;
        for adapter in &self.list {
            if let Some(d) = adapter.delta(target, x)? {
                y = y.add(&d)?;
            }
        }
        Ok(y)
    }

    /// Moves every adapter to `device`.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        self.list.iter_mut().try_for_each(|a| a.to_device(device))
    }

    /// Trainable factors of every adapter.
    pub fn params(&self) -> ParamSet {
        let mut set = ParamSet::new();
        for (i, a) in self.list.iter().enumerate() {
            for (n, t) in a.params().iter() {
                // Distinct adapters may adapt the same projection: prefix the index when needed.
                let name = if i == 0 {
                    n.to_string()
                } else {
                    format!("adapter{i}.{n}")
                };
                set.push(name, t.clone());
            }
        }
        set
    }
}
