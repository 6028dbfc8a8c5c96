//! The consumed-state store (single use of login states): the cost of recording one used state
//! with 0, 10,000 and 100,000 unexpired states already stored, through `state::consume` as a
//! login calls it; and what one fsync costs on the same file system (the old store rewrote and
//! fsynced its whole file per login; this one does neither).

use crate::stats::{ms, percentile, row};
use pve_entraid::state::consume;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SAMPLES: usize = 2000;

pub fn run() {
    let dir = std::env::temp_dir().join(format!("pve-entraid-bench-{}-replay", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("replay scratch directory");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let exp = |i: usize| now + 60 + (i as u64 % 540); // spread over the 10-minute lifetime
    // Warm-up in a scratch store of its own (code, page cache, dentries), so the empty case is
    // not charged for the process's first file operations.
    let warm = dir.join("warm-up");
    for i in 0..500 {
        consume(Some(&warm), &format!("warm-{i}"), exp(i), now).expect("warm-up");
    }
    let _ = std::fs::remove_dir_all(&warm);
    let mut stored = 0usize;
    let mut medians = Vec::new();
    for target in [0usize, 10_000, 100_000] {
        while stored < target {
            consume(Some(&dir), &format!("filler-{stored}"), exp(stored), now).expect("fill");
            stored += 1;
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        for i in 0..SAMPLES {
            let state = format!("measured-{target}-{i}");
            let t = Instant::now();
            consume(Some(&dir), &state, exp(i), now).expect("consume");
            samples.push(t.elapsed());
        }
        stored += SAMPLES;
        let p50 = percentile(&samples, 50.0);
        medians.push(p50);
        row(
            &format!("replay store: record one used state, {target} stored"),
            &format!("median {} / p99 {}", us(p50), us(percentile(&samples, 99.0))),
            if target == 100_000 { "within 10% of empty" } else { "-" },
        );
    }
    row(
        "  100k vs empty",
        &format!("{:+.0}%", 100.0 * (medians[2].as_secs_f64() / medians[0].as_secs_f64() - 1.0)),
        "<= +10%",
    );
    let mut fsync = Vec::new();
    for i in 0..50 {
        let path = dir.join(format!("fsync-{i}"));
        let t = Instant::now();
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&[0u8; 64]).expect("write");
        f.sync_all().expect("fsync");
        fsync.push(t.elapsed());
    }
    row("one small write + fsync on this file system (not paid per login any more)", &ms(percentile(&fsync, 50.0)), "-");
    let _ = std::fs::remove_dir_all(&dir);
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
