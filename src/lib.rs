//! fym: Follow-Your-Motion video motion transfer on our own engine.

pub mod base;
pub mod cli;
pub mod metrics;
pub mod motionbench;
pub mod perf;
pub mod perf_cuda;
pub mod pipeline;
pub mod video;
pub mod world;
