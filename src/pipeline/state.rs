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

/// A finished stage: the key of its inputs, and what it took when it ran.
#[derive(Clone, Debug, PartialEq)]
struct StageRecord {
    key: String,
    seconds: f64,
    /// Peak resident memory of the process when the stage finished (MiB), where known: a
    /// resumed run reports it, as its own process never held the tuning's memory.
    peak_memory_mib: Option<f64>,
}

/// Finished stages (name → key and what the stage took) of the run in one output folder.
#[derive(Clone, Debug, Default)]
pub struct RunState {
    path: PathBuf,
    done: BTreeMap<String, StageRecord>,
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
                let seconds = entry.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
                let peak_memory_mib = entry.get("peak_memory_mib").and_then(Value::as_f64);
                if let Some(k) = key {
                    let record = StageRecord {
                        key: k.to_string(),
                        seconds,
                        peak_memory_mib,
                    };
                    state.done.insert(name.clone(), record);
                }
            }
        }
        Ok(state)
    }

    /// Whether `stage` finished with this key.
    pub fn is_done(&self, stage: &str, key: &str) -> bool {
        self.done.get(stage).is_some_and(|r| r.key == key)
    }

    /// Seconds the finished `stage` took when it ran.
    pub fn seconds(&self, stage: &str) -> f64 {
        self.done.get(stage).map_or(0.0, |r| r.seconds)
    }

    /// The highest peak memory recorded by the finished stages (MiB), where any was recorded.
    pub fn peak_memory_mib(&self) -> Option<f64> {
        self.done
            .values()
            .filter_map(|r| r.peak_memory_mib)
            .reduce(f64::max)
    }

    /// Records `stage` as finished with `key` after `seconds`, with the process's peak memory
    /// so far, and writes the file.
    pub fn mark_done(&mut self, stage: &str, key: &str, seconds: f64) -> Result<()> {
        let record = StageRecord {
            key: key.to_string(),
            seconds,
            peak_memory_mib: super::peak_memory_mib(),
        };
        self.done.insert(stage.to_string(), record);
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
            .map(|(name, r)| {
                let mut entry = json!({"key": r.key, "seconds": r.seconds});
                if let Some(mib) = r.peak_memory_mib {
                    entry["peak_memory_mib"] = json!(mib);
                }
                (name.clone(), entry)
            })
            .collect();
        let doc = json!({"format": FORMAT, "version": 1, "stages": stages});
        let mut text = serde_json::to_string_pretty(&doc)?;
        text.push('\n');
        fym_autograd::write_atomic(&self.path, text.as_bytes())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finished_stages_keep_their_time_and_peak_memory_across_reopening() {
        let dir = std::env::temp_dir().join(format!("fym-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut state = RunState::open(&dir).unwrap();
        state.mark_done("spatial", "k1", 2.5).unwrap();
        let reopened = RunState::open(&dir).unwrap();
        assert!(reopened.is_done("spatial", "k1"));
        assert!(!reopened.is_done("spatial", "k2"));
        assert_eq!(reopened.seconds("spatial"), 2.5);
        // Where /proc exists the stage's peak is recorded and survives the reopening; a resumed
        // run that only generates reports it instead of its own, smaller peak.
        if let Some(now) = super::super::peak_memory_mib() {
            let recorded = reopened
                .peak_memory_mib()
                .expect("a peak where /proc exists");
            assert!(recorded > 1.0 && recorded <= now, "{recorded} {now}");
        }
        // A state file written before peaks were recorded still opens, with no peak.
        let old = r#"{"format":"fym-transfer-state","version":1,"stages":{"classify":{"key":"k","seconds":1.0}}}"#;
        std::fs::write(dir.join(STATE_FILE), old).unwrap();
        let old = RunState::open(&dir).unwrap();
        assert!(old.is_done("classify", "k"));
        assert_eq!(old.peak_memory_mib(), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
