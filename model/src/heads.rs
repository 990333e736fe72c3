//! Stage 1 of Follow-Your-Motion: labelling every self-attention head of every layer as spatial
//! or temporal from how its attention map resembles the two pseudo masks, and storing the labels
//! (with the scores behind them) as JSON.
//!
//! The scores themselves come from the streaming attention-statistics kernel; this file only
//! applies the decision rule and handles the file format.

use std::path::Path;

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// Per-head similarity of the attention map to the spatial (same frame) and temporal (same
/// position, other frames) pseudo masks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadScores {
    /// Cosine similarity S_s between the attention map and the spatial mask (paper).
    pub cos_spatial: f32,
    /// Cosine similarity S_t between the attention map and the temporal mask (paper).
    pub cos_temporal: f32,
    /// Attention mass w_s inside the spatial mask (released code).
    pub mass_spatial: f32,
    /// Attention mass w_t inside the temporal mask (released code).
    pub mass_temporal: f32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HeadKind {
    Spatial,
    Temporal,
}

impl HeadKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HeadKind::Spatial => "spatial",
            HeadKind::Temporal => "temporal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "spatial" => Some(HeadKind::Spatial),
            "temporal" => Some(HeadKind::Temporal),
            _ => None,
        }
    }
}

/// The decision rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClassificationRule {
    /// Paper: temporal iff `S_s < alpha · S_t` (alpha = 1.25).
    Cosine { alpha: f32 },
    /// Released code: temporal iff `w_t ≥ ratio · w_s` (ratio = 1.3).
    Mass { ratio: f32 },
}

impl ClassificationRule {
    pub fn paper() -> Self {
        ClassificationRule::Cosine { alpha: 1.25 }
    }

    pub fn released_code() -> Self {
        ClassificationRule::Mass { ratio: 1.3 }
    }

    pub fn label(&self, s: &HeadScores) -> HeadKind {
        let temporal = match *self {
            ClassificationRule::Cosine { alpha } => s.cos_spatial < alpha * s.cos_temporal,
            ClassificationRule::Mass { ratio } => s.mass_temporal >= ratio * s.mass_spatial,
        };
        if temporal {
            HeadKind::Temporal
        } else {
            HeadKind::Spatial
        }
    }

    /// The two scores the rule reads, for validation messages.
    fn inputs(&self, s: &HeadScores) -> [(&'static str, f32); 2] {
        match self {
            ClassificationRule::Cosine { .. } => [
                ("cos_spatial", s.cos_spatial),
                ("cos_temporal", s.cos_temporal),
            ],
            ClassificationRule::Mass { .. } => [
                ("mass_spatial", s.mass_spatial),
                ("mass_temporal", s.mass_temporal),
            ],
        }
    }

    fn to_json(self) -> Value {
        match self {
            ClassificationRule::Cosine { alpha } => json!({"kind": "cosine", "alpha": num(alpha)}),
            ClassificationRule::Mass { ratio } => json!({"kind": "mass", "ratio": num(ratio)}),
        }
    }
}

/// One head's scores and label.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadEntry {
    pub scores: HeadScores,
    pub kind: HeadKind,
}

/// Labels of every head of every layer, with the rule that produced them.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadLabels {
    pub rule: ClassificationRule,
    /// `layers[layer][head]`.
    pub layers: Vec<Vec<HeadEntry>>,
}

const FORMAT: &str = "fym-head-labels";

