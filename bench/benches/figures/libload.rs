//! Library load time: dlopen(RTLD_NOW) of libpve_entraid.so plus the first call, each in a new
//! process (a library loads only once per process), and the resident memory it adds there.

use crate::child::LIBLOAD_ENV;
use crate::stats::{ms, percentile, row};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 15;

/// The shared library as built by `cargo build --release` of the root workspace.
fn library() -> PathBuf {
    match std::env::var_os("PVE_ENTRAID_LIB") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/libpve_entraid.so"),
    }
}

/// VmRSS of this process in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// In the child: load, resolve and call `pve_entraid_version`; print "nanoseconds rss_kib_added".
pub fn child(path: &Path) {
    let c_path = CString::new(path.as_os_str().as_bytes()).expect("path without NUL");
    let before = rss_kib();
    let start = Instant::now();
    // SAFETY: plain dlopen/dlsym of our own library; the symbol has the declared signature
    // `const char *pve_entraid_version(void)` and returns a static string.
    let version = unsafe {
        let handle = libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
        assert!(!handle.is_null(), "dlopen {} failed", path.display());
        let sym = libc::dlsym(handle, c"pve_entraid_version".as_ptr());
        assert!(!sym.is_null(), "pve_entraid_version not exported");
        let f: extern "C" fn() -> *const libc::c_char = std::mem::transmute(sym);
        CStr::from_ptr(f()).to_string_lossy().into_owned()
    };
    let elapsed = start.elapsed();
    println!("{} {} {version}", elapsed.as_nanos(), rss_kib().saturating_sub(before));
}

pub fn run() {
    let lib = library();
    if !lib.exists() {
        row("library load time (dlopen)", &format!("skipped: {} not built", lib.display()), "-");
        return;
    }
    let mut times = Vec::new();
    let mut rss = Vec::new();
    let mut version = String::new();
    for _ in 0..RUNS {
        let out = Command::new(std::env::current_exe().expect("own path"))
            .env(LIBLOAD_ENV, &lib)
            .output()
            .expect("spawn bench child");
        assert!(out.status.success(), "libload child failed: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.split_whitespace();
        times.push(Duration::from_nanos(fields.next().and_then(|f| f.parse().ok()).expect("ns")));
        rss.push(fields.next().and_then(|f| f.parse::<u64>().ok()).expect("kib"));
        version = fields.next().unwrap_or("").to_string();
    }
    rss.sort();
    row(
        "library load time (dlopen + first call, new process)",
        &format!("median {} / max {} (n={RUNS}, {version})", ms(percentile(&times, 50.0)), ms(percentile(&times, 100.0))),
        "-",
    );
    row("RSS added by dlopen of the library alone", &format!("{} KiB (median)", rss[rss.len() / 2]), "part of <= 5 MB");
}
