//! Where a GPU training step spends its time, op by op: with `FYM_PROFILE_OPS=1` every GPU op
//! waits for the device when it is recorded and charges the time since the previous op (its own
//! launch and kernels, plus any host work in between) to its name, forward and backward apart.
//! The waits make the step slower; the shares are what to look at. Off, it costs one check.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use fym_kernels::cuda::CudaDevice;

/// The environment variable that turns op profiling on.
pub const PROFILE_ENV: &str = "FYM_PROFILE_OPS";

struct Profile {
    last: Option<Instant>,
    /// (phase, op) → (calls, time).
    totals: BTreeMap<(&'static str, &'static str), (u64, Duration)>,
}

fn profile() -> Option<&'static Mutex<Profile>> {
    static PROFILE: OnceLock<Option<Mutex<Profile>>> = OnceLock::new();
    PROFILE
        .get_or_init(|| {
            std::env::var(PROFILE_ENV).is_ok_and(|v| v == "1").then(|| {
                Mutex::new(Profile {
                    last: None,
                    totals: BTreeMap::new(),
                })
            })
        })
        .as_ref()
}

/// Whether op profiling is on.
pub fn profiling() -> bool {
    profile().is_some()
}

/// Waits for `dev` and charges the time since the previous mark to `(phase, name)`.
pub(crate) fn mark(dev: &CudaDevice, phase: &'static str, name: &'static str) {
    let Some(p) = profile() else { return };
    // A failed wait shows up at the next download; the profile only loses this sample.
    let _ = dev.synchronize();
    add(p, phase, name, None);
}

/// Charges `elapsed` (or the time since the previous mark) to `(phase, name)` and restarts the
/// clock: for host work between ops (optimizer, data), timed by the caller.
pub fn charge(phase: &'static str, name: &'static str, elapsed: Option<Duration>) {
    if let Some(p) = profile() {
        add(p, phase, name, elapsed);
    }
}

fn add(p: &Mutex<Profile>, phase: &'static str, name: &'static str, elapsed: Option<Duration>) {
    let mut p = p.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let spent = elapsed.unwrap_or_else(|| p.last.map_or(Duration::ZERO, |t| now - t));
    let entry = p.totals.entry((phase, name)).or_default();
    entry.0 += 1;
    entry.1 += spent;
    p.last = Some(now);
}

/// The profile so far as a table sorted by time (None when profiling is off).
pub fn profile_report() -> Option<String> {
    let p = profile()?.lock().unwrap_or_else(|e| e.into_inner());
    let total: f64 = p.totals.values().map(|v| v.1.as_secs_f64()).sum();
    let mut rows: Vec<_> = p.totals.iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .1));
    let mut out = format!(
        "{:<10} {:<14} {:>9} {:>10} {:>6}\n",
        "phase", "op", "calls", "ms", "share"
    );
    for ((phase, name), (calls, time)) in rows {
        let ms = time.as_secs_f64() * 1e3;
        out += &format!(
            "{phase:<10} {name:<14} {calls:>9} {ms:>10.1} {:>5.1}%\n",
            100.0 * time.as_secs_f64() / total.max(1e-12)
        );
    }
    Some(out)
}
