//! The built-in model's word-level text encoder: a learned embedding per vocabulary word plus a
//! learned embedding per position (so "a red circle on a blue background" and "a blue circle on
//! a red background" differ). Real Wan instead reads UMT5 embeddings from a file.

use fym_autograd::{ParamSet, Tensor};

use crate::{Error, Result};

/// Token 0 pads captions to the fixed length; the empty caption (all padding) is the
/// unconditional input of classifier-free guidance.
pub const PAD: &str = "<pad>";

pub struct TextEncoder {
    pub vocab: Vec<String>,
    pub max_len: usize,
    /// `[vocab, text_dim]`.
    pub tokens: Tensor,
    /// `[max_len, text_dim]`.
    pub positions: Tensor,
}

impl TextEncoder {
    /// A fresh encoder over `words` (PAD is added as id 0), N(0, 1) embeddings.
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
            Ok(if trainable {
                Tensor::param(data, &[n, text_dim])?
            } else {
                Tensor::from_vec(data, &[n, text_dim])?
            })
        };
        let tokens = make(vocab.len(), rng)?;
        let positions = make(max_len, rng)?;
        Ok(TextEncoder {
            vocab,
            max_len,
            tokens,
            positions,
        })
    }

    pub fn text_dim(&self) -> usize {
        self.tokens.dim(1)
    }

    /// Word ids of `caption` (lower-cased, split on whitespace), padded to `max_len`. Unknown words
    /// or a caption longer than `max_len` are errors that list the vocabulary.
    pub fn tokenize(&self, caption: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(self.max_len);
        for word in caption
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-'))
        {
            let word = word.to_lowercase();
            if word.is_empty() {
                continue;
            }
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
        Ok(tok.add(&self.positions)?)
    }

    /// Moves the embedding tables to `device` (trainable ones stay trainable, as new tensors).
    pub fn to_device(&mut self, device: fym_autograd::Device) -> Result<()> {
        self.tokens = self.tokens.to_device(device)?;
        self.positions = self.positions.to_device(device)?;
        Ok(())
    }

    /// Trainable tensors, named as stored in the model file.
    pub fn params(&self) -> ParamSet {
        let mut set = ParamSet::new();
        for (name, t) in [
            ("text_encoder.tokens", &self.tokens),
            ("text_encoder.positions", &self.positions),
        ] {
            if t.is_param() {
                set.push(name, t.clone());
            }
        }
        set
    }
}
