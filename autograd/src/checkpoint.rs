//! Save and restore trainable parameters and AdamW state as one safetensors file, written
//! atomically so an interrupted save never destroys the previous checkpoint.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use crate::{AdamW, Error, ParamSet, Result};

/// Writes `bytes` to `path` via a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn file_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        msg: msg.to_string(),
    }
}

/// Serializes named f32 tensors (name → (shape, values)) with string metadata to safetensors bytes.
pub fn to_safetensors_bytes(
    tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, (s, d))| {
            (
                n.clone(),
                s.clone(),
                d.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (n, s, b) in &bytes {
        let view = TensorView::new(Dtype::F32, s.clone(), b)
            .map_err(|e| Error::shape("safetensors", format!("tensor {n}: {e}")))?;
        views.push((n.clone(), view));
    }
    let meta: HashMap<String, String> = metadata.clone().into_iter().collect();
    safetensors::tensor::serialize(views, &Some(meta))
        .map_err(|e| Error::shape("safetensors", e.to_string()))
}

/// Saves every parameter (`param/<name>`), the optimizer moments (`adam_m/<name>`,
/// `adam_v/<name>`) and step, plus caller metadata (e.g. RNG state, data position).
pub fn save_checkpoint(
    path: &Path,
    params: &ParamSet,
    opt: &AdamW,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let mut tensors = BTreeMap::new();
    for (name, t) in params.iter() {
        tensors.insert(format!("param/{name}"), (t.shape().to_vec(), t.to_vec()));
        for (prefix, state) in [("adam_m", &opt.m), ("adam_v", &opt.v)] {
            if let Some(s) = state.get(name) {
                tensors.insert(format!("{prefix}/{name}"), (t.shape().to_vec(), s.clone()));
            }
        }
    }
    let mut meta = metadata.clone();
    meta.insert("fym.optimizer.step".into(), opt.step.to_string());
    let bytes = to_safetensors_bytes(&tensors, &meta)?;
    write_atomic(path, &bytes).map_err(|e| file_err(path, format!("cannot write checkpoint: {e}")))
}

/// Restores parameters (in place, shapes must match) and optimizer state from [`save_checkpoint`]'s
/// file; returns the caller metadata.
pub fn load_checkpoint(
    path: &Path,
    params: &ParamSet,
    opt: &mut AdamW,
) -> Result<BTreeMap<String, String>> {
    let bytes =
        std::fs::read(path).map_err(|e| file_err(path, format!("cannot read checkpoint: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| file_err(path, format!("not a valid safetensors file: {e}")))?;
    let read = |key: &str, shape: &[usize]| -> Result<Option<Vec<f32>>> {
        let Ok(view) = st.tensor(key) else {
            return Ok(None);
        };
        if view.dtype() != Dtype::F32 || view.shape() != shape {
            return Err(file_err(
                path,
                format!(
                    "{key} is {:?} {:?}, expected F32 {shape:?}",
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        Ok(Some(
            view.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    };
    for (name, t) in params.iter() {
        let values = read(&format!("param/{name}"), t.shape())?
            .ok_or_else(|| file_err(path, format!("checkpoint has no parameter {name}")))?;
        *t.data_mut() = values;
        for (prefix, state) in [("adam_m", &mut opt.m), ("adam_v", &mut opt.v)] {
            match read(&format!("{prefix}/{name}"), t.shape())? {
                Some(s) => state.insert(name.to_string(), s),
                None => state.remove(name),
            };
        }
    }
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| file_err(path, e))?;
    let mut out: BTreeMap<String, String> = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    opt.step = out
        .remove("fym.optimizer.step")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(out)
}
