//! Progress lines on stderr: stage, step, loss, speed and time left, at most a few per second.

use std::time::{Duration, Instant};

/// Reports the steps of one stage.
pub struct Progress {
    quiet: bool,
    stage: String,
    total: usize,
    start: Instant,
    last: Option<Instant>,
    /// Steps already done when this stage (re)started, not counted in the speed.
    resumed_at: usize,
}

const INTERVAL: Duration = Duration::from_millis(500);

impl Progress {
    pub fn new(quiet: bool, stage: &str, total: usize, resumed_at: usize) -> Self {
        if !quiet && resumed_at > 0 {
            eprintln!("[{stage}] resuming at step {resumed_at}/{total}");
        }
        Progress {
            quiet,
            stage: stage.to_string(),
            total,
            start: Instant::now(),
            last: None,
            resumed_at,
        }
    }

    /// Call after step `done` (1-based count of finished steps).
    pub fn step(&mut self, done: usize, loss: f32) {
        if self.quiet {
            return;
        }
        let now = Instant::now();
        let due = self.last.is_none_or(|t| now - t >= INTERVAL);
        if !due && done < self.total {
            return;
        }
        self.last = Some(now);
        let elapsed = self.start.elapsed().as_secs_f64();
        let rate = (done - self.resumed_at) as f64 / elapsed.max(1e-9);
        let left = (self.total - done) as f64 / rate.max(1e-9);
        eprintln!(
            "[{}] step {done}/{} loss {loss:.4} {rate:.1} it/s ETA {}",
            self.stage,
            self.total,
            format_secs(left)
        );
    }

    /// A one-line message for this stage.
    pub fn note(&self, msg: &str) {
        if !self.quiet {
            eprintln!("[{}] {msg}", self.stage);
        }
    }
}

/// "42s" or "3m05s".
pub fn format_secs(secs: f64) -> String {
    if !secs.is_finite() {
        return "?".into();
    }
    let s = secs.round() as u64;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}
