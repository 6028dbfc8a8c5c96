//! pve-entraid-login: signs a person in to a Proxmox VE `entraid` realm from a terminal and
//! hands the PVE ticket to the tools that take one (Terraform providers, Packer, proxmoxer,
//! curl). It runs the realm's normal login, as the web UI does (`/access/entraid/auth-url`, the
//! browser at Entra, `/access/entraid/login`), with the browser sent back to a loopback listener
//! of this program (the realm must allow that: `allow-loopback-redirect`), then a second factor
//! through PVE's `/access/ticket` when PVE asks for one. `--renew` renews a cached ticket through
//! `/access/ticket` as PVE's web UI does.

mod loopback;
mod output;
mod tls;

use std::io::{BufRead, Write};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use output::{Credentials, Format};
use tls::Trust;

const USAGE: &str = "\
usage: pve-entraid-login --realm REALM [options] https://NODE[:8006]
       pve-entraid-login --renew --output FILE [options] [https://NODE[:8006]]

Signs in to the Microsoft Entra ID realm REALM of a Proxmox VE node in the browser and prints
a PVE ticket for Terraform, Packer and scripts: eval \"$(pve-entraid-login ...)\".

  --realm REALM        the entraid realm (its 'allow-loopback-redirect' must be on)
  --format env|json    env (default): shell exports for the bpg and Telmate Terraform
                       providers, Packer and curl; json: {url, username, ticket,
                       CSRFPreventionToken, expires}
  --output FILE        write the credentials to FILE (mode 0600) instead of stdout
  --renew              renew the ticket in --output FILE before it expires (no browser)
  --no-browser         print the sign-in address instead of opening a browser; sign in on
                       any machine, then paste the address the browser ends on
  --fingerprint SHA256 trust the node's certificate with this fingerprint (Node > System >
                       Certificates), e.g. for its self-signed one
  --ca FILE            trust the CA certificates in FILE (e.g. /etc/pve/pve-root-ca.pem)
  --redirect-host H    localhost (default) or 127.0.0.1: the host of the loopback redirect
  --timeout SECONDS    how long to wait for the browser (default 300)
  -h, --help           this text
  --version            the version
";

/// PVE's ticket lifetime (PVE::AccessControl::$ticket_lifetime).
const TICKET_LIFETIME: u64 = 2 * 3600;

struct Args {
    node: Option<String>,
    realm: Option<String>,
    format: Option<Format>,
    output: Option<String>,
    renew: bool,
    no_browser: bool,
    trust: Trust,
    redirect_host: String,
    timeout: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut a = Args {
        node: None,
        realm: None,
        format: None,
        output: None,
        renew: false,
        no_browser: false,
        trust: Trust::System,
        redirect_host: "localhost".into(),
        timeout: Duration::from_secs(300),
    };
    let (mut ca, mut fingerprint) = (None, None);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| inline.clone().or_else(|| args.next()).ok_or_else(|| format!("{name} needs {what}"));
        match name.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(None);
            }
            "--version" => {
                println!("pve-entraid-login {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--realm" => a.realm = Some(value("a realm name")?),
            "--format" => {
                a.format = Some(match value("env or json")?.as_str() {
                    "env" => Format::Env,
                    "json" => Format::Json,
                    other => return Err(format!("--format {other}: env or json")),
                })
            }
            "--output" | "-o" => a.output = Some(value("a file name")?),
            "--renew" => a.renew = true,
            "--no-browser" => a.no_browser = true,
            "--ca" => ca = Some(value("a PEM file")?),
            "--fingerprint" => fingerprint = Some(value("a SHA-256 fingerprint")?),
            "--redirect-host" => {
                a.redirect_host = match value("localhost or 127.0.0.1")?.as_str() {
                    h @ ("localhost" | "127.0.0.1") => h.to_string(),
                    other => return Err(format!("--redirect-host {other}: localhost or 127.0.0.1")),
                }
            }
            "--timeout" => {
                let s = value("seconds")?;
                let secs: u64 = s.parse().ok().filter(|n| (1..=3600).contains(n)).ok_or(format!("--timeout {s}: 1 to 3600 seconds"))?;
                a.timeout = Duration::from_secs(secs);
            }
            n if n.starts_with('-') => return Err(format!("unknown option {n}")),
            _ if a.node.is_none() => a.node = Some(arg),
            _ => return Err(format!("unexpected argument {arg}")),
        }
    }
    a.trust = match (ca, fingerprint) {
        (Some(_), Some(_)) => return Err("--ca and --fingerprint exclude each other".into()),
        (Some(f), None) => Trust::CaFile(f),
        (None, Some(fp)) => Trust::Fingerprint(tls::parse_fingerprint(&fp).ok_or(format!(
            "--fingerprint {fp}: 32 bytes in hex, as PVE shows it (AB:CD:...)"
        ))?),
        (None, None) => Trust::System,
    };
    if a.renew && a.output.is_none() {
        return Err("--renew needs --output FILE (the credentials to renew)".into());
    }
    if !a.renew && a.realm.is_none() {
        return Err("--realm REALM is required".into());
    }
    if !a.renew && a.node.is_none() {
        return Err("the node's address is required, e.g. https://pve.example.com:8006".into());
    }
    Ok(Some(a))
}

