//! safetensors loading: the dev fixture against a hand-parsed reference, dtype conversion,
//! config mismatches reported in one error, corrupt files, sharded checkpoints, atomic writing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fym_model::config::WanConfig;
use fym_model::weights::{
    load_safetensors_file, load_safetensors_with_metadata, load_weights, save_safetensors,
    HostTensor, WEIGHTS_FILE, WEIGHTS_INDEX_FILE,
};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DEV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/wan_dev");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fym-weights-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Independent reader: header JSON + little-endian f32 payload.
fn naive_read_f32(path: &Path) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data = &bytes[8 + n..];
    let mut out = BTreeMap::new();
    for (name, info) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(info["dtype"], "F32");
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let off = info["data_offsets"].as_array().unwrap();
        let (s, e) = (
            off[0].as_u64().unwrap() as usize,
            off[1].as_u64().unwrap() as usize,
        );
        let vals = data[s..e]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(name.clone(), (shape, vals));
    }
    out
}

/// Writes a safetensors file by hand with arbitrary dtypes: (name, dtype, shape, raw bytes).
fn write_raw(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
    let mut header = serde_json::Map::new();
    let mut payload = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = payload.len();
        payload.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [start, payload.len()]}),
        );
    }
    let h = Value::Object(header).to_string().into_bytes();
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&h);
    file.extend_from_slice(&payload);
    std::fs::write(path, file).unwrap();
}

#[test]
fn dev_weights_load_and_match_a_naive_reader() {
    let cfg = WanConfig::load(DEV).unwrap();
    let w = load_weights(DEV, &cfg).unwrap();
    assert_eq!(w.len(), 69);
    let reference = naive_read_f32(&Path::new(DEV).join(WEIGHTS_FILE));
    assert_eq!(reference.len(), 69);
    for (name, (shape, vals)) in &reference {
        let t = &w[name];
        assert_eq!(&t.shape, shape, "{name}");
        assert_eq!(&t.data, vals, "{name}");
    }
    // The same through the single-file path.
    let w2 = load_weights(Path::new(DEV).join(WEIGHTS_FILE), &cfg).unwrap();
    assert_eq!(w, w2);
}

