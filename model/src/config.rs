//! `WanConfig`: the hyper-parameters of diffusers' `WanTransformer3DModel`, read from and written
//! to the same `config.json` that `save_pretrained` produces, so real Wan2.1 checkpoints load
//! unchanged. Only the text-to-video variant is supported (no image branch).

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// config.json key of [`WanConfig::frame_embed_len`] (diffusers ignores unknown keys).
pub const FRAME_EMBED_KEY: &str = "fym_frame_embed_len";
/// Parameter name of the per-latent-frame embedding.
pub const FRAME_EMBED_PARAM: &str = "fym_frame_embedding.weight";

/// The file name diffusers uses inside a model folder.
pub const CONFIG_FILE: &str = "config.json";

/// Hyper-parameters of a Wan text-to-video transformer (WAN_ARCH.md §0).
#[derive(Clone, Debug, PartialEq)]
pub struct WanConfig {
    /// (pt, ph, pw): the 3-D patch of the patch-embedding Conv3d.
    pub patch_size: [usize; 3],
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    pub in_channels: usize,
    /// Already resolved: `null` in the file means `in_channels`.
    pub out_channels: usize,
    pub text_dim: usize,
    pub freq_dim: usize,
    pub ffn_dim: usize,
    pub num_layers: usize,
    /// Affine LayerNorm before cross-attention (else identity, and no `norm2` parameters).
    pub cross_attn_norm: bool,
    /// Stored for round trips only: diffusers always builds RMSNorm across heads for q and k.
    pub qk_norm: Option<String>,
    /// eps of every LayerNorm and q/k RMSNorm. Kept as f64 so it writes back exactly (`1e-6`).
    pub eps: f64,
    pub rope_max_seq_len: usize,
    /// fym's one addition to diffusers' Wan, off (0) for every real Wan checkpoint: a learned
    /// embedding per latent frame (`fym_frame_embedding.weight`, `[len, dim]`), added to the patch
    /// embeddings at each frame's temporal position (interpolated at fractional positions). RoPE
    /// alone is relative, so from pure noise a small model cannot tell the first latent frame
    /// from the last and cannot place where a motion starts. `fym_frame_embed_len` in config.json.
    pub frame_embed_len: usize,
}

impl WanConfig {
    /// The "dev" configuration of the test fixtures (2 layers, 2 heads × 16).
    pub fn dev() -> Self {
        WanConfig {
            patch_size: [1, 2, 2],
            num_attention_heads: 2,
            attention_head_dim: 16,
            in_channels: 4,
            out_channels: 4,
            text_dim: 32,
            freq_dim: 32,
            ffn_dim: 64,
            num_layers: 2,
            cross_attn_norm: true,
            qk_norm: Some("rms_norm_across_heads".to_string()),
            eps: 1e-6,
            rope_max_seq_len: 1024,
            frame_embed_len: 0,
        }
    }

    /// Wan2.1-T2V-1.3B.
    pub fn wan21_t2v_1_3b() -> Self {
        WanConfig {
            patch_size: [1, 2, 2],
            num_attention_heads: 12,
            attention_head_dim: 128,
            in_channels: 16,
            out_channels: 16,
            text_dim: 4096,
            freq_dim: 256,
            ffn_dim: 8960,
            num_layers: 30,
            cross_attn_norm: true,
            qk_norm: Some("rms_norm_across_heads".to_string()),
            eps: 1e-6,
            rope_max_seq_len: 1024,
            frame_embed_len: 0,
        }
    }

    /// Model width: heads × head dim.
    pub fn dim(&self) -> usize {
        self.num_attention_heads * self.attention_head_dim
    }

    /// Values per token at the output: `out_channels · pt · ph · pw`.
    pub fn patch_out_features(&self) -> usize {
        self.out_channels * self.patch_size.iter().product::<usize>()
    }

