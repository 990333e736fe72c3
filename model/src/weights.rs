//! safetensors I/O on the host: memory-mapped reading of single files and sharded diffusers
//! checkpoints (F32/F16/BF16/F64 converted to f32), checking a checkpoint against the config, and
//! atomic f32 writing.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Component, Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use serde_json::Value;

use crate::config::WanConfig;
use crate::error::{Error, Result};

/// The single-file weights name diffusers writes.
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";
/// The shard index diffusers writes for large checkpoints.
pub const WEIGHTS_INDEX_FILE: &str = "diffusion_pytorch_model.safetensors.index.json";

/// A dense row-major f32 tensor in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Checks that `data` has exactly `shape.product()` elements.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(Error::shape(
                "HostTensor::new",
                format!("shape {shape:?} needs {numel} values, got {}", data.len()),
            ));
        }
        Ok(HostTensor { shape, data })
    }

    pub fn zeros(shape: Vec<usize>) -> Self {
        let numel = shape.iter().product();
        HostTensor {
            shape,
            data: vec![0.0; numel],
        }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Loads every tensor of one safetensors file, converted to f32.
pub fn load_safetensors_file(path: impl AsRef<Path>) -> Result<BTreeMap<String, HostTensor>> {
    load_safetensors_with_metadata(path).map(|(t, _)| t)
}

/// Loads every tensor of one safetensors file and its `__metadata__` string map.
pub fn load_safetensors_with_metadata(
    path: impl AsRef<Path>,
) -> Result<(BTreeMap<String, HostTensor>, BTreeMap<String, String>)> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if len < 8 {
        return Err(Error::weights(
            path,
            format!("file is {len} bytes, too short for a safetensors header"),
        ));
    }
    // SAFETY: the map is read-only and lives only inside this function; the tensors are copied
    // out (converted to f32) before it is dropped. A file truncated by another process while we
    // read it is outside what we can defend against here, as for every mmap reader.
    let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&mmap).map_err(|e| {
        Error::weights(
            path,
            format!("corrupt or truncated safetensors file: {e:?}"),
        )
    })?;
    let (_, header) = SafeTensors::read_metadata(&mmap)
        .map_err(|e| Error::weights(path, format!("corrupt safetensors header: {e:?}")))?;
    let metadata: BTreeMap<String, String> = header
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();

    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let data = to_f32(view.dtype(), view.data()).ok_or_else(|| {
            Error::weights(
                path,
                format!(
                    "tensor `{name}` has dtype {:?}; only F32, F16, BF16 and F64 are supported",
                    view.dtype()
                ),
            )
        })?;
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data,
            },
        );
    }
    Ok((out, metadata))
}

fn to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    // Element-wise little-endian decoding: the mmap gives no alignment guarantee.
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        _ => return None,
    })
}

/// Loads a diffusers checkpoint and checks it against `cfg.expected_parameters()`.
///
/// `path` is a model folder (holding `diffusion_pytorch_model.safetensors` or its shard index),
/// a `.safetensors` file, or an `.index.json` file. Every missing, unexpected and mis-shaped
/// tensor is reported in one error.
pub fn load_weights(
    path: impl AsRef<Path>,
    cfg: &WanConfig,
) -> Result<BTreeMap<String, HostTensor>> {
    let path = path.as_ref();
    let (source, tensors) = load_checkpoint(path)?;
    check_against_config(&source, &tensors, cfg)?;
    Ok(tensors)
}

/// Loads every tensor of a single-file or sharded checkpoint without checking names; returns the
/// file that was read (for error messages) and the tensors.
pub fn load_checkpoint(path: &Path) -> Result<(PathBuf, BTreeMap<String, HostTensor>)> {
    let file = if path.is_dir() {
        let single = path.join(WEIGHTS_FILE);
        let index = path.join(WEIGHTS_INDEX_FILE);
        if single.is_file() {
            single
        } else if index.is_file() {
            index
        } else {
            return Err(Error::weights(
                path,
                format!("folder has neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE}"),
            ));
        }
    } else {
        path.to_path_buf()
    };
    let is_index = file
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".json"));
    let tensors = if is_index {
        load_sharded(&file)?
    } else {
        load_safetensors_file(&file)?
    };
    Ok((file, tensors))
}

