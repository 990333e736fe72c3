//! LoRA files: the fixture's diffusers-format adapter, round trips with fym's metadata, the
//! accepted key variants, shape errors, and head restriction computing the restricted update.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fym_model::config::WanConfig;
use fym_model::flow::fill_standard_normal;
use fym_model::lora_io::{
    read_lora, write_lora, AdapterKind, Attn, LoraAdapter, LoraFactors, LoraSite, LoraTarget,
};
use fym_model::weights::{
    load_safetensors_file, load_safetensors_with_metadata, save_safetensors, HostTensor,
};
use rand::SeedableRng;

const LORA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/wan_dev_lora/lora.safetensors"
);

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fym-lora-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn random(seed: u64, shape: Vec<usize>) -> HostTensor {
    let mut data = vec![0.0; shape.iter().product()];
    fill_standard_normal(&mut rand::rngs::StdRng::seed_from_u64(seed), &mut data);
    HostTensor { shape, data }
}

fn random_adapter(rank: usize, dim: usize, blocks: usize) -> LoraAdapter {
    let mut factors = BTreeMap::new();
    let mut seed = 100;
    for block in 0..blocks {
        for attn in [Attn::SelfAttn, Attn::CrossAttn] {
            for target in LoraTarget::ALL {
                seed += 2;
                factors.insert(
                    LoraSite {
                        block,
                        attn,
                        target,
                    },
                    LoraFactors {
                        a: random(seed, vec![rank, dim]),
                        b: random(seed + 1, vec![dim, rank]),
                    },
                );
            }
        }
    }
    LoraAdapter {
        rank,
        alpha: rank as f32,
        kind: AdapterKind::Plain,
        stage: None,
        heads: None,
        head_dim: None,
        factors,
    }
}

#[test]
fn reads_the_fixture_adapter() {
    let a = read_lora(LORA).unwrap();
    assert_eq!(a.rank, 4);
    assert_eq!(a.alpha, 4.0); // no alpha in the file → alpha = rank (the fixture's alpha is 4)
    assert_eq!(a.scale(), 1.0);
    assert_eq!(a.kind, AdapterKind::Plain);
    assert_eq!(a.factors.len(), 16); // 2 blocks × 2 attentions × 4 projections
    let raw = load_safetensors_file(LORA).unwrap();
    for (site, f) in &a.factors {
        assert!(site.block < 2);
        assert_eq!(f.a.shape, vec![4, 32], "{site}");
        assert_eq!(f.b.shape, vec![32, 4], "{site}");
        let key = format!("transformer.{}", site.module_path());
        assert_eq!(f.a, raw[&format!("{key}.lora_A.weight")]);
        assert_eq!(f.b, raw[&format!("{key}.lora_B.weight")]);
    }
    a.check_against_config(&WanConfig::dev(), LORA.as_ref())
        .unwrap();
    let one_layer = WanConfig {
        num_layers: 1,
        ..WanConfig::dev()
    };
    assert!(a
        .check_against_config(&one_layer, LORA.as_ref())
        .unwrap_err()
        .to_string()
        .contains("blocks.1."));
}

#[test]
fn site_names_parse_and_print() {
    let s = LoraSite::parse("blocks.12.attn2.to_out.0").unwrap();
    assert_eq!(
        s,
        LoraSite {
            block: 12,
            attn: Attn::CrossAttn,
            target: LoraTarget::ToOut
        }
    );
    assert_eq!(s.module_path(), "blocks.12.attn2.to_out.0");
    assert!(LoraSite::parse("blocks.1.attn3.to_q").is_none());
    assert!(LoraSite::parse("blocks.x.attn1.to_q").is_none());
    assert!(LoraSite::parse("blocks.1.ffn.net.0.proj").is_none());
}

