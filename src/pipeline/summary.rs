//! Summaries of MotionBench-synth reports: means per method and category pooled over several
//! runs (seeds), and paired differences in track correlation against a baseline method, with a
//! bootstrap interval. Each run's report.md carries its own paired table; `fym motionbench
//! summary DIR…` pools runs.
//!
//! A pair is one (run, case, target prompt) that both methods generated: the same reference,
//! prompt and seed, so the difference removes what the case itself makes easy or hard.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// Resamples of the bootstrap interval.
const RESAMPLES: usize = 2000;
/// Seed of the bootstrap (fixed: the same reports always give the same interval).
const BOOTSTRAP_SEED: u64 = 0;
/// A pair counts as better or worse when the difference exceeds this.
const CLEAR_DIFFERENCE: f64 = 0.05;

/// The columns averaged per method and category: (report row key, table heading, digits).
const COLUMNS: [(&str, &str, usize); 6] = [
    ("motion_fidelity", "motion", 3),
    ("trajectory_correlation", "track corr", 3),
    ("text_alignment", "text", 3),
    ("leakage", "leakage", 3),
    ("temporal_consistency", "consistency", 3),
    ("coherent", "coherent", 2),
];

/// One report's rows, read from `DIR/report.json`.
pub fn read_rows(dir: &Path) -> Result<Vec<Value>> {
    let file = dir.join("report.json");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "cannot read {} (a folder written by `fym motionbench run`)",
            file.display()
        )
    })?;
    let report: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", file.display()))?;
    report["rows"]
        .as_array()
        .cloned()
        .with_context(|| format!("{} has no \"rows\" list", file.display()))
}

/// The distinct values of `field` over every run's rows, in order of first appearance.
fn distinct(runs: &[Vec<Value>], field: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for value in runs.iter().flatten().filter_map(|r| r[field].as_str()) {
        if !seen.iter().any(|s| s == value) {
            seen.push(value.to_string());
        }
    }
    seen
}

/// Methods in order of first appearance over the runs.
fn methods(runs: &[Vec<Value>]) -> Vec<String> {
    distinct(runs, "method")
}

/// "all", then the categories in order of first appearance.
pub(super) fn categories(runs: &[Vec<Value>]) -> Vec<String> {
    let mut all = vec!["all".to_string()];
    all.extend(distinct(runs, "category"));
    all
}

fn in_category(row: &Value, category: &str) -> bool {
    category == "all" || row["category"] == category
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Means of `keys` for one method in one category, pooled over every run's rows (rows where a
/// key is null are left out of that key's mean), and the track correlation per run.
pub(super) fn method_means(
    runs: &[Vec<Value>],
    method: &str,
    category: &str,
    keys: &[&str],
) -> Value {
    let rows: Vec<&Value> = runs
        .iter()
        .flatten()
        .filter(|r| r["method"] == method && in_category(r, category))
        .collect();
    let mut entry = serde_json::Map::new();
    entry.insert("samples".into(), json!(rows.len()));
    for &key in keys {
        let values: Vec<f64> = rows.iter().filter_map(|r| r[key].as_f64()).collect();
        entry.insert(key.into(), json!(mean(&values)));
    }
    let per_run: Vec<Option<f64>> = runs
        .iter()
        .map(|rows| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r["method"] == method && in_category(r, category))
                .filter_map(|r| r["trajectory_correlation"].as_f64())
                .collect();
            mean(&v)
        })
        .collect();
    entry.insert("track_per_run".into(), json!(per_run));
    Value::Object(entry)
}

/// The paired difference of one method against a baseline in one category.
#[derive(Clone, Debug, PartialEq)]
pub struct PairedDifference {
    pub pairs: usize,
    pub mean: f64,
    /// 95 % percentile bootstrap interval of the mean.
    pub low: f64,
    pub high: f64,
    /// Pairs where the method is ahead (behind) by more than [`CLEAR_DIFFERENCE`].
    pub better: usize,
    pub worse: usize,
}

impl PairedDifference {
    fn to_json(&self) -> Value {
        json!({
            "pairs": self.pairs, "mean": self.mean, "ci95": [self.low, self.high],
            "better": self.better, "worse": self.worse,
        })
    }
}

/// Mean of `diffs` and its 95 % percentile bootstrap interval.
pub fn paired_difference(diffs: &[f64]) -> Option<PairedDifference> {
    let m = mean(diffs)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(BOOTSTRAP_SEED);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| {
            let sum: f64 = (0..diffs.len())
                .map(|_| diffs[rng.gen_range(0..diffs.len())])
                .sum();
            sum / diffs.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((q * RESAMPLES as f64) as usize).min(RESAMPLES - 1)];
    Some(PairedDifference {
        pairs: diffs.len(),
        mean: m,
        low: at(0.025),
        high: at(0.975),
        better: diffs.iter().filter(|&&d| d > CLEAR_DIFFERENCE).count(),
        worse: diffs.iter().filter(|&&d| d < -CLEAR_DIFFERENCE).count(),
    })
}

