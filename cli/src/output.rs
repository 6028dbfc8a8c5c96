//! The credentials in the forms tools read, and the credential file.
//!
//! `env`: shell exports read by
//! * the bpg Terraform provider: PROXMOX_VE_ENDPOINT, PROXMOX_VE_AUTH_TICKET,
//!   PROXMOX_VE_CSRF_PREVENTION_TOKEN;
//! * the Telmate Terraform provider and proxmox-api-go: PM_API_URL, PM_USER, PM_PASS;
//! * Packer's Proxmox plugin: PROXMOX_URL, PROXMOX_USERNAME, PROXMOX_PASSWORD.
//!
//! The last two log in with a user name and password only; PVE's `/access/ticket` takes a valid
//! ticket as the password and answers a new one, so the ticket is that password.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use serde_json::{json, Value};

use crate::loopback::percent_decode;
use crate::TICKET_LIFETIME;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Env,
    Json,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Credentials {
    /// The node, `https://host:port`.
    pub url: String,
    pub username: String,
    pub ticket: String,
    pub csrf: String,
    /// When PVE stops accepting the ticket (Unix time).
    pub expires: u64,
}

/// A PVE ticket `PVE:<data>:<8 hex digits of its time>::<signature>`: its data (`:` escaped as
/// `%3A`) and time.
fn ticket_parts(ticket: &str) -> Option<(String, u64)> {
    let (plain, signature) = ticket.split_once("::")?;
    let (data, time) = plain.strip_prefix("PVE:")?.rsplit_once(':')?;
    if signature.is_empty() || time.len() != 8 {
        return None;
    }
    Some((percent_decode(data), u64::from_str_radix(time, 16).ok()?))
}

/// The TFA challenge (JSON) of a `PVE:!tfa!...` ticket: PVE asks for a second factor.
pub fn tfa_challenge(ticket: &str) -> Option<String> {
    ticket_parts(ticket)?.0.strip_prefix("!tfa!").map(str::to_string)
}

impl Credentials {
    pub fn new(url: &str, username: &str, ticket: String, csrf: String) -> Result<Credentials, String> {
        let (data, issued) = ticket_parts(&ticket).ok_or("the node answered no PVE ticket")?;
        if data != username || csrf.is_empty() {
            return Err("the node answered no ticket for the user it named".into());
        }
        Ok(Credentials { url: url.to_string(), username: username.to_string(), ticket, csrf, expires: issued + TICKET_LIFETIME })
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let v = json!({"url": self.url, "username": self.username, "ticket": self.ticket,
                               "CSRFPreventionToken": self.csrf, "expires": self.expires});
                format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
            }
            Format::Env => {
                let api = format!("{}/api2/json", self.url);
                let vars = [
                    ("PROXMOX_VE_ENDPOINT", format!("{}/", self.url)),
                    ("PROXMOX_VE_AUTH_TICKET", self.ticket.clone()),
                    ("PROXMOX_VE_CSRF_PREVENTION_TOKEN", self.csrf.clone()),
                    ("PM_API_URL", api.clone()),
                    ("PM_USER", self.username.clone()),
                    ("PM_PASS", self.ticket.clone()),
                    ("PROXMOX_URL", api),
                    ("PROXMOX_USERNAME", self.username.clone()),
                    ("PROXMOX_PASSWORD", self.ticket.clone()),
                ];
                let mut out = format!("# pve-entraid-login: {} at {}, valid until {}\n", self.username, self.url, utc(self.expires));
                for (name, value) in vars {
                    out.push_str(&format!("export {name}={}\n", shell_quote(&value)));
                }
                out
            }
        }
    }

    /// Credentials this program wrote (either format) and that format.
    pub fn parse(text: &str) -> Option<(Credentials, Format)> {
        if text.trim_start().starts_with('{') {
            let v: Value = serde_json::from_str(text).ok()?;
            let get = |k: &str| v[k].as_str().map(str::to_string);
            let c = Credentials::new(&get("url")?, &get("username")?, get("ticket")?, get("CSRFPreventionToken")?).ok()?;
            return Some((c, Format::Json));
        }
        let var = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix("export ")?.strip_prefix(name)?.strip_prefix('=').and_then(shell_unquote))
        };
        let url = var("PROXMOX_VE_ENDPOINT")?;
        let c = Credentials::new(url.trim_end_matches('/'), &var("PM_USER")?, var("PROXMOX_VE_AUTH_TICKET")?, var("PROXMOX_VE_CSRF_PREVENTION_TOKEN")?).ok()?;
        Some((c, Format::Env))
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn shell_unquote(s: &str) -> Option<String> {
    Some(s.strip_prefix('\'')?.strip_suffix('\'')?.replace("'\\''", "'"))
}

