//! The base model: training world and held-out captions, model files, clip conversion,
//! sampling, bit-for-bit training resume, and the gate's measures.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use fym::base::data::World;
use fym::base::eval::{gate_captions, head_stats, score_clip};
use fym::base::files::StoreDtype;
use fym::base::train::{TrainConfig, Trainer};
use fym::base::{BaseModel, ClipSpec, SampleOptions, Sampler};
use fym::video::Video;
use fym::world::{caption, render};
use fym_autograd::Tensor;
use fym_model::ForwardOptions;
use rand::SeedableRng;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fym-base-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A model small enough to train a few steps in a test.
fn tiny_config() -> TrainConfig {
    TrainConfig {
        frames: 4,
        height: 8,
        width: 8,
        patch_size: [2, 4, 4],
        heads: 2,
        head_dim: 8,
        layers: 2,
        ffn_dim: 32,
        text_dim: 8,
        freq_dim: 8,
        batch: 3,
        warmup_steps: 2,
        decay_steps: 4,
        ema_decay: 0.9,
        motion_loss_weight: 0.5,
        ..TrainConfig::default()
    }
}

/// The gate's held-out captions `range`, each rendered as a clip of `spec` (scenes drawn with a
/// fixed seed).
fn rendered_gate_clips(spec: &ClipSpec, range: std::ops::Range<usize>) -> Vec<(String, Video)> {
    let world = World::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    gate_captions(&world)[range]
        .iter()
        .map(|(text, asked)| {
            let scene = world.scene(*asked, &mut rng);
            (
                text.clone(),
                render(&scene, spec.frames, spec.height, spec.width).0,
            )
        })
        .collect()
}

/// A random tiny model whose output layer is random too (a fresh model's is zero, which would
/// make every sample the same flat clip).
fn tiny_model() -> BaseModel {
    let c = tiny_config();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let model = BaseModel::new_random(
        c.wan_config(),
        c.spec(),
        &fym::world::vocabulary(),
        24,
        &mut rng,
        false,
    )
    .unwrap();
    for name in ["proj_out.weight", "proj_out.bias"] {
        let t = model.wan.param(name).unwrap();
        let values = Tensor::randn(t.shape(), &mut rng)
            .scale(0.5)
            .unwrap()
            .to_vec();
        t.data_mut().copy_from_slice(&values);
    }
    model
}

/// The gate's head statistics are the transfer classifier's streaming statistics
/// (fym_model::classify::head_scores) of each clip noised with the seed's noise stream, averaged
/// over the clips.
#[test]
fn gate_head_statistics_average_the_classifier_scores_over_clips() {
    let model = tiny_model();
    let spec = tiny_config().spec();
    let clips = rendered_gate_clips(&spec, 3..5);
    let (sigma, seed) = (0.6, 9);
    let stats = head_stats(&model, &clips, sigma, seed).unwrap();

    let mut noise_rng = rand::rngs::StdRng::seed_from_u64(seed);
    let per_clip: Vec<_> = clips
        .iter()
        .map(|(text, clip)| {
            let x0 = model.video_to_tensor(clip).unwrap().to_vec();
            let mut noise = vec![0.0f32; x0.len()];
            fym_model::flow::fill_standard_normal(&mut noise_rng, &mut noise);
            let xs = fym_model::flow::add_noise(&x0, &noise, sigma).unwrap();
            let x = Tensor::from_vec(xs, &[1, 3, spec.frames, spec.height, spec.width]).unwrap();
            let emb = model.text.encode(&[text.as_str()]).unwrap();
            let t = [fym_model::flow::sigma_to_timestep(sigma)];
            fym_model::classify::head_scores(&model.wan, &x, &t, &emb, &ForwardOptions::default())
                .unwrap()
        })
        .collect();
    assert_eq!(stats.len(), 2);
    for layer in 0..2 {
        for head in 0..2 {
            let (a, b) = (&per_clip[0][layer][head], &per_clip[1][layer][head]);
            let s = stats[layer][head];
            let close = |x: f32, y: f32, z: f32| (x - (y + z) / 2.0).abs() <= 1e-6;
            assert!(
                close(s.cos_spatial, a.cos_spatial, b.cos_spatial)
                    && close(s.cos_temporal, a.cos_temporal, b.cos_temporal)
                    && close(s.mass_spatial, a.mass_spatial, b.mass_spatial)
                    && close(s.mass_temporal, a.mass_temporal, b.mass_temporal),
                "layer {layer} head {head}: {s:?} vs {a:?} and {b:?}"
            );
            // Different clips give different maps: the average is not just one of them.
            assert_ne!(a.mass_spatial, b.mass_spatial);
        }
    }
}

/// The gate's measures must accept what the renderer draws for the held-out captions at the
/// model's clip size: otherwise no model could pass the gate.
#[test]
fn rendered_held_out_clips_pass_the_gate_measures() {
    let world = World::default();
    let spec = TrainConfig::default().spec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let cases = gate_captions(&world);
    assert_eq!(cases.len(), 50);
    for (text, asked) in &cases {
        let scene = world.scene(*asked, &mut rng);
        assert_eq!(&caption(&scene), text);
        let (v, _) = render(&scene, spec.frames, spec.height, spec.width);
        let s = score_clip(&v, asked);
        assert!(s.coherent, "{text}: {s:?}");
        assert!(s.caption_match, "{text}: {s:?}");
        assert!(s.direction_match, "{text}: {s:?}");
    }
    // A clip of the wrong direction must fail the direction measure.
    let (text, asked) = &cases[0];
    let mut other = *asked;
    other.direction = match asked.direction {
        fym::world::Direction::Left => fym::world::Direction::Right,
        _ => fym::world::Direction::Left,
    };
    let (v, _) = render(
        &world.scene(other, &mut rng),
        spec.frames,
        spec.height,
        spec.width,
    );
    assert!(!score_clip(&v, asked).direction_match, "{text}");
}

