//! The Wan video DiT (`WanTransformer3DModel`, text-to-video), forward on the autograd tape so
//! the same code serves inference (inside `no_grad`), LoRA tuning and full training.
//! Every formula follows WAN_ARCH.md; section numbers refer to it.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;

use fym_autograd::{
    Device, MaskMode, ParamSet, PatchOrder, PatchSize, RopeTable, Tensor, VideoDims,
};
use fym_kernels::cpu::rope::{grid_positions, rope_table};

use crate::config::{WanConfig, FRAME_EMBED_PARAM};
use crate::flow::timestep_embedding;
use crate::lora::{Adapters, Attn, LoraSite, LoraTarget};
use crate::{Error, Result};

const ROPE_THETA: f64 = 10000.0;

/// Per-call options of the forward pass.
#[derive(Clone, Debug, Default)]
pub struct ForwardOptions {
    /// Temporal RoPE position of each latent frame (post-patch); `None` = 0, 1, 2, … (adaptive
    /// RoPE passes the stretched positions of a sparse subset of frames here).
    pub frame_positions: Option<Vec<f64>>,
    /// Added to the cross-attention scores before the softmax, `[B, tokens, text_len]` (shared by
    /// every head and layer): a large negative entry keeps a video token from reading that word.
    /// `None`: every token reads every word.
    pub cross_attention_bias: Option<Tensor>,
}

/// Post-RoPE queries and keys of one self-attention layer (`[B, S, H·D]`), captured for head
/// classification (detached) or for a loss on the attention itself (on the graph).
pub struct CapturedAttention {
    pub q: Tensor,
    pub k: Tensor,
    /// Tokens of one latent frame (`S = frames · tokens_per_frame`), as the forward patched them.
    pub tokens_per_frame: usize,
}

/// The model: config, named base parameters (frozen unless built trainable), LoRA adapters.
pub struct WanModel {
    pub config: WanConfig,
    params: BTreeMap<String, Tensor>,
    pub adapters: Adapters,
    /// Whether `adapters` take part in the forward (a sampler can leave them out at some noise
    /// levels without detaching them).
    adapters_enabled: Cell<bool>,
    capture: RefCell<Option<Capture>>,
}

/// What a forward records while capturing.
struct Capture {
    /// Keep the captured q and k on the autograd graph, so a loss on them trains the model.
    on_graph: bool,
    layers: Vec<CapturedAttention>,
}

impl WanModel {
    /// Builds the model from named tensors (shape, values), checked against the config's
    /// parameter list. `trainable` makes every base parameter a trainable leaf (pretraining).
    pub fn from_tensors(
        config: WanConfig,
        tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
        trainable: bool,
    ) -> Result<Self> {
        let mut params = BTreeMap::new();
        let mut tensors = tensors;
        let mut problems = Vec::new();
        for (name, shape) in config.expected_parameters() {
            match tensors.remove(&name) {
                Some((s, data)) if s == shape => {
                    let t = if trainable {
                        Tensor::param(data, &shape)?
                    } else {
                        Tensor::from_vec(data, &shape)?
                    };
                    params.insert(name, t);
                }
                Some((s, _)) => problems.push(format!("{name}: shape {s:?}, expected {shape:?}")),
                None => problems.push(format!("{name}: missing (expected {shape:?})")),
            }
        }
        problems.extend(tensors.keys().map(|n| format!("{n}: unexpected tensor")));
        if !problems.is_empty() {
            return Err(Error::weights(
                "model",
                format!(
                    "tensors do not match the config:\n  {}",
                    problems.join("\n  ")
                ),
            ));
        }
        Ok(WanModel {
            config,
            params,
            adapters: Adapters::default(),
            adapters_enabled: Cell::new(true),
            capture: RefCell::new(None),
        })
    }

