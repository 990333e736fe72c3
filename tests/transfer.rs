//! Motion-transfer pipeline: the `fym transfer` CLI end to end on a tiny model, resumption after an
//! interrupt, baselines, batch construction against naive references, and bad inputs.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use fym::pipeline::batch::{noisy_batch, EmphasisMask, MotionEmphasis, TrainCaptions};
use fym::pipeline::generate::generate;
use fym::pipeline::lora::load_adapter;
use fym::pipeline::matte::Matte;
use fym::pipeline::temporal::{draw_clips, FrameSampling};
use fym::pipeline::train::{Interrupted, LrSchedule};
use fym::pipeline::{
    run_transfer, store_frames, GenerateOptions, Method, Model, RunOptions, Stage, TransferConfig,
    MATTED_REFERENCE_FILE, SPATIAL_LORA_FILE, TEMPORAL_LORA_FILE,
};
use fym::video::{read_gif, read_video, write_gif, Video};
use fym_model::adaptive_rope::TemporalPositions;
use fym_model::flow::{SigmaDistribution, TrainSigmaSampler};
use fym_model::heads::{HeadKind, HeadLabels};
use fym_model::lora_io::{read_lora, AdapterKind, LoraTarget};
use rand::SeedableRng;
use serde_json::Value;

const CAPTION: &str = "a red circle circles on a plain background";
const PROMPT: &str = "a blue square circles on a plain background";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fym-transfer-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A reference of the tiny model's clip shape: a bright square moving diagonally on black.
fn moving_square(frames: usize, size: usize) -> Video {
    let mut v = Video::new(frames, size, size);
    for f in 0..frames {
        let o = f * (size - 5) / frames.max(1);
        for y in o..o + 4 {
            for x in o..o + 4 {
                v.set_pixel(f, y, x, [0.9, 0.1, 0.1]);
            }
        }
    }
    v
}

/// `square` (a [`moving_square`]) over grey stripes that shift a pixel a frame (camera motion).
fn on_panning_stripes(square: &Video) -> Video {
    let mut video = square.clone();
    for f in 0..video.frames {
        for y in 0..video.height {
            for x in 0..video.width {
                let stripe = if (x + f) % 4 < 2 { 0.6 } else { 0.3 };
                let rgb = square.pixel(f, y, x);
                video.set_pixel(f, y, x, if rgb[0] > 0.5 { rgb } else { [stripe; 3] });
            }
        }
    }
    video
}

fn fym_bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fym"))
}

fn small_config(method: Method) -> TransferConfig {
    let mut c = TransferConfig {
        method,
        spatial_steps: 4,
        temporal_steps: 6,
        checkpoint_every: 2,
        batch: 2,
        ..TransferConfig::default()
    };
    c.lora.rank = 4;
    c.lora.alpha = 4.0;
    c.generate.steps = 3;
    c
}

fn number(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for k in path {
        cur = &cur[*k];
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path:?} is not a number in {v}"))
}

