//! Writing the suite to disk: per case a reference clip (GIF and Y4M), its ground truth and its
//! prompts, plus an index. Every file is written atomically (temp file in the same folder, then
//! rename), so an interrupted export never leaves a half-written file under its final name.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::Case;
use crate::video::{Chroma, Video};
use crate::world::truth::rounded_all;
use crate::world::{render, Scene};

/// Size of the exported clips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExportOptions {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl Default for ExportOptions {
    /// The size the built-in model works at: 16 frames of 32×32.
    fn default() -> Self {
        ExportOptions {
            frames: 16,
            height: 32,
            width: 32,
        }
    }
}

impl ExportOptions {
    /// Checks the size is renderable and not absurd.
    pub fn validate(&self) -> Result<()> {
        if self.frames == 0 || self.height == 0 || self.width == 0 {
            bail!("motionbench export: frames, height and width must be positive (got {} frames of {}x{})", self.frames, self.height, self.width);
        }
        if self.height > 4096 || self.width > 4096 || self.frames > 1024 {
            bail!(
                "motionbench export: {} frames of {}x{} is too large (at most 1024 frames of 4096x4096)",
                self.frames,
                self.height,
                self.width
            );
        }
        Ok(())
    }
}

/// Parses "HxW" (e.g. "32x32", "48x80") into (height, width).
pub fn parse_size(text: &str) -> Result<(usize, usize)> {
    let (h, w) = text
        .split_once(['x', 'X'])
        .with_context(|| format!("--size {text:?}: expected HEIGHTxWIDTH, e.g. 32x32"))?;
    let parse = |s: &str, what: &str| -> Result<usize> {
        let v: usize = s
            .trim()
            .parse()
            .with_context(|| format!("--size {text:?}: {what} {s:?} is not a whole number"))?;
        if v == 0 {
            bail!("--size {text:?}: {what} must be positive");
        }
        Ok(v)
    };
    Ok((parse(h, "height")?, parse(w, "width")?))
}

/// Describes the subjects and background a scene shows (what a target prompt asks for).
pub fn scene_json(scene: &Scene) -> Value {
    json!({
        "caption": crate::world::caption(scene),
        "background": scene.background.texture.name(),
        "hills": scene.background.hills.is_some(),
        "objects": scene.objects.iter().map(|o| json!({
            "shape": o.shape.name(),
            "color": o.color.name(),
            "rgb": rounded_all(o.color.rgb()),
        })).collect::<Vec<_>>(),
        "figure": scene.figure.as_ref().map(|f| json!({
            "action": f.action.verb(),
            "color": f.color.name(),
            "rgb": rounded_all(f.color.rgb()),
        })),
    })
}

/// A case's id, category, caption and prompts, with what each target shows.
pub fn case_json(case: &Case) -> Value {
    json!({
        "id": case.id,
        "category": case.category.name(),
        "category_description": case.category.description(),
        "caption": case.caption,
        "prompts": case.prompts,
        "targets": case.targets.iter().map(scene_json).collect::<Vec<_>>(),
    })
}

/// Writes `bytes` to `path` through a temp file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        bail!("write {}: not a file path", path.display());
    }
    fym_autograd::write_atomic(path, bytes).with_context(|| format!("write {}", path.display()))
}

fn write_json(path: &Path, value: &Value, pretty: bool) -> Result<()> {
    let encoded = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let mut text = encoded.with_context(|| format!("encode {}", path.display()))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Frame rate written into the clips.
pub const FPS: f32 = 8.0;

/// Writes the reference clip of one case: a GIF to look at and a lossless (4:4:4) Y4M to measure.
fn write_clip(dir: &Path, video: &Video) -> Result<()> {
    let gif = dir.join("reference.gif");
    crate::video::write_gif(&gif, video, FPS)
        .with_context(|| format!("write {}", gif.display()))?;
    let y4m = dir.join("reference.y4m");
    crate::video::write_y4m(&y4m, video, Chroma::C444, FPS)
        .with_context(|| format!("write {}", y4m.display()))?;
    Ok(())
}

/// Renders and writes every case under `out`, then `out/index.json`. Returns the case folders.
pub fn export(out: &Path, cases: &[Case], options: ExportOptions) -> Result<Vec<PathBuf>> {
    options.validate()?;
    fs::create_dir_all(out).with_context(|| format!("create output folder {}", out.display()))?;
    let mut dirs = Vec::with_capacity(cases.len());
    let mut index = Vec::with_capacity(cases.len());
    for case in cases {
        let dir = out.join(&case.id);
        fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let (video, truth) = render(&case.scene, options.frames, options.height, options.width);
        write_clip(&dir, &video)?;
        let mut truth_json = truth.to_json(&case.scene);
        truth_json["id"] = json!(case.id);
        // Per-frame truth is long: one line keeps it a tenth of the pretty size.
        write_json(&dir.join("truth.json"), &truth_json, false)?;
        write_json(&dir.join("prompts.json"), &case_json(case), true)?;
        let mut entry = case_json(case);
        entry["dir"] = json!(case.id);
        entry["reference_gif"] = json!(format!("{}/reference.gif", case.id));
        entry["reference_y4m"] = json!(format!("{}/reference.y4m", case.id));
        entry["truth"] = json!(format!("{}/truth.json", case.id));
        entry["prompts_file"] = json!(format!("{}/prompts.json", case.id));
        index.push(entry);
        dirs.push(dir);
    }
    write_json(
        &out.join("index.json"),
        &json!({
            "suite": "motionbench-synth",
            "frames": options.frames,
            "height": options.height,
            "width": options.width,
            "fps": FPS,
            "cases": index,
        }),
        true,
    )?;
    Ok(dirs)
}
