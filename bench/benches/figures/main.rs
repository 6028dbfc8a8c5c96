//! `make bench`: the library's figures, printed as a Markdown table. Nothing here asserts a
//! time: targets are printed next to the measured values for a human (or CI log) to read.
//!
//! Runs single-threaded against an in-process Entra emulator (127.0.0.1, OS-chosen port).
//! Child processes of this same binary measure what needs a fresh process (cold caches,
//! library load); they are selected by environment variables, see `child::run`.

mod abi;
mod child;
mod floor;
mod latency;
mod ratelimit;
mod libload;
mod realm;
mod replay;
mod requests;
mod stats;
mod validation;
mod workload;

fn main() {
    if child::run() {
        return;
    }
    // Before any library call: the trust store the library loads (children inherit it).
    std::env::set_var("SSL_CERT_FILE", realm::trust_bundle());
    let _ = std::fs::remove_file(realm::trust_bundle());
    println!("| figure | value | target |");
    println!("| --- | --- | --- |");
    stats::row("load average at start (1/5/15 min)", &stats::loadavg(), "-");
    // BENCH_ONLY=validation,replay runs only those parts (for iterating on one figure).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let parts: [(&str, fn()); 7] = [
        ("requests", requests::run),
        ("validation", validation::run),
        ("latency", latency::run),
        ("workload", workload::run),
        ("replay", replay::run),
        ("ratelimit", ratelimit::run),
        ("libload", libload::run),
    ];
    for (name, run) in parts {
        if only.is_empty() || only.split(',').any(|o| o == name) {
            run();
        }
    }
    stats::row("load average at end (1/5/15 min)", &stats::loadavg(), "-");
    let _ = std::fs::remove_file(realm::trust_bundle());
}