/// Track-correlation differences `method` (in `ours`) − `baseline` (in `theirs`) over the
/// (run, case, prompt) both have, in `category`; run `i` of `ours` pairs with run `i` of
/// `theirs` (the same runs for two methods of one run, or the same seeds under other settings).
pub fn track_differences(
    ours: &[Vec<Value>],
    method: &str,
    theirs: &[Vec<Value>],
    baseline: &str,
    category: &str,
) -> Vec<f64> {
    let track_of = |runs: &[Vec<Value>], name: &str| -> BTreeMap<(usize, String, String), f64> {
        runs.iter()
            .enumerate()
            .flat_map(|(run, rows)| rows.iter().map(move |r| (run, r)))
            .filter(|(_, r)| r["method"] == name && in_category(r, category))
            .filter_map(|(run, r)| {
                let key = (
                    run,
                    r["case"].as_str()?.to_string(),
                    r["prompt"].as_str()?.to_string(),
                );
                Some((key, r["trajectory_correlation"].as_f64()?))
            })
            .collect()
    };
    let base = track_of(theirs, baseline);
    track_of(ours, method)
        .into_iter()
        .filter_map(|(key, x)| Some(x - base.get(&key)?))
        .collect()
}

/// `method` in `ours` paired with `baseline` in `theirs`, per category of `ours`.
fn paired_by_category(
    ours: &[Vec<Value>],
    method: &str,
    theirs: &[Vec<Value>],
    baseline: &str,
) -> Value {
    let per_cat = categories(ours).into_iter().filter_map(|c| {
        let d = paired_difference(&track_differences(ours, method, theirs, baseline, &c))?;
        Some((c, d.to_json()))
    });
    Value::Object(per_cat.collect())
}

/// Every method of `runs` but `baseline` paired with `baseline` (empty when the runs do not
/// have it): `[method][category]`.
pub fn paired_json(runs: &[Vec<Value>], baseline: &str) -> Value {
    let methods = methods(runs);
    if !methods.iter().any(|m| m == baseline) {
        return json!({});
    }
    let paired = methods
        .iter()
        .filter(|m| *m != baseline)
        .map(|m| (m.clone(), paired_by_category(runs, m, runs, baseline)));
    Value::Object(paired.collect())
}

/// The summary as JSON: `means[method][category]` and `paired[method][category]` against
/// `baseline` (for every other method, when the baseline is present).
pub fn summary_json(runs: &[Vec<Value>], baseline: &str) -> Value {
    let categories = categories(runs);
    let means = methods(runs).into_iter().map(|m| {
        let per_cat = categories.iter().map(|c| {
            let entry = method_means(runs, &m, c, &COLUMNS.map(|col| col.0));
            (c.clone(), entry)
        });
        let per_cat = Value::Object(per_cat.collect());
        (m, per_cat)
    });
    json!({
        "runs": runs.len(),
        "baseline": baseline,
        "means": Value::Object(means.collect()),
        "paired": paired_json(runs, baseline),
    })
}

/// Each method of `runs` paired with the same method in `against` (run `i` with run `i`, e.g.
/// the same seeds generated with other settings): what the change did, pair by pair. In the
/// shape of [`paired_json`].
pub fn against_json(runs: &[Vec<Value>], against: &[Vec<Value>]) -> Value {
    let theirs = methods(against);
    let paired = methods(runs)
        .into_iter()
        .filter(|m| theirs.contains(m))
        .map(|m| {
            let per_cat = paired_by_category(runs, &m, against, &m);
            (m, per_cat)
        });
    Value::Object(paired.collect())
}

fn number(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map_or("n/a".to_string(), |x| format!("{x:.digits$}"))
}

/// The summary as markdown tables (means, then paired differences).
pub fn summary_markdown(summary: &Value) -> String {
    let mut s = means_markdown(summary);
    s.push_str(&paired_markdown(summary));
    s
}

/// The table of means per method and category (track correlation per run in brackets).
pub fn means_markdown(summary: &Value) -> String {
    let runs = summary["runs"].as_u64().unwrap_or(0);
    let f = number;
    let headings: Vec<&str> = COLUMNS.iter().map(|c| c.1).collect();
    let mut s = format!("| method | category | n | {} |\n", headings.join(" | "));
    s.push_str(&format!("|---|---|---|{}\n", "---|".repeat(COLUMNS.len())));
    let empty = serde_json::Map::new();
    for (method, cats) in summary["means"].as_object().unwrap_or(&empty) {
        for (cat, e) in cats.as_object().unwrap_or(&empty) {
            let cells: Vec<String> = COLUMNS
                .iter()
                .map(|&(key, _, digits)| {
                    let mut cell = f(&e[key], digits);
                    if key == "trajectory_correlation" && runs > 1 {
                        let per_run: Vec<String> = e["track_per_run"]
                            .as_array()
                            .map(|v| v.iter().map(|x| f(x, 2)).collect())
                            .unwrap_or_default();
                        cell.push_str(&format!(" ({})", per_run.join(" / ")));
                    }
                    cell
                })
                .collect();
            s.push_str(&format!(
                "| {method} | {cat} | {} | {} |\n",
                e["samples"],
                cells.join(" | ")
            ));
        }
    }
    s
}

