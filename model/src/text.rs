//! The built-in model's word-level text encoder: a learned embedding per vocabulary word plus a
//! learned embedding per position (so "a red circle on a blue background" and "a blue circle on
//! a red background" differ), optionally followed by pre-norm transformer layers (self-attention
//! over the caption, then an MLP), which let a word's embedding take in its neighbours' — a shape
//! word its colour, for one. Real Wan instead reads UMT5 embeddings from a file.

use std::collections::BTreeMap;

use fym_autograd::{MaskMode, ParamSet, Tensor};

use crate::{Error, Result};

/// Token 0 pads captions to the fixed length; the empty caption (all padding) is the
/// unconditional input of classifier-free guidance.
pub const PAD: &str = "<pad>";

/// Width of one attention head of the text layers (`text_dim / TEXT_HEAD_DIM` heads).
pub const TEXT_HEAD_DIM: usize = 16;

/// The MLP of a text layer is this many times `text_dim` wide.
const TEXT_MLP_RATIO: usize = 4;

const LAYER_NORM_EPS: f32 = 1e-5;

/// Stored names of the word and position embeddings.
const TOKENS: &str = "text_encoder.tokens";
const POSITIONS: &str = "text_encoder.positions";

/// The tensors of one text layer, by their name after `text_encoder.layers.{i}.`, with their
/// shapes for `text_dim` d.
fn layer_tensor_shapes(d: usize) -> [(&'static str, Vec<usize>); 16] {
    let m = TEXT_MLP_RATIO * d;
    [
        ("norm1.weight", vec![d]),
        ("norm1.bias", vec![d]),
        ("attn.to_q.weight", vec![d, d]),
        ("attn.to_q.bias", vec![d]),
        ("attn.to_k.weight", vec![d, d]),
        ("attn.to_k.bias", vec![d]),
        ("attn.to_v.weight", vec![d, d]),
        ("attn.to_v.bias", vec![d]),
        ("attn.to_out.weight", vec![d, d]),
        ("attn.to_out.bias", vec![d]),
        ("norm2.weight", vec![d]),
        ("norm2.bias", vec![d]),
        ("mlp.fc1.weight", vec![m, d]),
        ("mlp.fc1.bias", vec![m]),
        ("mlp.fc2.weight", vec![d, m]),
        ("mlp.fc2.bias", vec![d]),
    ]
}

/// Layers split `text_dim` into heads of [`TEXT_HEAD_DIM`].
fn check_layer_width(d: usize) -> Result<()> {
    if d.is_multiple_of(TEXT_HEAD_DIM) {
        return Ok(());
    }
    Err(Error::shape(
        "text encoder",
        format!("text_dim {d} is not a multiple of the layers' head width {TEXT_HEAD_DIM}"),
    ))
}

fn layer_prefix(i: usize) -> String {
    format!("text_encoder.layers.{i}.")
}

/// The words of `caption` as the encoder reads them, one token each: split on whitespace,
/// punctuation trimmed (hyphens kept), lower-cased, empty ones dropped.
pub fn caption_words(caption: &str) -> impl Iterator<Item = String> + '_ {
    caption
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
}

pub struct TextEncoder {
    pub vocab: Vec<String>,
    pub max_len: usize,
    /// `[vocab, text_dim]`.
    pub tokens: Tensor,
    /// `[max_len, text_dim]`.
    pub positions: Tensor,
    /// Transformer layers after the embeddings; none for the plain word-and-position encoder.
    pub layers: Vec<TextLayer>,
}

/// One pre-norm transformer layer of the text encoder: its tensors by name within the layer
/// (`norm1.weight`, `attn.to_q.weight`, …; see [`layer_tensor_shapes`]).
pub struct TextLayer {
    pub tensors: BTreeMap<&'static str, Tensor>,
}

impl TextLayer {
    fn p(&self, name: &str) -> Result<&Tensor> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::shape("text encoder", format!("text layer has no {name}")))
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        Ok(x.linear(
            self.p(&format!("{name}.weight"))?,
            Some(self.p(&format!("{name}.bias"))?),
        )?)
    }

    fn norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        Ok(x.layer_norm(
            Some(self.p(&format!("{name}.weight"))?),
            Some(self.p(&format!("{name}.bias"))?),
            LAYER_NORM_EPS,
        )?)
    }

    /// `x + attn(norm1(x))`, then `+ mlp(norm2(x))` (GELU), over every position, padding
    /// included (the empty caption is all padding and still has one fixed encoding).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.norm(x, "norm1")?;
        let (q, k, v) = (
            self.linear(&h, "attn.to_q")?,
            self.linear(&h, "attn.to_k")?,
            self.linear(&h, "attn.to_v")?,
        );
        let heads = x.dim(-1) / TEXT_HEAD_DIM;
        let a = q.attention(&k, &v, heads, MaskMode::Full, x.dim(1))?;
        let x = x.add(&self.linear(&a, "attn.to_out")?)?;
        let h = self.norm(&x, "norm2")?;
        let m = self.linear(&self.linear(&h, "mlp.fc1")?.gelu()?, "mlp.fc2")?;
        Ok(x.add(&m)?)
    }
}

