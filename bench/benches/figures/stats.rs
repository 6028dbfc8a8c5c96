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

/// The 1, 5 and 15 minute load averages (/proc/loadavg): how busy the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// CPU time of the calling thread (the library runs in its caller's thread, starting none).
pub fn thread_cpu() -> Duration {
    cpu(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// CPU time of the whole process (the caller plus the in-process emulator's threads).
pub fn process_cpu() -> Duration {
    cpu(libc::CLOCK_PROCESS_CPUTIME_ID)
}

fn cpu(clock: libc::clockid_t) -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid clock id and a place for the answer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}