/// `https://host[:port]`, port 8006 when the scheme is left out too (PVE's port); no path.
fn node_url(arg: &str) -> Result<String, String> {
    let (rest, default_port) = match arg.split_once("://") {
        Some(("https", rest)) => (rest, None),
        Some((scheme, _)) => return Err(format!("{arg}: the node is reached over https, not {scheme}")),
        None => (arg, Some(8006)),
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains(['/', '?', '#', '@', ' ']) {
        return Err(format!("{arg}: expected https://host[:port]"));
    }
    let has_port = authority.rsplit_once(':').is_some_and(|(h, p)| !h.ends_with(':') && p.bytes().all(|b| b.is_ascii_digit()) && !authority.ends_with(']'));
    Ok(match default_port {
        Some(port) if !has_port => format!("https://{authority}:{port}"),
        _ => format!("https://{authority}"),
    })
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// One PVE API call (`/api2/json`, form parameters). The answer's `data`, or the message PVE
/// answered with (its status line's text, also in the body) and the parameters it refused.
fn api(agent: &ureq::Agent, base: &str, path: &str, form: &[(&str, &str)]) -> Result<Value, String> {
    let url = format!("{base}/api2/json{path}");
    let mut response = agent.post(&url).send_form(form.iter().copied()).map_err(|e| transport_error(base, e))?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(1024 * 1024).read_to_string().unwrap_or_default();
    let json: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if status == 200 {
        return Ok(json.get("data").cloned().unwrap_or(Value::Null));
    }
    let mut message = json.get("message").and_then(Value::as_str).unwrap_or("").trim().to_string();
    if message.is_empty() {
        message = format!("HTTP {status}");
    }
    if let Some(errors) = json.get("errors").and_then(Value::as_object) {
        let list: Vec<String> = errors.iter().map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or("").trim())).collect();
        message = format!("{message} ({})", list.join("; "));
    }
    Err(format!("{path}: {message}{}", hint_for(&message)))
}

/// What the user can do about a refusal whose stable code the node named.
fn hint_for(message: &str) -> &'static str {
    if message.contains("(request.redirect_not_allowed,") {
        "\nThe realm does not allow sign-in from the command line: an administrator turns on its \
         'allow-loopback-redirect' (Allow Command-Line Sign-In) and adds the redirect URI \
         http://localhost to the app registration."
    } else if message.contains("(idp.error,") {
        "\nEntra ID refused the sign-in; if it says AADSTS50011, the app registration lacks the redirect URI http://localhost."
    } else {
        ""
    }
}

fn transport_error(base: &str, e: ureq::Error) -> String {
    let text = e.to_string();
    let tls = matches!(e, ureq::Error::Rustls(_) | ureq::Error::Tls(_))
        || text.contains("certificate")
        || text.contains("UnknownIssuer");
    if tls {
        format!(
            "{base}: TLS: {text}\nPVE nodes have self-signed certificates: pass --fingerprint with the one shown under \
             Node > System > Certificates (pve-ssl.pem), or --ca /etc/pve/pve-root-ca.pem (copied from a node)"
        )
    } else {
        format!("{base}: {text}")
    }
}

/// The lines typed on stdin, read by one thread (the pasted address and the second factor).
struct Stdin(Option<Receiver<String>>);

impl Stdin {
    fn lines(&mut self) -> &Receiver<String> {
        self.0.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        })
    }

    fn read_line(&mut self, prompt: &str) -> Result<String, String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        self.lines().recv().map(|l| l.trim().to_string()).map_err(|_| "no answer on stdin".to_string())
    }
}

/// 32 random bytes the program keeps, and their SHA-256, both base64url: the browser binding the
/// web UI generates (`binding-key` / `binding-hash`).
fn binding() -> Result<(String, String), String> {
    use ring::rand::SecureRandom;
    let mut key = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut key).map_err(|_| "no randomness".to_string())?;
    let hash = ring::digest::digest(&ring::digest::SHA256, &key);
    Ok((URL_SAFE_NO_PAD.encode(key), URL_SAFE_NO_PAD.encode(hash.as_ref())))
}