impl HeadLabels {
    /// Applies `rule` to `scores[layer][head]`. Scores the rule reads must be finite.
    pub fn classify(scores: &[Vec<HeadScores>], rule: ClassificationRule) -> Result<Self> {
        let threshold = match rule {
            ClassificationRule::Cosine { alpha } => alpha,
            ClassificationRule::Mass { ratio } => ratio,
        };
        if !threshold.is_finite() {
            return Err(Error::heads(
                "<scores>",
                format!("rule threshold must be finite, got {threshold}"),
            ));
        }
        let mut layers = Vec::with_capacity(scores.len());
        for (l, heads) in scores.iter().enumerate() {
            let mut row = Vec::with_capacity(heads.len());
            for (h, s) in heads.iter().enumerate() {
                for (name, v) in rule.inputs(s) {
                    if !v.is_finite() {
                        return Err(Error::heads(
                            "<scores>",
                            format!("layer {l} head {h}: {name} is {v}"),
                        ));
                    }
                }
                row.push(HeadEntry {
                    scores: *s,
                    kind: rule.label(s),
                });
            }
            layers.push(row);
        }
        Ok(HeadLabels { rule, layers })
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Errors unless there are `num_layers` layers of `num_heads` heads each (the model's shape).
    pub fn check_shape(&self, num_layers: usize, num_heads: usize) -> Result<()> {
        if self.layers.len() != num_layers {
            return Err(Error::heads(
                "<labels>",
                format!(
                    "labels cover {} layers, the model has {num_layers}",
                    self.layers.len()
                ),
            ));
        }
        if let Some((l, row)) = self
            .layers
            .iter()
            .enumerate()
            .find(|(_, r)| r.len() != num_heads)
        {
            return Err(Error::heads(
                "<labels>",
                format!(
                    "layer {l} has labels for {} heads, the model has {num_heads}",
                    row.len()
                ),
            ));
        }
        Ok(())
    }

    pub fn label(&self, layer: usize, head: usize) -> Result<HeadKind> {
        self.layer(layer)?
            .get(head)
            .map(|e| e.kind)
            .ok_or_else(|| Error::heads("<labels>", format!("layer {layer} has no head {head}")))
    }

    /// The heads of `layer` with label `kind`, ascending.
    pub fn heads_of(&self, kind: HeadKind, layer: usize) -> Result<Vec<usize>> {
        Ok(self
            .layer(layer)?
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == kind)
            .map(|(h, _)| h)
            .collect())
    }

    /// (spatial, temporal) head counts over all layers.
    pub fn counts(&self) -> (usize, usize) {
        let temporal = self
            .layers
            .iter()
            .flatten()
            .filter(|e| e.kind == HeadKind::Temporal)
            .count();
        let total: usize = self.layers.iter().map(Vec::len).sum();
        (total - temporal, temporal)
    }

    fn layer(&self, layer: usize) -> Result<&Vec<HeadEntry>> {
        self.layers.get(layer).ok_or_else(|| {
            Error::heads(
                "<labels>",
                format!(
                    "no layer {layer} (labels cover {} layers)",
                    self.layers.len()
                ),
            )
        })
    }

    /// JSON: the rule, then per layer, per head: label and the four scores.
    pub fn to_json(&self) -> String {
        let layers: Vec<Value> = self
            .layers
            .iter()
            .enumerate()
            .map(|(l, heads)| {
                let heads: Vec<Value> = heads
                    .iter()
                    .enumerate()
                    .map(|(h, e)| {
                        json!({
                            "head": h,
                            "label": e.kind.as_str(),
                            "cos_spatial": num(e.scores.cos_spatial),
                            "cos_temporal": num(e.scores.cos_temporal),
                            "mass_spatial": num(e.scores.mass_spatial),
                            "mass_temporal": num(e.scores.mass_temporal),
                        })
                    })
                    .collect();
                json!({"layer": l, "heads": heads})
            })
            .collect();
        let doc =
            json!({"format": FORMAT, "version": 1, "rule": self.rule.to_json(), "layers": layers});
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Parses [`HeadLabels::to_json`] output; `source` names the file in errors. The stored labels
    /// are kept as written (they are the record of what was trained), not recomputed.
    pub fn from_json(text: &str, source: impl AsRef<Path>) -> Result<Self> {
        let src = source.as_ref();
        let err = |msg: String| Error::heads(src, msg);
        let doc: Value =
            serde_json::from_str(text).map_err(|e| err(format!("not valid JSON: {e}")))?;
        if doc.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(err(format!("`format` must be \"{FORMAT}\"")));
        }
        let rule_v = doc
            .get("rule")
            .ok_or_else(|| err("missing `rule`".into()))?;
        let rule = match rule_v.get("kind").and_then(Value::as_str) {
            Some("cosine") => ClassificationRule::Cosine {
                alpha: get_f32(rule_v, "alpha", "rule").map_err(err)?,
            },
            Some("mass") => ClassificationRule::Mass {
                ratio: get_f32(rule_v, "ratio", "rule").map_err(err)?,
            },
            other => {
                return Err(err(format!(
                    "`rule.kind` must be \"cosine\" or \"mass\", got {other:?}"
                )))
            }
        };
        let layers_v = doc
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| err("missing `layers` list".into()))?;
        let mut layers = Vec::with_capacity(layers_v.len());
        for (l, layer_v) in layers_v.iter().enumerate() {
            let at = format!("layers[{l}]");
            if layer_v.get("layer").and_then(Value::as_u64) != Some(l as u64) {
                return Err(err(format!("{at}: `layer` must be {l}")));
            }
            let heads_v = layer_v
                .get("heads")
                .and_then(Value::as_array)
                .ok_or_else(|| err(format!("{at}: missing `heads` list")))?;
            let mut row = Vec::with_capacity(heads_v.len());
            for (h, hv) in heads_v.iter().enumerate() {
                let at = format!("{at}.heads[{h}]");
                if hv.get("head").and_then(Value::as_u64) != Some(h as u64) {
                    return Err(err(format!("{at}: `head` must be {h}")));
                }
                let kind = hv
                    .get("label")
                    .and_then(Value::as_str)
                    .and_then(HeadKind::parse)
                    .ok_or_else(|| {
                        err(format!("{at}: `label` must be \"spatial\" or \"temporal\""))
                    })?;
                let scores = HeadScores {
                    cos_spatial: get_f32(hv, "cos_spatial", &at).map_err(err)?,
                    cos_temporal: get_f32(hv, "cos_temporal", &at).map_err(err)?,
                    mass_spatial: get_f32(hv, "mass_spatial", &at).map_err(err)?,
                    mass_temporal: get_f32(hv, "mass_temporal", &at).map_err(err)?,
                };
                row.push(HeadEntry { scores, kind });
            }
            layers.push(row);
        }
        Ok(HeadLabels { rule, layers })
    }

    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::weights::write_atomic(path.as_ref(), self.to_json().as_bytes())
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json(&text, path)
    }
}

/// An f32 as a JSON number with its shortest decimal form (0.3, not 0.30000001192092896); it
/// parses back to the same f32. Non-finite values (not representable in JSON) become null.
fn num(v: f32) -> Value {
    format!("{v}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn get_f32(obj: &Value, key: &str, at: &str) -> std::result::Result<f32, String> {
    match obj.get(key) {
        Some(Value::Number(n)) => n
            .as_f64()
            .map(|v| v as f32)
            .ok_or_else(|| format!("{at}: `{key}` is not a number")),
        Some(Value::Null) => Ok(f32::NAN),
        Some(other) => Err(format!("{at}: `{key}` must be a number, got {other}")),
        None => Err(format!("{at}: missing `{key}`")),
    }
}
