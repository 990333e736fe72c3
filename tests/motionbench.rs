//! MotionBench-synth: the cases, their prompts and the export.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use fym::motionbench::export::{export, parse_size, ExportOptions};
use fym::motionbench::{cases, held_out_captions, is_benchmark_scene, Category};
use fym::world::caption::{camera_phrase, motion_phrase};
use fym::world::{render, vocabulary, Color, Scene, SceneOptions, Shape, Texture};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// A caption with its colour, shape and background words blanked: what must survive a target.
fn motion_skeleton(text: &str) -> String {
    let appearance: HashSet<&str> = Color::ALL
        .iter()
        .map(|c| c.name())
        .chain(Shape::ALL.iter().map(|s| s.name()))
        .chain(Texture::ALL.iter().map(|t| t.name()))
        .chain(["a", "an"])
        .collect();
    text.split(' ')
        .map(|w| if appearance.contains(w) { "_" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_category_has_at_least_eight_cases_with_unique_ids() {
    let all = cases();
    for category in Category::ALL {
        let n = all.iter().filter(|c| c.category == category).count();
        assert!(n >= 8, "{category:?} has {n} cases");
    }
    let ids: HashSet<&str> = all.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids.len(), all.len());
    for case in &all {
        let (prefix, number) = case.id.rsplit_once('-').unwrap();
        assert_eq!(prefix, case.category.name());
        assert_eq!(number.len(), 2, "{}", case.id);
    }
    assert_eq!(all, cases(), "cases are deterministic");
}

#[test]
fn prompts_use_the_vocabulary_and_keep_the_motion() {
    let vocabulary = vocabulary();
    for case in cases() {
        assert_eq!(case.prompts.len(), 3, "{}", case.id);
        assert_eq!(case.targets.len(), 3, "{}", case.id);
        let mut seen = HashSet::from([case.caption.clone()]);
        for (prompt, target) in case.prompts.iter().zip(&case.targets) {
            assert!(
                seen.insert(prompt.clone()),
                "{}: repeated prompt {prompt:?}",
                case.id
            );
            assert_eq!(prompt, &fym::world::caption(target));
            for word in prompt.split(' ') {
                assert!(
                    vocabulary.contains(&word),
                    "{}: {word:?} not in vocabulary",
                    case.id
                );
            }
            // Same words once appearance is blanked, and the same motion underneath.
            assert_eq!(
                motion_skeleton(prompt),
                motion_skeleton(&case.caption),
                "{}",
                case.id
            );
            assert_eq!(target.camera, case.scene.camera);
            assert_eq!(target.objects.len(), case.scene.objects.len());
            for (a, b) in target.objects.iter().zip(&case.scene.objects) {
                assert_eq!(a.trajectory, b.trajectory);
                assert_ne!(
                    a.color, b.color,
                    "{}: a target must change each colour",
                    case.id
                );
            }
            match (&target.figure, &case.scene.figure) {
                (Some(a), Some(b)) => {
                    assert_eq!(
                        (a.action, a.travel, a.cycles, a.start),
                        (b.action, b.travel, b.cycles, b.start)
                    );
                    assert_ne!(a.color, b.color);
                }
                (None, None) => {}
                _ => panic!("{}: a target adds or drops the figure", case.id),
            }
        }
    }
}

#[test]
fn cases_show_what_their_category_promises() {
    for case in cases() {
        let scene = &case.scene;
        match case.category {
            Category::Camera => assert!(camera_phrase(&scene.camera).is_some(), "{}", case.id),
            Category::SingleObject => {
                assert!(
                    scene.objects.len() == 1 && scene.figure.is_none(),
                    "{}",
                    case.id
                );
                assert!(
                    motion_phrase(&scene.objects[0].trajectory).is_some(),
                    "{}",
                    case.id
                );
            }
            Category::MultipleObjects => {
                assert!((2..=4).contains(&scene.objects.len()), "{}", case.id);
                let moving = scene
                    .objects
                    .iter()
                    .filter(|o| motion_phrase(&o.trajectory).is_some())
                    .count();
                assert!(moving >= 1, "{}", case.id);
            }
            Category::Human => assert!(scene.figure.is_some(), "{}", case.id),
        }
        // Every subject shows in most of the reference clip, and objects move on screen.
        let (_, truth) = render(scene, 16, 32, 32);
        for i in 0..scene.objects.len() {
            let shown = truth.frames.iter().filter(|f| f.objects[i].visible).count();
            assert!(
                shown >= 10,
                "{}: object {i} shows in {shown} frames",
                case.id
            );
        }
        if scene.figure.is_some() {
            assert!(
                truth
                    .frames
                    .iter()
                    .all(|f| f.figure.as_ref().unwrap().body.visible_fraction > 0.8),
                "{}",
                case.id
            );
        }
        if case.id == "multi-06" {
            // The occlusion case: the circle is fully hidden behind the square for a while.
            let hidden = truth
                .frames
                .iter()
                .filter(|f| !f.objects[1].visible)
                .count();
            assert!((2..=6).contains(&hidden), "hidden in {hidden} frames");
        }
    }
}

#[test]
fn benchmark_captions_are_held_out_of_training_samples() {
    let held = held_out_captions();
    for case in cases() {
        assert!(is_benchmark_scene(&case.scene));
        assert!(case.targets.iter().all(is_benchmark_scene));
        assert!(held.contains(&case.caption));
    }
    let options = SceneOptions {
        min_objects: 1,
        max_objects: 1,
        figure_probability: 0.0,
        camera_probability: 0.0,
        hills_probability: 0.0,
    };
    let mut rng = StdRng::seed_from_u64(5);
    let mut excluded = 0;
    for _ in 0..2000 {
        let scene = Scene::random(&mut rng, &options);
        let is_held = held.contains(&fym::world::caption(&scene));
        assert_eq!(is_benchmark_scene(&scene), is_held);
        excluded += is_held as usize;
        let sampled = Scene::random_excluding(&mut rng, &options, is_benchmark_scene);
        assert!(!is_benchmark_scene(&sampled));
    }
    // Single moving shapes on a still camera do collide with benchmark captions now and then.
    assert!(
        excluded > 0,
        "no random single-object scene matched a benchmark caption"
    );
}

#[test]
fn export_writes_clips_truth_prompts_and_index() {
    let dir = std::env::temp_dir().join(format!("fym-motionbench-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let chosen: Vec<_> = cases()
        .into_iter()
        .filter(|c| c.id == "human-01" || c.id == "multi-06")
        .collect();
    let options = ExportOptions {
        frames: 5,
        height: 20,
        width: 28,
    };
    export(&dir, &chosen, options).unwrap();
    for case in &chosen {
        let case_dir = dir.join(&case.id);
        let (reference, truth) = render(&case.scene, 5, 20, 28);
        let gif = fym::video::read_gif(case_dir.join("reference.gif")).unwrap();
        assert_eq!((gif.frames, gif.height, gif.width), (5, 20, 28));
        let y4m = fym::video::read_y4m(case_dir.join("reference.y4m")).unwrap();
        assert_eq!((y4m.frames, y4m.height, y4m.width), (5, 20, 28));
        let worst = y4m
            .data
            .iter()
            .zip(&reference.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            worst < 0.03,
            "{}: y4m differs from the render by {worst}",
            case.id
        );
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case_dir.join("truth.json")).unwrap())
                .unwrap();
        assert_eq!(json["frames"].as_array().unwrap().len(), 5);
        assert_eq!(json["caption"], case.caption.as_str());
        let (written, expected) = match &truth.frames[4].figure {
            Some(figure) => (
                &json["frames"][4]["figure"]["joints"]["left_hand"],
                figure.joints[4],
            ),
            None => (
                &json["frames"][4]["objects"][1]["center"],
                truth.frames[4].objects[1].center,
            ),
        };
        for k in 0..2 {
            assert!(
                (written[k].as_f64().unwrap() - expected[k] as f64).abs() < 1e-3,
                "{}: {written} vs {expected:?}",
                case.id
            );
        }
        let prompts: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case_dir.join("prompts.json")).unwrap())
                .unwrap();
        assert_eq!(prompts["prompts"].as_array().unwrap().len(), 3);
        assert_eq!(prompts["prompts"][2], case.prompts[2].as_str());
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["cases"].as_array().unwrap().len(), 2);
    assert_eq!(
        (
            index["height"].as_u64(),
            index["width"].as_u64(),
            index["frames"].as_u64()
        ),
        (Some(20), Some(28), Some(5))
    );
    // Nothing half-written is left behind.
    for entry in std::fs::read_dir(dir.join("human-01")).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(
            !name.to_string_lossy().contains("tmp"),
            "{name:?} left over"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sizes_parse_and_bad_ones_are_refused() {
    assert_eq!(parse_size("32x32").unwrap(), (32, 32));
    assert_eq!(parse_size("48X80").unwrap(), (48, 80));
    for bad in ["32", "0x32", "32x", "ax3", "-1x4"] {
        let err = parse_size(bad).unwrap_err().to_string();
        assert!(err.contains("--size"), "{bad}: {err}");
    }
    assert!(ExportOptions {
        frames: 0,
        height: 8,
        width: 8
    }
    .validate()
    .is_err());
    assert!(ExportOptions::default().validate().is_ok());
    assert_eq!(
        ExportOptions::default(),
        ExportOptions {
            frames: 16,
            height: 32,
            width: 32
        }
    );
}

#[test]
fn cli_lists_cases_as_json_and_rejects_bad_flags() {
    let fym = env!("CARGO_BIN_EXE_fym");
    let out = Command::new(fym)
        .args(["motionbench", "list", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), cases().len());
    assert_eq!(list[0]["id"], "camera-01");
    let out = Command::new(fym)
        .args(["motionbench", "export", "--out"])
        .arg(std::env::temp_dir().join("fym-never-written"))
        .args(["--size", "12by12"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--size"));
}

/// `fym motionbench run` end to end on a tiny untrained model (a smoke test of the mechanics,
/// not of quality): every (case, method, prompt) row with metrics in range, the paired table in
/// report.md, a side-by-side GIF per case; then `fym motionbench summary` pools two runs.
#[test]
fn cli_runs_a_small_benchmark_and_summarises_runs() {
    let fym = env!("CARGO_BIN_EXE_fym");
    let dir = std::env::temp_dir().join(format!("fym-mb-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new(fym)
        .args([
            "motionbench",
            "run",
            "--model",
            "random:1",
            "--methods",
            "fym,no-tuning",
        ])
        .args([
            "--category",
            "camera,single",
            "--cases",
            "1",
            "--prompts",
            "1",
        ])
        .args([
            "--spatial-steps",
            "2",
            "--temporal-steps",
            "2",
            "--sample-steps",
            "2",
        ])
        .args(["--quiet", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "2 cases × 2 methods × 1 prompt");
    for row in rows {
        for key in [
            "motion_fidelity",
            "text_alignment",
            "temporal_consistency",
            "coherent",
        ] {
            let x = row[key].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&x), "{key} = {x} in {row}");
        }
        let track = row["trajectory_correlation"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&track), "{row}");
    }
    assert_eq!(report["paired"]["fym"]["all"]["pairs"], 2);
    assert_eq!(report["config"]["fym"]["spatial_scale"], 1.0);
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("paired with `no-tuning`"), "{md}");
    for case in ["camera-01", "single-01"] {
        assert!(dir.join(case).join("side_by_side.gif").is_file());
    }
    // Every row can be checked from the files: the stored reference and result give the row's
    // numbers exactly.
    for row in rows {
        let case = dir.join(row["case"].as_str().unwrap());
        let caption = std::fs::read_to_string(
            case.join(row["method"].as_str().unwrap())
                .join("prompt-0")
                .join("metrics.json"),
        )
        .unwrap();
        let caption: serde_json::Value = serde_json::from_str(&caption).unwrap();
        let scored = Command::new(fym)
            .arg("metrics")
            .arg("--reference")
            .arg(case.join("reference.y4m"))
            .arg("--generated")
            .arg(
                case.join(row["method"].as_str().unwrap())
                    .join("prompt-0")
                    .join("result.y4m"),
            )
            .args(["--prompt", row["prompt"].as_str().unwrap()])
            .args(["--reference-caption", caption["caption"].as_str().unwrap()])
            .arg("--json")
            .output()
            .unwrap();
        assert!(scored.status.success());
        let scored: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
        for key in [
            "trajectory_correlation",
            "motion_fidelity",
            "text_alignment",
        ] {
            assert_eq!(scored[key], row[key], "{key} of {row}");
        }
    }

    let summary = Command::new(fym)
        .args(["motionbench", "summary", "--json"])
        .args([&dir, &dir])
        .output()
        .unwrap();
    assert!(summary.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&summary.stdout).unwrap();
    assert_eq!(summary["runs"], 2);
    assert_eq!(summary["paired"]["fym"]["all"]["pairs"], 4);
    assert_eq!(summary["means"]["no-tuning"]["all"]["samples"], 4);

    let missing = Command::new(fym)
        .args(["motionbench", "summary"])
        .arg(dir.join("no-such-run"))
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("report.json"));
    let against = Command::new(fym)
        .args(["motionbench", "summary", "--json"])
        .arg(&dir)
        .arg("--against")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(against.status.success());
    let against: serde_json::Value = serde_json::from_slice(&against.stdout).unwrap();
    assert_eq!(
        against["against"]["fym"]["all"]["mean"], 0.0,
        "a run against itself"
    );
    let uneven = Command::new(fym)
        .args(["motionbench", "summary"])
        .arg(&dir)
        .arg("--against")
        .args([&dir, &dir])
        .output()
        .unwrap();
    assert_eq!(uneven.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&uneven.stderr).contains("as many folders"));
    let bad_baseline = Command::new(fym)
        .args(["motionbench", "summary", "--baseline", "nothing"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(bad_baseline.status.code(), Some(1));

    // --case picks cases by id, whatever their category; an unknown id is an error.
    let one = |case: &str, out: &Path| {
        Command::new(fym)
            .args(["motionbench", "run", "--model", "random:1", "--methods"])
            .args(["no-tuning", "--case", case, "--prompts", "1"])
            .args(["--sample-steps", "2", "--quiet", "--out"])
            .arg(out)
            .output()
            .unwrap()
    };
    let picked = dir.join("picked");
    let out = one("single-03,human-02", &picked);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(picked.join("report.json")).unwrap()).unwrap();
    let cases: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["case"].as_str().unwrap())
        .collect();
    assert_eq!(cases, ["single-03", "human-02"]);
    let bad = one("single-99", &dir.join("bad"));
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("single-99"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ideal transfer — each target scene rendered, which moves exactly as its reference — must
/// score high track correlation, as the benchmark scores it (the path of the object each text
/// names first), at the clip size the built-in model generates (8 × 24 × 24), or the benchmark's
/// target (≥ 0.7 per category) could not be judged by it. Observed: ≥ 0.9 in 24 of 24 camera,
/// single-object and human pairs and 22 of 24 multi-object pairs (multi-06's first target, 0.00:
/// the object named first stands in the middle while the other passes behind it, 0.5 px of
/// wobble either side of still; multi-03's, 0.77: two circles on pixel noise cross). Taking the
/// largest component of each frame instead (it jumped between objects of similar size) gave
/// 22 / 18 of 24 camera / multi pairs ≥ 0.7; correlating x and y separately, 12 of 24 camera.
#[test]
fn an_ideal_transfer_follows_the_reference_path() {
    use fym::metrics::evaluate;
    for category in Category::ALL {
        let mut scores = Vec::new();
        for case in cases().into_iter().filter(|c| c.category == category) {
            let (reference, _) = render(&case.scene, 8, 24, 24);
            for (prompt, target) in case.prompts.iter().zip(&case.targets) {
                let (ideal, _) = render(target, 8, 24, 24);
                let report =
                    evaluate(&reference, &ideal, Some(prompt), Some(&case.caption)).unwrap();
                let r = report.synthetic.unwrap().trajectory_correlation;
                scores.push((r, format!("{} {prompt}", case.id)));
            }
        }
        scores.sort_by(|a, b| a.0.total_cmp(&b.0));
        let followed = scores.iter().filter(|(r, _)| *r >= 0.9).count();
        println!(
            "{}: lowest {:.3} ({}), ≥ 0.9 in {followed} of {}",
            category.name(),
            scores[0].0,
            scores[0].1,
            scores.len()
        );
        assert!(
            followed + 2 >= scores.len(),
            "{}: {:?}",
            category.name(),
            &scores[..2]
        );
    }
}
