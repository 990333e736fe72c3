//! WanConfig: parsing diffusers' config.json, errors naming key and file, the parameter list of
//! WAN_ARCH.md §10 (checked against the fixture's weights file), and writing config.json back.

use std::collections::BTreeMap;

use fym_model::config::WanConfig;
use serde_json::Value;

const DEV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/wan_dev");

fn dev_json() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DEV}/config.json")).unwrap()).unwrap()
}

fn parse(v: &Value) -> fym_model::Result<WanConfig> {
    WanConfig::from_json_str(&v.to_string(), "test/config.json")
}

#[test]
fn parses_fixture_config_from_folder_and_file() {
    let from_dir = WanConfig::load(DEV).unwrap();
    let from_file = WanConfig::load(format!("{DEV}/config.json")).unwrap();
    assert_eq!(from_dir, from_file);
    assert_eq!(from_dir, WanConfig::dev());
    assert_eq!(from_dir.dim(), 32);
    assert_eq!(from_dir.patch_out_features(), 16);
}

#[test]
fn expected_parameters_follow_wan_arch_table() {
    let params = WanConfig::dev().expected_parameters();
    assert_eq!(params.len(), 69);
    let total: usize = params
        .iter()
        .map(|(_, s)| s.iter().product::<usize>())
        .sum();
    assert_eq!(total, 37744);
    // Spot rows of the §10 table: (index, name, shape).
    let rows: [(usize, &str, &[usize]); 12] = [
        (0, "patch_embedding.weight", &[32, 4, 1, 2, 2]),
        (6, "condition_embedder.time_proj.weight", &[192, 32]),
        (11, "condition_embedder.text_embedder.linear_2.bias", &[32]),
        (12, "blocks.0.scale_shift_table", &[1, 6, 32]),
        (20, "blocks.0.attn1.to_out.0.bias", &[32]),
        (22, "blocks.0.attn1.norm_k.weight", &[32]),
        (23, "blocks.0.norm2.weight", &[32]),
        (25, "blocks.0.attn2.to_q.weight", &[32, 32]),
        (35, "blocks.0.ffn.net.0.proj.weight", &[64, 32]),
        (39, "blocks.1.scale_shift_table", &[1, 6, 32]),
        (66, "scale_shift_table", &[1, 2, 32]),
        (67, "proj_out.weight", &[16, 32]),
    ];
    for (i, name, shape) in rows {
        assert_eq!(params[i].0, name, "row {i}");
        assert_eq!(params[i].1, shape, "row {i} ({name})");
    }
    // Block 1 repeats block 0 with its own prefix.
    for i in 12..39 {
        assert_eq!(
            params[i + 27].0,
            params[i].0.replacen("blocks.0.", "blocks.1.", 1)
        );
        assert_eq!(params[i + 27].1, params[i].1);
    }
}

#[test]
fn expected_parameters_match_the_fixture_weights_header() {
    // Read the safetensors header by hand (independent of the loader under test).
    let bytes = std::fs::read(format!("{DEV}/diffusion_pytorch_model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let in_file: BTreeMap<String, Vec<usize>> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), shape)
        })
        .collect();
    let expected: BTreeMap<String, Vec<usize>> =
        WanConfig::dev().expected_parameters().into_iter().collect();
    assert_eq!(expected, in_file);
}

#[test]
fn missing_required_key_names_key_and_file() {
    for key in ["ffn_dim", "patch_size", "num_layers", "attention_head_dim"] {
        let mut v = dev_json();
        v.as_object_mut().unwrap().remove(key);
        let msg = parse(&v).unwrap_err().to_string();
        assert!(
            msg.contains(key) && msg.contains("test/config.json"),
            "{msg}"
        );
        assert!(msg.contains("missing"), "{msg}");
    }
}