    /// Reads `config.json` from a model folder, or the given file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file: PathBuf = if path.is_dir() {
            path.join(CONFIG_FILE)
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        Self::from_json_str(&text, &file)
    }

    /// Parses the text of a diffusers `config.json`; `source` names the file in errors.
    ///
    /// Size keys are required (diffusers' defaults are those of the 14B model, which would
    /// silently build the wrong network); behaviour keys default as in diffusers:
    /// `cross_attn_norm` true, `qk_norm` "rms_norm_across_heads", `eps` 1e-6,
    /// `rope_max_seq_len` 1024, `out_channels` = `in_channels`. Unknown keys are ignored.
    pub fn from_json_str(text: &str, source: impl AsRef<Path>) -> Result<Self> {
        let source = source.as_ref();
        let value: Value = serde_json::from_str(text)
            .map_err(|e| Error::config(source, format!("not valid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| Error::config(source, "top level is not a JSON object"))?;
        let reader = KeyReader { obj, source };

        for key in ["image_dim", "added_kv_proj_dim", "pos_embed_seq_len"] {
            if reader.present(key) {
                return Err(Error::config(
                    source,
                    format!(
                        "`{key}` is set ({}): I2V not supported (fym implements the text-to-video \
                         Wan transformer only)",
                        obj[key]
                    ),
                ));
            }
        }

        let patch = reader.required("patch_size")?;
        let patch_size = parse_patch_size(patch).ok_or_else(|| {
            Error::config(
                source,
                format!("`patch_size` must be a list of 3 positive integers, got {patch}"),
            )
        })?;
        let in_channels = reader.usize_required("in_channels")?;
        let out_channels = reader
            .usize_optional("out_channels")?
            .unwrap_or(in_channels);
        let qk_norm = match obj.get("qk_norm") {
            None => Some("rms_norm_across_heads".to_string()),
            Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(Error::config(
                    source,
                    format!("`qk_norm` must be a string or null, got {other}"),
                ))
            }
        };
        let eps = match obj.get("eps") {
            None | Some(Value::Null) => 1e-6,
            Some(v) => v
                .as_f64()
                .ok_or_else(|| Error::config(source, format!("`eps` must be a number, got {v}")))?,
        };
        let cross_attn_norm = match obj.get("cross_attn_norm") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::config(
                    source,
                    format!("`cross_attn_norm` must be true or false, got {other}"),
                ))
            }
        };

        let cfg = WanConfig {
            patch_size,
            num_attention_heads: reader.usize_required("num_attention_heads")?,
            attention_head_dim: reader.usize_required("attention_head_dim")?,
            in_channels,
            out_channels,
            text_dim: reader.usize_required("text_dim")?,
            freq_dim: reader.usize_required("freq_dim")?,
            ffn_dim: reader.usize_required("ffn_dim")?,
            num_layers: reader.usize_required("num_layers")?,
            cross_attn_norm,
            qk_norm,
            eps,
            rope_max_seq_len: reader.usize_optional("rope_max_seq_len")?.unwrap_or(1024),
            frame_embed_len: reader.usize_optional(FRAME_EMBED_KEY)?.unwrap_or(0),
        };
        cfg.validate().map_err(|msg| Error::config(source, msg))?;
        Ok(cfg)
    }

    /// Checks the sizes the network needs; the message names the key.
    fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("num_attention_heads", self.num_attention_heads),
            ("attention_head_dim", self.attention_head_dim),
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("text_dim", self.text_dim),
            ("freq_dim", self.freq_dim),
            ("ffn_dim", self.ffn_dim),
            ("num_layers", self.num_layers),
            ("rope_max_seq_len", self.rope_max_seq_len),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("`{key}` must be positive, got 0"));
            }
        }
        // RoPE rotates pairs, and each of the t/h/w parts must be even (diffusers asserts it).
        if !self.attention_head_dim.is_multiple_of(2) {
            return Err(format!(
                "`attention_head_dim` must be even for the 3-D RoPE, got {}",
                self.attention_head_dim
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(format!(
                "`eps` must be a positive finite number, got {}",
                self.eps
            ));
        }
        Ok(())
    }

    /// Every parameter of the model, name and shape, in the order of WAN_ARCH.md §10
    /// (the order of diffusers' `named_parameters()`).
    pub fn expected_parameters(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.dim();
        let [pt, ph, pw] = self.patch_size;
        let mut p: Vec<(String, Vec<usize>)> = Vec::new();
        let mut push = |name: String, shape: Vec<usize>| p.push((name, shape));

        push(
            "patch_embedding.weight".into(),
            vec![d, self.in_channels, pt, ph, pw],
        );
        push("patch_embedding.bias".into(), vec![d]);
        if self.frame_embed_len > 0 {
            push(FRAME_EMBED_PARAM.into(), vec![self.frame_embed_len, d]);
        }
        let linear =
            |push: &mut dyn FnMut(String, Vec<usize>), name: &str, out: usize, inp: usize| {
                push(format!("{name}.weight"), vec![out, inp]);
                push(format!("{name}.bias"), vec![out]);
            };
        linear(
            &mut push,
            "condition_embedder.time_embedder.linear_1",
            d,
            self.freq_dim,
        );
        linear(&mut push, "condition_embedder.time_embedder.linear_2", d, d);
        linear(&mut push, "condition_embedder.time_proj", 6 * d, d);
        linear(
            &mut push,
            "condition_embedder.text_embedder.linear_1",
            d,
            self.text_dim,
        );
        linear(&mut push, "condition_embedder.text_embedder.linear_2", d, d);

        for n in 0..self.num_layers {
            let b = format!("blocks.{n}");
            push(format!("{b}.scale_shift_table"), vec![1, 6, d]);
            for attn in ["attn1", "attn2"] {
                if attn == "attn2" && self.cross_attn_norm {
                    push(format!("{b}.norm2.weight"), vec![d]);
                    push(format!("{b}.norm2.bias"), vec![d]);
                }
                for target in ["to_q", "to_k", "to_v", "to_out.0"] {
                    linear(&mut push, &format!("{b}.{attn}.{target}"), d, d);
                }
                push(format!("{b}.{attn}.norm_q.weight"), vec![d]);
                push(format!("{b}.{attn}.norm_k.weight"), vec![d]);
            }
            linear(&mut push, &format!("{b}.ffn.net.0.proj"), self.ffn_dim, d);
            linear(&mut push, &format!("{b}.ffn.net.2"), d, self.ffn_dim);
        }
        push("scale_shift_table".into(), vec![1, 2, d]);
        linear(&mut push, "proj_out", self.patch_out_features(), d);
        p
    }

    /// The config as diffusers' `config.json` (keys sorted, as `save_pretrained` writes them).
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        m.insert("_class_name".into(), Value::from("WanTransformer3DModel"));
        m.insert("_diffusers_version".into(), Value::from("0.42.1"));
        m.insert("added_kv_proj_dim".into(), Value::Null);
        m.insert(
            "attention_head_dim".into(),
            Value::from(self.attention_head_dim),
        );
        m.insert("cross_attn_norm".into(), Value::from(self.cross_attn_norm));
        m.insert("eps".into(), Value::from(self.eps));
        m.insert("ffn_dim".into(), Value::from(self.ffn_dim));
        m.insert("freq_dim".into(), Value::from(self.freq_dim));
        m.insert("image_dim".into(), Value::Null);
        m.insert("in_channels".into(), Value::from(self.in_channels));
        m.insert(
            "num_attention_heads".into(),
            Value::from(self.num_attention_heads),
        );
        m.insert("num_layers".into(), Value::from(self.num_layers));
        m.insert("out_channels".into(), Value::from(self.out_channels));
        m.insert("patch_size".into(), Value::from(self.patch_size.to_vec()));
        m.insert("pos_embed_seq_len".into(), Value::Null);
        m.insert(
            "qk_norm".into(),
            self.qk_norm.clone().map_or(Value::Null, Value::from),
        );
        m.insert(
            "rope_max_seq_len".into(),
            Value::from(self.rope_max_seq_len),
        );
        m.insert("text_dim".into(), Value::from(self.text_dim));
        if self.frame_embed_len > 0 {
            m.insert(FRAME_EMBED_KEY.into(), Value::from(self.frame_embed_len));
        }
        let mut text = serde_json::to_string_pretty(&Value::Object(m)).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Writes `config.json` into `dir` atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        crate::weights::write_atomic(&dir.as_ref().join(CONFIG_FILE), self.to_json().as_bytes())
    }
}