    /// A freshly initialised model (PyTorch's default Linear init, zero-init output projections
    /// of residual branches for stable training from scratch).
    pub fn new_random(
        config: WanConfig,
        rng: &mut impl rand::Rng,
        trainable: bool,
    ) -> Result<Self> {
        let mut tensors = BTreeMap::new();
        for (name, shape) in config.expected_parameters() {
            let n: usize = shape.iter().product();
            let fan_in: usize = if shape.len() >= 2 {
                shape[1..].iter().product()
            } else {
                0
            };
            let data = if name.ends_with("norm_q.weight")
                || name.ends_with("norm_k.weight")
                || name.ends_with("norm2.weight")
            {
                vec![1.0; n]
            } else if name.contains("scale_shift_table") {
                fym_autograd::init::normal_vec(rng, n, 1.0 / (config.dim() as f32).sqrt())
            } else if name.ends_with(".bias")
                || name == "proj_out.weight"
                || name == FRAME_EMBED_PARAM
            {
                vec![0.0; n]
            } else {
                fym_autograd::init::uniform_vec(rng, n, 1.0 / (fan_in.max(1) as f32).sqrt())
            };
            tensors.insert(name, (shape, data));
        }
        Self::from_tensors(config, tensors, trainable)
    }

    /// Adds the per-latent-frame embedding ([`WanConfig::frame_embed_len`]) to a model without
    /// one, at zero, so the model computes exactly what it did until training moves it.
    pub fn add_frame_embedding(&mut self, len: usize, trainable: bool) -> Result<()> {
        if self.config.frame_embed_len != 0 || len == 0 {
            return Err(Error::shape(
                "WanModel::add_frame_embedding",
                format!(
                    "the model has {} frame embeddings; can add {len} only to a model with none",
                    self.config.frame_embed_len
                ),
            ));
        }
        let shape = [len, self.config.dim()];
        let zeros = vec![0.0; len * self.config.dim()];
        let t = if trainable {
            Tensor::param(zeros, &shape)?
        } else {
            Tensor::from_vec(zeros, &shape)?
        };
        self.params.insert(FRAME_EMBED_PARAM.to_string(), t);
        self.config.frame_embed_len = len;
        Ok(())
    }

    /// Moves every parameter (base and LoRA) to `device`; trainable ones stay trainable but are new
    /// tensors, so collect [`WanModel::trainable_base_params`] / adapter params after moving.
    pub fn to_device(&mut self, device: Device) -> Result<()> {
        for t in self.params.values_mut() {
            *t = t.to_device(device)?;
        }
        self.adapters.to_device(device)
    }

    /// Where the base parameters live.
    pub fn device(&self) -> Device {
        self.params
            .values()
            .next()
            .map_or(Device::Cpu, |t| t.device())
    }

    /// A base parameter by its diffusers name.
    pub fn param(&self, name: &str) -> Result<&Tensor> {
        self.params
            .get(name)
            .ok_or_else(|| Error::weights("model", format!("no parameter named {name}")))
    }

    /// All base parameters by name.
    pub fn params(&self) -> &BTreeMap<String, Tensor> {
        &self.params
    }

    /// The base parameters that are trainable (all of them when built trainable, else none).
    pub fn trainable_base_params(&self) -> ParamSet {
        let mut set = ParamSet::new();
        for (n, t) in &self.params {
            if t.is_param() {
                set.push(n.clone(), t.clone());
            }
        }
        set
    }

    /// Starts capturing every self-attention's post-RoPE q and k, detached (head classification).
    pub fn start_capture(&self) {
        self.start_capture_as(false);
    }

    /// Starts capturing every self-attention's post-RoPE q and k on the autograd graph, so that a
    /// loss on the attention they make (`losses::head_role_loss`) trains the layers behind them.
    pub fn start_capture_on_graph(&self) {
        self.start_capture_as(true);
    }

    fn start_capture_as(&self, on_graph: bool) {
        *self.capture.borrow_mut() = Some(Capture {
            on_graph,
            layers: Vec::new(),
        });
    }

    /// Stops capturing and returns what was captured (one entry per layer).
    pub fn take_capture(&self) -> Vec<CapturedAttention> {
        self.capture
            .borrow_mut()
            .take()
            .map(|c| c.layers)
            .unwrap_or_default()
    }

    fn p(&self, name: &str) -> Result<&Tensor> {
        self.param(name)
    }

