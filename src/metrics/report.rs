//! All metrics of a (reference, generated) pair in one report, as JSON or text.

use serde_json::{json, Value};

use super::appearance::{leakage, measure_appearance, text_alignment, Appearance, CategoryScores};
use super::consistency::{flow_warp_error, temporal_consistency};
use super::motion_fidelity::motion_fidelity;
use super::segment::{object_track, BackgroundHint, ObjectPath};
use super::trajectory::{path_spread, trajectory_correlation, trajectory_error, STILL_SPREAD_PX};
use super::vocabulary::{parse_prompt, PromptAttributes};
use super::MetricsError;
use crate::video::Video;
use crate::world::Color;

/// Scores that need the synthetic world's vocabulary (a prompt naming a colour, shape or background).
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticScores {
    pub prompt: PromptAttributes,
    pub reference: Appearance,
    pub generated: Appearance,
    pub alignment: CategoryScores,
    pub leakage: CategoryScores,
    /// Mean distance (px) between the main-object centroid paths of the two videos.
    pub trajectory_error_px: f32,
    /// Pearson correlation of the two centroid paths as 2-D point series, in [−1, 1].
    pub trajectory_correlation: f32,
    /// The compared paths: the object the reference caption names first in the reference, and
    /// the one the prompt names first in the generated video (each its video's main object
    /// where its text names no colour).
    pub reference_path: ObjectPath,
    pub generated_path: ObjectPath,
}

/// The metrics of one generated video against its reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// DMT motion fidelity of the grid tracks, [0, 1].
    pub motion_fidelity: f64,
    /// Consecutive-frame similarity of the generated video, [0, 1].
    pub temporal_consistency: f32,
    /// Flow-warp error of the generated video, intensity units [0, 1].
    pub flow_warp_error: f32,
    /// Present when the prompt names something of the synthetic world.
    pub synthetic: Option<SyntheticScores>,
}

/// Scores `generated` against `reference` (same frames, height and width); `prompt` is the
/// generation prompt, used for text alignment and leakage when it names synthetic-world words.
/// The object paths compared are those of the object each text names first — the reference's
/// `reference_caption` and the `prompt` — known by its colour (a target prompt recolours the
/// objects but keeps their order), or of each video's main object where a text names no colour.
pub fn evaluate(
    reference: &Video,
    generated: &Video,
    prompt: Option<&str>,
    reference_caption: Option<&str>,
) -> Result<Report, MetricsError> {
    let motion_fidelity = motion_fidelity(reference, generated)?;
    let synthetic = prompt
        .map(parse_prompt)
        .filter(PromptAttributes::any)
        .map(|prompt| {
            let hint = BackgroundHint::Border;
            let reference_appearance = measure_appearance(reference, &hint);
            let generated_appearance = measure_appearance(generated, &hint);
            let rgb = |attributes: &PromptAttributes| {
                attributes.color.and_then(Color::from_name).map(Color::rgb)
            };
            let reference_color = reference_caption.map(parse_prompt).as_ref().and_then(rgb);
            let reference_path = object_track(reference, &hint, reference_color);
            let generated_path = object_track(generated, &hint, rgb(&prompt));
            let (a, b) = (&reference_path.centers, &generated_path.centers);
            SyntheticScores {
                alignment: text_alignment(&generated_appearance, &prompt),
                leakage: leakage(&reference_appearance, &generated_appearance, &prompt),
                prompt,
                reference: reference_appearance,
                generated: generated_appearance,
                trajectory_error_px: trajectory_error(a, b),
                trajectory_correlation: trajectory_correlation(a, b),
                reference_path,
                generated_path,
            }
        });
    Ok(Report {
        motion_fidelity,
        temporal_consistency: temporal_consistency(generated),
        flow_warp_error: flow_warp_error(generated),
        synthetic,
    })
}

fn appearance_json(a: &Appearance) -> Value {
    json!({ "color": a.color, "shape": a.shape.map(|s| s.name()), "background": a.background.map(|t| t.name()) })
}