fn open_browser(url: &str) -> bool {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn login(args: &Args, agent: &ureq::Agent, base: &str, stdin: &mut Stdin) -> Result<Credentials, String> {
    let realm = args.realm.as_deref().unwrap_or_default();
    let (key, hash) = binding()?;
    let listener = loopback::Listener::bind(args.redirect_host == "localhost")?;
    let redirect = format!("http://{}:{}", args.redirect_host, listener.port);
    let url = api(agent, base, "/access/entraid/auth-url", &[("realm", realm), ("redirect-url", &redirect), ("binding-hash", &hash)])?;
    let url = url.as_str().unwrap_or_default().to_string();
    // the state names this login when the browser comes back (as in the web UI)
    let state = url
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|p| p.strip_prefix("state=")))
        .map(loopback::percent_decode)
        .filter(|s| !s.is_empty() && (url.starts_with("https://") || url.starts_with("http://")))
        .ok_or_else(|| "the node sent no sign-in address".to_string())?;
    let deadline = Instant::now() + args.timeout;
    let pasted = if args.no_browser {
        eprintln!(
            "Open this address in a browser and sign in:\n\n  {url}\n\nOn this machine the browser returns here by itself. On another machine it ends \
             on an address starting with {redirect} that does not load: paste that whole address here and press Enter."
        );
        Some(stdin.lines())
    } else {
        if !open_browser(&url) {
            eprintln!("Could not open a browser (xdg-open).");
        }
        eprintln!("Sign in in the browser. If none opened, open this address on this machine:\n\n  {url}\n");
        None
    };
    let code = match listener.wait(&state, deadline, pasted)? {
        loopback::Callback::Code(code) => code,
        loopback::Callback::Error(e) => return Err(format!("sign-in failed at Microsoft Entra ID: {e}{}", hint_for(&e))),
    };
    let answer = api(
        agent,
        base,
        "/access/entraid/login",
        &[("realm", realm), ("code", &code), ("state", &state), ("redirect-url", &redirect), ("binding-key", &key)],
    )?;
    let username = answer["username"].as_str().unwrap_or_default().to_string();
    let ticket = answer["ticket"].as_str().unwrap_or_default().to_string();
    let csrf = answer["CSRFPreventionToken"].as_str().unwrap_or_default().to_string();
    if let Some(challenge) = output::tfa_challenge(&ticket) {
        return second_factor(agent, base, &username, &ticket, &challenge, stdin);
    }
    Credentials::new(base, &username, ticket, csrf)
}

/// PVE asks for a second factor: asked for as PVE's own Perl API client does
/// (PVE::APIClient::LWP), answered through `/access/ticket` with `tfa-challenge`.
fn second_factor(agent: &ureq::Agent, base: &str, username: &str, ticket: &str, challenge: &str, stdin: &mut Stdin) -> Result<Credentials, String> {
    let challenge: Value = serde_json::from_str(challenge).map_err(|e| format!("bad TFA challenge: {e}"))?;
    let offered = |k: &str| match &challenge[k] {
        Value::Bool(b) => *b,
        Value::Array(a) => !a.is_empty(),
        Value::Null => false,
        _ => true,
    };
    let available: Vec<&str> = ["totp", "recovery", "yubico"].into_iter().filter(|k| offered(k)).collect();
    let selected = match available.as_slice() {
        [] => return Err("TFA required, but none of the configured factors works in a terminal (WebAuthn, U2F): add a TOTP or recovery keys".into()),
        [one] => *one,
        several => loop {
            eprintln!("Available TFA methods:");
            for (i, m) in several.iter().enumerate() {
                eprintln!("{i}: {m}");
            }
            if let Some(m) = stdin.read_line("Select TFA method: ")?.parse::<usize>().ok().and_then(|i| several.get(i)) {
                break *m;
            }
        },
    };
    if selected == "recovery" {
        let keys: Vec<String> = challenge["recovery"].as_array().into_iter().flatten().map(|k| k.to_string()).collect();
        if keys.len() <= 3 {
            eprintln!("WARNING: Few recovery keys remaining: {}", keys.join(", "));
        } else {
            eprintln!("The following recovery codes are available: {}", keys.join(", "));
        }
    }
    let response = stdin.read_line(&format!("Enter {selected} code for user {username}: "))?;
    let password = format!("{selected}:{response}");
    let answer = api(agent, base, "/access/ticket", &[("username", username), ("password", &password), ("tfa-challenge", ticket)])?;
    Credentials::new(
        base,
        answer["username"].as_str().unwrap_or(username),
        answer["ticket"].as_str().unwrap_or_default().to_string(),
        answer["CSRFPreventionToken"].as_str().unwrap_or_default().to_string(),
    )
}