    /// `x [B, F·HW, dim]` plus each latent frame's embedding at its temporal position (linear
    /// interpolation between the two nearest rows; positions past the table use its last row).
    fn add_frame_embeddings(
        &self,
        x: &Tensor,
        b: usize,
        frames: usize,
        tokens_per_frame: usize,
        opts: &ForwardOptions,
    ) -> Result<Tensor> {
        let len = self.config.frame_embed_len;
        let dim = self.config.dim();
        let weights = frame_embedding_weights(frames, len, opts.frame_positions.as_deref());
        let per_frame = Tensor::from_vec(weights, &[frames, len])?
            .to_device(x.device())?
            .matmul(self.p(FRAME_EMBED_PARAM)?)?
            .reshape(&[1, frames, 1, dim])?;
        Ok(x.reshape(&[b, frames, tokens_per_frame, dim])?
            .add(&per_frame)?
            .reshape(&[b, frames * tokens_per_frame, dim])?)
    }

    /// `Linear` with optional LoRA adapters on the given target.
    fn project(&self, x: &Tensor, prefix: &str, target: Option<LoraSite>) -> Result<Tensor> {
        let base = x.linear(
            self.p(&format!("{prefix}.weight"))?,
            Some(self.p(&format!("{prefix}.bias"))?),
        )?;
        match target {
            Some(t) if self.adapters_enabled.get() => self.adapters.apply(t, x, base),
            _ => Ok(base),
        }
    }

    /// Lets the attached adapters take part in the forward (`true`, the default) or computes the
    /// base model alone (`false`), without detaching them.
    pub fn set_adapters_enabled(&self, enabled: bool) {
        self.adapters_enabled.set(enabled);
    }

    /// The full forward pass (§8): `hidden_states [B, Cin, F, H, W]`, `timestep [B]`,
    /// `encoder_hidden_states [B, L, text_dim]` → `[B, Cout, F, H, W]`.
    pub fn forward(
        &self,
        hidden_states: &Tensor,
        timestep: &[f32],
        encoder_hidden_states: &Tensor,
        opts: &ForwardOptions,
    ) -> Result<Tensor> {
        let c = &self.config;
        let hs = hidden_states.shape();
        let [pt, ph, pw] = c.patch_size;
        if hs.len() != 5
            || hs[1] != c.in_channels
            || !hs[2].is_multiple_of(pt)
            || !hs[3].is_multiple_of(ph)
            || !hs[4].is_multiple_of(pw)
        {
            return Err(Error::shape("WanModel::forward", format!(
                "hidden_states has shape {hs:?}; expected [B, {}, F, H, W] with F, H, W divisible by the patch {:?}",
                c.in_channels, c.patch_size
            )));
        }
        let (b, f, h, w) = (hs[0], hs[2] / pt, hs[3] / ph, hs[4] / pw);
        let es = encoder_hidden_states.shape();
        if es.len() != 3 || es[0] != b || es[2] != c.text_dim || timestep.len() != b {
            return Err(Error::shape("WanModel::forward", format!(
                "encoder_hidden_states {es:?} and {} timesteps for a batch of {b}; expected [{b}, L, {}] and {b} timesteps",
                timestep.len(),
                c.text_dim
            )));
        }
        let dim = c.dim();
        let heads = c.num_attention_heads;
        let tokens_per_frame = h * w;
        let patch = PatchSize {
            t: pt,
            h: ph,
            w: pw,
        };

        // §3 RoPE table, shared by every layer.
        if let Some(fp) = &opts.frame_positions {
            if fp.len() != f {
                return Err(Error::shape(
                    "WanModel::forward",
                    format!("{} frame positions for {f} latent frames", fp.len()),
                ));
            }
        }
        let cross_bias = match &opts.cross_attention_bias {
            None => None,
            Some(bias) => {
                let want = [b, f * h * w, es[1]];
                if bias.shape() != want {
                    return Err(Error::shape(
                        "WanModel::forward",
                        format!(
                            "cross-attention bias has shape {:?}; expected {want:?} (batch, video tokens, text length)",
                            bias.shape()
                        ),
                    ));
                }
                Some(bias.reshape(&[b, 1, f * h * w, es[1]])?)
            }
        };
        let positions = grid_positions(f, h, w, opts.frame_positions.as_deref());
        let table: Arc<RopeTable> = Arc::new(
            rope_table(&positions, c.attention_head_dim, ROPE_THETA)
                .map_err(fym_autograd::Error::from)?,
        );

        // §2 patch embedding = patchify (c,i,j,k) + linear.
        let pe_w = self
            .p("patch_embedding.weight")?
            .reshape(&[dim, c.in_channels * pt * ph * pw])?;
        let mut x = hidden_states
            .patchify(patch, PatchOrder::ChannelFirst)?
            .linear(&pe_w, Some(self.p("patch_embedding.bias")?))?;
        if c.frame_embed_len > 0 {
            x = self.add_frame_embeddings(&x, b, f, tokens_per_frame, opts)?;
        }

        // §4 condition embedder.
        let sinus = Tensor::from_vec(timestep_embedding(timestep, c.freq_dim)?, &[b, c.freq_dim])?
            .to_device(hidden_states.device())?;
        let temb = self
            .project(&sinus, "condition_embedder.time_embedder.linear_1", None)?
            .silu()?;
        let temb = self.project(&temb, "condition_embedder.time_embedder.linear_2", None)?;
        let tproj = self
            .project(&temb.silu()?, "condition_embedder.time_proj", None)?
            .reshape(&[b, 6, dim])?;
        let ctx = self
            .project(
                encoder_hidden_states,
                "condition_embedder.text_embedder.linear_1",
                None,
            )?
            .gelu()?;
        let ctx = self.project(&ctx, "condition_embedder.text_embedder.linear_2", None)?;

        let eps = c.eps as f32;
        for layer in 0..c.num_layers {
            x = self.block(
                layer,
                &x,
                &ctx,
                &tproj,
                &table,
                cross_bias.as_ref(),
                heads,
                tokens_per_frame,
                eps,
            )?;
        }

        // §7 output head.
        let modulation = self
            .p("scale_shift_table")?
            .add(&temb.reshape(&[b, 1, dim])?)?;
        let (shift, scale) = (modulation.slice(1, 0, 1)?, modulation.slice(1, 1, 1)?);
        let y = x.layer_norm(None, None, eps)?.modulate(&scale, &shift)?;
        let y = self.project(&y, "proj_out", None)?;
        let dims = VideoDims {
            batch: b,
            channels: c.out_channels,
            frames: hs[2],
            height: hs[3],
            width: hs[4],
        };
        Ok(y.unpatchify(dims, patch, PatchOrder::ChannelLast)?)
    }