#[test]
fn round_trip_keeps_factors_and_metadata() {
    let dir = temp_dir("roundtrip");
    let mut a = random_adapter(3, 32, 2);
    a.alpha = 6.0;
    a.kind = AdapterKind::Temporal;
    a.stage = Some("temporal".into());
    a.heads = Some(BTreeMap::from([(0, vec![1]), (1, vec![0, 1])]));
    a.head_dim = Some(16);
    let path = dir.join("temporal.safetensors");
    write_lora(&path, &a).unwrap();
    let back = read_lora(&path).unwrap();
    assert_eq!(back, a);
    assert_eq!(back.scale(), 2.0);

    // The file speaks diffusers: prefixed keys and PEFT metadata with rank, alpha, targets.
    let (tensors, meta) = load_safetensors_with_metadata(&path).unwrap();
    assert!(tensors.contains_key("transformer.blocks.1.attn2.to_out.0.lora_B.weight"));
    assert_eq!(meta["format"], "pt");
    assert_eq!(meta["fym.adapter"], "temporal");
    let peft: serde_json::Value = serde_json::from_str(&meta["lora_adapter_metadata"]).unwrap();
    assert_eq!(peft["transformer.r"], 3);
    assert_eq!(peft["transformer.lora_alpha"], 6.0);
    assert_eq!(
        peft["transformer.target_modules"].as_array().unwrap().len(),
        16
    );
    let heads: serde_json::Value = serde_json::from_str(&meta["fym.heads"]).unwrap();
    assert_eq!(heads, serde_json::json!({"0": [1], "1": [0, 1]}));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn accepts_unprefixed_peft_and_named_adapter_keys() {
    let dir = temp_dir("variants");
    let raw = load_safetensors_file(LORA).unwrap();
    let expected = read_lora(LORA).unwrap();
    // (file name, prefix, adapter name) applied to the bare module keys.
    let variants = [
        ("bare", "", ""),
        ("peft", "base_model.model.", ""),
        ("named", "base_model.model.", ".default"),
    ];
    for (name, prefix, adapter) in variants {
        let renamed: BTreeMap<String, HostTensor> = raw
            .iter()
            .map(|(k, t)| {
                let bare = k.strip_prefix("transformer.").unwrap();
                let key = bare.replace(".weight", &format!("{adapter}.weight"));
                (format!("{prefix}{key}"), t.clone())
            })
            .collect();
        let path = dir.join(format!("{name}.safetensors"));
        save_safetensors(&path, &renamed, &BTreeMap::new()).unwrap();
        assert_eq!(read_lora(&path).unwrap(), expected, "{name}");
    }
    // Alpha from diffusers' PEFT metadata when fym's own key is absent.
    let mut meta = BTreeMap::new();
    meta.insert(
        "lora_adapter_metadata".to_string(),
        r#"{"transformer.r": 4, "transformer.lora_alpha": 8}"#.to_string(),
    );
    let path = dir.join("alpha.safetensors");
    save_safetensors(&path, &raw, &meta).unwrap();
    assert_eq!(read_lora(&path).unwrap().scale(), 2.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn inconsistent_files_are_rejected() {
    let dir = temp_dir("bad");
    let raw = load_safetensors_file(LORA).unwrap();
    let path = dir.join("bad.safetensors");
    let check =
        |tensors: &BTreeMap<String, HostTensor>, meta: &BTreeMap<String, String>, needle: &str| {
            save_safetensors(&path, tensors, meta).unwrap();
            let msg = read_lora(&path).unwrap_err().to_string();
            assert!(
                msg.contains(needle) && msg.contains("bad.safetensors"),
                "want {needle:?}: {msg}"
            );
        };
    let none = BTreeMap::new();

    // lora_B with the wrong rank.
    let mut t = raw.clone();
    t.insert(
        "transformer.blocks.0.attn1.to_q.lora_B.weight".into(),
        random(1, vec![32, 3]),
    );
    check(&t, &none, "blocks.0.attn1.to_q");
    // One site with a different rank (both factors consistent).
    let mut t = raw.clone();
    t.insert(
        "transformer.blocks.1.attn2.to_v.lora_A.weight".into(),
        random(2, vec![2, 32]),
    );
    t.insert(
        "transformer.blocks.1.attn2.to_v.lora_B.weight".into(),
        random(3, vec![32, 2]),
    );
    check(&t, &none, "inconsistent ranks");
    // A without B.
    let mut t = raw.clone();
    t.remove("transformer.blocks.0.attn2.to_k.lora_B.weight");
    check(&t, &none, "lora_A without lora_B");
    // An unknown key.
    let mut t = raw.clone();
    t.insert(
        "transformer.blocks.0.ffn.net.0.proj.lora_A.weight".into(),
        random(4, vec![4, 32]),
    );
    check(&t, &none, "ffn.net.0.proj");
    // A 1-D factor.
    let mut t = raw.clone();
    t.insert(
        "transformer.blocks.0.attn1.to_v.lora_A.weight".into(),
        random(5, vec![128]),
    );
    check(&t, &none, "2-D");
    // Metadata rank that disagrees with the factors.
    check(
        &raw,
        &BTreeMap::from([("fym.rank".to_string(), "8".to_string())]),
        "fym.rank",
    );
    // Two adapters mixed in one file.
    let mut t: BTreeMap<String, HostTensor> = BTreeMap::new();
    for (k, v) in &raw {
        let k = if k.contains("attn1.to_q.") {
            k.replace(".weight", ".one.weight")
        } else if k.contains("attn1.to_k.") {
            k.replace(".weight", ".two.weight")
        } else {
            k.clone()
        };
        t.insert(k, v.clone());
    }
    check(&t, &none, "mixes adapters");
    // Empty file.
    check(&BTreeMap::new(), &none, "no LoRA factors");

    // Writing refuses inconsistent adapters too.
    let mut a = random_adapter(2, 32, 1);
    a.factors.values_mut().next().unwrap().b = random(11, vec![32, 3]);
    assert!(write_lora(dir.join("w.safetensors"), &a).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// y = (x·Aᵀ)·Bᵀ for one token.
fn delta(f: &LoraFactors, x: &[f32]) -> Vec<f32> {
    let (r, d_in) = (f.a.shape[0], f.a.shape[1]);
    let d_out = f.b.shape[0];
    let u: Vec<f32> = (0..r)
        .map(|i| (0..d_in).map(|j| f.a.data[i * d_in + j] * x[j]).sum())
        .collect();
    (0..d_out)
        .map(|o| (0..r).map(|i| f.b.data[o * r + i] * u[i]).sum())
        .collect()
}

#[test]
fn head_restriction_computes_the_restricted_update() {
    // dim 32 = 2 heads × 16. Block 0 keeps head 1, block 1 keeps nothing.
    let full = random_adapter(4, 32, 2);
    let mut restricted = full.clone();
    restricted.kind = AdapterKind::Spatial;
    restricted.heads = Some(BTreeMap::from([(0, vec![1])]));
    restricted.head_dim = Some(16);
    restricted.restrict_to_heads().unwrap();
    let x = random(50, vec![32]).data;

    for (site, f) in &restricted.factors {
        let got = delta(f, &x);
        let orig = &full.factors[site];
        if site.block == 1 {
            assert!(got.iter().all(|&v| v == 0.0), "{site}");
            continue;
        }
        match site.target {
            LoraTarget::ToQ | LoraTarget::ToK | LoraTarget::ToV => {
                // Output features of head 0 untouched by the update, head 1 as the full adapter.
                let want = delta(orig, &x);
                for o in 0..32 {
                    let w = if o >= 16 { want[o] } else { 0.0 };
                    assert!((got[o] - w).abs() < 1e-5, "{site} feature {o}");
                }
            }
            LoraTarget::ToOut => {
                // Input features of head 0 do not reach the update: the full adapter on x with
                // head 0's features zeroed.
                let mut x_head1 = x.clone();
                x_head1[..16].fill(0.0);
                let want = delta(orig, &x_head1);
                for o in 0..32 {
                    assert!((got[o] - want[o]).abs() < 1e-5, "{site} feature {o}");
                }
            }
        }
    }
    // Without an assignment nothing changes.
    let mut plain = full.clone();
    plain.restrict_to_heads().unwrap();
    assert_eq!(plain, full);
    // Heads out of range for the model are caught.
    let mut bad = restricted.clone();
    bad.heads = Some(BTreeMap::from([(0, vec![2])]));
    assert!(bad
        .check_against_config(&WanConfig::dev(), "x".as_ref())
        .unwrap_err()
        .to_string()
        .contains("head 2"));
}
