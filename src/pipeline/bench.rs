//! MotionBench-synth runs: every selected case, tuned once per method and generated for each of
//! its target prompts, scored, and summarised per method and category (report.md, report.json).
//!
//! Layout: `DIR/<case>/<method>/` holds the tuning artefacts (and resume state) of that pair,
//! `DIR/<case>/<method>/prompt-<k>/` the result and metrics of prompt k, and
//! `DIR/<case>/side_by_side.gif` the reference next to every method's result for the first prompt,
//! `DIR/<case>/reference.y4m` the reference as tuned on and scored against.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::{generate_outputs, reset_peak_memory, tune, Method, Model, RunOptions, TransferConfig};
use crate::motionbench::{cases, Case, Category};
use crate::video::write_side_by_side_gif;
use crate::world::render;

/// Each case's reference at the model's clip size, as tuned on and scored against.
pub const REFERENCE_FILE: &str = "reference.y4m";

/// What to run.
pub struct BenchOptions {
    pub methods: Vec<Method>,
    pub categories: Vec<Category>,
    /// At most this many cases per category (all when `None`).
    pub cases_per_category: Option<usize>,
    /// Only the cases with these ids (all when empty).
    pub case_ids: Vec<String>,
    /// At most this many target prompts per case (all three when `None`).
    pub prompts_per_case: Option<usize>,
    pub out: PathBuf,
    pub quiet: bool,
}

/// The metrics of one (case, method, prompt) row that the summary averages.
const SUMMARY_KEYS: [&str; 8] = [
    "motion_fidelity",
    "trajectory_correlation",
    "text_alignment",
    "leakage",
    "temporal_consistency",
    "coherent",
    "tuning_seconds",
    "peak_memory_mib",
];

/// The selected cases, in benchmark order.
pub fn select_cases(options: &BenchOptions) -> Vec<Case> {
    let mut per_category: BTreeMap<&'static str, usize> = BTreeMap::new();
    cases()
        .into_iter()
        .filter(|c| options.categories.contains(&c.category))
        .filter(|c| options.case_ids.is_empty() || options.case_ids.contains(&c.id))
        .filter(|c| {
            let n = per_category.entry(c.category.name()).or_default();
            *n += 1;
            options.cases_per_category.is_none_or(|max| *n <= max)
        })
        .collect()
}

/// Runs the benchmark; `config_for(method)` gives each method's settings. Returns report.json.
pub fn run_motionbench(
    model: &mut Model,
    config_for: impl Fn(Method) -> Result<TransferConfig>,
    options: &BenchOptions,
) -> Result<Value> {
    let selected = select_cases(options);
    if selected.is_empty() || options.methods.is_empty() {
        anyhow::bail!("motionbench run: nothing selected (no case or no method)");
    }
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("cannot create {}", options.out.display()))?;
    let clip = model.clip;
    let mut rows = Vec::new();
    let start = Instant::now();
    for (ci, case) in selected.iter().enumerate() {
        let case_dir = options.out.join(&case.id);
        std::fs::create_dir_all(&case_dir)
            .with_context(|| format!("cannot create {}", case_dir.display()))?;
        // Tune on and score against the reference as stored, so that every row can be checked
        // from the files: `fym metrics --reference <case>/reference.y4m --generated
        // <case>/<method>/prompt-<k>/result.y4m`.
        let (rendered, _) = render(&case.scene, clip.frames, clip.height, clip.width);
        let reference = super::store_frames(&case_dir.join(REFERENCE_FILE), &rendered)?;
        let mut firsts = Vec::new();
        for &method in &options.methods {
            if !options.quiet {
                eprintln!(
                    "== case {}/{} {} [{}] method {} (elapsed {})",
                    ci + 1,
                    selected.len(),
                    case.id,
                    case.category.name(),
                    method.name(),
                    super::progress::format_secs(start.elapsed().as_secs_f64())
                );
            }
            let config = config_for(method)?;
            let dir = case_dir.join(method.name());
            let run = RunOptions {
                out: dir.clone(),
                quiet: options.quiet,
                stop_after: None,
            };
            reset_peak_memory();
            let tuned = tune(model, &reference, &case.caption, &config, &run)?;
            let prompts = case
                .prompts
                .iter()
                .take(options.prompts_per_case.unwrap_or(usize::MAX));
            for (k, prompt) in prompts.enumerate() {
                let out = dir.join(format!("prompt-{k}"));
                let o = generate_outputs(
                    model,
                    &tuned,
                    &reference,
                    &case.caption,
                    prompt,
                    &config,
                    &out,
                    options.quiet,
                    Instant::now(),
                )?;
                let m = &o.metrics["metrics"];
                rows.push(json!({
                    "case": case.id,
                    "category": case.category.name(),
                    "method": method.name(),
                    "prompt": prompt,
                    "motion_fidelity": m["motion_fidelity"],
                    "trajectory_correlation": m["trajectory_correlation"],
                    "text_alignment": m["text_alignment"],
                    "leakage": m["leakage"],
                    "temporal_consistency": m["temporal_consistency"],
                    "coherent_fraction": o.metrics["coherent_fraction"],
                    "coherent": if o.metrics["coherent"].as_bool() == Some(true) { 1.0 } else { 0.0 },
                    "tuning_seconds": tuned.tuning_seconds(),
                    "peak_memory_mib": tuned.peak_memory_mib(),
                }));
                if k == 0 {
                    firsts.push((method, o.result));
                }
            }
        }
        let mut columns = vec![&reference];
        let mut labels = vec!["reference"];
        for (m, v) in &firsts {
            columns.push(v);
            labels.push(m.name());
        }
        write_side_by_side_gif(case_dir.join("side_by_side.gif"), &columns, &labels, 8.0, 4)?;
    }
    let run = std::slice::from_ref(&rows);
    let summary = summarise(run, &options.methods);
    let paired = super::summary::paired_json(run, Method::NoTuning.name());
    let report = json!({
        "format": "fym-motionbench-report",
        "model": model.source,
        "clip": {"frames": clip.frames, "height": clip.height, "width": clip.width},
        "methods": options.methods.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "cases": selected.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        "config": options.methods.iter().map(|&m| Ok((m.name().to_string(), super::config_json(&config_for(m)?, 0)))).collect::<Result<serde_json::Map<String, Value>>>()?,
        "summary": summary,
        "paired": paired,
        "rows": rows,
        "seconds": start.elapsed().as_secs_f64(),
    });
    write_text(
        &options.out.join("report.json"),
        &serde_json::to_string_pretty(&report)?,
    )?;
    write_text(
        &options.out.join("report.md"),
        &markdown(&report, &options.methods),
    )?;
    Ok(report)
}