    /// One transformer block (§5).
    #[allow(clippy::too_many_arguments)]
    fn block(
        &self,
        layer: usize,
        x: &Tensor,
        ctx: &Tensor,
        tproj: &Tensor,
        table: &Arc<RopeTable>,
        cross_bias: Option<&Tensor>,
        heads: usize,
        tokens_per_frame: usize,
        eps: f32,
    ) -> Result<Tensor> {
        let pre = format!("blocks.{layer}");
        let modulation = self.p(&format!("{pre}.scale_shift_table"))?.add(tproj)?;
        let chunk = |i: usize| modulation.slice(1, i, 1);
        let (shift_msa, scale_msa, gate_msa) = (chunk(0)?, chunk(1)?, chunk(2)?);
        let (c_shift, c_scale, c_gate) = (chunk(3)?, chunk(4)?, chunk(5)?);

        // 1. self-attention
        let n1 = x
            .layer_norm(None, None, eps)?
            .modulate(&scale_msa, &shift_msa)?;
        let a1 = self.attention(
            layer,
            Attn::SelfAttn,
            &n1,
            &n1,
            Some((table, tokens_per_frame)),
            None,
            heads,
            eps,
        )?;
        let x = x.add(&a1.mul(&gate_msa)?)?;

        // 2. cross-attention (affine LayerNorm, no modulation, no gate)
        let n2 = if self.config.cross_attn_norm {
            x.layer_norm(
                Some(self.p(&format!("{pre}.norm2.weight"))?),
                Some(self.p(&format!("{pre}.norm2.bias"))?),
                eps,
            )?
        } else {
            x.clone()
        };
        let a2 = self.attention(
            layer,
            Attn::CrossAttn,
            &n2,
            ctx,
            None,
            cross_bias,
            heads,
            eps,
        )?;
        let x = x.add(&a2)?;

        // 3. feed-forward
        let n3 = x
            .layer_norm(None, None, eps)?
            .modulate(&c_scale, &c_shift)?;
        let ff = self
            .project(&n3, &format!("{pre}.ffn.net.0.proj"), None)?
            .gelu()?;
        let ff = self.project(&ff, &format!("{pre}.ffn.net.2"), None)?;
        Ok(x.add(&ff.mul(&c_gate)?)?)
    }

