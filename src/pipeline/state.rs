//! Resume state of a transfer run: which stages finished, for which inputs.
//!
//! Every stage has a key, a hash of everything its result depends on (the reference video, the
//! caption, the method and its settings, the seed, and the key of the stage before it). A stage is
//! skipped on a rerun only when `state.json` records the same key and its artefacts are on disk;
//! changing, say, the prompt therefore redoes only generation. Files are replaced atomically, so a
//! run killed at any point leaves either the old or the new state, never half of one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::{json, Value};

const FORMAT: &str = "fym-transfer-state";
pub const STATE_FILE: &str = "state.json";

/// FNV-1a, 64 bit: a stable hash (std's hasher may change between Rust versions).
#[derive(Clone, Copy, Debug)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> Self {
        StableHash(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHash {
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Hashes a string with its length, so that ("ab", "c") and ("a", "bc") differ.
    pub fn str(self, s: &str) -> Self {
        self.bytes(&(s.len() as u64).to_le_bytes())
            .bytes(s.as_bytes())
    }

    pub fn f32s(self, values: &[f32]) -> Self {
        values
            .iter()
            .fold(self, |h, v| h.bytes(&v.to_bits().to_le_bytes()))
    }

    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// Finished stages (name → key and the seconds the stage took) of the run in one output folder.
#[derive(Clone, Debug, Default)]
pub struct RunState {
    path: PathBuf,
    done: BTreeMap<String, (String, f64)>,
}

impl RunState {
    /// Reads `DIR/state.json`, or starts empty when there is none. A damaged file is an error
    /// that names it (it is never silently discarded).
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let mut state = RunState {
            path: path.clone(),
            done: BTreeMap::new(),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(state),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        let doc: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON (delete it to start the run over)",
                path.display()
            )
        })?;
        if doc.get("format").and_then(Value::as_str) != Some(FORMAT) {
            anyhow::bail!(
                "{} is not a fym transfer state file (`format` must be \"{FORMAT}\")",
                path.display()
            );
        }
        if let Some(stages) = doc.get("stages").and_then(Value::as_object) {
            for (name, entry) in stages {
                let key = entry.get("key").and_then(Value::as_str);
                let secs = entry.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                if let Some(k) = key {
                    state.done.insert(name.clone(), (k.to_string(), secs));
                }
            }
        }
        Ok(state)
    }

    /// Whether `stage` finished with this key.
    pub fn is_done(&self, stage: &str, key: &str) -> bool {
        self.done.get(stage).is_some_and(|(k, _)| k == key)
    }

    /// Seconds the finished `stage` took when it ran.
    pub fn seconds(&self, stage: &str) -> f64 {
        self.done.get(stage).map_or(0.0, |(_, s)| *s)
    }

    /// Records `stage` as finished with `key` after `seconds` and writes the file.
    pub fn mark_done(&mut self, stage: &str, key: &str, seconds: f64) -> Result<()> {
        self.done
            .insert(stage.to_string(), (key.to_string(), seconds));
        self.save()
    }

    /// Forgets `stage` (its inputs changed) and writes the file.
    pub fn forget(&mut self, stage: &str) -> Result<()> {
        if self.done.remove(stage).is_some() {
            self.save()?;
        }
        Ok(())
    }

    fn save(&self) -> Result<()> {
        let stages: serde_json::Map<String, Value> = self
            .done
            .iter()
            .map(|(name, (key, secs))| (name.clone(), json!({"key": key, "seconds": secs})))
            .collect();
        let doc = json!({"format": FORMAT, "version": 1, "stages": stages});
        let mut text = serde_json::to_string_pretty(&doc)?;
        text.push('\n');
        fym_autograd::write_atomic(&self.path, text.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}
