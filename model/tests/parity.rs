//! The model against tensors produced by diffusers' `WanTransformer3DModel` (tests/fixtures):
//! forward output and every gradient within max relative error 1e-4.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fym_autograd::Tensor;
use fym_model::lora::{Adapter, Adapters};
use fym_model::lora_io::read_lora;
use fym_model::weights::{load_safetensors_file, load_weights};
use fym_model::{ForwardOptions, HostTensor, WanConfig, WanModel};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).join(name)
}

/// max|a − b| / max|b|
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / max_ref
}

struct Case {
    model: WanModel,
    hidden: Tensor,
    text: Tensor,
    timestep: Vec<f32>,
    cotangent: Vec<f32>,
    outputs: BTreeMap<String, HostTensor>,
}

fn load_case(name: &str) -> Case {
    let dir = fixture(name);
    let config = WanConfig::load(dir.join("config.json")).unwrap();
    let weights = load_weights(&dir, &config).unwrap();
    let tensors = weights
        .into_iter()
        .map(|(n, t)| (n, (t.shape, t.data)))
        .collect();
    let model = WanModel::from_tensors(config, tensors, true).unwrap();
    let inputs = load_safetensors_file(dir.join("inputs.safetensors")).unwrap();
    let param = |n: &str| Tensor::param(inputs[n].data.clone(), &inputs[n].shape).unwrap();
    Case {
        model,
        hidden: param("hidden_states"),
        text: param("encoder_hidden_states"),
        timestep: inputs["timestep"].data.clone(),
        cotangent: inputs["cotangent"].data.clone(),
        outputs: load_safetensors_file(dir.join("outputs.safetensors")).unwrap(),
    }
}

fn check_grads(case: &Case, extra: &[(String, Tensor)]) {
    let out = case
        .model
        .forward(
            &case.hidden,
            &case.timestep,
            &case.text,
            &ForwardOptions::default(),
        )
        .unwrap();
    let e = rel_err(&out.to_vec(), &case.outputs["output"].data);
    assert!(e <= 1e-4, "output rel err {e}");
    let grads = out.backward_with(&case.cotangent).unwrap();
    let mut checked = 0;
    let mut worst = (0f32, String::new());
    let mut all: Vec<(String, Tensor)> = vec![
        ("hidden_states".into(), case.hidden.clone()),
        ("encoder_hidden_states".into(), case.text.clone()),
    ];
    all.extend(
        case.model
            .params()
            .iter()
            .map(|(n, t)| (n.clone(), t.clone())),
    );
    all.extend(extra.iter().cloned());
    for (name, t) in all {
        let want = &case.outputs[&format!("grad.{name}")];
        let got = grads
            .get(&t)
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let e = rel_err(&got, &want.data);
        if e > worst.0 {
            worst = (e, name.clone());
        }
        checked += 1;
    }
    assert!(
        worst.0 <= 1e-4,
        "worst gradient {} rel err {}",
        worst.1,
        worst.0
    );
    assert!(checked >= 71, "checked only {checked} gradients");
    eprintln!(
        "output rel err {e:.2e}; {checked} gradients, worst {} at {:.2e}",
        worst.1, worst.0
    );
}

#[test]
fn base_model_matches_diffusers() {
    let case = load_case("wan_dev");
    check_grads(&case, &[]);
}

#[test]
fn peft_lora_matches_diffusers() {
    let mut case = load_case("wan_dev_lora");
    let io = read_lora(fixture("wan_dev_lora").join("lora.safetensors")).unwrap();
    let head_dim = case.model.config.attention_head_dim;
    let adapter = Adapter::from_io(&io, head_dim, true).unwrap();
    let lora_params: Vec<(String, Tensor)> = adapter
        .params()
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    assert_eq!(lora_params.len(), 32);
    case.model.adapters = Adapters {
        list: vec![adapter],
    };
    check_grads(&case, &lora_params);

    // With the adapter disabled the model is the base model again.
    case.model.adapters.list[0].enabled = false;
    let out = fym_autograd::no_grad(|| {
        case.model
            .forward(
                &case.hidden,
                &case.timestep,
                &case.text,
                &ForwardOptions::default(),
            )
            .unwrap()
    });
    let e = rel_err(&out.to_vec(), &case.outputs["output_base"].data);
    assert!(e <= 1e-4, "output_base rel err {e}");
}