/// A new ticket for the one in the credentials, from PVE's `/access/ticket` (the old ticket as
/// the password, as PVE's web UI renews its own).
fn renew(agent: &ureq::Agent, base: &str, old: &Credentials) -> Result<Credentials, String> {
    if old.expires <= now() {
        return Err(format!("the ticket in the file expired at {}: sign in again (without --renew)", output::utc(old.expires)));
    }
    let answer = api(agent, base, "/access/ticket", &[("username", &old.username), ("password", &old.ticket)])?;
    Credentials::new(
        base,
        answer["username"].as_str().unwrap_or(&old.username),
        answer["ticket"].as_str().unwrap_or_default().to_string(),
        answer["CSRFPreventionToken"].as_str().unwrap_or_default().to_string(),
    )
}

fn run(args: Args) -> Result<(), String> {
    let agent = tls::agent(&args.trust)?;
    let mut stdin = Stdin(None);
    let (credentials, format) = if args.renew {
        let file = args.output.as_deref().unwrap_or_default();
        let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
        let (old, file_format) = Credentials::parse(&text).ok_or(format!("{file}: no credentials of pve-entraid-login"))?;
        let base = match &args.node {
            Some(n) => node_url(n)?,
            None => old.url.clone(),
        };
        (renew(&agent, &base, &old)?, args.format.unwrap_or(file_format))
    } else {
        let base = node_url(args.node.as_deref().unwrap_or_default())?;
        (login(&args, &agent, &base, &mut stdin)?, args.format.unwrap_or(Format::Env))
    };
    let text = credentials.render(format);
    match &args.output {
        Some(file) => output::write_private(file, &text)?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|_| out.flush()).map_err(|e| format!("stdout: {e}"))?;
        }
    }
    eprintln!(
        "Signed in as {}; the ticket is valid until {} (renew it before with --renew --output FILE).",
        credentials.username,
        output::utc(credentials.expires)
    );
    Ok(())
}

fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => return,
        Err(e) => {
            eprintln!("pve-entraid-login: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("pve-entraid-login: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn node_addresses() {
        assert_eq!(node_url("pve.example").unwrap(), "https://pve.example:8006");
        assert_eq!(node_url("pve.example:443").unwrap(), "https://pve.example:443");
        assert_eq!(node_url("https://pve.example:8006/").unwrap(), "https://pve.example:8006");
        assert_eq!(node_url("https://pve.example").unwrap(), "https://pve.example");
        assert_eq!(node_url("[2001:db8::1]").unwrap(), "https://[2001:db8::1]:8006");
        assert_eq!(node_url("[2001:db8::1]:8006").unwrap(), "https://[2001:db8::1]:8006");
        for bad in ["http://pve.example:8006", "https://pve.example:8006/api2/json", "https://u@pve", "https://", "ftp://x"] {
            assert!(node_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arguments() {
        let a = parse(&["--realm", "entra", "https://pve:8006", "--format=json", "--fingerprint", &"AB:".repeat(31).to_string().add("CD")]).unwrap().unwrap();
        assert_eq!(a.realm.as_deref(), Some("entra"));
        assert!(matches!(a.format, Some(Format::Json)));
        assert!(matches!(a.trust, Trust::Fingerprint(fp) if fp[31] == 0xcd));
        for (bad, why) in [
            (vec!["https://pve:8006"], "--realm"),
            (vec!["--realm", "entra"], "address"),
            (vec!["--renew"], "--output"),
            (vec!["--realm", "e", "x", "--format", "yaml"], "--format"),
            (vec!["--realm", "e", "x", "--ca", "f", "--fingerprint", "00"], "exclude"),
            (vec!["--realm", "e", "x", "--fingerprint", "00"], "32 bytes"),
            (vec!["--realm", "e", "x", "--redirect-host", "[::1]"], "localhost or 127.0.0.1"),
            (vec!["--realm", "e", "x", "y"], "unexpected"),
            (vec!["--realm"], "needs"),
            (vec!["--bogus"], "unknown option"),
        ] {
            let err = parse(&bad).err().unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(parse(&["--renew", "-o", "f"]).unwrap().unwrap().renew);
    }

    trait Add {
        fn add(self, s: &str) -> String;
    }
    impl Add for String {
        fn add(mut self, s: &str) -> String {
            self.push_str(s);
            self
        }
    }

    #[test]
    fn bindings_are_the_web_uis() {
        let (key, hash) = binding().unwrap();
        assert_eq!((key.len(), hash.len()), (43, 43));
        let raw = URL_SAFE_NO_PAD.decode(&key).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &raw).as_ref()), hash);
        assert_ne!(binding().unwrap().0, key);
    }

    #[test]
    fn refusals_name_what_to_do() {
        assert!(hint_for("invalid request (request.redirect_not_allowed, reference 0badf00d)").contains("allow-loopback-redirect"));
        assert_eq!(hint_for("invalid request (request.invalid, reference 0badf00d)"), "");
    }
}