#[test]
fn half_bfloat_and_double_are_converted_to_f32() {
    let dir = temp_dir("dtypes");
    let vals = [1.0f32, -2.5, 0.333_333_34, 65504.0, 1.0e-3];
    let f16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = vals
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let f64b: Vec<u8> = vals
        .iter()
        .flat_map(|&v| (v as f64).to_le_bytes())
        .collect();
    let i32b: Vec<u8> = vals
        .iter()
        .flat_map(|&v| (v as i32).to_le_bytes())
        .collect();
    let path = dir.join("mixed.safetensors");
    write_raw(
        &path,
        &[
            ("h", "F16", vec![5], f16),
            ("b", "BF16", vec![5], bf16),
            ("d", "F64", vec![1, 5], f64b),
        ],
    );
    let t = load_safetensors_file(&path).unwrap();
    for (i, &v) in vals.iter().enumerate() {
        assert_eq!(t["h"].data[i], half::f16::from_f32(v).to_f32());
        assert_eq!(t["b"].data[i], half::bf16::from_f32(v).to_f32());
        assert_eq!(t["d"].data[i], v);
    }
    assert_eq!(t["d"].shape, vec![1, 5]);
    // bf16 of 1/3 is coarse; make sure the conversion is not a no-op.
    assert!((t["b"].data[2] - 0.333_333_34).abs() > 1e-4);

    let bad = dir.join("int.safetensors");
    write_raw(&bad, &[("ints", "I32", vec![5], i32b)]);
    let msg = load_safetensors_file(&bad).unwrap_err().to_string();
    assert!(
        msg.contains("ints") && msg.contains("I32") && msg.contains("int.safetensors"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_mismatch_lists_missing_unexpected_and_misshaped_tensors() {
    // One layer fewer: all of blocks.1.* is unexpected; ffn 48: four ffn tensors mis-shaped.
    let cfg = WanConfig {
        num_layers: 1,
        ffn_dim: 48,
        ..WanConfig::dev()
    };
    let msg = load_weights(DEV, &cfg).unwrap_err().to_string();
    assert!(msg.contains("diffusion_pytorch_model.safetensors"), "{msg}");
    assert!(msg.contains("27 unexpected"), "{msg}");
    assert!(msg.contains("blocks.1.attn2.norm_k.weight [32]"), "{msg}");
    assert!(msg.contains("3 wrong shape"), "{msg}");
    assert!(
        msg.contains("blocks.0.ffn.net.0.proj.weight: expected [48, 32], found [64, 32]"),
        "{msg}"
    );

    // One layer more: all of blocks.2.* missing.
    let cfg = WanConfig {
        num_layers: 3,
        ..WanConfig::dev()
    };
    let msg = load_weights(DEV, &cfg).unwrap_err().to_string();
    assert!(msg.contains("27 missing"), "{msg}");
    assert!(
        msg.contains("blocks.2.scale_shift_table [1, 6, 32]"),
        "{msg}"
    );
    assert!(!msg.contains("unexpected"), "{msg}");
}

#[test]
fn truncated_and_corrupted_files_are_errors_not_panics() {
    let dir = temp_dir("corrupt");
    let original = std::fs::read(Path::new(DEV).join(WEIGHTS_FILE)).unwrap();
    let path = dir.join("broken.safetensors");

    for len in [0, 5, 8, 100, original.len() / 2, original.len() - 1] {
        std::fs::write(&path, &original[..len]).unwrap();
        let msg = load_safetensors_file(&path).unwrap_err().to_string();
        assert!(msg.contains("broken.safetensors"), "len {len}: {msg}");
    }

    // Header length field pointing past the end of the file.
    let mut bad = original.clone();
    bad[6] = 0x7f;
    std::fs::write(&path, &bad).unwrap();
    assert!(load_safetensors_file(&path).is_err());
    // JSON header made invalid.
    let mut bad = original.clone();
    bad[8] = b'#';
    std::fs::write(&path, &bad).unwrap();
    assert!(load_safetensors_file(&path).is_err());

    // Random byte flips anywhere in the header: Ok or Err, never a panic.
    let n = u64::from_le_bytes(original[..8].try_into().unwrap()) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut errors = 0;
    for _ in 0..300 {
        let mut bad = original.clone();
        for _ in 0..3 {
            let at = rng.gen_range(0..8 + n);
            bad[at] ^= 1 << rng.gen_range(0..8);
        }
        std::fs::write(&path, &bad).unwrap();
        errors += load_safetensors_file(&path).is_err() as usize;
    }
    assert!(
        errors > 100,
        "only {errors} of 300 corrupted headers were rejected"
    );
    assert!(load_safetensors_file(dir.join("missing.safetensors"))
        .unwrap_err()
        .to_string()
        .contains("missing.safetensors"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sharded_checkpoint_loads_like_the_single_file() {
    let cfg = WanConfig::dev();
    let whole = load_weights(DEV, &cfg).unwrap();
    let dir = temp_dir("shards");
    let (mut first, mut second) = (BTreeMap::new(), BTreeMap::new());
    let mut weight_map = serde_json::Map::new();
    for (i, (name, t)) in whole.iter().enumerate() {
        let shard = if i % 2 == 0 {
            "model-00001-of-00002.safetensors"
        } else {
            "model-00002-of-00002.safetensors"
        };
        weight_map.insert(name.clone(), Value::from(shard));
        if i % 2 == 0 { &mut first } else { &mut second }.insert(name.clone(), t.clone());
    }
    save_safetensors(
        dir.join("model-00001-of-00002.safetensors"),
        &first,
        &BTreeMap::new(),
    )
    .unwrap();
    save_safetensors(
        dir.join("model-00002-of-00002.safetensors"),
        &second,
        &BTreeMap::new(),
    )
    .unwrap();
    let index = json!({"metadata": {"total_size": 37744 * 4}, "weight_map": weight_map});
    std::fs::write(dir.join(WEIGHTS_INDEX_FILE), index.to_string()).unwrap();

    assert_eq!(load_weights(&dir, &cfg).unwrap(), whole);
    assert_eq!(
        load_weights(dir.join(WEIGHTS_INDEX_FILE), &cfg).unwrap(),
        whole
    );

    // A tensor of shard 2 mapped to shard 1.
    let moved = second.keys().next().unwrap().clone();
    let mut wrong = index.clone();
    wrong["weight_map"][&moved] = Value::from("model-00001-of-00002.safetensors");
    std::fs::write(dir.join(WEIGHTS_INDEX_FILE), wrong.to_string()).unwrap();
    let msg = load_weights(&dir, &cfg).unwrap_err().to_string();
    assert!(
        msg.contains(&moved) && msg.contains("model-00001-of-00002"),
        "{msg}"
    );

    // A missing shard file, and a shard outside the folder.
    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::write(dir.join(WEIGHTS_INDEX_FILE), index.to_string()).unwrap();
    assert!(load_weights(&dir, &cfg)
        .unwrap_err()
        .to_string()
        .contains("model-00002-of-00002.safetensors"));
    let mut escape = index.clone();
    escape["weight_map"]["proj_out.bias"] = Value::from("../elsewhere.safetensors");
    std::fs::write(dir.join(WEIGHTS_INDEX_FILE), escape.to_string()).unwrap();
    assert!(load_weights(&dir, &cfg)
        .unwrap_err()
        .to_string()
        .contains("elsewhere"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn empty_folder_names_what_was_looked_for() {
    let dir = temp_dir("empty");
    let msg = load_weights(&dir, &WanConfig::dev())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(WEIGHTS_FILE) && msg.contains(WEIGHTS_INDEX_FILE),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn save_round_trips_with_metadata_and_leaves_no_temp_file() {
    let dir = temp_dir("save");
    let mut t = BTreeMap::new();
    t.insert(
        "a".to_string(),
        HostTensor::new(
            vec![2, 3],
            vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, 7.0],
        )
        .unwrap(),
    );
    t.insert(
        "b.c".to_string(),
        HostTensor::new(vec![1], vec![42.0]).unwrap(),
    );
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert("note".to_string(), "hello".to_string());
    let path = dir.join("out.safetensors");
    save_safetensors(&path, &t, &meta).unwrap();
    let (back, back_meta) = load_safetensors_with_metadata(&path).unwrap();
    assert_eq!(back, t);
    assert_eq!(back_meta, meta);
    // Overwrite in place; only the final file remains.
    save_safetensors(&path, &t, &BTreeMap::new()).unwrap();
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.safetensors")]);

    let mut bad = t.clone();
    bad.insert(
        "x".to_string(),
        HostTensor {
            shape: vec![4],
            data: vec![1.0],
        },
    );
    assert!(save_safetensors(&path, &bad, &meta)
        .unwrap_err()
        .to_string()
        .contains("`x`"));
    assert!(HostTensor::new(vec![2, 2], vec![0.0; 3]).is_err());
    // No tensors and no metadata is still a valid file.
    save_safetensors(&path, &BTreeMap::new(), &BTreeMap::new()).unwrap();
    assert!(load_safetensors_file(&path).unwrap().is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}
