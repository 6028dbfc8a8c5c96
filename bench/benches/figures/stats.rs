//! Percentiles over measured durations, and the table the figures are printed in.

use std::time::Duration;

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// "median X / p99 Y" of the samples.
pub fn median_p99(samples: &[Duration]) -> String {
    format!("median {} / p99 {} (n={})", ms(percentile(samples, 50.0)), ms(percentile(samples, 99.0)), samples.len())
}

/// One row of the printed table: `| figure | value | target |`.
pub fn row(figure: &str, value: &str, target: &str) {
    println!("| {figure} | {value} | {target} |");
}
