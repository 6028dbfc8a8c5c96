//! `entra-emulator --listen 127.0.0.1:0 [--config FILE.json] [--port-file PATH] [--tls-dir DIR]
//! [--tls-name HOST]...`
//! Prints "listening on http://127.0.0.1:PORT" first (https with `--tls-dir`, after writing the
//! throw-away CA to DIR/ca.pem; https://HOST[:PORT] with `--tls-name`, the first one: its
//! certificate names every HOST), then serves until killed.

use entra_emulator::EmulatorConfig;
use std::io::Write;
use std::process::ExitCode;

const USAGE: &str =
    "usage: entra-emulator [--listen 127.0.0.1:0] [--config FILE.json] [--port-file PATH] [--tls-dir DIR] [--tls-name HOST]...";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("entra-emulator: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut config = None;
    let mut port_file = None;
    let mut tls_dir: Option<String> = None;
    let mut tls_names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--config" => config = Some(value()?),
            "--port-file" => port_file = Some(value()?),
            "--tls-dir" => tls_dir = Some(value()?),
            "--tls-name" => tls_names.push(value()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    // A test IdP with well-known secrets: never reachable from other hosts.
    let addr: std::net::SocketAddr = listen
        .parse()
        .map_err(|_| format!("--listen wants IP:PORT, got '{listen}'"))?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "--listen {listen}: only loopback addresses are allowed"
        ));
    }
    if !tls_names.is_empty() && tls_dir.is_none() {
        return Err(format!("--tls-name needs --tls-dir\n{USAGE}"));
    }
    let cfg = match config {
        None => EmulatorConfig::default(),
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
            serde_json::from_str(&text).map_err(|e| format!("config {path}: {e}"))?
        }
    };
    let tls_dir = tls_dir.as_deref().map(std::path::Path::new);
    let emulator = entra_emulator::start_named(&listen, cfg, tls_dir, &tls_names)
        .map_err(|e| format!("listen on {listen}: {e}"))?;
    let url = emulator.url();
    if let Some(path) = port_file {
        let port = url.rsplit(':').next().unwrap_or_default();
        // Write then rename, so a watcher never reads a half-written file.
        let tmp = format!("{path}.tmp");
        std::fs::write(&tmp, format!("{port}\n"))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("port file {path}: {e}"))?;
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {url}")
        .and_then(|_| out.flush())
        .map_err(|e| format!("stdout: {e}"))?;
    drop(out);
    loop {
        std::thread::park();
    }
}
