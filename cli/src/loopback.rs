//! The loopback listener Entra sends the browser back to (RFC 8252 7.3): bound to 127.0.0.1 (and
//! ::1 on the same port, as `localhost` may resolve to either), on a port the system picks. It
//! answers one request: the one carrying the state of this login, with a page saying the
//! browser may be closed; anything else is refused, and after a few such the login is given up.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// Requests without this login's state before the login is given up.
const MAX_STRAY_REQUESTS: u32 = 16;
const MAX_REQUEST: usize = 16 * 1024;

pub struct Listener {
    listeners: Vec<TcpListener>,
    pub port: u16,
}

/// What the browser was sent back with.
#[derive(Debug, PartialEq, Eq)]
pub enum Callback {
    Code(String),
    /// Entra's `error` and `error_description`.
    Error(String),
}

impl Listener {
    pub fn bind(also_ipv6: bool) -> Result<Listener, String> {
        let v4 = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let port = v4.local_addr().map_err(|e| e.to_string())?.port();
        let mut listeners = vec![v4];
        if also_ipv6 {
            // best effort: without IPv6 the browser connects to 127.0.0.1
            listeners.extend(TcpListener::bind(("::1", port)).ok());
        }
        for l in &listeners {
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
        }
        Ok(Listener { listeners, port })
    }

    /// Waits until `deadline` for the browser's request with `state`, or for the address the
    /// user pasted from a browser on another machine (`pasted`).
    pub fn wait(self, state: &str, deadline: Instant, pasted: Option<&Receiver<String>>) -> Result<Callback, String> {
        let mut strays = 0;
        loop {
            if Instant::now() >= deadline {
                return Err("no answer from the browser in time (--timeout)".into());
            }
            if let Some(line) = pasted.and_then(|rx| rx.try_recv().ok()) {
                let query = line.trim().split_once('?').map_or("", |(_, q)| q);
                match callback_of(query, state) {
                    Some(cb) => return Ok(cb),
                    None => eprintln!("That is not the address of this sign-in (it must carry its code and state); paste the whole address."),
                }
            }
            let mut idle = true;
            for l in &self.listeners {
                match l.accept() {
                    Ok((stream, _)) => {
                        idle = false;
                        if let Some(cb) = answer(stream, state) {
                            return Ok(cb);
                        }
                        strays += 1;
                        if strays >= MAX_STRAY_REQUESTS {
                            return Err("too many requests to the loopback listener that were not this sign-in's".into());
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(format!("loopback listener: {e}")),
                }
            }
            if idle {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Reads one request and answers it; the callback when it is this login's.
fn answer(mut stream: TcpStream, state: &str) -> Option<Callback> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let mut words = head.lines().next().unwrap_or("").split(' ');
    let callback = match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => {
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            if path == "/" { callback_of(query, state) } else { None }
        }
        _ => None,
    };
    let (status, body) = match &callback {
        Some(Callback::Code(_)) => ("200 OK", page("Signed in", "The sign-in reached pve-entraid-login. You can close this window and return to the terminal.")),
        Some(Callback::Error(e)) => ("200 OK", page("Sign-in failed", &format!("Microsoft Entra ID answered: {e}. Return to the terminal."))),
        None => ("400 Bad Request", page("Not this sign-in", "This address only takes the answer to the sign-in pve-entraid-login started.")),
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
    callback
}

/// The callback a query (`code=..&state=..` or `error=..&state=..`) is, when it has `state`.
pub fn callback_of(query: &str, state: &str) -> Option<Callback> {
    let pairs: Vec<(String, String)> = query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if get("state") != Some(state) {
        return None;
    }
    if let Some(code) = get("code").filter(|c| !c.is_empty()) {
        return Some(Callback::Code(code.to_string()));
    }
    let error = get("error")?;
    Some(Callback::Error(match get("error_description") {
        Some(d) => format!("{error}: {d}"),
        None => error.to_string(),
    }))
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_digit(b[i + 1]), hex_digit(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn page(title: &str, text: &str) -> String {
    format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{0}</title></head>\
         <body style=\"font-family: sans-serif; margin: 3em\"><h1>{0}</h1><p>{1}</p></body></html>\n",
        html_escape(title),
        html_escape(text)
    )
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(port: u16, target: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {target} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn only_the_request_with_the_state_ends_the_wait() {
        let listener = Listener::bind(true).unwrap();
        let port = listener.port;
        let browser = std::thread::spawn(move || {
            let stray = [get(port, "/?code=c&state=other"), get(port, "/favicon.ico"), get(port, "/cb?code=c&state=s%2B1")];
            let ok = get(port, "/?code=the%20code&state=s%2B1&session_state=x");
            (stray, ok)
        });
        let cb = listener.wait("s+1", Instant::now() + Duration::from_secs(10), None).unwrap();
        assert_eq!(cb, Callback::Code("the code".into()));
        let (stray, ok) = browser.join().unwrap();
        for answer in stray {
            assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        }
        assert!(ok.starts_with("HTTP/1.1 200 OK") && ok.contains("You can close this window"), "{ok}");
        // one request only: the listener is gone
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    }

    #[test]
    fn errors_timeouts_and_pasted_addresses() {
        assert_eq!(
            callback_of("error=access_denied&error_description=AADSTS50105%3A+not+assigned&state=s", "s"),
            Some(Callback::Error("access_denied: AADSTS50105: not assigned".into()))
        );
        assert_eq!(callback_of("error=access_denied&state=t", "s"), None);
        assert_eq!(callback_of("code=&state=s", "s"), None);
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        let listener = Listener::bind(false).unwrap();
        let err = listener.wait("s", Instant::now() + Duration::from_millis(100), None).unwrap_err();
        assert!(err.contains("in time"), "{err}");
        let (tx, rx) = std::sync::mpsc::channel();
        tx.send("http://localhost:1234/?code=abc&state=wrong".into()).unwrap();
        tx.send(" http://localhost:1234/?code=abc&state=s\n".into()).unwrap();
        let listener = Listener::bind(false).unwrap();
        assert_eq!(listener.wait("s", Instant::now() + Duration::from_secs(5), Some(&rx)).unwrap(), Callback::Code("abc".into()));
        assert!(html_escape("<a href='x'>&</a>").find(['<', '\'']).is_none());
    }
}
