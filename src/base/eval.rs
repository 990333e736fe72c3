//! The base model's quality gate: on the held-out captions with fixed seeds, is the generated
//! subject one coherent object, does it have the caption's colour and shape, does it move in the
//! caption's direction; and how the self-attention heads divide into spatial and temporal ones.

use fym_model::flow::fill_standard_normal;
use fym_model::ForwardOptions;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::data::{Attributes, World};
use super::{BaseModel, SampleOptions};
use crate::metrics::appearance::{measure_appearance, shape_by_fill};
use crate::metrics::segment::{largest_component_fraction, main_object_track, BackgroundHint};
use crate::metrics::trajectory::{motion_direction, Direction as PathDirection};
use crate::video::Video;
use crate::world::{caption, Direction};

/// Share of the object's pixels its largest connected component must hold.
pub const COHERENT_FRACTION: f32 = 0.8;
/// Net displacement (fraction of the frame width) below which an object counts as not moving.
pub const MIN_TRAVEL: f32 = 0.1;
/// Thresholds of the gate.
pub const GATE_COHERENT: f64 = 0.8;
pub const GATE_CAPTION: f64 = 0.9;
pub const GATE_DIRECTION: f64 = 0.7;

/// How one generated clip scores.
#[derive(Clone, Debug, PartialEq)]
pub struct ClipScore {
    pub component_fraction: f32,
    pub coherent: bool,
    pub color: Option<&'static str>,
    pub shape: Option<&'static str>,
    pub color_match: bool,
    pub shape_match: bool,
    /// The shape by the earlier fill measure ([`shape_by_fill`]), reported beside the gate's.
    pub shape_by_fill: Option<&'static str>,
    pub shape_by_fill_match: bool,
    pub caption_match: bool,
    pub direction: &'static str,
    pub direction_match: bool,
}

fn path_direction_name(d: Direction) -> &'static str {
    d.name()
}

/// Scores a clip against the attributes its caption asked for (background known to be black).
pub fn score_clip(video: &Video, asked: &Attributes) -> ClipScore {
    let hint = BackgroundHint::Color([0.0, 0.0, 0.0]);
    let component_fraction = largest_component_fraction(video, &hint);
    let look = measure_appearance(video, &hint);
    let path = main_object_track(video, &hint);
    let moved = motion_direction(&path.centers, MIN_TRAVEL * video.width as f32);
    let direction = match moved {
        PathDirection::Left => "left",
        PathDirection::Right => "right",
        PathDirection::Up => "up",
        PathDirection::Down => "down",
        PathDirection::Static => "static",
    };
    let color = look.color;
    let shape = look.shape.map(|s| s.name());
    let color_match = color == Some(asked.color.name());
    let shape_match = shape == Some(asked.shape.name());
    let by_fill = shape_by_fill(video, &hint).map(|s| s.name());
    ClipScore {
        shape_by_fill: by_fill,
        shape_by_fill_match: by_fill == Some(asked.shape.name()),
        component_fraction,
        coherent: component_fraction >= COHERENT_FRACTION,
        color,
        shape,
        color_match,
        shape_match,
        caption_match: color_match && shape_match,
        direction,
        direction_match: direction == path_direction_name(asked.direction),
    }
}

/// One self-attention head's average attention mass and cosine similarity to the spatial
/// (same frame) and temporal (same position, other frames) masks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadStats {
    pub cos_spatial: f32,
    pub cos_temporal: f32,
    pub mass_spatial: f32,
    pub mass_temporal: f32,
}

impl HeadStats {
    /// Clearly spatial: its attention resembles the spatial mask (cosine ≥ 0.7) at least twice as
    /// much as the temporal one. (Uniform attention over S tokens scores √(|M|/S) for a mask of
    /// |M| keys per query: 1/√F for the spatial mask, √((F−1)/(F·H·W)) for the temporal one.)
    pub fn clearly_spatial(&self) -> bool {
        self.cos_spatial >= 0.7 && self.cos_spatial >= 2.0 * self.cos_temporal
    }

    pub fn clearly_temporal(&self) -> bool {
        self.cos_temporal >= 0.7 && self.cos_temporal >= 2.0 * self.cos_spatial
    }

