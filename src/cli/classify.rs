//! `fym classify`: stage 1 alone — label every self-attention head spatial or temporal from the
//! frozen model's attention on a reference video, and write the labels as JSON.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use fym_model::heads::ClassificationRule;

use super::check_device;
use super::transfer::{load_model, read_reference};
use crate::pipeline::classify::{head_scores, label_heads, ClassifyOptions};

#[derive(Args, Debug)]
pub struct ClassifyArgs {
    /// Reference video (GIF, Y4M or a folder of PNG frames).
    #[arg(long)]
    pub video: PathBuf,
    /// What the reference shows, in the model's words.
    #[arg(long)]
    pub caption: String,
    /// Output JSON file.
    #[arg(long, default_value = "heads.json")]
    pub out: PathBuf,
    /// paper (cosine, alpha 1.25) or released (attention mass, ratio 1.3).
    #[arg(long, default_value = "paper")]
    pub rule: String,
    /// Noise level of the reference clip.
    #[arg(long, default_value_t = 0.9)]
    pub sigma: f32,
    /// Label by the rule alone (no "both kinds in every layer" safeguard).
    #[arg(long)]
    pub rule_only: bool,
    /// Seed of the noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Model: "builtin", a model folder, or random:SEED.
    #[arg(long, default_value = "builtin")]
    pub model: String,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

pub fn run(args: ClassifyArgs) -> Result<()> {
    let device = check_device(&args.device)?;
    let rule = match args.rule.as_str() {
        "paper" => ClassificationRule::paper(),
        "released" => ClassificationRule::released_code(),
        other => bail!("--rule {other:?}: choose paper or released"),
    };
    if !(0.0..=1.0).contains(&args.sigma) {
        bail!("--sigma must be in [0, 1], got {}", args.sigma);
    }
    if !args.video.exists() {
        bail!("reference video {} does not exist", args.video.display());
    }
    let model = load_model(&args.model, device)?;
    model.check_prompt("--caption", &args.caption)?;
    let reference = read_reference(&args.video, &model)?;
    let clip = model.video_to_tensor(&reference)?;
    let scores = head_scores(&model, &clip, &args.caption, args.sigma, args.seed)?;
    let options = ClassifyOptions {
        rule,
        sigma: args.sigma,
        both_kinds_per_layer: !args.rule_only,
    };
    let (labels, relabelled) = label_heads(&scores, &options)?;
    labels.save(&args.out)?;
    let (s, t) = labels.counts();
    eprintln!(
        "{s} spatial, {t} temporal heads ({} relabelled so every layer has both); wrote {}",
        relabelled.len(),
        args.out.display()
    );
    Ok(())
}
