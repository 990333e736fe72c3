//! LoRA adapters in the diffusers/PEFT safetensors format, so that what fym trains loads into
//! diffusers' `WanPipeline.load_lora_weights` unchanged and computes the same thing.
//!
//! Keys: `transformer.blocks.{i}.attn{1,2}.{to_q,to_k,to_v,to_out.0}.lora_A.weight` (`[r, in]`)
//! and `….lora_B.weight` (`[out, r]`); the layer computes `y = x·Wᵀ + b + (alpha/r)·(x·Aᵀ)·Bᵀ`.
//! Reading also accepts keys without `transformer.`, with PEFT's `base_model.model.` prefix, and
//! with an adapter name (`lora_A.default.weight`).
//!
//! **Head-restricted adapters (ST-LoRA).** A spatial or temporal adapter touches only the heads of
//! its group. It is stored as an ordinary full-width PEFT adapter whose factors are zero outside
//! those heads: for `to_q`/`to_k`/`to_v` the output features of head h are rows
//! `h·head_dim .. (h+1)·head_dim`, so the rows of `lora_B` of the other heads are zero; for
//! `to_out.0` heads are its *input* features, so the columns of `lora_A` of the other heads are
//! zero. A plain LoRA layer with these factors computes exactly the restricted update, which is
//! why diffusers needs no special code. The head lists are recorded in the metadata (`fym.heads`,
//! JSON `{"block": [heads…]}`) together with `fym.head_dim`, `fym.adapter`
//! ("spatial"/"temporal"/"plain"), `fym.stage`, `fym.rank` and `fym.alpha`; the PEFT config that
//! diffusers reads (`lora_adapter_metadata`) carries rank, alpha and the exact target modules.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::{json, Value};

use crate::config::WanConfig;
use crate::error::{Error, Result};
use crate::weights::{load_safetensors_with_metadata, save_safetensors, HostTensor};

/// Which attention of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attn {
    /// `attn1`: self-attention (with RoPE).
    SelfAttn,
    /// `attn2`: cross-attention to the text.
    CrossAttn,
}

impl Attn {
    pub fn as_str(self) -> &'static str {
        match self {
            Attn::SelfAttn => "attn1",
            Attn::CrossAttn => "attn2",
        }
    }
}

/// Which projection of an attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoraTarget {
    ToQ,
    ToK,
    ToV,
    ToOut,
}

impl LoraTarget {
    pub const ALL: [LoraTarget; 4] = [
        LoraTarget::ToQ,
        LoraTarget::ToK,
        LoraTarget::ToV,
        LoraTarget::ToOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LoraTarget::ToQ => "to_q",
            LoraTarget::ToK => "to_k",
            LoraTarget::ToV => "to_v",
            LoraTarget::ToOut => "to_out.0",
        }
    }
}

/// One adapted Linear: block, attention, projection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoraSite {
    pub block: usize,
    pub attn: Attn,
    pub target: LoraTarget,
}

impl LoraSite {
    /// The module path inside the transformer, e.g. `blocks.0.attn1.to_out.0`.
    pub fn module_path(&self) -> String {
        format!(
            "blocks.{}.{}.{}",
            self.block,
            self.attn.as_str(),
            self.target.as_str()
        )
    }

    /// Parses a module path such as `blocks.3.attn2.to_k`.
    pub fn parse(module: &str) -> Option<Self> {
        let rest = module.strip_prefix("blocks.")?;
        let (block, rest) = rest.split_once('.')?;
        let block: usize = block.parse().ok()?;
        let (attn, target) = rest.split_once('.')?;
        let attn = match attn {
            "attn1" => Attn::SelfAttn,
            "attn2" => Attn::CrossAttn,
            _ => return None,
        };
        let target = LoraTarget::ALL.into_iter().find(|t| t.as_str() == target)?;
        Some(LoraSite {
            block,
            attn,
            target,
        })
    }
}

impl fmt::Display for LoraSite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.module_path())
    }
}

/// The two factors of one adapted Linear: `a` is `[r, in]`, `b` is `[out, r]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraFactors {
    pub a: HostTensor,
    pub b: HostTensor,
}

/// The role of an adapter in the Follow-Your-Motion pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdapterKind {
    /// Stage 2: spatial heads, appearance.
    Spatial,
    /// Stage 3: temporal heads, motion.
    Temporal,
    /// Not restricted to a head group.
    Plain,
}

impl AdapterKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Spatial => "spatial",
            AdapterKind::Temporal => "temporal",
            AdapterKind::Plain => "plain",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "spatial" => Some(AdapterKind::Spatial),
            "temporal" => Some(AdapterKind::Temporal),
            "plain" => Some(AdapterKind::Plain),
            _ => None,
        }
    }
}