/// Writes `text` to `file` through a new file made with mode 0600 (never a wider mode, not even
/// for a moment) that then replaces `file`.
pub fn write_private(file: &str, text: &str) -> Result<(), String> {
    let path = std::path::Path::new(file);
    let name = path.file_name().ok_or(format!("{file}: not a file name"))?.to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("{file}: {e}")
    })
}

/// `YYYY-MM-DD HH:MM UTC`.
pub fn utc(t: u64) -> String {
    let (days, secs) = (t / 86400, t % 86400);
    // civil from days (H. Hinnant's algorithm)
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const TICKET: &str = "PVE:alice@contoso.example@entra:6571A2B3::c2lnbmF0dXJl/+=";

    fn creds() -> Credentials {
        Credentials::new("https://pve:8006", "alice@contoso.example@entra", TICKET.into(), "6571A2B3:csrf'x".into()).unwrap()
    }

    #[test]
    fn tickets() {
        assert_eq!(ticket_parts(TICKET), Some(("alice@contoso.example@entra".into(), 0x6571A2B3)));
        assert_eq!(creds().expires, 0x6571A2B3 + 7200);
        let tfa = "PVE:!tfa!%7B%22totp%22%3Atrue%7D:6571A2B3::c2ln";
        assert_eq!(tfa_challenge(tfa).as_deref(), Some("{\"totp\":true}"));
        assert_eq!(tfa_challenge(TICKET), None);
        // PVE escapes only ':' in the data
        let tfa = "PVE:!tfa!{\"totp\"%3Atrue,\"recovery\"%3A[0,2]}:6571A2B3::c2ln";
        assert_eq!(tfa_challenge(tfa).as_deref(), Some("{\"totp\":true,\"recovery\":[0,2]}"));
        for bad in ["", "PVE:x", "PVE:alice@pve:123::sig", "PMG:alice@pve:6571A2B3::sig", "PVE:alice@pve:6571A2B3::"] {
            assert_eq!(ticket_parts(bad), None, "{bad}");
        }
        assert!(Credentials::new("https://pve:8006", "bob@entra", TICKET.into(), "c".into()).is_err());
    }

    #[test]
    fn formats_round_trip() {
        let c = creds();
        let env = c.render(Format::Env);
        for name in ["PROXMOX_VE_ENDPOINT='https://pve:8006/'", "PROXMOX_VE_AUTH_TICKET=", "PROXMOX_VE_CSRF_PREVENTION_TOKEN='6571A2B3:csrf'\\''x'",
                     "PM_API_URL='https://pve:8006/api2/json'", "PM_USER='alice@contoso.example@entra'", "PM_PASS=", "PROXMOX_URL=", "PROXMOX_USERNAME=", "PROXMOX_PASSWORD="] {
            assert!(env.contains(&format!("export {name}")), "{name} in {env}");
        }
        assert_eq!(Credentials::parse(&env), Some((creds(), Format::Env)));
        let json = c.render(Format::Json);
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["CSRFPreventionToken"], "6571A2B3:csrf'x");
        assert_eq!(v["expires"], 0x6571A2B3 + 7200);
        assert_eq!(Credentials::parse(&json), Some((creds(), Format::Json)));
        assert_eq!(Credentials::parse("export FOO=1\n"), None);
    }

    #[test]
    fn the_file_is_made_private() {
        let dir = std::env::temp_dir().join(format!("pve-entraid-login-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("creds");
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(file.to_str().unwrap(), "new").unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "new");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_709_210_096), "2024-02-29 12:34 UTC");
    }
}
