//! The `entra-emulator` binary: startup line, port file, config file, concurrency, keep-alive,
//! and Perl's HTTP::Tiny as a client.

mod common;
use common::*;
use entra_emulator::{ALICE_OID, CLIENT_ID, TENANT};
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn entra-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    Running { child, url }
}

#[test]
fn prints_url_writes_port_file_and_serves() {
    let dir = std::env::temp_dir().join(format!("emu-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("port");
    let emu = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--port-file",
        port_file.to_str().unwrap(),
    ]);
    let port = std::fs::read_to_string(&port_file).unwrap();
    assert_eq!(format!("http://127.0.0.1:{}", port.trim()), emu.url);
    let doc = get(&format!(
        "{}/{TENANT}/v2.0/.well-known/openid-configuration",
        emu.url
    ))
    .json();
    assert_eq!(doc["issuer"], format!("{}/{TENANT}/v2.0", emu.url));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn config_file_is_applied_and_bad_input_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("emu-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("emu.json");
    std::fs::write(&cfg, json!({"groups_overage_limit": 0}).to_string()).unwrap();
    let emu = spawn(&["--config", cfg.to_str().unwrap()]);
    let control = format!("{}/_emu/stats", emu.url);
    assert_eq!(get(&control).status, 200);
    drop(emu);

    std::fs::write(&cfg, "{\"users\": 5}").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
        .args(["--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("emu.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
        .arg("--frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument '--frobnicate'"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Raw HTTP/1.1 on one connection: two keep-alive requests, then one asking to close.
#[test]
fn keep_alive_and_connection_close() {
    let emu = spawn(&[]);
    let host = emu.url.trim_start_matches("http://");
    let mut s = TcpStream::connect(host).unwrap();
    let path = format!("/{TENANT}/discovery/v2.0/keys");
    for _ in 0..2 {
        write!(s, "GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").unwrap();
        let (head, body) = read_response(&mut s);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.contains("Connection: keep-alive"));
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());
    }
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (head, _) = read_response(&mut s);
    assert!(head.contains("Connection: close"));
    let mut rest = Vec::new();
    assert_eq!(
        s.read_to_end(&mut rest).unwrap(),
        0,
        "server closes after Connection: close"
    );
}

fn read_response(s: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed early");
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

#[test]
fn many_concurrent_logins_with_latency_all_succeed() {
    let emu = spawn(&[]);
    post_json(
        &format!("{}/_emu/control", emu.url),
        &json!({"latency_ms": 50}),
        None,
    );
    let url = emu.url.clone();
    let threads: Vec<_> = (0..200)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let (verifier, challenge) = pkce();
                let state = format!("s{i}");
                let q = query(&[
                    ("client_id", CLIENT_ID),
                    ("response_type", "code"),
                    ("redirect_uri", REDIRECT),
                    ("scope", "openid profile"), // `oid` needs `profile`
                    ("state", &state),
                    ("nonce", "n"),
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ]);
                let (code, got_state) = entra_emulator::authorize(
                    &format!("{url}/{TENANT}/oauth2/v2.0/authorize?{q}"),
                    None,
                )
                .unwrap();
                assert_eq!(got_state, state);
                let r = post_form(
                    &format!("{url}/{TENANT}/oauth2/v2.0/token"),
                    &code_redemption(&code, &verifier),
                );
                assert_eq!(r.status, 200);
                decode(r.json()["id_token"].as_str().unwrap()).1["oid"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), ALICE_OID);
    }
    let stats = get(&format!("{}/_emu/stats", emu.url)).json();
    assert_eq!(stats["authorize"], 200);
    assert_eq!(stats["token"], 200);
}

/// HTTP::Tiny (core Perl, the Perl tests' client) with keep-alive: discovery then a token POST.
#[test]
fn perl_http_tiny_is_served() {
    let emu = spawn(&[]);
    let script = r#"
        use strict; use warnings; use HTTP::Tiny;
        my ($url, $tenant) = @ARGV;
        my $http = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
        for (1..3) {
            my $r = $http->get("$url/$tenant/v2.0/.well-known/openid-configuration");
            die "discovery: $r->{status} $r->{content}\n" unless $r->{success};
        }
        my $r = $http->post_form("$url/$tenant/oauth2/v2.0/token", { grant_type => 'client_credentials',
            client_id => 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee', client_secret => 's3cr~et.Value_with~tilde',
            scope => "$url/.default" });
        die "token: $r->{status} $r->{content}\n" unless $r->{success};
        print "ok\n";
    "#;
    let out = Command::new("perl")
        .arg("-e")
        .arg(script)
        .arg(&emu.url)
        .arg(TENANT)
        .output()
        .expect("perl is installed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = get(&format!("{}/_emu/stats", emu.url)).json();
    assert_eq!(stats["discovery"], 3);
    assert_eq!(stats["token"], 1);
}

/// Malformed or unsupported requests get a clear status and a closed connection, never a crash.
#[test]
fn malformed_requests_are_refused_cleanly() {
    let emu = spawn(&[]);
    let host = emu.url.trim_start_matches("http://").to_string();
    let cases: [(String, &str); 4] = [
        ("NONSENSE\r\n\r\n".into(), "HTTP/1.1 400"),
        (format!("POST /{TENANT}/oauth2/v2.0/token HTTP/1.1\r\nHost: {host}\r\nContent-Length: 99999999\r\n\r\n"), "HTTP/1.1 413"),
        (format!("POST /{TENANT}/oauth2/v2.0/token HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), "HTTP/1.1 411"),
        (format!("GET /x HTTP/1.1\r\nHost: {host}\r\nBroken header line\r\n\r\n"), "HTTP/1.1 400"),
    ];
    for (raw, expected) in cases {
        let mut s = TcpStream::connect(&host).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with(expected), "{raw:?} -> {out:?}");
    }
    assert_eq!(
        get(&format!("{}/_emu/stats", emu.url)).status,
        200,
        "still serving"
    );
}

#[test]
fn refuses_non_loopback_listen_addresses() {
    let out = Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only loopback"));
}

#[test]
fn tls_name_is_the_url_and_needs_tls_dir() {
    let dir = std::env::temp_dir().join(format!("emu-bin-name-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
        .args(["--listen", "127.0.0.1:0", "--tls-dir", dir.to_str().unwrap()])
        .args(["--tls-name", "login.microsoftonline.com", "--tls-name", "graph.microsoft.com"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn entra-emulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("listening on https://login.microsoftonline.com:"),
        "{line:?}"
    );
    assert!(dir.join("ca.pem").exists());
    let _ = std::fs::remove_dir_all(&dir);

    let refused = Command::new(env!("CARGO_BIN_EXE_entra-emulator"))
        .args(["--listen", "127.0.0.1:0", "--tls-name", "login.microsoftonline.com"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--tls-name needs --tls-dir"));
}