/// Mean of every summary metric per method and category (and over all categories) of one run
/// (`runs` holds its rows), skipping rows where a metric is null (e.g. leakage when a prompt
/// changes nothing measurable).
fn summarise(runs: &[Vec<Value>], methods: &[Method]) -> Value {
    let categories = super::summary::categories(runs);
    let per_method = methods.iter().map(|method| {
        let per_cat = categories.iter().map(|cat| {
            let means = super::summary::method_means(runs, method.name(), cat, &SUMMARY_KEYS);
            (cat.clone(), means)
        });
        (method.name().to_string(), Value::Object(per_cat.collect()))
    });
    Value::Object(per_method.collect())
}

fn markdown(report: &Value, methods: &[Method]) -> String {
    let mut s = String::from("# MotionBench-synth report\n\n");
    s.push_str(&format!(
        "Model `{}`; cases: {}.\n\nMeans per method and category over every (case, target prompt). \
         motion = DMT motion fidelity; track corr = correlation of the main object's path with the \
         reference's; text = colour/shape/background alignment with the prompt; leakage = reference \
         attributes that should have changed but stayed; consistency = consecutive-frame similarity; \
         coherent = share of samples whose main object is one blob (≥ {} of the foreground); tuning in \
         seconds per case; memory = peak resident MiB.\n\n",
        report["model"].as_str().unwrap_or("?"),
        report["cases"].as_array().map_or(0, Vec::len),
        super::COHERENT_THRESHOLD
    ));
    s.push_str("| method | category | n | motion | track corr | text | leakage | consistency | coherent | tuning s | memory MiB |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    let f = |v: &Value, digits: usize| {
        v.as_f64()
            .map_or("n/a".to_string(), |x| format!("{x:.digits$}"))
    };
    for m in methods {
        if let Some(cats) = report["summary"][m.name()].as_object() {
            for (cat, e) in cats {
                s.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                    m.name(),
                    cat,
                    e["samples"],
                    f(&e["motion_fidelity"], 3),
                    f(&e["trajectory_correlation"], 3),
                    f(&e["text_alignment"], 3),
                    f(&e["leakage"], 3),
                    f(&e["temporal_consistency"], 3),
                    f(&e["coherent"], 2),
                    f(&e["tuning_seconds"], 1),
                    f(&e["peak_memory_mib"], 0),
                ));
            }
        }
    }
    s.push_str(&super::summary::paired_markdown(&json!({
        "baseline": Method::NoTuning.name(),
        "paired": report["paired"],
    })));
    s
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    let mut t = text.to_string();
    if !t.ends_with('\n') {
        t.push('\n');
    }
    fym_autograd::write_atomic(path, t.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