    /// `WanAttention` (§6). `rope` is given for self-attention (attn1) only; `bias` (`[B, 1,
    /// Sq, Skv]`, added to every head's scores) for cross-attention only.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        layer: usize,
        attn: Attn,
        xq: &Tensor,
        xkv: &Tensor,
        rope: Option<(&Arc<RopeTable>, usize)>,
        bias: Option<&Tensor>,
        heads: usize,
        eps: f32,
    ) -> Result<Tensor> {
        let pre = format!("blocks.{layer}.{}", attn.as_str());
        let target = |target| {
            Some(LoraSite {
                block: layer,
                attn,
                target,
            })
        };
        let q = self.project(xq, &format!("{pre}.to_q"), target(LoraTarget::ToQ))?;
        let k = self.project(xkv, &format!("{pre}.to_k"), target(LoraTarget::ToK))?;
        let v = self.project(xkv, &format!("{pre}.to_v"), target(LoraTarget::ToV))?;
        let mut q = q.rms_norm(Some(self.p(&format!("{pre}.norm_q.weight"))?), eps)?;
        let mut k = k.rms_norm(Some(self.p(&format!("{pre}.norm_k.weight"))?), eps)?;
        let mut tokens_per_frame = 1;
        if let Some((table, tpf)) = rope {
            q = q.rope(table, heads)?;
            k = k.rope(table, heads)?;
            tokens_per_frame = tpf;
            if let Some(cap) = self.capture.borrow_mut().as_mut() {
                let keep = |t: &Tensor| if cap.on_graph { t.clone() } else { t.detach() };
                cap.layers.push(CapturedAttention {
                    q: keep(&q),
                    k: keep(&k),
                    tokens_per_frame: tpf,
                });
            }
        }
        let o = match bias {
            None => q.attention(&k, &v, heads, MaskMode::Full, tokens_per_frame)?,
            Some(bias) => biased_attention(&q, &k, &v, bias, heads)?,
        };
        self.project(&o, &format!("{pre}.to_out.0"), target(LoraTarget::ToOut))
    }
}

/// Multi-head attention with `bias` (`[B, 1, Sq, Skv]`) added to every head's scaled scores,
/// composed of matmuls and a softmax: `q [B, Sq, H·D]`, `k`, `v [B, Skv, H·D]` → `[B, Sq, H·D]`.
/// Meant for cross-attention, whose few keys make the score matrix small.
fn biased_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    heads: usize,
) -> Result<Tensor> {
    let (b, sq, width) = (q.dim(0), q.dim(1), q.dim(2));
    let skv = k.dim(1);
    let d = width / heads;
    let by_head = |x: &Tensor, s: usize| x.reshape(&[b, s, heads, d])?.permute(&[0, 2, 1, 3]);
    let scores = by_head(q, sq)?
        .matmul_t(&by_head(k, skv)?, false, true)?
        .scale(1.0 / (d as f32).sqrt())?
        .add(bias)?
        .softmax()?;
    Ok(scores
        .matmul(&by_head(v, skv)?)?
        .permute(&[0, 2, 1, 3])?
        .reshape(&[b, sq, width])?)
}

/// The `[frames, len]` matrix that gives each latent frame its embedding from a `len`-row table:
/// the row at its temporal position (`positions`, default 0, 1, 2, …), linearly interpolated
/// between the two nearest rows at fractional positions (adaptive RoPE's stretched timeline),
/// clamped to the table.
pub fn frame_embedding_weights(frames: usize, len: usize, positions: Option<&[f64]>) -> Vec<f32> {
    let mut weights = vec![0.0f32; frames * len];
    if len == 0 {
        return weights;
    }
    for (i, row) in weights.chunks_exact_mut(len).enumerate() {
        let p = positions
            .and_then(|fp| fp.get(i).copied())
            .unwrap_or(i as f64)
            .clamp(0.0, (len - 1) as f64);
        let lo = p.floor() as usize;
        let frac = (p - lo as f64) as f32;
        row[lo] += 1.0 - frac;
        if frac > 0.0 {
            row[(lo + 1).min(len - 1)] += frac;
        }
    }
    weights
}