impl TextEncoder {
    /// A fresh encoder over `words` (PAD is added as id 0), N(0, 1) embeddings, no layers.
    pub fn new_random(
        words: &[&str],
        max_len: usize,
        text_dim: usize,
        rng: &mut impl rand::Rng,
        trainable: bool,
    ) -> Result<Self> {
        let mut vocab = vec![PAD.to_string()];
        vocab.extend(words.iter().filter(|w| **w != PAD).map(|w| w.to_string()));
        let make = |n: usize, rng: &mut dyn rand::RngCore| -> Result<Tensor> {
            let data = (0..n * text_dim)
                .map(|_| fym_autograd::init::standard_normal(rng))
                .collect();
            make_tensor(data, &[n, text_dim], trainable)
        };
        let tokens = make(vocab.len(), rng)?;
        let positions = make(max_len, rng)?;
        Ok(TextEncoder {
            vocab,
            max_len,
            tokens,
            positions,
            layers: Vec::new(),
        })
    }

    /// An encoder from stored tensors: `text_encoder.tokens`, `text_encoder.positions` and the
    /// layers' `text_encoder.layers.{i}.…` (consecutive from 0, each complete). Anything missing,
    /// misshapen or unknown is an error naming the tensor.
    pub fn from_tensors(
        vocab: Vec<String>,
        mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
        trainable: bool,
    ) -> Result<Self> {
        let take = |tensors: &mut BTreeMap<String, (Vec<usize>, Vec<f32>)>, name: &str| {
            tensors
                .remove(name)
                .ok_or_else(|| Error::shape("text encoder", format!("no tensor {name}")))
        };
        let (tok_shape, tok) = take(&mut tensors, TOKENS)?;
        let (pos_shape, pos) = take(&mut tensors, POSITIONS)?;
        if tok_shape.len() != 2 || tok_shape[0] != vocab.len() || pos_shape.len() != 2 {
            return Err(Error::shape(
                "text encoder",
                format!(
                    "tokens {tok_shape:?} / positions {pos_shape:?} do not fit {} words",
                    vocab.len()
                ),
            ));
        }
        let d = tok_shape[1];
        if pos_shape[1] != d {
            return Err(Error::shape(
                "text encoder",
                format!("positions {pos_shape:?} for tokens {tok_shape:?}"),
            ));
        }
        let mut layers = Vec::new();
        while tensors.contains_key(&format!("{}norm1.weight", layer_prefix(layers.len()))) {
            let prefix = layer_prefix(layers.len());
            let mut layer = BTreeMap::new();
            for (name, shape) in layer_tensor_shapes(d) {
                let full = format!("{prefix}{name}");
                let (s, data) = take(&mut tensors, &full)?;
                if s != shape {
                    return Err(Error::shape(
                        "text encoder",
                        format!("{full} is {s:?}, expected {shape:?} for text_dim {d}"),
                    ));
                }
                layer.insert(name, make_tensor(data, &s, trainable)?);
            }
            layers.push(TextLayer { tensors: layer });
        }
        if let Some(name) = tensors.keys().next() {
            return Err(Error::shape(
                "text encoder",
                format!("unexpected tensor {name} (layers must be numbered from 0, each complete)"),
            ));
        }
        if !layers.is_empty() {
            check_layer_width(d)?;
        }
        Ok(TextEncoder {
            vocab,
            max_len: pos_shape[0],
            tokens: make_tensor(tok, &tok_shape, trainable)?,
            positions: make_tensor(pos, &pos_shape, trainable)?,
            layers,
        })
    }