/// Heads an adapter is restricted to: block → head indices.
pub type HeadAssignment = BTreeMap<usize, Vec<usize>>;

/// A LoRA adapter over attention projections.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraAdapter {
    pub rank: usize,
    pub alpha: f32,
    pub kind: AdapterKind,
    /// Free-form pipeline stage name (e.g. "spatial", "temporal"), recorded in the file.
    pub stage: Option<String>,
    /// With `head_dim`: the heads this adapter may touch per block (see the module docs).
    pub heads: Option<HeadAssignment>,
    pub head_dim: Option<usize>,
    pub factors: BTreeMap<LoraSite, LoraFactors>,
}

const META_RANK: &str = "fym.rank";
const META_ALPHA: &str = "fym.alpha";
const META_KIND: &str = "fym.adapter";
const META_STAGE: &str = "fym.stage";
const META_HEADS: &str = "fym.heads";
const META_HEAD_DIM: &str = "fym.head_dim";
/// diffusers' `LORA_ADAPTER_METADATA_KEY`: the PEFT `LoraConfig` as JSON, keys prefixed by the
/// pipeline component (`transformer.`).
const META_PEFT: &str = "lora_adapter_metadata";

impl LoraAdapter {
    /// Scaling of the low-rank update: alpha / rank.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank as f32
    }

    /// Checks that every site has `a: [rank, in]`, `b: [out, rank]` with matching data lengths,
    /// and that a head assignment, if any, comes with a head dim.
    pub fn validate(&self, file: &Path) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::lora(file, "rank must be at least 1"));
        }
        if !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(Error::lora(
                file,
                format!("alpha must be positive, got {}", self.alpha),
            ));
        }
        for (site, f) in &self.factors {
            let (sa, sb) = (&f.a.shape, &f.b.shape);
            if sa.len() != 2 || sb.len() != 2 {
                return Err(Error::lora(
                    file,
                    format!("{site}: lora_A {sa:?} and lora_B {sb:?} must both be 2-D"),
                ));
            }
            if sa[0] != self.rank || sb[1] != self.rank {
                return Err(Error::lora(
                    file,
                    format!(
                        "{site}: lora_A {sa:?} / lora_B {sb:?} do not have rank {}",
                        self.rank
                    ),
                ));
            }
            for (name, t) in [("lora_A", &f.a), ("lora_B", &f.b)] {
                if t.shape.iter().product::<usize>() != t.data.len() {
                    return Err(Error::lora(
                        file,
                        format!(
                            "{site}: {name} shape {:?} but {} values",
                            t.shape,
                            t.data.len()
                        ),
                    ));
                }
            }
        }
        if self.heads.is_some() && self.head_dim.is_none() {
            return Err(Error::lora(file, "a head assignment needs `head_dim`"));
        }
        Ok(())
    }

    /// Checks the sites against a model: blocks exist and every factor is `dim`-wide.
    pub fn check_against_config(&self, cfg: &WanConfig, file: &Path) -> Result<()> {
        let d = cfg.dim();
        for (site, f) in &self.factors {
            if site.block >= cfg.num_layers {
                return Err(Error::lora(
                    file,
                    format!("{site}: the model has only {} blocks", cfg.num_layers),
                ));
            }
            if f.a.shape[1] != d || f.b.shape[0] != d {
                return Err(Error::lora(
                    file,
                    format!(
                        "{site}: lora_A {:?} / lora_B {:?} do not fit a {d}×{d} projection",
                        f.a.shape, f.b.shape
                    ),
                ));
            }
        }
        if let (Some(heads), Some(hd)) = (&self.heads, self.head_dim) {
            if hd != cfg.attention_head_dim {
                return Err(Error::lora(
                    file,
                    format!(
                        "head_dim {hd} differs from the model's {}",
                        cfg.attention_head_dim
                    ),
                ));
            }
            for (block, hs) in heads {
                if let Some(&h) = hs.iter().find(|&&h| h >= cfg.num_attention_heads) {
                    return Err(Error::lora(
                        file,
                        format!(
                            "block {block}: head {h} but the model has {} heads",
                            cfg.num_attention_heads
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Zeroes the parts of every factor that would touch heads outside `self.heads` (rows of
    /// `lora_B` for q/k/v, columns of `lora_A` for `to_out.0`); blocks missing from the assignment
    /// get no update at all. A no-op without an assignment.
    pub fn restrict_to_heads(&mut self) -> Result<()> {
        self.validate(Path::new("<adapter>"))?;
        let (Some(heads), Some(hd)) = (&self.heads, self.head_dim) else {
            return Ok(());
        };
        if hd == 0 {
            return Err(Error::lora("<adapter>", "head_dim must be positive"));
        }
        for (site, f) in self.factors.iter_mut() {
            let allowed: &[usize] = heads.get(&site.block).map_or(&[], Vec::as_slice);
            let keep = |feature: usize| allowed.contains(&(feature / hd));
            match site.target {
                LoraTarget::ToQ | LoraTarget::ToK | LoraTarget::ToV => {
                    let r = f.b.shape[1];
                    for (row, chunk) in f.b.data.chunks_exact_mut(r).enumerate() {
                        if !keep(row) {
                            chunk.fill(0.0);
                        }
                    }
                }
                LoraTarget::ToOut => {
                    let cols = f.a.shape[1].max(1);
                    for row in f.a.data.chunks_exact_mut(cols) {
                        for (c, v) in row.iter_mut().enumerate() {
                            if !keep(c) {
                                *v = 0.0;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Splits a LoRA key into (module path, "A"/"B", adapter name if any).
fn split_key(key: &str) -> Option<(&str, char, Option<&str>)> {
    let k = key.strip_prefix("base_model.model.").unwrap_or(key);
    let k = k.strip_prefix("transformer.").unwrap_or(k);
    let k = k.strip_suffix(".weight")?;
    for (marker, which) in [(".lora_A", 'A'), (".lora_B", 'B')] {
        if let Some(pos) = k.find(marker) {
            let module = &k[..pos];
            let rest = &k[pos + marker.len()..];
            let adapter = match rest {
                "" => None,
                r => Some(
                    r.strip_prefix('.')
                        .filter(|n| !n.is_empty() && !n.contains('.'))?,
                ),
            };
            return Some((module, which, adapter));
        }
    }
    None
}

/// Reads a diffusers/PEFT LoRA file. Rank comes from the factors (it must be the same for every
/// site); alpha from `fym.alpha`, else diffusers' PEFT metadata, else alpha = rank.
pub fn read_lora(path: impl AsRef<Path>) -> Result<LoraAdapter> {
    let path = path.as_ref();
    let (tensors, meta) = load_safetensors_with_metadata(path)?;
    let mut a_map: BTreeMap<LoraSite, HostTensor> = BTreeMap::new();
    let mut b_map: BTreeMap<LoraSite, HostTensor> = BTreeMap::new();
    let mut adapter_names: Vec<&str> = Vec::new();
    for (key, t) in &tensors {
        let (module, which, adapter) = split_key(key)
            .ok_or_else(|| Error::lora(path, format!("`{key}` is not a lora_A/lora_B weight")))?;
        let site = LoraSite::parse(module).ok_or_else(|| {
            Error::lora(
                path,
                format!("`{key}`: `{module}` is not blocks.N.attn1|attn2.to_q|to_k|to_v|to_out.0"),
            )
        })?;
        if let Some(name) = adapter {
            if !adapter_names.contains(&name) {
                adapter_names.push(name);
            }
        }
        let map = if which == 'A' { &mut a_map } else { &mut b_map };
        if map.insert(site, t.clone()).is_some() {
            return Err(Error::lora(
                path,
                format!("{site}: lora_{which} appears twice (`{key}`)"),
            ));
        }
    }
    if adapter_names.len() > 1 {
        return Err(Error::lora(
            path,
            format!("file mixes adapters {adapter_names:?}; fym reads one adapter per file"),
        ));
    }
    if a_map.is_empty() {
        return Err(Error::lora(path, "no LoRA factors in the file"));
    }
    let mut factors = BTreeMap::new();
    for (site, a) in a_map {
        let b = b_map
            .remove(&site)
            .ok_or_else(|| Error::lora(path, format!("{site}: lora_A without lora_B")))?;
        if a.shape.len() != 2 || b.shape.len() != 2 {
            return Err(Error::lora(
                path,
                format!(
                    "{site}: lora_A {:?} and lora_B {:?} must both be 2-D",
                    a.shape, b.shape
                ),
            ));
        }
        factors.insert(site, LoraFactors { a, b });
    }
    if let Some(site) = b_map.keys().next() {
        return Err(Error::lora(path, format!("{site}: lora_B without lora_A")));
    }

    // Rank: rows of lora_A, the same everywhere.
    let mut ranks: Vec<(LoraSite, usize)> = factors
        .iter()
        .map(|(s, f)| (*s, f.a.shape.first().copied().unwrap_or(0)))
        .collect();
    ranks.dedup_by_key(|(_, r)| *r);
    let rank = ranks[0].1;
    if let Some((site, r)) = ranks.iter().find(|(_, r)| *r != rank) {
        return Err(Error::lora(
            path,
            format!(
                "inconsistent ranks: {} has rank {rank}, {site} has rank {r}",
                ranks[0].0
            ),
        ));
    }
    if let Some(stored) = meta.get(META_RANK) {
        if stored.parse::<usize>().ok() != Some(rank) {
            return Err(Error::lora(
                path,
                format!("metadata {META_RANK} = {stored:?} but the factors have rank {rank}"),
            ));
        }
    }

    let alpha = match meta.get(META_ALPHA) {
        Some(s) => s.parse::<f32>().map_err(|_| {
            Error::lora(
                path,
                format!("metadata {META_ALPHA} = {s:?} is not a number"),
            )
        })?,
        None => peft_alpha(&meta).unwrap_or(rank as f32),
    };
    let kind = match meta.get(META_KIND) {
        Some(s) => AdapterKind::parse(s).ok_or_else(|| {
            Error::lora(
                path,
                format!("metadata {META_KIND} = {s:?}: expected spatial, temporal or plain"),
            )
        })?,
        None => AdapterKind::Plain,
    };
    let head_dim = match meta.get(META_HEAD_DIM) {
        Some(s) => Some(s.parse::<usize>().ok().filter(|&d| d > 0).ok_or_else(|| {
            Error::lora(
                path,
                format!("metadata {META_HEAD_DIM} = {s:?} is not a positive integer"),
            )
        })?),
        None => None,
    };
    let heads = match meta.get(META_HEADS) {
        Some(s) => Some(
            parse_heads(s).map_err(|m| Error::lora(path, format!("metadata {META_HEADS}: {m}")))?,
        ),
        None => None,
    };
    let adapter = LoraAdapter {
        rank,
        alpha,
        kind,
        stage: meta.get(META_STAGE).cloned(),
        heads,
        head_dim,
        factors,
    };
    adapter.validate(path)?;
    Ok(adapter)
}

/// `lora_alpha` from diffusers' PEFT metadata blob (prefixed `transformer.` or not).
fn peft_alpha(meta: &BTreeMap<String, String>) -> Option<f32> {
    let blob: Value = serde_json::from_str(meta.get(META_PEFT)?).ok()?;
    let v = blob
        .get("transformer.lora_alpha")
        .or_else(|| blob.get("lora_alpha"))?;
    v.as_f64().map(|a| a as f32)
}

fn parse_heads(s: &str) -> std::result::Result<HeadAssignment, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or("expected an object {\"block\": [heads]}")?;
    let mut out = HeadAssignment::new();
    for (block, list) in obj {
        let b: usize = block
            .parse()
            .map_err(|_| format!("block key {block:?} is not an integer"))?;
        let heads = list
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|h| h.as_u64().map(|h| h as usize))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format!("block {b}: expected a list of head indices, got {list}"))?;
        out.insert(b, heads);
    }
    Ok(out)
}

/// Writes `adapter` with keys `transformer.<module>.lora_{A,B}.weight` (f32) and metadata,
/// atomically.
pub fn write_lora(path: impl AsRef<Path>, adapter: &LoraAdapter) -> Result<()> {
    let path = path.as_ref();
    adapter.validate(path)?;
    let mut tensors = BTreeMap::new();
    for (site, f) in &adapter.factors {
        let m = site.module_path();
        tensors.insert(format!("transformer.{m}.lora_A.weight"), f.a.clone());
        tensors.insert(format!("transformer.{m}.lora_B.weight"), f.b.clone());
    }
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(META_RANK.to_string(), adapter.rank.to_string());
    meta.insert(META_ALPHA.to_string(), adapter.alpha.to_string());
    meta.insert(META_KIND.to_string(), adapter.kind.as_str().to_string());
    if let Some(stage) = &adapter.stage {
        meta.insert(META_STAGE.to_string(), stage.clone());
    }
    if let Some(heads) = &adapter.heads {
        let obj: serde_json::Map<String, Value> = heads
            .iter()
            .map(|(b, hs)| (b.to_string(), json!(hs)))
            .collect();
        meta.insert(META_HEADS.to_string(), Value::Object(obj).to_string());
    }
    if let Some(hd) = adapter.head_dim {
        meta.insert(META_HEAD_DIM.to_string(), hd.to_string());
    }
    let targets: Vec<String> = adapter.factors.keys().map(LoraSite::module_path).collect();
    let alpha = format!("{}", adapter.alpha)
        .parse::<f64>()
        .unwrap_or(adapter.alpha as f64);
    let peft = json!({
        "transformer.r": adapter.rank,
        "transformer.lora_alpha": alpha,
        "transformer.target_modules": targets,
    });
    meta.insert(META_PEFT.to_string(), peft.to_string());
    save_safetensors(path, &tensors, &meta)
}