/// Typed access to the keys of one config object, with errors naming key and file.
struct KeyReader<'a> {
    obj: &'a Map<String, Value>,
    source: &'a Path,
}

impl KeyReader<'_> {
    fn present(&self, key: &str) -> bool {
        self.obj.get(key).is_some_and(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&Value> {
        match self.obj.get(key) {
            Some(v) if !v.is_null() => Ok(v),
            _ => Err(Error::config(
                self.source,
                format!("missing required key `{key}`"),
            )),
        }
    }

    fn usize_required(&self, key: &str) -> Result<usize> {
        let v = self.required(key)?;
        as_usize(v).ok_or_else(|| {
            Error::config(
                self.source,
                format!("`{key}` must be a non-negative integer, got {v}"),
            )
        })
    }

    fn usize_optional(&self, key: &str) -> Result<Option<usize>> {
        if !self.present(key) {
            return Ok(None);
        }
        self.usize_required(key).map(Some)
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    v.as_u64().and_then(|u| usize::try_from(u).ok())
}

fn parse_patch_size(v: &Value) -> Option<[usize; 3]> {
    let arr = v.as_array()?;
    if arr.len() != 3 {
        return None;
    }
    let mut out = [0usize; 3];
    for (o, x) in out.iter_mut().zip(arr) {
        *o = as_usize(x).filter(|&p| p > 0)?;
    }
    Some(out)
}