    /// The paper's rule (temporal iff S_s < 1.25·S_t), which labels every head one or the other.
    pub fn paper_label(&self) -> fym_model::heads::HeadKind {
        fym_model::heads::ClassificationRule::paper().label(&fym_model::heads::HeadScores {
            cos_spatial: self.cos_spatial,
            cos_temporal: self.cos_temporal,
            mass_spatial: self.mass_spatial,
            mass_temporal: self.mass_temporal,
        })
    }

    pub fn label(&self) -> &'static str {
        if self.clearly_spatial() {
            "spatial"
        } else if self.clearly_temporal() {
            "temporal"
        } else {
            "mixed"
        }
    }
}

/// Attention statistics of every head of every layer, averaged over the given clips noised to
/// `sigma` (fixed seed) with their captions. `[layer][head]`. The same streaming statistics as
/// the transfer's head classification ([`fym_model::classify::head_scores`]: the temporal mask
/// is the same position in the *other* frames, as in the paper), so the gate reports the heads
/// the pipeline would see.
pub fn head_stats(
    model: &BaseModel,
    clips: &[(String, Video)],
    sigma: f32,
    seed: u64,
) -> anyhow::Result<Vec<Vec<HeadStats>>> {
    let c = &model.wan.config;
    let mut sums = vec![vec![[0.0f64; 4]; c.num_attention_heads]; c.num_layers];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let timestep = [fym_model::flow::sigma_to_timestep(sigma)];
    for (text, video) in clips {
        let x0 = model.video_to_tensor(video)?.to_vec();
        let mut noise = vec![0.0f32; x0.len()];
        fill_standard_normal(&mut rng, &mut noise);
        let xs = fym_model::flow::add_noise(&x0, &noise, sigma)?;
        let x = fym_autograd::Tensor::from_vec(
            xs,
            &[1, 3, model.spec.frames, model.spec.height, model.spec.width],
        )?
        .to_device(model.device())?;
        let emb = model.text.encode(&[text.as_str()])?;
        let scores = fym_model::classify::head_scores(
            &model.wan,
            &x,
            &timestep,
            &emb,
            &ForwardOptions::default(),
        )?;
        for (layer_sums, layer) in sums.iter_mut().zip(&scores) {
            for (acc, h) in layer_sums.iter_mut().zip(layer) {
                let values = [
                    h.cos_spatial,
                    h.cos_temporal,
                    h.mass_spatial,
                    h.mass_temporal,
                ];
                for (a, v) in acc.iter_mut().zip(values) {
                    *a += v as f64;
                }
            }
        }
    }
    let n = clips.len().max(1) as f64;
    Ok(sums
        .into_iter()
        .map(|layer| {
            layer
                .into_iter()
                .map(|v| HeadStats {
                    cos_spatial: (v[0] / n) as f32,
                    cos_temporal: (v[1] / n) as f32,
                    mass_spatial: (v[2] / n) as f32,
                    mass_temporal: (v[3] / n) as f32,
                })
                .collect()
        })
        .collect())
}

/// The gate's result.
#[derive(Clone, Debug)]
pub struct GateReport {
    pub captions: Vec<String>,
    pub scores: Vec<ClipScore>,
    pub heads: Vec<Vec<HeadStats>>,
    pub options: SampleOptions,
    pub seconds: f64,
}

impl GateReport {
    fn fraction(&self, f: impl Fn(&ClipScore) -> bool) -> f64 {
        self.scores.iter().filter(|s| f(s)).count() as f64 / self.scores.len().max(1) as f64
    }
    pub fn coherent(&self) -> f64 {
        self.fraction(|s| s.coherent)
    }
    pub fn caption_match(&self) -> f64 {
        self.fraction(|s| s.caption_match)
    }
    pub fn direction(&self) -> f64 {
        self.fraction(|s| s.direction_match)
    }
    pub fn spatial_heads(&self) -> usize {
        self.heads
            .iter()
            .flatten()
            .filter(|h| h.clearly_spatial())
            .count()
    }
    pub fn temporal_heads(&self) -> usize {
        self.heads
            .iter()
            .flatten()
            .filter(|h| h.clearly_temporal())
            .count()
    }
    pub fn passed(&self) -> bool {
        self.coherent() >= GATE_COHERENT
            && self.caption_match() >= GATE_CAPTION
            && self.direction() >= GATE_DIRECTION
            && self.spatial_heads() > 0
            && self.temporal_heads() > 0
    }

