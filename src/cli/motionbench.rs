//! `fym motionbench`: list the MotionBench-synth cases, export their reference clips, ground truth
//! and prompts, run methods on them, and summarise runs.

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
    /// Tune and generate every case with each method; write DIR/report.md, DIR/report.json and a
    /// side-by-side GIF per case.
    Run(Box<RunArgs>),
    /// Pool the reports of several runs (e.g. one per seed): means per method and category, and
    /// each method's track correlation paired with a baseline's, with a 95 % bootstrap interval.
    Summary(SummaryArgs),
}

#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Folders written by `fym motionbench run` (each holds a report.json).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The method every other one is paired with.
    #[arg(long, default_value = "no-tuning")]
    pub baseline: String,
    /// Runs to pair each method with itself in (as many as RUNS, same order: e.g. the same seeds
    /// generated with other settings).
    #[arg(long, num_args = 1..)]
    pub against: Vec<PathBuf>,
    /// Print JSON instead of markdown tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Comma-separated methods (fym, naive-two-stage, single-lora, fym-no-sparse,
    /// fym-no-adaptive-rope, no-tuning).
    #[arg(long, default_value = "fym,no-tuning")]
    pub methods: String,
    /// Comma-separated categories (camera, single, multi, human); default: all four.
    #[arg(long)]
    pub category: Option<String>,
    /// At most this many cases per category.
    #[arg(long)]
    pub cases: Option<usize>,
    /// Only these cases: comma-separated ids (e.g. camera-08,human-07; `fym motionbench list`).
    #[arg(long)]
    pub case: Option<String>,
    /// At most this many target prompts per case (1 to 3).
    #[arg(long)]
    pub prompts: Option<usize>,
    /// Output folder; rerunning into it reuses finished tuning.
    #[arg(long, default_value = "motionbench-run")]
    pub out: PathBuf,
    /// Model: "builtin", a model folder, or random:SEED.
    #[arg(long, default_value = "builtin")]
    pub model: String,
    /// cpu or cuda.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Seed of tuning and generation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub tuning: crate::cli::transfer::TuningArgs,
    /// Print nothing but errors.
    #[arg(long)]
    pub quiet: bool,
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
        MotionbenchCommand::Run(run) => run_bench(&run),
        MotionbenchCommand::Summary(summary) => run_summary(&summary),
    }
}

fn run_summary(args: &SummaryArgs) -> Result<()> {
    use crate::pipeline::summary::{
        against_json, paired_markdown, read_rows, summary_json, summary_markdown,
    };
    let read_runs = |dirs: &[PathBuf]| {
        dirs.iter()
            .map(|d| read_rows(d))
            .collect::<Result<Vec<_>>>()
    };
    let runs = read_runs(&args.runs)?;
    let baseline = crate::pipeline::Method::parse(&args.baseline)?.name();
    let mut summary = summary_json(&runs, baseline);
    let mut text = summary_markdown(&summary);
    if !args.against.is_empty() {
        if args.against.len() != args.runs.len() {
            anyhow::bail!(
                "--against needs as many folders as runs ({}), got {}",
                args.runs.len(),
                args.against.len()
            );
        }
        let against = read_runs(&args.against)?;
        let paired = against_json(&runs, &against);
        text.push_str(&paired_markdown(&serde_json::json!({
            "baseline": "the same method in the --against runs",
            "paired": paired,
        })));
        summary["against"] = paired;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{text}");
    }
    Ok(())
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

fn run_bench(args: &RunArgs) -> Result<()> {
    use crate::motionbench::Category;
    use crate::pipeline::bench::{run_motionbench, BenchOptions};
    use crate::pipeline::Method;
    let device = crate::cli::check_device(&args.device)?;
    let methods = args
        .methods
        .split(',')
        .map(|m| Method::parse(m.trim()))
        .collect::<Result<Vec<_>>>()?;
    let categories = match &args.category {
        None => Category::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|c| {
                Category::ALL
                    .into_iter()
                    .find(|k| k.name() == c.trim())
                    .with_context(|| {
                        format!("--category {c:?}: choose camera, single, multi or human")
                    })
            })
            .collect::<Result<Vec<_>>>()?,
    };
    if args.prompts == Some(0) || args.cases == Some(0) {
        anyhow::bail!("--cases and --prompts must be at least 1");
    }
    let known = crate::motionbench::cases();
    let case_ids: Vec<String> = match &args.case {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|id| {
                let id = id.trim();
                if known.iter().any(|c| c.id == id) {
                    Ok(id.to_string())
                } else {
                    anyhow::bail!(
                        "--case {id:?}: no such case (`fym motionbench list` shows the ids)"
                    )
                }
            })
            .collect::<Result<_>>()?,
    };
    let mut model = crate::cli::transfer::load_model(&args.model, device)?;
    let options = BenchOptions {
        methods,
        categories,
        cases_per_category: args.cases,
        case_ids,
        prompts_per_case: args.prompts,
        out: args.out.clone(),
        quiet: args.quiet,
    };
    let report = run_motionbench(&mut model, |m| args.tuning.config(m, args.seed), &options)?;
    if !args.quiet {
        eprintln!(
            "wrote {} and report.json ({} rows, {:.0} s)",
            args.out.join("report.md").display(),
            report["rows"].as_array().map_or(0, Vec::len),
            report["seconds"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}