/// A compared path: centroid `[x, y]` per frame (pixels; a frame where the object was not found
/// holds the nearest frame's), which frames found it, and its spread (RMS distance from its mean;
/// below [`STILL_SPREAD_PX`] the path counts as still).
fn path_json(p: &ObjectPath) -> Value {
    let (spread, still) = spread_and_stillness(p);
    json!({
        "centers": p.centers,
        "found": p.found,
        "spread_px": spread,
        "still": still,
    })
}

fn spread_and_stillness(p: &ObjectPath) -> (f32, bool) {
    let spread = path_spread(&p.centers);
    (spread, spread < STILL_SPREAD_PX)
}

/// "still" or "moving" and the spread, for the text report.
fn path_text(p: &ObjectPath) -> String {
    let (spread, still) = spread_and_stillness(p);
    let kind = if still { "still" } else { "moving" };
    let points: Vec<String> = p
        .centers
        .iter()
        .zip(&p.found)
        .map(|(c, &found)| format!("({:.1},{:.1}){}", c[0], c[1], if found { "" } else { "?" }))
        .collect();
    format!("{kind}, spread {spread:.2} px: {}", points.join(" "))
}

fn categories_json(c: &CategoryScores) -> Value {
    json!({ "color": c.color, "shape": c.shape, "background": c.background })
}

impl Report {
    /// JSON object with `motion_fidelity`, `temporal_consistency`, `flow_warp_error` and, for
    /// synthetic prompts, `text_alignment`, `leakage` (null when the prompt asks for nothing that
    /// differs from the reference), `trajectory_error_px`, `trajectory_correlation` and the
    /// per-category details.
    pub fn to_json(&self) -> Value {
        let mut out = json!({
            "motion_fidelity": self.motion_fidelity,
            "temporal_consistency": self.temporal_consistency,
            "flow_warp_error": self.flow_warp_error,
        });
        if let (Some(s), Some(map)) = (&self.synthetic, out.as_object_mut()) {
            map.insert("text_alignment".into(), json!(s.alignment.mean()));
            map.insert("leakage".into(), json!(s.leakage.mean()));
            map.insert("trajectory_error_px".into(), json!(s.trajectory_error_px));
            map.insert(
                "trajectory_correlation".into(),
                json!(s.trajectory_correlation),
            );
            map.insert(
                "details".into(),
                json!({
                    "prompt": {
                        "color": s.prompt.color,
                        "shape": s.prompt.shape.map(|v| v.name()),
                        "background": s.prompt.background.map(|t| t.name()),
                    },
                    "reference": appearance_json(&s.reference),
                    "generated": appearance_json(&s.generated),
                    "alignment": categories_json(&s.alignment),
                    "leakage": categories_json(&s.leakage),
                    "paths": {
                        "reference": path_json(&s.reference_path),
                        "generated": path_json(&s.generated_path),
                    },
                }),
            );
        }
        out
    }

    /// Human-readable lines, one metric per line.
    pub fn to_text(&self) -> String {
        let mut lines = vec![
            format!("motion_fidelity       {:.4}", self.motion_fidelity),
            format!("temporal_consistency  {:.4}", self.temporal_consistency),
            format!("flow_warp_error       {:.4}", self.flow_warp_error),
        ];
        if let Some(s) = &self.synthetic {
            let opt = |v: Option<f32>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
            let name = |a: &Appearance| {
                format!(
                    "{} {} on {}",
                    a.color.unwrap_or("?"),
                    a.shape.map_or("?", |v| v.name()),
                    a.background.map_or("?", |t| t.name())
                )
            };
            lines.push(format!("text_alignment        {}", opt(s.alignment.mean())));
            lines.push(format!("leakage               {}", opt(s.leakage.mean())));
            lines.push(format!(
                "trajectory_error_px   {:.3}",
                s.trajectory_error_px
            ));
            lines.push(format!(
                "trajectory_correlation {:.4}",
                s.trajectory_correlation
            ));
            lines.push(format!(
                "reference path        {}",
                path_text(&s.reference_path)
            ));
            lines.push(format!(
                "generated path        {}",
                path_text(&s.generated_path)
            ));
            lines.push(format!("reference shows       {}", name(&s.reference)));
            lines.push(format!("generated shows       {}", name(&s.generated)));
        }
        lines.join("\n")
    }
}
