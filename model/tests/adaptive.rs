//! Adaptive RoPE through the whole model: explicit integer frame positions are the default
//! forward, RoPE only sees position differences, and a sparse subset of frames runs at the
//! stretched positions of the full clip.

mod common;
use common::{max_abs_diff, random_model, two_head_config as config};

use fym_autograd::Tensor;
use fym_model::adaptive_rope::{adaptive_temporal_positions, baseline_temporal_positions};
use fym_model::transformer::frame_embedding_weights;
use fym_model::{ForwardOptions, WanModel};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn run(model: &WanModel, hidden: &Tensor, text: &Tensor, positions: Option<Vec<f64>>) -> Tensor {
    let opts = ForwardOptions {
        frame_positions: positions,
        ..Default::default()
    };
    fym_autograd::no_grad(|| model.forward(hidden, &[400.0], text, &opts)).unwrap()
}

#[test]
fn integer_positions_equal_the_default_forward() {
    let cfg = config();
    let model = random_model(cfg.clone(), 1);
    let mut rng = StdRng::seed_from_u64(2);
    let frames = 5;
    let hidden = Tensor::randn(&[1, cfg.in_channels, frames, 4, 6], &mut rng);
    let text = Tensor::randn(&[1, 4, cfg.text_dim], &mut rng);
    let default = run(&model, &hidden, &text, None).to_vec();
    let explicit = run(
        &model,
        &hidden,
        &text,
        Some((0..frames).map(|f| f as f64).collect()),
    )
    .to_vec();
    assert_eq!(explicit, default);
    assert_eq!(
        run(
            &model,
            &hidden,
            &text,
            Some(baseline_temporal_positions(frames))
        )
        .to_vec(),
        default
    );

    // Only position differences reach the attention scores: a shift of every frame by the same
    // real amount changes the output by rounding only, a change of spacing changes it for real.
    let shifted = run(
        &model,
        &hidden,
        &text,
        Some((0..frames).map(|f| f as f64 + 2.75).collect()),
    )
    .to_vec();
    let err = max_abs_diff(&shifted, &default);
    assert!(err < 1e-4, "uniform shift changed the output by {err}");
    let stretched = run(
        &model,
        &hidden,
        &text,
        Some((0..frames).map(|f| 2.0 * f as f64).collect()),
    )
    .to_vec();
    assert!(
        max_abs_diff(&stretched, &default) > 1e-3,
        "frame spacing must matter"
    );

    let e = model
        .forward(
            &hidden,
            &[400.0],
            &text,
            &ForwardOptions {
                frame_positions: Some(vec![0.0, 1.0]),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("2 frame positions for 5 latent frames"),
        "{e}"
    );
}

#[test]
fn sparse_frames_run_at_adaptive_positions() {
    let cfg = config();
    let model = random_model(cfg.clone(), 3);
    let mut rng = StdRng::seed_from_u64(4);
    let full_frames = 9;
    let clip = Tensor::randn(&[1, cfg.in_channels, full_frames, 4, 4], &mut rng);
    let text = Tensor::randn(&[1, 4, cfg.text_dim], &mut rng);
    let picked = [0usize, 3, 5, 8];
    let sparse = clip.index_select(2, &picked).unwrap();
    let positions = adaptive_temporal_positions(full_frames, picked.len()).unwrap();
    assert_eq!(positions, vec![0.0, 2.25, 4.5, 6.75]);
    let out = run(&model, &sparse, &text, Some(positions));
    assert_eq!(out.shape(), [1, cfg.out_channels, picked.len(), 4, 4]);
    assert!(out.to_vec().iter().all(|v| v.is_finite()));
    let consecutive = run(
        &model,
        &sparse,
        &text,
        Some(baseline_temporal_positions(picked.len())),
    );
    assert!(
        max_abs_diff(&out.to_vec(), &consecutive.to_vec()) > 1e-3,
        "adaptive positions must differ from consecutive ones"
    );
}

/// The per-latent-frame embedding (`fym_frame_embed_len`): added at zero it changes nothing;
/// trained it makes the model depend on absolute frame positions (RoPE alone cannot), and at a
/// fractional position it is the linear interpolation of its two neighbouring rows.
#[test]
fn frame_embedding_starts_neutral_and_interpolates() {
    let cfg = config();
    let mut model = random_model(cfg.clone(), 3);
    let mut rng = StdRng::seed_from_u64(4);
    let frames = 4;
    let hidden = Tensor::randn(&[1, cfg.in_channels, frames, 4, 4], &mut rng);
    let text = Tensor::randn(&[1, 3, cfg.text_dim], &mut rng);
    let plain = run(&model, &hidden, &text, None).to_vec();
    let later = Some(vec![1.0, 2.0, 3.0, 4.0]);
    let plain_later = run(&model, &hidden, &text, later.clone()).to_vec();
    assert!(
        max_abs_diff(&plain_later, &plain) < 1e-4,
        "RoPE sees differences only"
    );
    model.add_frame_embedding(frames, false).unwrap();
    assert_eq!(model.config.frame_embed_len, frames);
    assert_eq!(run(&model, &hidden, &text, None).to_vec(), plain);
    assert!(model.add_frame_embedding(frames, false).is_err());

    let dim = cfg.dim();
    let rows: Vec<f32> = (0..frames * dim)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let table = model.param(fym_model::config::FRAME_EMBED_PARAM).unwrap();
    table.data_mut().copy_from_slice(&rows);
    let embedded = run(&model, &hidden, &text, None).to_vec();
    assert!(max_abs_diff(&embedded, &plain) > 1e-3);
    // Shifting every frame by the same amount changes nothing under RoPE alone, but changes
    // which rows of the table are used.
    let shifted = run(&model, &hidden, &text, later).to_vec();
    assert!(max_abs_diff(&shifted, &embedded) > 1e-3);

    // Rows used at fractional positions: linear interpolation of the two neighbours; past the
    // table's end, its last row.
    let w = frame_embedding_weights(3, 4, Some(&[0.25, 2.5, 7.0]));
    #[rustfmt::skip]
    let expected = [
        0.75, 0.25, 0.0, 0.0,
        0.0, 0.0, 0.5, 0.5,
        0.0, 0.0, 0.0, 1.0,
    ];
    assert_eq!(w, expected);
    assert_eq!(
        frame_embedding_weights(2, 3, None),
        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    );
}