/// The gate's shape measure against the renderer's own clips, clean and with per-pixel noise of
/// σ = 0.1 (leftover noise of that size is what a sample's outline carries): the template
/// classifier names every clean frame and nearly every noisy one; the earlier fill measure, whose
/// radius is one extreme pixel, loses most noisy frames (circles above all). Model-independent:
/// this is why the gate measures shape by template overlap.
#[test]
fn template_classifier_survives_pixel_noise_where_fill_does_not() {
    use fym::metrics::segment::{main_object, Background, BackgroundHint};
    use fym::metrics::shape::{classify_shape, classify_shape_by_fill};
    let world = World::default();
    let spec = TrainConfig::default().spec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for noise in [0.0f32, 0.1] {
        let (mut frames, mut by_template, mut by_fill) = (0, 0, 0);
        let mut circles = (0, 0, 0);
        for _ in 0..60 {
            let scene = world.training_scene(&[], &mut rng);
            let want = scene.objects[0].shape;
            let (mut v, _) = render(&scene, spec.frames, spec.height, spec.width);
            let mut eps = vec![0.0f32; v.data.len()];
            fym_model::flow::fill_standard_normal(&mut rng, &mut eps);
            for (x, e) in v.data.iter_mut().zip(&eps) {
                *x = (*x + noise * e).clamp(0.0, 1.0);
            }
            let background = Background::estimate(&v, &BackgroundHint::Color([0.0; 3]));
            for f in 0..v.frames {
                let Some(object) = main_object(&v, f, &background) else {
                    continue;
                };
                let (t, fill) = (
                    classify_shape(&object.mask) == Some(want),
                    classify_shape_by_fill(&object.mask) == Some(want),
                );
                frames += 1;
                by_template += t as usize;
                by_fill += fill as usize;
                if want == fym::world::Shape::Circle {
                    circles = (
                        circles.0 + 1,
                        circles.1 + t as usize,
                        circles.2 + fill as usize,
                    );
                }
            }
        }
        let (t, fill) = (
            by_template as f64 / frames as f64,
            by_fill as f64 / frames as f64,
        );
        println!(
            "noise σ {noise}: {frames} frames, template {t:.3}, fill {fill:.3}; circles {} of which template {} fill {}",
            circles.0, circles.1, circles.2
        );
        assert!(frames >= 400, "{frames} frames with an object");
        if noise == 0.0 {
            assert!(
                t >= 0.99 && fill >= 0.95,
                "clean: template {t}, fill {fill}"
            );
        } else {
            assert!(t >= 0.95, "noisy: template {t}");
            assert!(fill < 0.7, "noisy: fill {fill} (expected to break down)");
        }
    }
}

/// No training clip shows a held-out caption or a benchmark caption, and every colour, shape
/// and direction of the held-out captions is still trained on.
#[test]
fn training_clips_never_show_held_out_captions() {
    let world = World::default();
    let held: HashSet<String> = gate_captions(&world).into_iter().map(|(c, _)| c).collect();
    let trainer = Trainer::new(tiny_config()).unwrap();
    let mut seen = HashSet::new();
    for step in 1..=300 {
        let (_, captions, sigmas, _) = trainer.batch(step);
        for (c, s) in captions.iter().zip(&sigmas) {
            assert!(!held.contains(c), "held-out caption in training: {c}");
            assert!(!fym::motionbench::held_out_captions().contains(c), "{c}");
            assert!((0.0..=1.0).contains(s));
            seen.extend(c.split_whitespace().map(str::to_string));
        }
    }
    for c in &held {
        for w in c.split_whitespace() {
            assert!(seen.contains(w), "word {w:?} of {c:?} never trained on");
        }
    }
}

/// `textured_fraction` puts that share of the clips on a named, static textured background and
/// leaves the rest black with "plain" captions; held-out captions stay out either way.
#[test]
fn textured_fraction_mixes_named_textured_backgrounds_into_training() {
    let config = TrainConfig {
        height: 16,
        width: 16,
        batch: 8,
        textured_fraction: 0.5,
        ..tiny_config()
    };
    let trainer = Trainer::new(config.clone()).unwrap();
    let n = config.spec().numel();
    let (mut textured, mut plain) = (0, 0);
    for step in 1..=40 {
        let (x0, captions, _, _) = trainer.batch(step);
        for (clip, c) in x0.chunks_exact(n).zip(&captions) {
            assert!(!fym::motionbench::held_out_captions().contains(c), "{c}");
            if c.is_empty() {
                continue; // caption dropout
            }
            let mut values = clip.to_vec();
            values.sort_by(f32::total_cmp);
            let median = values[n / 2];
            if c.ends_with("on a plain background") {
                plain += 1;
                assert_eq!(median, -1.0, "a plain clip is black: {c}");
            } else {
                textured += 1;
                let named = ["gradient", "striped", "checkered", "noisy"]
                    .iter()
                    .any(|t| c.ends_with(&format!("on a {t} background")));
                assert!(named, "texture not named: {c}");
                assert!(
                    median > -0.95,
                    "textured clip {c} has a dark median {median}"
                );
            }
        }
    }
    let share = textured as f32 / (textured + plain) as f32;
    assert!((0.38..=0.62).contains(&share), "textured share {share}");
}

/// `config` at 16×16, 8 clips a batch, with every clip captioned and moving (no caption dropout,
/// no still clips), for the tests that read the data's clips and captions.
fn small_captioned_moving(config: TrainConfig) -> TrainConfig {
    TrainConfig {
        height: 16,
        width: 16,
        batch: 8,
        caption_dropout: 0.0,
        still_fraction: 0.0,
        ..config
    }
}

/// Draws 30 training batches of 16×16 clips with `config` (no caption dropout, no still clips),
/// checks every clip on a "noisy" background with `check(caption, clip, clip size)`, and returns
/// the share of clips on it; every other clip must be on the plain (black) background.
fn noisy_share(config: TrainConfig, check: impl Fn(&str, &[f32], &ClipSpec)) -> f32 {
    let config = small_captioned_moving(config);
    let trainer = Trainer::new(config.clone()).unwrap();
    let spec = config.spec();
    let (mut noisy, mut black) = (0, 0);
    for step in 1..=30 {
        let (x0, captions, _, _) = trainer.batch(step);
        for (clip, c) in x0.chunks_exact(spec.numel()).zip(&captions) {
            if c.ends_with("on a plain background") {
                black += 1;
                continue;
            }
            assert!(c.ends_with("on a noisy background"), "{c}");
            noisy += 1;
            check(c, clip, &spec);
        }
    }
    noisy as f32 / (noisy + black) as f32
}

/// `fine_noise_fraction` puts that share of the clips on a static, pixel-fine noise background
/// named "noisy": the same in every frame, and hardly predictable from a pixel's neighbours.
#[test]
fn fine_noise_fraction_puts_clips_on_static_pixel_noise() {
    let config = TrainConfig {
        fine_noise_fraction: 0.5,
        ..tiny_config()
    };
    let share = noisy_share(config, |c, clip, spec| {
        let plane = spec.height * spec.width;
        // Background pixels (dark in every frame, away from the object) hold the same value
        // in every frame, and a pixel differs from its right-hand neighbour far more than from
        // itself one frame later.
        let frames = spec.frames;
        let (mut across_space, mut across_time, mut count) = (0.0f32, 0.0f32, 0);
        for y in 0..spec.height {
            for x in 0..spec.width - 1 {
                let at = |f: usize, xx: usize| clip[f * plane + y * spec.width + xx];
                let still =
                    (1..frames).all(|f| at(f, x) == at(0, x) && at(f, x + 1) == at(0, x + 1));
                if still {
                    across_space += (at(0, x) - at(0, x + 1)).abs();
                    across_time += (at(0, x) - at(1, x)).abs();
                    count += 1;
                }
            }
        }
        assert!(count > plane / 4, "{c}: a static background");
        assert_eq!(across_time, 0.0);
        assert!(across_space / count as f32 > 0.05, "{c}: neighbours differ");
    });
    assert!((0.38..=0.62).contains(&share), "noisy share {share}");
}

