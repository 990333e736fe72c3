//! `fym metrics`: scores a generated video against its reference (motion fidelity, temporal
//! consistency and, for prompts in the synthetic world's vocabulary, text alignment and leakage).

use std::path::PathBuf;

use anyhow::Context;

use crate::metrics::evaluate;
use crate::video::{fit, read_video, Video};

/// Longest side the videos are scored at: tracking and dense flow cost grow with the pixel count,
/// and the metrics do not need more detail than this.
const MAX_SIDE: usize = 256;

#[derive(clap::Args, Debug)]
pub struct MetricsArgs {
    /// Reference video (Y4M, GIF or a folder of PNG frames).
    #[arg(long)]
    pub reference: PathBuf,
    /// Generated video (Y4M, GIF or a folder of PNG frames).
    #[arg(long)]
    pub generated: PathBuf,
    /// The prompt the generated video was made from; enables text alignment and leakage when it
    /// names a colour, shape or background of the synthetic world.
    #[arg(long)]
    pub prompt: Option<String>,
    /// The reference video's caption: its first-named colour picks the object whose path is
    /// compared (the prompt's picks the generated one); without it, the reference's main object.
    #[arg(long)]
    pub reference_caption: Option<String>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The common size two videos are scored at: the shorter clip's frame count, and the smaller
/// frame's height and width scaled down so that the longer side is at most [`MAX_SIDE`].
pub fn common_shape(a: &Video, b: &Video) -> (usize, usize, usize) {
    let frames = a.frames.min(b.frames);
    let (h, w) = if a.height * a.width <= b.height * b.width {
        (a.height, a.width)
    } else {
        (b.height, b.width)
    };
    let longest = h.max(w).max(1);
    if longest <= MAX_SIDE {
        (frames, h, w)
    } else {
        let scale = MAX_SIDE as f64 / longest as f64;
        let shrink = |n: usize| ((n as f64 * scale).round() as usize).max(1);
        (frames, shrink(h), shrink(w))
    }
}

pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let reference = read_video(&args.reference)
        .with_context(|| format!("reading --reference {}", args.reference.display()))?;
    let generated = read_video(&args.generated)
        .with_context(|| format!("reading --generated {}", args.generated.display()))?;
    let (frames, height, width) = common_shape(&reference, &generated);
    if frames < 2 {
        anyhow::bail!(
            "fym metrics needs at least 2 frames in each video: --reference has {}, --generated has {}",
            reference.frames,
            generated.frames
        );
    }
    let reference = fit(&reference, frames, height, width);
    let generated = fit(&generated, frames, height, width);
    let report = evaluate(
        &reference,
        &generated,
        args.prompt.as_deref(),
        args.reference_caption.as_deref(),
    )?;
    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("scored at {frames} frames of {width}x{height}");
        println!("{}", report.to_text());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_shape_takes_the_smaller_clip_and_caps_the_side() {
        let a = Video::new(10, 48, 64);
        let b = Video::new(8, 96, 128);
        assert_eq!(common_shape(&a, &b), (8, 48, 64));
        let big = Video::new(5, 480, 832);
        assert_eq!(common_shape(&big, &big), (5, 148, 256));
    }
}