/// The table of paired differences against the baseline (empty without one).
pub fn paired_markdown(summary: &Value) -> String {
    let empty = serde_json::Map::new();
    let mut s = String::new();
    let paired = summary["paired"].as_object().unwrap_or(&empty);
    if !paired.is_empty() {
        s.push_str(&format!(
            "\nTrack correlation, paired with `{}` by (run, case, prompt): mean difference, 95 % \
             bootstrap interval, pairs ahead / behind by more than {CLEAR_DIFFERENCE}.\n\n\
             | method | category | pairs | difference | 95 % interval | ahead | behind |\n\
             |---|---|---|---|---|---|---|\n",
            summary["baseline"].as_str().unwrap_or("?")
        ));
        for (method, cats) in paired {
            for (cat, d) in cats.as_object().unwrap_or(&empty) {
                s.push_str(&format!(
                    "| {method} | {cat} | {} | {:+.3} | [{:+.3}, {:+.3}] | {} | {} |\n",
                    d["pairs"],
                    d["mean"].as_f64().unwrap_or(f64::NAN),
                    d["ci95"][0].as_f64().unwrap_or(f64::NAN),
                    d["ci95"][1].as_f64().unwrap_or(f64::NAN),
                    d["better"],
                    d["worse"],
                ));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, category: &str, case: &str, prompt: &str, track: f64) -> Value {
        json!({"method": method, "category": category, "case": case, "prompt": prompt,
               "trajectory_correlation": track, "coherent": 1.0})
    }

    #[test]
    fn a_constant_difference_has_a_zero_width_interval() {
        let d = paired_difference(&[0.25; 40]).unwrap();
        assert!((d.mean - 0.25).abs() < 1e-12);
        assert!((d.low - 0.25).abs() < 1e-12 && (d.high - 0.25).abs() < 1e-12);
        assert_eq!((d.pairs, d.better, d.worse), (40, 40, 0));
        assert_eq!(paired_difference(&[]), None);
    }

    #[test]
    fn the_interval_brackets_the_mean_and_is_reproducible() {
        let diffs: Vec<f64> = (0..100).map(|i| (i as f64 / 99.0) - 0.4).collect();
        let d = paired_difference(&diffs).unwrap();
        assert!(d.low < d.mean && d.mean < d.high, "{d:?}");
        // Standard error of the mean of a uniform spread over [-0.4, 0.6]: 0.29/√100 ≈ 0.029;
        // the 95 % interval is about ±2 of them.
        assert!((d.high - d.low - 4.0 * 0.029).abs() < 0.03, "{d:?}");
        assert_eq!(paired_difference(&diffs), Some(d));
    }

    #[test]
    fn pairs_match_run_case_and_prompt_and_skip_unmatched_rows() {
        let runs = vec![
            vec![
                row("fym", "camera", "c1", "p", 0.9),
                row("no-tuning", "camera", "c1", "p", 0.1),
                row("fym", "single", "s1", "p", 0.2),
                row("no-tuning", "single", "s1", "p", 0.6),
                row("fym", "single", "s2", "p", 0.5), // no baseline row: not a pair
            ],
            vec![
                row("fym", "camera", "c1", "p", 0.7),
                row("no-tuning", "camera", "c1", "p", 0.6),
            ],
        ];
        let mut all = track_differences(&runs, "fym", &runs, "no-tuning", "all");
        all.sort_by(f64::total_cmp);
        let expected = [-0.4, 0.1, 0.8];
        assert_eq!(all.len(), 3);
        for (a, b) in all.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{all:?}");
        }
        assert_eq!(
            track_differences(&runs, "fym", &runs, "no-tuning", "single").len(),
            1
        );
        let summary = summary_json(&runs, "no-tuning");
        assert_eq!(summary["paired"]["fym"]["all"]["pairs"], 3);
        assert_eq!(summary["means"]["fym"]["camera"]["samples"], 2);
        let per_run = &summary["means"]["fym"]["camera"]["track_per_run"];
        assert!((per_run[1].as_f64().unwrap() - 0.7).abs() < 1e-12);
        let shifted: Vec<Vec<Value>> = runs
            .iter()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r["trajectory_correlation"] =
                            json!(r["trajectory_correlation"].as_f64().unwrap() - 0.5);
                        r
                    })
                    .collect()
            })
            .collect();
        let against = against_json(&runs, &shifted);
        assert_eq!(against["fym"]["all"]["pairs"], 4);
        assert!((against["no-tuning"]["camera"]["mean"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        let md = summary_markdown(&summary);
        assert!(md.contains("| fym | camera | 2 |"), "{md}");
        assert!(md.contains("| fym | all | 3 | +0.167 |"), "{md}");
    }
}
