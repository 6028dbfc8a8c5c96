//! `make bench`: the library's figures, printed as a Markdown table. Nothing here asserts a
//! time: targets are printed next to the measured values for a human (or CI log) to read.
//!
//! Runs single-threaded against an in-process Entra emulator (127.0.0.1, OS-chosen port).
//! Child processes of this same binary measure what needs a fresh process (cold caches,
//! library load); they are selected by environment variables, see `child::run`.

mod abi;
mod child;
mod latency;
mod libload;
mod realm;
mod requests;
mod stats;
mod validation;

fn main() {
    if child::run() {
        return;
    }
    println!("| figure | value | target |");
    println!("| --- | --- | --- |");
    requests::run();
    validation::run();
    latency::run();
    libload::run();
}
