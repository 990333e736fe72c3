//! Head classification: the streaming scores against a dense attention map computed naively, heads
//! built to be spatial or temporal get those labels, and a random model yields a full label set.

mod common;
use common::random_model;

use fym_autograd::Tensor;
use fym_model::classify::{classify_heads, head_scores, score_heads};
use fym_model::heads::{ClassificationRule, HeadKind, HeadScores};
use fym_model::{ForwardOptions, WanConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The four scores of every head from the dense map `softmax(q·kᵀ/√D)` (f64), by definition.
fn naive_scores(
    q: &[f32],
    k: &[f32],
    batch: usize,
    seq: usize,
    heads: usize,
    tpf: usize,
) -> Vec<HeadScores> {
    let d = q.len() / (batch * seq * heads);
    let frames = seq / tpf;
    let scale = 1.0 / (d as f64).sqrt();
    let at = |t: &[f32], b: usize, s: usize, h: usize| -> Vec<f64> {
        let o = ((b * seq + s) * heads + h) * d;
        t[o..o + d].iter().map(|&v| v as f64).collect()
    };
    (0..heads)
        .map(|h| {
            let (mut in_s, mut in_t, mut sq) = (0.0f64, 0.0f64, 0.0f64);
            for b in 0..batch {
                for i in 0..seq {
                    let qi = at(q, b, i, h);
                    let logits: Vec<f64> = (0..seq)
                        .map(|j| {
                            at(k, b, j, h)
                                .iter()
                                .zip(&qi)
                                .map(|(x, y)| x * y)
                                .sum::<f64>()
                                * scale
                        })
                        .collect();
                    let max = logits.iter().cloned().fold(f64::MIN, f64::max);
                    let z: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                    for (j, l) in logits.iter().enumerate() {
                        let p = (l - max).exp() / z;
                        sq += p * p;
                        if i / tpf == j / tpf {
                            in_s += p;
                        }
                        if i % tpf == j % tpf && i != j {
                            in_t += p;
                        }
                    }
                }
            }
            let rows = (batch * seq) as f64;
            let norm = sq.sqrt();
            HeadScores {
                cos_spatial: (in_s / (norm * (rows * tpf as f64).sqrt())) as f32,
                cos_temporal: (in_t / (norm * (rows * (frames - 1) as f64).sqrt())) as f32,
                mass_spatial: (in_s / rows) as f32,
                mass_temporal: (in_t / rows) as f32,
            }
        })
        .collect()
}

fn assert_close(got: &HeadScores, want: &HeadScores, what: &str) {
    let pairs = [
        (got.cos_spatial, want.cos_spatial),
        (got.cos_temporal, want.cos_temporal),
        (got.mass_spatial, want.mass_spatial),
        (got.mass_temporal, want.mass_temporal),
    ];
    for (g, w) in pairs {
        assert!((g - w).abs() <= 1e-4, "{what}: got {got:?}, want {want:?}");
    }
}

/// Head 0 matches keys of its own frame (one-hot of the frame index), head 1 keys at its own
/// spatial position (one-hot of the position), head 2 is random.
fn constructed_qk(
    batch: usize,
    frames: usize,
    tpf: usize,
    d: usize,
    rng: &mut StdRng,
) -> (Vec<f32>, Vec<f32>) {
    let heads = 3;
    let seq = frames * tpf;
    let sharp = 6.0 * (d as f32).sqrt().sqrt(); // logit gap of 36 after the 1/√D scale
    let mut q = vec![0.0f32; batch * seq * heads * d];
    let mut k = q.clone();
    for b in 0..batch {
        for s in 0..seq {
            let base = |h: usize| ((b * seq + s) * heads + h) * d;
            q[base(0) + s / tpf] = sharp;
            k[base(0) + s / tpf] = sharp;
            q[base(1) + s % tpf] = sharp;
            k[base(1) + s % tpf] = sharp;
            for i in 0..d {
                q[base(2) + i] = rng.gen_range(-1.0..1.0);
                k[base(2) + i] = rng.gen_range(-1.0..1.0);
            }
        }
    }
    (q, k)
}

#[test]
fn constructed_heads_get_the_known_labels() {
    let (batch, frames, tpf, d) = (2, 3, 4, 8);
    let seq = frames * tpf;
    let mut rng = StdRng::seed_from_u64(7);
    let (q, k) = constructed_qk(batch, frames, tpf, d, &mut rng);
    let qt = Tensor::from_vec(q.clone(), &[batch, seq, 3 * d]).unwrap();
    let kt = Tensor::from_vec(k.clone(), &[batch, seq, 3 * d]).unwrap();
    let scores = score_heads(&qt, &kt, 3, tpf).unwrap();
    let want = naive_scores(&q, &k, batch, seq, 3, tpf);
    for (h, (g, w)) in scores.iter().zip(&want).enumerate() {
        assert_close(g, w, &format!("head {h}"));
    }

    // Head 0 spreads uniformly over its frame: the map *is* the spatial mask over the rows.
    let s0 = scores[0];
    assert!(
        (s0.cos_spatial - 1.0).abs() < 1e-4 && s0.cos_temporal < 1e-4,
        "{s0:?}"
    );
    assert!((s0.mass_spatial - 1.0).abs() < 1e-4, "{s0:?}");
    // Head 1 spreads over the F keys at its position: 1/F of the mass is the query's own key
    // (inside M_s), the rest inside M_t; cos_t = √((F−1)/F), cos_s = 1/√(F·T).
    let s1 = scores[1];
    let f = frames as f32;
    assert!((s1.mass_temporal - (f - 1.0) / f).abs() < 1e-4, "{s1:?}");
    assert!((s1.mass_spatial - 1.0 / f).abs() < 1e-4, "{s1:?}");
    assert!(
        (s1.cos_temporal - ((f - 1.0) / f).sqrt()).abs() < 1e-4,
        "{s1:?}"
    );
    assert!(
        (s1.cos_spatial - 1.0 / (f * tpf as f32).sqrt()).abs() < 1e-4,
        "{s1:?}"
    );

    for rule in [
        ClassificationRule::paper(),
        ClassificationRule::released_code(),
    ] {
        assert_eq!(rule.label(&s0), HeadKind::Spatial, "{rule:?}");
        assert_eq!(rule.label(&s1), HeadKind::Temporal, "{rule:?}");
    }

    // Bad shapes are errors.
    assert!(score_heads(&qt, &kt, 5, tpf).is_err());
    assert!(score_heads(&qt, &kt, 3, 5).is_err());
    let short = Tensor::zeros(&[batch, seq - 1, 3 * d]);
    assert!(score_heads(&qt, &short, 3, tpf).is_err());
}

#[test]
fn random_model_yields_a_label_per_layer_and_head() {
    let cfg = WanConfig {
        num_attention_heads: 4,
        attention_head_dim: 8,
        num_layers: 3,
        ..WanConfig::dev()
    };
    let model = random_model(cfg.clone(), 9);
    let mut rng = StdRng::seed_from_u64(10);
    // 3 latent frames of 2×3 tokens, batch 2.
    let hidden = Tensor::randn(&[2, cfg.in_channels, 3, 4, 6], &mut rng);
    let text = Tensor::randn(&[2, 5, cfg.text_dim], &mut rng);
    let timestep = [900.0, 900.0];

    let scores = head_scores(
        &model,
        &hidden,
        &timestep,
        &text,
        &ForwardOptions::default(),
    )
    .unwrap();
    assert_eq!(scores.len(), cfg.num_layers);
    // The scores of layer 0 recomputed from its captured q/k by the dense definition.
    model.start_capture();
    fym_autograd::no_grad(|| model.forward(&hidden, &timestep, &text, &ForwardOptions::default()))
        .unwrap();
    let captured = model.take_capture();
    assert!(
        model.take_capture().is_empty(),
        "capture must stop after take_capture"
    );
    let want = naive_scores(
        &captured[0].q.to_vec(),
        &captured[0].k.to_vec(),
        2,
        18,
        4,
        6,
    );
    for (h, (g, w)) in scores[0].iter().zip(&want).enumerate() {
        assert_close(g, w, &format!("layer 0 head {h}"));
    }

    for rule in [
        ClassificationRule::paper(),
        ClassificationRule::released_code(),
    ] {
        let labels = classify_heads(&model, &hidden, &timestep, &text, rule).unwrap();
        labels
            .check_shape(cfg.num_layers, cfg.num_attention_heads)
            .unwrap();
        for (l, layer) in labels.layers.iter().enumerate() {
            for (h, e) in layer.iter().enumerate() {
                assert_eq!(e.scores, scores[l][h]);
                assert_eq!(e.kind, rule.label(&e.scores));
                let s = e.scores;
                for v in [
                    s.cos_spatial,
                    s.cos_temporal,
                    s.mass_spatial,
                    s.mass_temporal,
                ] {
                    assert!(
                        (0.0..=1.0).contains(&v),
                        "layer {l} head {h}: score {v} outside [0, 1]"
                    );
                }
                assert!(s.mass_spatial + s.mass_temporal <= 1.0 + 1e-5);
            }
        }
        // JSON: per layer, per head, the label and the four scores.
        let doc: serde_json::Value = serde_json::from_str(&labels.to_json()).unwrap();
        let layers = doc["layers"].as_array().unwrap();
        assert_eq!(layers.len(), cfg.num_layers);
        for (l, layer) in layers.iter().enumerate() {
            let heads = layer["heads"].as_array().unwrap();
            assert_eq!(heads.len(), cfg.num_attention_heads);
            for (h, head) in heads.iter().enumerate() {
                assert_eq!(head["label"], labels.layers[l][h].kind.as_str());
                let cs = head["cos_spatial"].as_f64().unwrap() as f32;
                assert_eq!(cs, labels.layers[l][h].scores.cos_spatial);
                assert!(head["mass_temporal"].is_number());
            }
        }
    }

    // A clip whose frames do not split into patches is an error, and capture is off afterwards.
    let odd = Tensor::randn(&[2, cfg.in_channels, 3, 5, 6], &mut rng);
    assert!(classify_heads(&model, &odd, &timestep, &text, ClassificationRule::paper()).is_err());
    fym_autograd::no_grad(|| model.forward(&hidden, &timestep, &text, &ForwardOptions::default()))
        .unwrap();
    assert!(model.take_capture().is_empty());
}