#[test]
fn cli_transfer_writes_every_output_and_sane_metrics() {
    let out = temp_dir("cli");
    let status = fym_bin()
        .args(["transfer", "--model", "random:3", "--quiet"])
        .args([
            "--spatial-steps",
            "3",
            "--temporal-steps",
            "4",
            "--sample-steps",
            "3",
        ])
        .args(["--rank", "4", "--batch", "2", "--seed", "5"])
        .args(["--train-shift", "2.5", "--motion-weight", "0.5"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "fym transfer failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );

    // Videos: the result has the model's clip shape; the comparison is wider than one panel.
    let result = read_gif(out.join("result.gif")).unwrap();
    assert_eq!((result.frames, result.height, result.width), (8, 16, 16));
    let side = read_gif(out.join("side_by_side.gif")).unwrap();
    assert_eq!(side.frames, 8);
    assert!(
        side.width > 2 * 16 * 4,
        "side-by-side is {} wide",
        side.width
    );

    // Head labels: 2 layers × 2 heads, each layer with both kinds (the safeguard).
    let labels = HeadLabels::load(out.join("heads.json")).unwrap();
    labels.check_shape(2, 2).unwrap();
    for l in 0..2 {
        assert_eq!(labels.heads_of(HeadKind::Spatial, l).unwrap().len(), 1);
        assert_eq!(labels.heads_of(HeadKind::Temporal, l).unwrap().len(), 1);
    }

    // LoRA files: PEFT naming, head-restricted to disjoint heads, zero outside their heads.
    let spatial = read_lora(out.join("spatial_lora.safetensors")).unwrap();
    let temporal = read_lora(out.join("temporal_lora.safetensors")).unwrap();
    assert_eq!(spatial.kind, AdapterKind::Spatial);
    assert_eq!(temporal.kind, AdapterKind::Temporal);
    assert_eq!(spatial.rank, 4);
    assert_eq!(temporal.factors.len(), 2 * 4, "q/k/v/out of 2 layers");
    let (sh, th) = (
        spatial.heads.clone().unwrap(),
        temporal.heads.clone().unwrap(),
    );
    for l in 0..2 {
        assert_eq!(sh[&l], labels.heads_of(HeadKind::Spatial, l).unwrap());
        assert_eq!(th[&l], labels.heads_of(HeadKind::Temporal, l).unwrap());
        assert!(sh[&l].iter().all(|h| !th[&l].contains(h)));
    }
    let mut trained = 0.0f32;
    for (site, f) in &temporal.factors {
        if site.target == LoraTarget::ToOut {
            continue;
        }
        let allowed = &th[&site.block];
        let r = f.b.shape[1];
        for (row, chunk) in f.b.data.chunks_exact(r).enumerate() {
            let inside = allowed.contains(&(row / 16));
            for &v in chunk {
                if inside {
                    trained += v.abs();
                } else {
                    assert_eq!(v, 0.0, "{site}: row {row} outside the temporal heads");
                }
            }
        }
    }
    assert!(trained > 0.0, "the temporal adapter did not move from zero");

    // Metrics: numbers in range.
    let m: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let in_range = |path: &[&str], lo: f64, hi: f64| {
        let v = number(&m, path);
        assert!(v.is_finite() && (lo..=hi).contains(&v), "{path:?} = {v}");
    };
    in_range(&["metrics", "motion_fidelity"], 0.0, 1.0);
    in_range(&["metrics", "temporal_consistency"], 0.0, 1.0);
    in_range(&["metrics", "trajectory_correlation"], -1.0, 1.0);
    in_range(&["reproduction", "trajectory_correlation"], -1.0, 1.0);
    let reproduction = &m["reproduction"];
    assert_eq!(
        reproduction["passed"],
        number(&m, &["reproduction", "trajectory_correlation"]) as f32 >= 0.9,
        "{reproduction}"
    );
    in_range(&["reproduction", "motion_fidelity"], 0.0, 1.0);
    in_range(&["coherent_fraction"], 0.0, 1.0);
    in_range(&["seconds", "tuning"], 0.0, 600.0);
    in_range(&["peak_memory_mib"], 1.0, 1e6);
    assert_eq!(m["method"], "fym");
    assert_eq!(m["prompt"], "a blue square circles on a plain background");
    // The tuning flags reach the config the run records.
    assert_eq!(number(&m, &["config", "train_shift"]), 2.5);
    assert_eq!(number(&m, &["config", "motion_weight"]), 0.5);
    assert_eq!(number(&m, &["config", "rank"]), 4.0);
    assert!(number(&m, &["final_loss", "temporal"]) > 0.0);

    // The scored frames are stored: `fym metrics` on result.y4m and reproduction.y4m gives
    // exactly the numbers of metrics.json.
    for (file, key, prompt) in [
        ("result.y4m", "metrics", m["prompt"].as_str().unwrap()),
        (
            "reproduction.y4m",
            "reproduction",
            m["caption"].as_str().unwrap(),
        ),
    ] {
        let stored = read_video(out.join(file)).unwrap();
        assert_eq!((stored.frames, stored.height, stored.width), (8, 16, 16));
        let scored = fym_bin()
            .arg("metrics")
            .arg("--reference")
            .arg(out.join("reference.gif"))
            .arg("--generated")
            .arg(out.join(file))
            .args(["--prompt", prompt])
            .args(["--reference-caption", m["caption"].as_str().unwrap()])
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            scored.status.success(),
            "{}",
            String::from_utf8_lossy(&scored.stderr)
        );
        let scored: Value = serde_json::from_slice(&scored.stdout).unwrap();
        for metric in ["trajectory_correlation", "motion_fidelity"] {
            assert_eq!(scored[metric], m[key][metric], "{file}: {metric}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn interrupted_run_resumes_to_the_same_result() {
    let reference = moving_square(8, 16);
    // The cosine schedule gives every step its own rate, which a resumed run must restore too.
    let config = TransferConfig {
        lr_schedule: LrSchedule::Cosine,
        ..small_config(Method::Fym)
    };

    let straight = temp_dir("straight");
    let mut model = Model::tiny_random(11).unwrap();
    let run = RunOptions {
        out: straight.clone(),
        quiet: true,
        stop_after: None,
    };
    let a = run_transfer(&mut model, &reference, CAPTION, PROMPT, &config, &run).unwrap();

    for (stage, step) in [(Stage::Spatial, 3), (Stage::Temporal, 3)] {
        let resumed = temp_dir(&format!("resumed-{}", stage.name()));
        let mut model = Model::tiny_random(11).unwrap();
        let mut run = RunOptions {
            out: resumed.clone(),
            quiet: true,
            stop_after: Some((stage, step)),
        };
        let err = run_transfer(&mut model, &reference, CAPTION, PROMPT, &config, &run)
            .err()
            .expect("the run should stop");
        assert!(err.downcast_ref::<Interrupted>().is_some(), "{err:#}");
        let ckpt = resumed.join(format!(".{}.checkpoint.safetensors", stage.name()));
        assert!(ckpt.exists(), "no checkpoint at the interrupt");
        run.stop_after = None;
        let b = run_transfer(&mut model, &reference, CAPTION, PROMPT, &config, &run).unwrap();
        assert!(!ckpt.exists(), "checkpoint left behind");
        for file in [SPATIAL_LORA_FILE, TEMPORAL_LORA_FILE] {
            let (x, y) = (
                read_lora(straight.join(file)).unwrap(),
                read_lora(resumed.join(file)).unwrap(),
            );
            assert_eq!(
                x.factors,
                y.factors,
                "{file} differs after resuming in {}",
                stage.name()
            );
        }
        assert_eq!(a.result.data, b.result.data, "generated clip differs");
        let _ = std::fs::remove_dir_all(&resumed);
    }

    // A rerun with another prompt reuses the tuned adapters (same files) and only regenerates.
    let before = std::fs::read(straight.join(TEMPORAL_LORA_FILE)).unwrap();
    let mut model = Model::tiny_random(11).unwrap();
    let c = run_transfer(
        &mut model,
        &reference,
        CAPTION,
        "a green star circles on a plain background",
        &config,
        &run,
    )
    .unwrap();
    assert_eq!(
        before,
        std::fs::read(straight.join(TEMPORAL_LORA_FILE)).unwrap()
    );
    assert_eq!(
        c.metrics["prompt"],
        "a green star circles on a plain background"
    );

    // The adapters' strength at generation: spatial 0 is the temporal adapter alone, bit for
    // bit; 0.5 is something between, and the default (1) both as trained (same tuned adapters,
    // regenerated). The reproduction check always uses both adapters as trained.
    let regenerate = |change: &dyn Fn(&mut TransferConfig)| {
        let mut config = config.clone();
        change(&mut config);
        let mut model = Model::tiny_random(11).unwrap();
        let outcome = run_transfer(&mut model, &reference, CAPTION, PROMPT, &config, &run).unwrap();
        let reproduction = outcome.metrics["reproduction"].clone();
        (outcome.result.data, reproduction)
    };
    let mut model = Model::tiny_random(11).unwrap();
    let temporal = load_adapter(&straight.join(TEMPORAL_LORA_FILE), &model).unwrap();
    model.wan.adapters.list = vec![temporal];
    // The run scores and returns its frames as stored (8-bit Y4M); compare likewise.
    let stored = |video: &Video| {
        store_frames(&straight.join("compare.y4m"), video)
            .unwrap()
            .data
    };
    let temporal_only = stored(&generate(&model, PROMPT, &config.generate).unwrap());
    let (default, default_check) = regenerate(&|_| {});
    let (without, _) = regenerate(&|c| c.spatial_scale = 0.0);
    let (halved, halved_check) = regenerate(&|c| c.spatial_scale = 0.5);
    let (both, both_check) = regenerate(&|c| c.spatial_scale = 1.0);
    let (weaker, _) = regenerate(&|c| {
        c.spatial_scale = 0.0;
        c.temporal_scale = 0.5;
    });
    assert_eq!(without, temporal_only);
    assert_eq!(default, both);
    assert_ne!(halved, temporal_only);
    assert_ne!(halved, both);
    assert_ne!(weaker, temporal_only);
    assert_eq!(default_check, both_check);
    assert_eq!(halved_check, both_check);
    assert_eq!(
        default_check["adapters"],
        serde_json::json!(["spatial", "temporal"])
    );

    // Adapters only at σ ≥ a cutoff: at the smallest σ the sampler evaluates every step still
    // has them (as with cutoff 0, bit for bit); just above it the last step is the base model's,
    // which is neither; the reproduction check keeps them at every step.
    let sigmas = fym_model::flow::inference_schedule(config.generate.steps, config.generate.shift)
        .unwrap()
        .sigmas;
    let last = sigmas[config.generate.steps - 1];
    let (at_last, _) = regenerate(&|c| c.generate.adapter_min_sigma = last);
    let (above_last, above_check) = regenerate(&|c| c.generate.adapter_min_sigma = last + 1e-3);
    let base_only =
        stored(&generate(&Model::tiny_random(11).unwrap(), PROMPT, &config.generate).unwrap());
    let (everywhere, _) = regenerate(&|c| c.generate.adapter_min_sigma = 0.0);
    assert_eq!(at_last, everywhere);
    assert_ne!(above_last, everywhere);
    assert_ne!(above_last, base_only);
    assert_eq!(above_check, default_check);

    // Guidance taken from the base model (all of it, or half) is neither the adapted guidance nor
    // the base model alone, and the half share is neither of the other two; the reproduction
    // check keeps the adapted guidance. With an adapter that changes nothing (LoRA B starts at
    // zero) every share is the base model's classifier-free guidance, up to rounding.
    let (split, split_check) = regenerate(&|c| c.generate.base_guidance = 1.0);
    let (half, _) = regenerate(&|c| c.generate.base_guidance = 0.5);
    assert_ne!(split, default);
    assert_ne!(split, base_only);
    assert_ne!(half, split);
    assert_ne!(half, default);
    assert_eq!(split_check, default_check);
    let mut model = Model::tiny_random(11).unwrap();
    let plain = fym::pipeline::lora::new_adapter(
        &model,
        AdapterKind::Plain,
        None,
        &config.lora,
        config.lora.temporal_targets,
        3,
    )
    .unwrap();
    model.wan.adapters.list = vec![plain];
    let options = |base_guidance| GenerateOptions {
        adapter_min_sigma: 0.0,
        base_guidance,
        ..config.generate
    };
    let adapted = generate(&model, PROMPT, &options(0.0)).unwrap();
    let mut worst = 0.0f32;
    for share in [0.5, 1.0] {
        let mixed = generate(&model, PROMPT, &options(share)).unwrap();
        for (a, b) in adapted.data.iter().zip(&mixed.data) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(
        worst < 1e-4,
        "zero adapter: base and adapted guidance differ by {worst}"
    );
    assert_eq!(
        before,
        std::fs::read(straight.join(TEMPORAL_LORA_FILE)).unwrap(),
        "regenerating must not retrain"
    );
    let _ = std::fs::remove_dir_all(&straight);
}

#[test]
fn baselines_write_the_adapters_they_train() {
    let reference = moving_square(8, 16);
    let cases: [(Method, bool, bool, bool); 4] = [
        (Method::NaiveTwoStage, false, true, true),
        (Method::SingleLora, false, false, true),
        (Method::FymNoAdaptiveRope, true, true, true),
        (Method::NoTuning, false, false, false),
    ];
    for (method, heads, spatial, temporal) in cases {
        let out = temp_dir(method.name());
        let mut model = Model::tiny_random(2).unwrap();
        let run = RunOptions {
            out: out.clone(),
            quiet: true,
            stop_after: None,
        };
        let o = run_transfer(
            &mut model,
            &reference,
            CAPTION,
            PROMPT,
            &small_config(method),
            &run,
        )
        .unwrap();
        assert_eq!(out.join("heads.json").exists(), heads, "{}", method.name());
        assert_eq!(
            out.join(SPATIAL_LORA_FILE).exists(),
            spatial,
            "{}",
            method.name()
        );
        assert_eq!(
            out.join(TEMPORAL_LORA_FILE).exists(),
            temporal,
            "{}",
            method.name()
        );
        if temporal {
            let kind = read_lora(out.join(TEMPORAL_LORA_FILE)).unwrap().kind;
            let expected = if heads {
                AdapterKind::Temporal
            } else {
                AdapterKind::Plain
            };
            assert_eq!(kind, expected, "{}", method.name());
        }
        assert_eq!(o.metrics["method"], method.name());
        assert_eq!(Method::parse(method.name()).unwrap(), method);
        let _ = std::fs::remove_dir_all(&out);
    }
    assert!(Method::parse("motiondirector").is_err());
}

#[test]
fn noisy_batch_matches_the_flow_matching_definition() {
    let model = Model::tiny_random(1).unwrap();
    let reference = moving_square(8, 16);
    let x0 = model.video_to_tensor(&reference).unwrap().to_vec();
    let plane = 16 * 16;
    let clips = vec![vec![1, 4, 6], vec![0, 0, 7]];
    let sigmas = TrainSigmaSampler {
        distribution: SigmaDistribution::Uniform,
        shift: 3.0,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let b = noisy_batch(&[&x0[..]; 2], 8, plane, &clips, &sigmas, &mut rng).unwrap();
    assert_eq!(b.inputs.shape(), &[2, 3, 3, plane]);
    let (xt, v) = (b.inputs.to_vec(), b.targets.to_vec());
    for (ci, frames) in clips.iter().enumerate() {
        let sigma = b.timesteps[ci] / 1000.0;
        assert!((0.0..=1.0).contains(&sigma));
        for c in 0..3 {
            for (fi, &f) in frames.iter().enumerate() {
                for p in 0..plane {
                    let i = ((ci * 3 + c) * 3 + fi) * plane + p;
                    // x_σ = (1−σ)·x0 + σ·ε and v = ε − x0 give x0 = x_σ − σ·v.
                    let back = xt[i] - sigma * v[i];
                    let want = x0[(c * 8 + f) * plane + p];
                    assert!(
                        (back - want).abs() < 1e-4,
                        "clip {ci} c {c} frame {f}: {back} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn caption_dropout_gives_the_empty_caption_to_that_share_of_clips() {
    use rand::Rng;
    let model = Model::tiny_random(1).unwrap();
    let caption = model.encode(&[CAPTION]).unwrap().to_vec();
    let empty = model.encode(&[""]).unwrap().to_vec();
    assert_ne!(caption, empty);
    let row = caption.len();

    // No dropout: the caption in every row, and the step's random stream left as it was.
    let plain = TrainCaptions::new(&model, CAPTION, 3, 0.0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let text = plain.draw(&model, &mut rng).unwrap();
    assert_eq!(text.shape()[0], 3);
    assert!(text.to_vec().chunks(row).all(|r| r == caption.as_slice()));
    let untouched: u64 = rand::rngs::StdRng::seed_from_u64(5).gen();
    assert_eq!(rng.gen::<u64>(), untouched);

    // A quarter dropped: each row is the caption or the empty caption, about a quarter empty.
    let dropping = TrainCaptions::new(&model, CAPTION, 4, 0.25).unwrap();
    let (mut dropped, mut total) = (0, 0);
    for step in 0..200 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(step);
        for r in dropping
            .draw(&model, &mut rng)
            .unwrap()
            .to_vec()
            .chunks(row)
        {
            if r == empty.as_slice() {
                dropped += 1;
            } else {
                assert_eq!(r, caption.as_slice());
            }
            total += 1;
        }
    }
    let share = dropped as f64 / total as f64;
    assert!(
        (0.2..0.3).contains(&share),
        "empty caption in {share} of 800 clips"
    );
}

/// Emphasis 4 on `square`'s pixels: 1 + 4 = 5 there, 1 elsewhere, then scaled to mean 1.
fn assert_weighs_the_square_5_to_1(e: &MotionEmphasis, square: &Video) {
    let plane = square.height * square.width;
    let mut sum = 0.0f64;
    for f in 0..square.frames {
        for p in 0..plane {
            let w = e.at(f, p);
            sum += w as f64;
            let on_square = square.pixel(f, p / square.width, p % square.width)[0] > 0.5;
            let ratio = if on_square { 5.0 } else { 1.0 };
            assert!(
                (w / e.at(0, plane - 1) - ratio).abs() < 1e-4,
                "frame {f} pixel {p}: {w}"
            );
        }
    }
    assert!((sum / (square.frames * plane) as f64 - 1.0).abs() < 1e-5);
}

#[test]
fn motion_emphasis_weighs_where_the_reference_changes() {
    let (frames, size) = (8, 16);
    let plane = size * size;
    // Values in [3, F, plane], as the pipeline holds the reference: the moving square on
    // static grey stripes.
    let square = moving_square(frames, size);
    let mut x0 = vec![0.0f32; 3 * frames * plane];
    for c in 0..3 {
        for f in 0..frames {
            for y in 0..size {
                for x in 0..size {
                    let rgb = square.pixel(f, y, x);
                    let stripe = if x % 4 < 2 { 0.2 } else { -0.4 };
                    let v = if rgb[0] > 0.5 {
                        rgb[c] * 2.0 - 1.0
                    } else {
                        stripe
                    };
                    x0[(c * frames + f) * plane + y * size + x] = v;
                }
            }
        }
    }
    assert!(MotionEmphasis::new(&x0, frames, plane, 0.0).is_none());
    let e = MotionEmphasis::new(&x0, frames, plane, 4.0).unwrap();
    assert_weighs_the_square_5_to_1(&e, &square);
    // Gathered in noisy_batch's layout: [clip, channel, clip frame, pixel].
    let clips = vec![vec![2, 5], vec![7, 0]];
    let g = e.gather(&clips).unwrap();
    assert_eq!(g.shape(), &[2, 3, 2, plane]);
    let g = g.to_vec();
    for (ci, clip) in clips.iter().enumerate() {
        for c in 0..3 {
            for (fi, &f) in clip.iter().enumerate() {
                for p in 0..plane {
                    assert_eq!(g[((ci * 3 + c) * 2 + fi) * plane + p], e.at(f, p));
                }
            }
        }
    }
    // When every pixel changes (the stripes shift by a pixel a frame: camera motion), there is
    // no still background to weigh the subject against, and no emphasis.
    let panning: Vec<f32> = (0..3 * frames * plane)
        .map(|i| {
            let (f, p) = ((i / plane) % frames, i % plane);
            if (p % size + f) % 4 < 2 {
                0.2
            } else {
                -0.4
            }
        })
        .collect();
    assert!(MotionEmphasis::new(&panning, frames, plane, 4.0).is_none());
}

#[test]
fn subject_emphasis_weighs_the_subject_on_a_panning_background() {
    let (frames, size) = (8, 16);
    let plane = size * size;
    // The moving square over panning stripes as a video (for the segmenter) and as
    // [3, F, plane] model values (for the motion mask).
    let square = moving_square(frames, size);
    let video = on_panning_stripes(&square);
    let mut x0 = vec![0.0f32; 3 * frames * plane];
    for c in 0..3 {
        for f in 0..frames {
            for p in 0..plane {
                x0[(c * frames + f) * plane + p] =
                    video.pixel(f, p / size, p % size)[c] * 2.0 - 1.0;
            }
        }
    }
    assert!(MotionEmphasis::on_subject(&video, 0.0).is_none());
    let e = MotionEmphasis::on_subject(&video, 4.0).unwrap();
    assert_weighs_the_square_5_to_1(&e, &square);
    // No subject on a plain panning texture.
    let mut empty = video.clone();
    for f in 0..frames {
        for y in 0..size {
            for x in 0..size {
                empty.set_pixel(f, y, x, [if (x + f) % 4 < 2 { 0.6 } else { 0.3 }; 3]);
            }
        }
    }
    assert!(MotionEmphasis::on_subject(&empty, 4.0).is_none());
    // The default mask has no emphasis here (the background moves); the fallback and the
    // subject mask weigh the subject.
    assert!(MotionEmphasis::choose(EmphasisMask::Motion, &video, &x0, 4.0).is_none());
    for mask in [EmphasisMask::MotionElseSubject, EmphasisMask::Subject] {
        let (chosen, kind) = MotionEmphasis::choose(mask, &video, &x0, 4.0).unwrap();
        assert_eq!(kind, EmphasisMask::Subject);
        assert_eq!(chosen.at(3, 0), e.at(3, 0));
    }
    for name in ["motion", "motion-else-subject", "subject"] {
        assert_eq!(EmphasisMask::parse(name).unwrap().name(), name);
    }
    assert!(EmphasisMask::parse("everything").is_none());
}

#[test]
fn matted_tuning_sees_the_subject_on_black_with_a_plain_caption() {
    let square = moving_square(8, 16);
    let reference = on_panning_stripes(&square);
    let caption = "a red circle circles on a striped background";
    for method in [Method::Fym, Method::NoTuning] {
        let out = temp_dir(&format!("matte-{}", method.name()));
        let mut model = Model::tiny_random(2).unwrap();
        let config = TransferConfig {
            matte: Matte::Subject,
            ..small_config(method)
        };
        let run = RunOptions {
            out: out.clone(),
            quiet: true,
            stop_after: None,
        };
        let o = run_transfer(&mut model, &reference, caption, PROMPT, &config, &run).unwrap();
        assert_eq!(o.metrics["config"]["matte"], "subject");
        assert_eq!(o.metrics["caption"], caption);
        let matted_file = out.join(MATTED_REFERENCE_FILE);
        if method == Method::NoTuning {
            // Nothing is tuned, so nothing is matted.
            assert_eq!(o.metrics["tuning_caption"], caption);
            assert!(!matted_file.exists());
        } else {
            assert_eq!(
                o.metrics["tuning_caption"],
                "a red circle circles on a plain background"
            );
            // What the tuning saw: the square where it is in each frame, black elsewhere
            // (8-bit storage: within half a level).
            let matted = read_video(&matted_file).unwrap();
            for f in 0..8 {
                for y in 0..16 {
                    for x in 0..16 {
                        let (want, got) = (square.pixel(f, y, x), matted.pixel(f, y, x));
                        for c in 0..3 {
                            assert!((want[c] - got[c]).abs() < 0.01, "{f} {y} {x}: {got:?}");
                        }
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&out);
    }
    assert_eq!(Matte::parse("none"), Some(Matte::None));
    assert_eq!(Matte::parse(Matte::Subject.name()), Some(Matte::Subject));
    assert!(Matte::parse("background").is_none());
}

#[test]
fn two_subjects_of_a_prompt_are_bound_to_the_reference_subjects() {
    // A red square moving right and a blue one held still, both clear of the frame border (the
    // matte takes the border's colours for background).
    let mut reference = Video::new(8, 16, 16);
    for f in 0..8 {
        for y in 3..6 {
            for x in 3 + f..6 + f {
                reference.set_pixel(f, y, x, [0.9, 0.1, 0.1]);
            }
        }
        for y in 10..13 {
            for x in 3..6 {
                reference.set_pixel(f, y, x, [0.1, 0.1, 0.9]);
            }
        }
    }
    let caption = "a red square moves right and a blue square on a plain background";
    let prompt = "a green circle moves right and a yellow star on a plain background";
    let one_subject = "a green circle moves right on a plain background";
    let transfer_with = |method: Method, bind_subjects: bool, prompt: &str| {
        let out = temp_dir(&format!(
            "bind-{}-{bind_subjects}-{}",
            method.name(),
            prompt.len()
        ));
        let mut model = Model::tiny_random(2).unwrap();
        let config = TransferConfig {
            bind_subjects,
            ..small_config(method)
        };
        let run = RunOptions {
            out: out.clone(),
            quiet: true,
            stop_after: None,
        };
        let o = run_transfer(&mut model, &reference, caption, prompt, &config, &run).unwrap();
        let _ = std::fs::remove_dir_all(&out);
        assert_eq!(o.metrics["config"]["bind_subjects"], bind_subjects);
        (o.metrics["subjects_bound"].as_bool().unwrap(), o.result)
    };
    let transfer =
        |bind_subjects: bool, prompt: &str| transfer_with(Method::Fym, bind_subjects, prompt);
    let (bound, with) = transfer(true, prompt);
    let (unbound, without) = transfer(false, prompt);
    assert!(bound && !unbound);
    // The same tuning and noise; only what each token reads differs.
    let diff = with
        .data
        .iter()
        .zip(&without.data)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff > 1e-3, "binding changed nothing ({diff})");
    // A prompt with one subject is not bound, and not an error.
    let (bound, _) = transfer(true, one_subject);
    assert!(!bound);
    // The untuned baseline sees nothing of the reference, its subjects' places included.
    let (bound, _) = transfer_with(Method::NoTuning, true, prompt);
    assert!(!bound);
}

#[test]
fn recolouring_changes_the_motion_tuning_only_and_only_when_asked() {
    let reference = moving_square(8, 16);
    let caption = "a red square moves right on a plain background";
    let tune_with = |recolour: f32, matte: Matte| {
        let out = temp_dir(&format!("recolour-{recolour}-{}", matte.name()));
        let mut model = Model::tiny_random(2).unwrap();
        let config = TransferConfig {
            recolour,
            matte,
            ..small_config(Method::Fym)
        };
        let run = RunOptions {
            out: out.clone(),
            quiet: true,
            stop_after: None,
        };
        let o = run_transfer(&mut model, &reference, caption, PROMPT, &config, &run).unwrap();
        assert_eq!(number(&o.metrics, &["config", "recolour"]), recolour as f64);
        let read = |name: &str| read_lora(out.join(name)).unwrap().factors;
        let adapters = (read(SPATIAL_LORA_FILE), read(TEMPORAL_LORA_FILE));
        let _ = std::fs::remove_dir_all(&out);
        adapters
    };
    let (spatial, temporal) = tune_with(0.0, Matte::Subject);
    let (spatial_recoloured, temporal_recoloured) = tune_with(1.0, Matte::Subject);
    // The appearance stage sees the reference as it is; the motion stage sees other colours.
    assert!(spatial == spatial_recoloured, "the spatial stage changed");
    assert!(
        temporal != temporal_recoloured,
        "recolouring changed nothing"
    );
    // Without the matte there is no black to tell the subject from: nothing is recoloured.
    let (_, temporal_unmatted) = tune_with(0.0, Matte::None);
    let (_, temporal_unmatted_asked) = tune_with(1.0, Matte::None);
    assert!(
        temporal_unmatted == temporal_unmatted_asked,
        "recoloured without the matte"
    );
    let bad = TransferConfig {
        recolour: 1.5,
        ..small_config(Method::Fym)
    };
    assert!(bad.validate().unwrap_err().to_string().contains("recolour"));
}

#[test]
fn captions_drawn_per_clip_encode_each_clip_s_text() {
    let model = Model::tiny_random(1).unwrap();
    let captions = TrainCaptions::new(&model, CAPTION, 2, 0.0).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let same = captions
        .draw_each(&model, &mut rng, &[CAPTION, CAPTION])
        .unwrap();
    assert_eq!(
        same.to_vec(),
        captions.draw(&model, &mut rng).unwrap().to_vec()
    );
    let mixed = captions
        .draw_each(&model, &mut rng, &[CAPTION, PROMPT])
        .unwrap();
    assert_eq!(
        mixed.to_vec(),
        model.encode(&[CAPTION, PROMPT]).unwrap().to_vec()
    );
    assert!(captions.draw_each(&model, &mut rng, &[CAPTION]).is_err());
}

#[test]
fn sparse_clips_keep_their_place_on_the_timeline() {
    let model = Model::tiny_random(1).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let sampling = FrameSampling::Sparse {
        count: 3,
        positions: TemporalPositions::Adaptive,
    };
    let (clips, pos) = draw_clips(&model, sampling, 4, &mut rng).unwrap();
    // p_i = F/2 + (F/F_s)·(i − F_s/2) with F = 8, F_s = 3.
    let want: Vec<f64> = (0..3).map(|i| 4.0 + 8.0 / 3.0 * (i as f64 - 1.5)).collect();
    let pos = pos.unwrap();
    for (p, w) in pos.iter().zip(&want) {
        assert!((p - w).abs() < 1e-12);
    }
    for clip in &clips {
        assert_eq!(clip.len(), 3);
        // One frame from each of the bins [0, 2), [2, 5), [5, 8).
        assert!(
            clip[0] < 2 && (2..5).contains(&clip[1]) && clip[2] >= 5,
            "{clip:?}"
        );
    }
    let consecutive = FrameSampling::Sparse {
        count: 3,
        positions: TemporalPositions::Consecutive,
    };
    let (_, pos) = draw_clips(&model, consecutive, 2, &mut rng).unwrap();
    assert_eq!(pos.unwrap(), vec![0.0, 1.0, 2.0]);
    let (clips, pos) = draw_clips(&model, FrameSampling::Dense, 2, &mut rng).unwrap();
    assert_eq!(clips[0], (0..8).collect::<Vec<_>>());
    assert!(pos.is_none());
}

fn expect_failure(args: &[&str], needle: &str) {
    let out = fym_bin().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "{args:?}: error does not mention {needle:?}: {stderr}"
    );
}

#[test]
fn bad_inputs_give_clear_errors() {
    let dir = temp_dir("bad");
    let out = dir.join("out");
    let out_s = out.to_str().unwrap();
    let garbage = dir.join("garbage.gif");
    std::fs::write(&garbage, b"not a gif at all").unwrap();
    let one_frame = dir.join("one.gif");
    write_gif(&one_frame, &moving_square(1, 16), 8.0).unwrap();
    let good = dir.join("good.gif");
    write_gif(&good, &moving_square(8, 16), 8.0).unwrap();
    let (g, gf, o) = (
        good.to_str().unwrap(),
        garbage.to_str().unwrap(),
        one_frame.to_str().unwrap(),
    );
    let base = ["transfer", "--model", "random:1", "--quiet", "--out", out_s];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |extra: &[&str], needle: &str| {
        let args = with(extra);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        expect_failure(&refs, needle);
    };
    let missing = dir.join("missing.gif");
    run(
        &[
            "--video",
            missing.to_str().unwrap(),
            "--caption",
            CAPTION,
            "--prompt",
            PROMPT,
        ],
        "does not exist",
    );
    run(
        &["--video", gf, "--caption", CAPTION, "--prompt", PROMPT],
        "garbage.gif",
    );
    run(
        &["--video", o, "--caption", CAPTION, "--prompt", PROMPT],
        "at least 2 frames",
    );
    run(&["--video", g, "--prompt", PROMPT], "--caption is required");
    run(
        &["--video", g, "--caption", CAPTION, "--prompt", "  "],
        "empty",
    );
    run(
        &[
            "--video",
            g,
            "--caption",
            CAPTION,
            "--prompt",
            "a red dragon circles",
        ],
        "dragon",
    );
    run(
        &[
            "--video",
            g,
            "--caption",
            "a purple unicorn",
            "--prompt",
            PROMPT,
        ],
        "unicorn",
    );
    // Without a GPU, --device cuda says so and points at the CPU.
    if fym_autograd::Device::cuda(0).is_err() {
        run(&["--device", "cuda"], "--device cpu");
    }
    run(&["--device", "tpu"], "choose cpu or cuda");
    run(&["--method", "magic"], "unknown method");
    run(&["--sampler", "ddim"], "euler or stochastic");
    run(
        &["--train-shift", "0"],
        "training shift must be a positive number",
    );
    run(&["--motion-weight=-1"], "motion weight must be ≥ 0");
    run(
        &["--caption-dropout", "1"],
        "caption dropout must be in [0, 1)",
    );
    run(&["--motion-emphasis=-2"], "motion emphasis must be ≥ 0");
    run(&["--recolour", "1.5"], "recolour must be in [0, 1]");
    run(
        &["--frame-noise-share", "2"],
        "frame noise share must be in [0, 1]",
    );
    run(&["--emphasis-mask", "everywhere"], "--emphasis-mask");
    run(&["--matte", "background"], "choose none or subject");
    run(&["--lr-schedule", "linear"], "choose constant or cosine");
    run(
        &["--bind-subjects", "yes"],
        "--bind-subjects \"yes\": choose on or off",
    );
    run(
        &["--spatial-scale=-0.5"],
        "spatial adapter scale must be ≥ 0",
    );
    run(
        &["--temporal-scale=NaN"],
        "temporal adapter scale must be ≥ 0",
    );
    expect_failure(
        &["transfer", "--model", "/no/such/model", "--out", out_s],
        "/no/such/model",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bundled_reference_is_in_the_model_vocabulary() {
    let info: Value = serde_json::from_str(fym::cli::transfer::BUNDLED_INFO).unwrap();
    let model = Model::tiny_random(0).unwrap();
    for key in ["caption", "prompt"] {
        model
            .check_prompt(key, info[key].as_str().unwrap())
            .unwrap();
    }
    let dir = temp_dir("bundled");
    let path = dir.join("reference.gif");
    std::fs::write(&path, fym::cli::transfer::BUNDLED_VIDEO).unwrap();
    let video = read_gif(&path).unwrap();
    assert!(
        video.frames >= 8 && video.height >= 16,
        "{}x{}",
        video.frames,
        video.height
    );
    // It shows motion: the first and middle frames differ (a full turn ends where it starts).
    let diff: f32 = video
        .frame(0)
        .iter()
        .zip(video.frame(video.frames / 2))
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(diff > 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fym transfer --device cuda`: the bundled example on the built-in model, tuned and sampled on
/// the GPU, against the same run on the CPU (default method and LoRA, fewer steps): the same head
/// labels, adapters within bf16 tolerance, the same generated clip and motion fidelity to a few
/// hundredths. (The CPU run itself moves that much when its weights move by 1e-6: tuning and
/// sampling amplify rounding.) Skips, saying why, without a GPU.
#[test]
fn transfer_on_the_gpu_matches_the_cpu() {
    let Some(device) = common::gpu_or_skip() else {
        return;
    };
    let info: Value = serde_json::from_str(fym::cli::transfer::BUNDLED_INFO).unwrap();
    let (caption, prompt) = (
        info["caption"].as_str().unwrap(),
        info["prompt"].as_str().unwrap(),
    );
    let dir = temp_dir("gpu");
    let path = dir.join("reference.gif");
    std::fs::write(&path, fym::cli::transfer::BUNDLED_VIDEO).unwrap();
    let config = TransferConfig {
        spatial_steps: 30,
        temporal_steps: 60,
        ..TransferConfig::default()
    };
    let run = |device: fym_autograd::Device| {
        let mut model = Model::load("builtin").unwrap();
        model.to_device(device).unwrap();
        let reference = fym::cli::transfer::read_reference(&path, &model).unwrap();
        let out = dir.join(device.to_string().replace(':', "-"));
        let options = RunOptions {
            out: out.clone(),
            quiet: true,
            stop_after: None,
        };
        let outcome =
            run_transfer(&mut model, &reference, caption, prompt, &config, &options).unwrap();
        (outcome, out)
    };
    let (cpu, cpu_dir) = run(fym_autograd::Device::Cpu);
    let (gpu, gpu_dir) = run(device);
    let (want, got) = (cpu.labels.unwrap(), gpu.labels.unwrap());
    let entries = |l: &HeadLabels| l.layers.concat();
    let mut score_diff = 0.0f32;
    for (w, g) in entries(&want).iter().zip(&entries(&got)) {
        assert_eq!(w.kind, g.kind, "head labels differ");
        let (a, b) = (w.scores, g.scores);
        for (x, y) in [
            (a.cos_spatial, b.cos_spatial),
            (a.cos_temporal, b.cos_temporal),
            (a.mass_spatial, b.mass_spatial),
            (a.mass_temporal, b.mass_temporal),
        ] {
            score_diff = score_diff.max((x - y).abs());
        }
    }
    println!("head scores: largest difference {score_diff:.1e}");
    assert!(score_diff <= 1e-4);
    for file in [SPATIAL_LORA_FILE, TEMPORAL_LORA_FILE] {
        let (want, got) = (
            read_lora(cpu_dir.join(file)).unwrap(),
            read_lora(gpu_dir.join(file)).unwrap(),
        );
        // ‖got − want‖ / ‖want‖ over every factor: AdamW's first steps move each weight by
        // about ±lr whatever its gradient's size, so single weights with gradients at rounding
        // level may differ by that much on any two machines; the adapter as a whole may not.
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for (name, w) in &want.factors {
            let g = &got.factors[name];
            for (a, b) in [(&g.a, &w.a), (&g.b, &w.b)] {
                for (x, y) in a.data.iter().zip(&b.data) {
                    diff += (*x as f64 - *y as f64).powi(2);
                    norm += (*y as f64).powi(2);
                }
            }
        }
        let relative = (diff / norm.max(1e-30)).sqrt();
        println!("{file}: relative difference {relative:.1e}");
        assert!(relative <= 1e-2, "{file}: {relative}");
    }
    let diffs: Vec<f32> = cpu
        .result
        .data
        .iter()
        .zip(&gpu.result.data)
        .map(|(a, b)| (a - b).abs())
        .collect();
    let pixels = diffs.iter().fold(0.0f32, |m, d| m.max(*d));
    let mean_pixels = diffs.iter().sum::<f32>() / diffs.len() as f32;
    let fidelity = |m: &Value| number(m, &["reproduction", "motion_fidelity"]);
    let seconds = |m: &Value| number(m, &["seconds", "tuning"]);
    println!(
        "result: pixel difference mean {mean_pixels:.1e}, max {pixels:.1e}; motion fidelity cpu {:.4} gpu {:.4}; \
         tuning cpu {:.1} s, gpu {:.1} s",
        fidelity(&cpu.metrics),
        fidelity(&gpu.metrics),
        seconds(&cpu.metrics),
        seconds(&gpu.metrics)
    );
    assert!(
        mean_pixels <= 0.01,
        "generated clips differ by {mean_pixels} on average"
    );
    assert!((fidelity(&cpu.metrics) - fidelity(&gpu.metrics)).abs() <= 0.05);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Regenerates assets/reference.gif (run with `--ignored`): a red circle circling on the base
/// model's black background, 16 frames of 32×32.
#[test]
#[ignore]
fn write_bundled_reference() {
    use fym::world::{caption, render, Camera, Color, Object, Scene, Shape, Trajectory};
    let scene = Scene {
        background: fym::base::data::black_background(),
        camera: Camera::still(),
        objects: vec![Object::new(
            Shape::Circle,
            Color::Red,
            0.2,
            Trajectory::Circle {
                center: [0.5, 0.5],
                radius: 0.25,
                start_angle: 0.0,
                turns: 1.0,
                clockwise: true,
            },
            0.0,
        )],
        figure: None,
    };
    assert_eq!(caption(&scene), CAPTION);
    let (video, _) = render(&scene, 16, 32, 32);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/reference.gif");
    write_gif(path, &video, 8.0).unwrap();
}

/// Per-step timing of the default recipe on a random model of the built-in model's size (run D of
/// the prototype: dim 128, 6 layers, patch (2, 4, 4), 8 frames of 16×16). Run with `--ignored
/// --nocapture`; prints seconds per step of each stage and per generation.
#[test]
#[ignore]
fn step_timing_at_builtin_size() {
    use fym::base::{BaseModel, ClipSpec};
    use fym_model::WanConfig;
    let config = WanConfig {
        patch_size: [2, 4, 4],
        num_attention_heads: 4,
        attention_head_dim: 32,
        in_channels: 3,
        out_channels: 3,
        text_dim: 64,
        freq_dim: 64,
        ffn_dim: 512,
        num_layers: 6,
        ..WanConfig::dev()
    };
    let spec = ClipSpec {
        frames: 8,
        height: 16,
        width: 16,
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let words = fym::world::vocabulary();
    let base = BaseModel::new_random(config, spec, &words, 16, &mut rng, false).unwrap();
    let mut model = Model::from_base(base, "random-builtin-size".into()).unwrap();
    let reference = moving_square(8, 16);
    let mut c = TransferConfig {
        spatial_steps: 20,
        temporal_steps: 20,
        ..TransferConfig::default()
    };
    c.generate.steps = 30;
    let out = temp_dir("timing");
    let run = RunOptions {
        out: out.clone(),
        quiet: true,
        stop_after: None,
    };
    let o = run_transfer(&mut model, &reference, CAPTION, PROMPT, &c, &run).unwrap();
    let s = &o.metrics["seconds"];
    println!(
        "spatial {:.4} s/step, temporal {:.4} s/step, generate {:.2} s, classify {:.3} s",
        number(s, &["spatial"]) / 20.0,
        number(s, &["temporal"]) / 20.0,
        number(s, &["generate"]),
        number(s, &["classify"])
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// Sparse sampling by default takes a quarter of a long clip (at least 2 latent frames) and
/// every frame of a short one; an explicit count is kept.
#[test]
fn default_sparse_count_depends_on_the_clip_length() {
    let c = TransferConfig::default();
    assert_eq!(c.sparse_count(4).unwrap(), 4);
    assert_eq!(c.sparse_count(7).unwrap(), 7);
    assert_eq!(c.sparse_count(8).unwrap(), 2);
    assert_eq!(c.sparse_count(21).unwrap(), 6);
    let explicit = TransferConfig {
        sparse_frames: Some(2),
        ..TransferConfig::default()
    };
    assert_eq!(explicit.sparse_count(4).unwrap(), 2);
    assert!(explicit.sparse_count(1).is_err());
}