/// `curved_fraction` gives that share of the clips a curved path (circle, zigzag, bounces or
/// figure-eight) on black, captioned with its motion; the rest move in straight lines.
#[test]
fn curved_fraction_gives_clips_curved_paths_with_their_captions() {
    let config = small_captioned_moving(TrainConfig {
        curved_fraction: 0.5,
        ..tiny_config()
    });
    let trainer = Trainer::new(config.clone()).unwrap();
    let spec = config.spec();
    let curved_words = ["circles", "zigzags", "bounces", "figure-eight"];
    let straight_words = ["moves left", "moves right", "moves up", "moves down"];
    let (mut curved, mut straight) = (0, 0);
    let mut kinds = HashSet::new();
    for step in 1..=30 {
        let (x0, captions, _, _) = trainer.batch(step);
        for (clip, c) in x0.chunks_exact(spec.numel()).zip(&captions) {
            assert!(c.ends_with("on a plain background"), "{c}");
            let plane = spec.height * spec.width;
            // The object shows and moves: some frame differs from the first (a figure-eight
            // ends where it starts).
            // (Clip layout [channel, frame, pixel].)
            let frame = |ch: usize, f: usize| &clip[(ch * spec.frames + f) * plane..][..plane];
            let moves = (0..3).any(|ch| {
                (1..spec.frames).any(|f| {
                    let (a, b) = (frame(ch, 0), frame(ch, f));
                    a.iter().zip(b).any(|(x, y)| (x - y).abs() > 0.5)
                })
            });
            assert!(moves, "{c}");
            match curved_words.iter().find(|w| c.contains(*w)) {
                Some(w) => {
                    curved += 1;
                    kinds.insert(*w);
                }
                None => {
                    assert!(straight_words.iter().any(|w| c.contains(w)), "{c}");
                    straight += 1;
                }
            }
        }
    }
    let share = curved as f32 / (curved + straight) as f32;
    assert!((0.38..=0.62).contains(&share), "curved share {share}");
    assert_eq!(kinds.len(), 4, "every curved path kind shows: {kinds:?}");
    // Continued runs may switch it on.
    let phase = TrainConfig::default()
        .new_phase(&serde_json::json!({"curved_fraction": 0.3}), 10, "test")
        .unwrap();
    assert_eq!(phase.curved_fraction, 0.3);
}

/// `subjects_on_black_fraction` draws that share of the clips from the whole world's subjects —
/// several objects, persons, any path — on the black background with a still camera (what the
/// transfer's matted tuning shows the model); the rest are the one-object clips as before.
/// `subjects_on_black_max_objects` 1 keeps those scenes to one subject, a shape or a person;
/// `subjects_on_black_person_probability` sets how many of them have a person.
#[test]
fn subjects_on_black_fraction_draws_several_subjects_and_persons_on_black() {
    // (share of clips with several subjects or a person, persons, most subjects in a clip)
    let world_subjects_with = |fraction: f32, max_objects: usize, person_probability: f32| {
        let config = small_captioned_moving(TrainConfig {
            subjects_on_black_fraction: fraction,
            subjects_on_black_max_objects: max_objects,
            subjects_on_black_person_probability: person_probability,
            ..tiny_config()
        });
        let trainer = Trainer::new(config.clone()).unwrap();
        let spec = config.spec();
        let plane = spec.height * spec.width;
        let (mut world, mut persons, mut total, mut most) = (0, 0, 0, 0);
        for step in 1..=30 {
            let (x0, captions, _, _) = trainer.batch(step);
            for (clip, c) in x0.chunks_exact(spec.numel()).zip(&captions) {
                assert!(c.ends_with("on a plain background"), "{c}");
                assert!(!c.contains("camera"), "{c}");
                // Black (−1 on the model's scale) in every channel fills most of every frame.
                for f in 0..spec.frames {
                    let black = (0..plane)
                        .filter(|&p| {
                            (0..3).all(|ch| clip[(ch * spec.frames + f) * plane + p] <= -0.99)
                        })
                        .count();
                    assert!(black * 2 > plane, "{c}: frame {f} has {black} black pixels");
                }
                total += 1;
                // One article per subject and one for the background ("moves in a
                // figure-eight" has one more, after "in").
                let words: Vec<&str> = c.split_whitespace().collect();
                let subjects = (0..words.len())
                    .filter(|&i| {
                        (words[i] == "a" || words[i] == "an") && (i == 0 || words[i - 1] != "in")
                    })
                    .count()
                    - 1;
                most = most.max(subjects);
                if subjects > 1 || c.contains("person") {
                    world += 1;
                }
                if c.contains("person") {
                    persons += 1;
                }
            }
        }
        (world as f32 / total as f32, persons, most, total)
    };
    let world_subjects = |fraction: f32, max_objects: usize| {
        let (share, persons, most, _) = world_subjects_with(fraction, max_objects, 0.25);
        (share, persons, most)
    };
    assert_eq!(world_subjects(0.0, 3), (0.0, 0, 1));
    // Three in four world scenes have several subjects or a person (a person in one of four).
    let (share, persons, most) = world_subjects(0.5, 3);
    assert!((0.25..=0.5).contains(&share), "share {share}");
    assert!(persons >= 10, "{persons} persons");
    assert_eq!(most, 3);
    // One subject each: a person in one world scene of four, otherwise one shape.
    let (share, persons, most) = world_subjects(0.5, 1);
    assert!((0.05..=0.2).contains(&share), "share {share}");
    assert!(persons >= 10, "{persons} persons");
    assert_eq!(most, 1);
    // Every world scene a person (as many persons as world scenes), or none.
    let (share, persons, most, total) = world_subjects_with(0.5, 1, 1.0);
    assert!((0.35..=0.65).contains(&share), "share {share}");
    assert_eq!(persons, (share * total as f32).round() as usize);
    assert_eq!(most, 1);
    let (share, persons, _, _) = world_subjects_with(0.5, 1, 0.0);
    assert_eq!((share, persons), (0.0, 0));
    let phase = TrainConfig::default()
        .new_phase(
            &serde_json::json!({"subjects_on_black_fraction": 0.5,
                                "subjects_on_black_person_probability": 0.8}),
            10,
            "test",
        )
        .unwrap();
    assert_eq!(phase.subjects_on_black_fraction, 0.5);
    assert_eq!(phase.subjects_on_black_person_probability, 0.8);
    let bad = TrainConfig::default().new_phase(
        &serde_json::json!({"subjects_on_black_person_probability": 1.5}),
        10,
        "test",
    );
    assert!(
        format!("{:#}", bad.unwrap_err()).contains("subjects_on_black_person_probability"),
        "a probability above 1 is refused"
    );
}

