//! The consumed-state store (single use of login states): the cost of recording one used state
//! with 0, 10,000 and 100,000 unexpired states already stored, through `state::consume` as a
//! login calls it; and what one fsync costs on the same file system (the old store rewrote and
//! fsynced its whole file per login; this one does neither).
//!
//! The three stores are filled first, then measured in interleaved rounds (each store first
//! in a third of them), each round preceded by the same unmeasured warm-up consumes in that store, so
//! page cache, dentries and machine load hit all three alike; the figure is the median over all
//! rounds. The "empty" store holds only one state per expiry minute (the same directories as the
//! others) and the states measured in earlier rounds (at most ROUNDS x (WARM + SAMPLES), small
//! next to 10k). The fill is synced to disk before the rounds start.

use crate::stats::{loadavg, ms, percentile, row};
use pve_entraid::state::consume;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ROUNDS: usize = 12;
const WARM: usize = 20;
const SAMPLES: usize = 200;
const SIZES: [usize; 3] = [0, 10_000, 100_000];

pub fn run() {
    let dir = std::env::temp_dir().join(format!("pve-entraid-bench-{}-replay", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("replay scratch directory");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let exp = |i: usize| now + 60 + (i as u64 % 540); // spread over the 10-minute lifetime
    let stores: Vec<_> = SIZES.iter().map(|n| dir.join(format!("store-{n}"))).collect();
    let fill_start = Instant::now();
    for (store, &n) in stores.iter().zip(&SIZES) {
        std::fs::create_dir_all(store).expect("store directory");
        // The same directory structure in every store, the "empty" one included: one state in
        // each expiry minute, so no measured call pays for creating a minute's directory.
        for i in (0..540).step_by(30) {
            consume(Some(store), &format!("layout-{i}"), exp(i), now).expect("layout");
        }
        for i in 0..n {
            consume(Some(store), &format!("filler-{i}"), exp(i), now).expect("fill");
        }
    }
    let fill = fill_start.elapsed();
    // The fill's metadata is written back now, not during whichever round comes first.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    std::thread::sleep(Duration::from_secs(1));
    let load_before = loadavg();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); SIZES.len()];
    let mut counter = 0usize;
    for round in 0..ROUNDS {
        // Each store comes first, second and third equally often.
        for k in 0..SIZES.len() {
            let which = (round + k) % SIZES.len();
            let (store, taken) = (&stores[which], &mut samples[which]);
            for _ in 0..WARM {
                counter += 1;
                consume(Some(store), &format!("warm-{counter}"), exp(counter), now).expect("warm-up");
            }
            for _ in 0..SAMPLES {
                counter += 1;
                let state = format!("measured-{counter}");
                let t = Instant::now();
                consume(Some(store), &state, exp(counter), now).expect("consume");
                taken.push(t.elapsed());
            }
        }
    }
    let medians: Vec<Duration> = samples.iter().map(|s| percentile(s, 50.0)).collect();
    let context = format!("{}; load {load_before} -> {}", file_system(&dir), loadavg());
    for ((n, taken), median) in SIZES.iter().zip(&samples).zip(&medians) {
        row(
            &format!("replay store: record one used state, {n} stored"),
            &format!("median {} / p99 {} (n={}, {ROUNDS} interleaved rounds; {context})", us(*median), us(percentile(taken, 99.0)), taken.len()),
            if *n == 100_000 { "within 10% of empty" } else { "-" },
        );
    }
    let vs_empty = |i: usize| 100.0 * (medians[i].as_secs_f64() / medians[0].as_secs_f64() - 1.0);
    row(
        "  10k / 100k vs empty",
        &format!("{:+.0}% / {:+.0}% (filling the stores took {:.1} s)", vs_empty(1), vs_empty(2), fill.as_secs_f64()),
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

/// The file system the stores live on (statfs type), e.g. "ext4 (disk)" or "tmpfs (memory)".
fn file_system(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    // SAFETY: a NUL-terminated path and a zeroed statfs for the answer.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return "file system unknown".into();
    }
    let name = match st.f_type as i64 {
        0x0102_1994 => "tmpfs (memory)",
        0xEF53 => "ext4 (disk)",
        0x5846_5342 => "xfs (disk)",
        0x9123_683E => "btrfs (disk)",
        0x2FC1_2FC1 => "zfs (disk)",
        0x794C_7630 => "overlayfs",
        _ => return format!("file system type {:#x}", st.f_type),
    };
    format!("on {name}, {}", path.parent().unwrap_or(path).display())
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}