    pub fn to_json(&self, verbose: bool) -> Value {
        let sampler = match self.options.sampler {
            super::Sampler::Euler => json!({"kind": "euler"}),
            super::Sampler::Stochastic { eta } => json!({"kind": "stochastic", "eta": eta}),
        };
        let mut v = json!({
            "coherent": self.coherent(),
            "caption_match": self.caption_match(),
            "color_match": self.fraction(|s| s.color_match),
            "shape_match": self.fraction(|s| s.shape_match),
            "shape_match_by_fill": self.fraction(|s| s.shape_by_fill_match),
            "direction": self.direction(),
            "spatial_heads": self.spatial_heads(),
            "temporal_heads": self.temporal_heads(),
            "total_heads": self.heads.iter().map(Vec::len).sum::<usize>(),
            "paper_rule_temporal_heads": self.heads.iter().flatten()
                .filter(|h| h.paper_label() == fym_model::heads::HeadKind::Temporal).count(),
            "passed": self.passed(),
            "samples": self.scores.len(),
            "thresholds": {"coherent": GATE_COHERENT, "caption_match": GATE_CAPTION, "direction": GATE_DIRECTION},
            "sampling": {"seed": self.options.seed, "steps": self.options.steps, "cfg": self.options.cfg,
                         "shift": self.options.shift, "sampler": sampler},
            "heads": self.heads.iter().map(|layer| layer.iter().map(|h| h.label()).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "seconds": self.seconds,
        });
        if verbose {
            v["clips"] = self
                .captions
                .iter()
                .zip(&self.scores)
                .map(|(c, s)| {
                    json!({"caption": c, "component_fraction": s.component_fraction, "color": s.color,
                           "shape": s.shape, "shape_by_fill": s.shape_by_fill, "direction": s.direction, "coherent": s.coherent,
                           "caption_match": s.caption_match, "direction_match": s.direction_match})
                })
                .collect();
            v["head_stats"] = self
                .heads
                .iter()
                .map(|layer| {
                    layer
                        .iter()
                        .map(|h| {
                            json!([
                                h.cos_spatial,
                                h.cos_temporal,
                                h.mass_spatial,
                                h.mass_temporal
                            ])
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
        }
        v
    }
}

/// The held-out captions of the gate and the attributes each asks for.
pub fn gate_captions(world: &World) -> Vec<(String, Attributes)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    world
        .held_out()
        .into_iter()
        .map(|a| (caption(&world.scene(a, &mut rng)), a))
        .collect()
}

/// Runs the gate: one sample per held-out caption (seed `options.seed + i`), scored; head
/// statistics on rendered clips of the same captions at σ = 0.5.
pub fn run_gate(
    model: &BaseModel,
    world: &World,
    options: &SampleOptions,
    batch: usize,
) -> anyhow::Result<GateReport> {
    let start = std::time::Instant::now();
    let cases = gate_captions(world);
    let mut scores = Vec::with_capacity(cases.len());
    for (chunk_index, chunk) in cases.chunks(batch.max(1)).enumerate() {
        let prompts: Vec<&str> = chunk.iter().map(|(c, _)| c.as_str()).collect();
        let opts = SampleOptions {
            seed: options.seed + (chunk_index * batch.max(1)) as u64,
            ..*options
        };
        let clips = model.sample_batch(&prompts, &opts)?;
        for (video, (_, asked)) in clips.iter().zip(chunk) {
            scores.push(score_clip(video, asked));
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let reference: Vec<(String, Video)> = cases
        .iter()
        .take(8)
        .map(|(c, a)| {
            let scene = world.scene(*a, &mut rng);
            let (v, _) = crate::world::render(
                &scene,
                model.spec.frames,
                model.spec.height,
                model.spec.width,
            );
            (c.clone(), v)
        })
        .collect();
    let heads = head_stats(model, &reference, 0.5, 7)?;
    Ok(GateReport {
        captions: cases.into_iter().map(|(c, _)| c).collect(),
        scores,
        heads,
        options: *options,
        seconds: start.elapsed().as_secs_f64(),
    })
}