/// `faint_noise_fraction` puts that share of the clips on a static pixel-noise background of black
/// and a dark grey at most 0.1 above it (−0.8 on the model's [−1, 1] scale), named "noisy".
#[test]
fn faint_noise_fraction_puts_clips_on_faint_static_pixel_noise() {
    let config = TrainConfig {
        faint_noise_fraction: 0.5,
        ..tiny_config()
    };
    let share = noisy_share(config, |c, clip, spec| {
        let plane = spec.height * spec.width;
        // Static pixels (the same in every frame) that are dark are the background, never more
        // than 0.1 above black, and not all one value. (An object's edge can also stay put when
        // it moves along that edge, so a few static dark pixels are partly covered.)
        let frames = spec.frames;
        let (mut dark, mut faint) = (0, 0);
        let (mut lowest, mut highest) = (f32::MAX, f32::MIN);
        for p in 0..plane {
            let v0 = clip[p];
            let still = (1..frames).all(|f| clip[f * plane + p] == v0);
            if still && v0 < -0.5 {
                assert!(v0 >= -1.0 - 1e-6, "{c}: {v0}");
                dark += 1;
                if v0 <= -0.79 {
                    faint += 1;
                    lowest = lowest.min(v0);
                    highest = highest.max(v0);
                }
            }
        }
        assert!(faint > plane / 4, "{c}: a faint static background");
        assert!(faint * 10 >= dark * 9, "{c}: {faint} of {dark} faint");
        assert!(highest - lowest > 0.03, "{c}: detail {lowest}..{highest}");
    });
    assert!((0.38..=0.62).contains(&share), "noisy share {share}");
}

/// `rich_fraction` draws that share of the clips from the whole world (several objects, figures,
/// camera motion, textured or grey backgrounds), never a benchmark or gate caption; the rest stay
/// one object on black.
#[test]
fn rich_fraction_mixes_the_whole_world_into_training() {
    let config = TrainConfig {
        height: 16,
        width: 16,
        batch: 8,
        caption_dropout: 0.0,
        rich_fraction: 0.5,
        ..tiny_config()
    };
    let trainer = Trainer::new(config.clone()).unwrap();
    let gate: Vec<String> = fym::base::eval::gate_captions(&fym::base::data::World::default())
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let n = config.spec().numel();
    let (mut rich, mut black) = (0, 0);
    let (mut several, mut figures, mut camera) = (0, 0, 0);
    for step in 1..=40 {
        let (x0, captions, _, _) = trainer.batch(step);
        for (clip, c) in x0.chunks_exact(n).zip(&captions) {
            assert!(!fym::motionbench::held_out_captions().contains(c), "{c}");
            assert!(!gate.contains(c), "gate caption trained on: {c}");
            assert!(
                c.split_whitespace().count() <= trainer.model.text.max_len,
                "{c}"
            );
            let mut values = clip.to_vec();
            values.sort_by(f32::total_cmp);
            if values[n / 2] == -1.0 {
                black += 1;
                continue;
            }
            rich += 1;
            several += usize::from(c.contains(" and a") || c.contains(" and an"));
            figures += usize::from(c.contains("person"));
            camera += usize::from(c.contains("camera"));
        }
    }
    let share = rich as f32 / (rich + black) as f32;
    assert!((0.38..=0.62).contains(&share), "rich share {share}");
    assert!(
        several > 0 && figures > 0 && camera > 0,
        "several objects {several}, figures {figures}, camera motion {camera} of {rich}"
    );
}

/// Head statistics of a trainer's current (not averaged) weights on two rendered gate clips at
/// σ = 0.5, where the gate measures them.
fn trained_head_stats(t: &Trainer) -> Vec<Vec<fym::base::eval::HeadStats>> {
    let clips = rendered_gate_clips(&t.config.spec(), 0..2);
    head_stats(&t.model, &clips, 0.5, 3).unwrap()
}

/// `head_role_weight` makes the chosen head of every layer clearly spatial and the other clearly
/// temporal by the gate's measure, where the same training without it does not; the roles are
/// part of the checkpoint (a resumed run goes on bit for bit) and are checked.
#[test]
fn head_role_weight_makes_the_chosen_heads_spatial_and_temporal() {
    let config = TrainConfig {
        frames: 8,
        lr: 1e-2,
        decay_steps: 200,
        motion_loss_weight: 0.0,
        ..tiny_config()
    };
    let roles = TrainConfig {
        head_role_weight: 1.0,
        spatial_role_head: 1,
        temporal_role_head: 0,
        ..config.clone()
    };
    let train = |c: &TrainConfig| {
        let mut t = Trainer::new(c.clone()).unwrap();
        for _ in 0..40 {
            t.train_step().unwrap();
        }
        t
    };
    let (plain, shaped) = (train(&config), train(&roles));
    for (l, heads) in trained_head_stats(&shaped).iter().enumerate() {
        assert!(heads[1].clearly_spatial(), "layer {l}: {:?}", heads[1]);
        assert!(heads[0].clearly_temporal(), "layer {l}: {:?}", heads[0]);
    }
    let plain_stats = trained_head_stats(&plain);
    assert!(
        !plain_stats
            .iter()
            .all(|h| h[1].clearly_spatial() && h[0].clearly_temporal()),
        "without the loss the heads should not all take these roles: {plain_stats:?}"
    );

    let dir = temp_dir("head-roles");
    let path = Trainer::checkpoint_path(&dir);
    let mut t = shaped;
    t.save_checkpoint(&path).unwrap();
    let mut resumed = Trainer::resume(&path).unwrap();
    assert_eq!(resumed.config.head_role_weight, 1.0);
    assert_eq!(t.train_step().unwrap(), resumed.train_step().unwrap());
    let _ = std::fs::remove_dir_all(&dir);

    for (bad, why) in [
        (
            serde_json::json!({"head_role_weight": 0.1, "spatial_role_head": 1, "temporal_role_head": 1}),
            "two different heads",
        ),
        (
            serde_json::json!({"head_role_weight": 0.1, "temporal_role_head": 2}),
            "two different heads",
        ),
        (serde_json::json!({"head_role_weight": -1.0}), "≥ 0"),
    ] {
        let err = t.start_phase(&bad, "phase.json").unwrap_err();
        assert!(format!("{err:#}").contains(why), "{bad}: {err:#}");
    }
}

