//! `fym forward` end to end: the built binary on the diffusers fixtures (base model and PEFT LoRA)
//! writes an output and gradients that match diffusers', and bad input fails with a message that
//! names the file or tensor at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fym_model::weights::{load_safetensors_file, save_safetensors};
use fym_model::HostTensor;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli_forward_{name}"))
}

fn fym(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fym"))
        .args(args)
        .output()
        .expect("the fym binary runs")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// max|a − b| / max|b|
fn rel_err(got: &[f32], want: &[f32]) -> f32 {
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    got.iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / max_ref
}

/// Runs `fym forward` and compares every tensor it wrote with the fixture's outputs; returns the
/// names written.
fn run_and_compare(dir: &str, lora: bool, grads: bool) -> Vec<String> {
    let fix = fixture(dir);
    let out = scratch(&format!("{dir}_{grads}.safetensors"));
    let (model, inputs, lora_file) = (
        fix.clone(),
        fix.join("inputs.safetensors"),
        fix.join("lora.safetensors"),
    );
    let mut args = vec![
        "forward",
        "--model",
        path_str(&model),
        "--inputs",
        path_str(&inputs),
        "--out",
        path_str(&out),
    ];
    if lora {
        args.extend(["--lora", path_str(&lora_file)]);
    }
    if grads {
        args.push("--grads");
    }
    let run = fym(&args);
    assert!(
        run.status.success(),
        "fym forward failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let got = load_safetensors_file(&out).unwrap();
    let want = load_safetensors_file(fix.join("outputs.safetensors")).unwrap();
    let mut worst = (0f32, String::new());
    for (name, t) in &got {
        let w = want
            .get(name)
            .unwrap_or_else(|| panic!("{dir}: wrote `{name}`, which the fixture does not have"));
        assert_eq!(t.shape, w.shape, "{dir}: shape of `{name}`");
        let e = rel_err(&t.data, &w.data);
        if e >= worst.0 {
            worst = (e, name.clone());
        }
    }
    assert!(
        worst.0 <= 1e-4,
        "{dir}: `{}` has max rel err {}",
        worst.1,
        worst.0
    );
    eprintln!(
        "{dir} (lora {lora}, grads {grads}): {} tensors, worst {} at {:.2e}",
        got.len(),
        worst.1,
        worst.0
    );
    std::fs::remove_file(&out).unwrap();
    got.into_keys().collect()
}

#[test]
fn base_model_output_and_every_gradient_match_diffusers() {
    let names = run_and_compare("wan_dev", false, true);
    // output, the two input gradients, and all 69 base parameters.
    assert_eq!(names.len(), 72, "{names:?}");
    for n in [
        "output",
        "grad.hidden_states",
        "grad.encoder_hidden_states",
        "grad.proj_out.weight",
    ] {
        assert!(names.iter().any(|x| x == n), "missing {n}");
    }
    assert_eq!(run_and_compare("wan_dev", false, false), ["output"]);
}

#[test]
fn lora_output_and_factor_gradients_match_diffusers() {
    let names = run_and_compare("wan_dev_lora", true, true);
    // output, the two input gradients, lora_A and lora_B of 4 projections × 2 attentions × 2
    // blocks; the base is frozen, so no base gradients.
    assert_eq!(names.len(), 3 + 32, "{names:?}");
    assert!(names
        .iter()
        .any(|n| n == "grad.transformer.blocks.1.attn2.to_out.0.lora_B.weight"));
    assert!(!names.iter().any(|n| n == "grad.proj_out.weight"));
}

fn expect_failure(args: &[&str], needles: &[&str]) {
    let run = fym(args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(
        run.status.code(),
        Some(1),
        "expected exit 1, stderr: {stderr}"
    );
    for n in needles {
        assert!(
            stderr.contains(n),
            "stderr does not mention {n:?}: {stderr}"
        );
    }
}

#[test]
fn bad_inputs_fail_with_a_message_naming_the_culprit() {
    let fix = fixture("wan_dev");
    let model = path_str(&fix).to_string();
    let out = scratch("never_written.safetensors");
    let out_s = path_str(&out).to_string();

    let missing = scratch("does_not_exist.safetensors");
    expect_failure(
        &[
            "forward",
            "--model",
            &model,
            "--inputs",
            path_str(&missing),
            "--out",
            &out_s,
        ],
        &["--inputs", "does_not_exist.safetensors"],
    );

    // The fixture's inputs without `cotangent`: fine for a forward, an error with --grads.
    let mut inputs = load_safetensors_file(fix.join("inputs.safetensors")).unwrap();
    inputs.remove("cotangent");
    let no_cot = scratch("no_cotangent.safetensors");
    save_safetensors(&no_cot, &inputs, &BTreeMap::new()).unwrap();
    expect_failure(
        &[
            "forward",
            "--model",
            &model,
            "--inputs",
            path_str(&no_cot),
            "--out",
            &out_s,
            "--grads",
        ],
        &["cotangent", "no_cotangent.safetensors"],
    );
    let ok = fym(&[
        "forward",
        "--model",
        &model,
        "--inputs",
        path_str(&no_cot),
        "--out",
        &out_s,
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(load_safetensors_file(&out).unwrap().len(), 1);

    // Wrong channel count in hidden_states.
    let h = &inputs["hidden_states"];
    let mut bad = inputs.clone();
    let shape = vec![h.shape[0], 3, h.shape[2], h.shape[3], h.shape[4]];
    let n = shape.iter().product();
    bad.insert(
        "hidden_states".into(),
        HostTensor::new(shape, vec![0.5; n]).unwrap(),
    );
    let bad_path = scratch("bad_channels.safetensors");
    save_safetensors(&bad_path, &bad, &BTreeMap::new()).unwrap();
    expect_failure(
        &[
            "forward",
            "--model",
            &model,
            "--inputs",
            path_str(&bad_path),
            "--out",
            &out_s,
        ],
        &[
            "hidden_states",
            "bad_channels.safetensors",
            "[1, 3, 4, 8, 8]",
        ],
    );

    // A missing input tensor, a missing model folder, a missing LoRA file.
    let mut no_text = inputs.clone();
    no_text.remove("encoder_hidden_states");
    let no_text_path = scratch("no_text.safetensors");
    save_safetensors(&no_text_path, &no_text, &BTreeMap::new()).unwrap();
    expect_failure(
        &[
            "forward",
            "--model",
            &model,
            "--inputs",
            path_str(&no_text_path),
            "--out",
            &out_s,
        ],
        &["encoder_hidden_states", "no_text.safetensors"],
    );
    let inputs_path = fix.join("inputs.safetensors");
    expect_failure(
        &[
            "forward",
            "--model",
            "/nonexistent/model_dir",
            "--inputs",
            path_str(&inputs_path),
            "--out",
            &out_s,
        ],
        &["/nonexistent/model_dir"],
    );
    expect_failure(
        &[
            "forward",
            "--model",
            &model,
            "--inputs",
            path_str(&inputs_path),
            "--out",
            &out_s,
            "--lora",
            "/nonexistent/l.safetensors",
        ],
        &["--lora", "/nonexistent/l.safetensors"],
    );
    for p in [&out, &no_cot, &bad_path, &no_text_path] {
        std::fs::remove_file(p).unwrap();
    }
}
