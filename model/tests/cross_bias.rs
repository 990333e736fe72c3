//! A bias on the cross-attention scores: zero changes nothing, a word blocked for every video
//! token is as if the caption did not have it, a word blocked for some tokens changes what those
//! tokens (and, through self-attention, their neighbours) read, and a bias of the wrong shape is
//! an error.

mod common;
use common::{max_abs_diff, random_model, two_head_config as config};

use fym_autograd::Tensor;
use fym_model::ForwardOptions;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Large enough that exp(score + BLOCKED) underflows to zero next to any unblocked word.
const BLOCKED: f32 = -1e9;

fn forward(
    model: &fym_model::WanModel,
    hidden: &Tensor,
    text: &Tensor,
    bias: Option<Tensor>,
) -> fym_model::Result<Vec<f32>> {
    let opts = ForwardOptions {
        cross_attention_bias: bias,
        ..Default::default()
    };
    let b = hidden.dim(0);
    let t = vec![400.0; b];
    Ok(fym_autograd::no_grad(|| model.forward(hidden, &t, text, &opts))?.to_vec())
}

#[test]
fn a_cross_attention_bias_blocks_words() {
    let cfg = config();
    let model = random_model(cfg.clone(), 11);
    let mut rng = StdRng::seed_from_u64(12);
    // Batch 2, 3 latent frames (patch t = 1 in the dev config) of 2 × 3 tokens, 5 words.
    let hidden = Tensor::randn(&[2, cfg.in_channels, 3, 4, 6], &mut rng);
    let words = 5;
    let text = Tensor::randn(&[2, words, cfg.text_dim], &mut rng);
    let [pt, ph, pw] = cfg.patch_size;
    let tokens = (3 / pt) * (4 / ph) * (6 / pw);
    let plain = forward(&model, &hidden, &text, None).unwrap();

    // A zero bias: the same numbers (another order of the same sums).
    let zero = Tensor::from_vec(vec![0.0; 2 * tokens * words], &[2, tokens, words]).unwrap();
    let diff = max_abs_diff(
        &forward(&model, &hidden, &text, Some(zero)).unwrap(),
        &plain,
    );
    assert!(diff < 1e-5, "zero bias changed the output by {diff}");

    // Word 3 of batch entry 1 blocked for every token = entry 1 with a caption without it;
    // entry 0 is untouched.
    let mut bias = vec![0.0; 2 * tokens * words];
    for q in 0..tokens {
        bias[(tokens + q) * words + 3] = BLOCKED;
    }
    let bias = Tensor::from_vec(bias, &[2, tokens, words]).unwrap();
    let blocked = forward(&model, &hidden, &text, Some(bias)).unwrap();
    let half = plain.len() / 2;
    assert!(max_abs_diff(&blocked[..half], &plain[..half]) < 1e-5);
    let kept: Vec<usize> = vec![0, 1, 2, 4];
    let shorter = text.index_select(1, &kept).unwrap();
    let without = forward(&model, &hidden, &shorter, None).unwrap();
    let diff = max_abs_diff(&blocked[half..], &without[half..]);
    assert!(
        diff < 1e-5,
        "blocked word differs from a removed one by {diff}"
    );
    assert!(
        max_abs_diff(&blocked[half..], &plain[half..]) > 1e-3,
        "word 3 must matter"
    );

    // Blocked for the tokens of the first latent frame only: the output changes, and not as
    // when it is blocked everywhere.
    let mut bias = vec![0.0; 2 * tokens * words];
    for q in 0..tokens / 3 {
        bias[q * words + 3] = BLOCKED;
        bias[(tokens + q) * words + 3] = BLOCKED;
    }
    let bias = Tensor::from_vec(bias, &[2, tokens, words]).unwrap();
    let some = forward(&model, &hidden, &text, Some(bias)).unwrap();
    assert!(max_abs_diff(&some, &plain) > 1e-3);
    assert!(max_abs_diff(&some[half..], &without[half..]) > 1e-3);

    // The wrong shape names what it expected.
    let bad = Tensor::from_vec(vec![0.0; tokens * words], &[1, tokens, words]).unwrap();
    let e = forward(&model, &hidden, &text, Some(bad)).unwrap_err();
    assert!(
        e.to_string().contains("cross-attention bias"),
        "unexpected error: {e}"
    );
}