/// N steps in one go and N/2 + checkpoint + resume + N/2 give identical weights and EMA.
#[test]
fn resume_is_bit_for_bit() {
    let dir = temp_dir("resume");
    let path = Trainer::checkpoint_path(&dir);
    let mut straight = Trainer::new(tiny_config()).unwrap();
    let mut losses = Vec::new();
    for _ in 0..6 {
        losses.push(straight.train_step().unwrap());
    }
    let mut first = Trainer::new(tiny_config()).unwrap();
    let mut resumed_losses = Vec::new();
    for _ in 0..3 {
        resumed_losses.push(first.train_step().unwrap());
    }
    first.save_checkpoint(&path).unwrap();
    drop(first);
    let mut second = Trainer::resume(&path).unwrap();
    assert_eq!(second.step, 3);
    for _ in 0..3 {
        resumed_losses.push(second.train_step().unwrap());
    }
    assert_eq!(losses, resumed_losses);
    for ((n, a), (_, b)) in straight.params().iter().zip(second.params().iter()) {
        assert_eq!(a.to_vec(), b.to_vec(), "parameter {n} differs after resume");
    }
    let (ea, eb) = (straight.ema_model().unwrap(), second.ema_model().unwrap());
    for (n, a) in ea.wan.params() {
        assert_eq!(
            a.to_vec(),
            eb.wan.param(n).unwrap().to_vec(),
            "EMA of {n} differs"
        );
    }
    assert_eq!(ea.text.tokens.to_vec(), eb.text.tokens.to_vec());
    // Training moved the weights, and the EMA lags behind them.
    let fresh = Trainer::new(tiny_config()).unwrap();
    let name = "blocks.0.attn1.to_q.weight";
    let (p0, p6) = (
        fresh.params().get(name).unwrap().to_vec(),
        straight.params().get(name).unwrap().to_vec(),
    );
    let e6 = ea.wan.param(name).unwrap().to_vec();
    assert_ne!(p0, p6);
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>();
    assert!(dist(&e6, &p0) < dist(&p6, &p0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `fym pretrain --device cuda`: the same steps as on the CPU (step 1 before any update to f32
/// rounding, later steps through AdamW's normalised updates), and the checkpoint written from
/// the GPU resumes with exactly the GPU's weights — with and without text-encoder layers, whose
/// attention and MLP then train on the GPU too. Skips, saying why, without a GPU.
#[test]
fn training_on_the_gpu_follows_the_cpu_and_checkpoints() {
    let Some(device) = common::gpu_or_skip() else {
        return;
    };
    for text_layers in [0, 1] {
        // Text-encoder layers need a text width that is a whole number of their 16-wide heads.
        let config = TrainConfig {
            text_layers,
            text_dim: 16,
            ..tiny_config()
        };
        let dir = temp_dir(&format!("gpu-{text_layers}"));
        let path = Trainer::checkpoint_path(&dir);
        let mut cpu = Trainer::new(config.clone()).unwrap();
        let mut gpu = Trainer::new(config).unwrap();
        gpu.to_device(device).unwrap();
        for step in 1..=3 {
            let (want, got) = (cpu.train_step().unwrap(), gpu.train_step().unwrap());
            let err = ((got - want) / want).abs();
            println!(
                "{text_layers} text layers, step {step}: loss cpu {want}, gpu {got}, relative error {err:.1e}"
            );
            assert!(err <= if step == 1 { 1e-4 } else { 1e-2 }, "step {step}");
        }
        gpu.save_checkpoint(&path).unwrap();
        let resumed = Trainer::resume(&path).unwrap();
        assert_eq!(resumed.step, 3);
        for ((n, a), (_, b)) in gpu.params().iter().zip(resumed.params().iter()) {
            assert_eq!(a.device(), device, "{n} trains on the GPU");
            assert_eq!(a.to_vec(), b.to_vec(), "parameter {n} differs after resume");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// `fym generate` / `eval-base --device cuda`: the built-in model samples on the GPU what it
/// samples on the CPU (same noise, f32 both sides; the sums round differently), and the gate's
/// head statistics agree. Skips, saying why, without a GPU.
#[test]
fn sampling_on_the_gpu_matches_the_cpu() {
    let Some(device) = common::gpu_or_skip() else {
        return;
    };
    let cpu = BaseModel::builtin().unwrap();
    let mut gpu = BaseModel::builtin().unwrap();
    gpu.to_device(device).unwrap();
    assert_eq!(gpu.device(), device);
    let prompts = [
        "a red circle moves left on a plain background",
        "a white star moves up and slows down on a plain background",
    ];
    for sampler in [Sampler::Euler, Sampler::Stochastic { eta: 1.0 }] {
        let opts = SampleOptions {
            steps: 10,
            sampler,
            ..SampleOptions::default()
        };
        let (want, got) = (
            cpu.sample_batch(&prompts, &opts).unwrap(),
            gpu.sample_batch(&prompts, &opts).unwrap(),
        );
        for (w, g) in want.iter().zip(&got) {
            let n = w.data.len() as f32;
            let mean = w
                .data
                .iter()
                .zip(&g.data)
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / n;
            let max = w
                .data
                .iter()
                .zip(&g.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            println!("{sampler:?}: clip pixels differ by {mean:.1e} on average, {max:.1e} at most");
            assert!(mean <= 1e-3, "{sampler:?}: mean pixel difference {mean}");
        }
    }
    let world = World::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let clips: Vec<(String, Video)> = gate_captions(&world)
        .into_iter()
        .take(2)
        .map(|(c, a)| {
            let (v, _) = render(&world.scene(a, &mut rng), 8, 24, 24);
            (c, v)
        })
        .collect();
    let (want, got) = (
        head_stats(&cpu, &clips, 0.5, 7).unwrap(),
        head_stats(&gpu, &clips, 0.5, 7).unwrap(),
    );
    let worst = want
        .iter()
        .flatten()
        .zip(got.iter().flatten())
        .map(|(w, g)| {
            (w.cos_spatial - g.cos_spatial)
                .abs()
                .max((w.cos_temporal - g.cos_temporal).abs())
        })
        .fold(0.0f32, f32::max);
    println!("head statistics: worst difference {worst:.1e}");
    assert!(worst <= 1e-4, "head statistics differ by {worst}");
}

/// `--resume --config`: a continued run may change how it is optimised (the learning-rate
/// schedule restarts at its step, and the new settings survive the next checkpoint), never what
/// the model is.
#[test]
fn a_new_phase_restarts_the_schedule_and_keeps_the_model() {
    let dir = temp_dir("phase");
    let path = Trainer::checkpoint_path(&dir);
    let mut t = Trainer::new(tiny_config()).unwrap();
    for _ in 0..8 {
        t.train_step().unwrap();
    }
    assert_eq!(t.config.lr_at(9), t.config.lr_min, "first schedule is over");
    let first_batch = t.config.batch as u64;
    assert_eq!(t.clips, 8 * first_batch);
    let phase = serde_json::json!({"lr": 2e-3, "warmup_steps": 2, "decay_steps": 10,
                                   "motion_loss_weight": 0.0, "ema_decay": 0.5,
                                   "batch": first_batch + 1});
    let err = t
        .config
        .new_phase(&serde_json::json!({"layers": 3}), t.step, "phase.json")
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("`layers` cannot change"),
        "{err:#}"
    );
    t.start_phase(&phase, "phase.json").unwrap();
    assert_eq!(t.config.schedule_start, 8);
    assert_eq!(
        t.config.lr_at(9),
        1e-3,
        "warmup restarts: half of lr one step in"
    );
    assert_eq!(t.config.lr_at(10), 2e-3);
    assert_eq!(t.config.lr_at(8 + 2 + 10), t.config.lr_min);
    assert_eq!(t.ema_decay(), 0.5);
    assert_eq!(t.config.layers, tiny_config().layers);
    t.train_step().unwrap();
    assert_eq!(t.optimizer_lr(), 1e-3);
    t.save_checkpoint(&path).unwrap();
    let resumed = Trainer::resume(&path).unwrap();
    assert_eq!(
        resumed.config, t.config,
        "the phase is part of the checkpoint"
    );
    assert_eq!(resumed.ema_decay(), 0.5);
    assert_eq!(
        (resumed.clips, resumed.card()["clips"].as_u64()),
        (9 * first_batch + 1, Some(9 * first_batch + 1)),
        "clips add up over phases of different batch sizes"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Turning the per-frame embedding on in a continued run adds it at zero (the model predicts
/// exactly what it did), trains it from there, and a checkpoint written after that resumes bit
/// for bit.
#[test]
fn a_phase_can_add_the_frame_embedding() {
    let dir = temp_dir("phase-embed");
    let path = Trainer::checkpoint_path(&dir);
    let mut t = Trainer::new(TrainConfig {
        frame_embed: false,
        ..tiny_config()
    })
    .unwrap();
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    let before = t.ema_model().unwrap();
    let spec = t.config.spec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let x = Tensor::randn(&[1, 3, spec.frames, spec.height, spec.width], &mut rng);
    let text = before.text.encode(&["a red circle"]).unwrap();
    let predict = |m: &BaseModel| {
        fym_autograd::no_grad(|| {
            m.wan
                .forward(&x, &[500.0], &text, &ForwardOptions::default())
        })
        .unwrap()
        .to_vec()
    };
    let phase = serde_json::json!({"frame_embed": true});
    t.start_phase(&phase, "phase.json").unwrap();
    assert_eq!(t.config.wan_config().frame_embed_len, spec.frames / 2);
    assert_eq!(predict(&t.ema_model().unwrap()), predict(&before));
    let off = t.start_phase(&serde_json::json!({"frame_embed": false}), "p");
    assert!(format!("{:#}", off.unwrap_err()).contains("cannot be turned off"));
    assert!(t.config.frame_embed);
    t.train_step().unwrap();
    assert_trained_and_resumes(&mut t, "fym_frame_embedding.weight", &path);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tensor a phase added at zero has been trained away from it, and a checkpoint written now
/// resumes bit for bit (returns the resumed run, one step on, as `t` is).
fn assert_trained_and_resumes(t: &mut Trainer, added: &str, path: &Path) -> Trainer {
    let values = t.params().get(added).unwrap().to_vec();
    assert!(values.iter().any(|&v| v != 0.0), "{added} is trained");
    t.save_checkpoint(path).unwrap();
    let mut resumed = Trainer::resume(path).unwrap();
    let (a, b) = (t.train_step().unwrap(), resumed.train_step().unwrap());
    assert_eq!(a, b);
    resumed
}

/// Switching text layers on in a continued run starts them as the identity (the model predicts
/// exactly what it did), trains them from there, stores them in the exported model, and a
/// checkpoint written after that resumes bit for bit; they cannot be removed or resized.
#[test]
fn a_phase_can_add_text_layers() {
    let dir = temp_dir("phase-text");
    let path = Trainer::checkpoint_path(&dir);
    let config = TrainConfig {
        text_dim: 16,
        ..tiny_config()
    };
    let mut t = Trainer::new(config.clone()).unwrap();
    for _ in 0..3 {
        t.train_step().unwrap();
    }
    let before = t.ema_model().unwrap();
    let spec = t.config.spec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let x = Tensor::randn(&[1, 3, spec.frames, spec.height, spec.width], &mut rng);
    let caption = "a red circle moves left and a blue square moves right";
    let predict = |m: &BaseModel| {
        fym_autograd::no_grad(|| {
            let text = m.text.encode(&[caption])?;
            m.wan
                .forward(&x, &[500.0], &text, &ForwardOptions::default())
        })
        .unwrap()
        .to_vec()
    };
    t.start_phase(&serde_json::json!({"text_layers": 2}), "phase.json")
        .unwrap();
    assert_eq!(t.model.text.layers.len(), 2);
    assert_eq!(predict(&t.ema_model().unwrap()), predict(&before));
    for change in [0, 3] {
        let err = t
            .start_phase(&serde_json::json!({"text_layers": change}), "p")
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("can only be switched on"),
            "{err:#}"
        );
    }
    for _ in 0..2 {
        t.train_step().unwrap();
    }
    let resumed =
        assert_trained_and_resumes(&mut t, "text_encoder.layers.1.attn.to_out.weight", &path);
    assert_eq!(resumed.config.text_layers, 2);

    // The exported model keeps them, and a fresh run can have them from the start.
    let model = t.ema_model().unwrap();
    model.save(&dir.join("model")).unwrap();
    let back = BaseModel::load(&dir.join("model")).unwrap();
    assert_eq!(back.text.layers.len(), 2);
    assert_eq!(predict(&back), predict(&model));
    let fresh = Trainer::new(TrainConfig {
        text_layers: 1,
        ..config
    })
    .unwrap();
    assert_eq!(fresh.model.text.layers.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Saved f32 weights load back exactly (and predict the same velocity); bf16 storage rounds
/// every value to within 2⁻⁸ relative.
#[test]
fn model_files_round_trip() {
    let dir = temp_dir("files");
    let mut model = tiny_model();
    model.card = serde_json::json!({"note": "test"});
    model.save(&dir.join("f32")).unwrap();
    let back = BaseModel::load(&dir.join("f32")).unwrap();
    assert_eq!(back.spec, model.spec);
    assert_eq!(back.card, model.card);
    assert_eq!(back.text.vocab, model.text.vocab);
    for (n, t) in model.wan.params() {
        assert_eq!(t.to_vec(), back.wan.param(n).unwrap().to_vec(), "{n}");
    }
    let x = Tensor::randn(&[1, 3, 4, 8, 8], &mut rand::rngs::StdRng::seed_from_u64(1));
    let text = model.text.encode(&["a red circle moves left"]).unwrap();
    let text_back = back.text.encode(&["a red circle moves left"]).unwrap();
    let opts = ForwardOptions::default();
    assert_eq!(
        model.velocity(&x, 0.7, &text, &opts).unwrap().to_vec(),
        back.velocity(&x, 0.7, &text_back, &opts).unwrap().to_vec()
    );
    model.save_as(&dir.join("bf16"), StoreDtype::Bf16).unwrap();
    let half = BaseModel::load(&dir.join("bf16")).unwrap();
    for (n, t) in model.wan.params() {
        for (a, b) in t.to_vec().iter().zip(half.wan.param(n).unwrap().to_vec()) {
            assert!((a - b).abs() <= a.abs() / 256.0 + 1e-30, "{n}: {a} vs {b}");
        }
    }
    let size = |d: &str| {
        std::fs::metadata(dir.join(d).join("diffusion_pytorch_model.safetensors"))
            .unwrap()
            .len()
    };
    // The payload halves; the headers differ only in dtype names and offsets.
    let numel: u64 = model.wan.params().values().map(|t| t.numel() as u64).sum();
    let saved = size("f32") as i64 - size("bf16") as i64;
    let tensors = model.wan.params().len() as i64;
    assert!(
        (saved - 2 * numel as i64).abs() < 8 * tensors,
        "{saved} vs {}",
        2 * numel
    );
    assert!(BaseModel::load(&dir.join("missing")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clip_tensor_conversion() {
    let model = tiny_model();
    let mut v = Video::new(4, 8, 8);
    for (i, x) in v.data.iter_mut().enumerate() {
        *x = (i % 7) as f32 / 6.0;
    }
    let t = model.video_to_tensor(&v).unwrap();
    assert_eq!(t.shape(), &[1, 3, 4, 8, 8]);
    // Channel-first: value of pixel (f=1, y=2, x=3), channel 2.
    let plane = 4 * 8 * 8;
    let want = v.pixel(1, 2, 3)[2] * 2.0 - 1.0;
    assert_eq!(t.to_vec()[2 * plane + (8 + 2) * 8 + 3], want);
    let back = model.tensor_to_video(&t).unwrap();
    for (a, b) in v.data.iter().zip(&back.data) {
        assert!((a - b).abs() < 1e-6);
    }
    let err = model
        .video_to_tensor(&Video::new(4, 16, 8))
        .unwrap_err()
        .to_string();
    assert!(err.contains("16×8"), "{err}");
    assert!(model.tensor_to_video(&Tensor::zeros(&[2, 3])).is_err());
    let _ = ClipSpec {
        frames: 4,
        height: 8,
        width: 8,
    }
    .numel();
}

#[test]
fn sampling_is_seeded_and_checks_words() {
    let model = tiny_model();
    let prompt = "a red circle moves left on a plain background";
    let opts = SampleOptions {
        steps: 4,
        ..SampleOptions::default()
    };
    let a = model.sample(prompt, &opts).unwrap();
    let b = model.sample(prompt, &opts).unwrap();
    assert_eq!(a, b);
    let c = model
        .sample(prompt, &SampleOptions { seed: 1, ..opts })
        .unwrap();
    assert_ne!(a, c);
    assert_eq!((a.frames, a.height, a.width), (4, 8, 8));
    // η = 0 is exactly Euler.
    let euler = model
        .sample(
            prompt,
            &SampleOptions {
                sampler: Sampler::Euler,
                ..opts
            },
        )
        .unwrap();
    let eta0 = model
        .sample(
            prompt,
            &SampleOptions {
                sampler: Sampler::Stochastic { eta: 0.0 },
                ..opts
            },
        )
        .unwrap();
    assert_eq!(euler, eta0);
    assert_ne!(euler, a);
    // A batch gives each clip what sampling it alone with its seed gives.
    let batch = model
        .sample_batch(
            &[prompt, "a blue star moves up"],
            &SampleOptions {
                sampler: Sampler::Euler,
                ..opts
            },
        )
        .unwrap();
    assert_eq!(batch[0], euler);
    let alone = model
        .sample(
            "a blue star moves up",
            &SampleOptions {
                seed: 1,
                sampler: Sampler::Euler,
                ..opts
            },
        )
        .unwrap();
    for (x, y) in batch[1].data.iter().zip(&alone.data) {
        assert!((x - y).abs() < 1e-4);
    }
    let err = model.sample("a red unicorn moves left", &opts).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("unicorn") && msg.contains("circle") && msg.contains("checkered"),
        "{msg}"
    );
}

/// Solves the small dense system `a·x = b` (`n×n`, row-major) by Gaussian elimination with
/// partial pivoting.
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Vec<f64> {
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&i, &j| a[i * n + col].abs().total_cmp(&a[j * n + col].abs()))
            .unwrap();
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
        }
        b.swap(col, pivot);
        for row in col + 1..n {
            let f = a[row * n + col] / a[col * n + col];
            for k in col..n {
                a[row * n + k] -= f * a[col * n + k];
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|k| a[row * n + k] * x[k]).sum();
        x[row] = (b[row] - s) / a[row * n + row];
    }
    x
}

/// With more values per patch than the model is wide (96 > 16 here), a sample is projected
/// onto what `proj_out` can write: every patch becomes `bias + W·h` for some h (checked by least
/// squares through the normal equations), projecting twice changes nothing, and a clip already
/// made of `bias + W·h` patches is kept.
#[test]
fn samples_are_projected_onto_the_output_space() {
    use fym_autograd::{PatchOrder, PatchSize};
    let model = tiny_model();
    let random = model.wan.param("proj_out.weight").unwrap().to_vec();
    let bias = model.wan.param("proj_out.bias").unwrap().to_vec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let (features, dim) = (96usize, 16usize);
    let shape = [1, 3, 4, 8, 8];
    let x = Tensor::randn(&shape, &mut rng).to_vec();
    let once = model.project_to_output_space(x.clone(), &shape).unwrap();
    let twice = model.project_to_output_space(once.clone(), &shape).unwrap();
    let patch = PatchSize { t: 2, h: 4, w: 4 };
    let tokens = |v: &[f32]| {
        Tensor::from_vec(v.to_vec(), &shape)
            .unwrap()
            .patchify(patch, PatchOrder::ChannelLast)
            .unwrap()
            .to_vec()
    };
    let mut moved = 0.0f64;
    for (p, orig) in tokens(&once)
        .chunks(features)
        .zip(tokens(&x).chunks(features))
    {
        // Normal equations WᵀW h = Wᵀ(p − b).
        let mut wtw = vec![0.0f64; dim * dim];
        let mut rhs = vec![0.0f64; dim];
        for i in 0..features {
            for a in 0..dim {
                rhs[a] += random[i * dim + a] as f64 * (p[i] - bias[i]) as f64;
                for c in 0..dim {
                    wtw[a * dim + c] += random[i * dim + a] as f64 * random[i * dim + c] as f64;
                }
            }
        }
        let h = solve(wtw, rhs, dim);
        for i in 0..features {
            let fit: f64 = bias[i] as f64
                + (0..dim)
                    .map(|a| random[i * dim + a] as f64 * h[a])
                    .sum::<f64>();
            assert!(
                (fit - p[i] as f64).abs() < 1e-3,
                "patch value {} not in the output space ({fit})",
                p[i]
            );
        }
        moved += p
            .iter()
            .zip(orig)
            .map(|(a, b)| ((a - b) as f64).powi(2))
            .sum::<f64>();
    }
    assert!(
        moved > 1.0,
        "a random clip must lose its components outside the space"
    );
    for (a, b) in once.iter().zip(&twice) {
        assert!((a - b).abs() < 1e-4);
    }
}

#[test]
fn training_config_json_round_trips_and_rejects_typos() {
    let c = TrainConfig {
        lr: 3e-4,
        caption_dropout: 0.15,
        seed: 42,
        patch_size: [1, 4, 4],
        ..TrainConfig::default()
    };
    let v = c.to_json();
    assert_eq!(v["caption_dropout"], serde_json::json!(0.15));
    assert_eq!(TrainConfig::from_json(&v, "test").unwrap(), c);
    let partial = serde_json::json!({"batch": 4});
    assert_eq!(
        TrainConfig::from_json(&partial, "t").unwrap(),
        TrainConfig {
            batch: 4,
            ..TrainConfig::default()
        }
    );
    let err = TrainConfig::from_json(&serde_json::json!({"learning_rate": 1e-3}), "cfg.json")
        .unwrap_err();
    assert!(format!("{err:#}").contains("learning_rate"), "{err:#}");
    let err = TrainConfig::from_json(&serde_json::json!({"height": 10}), "cfg.json").unwrap_err();
    assert!(format!("{err:#}").contains("patch"), "{err:#}");
    // Warmup then cosine decay to the floor.
    let c = TrainConfig::default();
    assert_eq!(
        c.lr_at(c.warmup_steps / 2),
        c.lr * (c.warmup_steps / 2) as f32 / c.warmup_steps as f32
    );
    assert!((c.lr_at(c.warmup_steps + c.decay_steps / 2) - (c.lr + c.lr_min) / 2.0).abs() < 1e-6);
    assert_eq!(c.lr_at(c.warmup_steps + c.decay_steps + 10), c.lr_min);
}

/// The committed model is embedded, loads, and samples a clip of its size in [0, 1].
#[test]
fn builtin_model_loads_and_samples() {
    let model = BaseModel::builtin().unwrap();
    assert_eq!(
        model.spec,
        ClipSpec {
            frames: 8,
            height: 24,
            width: 24
        }
    );
    assert!(model.card["steps"].as_u64().unwrap() > 0);
    assert!(model.card["gate"]["coherent"].is_number());
    let v = model
        .sample(
            "a red circle moves left on a plain background",
            &SampleOptions {
                steps: 3,
                ..SampleOptions::default()
            },
        )
        .unwrap();
    assert_eq!((v.frames, v.height, v.width), (8, 24, 24));
    assert!(v.data.iter().all(|x| (0.0..=1.0).contains(x)));
}

/// Training noise drawn on many threads is value for value the one-thread `StdRng` stream, and
/// leaves the generator where the one-thread fill does (so old checkpoints resume bit for bit).
#[test]
fn parallel_noise_is_the_one_thread_stream() {
    use fym::base::train::fill_standard_normal_parallel;
    use fym_model::flow::fill_standard_normal;
    use rand::Rng;
    for (seed, n, threads) in [
        (1, 10_001, 3),
        (7, 4096, 16),
        (3, 5, 8),
        (9, 0, 2),
        (4, 6, 1),
    ] {
        let mut std_rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut want = vec![0.0f32; n];
        fill_standard_normal(&mut std_rng, &mut want);
        let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
        let mut got = vec![0.0f32; n];
        fill_standard_normal_parallel(&mut rng, &mut got, threads);
        assert_eq!(got, want, "seed {seed}, {n} values, {threads} threads");
        assert_eq!(rng.gen::<u64>(), std_rng.gen::<u64>(), "stream position");
    }
}

/// The outline weights mark both sides of the object's boundary, in every channel, and nothing
/// else: a 2×2 lit square in a 5×5 black frame has 4 lit and 8 dark outline pixels.
#[test]
fn outline_weights_mark_both_sides_of_the_boundary() {
    use fym::base::train::outline_weights;
    let spec = ClipSpec {
        frames: 1,
        height: 5,
        width: 5,
    };
    let mut x0 = vec![-1.0f32; 3 * 25];
    for (y, x) in [(1, 1), (1, 2), (2, 1), (2, 2)] {
        x0[y * 5 + x] = 0.8; // red channel only
    }
    let w = outline_weights(&x0, &spec, 1, 3.0);
    let marked: Vec<usize> = (0..25).filter(|&p| w[p] == 4.0).collect();
    assert_eq!(
        marked,
        vec![1, 2, 5, 6, 7, 8, 10, 11, 12, 13, 16, 17],
        "outline of the square"
    );
    for c in 1..3 {
        assert_eq!(w[c * 25..(c + 1) * 25], w[..25], "channel {c}");
    }
    assert!(w.iter().all(|&v| v == 1.0 || v == 4.0));
}

/// `pretrain`, `generate` and `eval-base` check `--device` the same way as `transfer`: a name that
/// is no device is a clear error before any work, and without a GPU `cuda` says to use the CPU.
#[test]
fn model_commands_check_their_device() {
    let dir = temp_dir("device");
    let out = dir.join("clip.gif");
    let commands: [Vec<&str>; 3] = [
        vec!["pretrain", "--out", dir.to_str().unwrap(), "--steps", "1"],
        vec![
            "generate",
            "--prompt",
            "a red circle moves left on a plain background",
            "--out",
            out.to_str().unwrap(),
        ],
        vec!["eval-base"],
    ];
    let gpu = fym_autograd::Device::cuda(0).is_ok();
    for args in commands {
        for (device, want) in [("tpu", "choose cpu or cuda"), ("cuda", "--device cuda")] {
            if device == "cuda" && gpu {
                continue;
            }
            let output = std::process::Command::new(env!("CARGO_BIN_EXE_fym"))
                .args(&args)
                .args(["--device", device])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&output.stderr);
            assert!(
                !output.status.success(),
                "{args:?} --device {device} succeeded"
            );
            assert!(err.contains(want), "{args:?} --device {device}: {err}");
        }
    }
    assert!(!out.exists(), "no clip written after a device error");
    let _ = std::fs::remove_dir_all(&dir);
}