/// Reads a shard index (`weight_map`: tensor name → shard file in the same folder) and every
/// shard it names.
fn load_sharded(index_path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let text = std::fs::read_to_string(index_path).map_err(|e| Error::io(index_path, e))?;
    let index: Value = serde_json::from_str(&text)
        .map_err(|e| Error::weights(index_path, format!("shard index is not valid JSON: {e}")))?;
    let map = index
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| Error::weights(index_path, "shard index has no `weight_map` object"))?;
    let dir = index_path.parent().unwrap_or(Path::new("."));

    // shard file → tensor names it must hold
    let mut shards: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, shard) in map {
        let shard = shard.as_str().ok_or_else(|| {
            Error::weights(
                index_path,
                format!("`weight_map` entry for `{name}` is not a file name: {shard}"),
            )
        })?;
        // Only plain relative names: an index must not reach files outside its folder.
        let rel = Path::new(shard);
        if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(Error::weights(
                index_path,
                format!("shard `{shard}` is not a file inside the index's folder"),
            ));
        }
        shards
            .entry(shard.to_string())
            .or_default()
            .push(name.clone());
    }

    let mut out: BTreeMap<String, HostTensor> = BTreeMap::new();
    for (shard, names) in &shards {
        let shard_path = dir.join(shard);
        let tensors = load_safetensors_file(&shard_path)?;
        for name in names {
            if !tensors.contains_key(name) {
                return Err(Error::weights(
                    &shard_path,
                    format!(
                        "shard index {} maps `{name}` to this shard, but it is not in it",
                        index_path.display()
                    ),
                ));
            }
        }
        for (name, t) in tensors {
            if out.contains_key(&name) {
                return Err(Error::weights(
                    &shard_path,
                    format!("tensor `{name}` appears in more than one shard"),
                ));
            }
            out.insert(name, t);
        }
    }
    Ok(out)
}

/// Compares loaded tensors with the config's parameter list; one error lists every problem.
pub fn check_against_config(
    source: &Path,
    tensors: &BTreeMap<String, HostTensor>,
    cfg: &WanConfig,
) -> Result<()> {
    let expected = cfg.expected_parameters();
    let expected_names: HashMap<&str, &Vec<usize>> =
        expected.iter().map(|(n, s)| (n.as_str(), s)).collect();
    let mut missing = Vec::new();
    let mut misshaped = Vec::new();
    for (name, shape) in &expected {
        match tensors.get(name) {
            None => missing.push(format!("  {name} {shape:?}")),
            Some(t) if &t.shape != shape => {
                misshaped.push(format!("  {name}: expected {shape:?}, found {:?}", t.shape))
            }
            Some(_) => {}
        }
    }
    let unexpected: Vec<String> = tensors
        .iter()
        .filter(|(n, _)| !expected_names.contains_key(n.as_str()))
        .map(|(n, t)| format!("  {n} {:?}", t.shape))
        .collect();
    if missing.is_empty() && misshaped.is_empty() && unexpected.is_empty() {
        return Ok(());
    }
    let mut msg = String::from("checkpoint does not match the config");
    for (title, list) in [
        ("missing", &missing),
        ("unexpected", &unexpected),
        ("wrong shape", &misshaped),
    ] {
        if !list.is_empty() {
            msg.push_str(&format!(
                "\n{} {title} tensor(s):\n{}",
                list.len(),
                list.join("\n")
            ));
        }
    }
    Err(Error::weights(source, msg))
}

/// A borrowed f32 tensor as the safetensors serializer wants it.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// Writes `tensors` as f32 safetensors with `metadata`, atomically (temp file + rename).
pub fn save_safetensors(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, HostTensor>,
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let path = path.as_ref();
    for (name, t) in tensors {
        let numel: usize = t.shape.iter().product();
        if numel != t.data.len() {
            return Err(Error::weights(
                path,
                format!(
                    "tensor `{name}`: shape {:?} needs {numel} values, has {}",
                    t.shape,
                    t.data.len()
                ),
            ));
        }
    }
    let views = tensors.iter().map(|(n, t)| {
        (
            n.as_str(),
            F32View {
                shape: &t.shape,
                data: &t.data,
            },
        )
    });
    // An empty metadata map must be passed as None: safetensors 0.4 writes an invalid header for
    // `Some(empty)` when there are no tensors either.
    let meta: Option<HashMap<String, String>> =
        (!metadata.is_empty()).then(|| metadata.clone().into_iter().collect());
    let bytes = safetensors::tensor::serialize(views, &meta)
        .map_err(|e| Error::weights(path, format!("cannot serialize: {e:?}")))?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to a temporary file next to `path`, syncs it, and renames it over `path`, so a
/// reader never sees a half-written file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if path.file_name().is_none() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path"),
        ));
    }
    fym_autograd::write_atomic(path, bytes).map_err(|e| Error::io(path, e))
}
