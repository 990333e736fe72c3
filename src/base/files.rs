//! A base model on disk: one folder with
//! - `config.json`: the Wan config (diffusers' keys),
//! - `diffusion_pytorch_model.safetensors`: the Wan weights under diffusers' names (f32, or bf16
//!   for the compact built-in copy),
//! - `text_encoder.safetensors`: the word and position embeddings, the vocabulary in the metadata,
//! - `fym.json`: the clip size and the model card.
//!
//! Every file is written atomically. The built-in model is the folder `models/base`, embedded in
//! the binary so that it works from anywhere.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use fym_model::text::TextEncoder;
use fym_model::weights::{write_atomic, WEIGHTS_FILE};
use fym_model::{WanConfig, WanModel};
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde_json::{json, Value};

use super::{check_spec, BaseModel, ClipSpec};

pub const TEXT_ENCODER_FILE: &str = "text_encoder.safetensors";
pub const FYM_FILE: &str = "fym.json";
pub const CONFIG_FILE: &str = "config.json";
/// Value of `format` in `fym.json`.
const FORMAT: &str = "fym-base-model-1";

/// How weights are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreDtype {
    F32,
    /// Half the size; the values a model computes with are rounded to bf16 (about 3 digits).
    Bf16,
}

/// The four files of a model folder, in memory.
pub struct ModelBytes<'a> {
    pub config: &'a [u8],
    pub weights: &'a [u8],
    pub text_encoder: &'a [u8],
    pub fym: &'a [u8],
}

/// The committed `models/base` folder, embedded so that the binary works from anywhere.
mod builtin_files {
    pub const CONFIG: &[u8] = include_bytes!("../../models/base/config.json");
    pub const WEIGHTS: &[u8] =
        include_bytes!("../../models/base/diffusion_pytorch_model.safetensors");
    pub const TEXT: &[u8] = include_bytes!("../../models/base/text_encoder.safetensors");
    pub const FYM: &[u8] = include_bytes!("../../models/base/fym.json");
}

impl BaseModel {
    /// Loads a model folder (see the module documentation).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).with_context(|| format!("base model: cannot read {}", p.display()))
        };
        let (config, weights, text, fym) = (
            read(CONFIG_FILE)?,
            read(WEIGHTS_FILE)?,
            read(TEXT_ENCODER_FILE)?,
            read(FYM_FILE)?,
        );
        Self::from_bytes(
            &ModelBytes {
                config: &config,
                weights: &weights,
                text_encoder: &text,
                fym: &fym,
            },
            &dir.display().to_string(),
        )
    }

    /// The model committed under `models/base`, embedded in the binary.
    pub fn builtin() -> anyhow::Result<Self> {
        Self::from_bytes(
            &ModelBytes {
                config: builtin_files::CONFIG,
                weights: builtin_files::WEIGHTS,
                text_encoder: builtin_files::TEXT,
                fym: builtin_files::FYM,
            },
            "built-in model (models/base)",
        )
    }

    /// Builds a model from the bytes of its four files; `source` names it in errors. The
    /// parameters are frozen (inference and LoRA tuning); see [`BaseModel::make_trainable`].
    pub fn from_bytes(files: &ModelBytes, source: &str) -> anyhow::Result<Self> {
        let config_text = std::str::from_utf8(files.config)
            .with_context(|| format!("{source}/{CONFIG_FILE}: not UTF-8"))?;
        let config = WanConfig::from_json_str(config_text, format!("{source}/{CONFIG_FILE}"))?;

        let fym: Value = serde_json::from_slice(files.fym)
            .with_context(|| format!("{source}/{FYM_FILE}: not valid JSON"))?;
        if fym["format"] != FORMAT {
            anyhow::bail!(
                "{source}/{FYM_FILE}: format is {}, expected {FORMAT:?}",
                fym["format"]
            );
        }
        let dim = |k: &str| {
            fym["spec"][k]
                .as_u64()
                .map(|v| v as usize)
                .with_context(|| format!("{source}/{FYM_FILE}: spec.{k} missing or not an integer"))
        };
        let spec = ClipSpec {
            frames: dim("frames")?,
            height: dim("height")?,
            width: dim("width")?,
        };
        check_spec(&config, &spec).with_context(|| format!("{source}/{FYM_FILE}"))?;

        let (weights, _) = read_safetensors(files.weights, &format!("{source}/{WEIGHTS_FILE}"))?;
        let wan = WanModel::from_tensors(config.clone(), weights, false)?;

        let text_name = format!("{source}/{TEXT_ENCODER_FILE}");
        let (tensors, meta) = read_safetensors(files.text_encoder, &text_name)?;
        let vocab: Vec<String> = serde_json::from_str(
            meta.get("vocab")
                .with_context(|| format!("{text_name}: no `vocab` in the metadata"))?,
        )
        .with_context(|| format!("{text_name}: `vocab` is not a JSON list of words"))?;
        let text =
            TextEncoder::from_tensors(vocab, tensors, false).with_context(|| text_name.clone())?;
        if text.text_dim() != config.text_dim {
            anyhow::bail!(
                "{text_name}: embeddings are {} wide, the transformer's text_dim is {}",
                text.text_dim(),
                config.text_dim
            );
        }
        Ok(BaseModel {
            wan,
            text,
            spec,
            card: fym["card"].clone(),
        })
    }

    /// Writes the model folder with f32 weights (creating the folder).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        self.save_as(dir, StoreDtype::F32)
    }

    /// Writes the model folder with the given weight storage.
    pub fn save_as(&self, dir: &Path, dtype: StoreDtype) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create model folder {}", dir.display()))?;
        write_atomic(&dir.join(CONFIG_FILE), self.wan.config.to_json().as_bytes())?;

        let weights: BTreeMap<String, (Vec<usize>, Vec<f32>)> = self
            .wan
            .params()
            .iter()
            .map(|(n, t)| (n.clone(), (t.shape().to_vec(), t.to_vec())))
            .collect();
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        write_atomic(
            &dir.join(WEIGHTS_FILE),
            &safetensors_bytes(&weights, &meta, dtype)?,
        )?;

        let text: BTreeMap<String, (Vec<usize>, Vec<f32>)> = self
            .text
            .named_tensors()
            .into_iter()
            .map(|(name, t)| (name, (t.shape().to_vec(), t.to_vec())))
            .collect();
        let meta = BTreeMap::from([
            (
                "vocab".to_string(),
                serde_json::to_string(&self.text.vocab)?,
            ),
            ("max_len".to_string(), self.text.max_len.to_string()),
        ]);
        write_atomic(
            &dir.join(TEXT_ENCODER_FILE),
            &safetensors_bytes(&text, &meta, dtype)?,
        )?;

        let fym = json!({
            "format": FORMAT,
            "spec": {"frames": self.spec.frames, "height": self.spec.height, "width": self.spec.width},
            "card": self.card,
        });
        write_atomic(
            &dir.join(FYM_FILE),
            serde_json::to_string_pretty(&fym)?.as_bytes(),
        )?;
        Ok(())
    }

    /// Turns every parameter (Wan and text encoder) into a trainable leaf with the same values.
    pub fn make_trainable(self) -> anyhow::Result<Self> {
        let tensors = self
            .wan
            .params()
            .iter()
            .map(|(n, t)| (n.clone(), (t.shape().to_vec(), t.to_vec())))
            .collect();
        let wan = WanModel::from_tensors(self.wan.config.clone(), tensors, true)?;
        let text = self.text.into_trainable();
        Ok(BaseModel {
            wan,
            text,
            spec: self.spec,
            card: self.card,
        })
    }
}

