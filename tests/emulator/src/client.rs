//! The browser's part of a login, for tests: follow the authorize URL to its redirect.

use crate::util::form_decode;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// GETs `auth_url` (with `login_hint` added when given), reads the 302 `Location` and returns
/// its (code, state). An error redirect, an error page or any other answer is an `Err` with the
/// reason, e.g. "invalid_request: AADSTS501481: ...".
pub fn authorize(auth_url: &str, login_hint: Option<&str>) -> Result<(String, String), String> {
    let (tls, rest) = match (auth_url.strip_prefix("http://"), auth_url.strip_prefix("https://")) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return Err(format!("only http(s):// URLs are supported: {auth_url}")),
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut target = path.to_string();
    if let Some(hint) = login_hint {
        let sep = if target.contains('?') { '&' } else { '?' };
        target = format!(
            "{target}{sep}{}",
            crate::util::form_encode(&[("login_hint", hint)])
        );
    }
    let stream = TcpStream::connect(host).map_err(|e| format!("connect {host}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(120)));
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    if tls {
        // The browser trusts the CAs of the emulators started in this process.
        let mut conn = crate::tls::client_connection(host)?;
        let mut stream = stream;
        let mut tls = rustls::Stream::new(&mut conn, &mut stream);
        tls.write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        match tls.read_to_end(&mut raw) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    } else {
        let mut stream = stream;
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        stream
            .read_to_end(&mut raw)
            .map_err(|e| format!("read: {e}"))?;
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("");
    if status != "302" {
        return Err(format!(
            "authorize answered {status} instead of a redirect: {}",
            body.chars().take(500).collect::<String>()
        ));
    }
    let location = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.trim().to_string())
        .ok_or("redirect without Location")?;
    let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params = form_decode(query);
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    if let Some(error) = get("error") {
        return Err(format!(
            "{error}: {}",
            get("error_description").unwrap_or_default()
        ));
    }
    match (get("code"), get("state")) {
        (Some(code), Some(state)) => Ok((code, state)),
        _ => Err(format!("redirect without code and state: {location}")),
    }
}