#[test]
fn wrong_types_are_errors() {
    let cases: [(&str, Value); 6] = [
        ("num_layers", Value::from("2")),
        ("num_layers", Value::from(-1)),
        ("eps", Value::from("tiny")),
        ("patch_size", Value::from(vec![1, 2])),
        ("cross_attn_norm", Value::from(1)),
        ("attention_head_dim", Value::from(2.5)),
    ];
    for (key, bad) in cases {
        let mut v = dev_json();
        v[key] = bad.clone();
        let msg = parse(&v).unwrap_err().to_string();
        assert!(msg.contains(key), "{key}={bad}: {msg}");
    }
    assert!(WanConfig::from_json_str("[1, 2]", "x.json").is_err());
    assert!(WanConfig::from_json_str("{not json", "x.json")
        .unwrap_err()
        .to_string()
        .contains("x.json"));
}

#[test]
fn image_branches_are_rejected() {
    for key in ["image_dim", "added_kv_proj_dim", "pos_embed_seq_len"] {
        let mut v = dev_json();
        v[key] = Value::from(1280);
        let msg = parse(&v).unwrap_err().to_string();
        assert!(
            msg.contains("I2V not supported") && msg.contains(key),
            "{msg}"
        );
    }
}

#[test]
fn defaults_and_unknown_keys() {
    let mut v = dev_json();
    let obj = v.as_object_mut().unwrap();
    obj.insert("out_channels".into(), Value::Null);
    obj.insert("in_channels".into(), Value::from(7));
    obj.insert("some_future_key".into(), Value::from("whatever"));
    obj.remove("rope_max_seq_len");
    obj.remove("eps");
    let cfg = parse(&v).unwrap();
    assert_eq!(cfg.out_channels, 7);
    assert_eq!(cfg.rope_max_seq_len, 1024);
    assert_eq!(cfg.eps, 1e-6);
}

#[test]
fn odd_head_dim_and_zero_sizes_are_rejected() {
    let mut v = dev_json();
    v["attention_head_dim"] = Value::from(15);
    assert!(parse(&v).unwrap_err().to_string().contains("even"));
    let mut v = dev_json();
    v["num_attention_heads"] = Value::from(0);
    assert!(parse(&v)
        .unwrap_err()
        .to_string()
        .contains("num_attention_heads"));
}

#[test]
fn without_cross_attn_norm_there_are_no_norm2_parameters() {
    let cfg = WanConfig {
        cross_attn_norm: false,
        ..WanConfig::dev()
    };
    let params = cfg.expected_parameters();
    assert_eq!(params.len(), 69 - 4);
    assert!(params.iter().all(|(n, _)| !n.contains("norm2")));
}

#[test]
fn to_json_round_trips_and_matches_the_diffusers_file() {
    let cfg = WanConfig::dev();
    let text = cfg.to_json();
    assert_eq!(WanConfig::from_json_str(&text, "rt.json").unwrap(), cfg);
    // Same keys and values as the file save_pretrained wrote.
    let ours: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ours, dev_json());

    let big = WanConfig::wan21_t2v_1_3b();
    assert_eq!(
        WanConfig::from_json_str(&big.to_json(), "big.json").unwrap(),
        big
    );
    assert_eq!(big.dim(), 1536);
}

#[test]
fn save_writes_a_loadable_config_json() {
    let dir = std::env::temp_dir().join(format!("fym-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = WanConfig {
        num_layers: 3,
        ..WanConfig::dev()
    };
    cfg.save(&dir).unwrap();
    assert_eq!(WanConfig::load(&dir).unwrap(), cfg);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The per-frame embedding is fym's only key outside diffusers' config: absent means off (every
/// real Wan config), present it round-trips and adds one `[len, dim]` parameter.
#[test]
fn frame_embedding_key_round_trips_and_adds_one_parameter() {
    assert_eq!(parse(&dev_json()).unwrap().frame_embed_len, 0);
    let cfg = WanConfig {
        frame_embed_len: 4,
        ..WanConfig::dev()
    };
    let text = cfg.to_json();
    assert!(text.contains("\"fym_frame_embed_len\": 4"), "{text}");
    assert_eq!(WanConfig::from_json_str(&text, "rt.json").unwrap(), cfg);
    let plain = WanConfig::dev().expected_parameters();
    let with = cfg.expected_parameters();
    assert_eq!(with.len(), plain.len() + 1);
    assert!(with
        .iter()
        .any(|(n, s)| n == "fym_frame_embedding.weight" && s == &vec![4, cfg.dim()]));
}