    /// Appends `count` transformer layers that leave the encoding unchanged until trained: their
    /// attention output and second MLP projection start at zero, so each layer adds nothing
    /// (the way a continued run switches them on). Other weights start as PyTorch's `Linear`
    /// does (uniform within 1/√fan_in), the norms at weight 1 and bias 0.
    pub fn add_layers(
        &mut self,
        count: usize,
        rng: &mut impl rand::Rng,
        trainable: bool,
    ) -> Result<()> {
        let d = self.text_dim();
        if count > 0 {
            check_layer_width(d)?;
        }
        let device = self.tokens.device();
        for _ in 0..count {
            let mut layer = BTreeMap::new();
            for (name, shape) in layer_tensor_shapes(d) {
                let n: usize = shape.iter().product();
                let data = if name.starts_with("norm") {
                    vec![if name.ends_with("weight") { 1.0 } else { 0.0 }; n]
                } else if name.starts_with("attn.to_out") || name.starts_with("mlp.fc2") {
                    vec![0.0; n]
                } else {
                    // Every weight drawn here reads text_dim values (fc2, which reads the MLP's
                    // width, starts at zero above).
                    fym_autograd::init::uniform_vec(rng, n, 1.0 / (d as f32).sqrt())
                };
                layer.insert(
                    name,
                    make_tensor(data, &shape, trainable)?.to_device(device)?,
                );
            }
            self.layers.push(TextLayer { tensors: layer });
        }
        Ok(())
    }

    pub fn text_dim(&self) -> usize {
        self.tokens.dim(1)
    }

    /// Word ids of `caption` (its [`caption_words`]), padded to `max_len`. Unknown words or a
    /// caption longer than `max_len` are errors that list the vocabulary.
    pub fn tokenize(&self, caption: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(self.max_len);
        for word in caption_words(caption) {
            match self.vocab.iter().position(|v| *v == word) {
                Some(i) => ids.push(i as u32),
                None => {
                    return Err(Error::shape(
                        "text encoder",
                        format!(
                        "unknown word {word:?} in prompt {caption:?}; the built-in model knows: {}",
                        self.vocab[1..].join(" ")
                    ),
                    ))
                }
            }
        }
        if ids.len() > self.max_len {
            return Err(Error::shape(
                "text encoder",
                format!(
                    "prompt {caption:?} has {} words; at most {} fit",
                    ids.len(),
                    self.max_len
                ),
            ));
        }
        ids.resize(self.max_len, 0);
        Ok(ids)
    }

    /// `[B, max_len, text_dim]` embeddings for a batch of captions.
    pub fn encode(&self, captions: &[&str]) -> Result<Tensor> {
        let mut ids = Vec::with_capacity(captions.len() * self.max_len);
        for c in captions {
            ids.extend(self.tokenize(c)?);
        }
        let d = self.text_dim();
        let tok = self
            .tokens
            .embedding(&ids)?
            .reshape(&[captions.len(), self.max_len, d])?;
        let mut x = tok.add(&self.positions)?;
        for layer in &self.layers {
            x = layer.forward(&x)?;
        }
        Ok(x)
    }

    /// Every tensor by its stored name: the embeddings, then each layer's.
    pub fn named_tensors(&self) -> Vec<(String, &Tensor)> {
        let mut out = vec![
            (TOKENS.to_string(), &self.tokens),
            (POSITIONS.to_string(), &self.positions),
        ];
        for (i, layer) in self.layers.iter().enumerate() {
            let prefix = layer_prefix(i);
            out.extend(
                layer
                    .tensors
                    .iter()
                    .map(|(n, t)| (format!("{prefix}{n}"), t)),
            );
        }
        out
    }

    /// Moves the embeddings and layers to `device` (trainable ones stay trainable, as new tensors).
    pub fn to_device(&mut self, device: fym_autograd::Device) -> Result<()> {
        self.tokens = self.tokens.to_device(device)?;
        self.positions = self.positions.to_device(device)?;
        for layer in &mut self.layers {
            for t in layer.tensors.values_mut() {
                *t = t.to_device(device)?;
            }
        }
        Ok(())
    }

    /// The same encoder with every tensor a trainable copy.
    pub fn into_trainable(self) -> Self {
        TextEncoder {
            tokens: self.tokens.to_param(),
            positions: self.positions.to_param(),
            layers: self
                .layers
                .into_iter()
                .map(|l| TextLayer {
                    tensors: l.tensors.iter().map(|(n, t)| (*n, t.to_param())).collect(),
                })
                .collect(),
            ..self
        }
    }

    /// Trainable tensors, named as stored in the model file.
    pub fn params(&self) -> ParamSet {
        let mut set = ParamSet::new();
        for (name, t) in self.named_tensors() {
            if t.is_param() {
                set.push(name, t.clone());
            }
        }
        set
    }
}

fn make_tensor(data: Vec<f32>, shape: &[usize], trainable: bool) -> Result<Tensor> {
    Ok(if trainable {
        Tensor::param(data, shape)?
    } else {
        Tensor::from_vec(data, shape)?
    })
}
