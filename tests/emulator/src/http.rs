//! A small HTTP/1.1 server on std::net: one thread per connection, keep-alive, Content-Length
//! bodies, optionally TLS (rustls). Hand-written (instead of a server crate) so faults can break
//! the protocol on purpose: truncated bodies and connections that hang. Each new connection and
//! each TLS handshake can be made to cost a network round trip (see [`NetEvent`]).

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Network events of a connection; the hook counts them and answers the latency to add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetEvent {
    /// A TCP connection was accepted (the client's SYN/SYN-ACK round trip).
    Connection,
    /// The server's TLS handshake flight is about to be sent.
    TlsHandshake,
}

pub type NetHook = dyn Fn(NetEvent) -> Duration + Send + Sync;

/// A plain or TLS connection.
enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
/// Keep-alive connections idle this long are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often blocked reads wake up to notice a shutdown.
const POLL: Duration = Duration::from_millis(200);

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, "application/json; charset=utf-8", value.to_string())
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a handler wants written back.
pub enum Reply {
    Full(Response),
    /// Announce the full Content-Length, send only half of the body, close.
    Truncated(Response),
    /// Send nothing for this long (or until shutdown), then close.
    Hang(Duration),
}

pub type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// Accepts connections until `shutdown` is set (then wake the accept with a dummy connect).
pub fn serve(
    listener: TcpListener,
    tls: Option<Arc<ServerConfig>>,
    handler: Arc<Handler>,
    net: Arc<NetHook>,
    shutdown: Arc<AtomicBool>,
) {
    for conn in listener.incoming() {
        if shutdown.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        let (tls, net) = (tls.clone(), net.clone());
        let spawned = thread::Builder::new().name("emu-conn".into()).spawn(move || {
            let _ = stream.set_nodelay(true);
            let _ = stream.set_read_timeout(Some(POLL));
            sleep_unless_shutdown(net(NetEvent::Connection), &shutdown);
            let conn = match tls {
                None => Some(Conn::Plain(stream)),
                Some(config) => handshake(stream, config, &*net, &shutdown),
            };
            if let Some(conn) = conn {
                serve_connection(conn, &*handler, &shutdown)
            }
        });
        if spawned.is_err() {
            thread::sleep(POLL); // out of threads: let the others finish
        }
    }
}

fn sleep_unless_shutdown(d: Duration, shutdown: &AtomicBool) {
    let until = Instant::now() + d;
    while !shutdown.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= until {
            break;
        }
        thread::sleep((until - now).min(POLL));
    }
}

/// The server side of a TLS handshake; the hook's latency is paid once, before the server's
/// first flight (ServerHello .. Finished in TLS 1.3). None when the client gives up (e.g. it does
/// not trust the certificate) or stays silent.
fn handshake(
    mut tcp: TcpStream,
    config: Arc<ServerConfig>,
    net: &NetHook,
    shutdown: &AtomicBool,
) -> Option<Conn> {
    let mut conn = ServerConnection::new(config).ok()?;
    let started = Instant::now();
    let mut first_flight = true;
    while conn.is_handshaking() {
        if conn.wants_write() {
            if first_flight {
                first_flight = false;
                sleep_unless_shutdown(net(NetEvent::TlsHandshake), shutdown);
            }
            conn.write_tls(&mut tcp).ok()?;
            continue;
        }
        match conn.read_tls(&mut tcp) {
            Ok(0) => return None,
            Ok(_) => {
                if conn.process_new_packets().is_err() {
                    let _ = conn.write_tls(&mut tcp); // the alert
                    return None;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {
                if shutdown.load(Ordering::SeqCst) || started.elapsed() > IDLE_TIMEOUT {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    while conn.wants_write() {
        conn.write_tls(&mut tcp).ok()?;
    }
    Some(Conn::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

fn serve_connection(mut stream: Conn, handler: &Handler, shutdown: &AtomicBool) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let request = match read_request(&mut stream, &mut buf, shutdown) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(status) => {
                let resp = Response::new(status, "text/plain", "bad request\n");
                let _ = write_response(&mut stream, &resp, false, resp.body.len());
                return;
            }
        };
        let keep_alive = wants_keep_alive(&request);
        match handler(&request) {
            Reply::Full(resp) => {
                if write_response(&mut stream, &resp, keep_alive, resp.body.len()).is_err()
                    || !keep_alive
                {
                    break;
                }
            }
            Reply::Truncated(mut resp) => {
                let announced = resp.body.len() + 64;
                resp.body.truncate(resp.body.len() / 2);
                let _ = write_response(&mut stream, &resp, false, announced);
                break;
            }
            Reply::Hang(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !shutdown.load(Ordering::SeqCst) {
                    thread::sleep(POLL);
                }
                break;
            }
        }
    }
    if let Conn::Tls(tls) = &mut stream {
        tls.conn.send_close_notify();
        let _ = tls.conn.write_tls(&mut tls.sock);
    }
    let _ = stream.tcp().shutdown(Shutdown::Both);
}

fn wants_keep_alive(req: &Request) -> bool {
    let conn = req.header("Connection").unwrap_or("").to_ascii_lowercase();
    if req.method.is_empty() || conn.contains("close") {
        return false;
    }
    // HTTP/1.1 defaults to keep-alive; we do not offer it to HTTP/1.0 clients.
    req.headers.iter().any(|(k, _)| k == ":http11")
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Reads one request. Ok(None): clean close, idle timeout or shutdown. Err(status): malformed.
fn read_request(
    stream: &mut Conn,
    buf: &mut Vec<u8>,
    shutdown: &AtomicBool,
) -> Result<Option<Request>, u16> {
    let started = Instant::now();
    let head_end = loop {
        if let Some(pos) = find_head_end(buf) {
            break pos;
        }
        if buf.len() > MAX_HEAD {
            return Err(431);
        }
        match fill(stream, buf, shutdown, started) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(()) => return Ok(None),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    buf.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) if v.starts_with("HTTP/1.") => {
            (m.to_string(), t.to_string(), v)
        }
        _ => return Err(400),
    };
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line.split_once(':').ok_or(400u16)?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    if version == "HTTP/1.1" {
        headers.push((":http11".into(), String::new())); // internal marker, see wants_keep_alive
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if header("Transfer-Encoding").is_some() {
        return Err(411); // our clients (ureq, HTTP::Tiny) send Content-Length for forms
    }
    let len: usize = match header("Content-Length") {
        Some(v) => v.parse().map_err(|_| 400u16)?,
        None => 0,
    };
    if len > MAX_BODY {
        return Err(413);
    }
    while buf.len() < len {
        match fill(stream, buf, shutdown, Instant::now()) {
            Ok(true) => {}
            _ => return Ok(None),
        }
    }
    let body: Vec<u8> = buf.drain(..len).collect();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(Some(Request {
        method,
        path,
        query,
        headers,
        body,
    }))
}

/// Reads more bytes. Ok(false) on EOF, idle timeout or shutdown.
fn fill(
    stream: &mut Conn,
    buf: &mut Vec<u8>,
    shutdown: &AtomicBool,
    since: Instant,
) -> Result<bool, ()> {
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if shutdown.load(Ordering::SeqCst) || since.elapsed() > IDLE_TIMEOUT {
                    return Ok(false);
                }
            }
            Err(_) => return Err(()),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

fn write_response(
    stream: &mut Conn,
    resp: &Response,
    keep_alive: bool,
    content_length: usize,
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {content_length}\r\n"));
    out.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&resp.body);
    stream.write_all(&bytes)?;
    stream.flush()
}
