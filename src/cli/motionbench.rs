//! `fym motionbench`: list the MotionBench-synth cases or export their reference clips, ground truth
//! and prompts.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use crate::motionbench::export::{case_json, export, parse_size, ExportOptions};
use crate::motionbench::{cases, Case};

#[derive(Args, Debug)]
pub struct MotionbenchArgs {
    #[command(subcommand)]
    pub command: MotionbenchCommand,
}

#[derive(Subcommand, Debug)]
pub enum MotionbenchCommand {
    /// Print every case: id, category, reference caption and target prompts.
    List(ListArgs),
    /// Render every case and write DIR/<id>/{reference.gif, reference.y4m, truth.json, prompts.json}
    /// and DIR/index.json.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Frame size as HEIGHTxWIDTH.
    #[arg(long, default_value = "32x32")]
    pub size: String,
    /// Frames per clip.
    #[arg(long, default_value_t = 16)]
    pub frames: usize,
    /// Export only the cases whose id starts with this (e.g. "camera" or "human-02").
    #[arg(long)]
    pub only: Option<String>,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(args: MotionbenchArgs) -> Result<()> {
    match args.command {
        MotionbenchCommand::List(list) => run_list(&list),
        MotionbenchCommand::Export(export) => run_export(&export),
    }
}

fn run_list(args: &ListArgs) -> Result<()> {
    let all = cases();
    if args.json {
        let value = serde_json::Value::Array(all.iter().map(case_json).collect());
        println!(
            "{}",
            serde_json::to_string_pretty(&value).context("encode the case list")?
        );
        return Ok(());
    }
    for case in &all {
        println!(
            "{}  [{}]  {}",
            case.id,
            case.category.description(),
            case.caption
        );
        for prompt in &case.prompts {
            println!("    -> {prompt}");
        }
    }
    Ok(())
}

fn run_export(args: &ExportArgs) -> Result<()> {
    let (height, width) = parse_size(&args.size)?;
    let options = ExportOptions {
        frames: args.frames,
        height,
        width,
    };
    let prefix = args.only.as_deref().unwrap_or("");
    let selected: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.id.starts_with(prefix))
        .collect();
    if selected.is_empty() {
        anyhow::bail!("motionbench export --only {prefix:?}: no case id starts with it (see `fym motionbench list`)");
    }
    let dirs = export(&args.out, &selected, options)?;
    if !args.quiet {
        eprintln!(
            "wrote {} cases ({} frames of {}x{}) to {}",
            dirs.len(),
            options.frames,
            height,
            width,
            args.out.display()
        );
    }
    Ok(())
}
