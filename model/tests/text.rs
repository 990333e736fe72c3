//! The word-level text encoder and its optional transformer layers.

use std::collections::BTreeMap;

use fym_autograd::gradcheck;
use fym_autograd::Tensor;
use fym_model::text::{TextEncoder, TextLayer};
use rand::SeedableRng;

const WORDS: &[&str] = &["a", "red", "blue", "circle", "square", "moves", "left"];

fn encoder(text_dim: usize, max_len: usize, layers: usize) -> TextEncoder {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut enc = TextEncoder::new_random(WORDS, max_len, text_dim, &mut rng, false).unwrap();
    enc.add_layers(layers, &mut rng, false).unwrap();
    enc
}

/// Gives the zero-initialised projections of every layer random values, as training would.
fn wake_layers(enc: &mut TextEncoder, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for layer in &mut enc.layers {
        for (name, t) in layer.tensors.iter_mut() {
            if name.starts_with("attn.to_out") || name.starts_with("mlp.fc2") {
                *t = Tensor::randn(t.shape(), &mut rng).scale(0.3).unwrap();
            }
        }
    }
}

fn stored(enc: &TextEncoder) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    enc.named_tensors()
        .into_iter()
        .map(|(n, t)| (n, (t.shape().to_vec(), t.to_vec())))
        .collect()
}

/// Added layers start as the identity, so a run that switches them on continues from exactly
/// the model it had.
#[test]
fn text_layers_start_as_the_identity() {
    let plain = encoder(32, 6, 0);
    let mut layered = encoder(32, 6, 0);
    layered
        .add_layers(2, &mut rand::rngs::StdRng::seed_from_u64(4), false)
        .unwrap();
    assert_eq!(layered.layers.len(), 2);
    let captions = ["a red circle moves left", "", "a blue square"];
    assert_eq!(
        plain.encode(&captions).unwrap().to_vec(),
        layered.encode(&captions).unwrap().to_vec()
    );
}

/// What the layers are for: without them a word's encoding is its own embedding plus its
/// position's, whatever surrounds it; with them the shape word of "a red circle" and of
/// "a blue circle" differ — the shape carries its colour.
#[test]
fn text_layers_let_a_word_take_in_its_neighbours() {
    let circle_at = |enc: &TextEncoder, caption: &str| {
        let e = enc.encode(&[caption]).unwrap();
        e.slice(1, 2, 1).unwrap().to_vec()
    };
    let plain = encoder(32, 6, 0);
    assert_eq!(
        circle_at(&plain, "a red circle"),
        circle_at(&plain, "a blue circle")
    );
    let mut layered = encoder(32, 6, 1);
    wake_layers(&mut layered, 7);
    let (red, blue) = (
        circle_at(&layered, "a red circle"),
        circle_at(&layered, "a blue circle"),
    );
    let diff = red
        .iter()
        .zip(&blue)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff > 1e-2, "the colour does not reach the shape: {diff}");
}

/// Every weight of a layer gets the gradient the finite differences of the encoding give.
#[test]
fn text_layer_gradients_match_finite_differences() {
    let mut enc = encoder(16, 4, 1);
    wake_layers(&mut enc, 11);
    // The key bias shifts every score of a query alike, which softmax ignores: its gradient is
    // zero and its finite differences are f32 noise, so it is held fixed.
    const KEY_BIAS: &str = "attn.to_k.bias";
    let key_bias = enc.layers[0].tensors[KEY_BIAS].clone();
    let names: Vec<&'static str> = enc.layers[0]
        .tensors
        .keys()
        .copied()
        .filter(|n| *n != KEY_BIAS)
        .collect();
    let mut inputs = vec![enc.tokens.clone(), enc.positions.clone()];
    inputs.extend(names.iter().map(|n| enc.layers[0].tensors[n].clone()));
    let vocab = enc.vocab.clone();
    let f = |ts: &[Tensor]| {
        let mut tensors: BTreeMap<&'static str, Tensor> =
            names.iter().copied().zip(ts[2..].iter().cloned()).collect();
        tensors.insert(KEY_BIAS, key_bias.clone());
        let enc = TextEncoder {
            vocab: vocab.clone(),
            max_len: 4,
            tokens: ts[0].clone(),
            positions: ts[1].clone(),
            layers: vec![TextLayer { tensors }],
        };
        enc.encode(&["a red circle", "blue square moves left"])
            .map_err(|e| fym_autograd::Error::shape("text encoder", e.to_string()))
    };
    let report = gradcheck(f, &inputs, 1e-2).unwrap();
    println!("{report:?}");
    assert!(report.checked > 3000);
    assert!(report.max_rel_err < 5e-3, "{report:?}");
}

/// The stored tensors give back the same encoder; a missing, misshapen or stray tensor is an
/// error that names it.
#[test]
fn text_encoder_tensors_round_trip_and_bad_sets_are_errors() {
    let mut enc = encoder(32, 6, 2);
    wake_layers(&mut enc, 5);
    let back = TextEncoder::from_tensors(enc.vocab.clone(), stored(&enc), false).unwrap();
    assert_eq!(back.layers.len(), 2);
    assert_eq!(back.max_len, 6);
    let captions = ["a red circle moves left", ""];
    assert_eq!(
        enc.encode(&captions).unwrap().to_vec(),
        back.encode(&captions).unwrap().to_vec()
    );

    let error = |tensors| {
        TextEncoder::from_tensors(enc.vocab.clone(), tensors, false)
            .err()
            .expect("should fail")
            .to_string()
    };
    let mut missing = stored(&enc);
    missing.remove("text_encoder.layers.1.mlp.fc2.bias");
    assert!(error(missing).contains("text_encoder.layers.1.mlp.fc2.bias"));
    let mut misshapen = stored(&enc);
    misshapen
        .get_mut("text_encoder.layers.0.attn.to_q.weight")
        .unwrap()
        .0 = vec![16, 64];
    assert!(error(misshapen).contains("text_encoder.layers.0.attn.to_q.weight is [16, 64]"));
    let mut stray = stored(&enc);
    let norm = stray["text_encoder.layers.0.norm1.weight"].clone();
    stray.insert("text_encoder.layers.3.norm1.weight".into(), norm);
    assert!(error(stray).contains("unexpected tensor text_encoder.layers.3.norm1.weight"));
    let mut no_tokens = stored(&enc);
    no_tokens.remove("text_encoder.tokens");
    assert!(error(no_tokens).contains("no tensor text_encoder.tokens"));
}

/// Layers need a text width their 16-wide heads divide.
#[test]
fn text_layers_need_a_width_their_heads_divide() {
    let mut enc = encoder(24, 4, 0);
    let err = enc
        .add_layers(1, &mut rand::rngs::StdRng::seed_from_u64(1), false)
        .unwrap_err();
    assert!(err.to_string().contains("not a multiple"), "{err}");
}