/// f32 → bf16 with round-to-nearest-even (NaN kept quiet).
pub fn f32_to_bf16_bits(v: f32) -> u16 {
    let bits = v.to_bits();
    if v.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    ((bits + round) >> 16) as u16
}

/// Serialises named tensors to safetensors bytes in the given dtype.
pub fn safetensors_bytes(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: &BTreeMap<String, String>,
    dtype: StoreDtype,
) -> anyhow::Result<Vec<u8>> {
    let encoded: Vec<(&String, &Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, d))| {
            let bytes = match dtype {
                StoreDtype::F32 => d.iter().flat_map(|v| v.to_le_bytes()).collect(),
                StoreDtype::Bf16 => d
                    .iter()
                    .flat_map(|&v| f32_to_bf16_bits(v).to_le_bytes())
                    .collect(),
            };
            (n, s, bytes)
        })
        .collect();
    let st_dtype = match dtype {
        StoreDtype::F32 => Dtype::F32,
        StoreDtype::Bf16 => Dtype::BF16,
    };
    let mut views = Vec::with_capacity(encoded.len());
    for (n, s, b) in &encoded {
        let view = TensorView::new(st_dtype, s.to_vec(), b)
            .map_err(|e| anyhow::anyhow!("safetensors: tensor {n}: {e:?}"))?;
        views.push((n.to_string(), view));
    }
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    safetensors::tensor::serialize(views, &Some(meta))
        .map_err(|e| anyhow::anyhow!("safetensors: cannot serialize: {e:?}"))
}

/// Named f32 tensors (converted from F32 or BF16) and the metadata of safetensors bytes.
#[allow(clippy::type_complexity)]
pub fn read_safetensors(
    bytes: &[u8],
    source: &str,
) -> anyhow::Result<(
    BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    BTreeMap<String, String>,
)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{source}: not a valid safetensors file: {e:?}"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("{source}: corrupt safetensors header: {e:?}"))?;
    let meta = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::BF16 => view
                .data()
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            other => anyhow::bail!("{source}: tensor {name} is {other:?}; only F32 and BF16 load"),
        };
        out.insert(name, (view.shape().to_vec(), data));
    }
    Ok((out, meta))
}
