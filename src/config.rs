//! The realm configuration as it crosses the ABI (`config` in every request), checked field by
//! field so that a mistake names the field. Values are read from `serde_json::Value` by hand:
//! serde's own messages quote the offending value, and that value could be a secret.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};

pub const PUBLIC_AUTHORITY: &str = "https://login.microsoftonline.com";
pub const USGOV_AUTHORITY: &str = "https://login.microsoftonline.us";
pub const CHINA_AUTHORITY: &str = "https://login.chinacloudapi.cn";
pub const PUBLIC_GRAPH: &str = "https://graph.microsoft.com";
pub const USGOV_GRAPH: &str = "https://graph.microsoft.us";
pub const CHINA_GRAPH: &str = "https://microsoftgraph.chinacloudapi.cn";

/// Which tenants may sign in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tenant {
    /// One tenant, by GUID or verified domain: the issuer in discovery is concrete.
    Single(String),
    /// `organizations` or `common`: the issuer is the `{tenantid}` template, `tid` must be allowed.
    Multi { segment: String, allowed: Vec<String> },
}

impl Tenant {
    /// The tenant path segment of the authority URLs.
    pub fn segment(&self) -> &str {
        match self {
            Tenant::Single(s) => s,
            Tenant::Multi { segment, .. } => segment,
        }
    }
}

/// Where the client credential lives. Files are read only when a request needs them.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    SecretFile(String),
    Secret(String),
    Certificate { cert_file: String, key_file: String },
}

impl std::fmt::Debug for Credential {
    // Never print a secret value, not even in test failure output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::SecretFile(p) => write!(f, "SecretFile({p})"),
            Credential::Secret(_) => write!(f, "Secret(<redacted>)"),
            Credential::Certificate { cert_file, key_file } => write!(f, "Certificate({cert_file}, {key_file})"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsernameClaim {
    Upn,
    PreferredUsername,
    Email,
    Oid,
}

#[derive(Clone, Debug)]
pub struct RealmConfig {
    pub tenant: Tenant,
    pub client_id: String,
    pub credential: Credential,
    /// Authority origin without trailing slash, e.g. `https://login.microsoftonline.com`.
    pub authority: String,
    pub graph_url: String,
    /// Space separated, always containing `openid`.
    pub scopes: String,
    pub username_claim: UsernameClaim,
    pub prompt: Option<String>,
    pub acr_values: Option<String>,
    pub http_proxy: Option<String>,
    pub connect_timeout: Duration,
    pub timeout: Duration,
    /// Group GUID (lower case) or app role → PVE group.
    pub groups_map: BTreeMap<String, String>,
    pub required_groups: Vec<String>,
    pub allow_guests: bool,
}

impl RealmConfig {
    pub fn discovery_url(&self) -> String {
        format!("{}/{}/v2.0/.well-known/openid-configuration", self.authority, self.tenant.segment())
    }

    /// Plain http is allowed only against a loopback authority (the emulator in tests).
    pub fn allows_http(&self) -> bool {
        is_loopback_url(&self.authority)
    }
}

fn invalid(field: &str, why: &str) -> Error {
    Error::new(Code::ConfigInvalid, format!("realm config: `{field}` {why}"))
}

pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.contains('.')
        && s.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && !l.starts_with('-') && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// True for `http(s)://127.0.0.1[:port]`, `localhost` and `[::1]`.
pub fn is_loopback_url(url: &str) -> bool {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).unwrap_or("");
    let host_port = rest.split('/').next().unwrap_or("");
    let host = if host_port.starts_with("[::1]") {
        "[::1]"
    } else {
        host_port.rsplit_once(':').map(|(h, _)| h).unwrap_or(host_port)
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// An origin such as `https://host[:port]` with no path, query or credentials.
fn origin(field: &str, v: &str) -> Result<String> {
    let v = v.trim_end_matches('/');
    let rest = if let Some(r) = v.strip_prefix("https://") {
        r
    } else if let Some(r) = v.strip_prefix("http://") {
        if !is_loopback_url(v) {
            return Err(invalid(field, "must use https (plain http only for loopback test servers)"));
        }
        r
    } else {
        return Err(invalid(field, "must be an https URL"));
    };
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@'])
        || !rest.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
    {
        return Err(invalid(field, "must be a bare origin such as https://host[:port]"));
    }
    Ok(v.to_string())
}

fn opt_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn opt_bool(obj: &Map<String, Value>, field: &str) -> Result<bool> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        // PVE's SectionConfig hands booleans over as 0/1.
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(false),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(true),
        Some(Value::String(s)) if s == "0" => Ok(false),
        Some(Value::String(s)) if s == "1" => Ok(true),
        Some(_) => Err(invalid(field, "must be a boolean")),
    }
}

fn opt_ms(obj: &Map<String, Value>, field: &str, default: u64, max: u64) -> Result<Duration> {
    let ms = match obj.get(field) {
        None | Some(Value::Null) => default,
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| invalid(field, "must be a whole number of milliseconds"))?,
        Some(Value::String(s)) => s.parse().map_err(|_| invalid(field, "must be a whole number of milliseconds"))?,
        Some(_) => return Err(invalid(field, "must be a number")),
    };
    if !(100..=max).contains(&ms) {
        return Err(invalid(field, &format!("must be between 100 and {max} ms")));
    }
    Ok(Duration::from_millis(ms))
}

fn str_list(obj: &Map<String, Value>, field: &str) -> Result<Vec<String>> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v.as_str() {
                Some(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
                _ => Err(invalid(field, "must be a list of non-empty strings")),
            })
            .collect(),
        // PVE property strings often arrive as "a;b" or "a,b".
        Some(Value::String(s)) => Ok(s.split([',', ';', ' ']).filter(|p| !p.is_empty()).map(str::to_string).collect()),
        Some(_) => Err(invalid(field, "must be a list of strings")),
    }
}

/// Printable ASCII without spaces or characters that would break a URL parameter's meaning.
fn is_token_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && s.chars().all(|c| c.is_ascii_graphic())
}

/// PVE group names: letters, digits, `-`, `_`, `.` (as PVE's group id format accepts).
pub fn is_pve_group_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

impl RealmConfig {
    pub fn from_json(v: &Value) -> Result<RealmConfig> {
        let obj = v.as_object().ok_or_else(|| invalid("config", "must be a JSON object"))?;

        let tenant_raw = opt_str(obj, "tenant")?.ok_or_else(|| invalid("tenant", "is required"))?;
        let allowed = str_list(obj, "allowed_tenants")?;
        if let Some(bad) = allowed.iter().find(|t| !is_guid(t)) {
            return Err(invalid("allowed_tenants", &format!("entry '{}' is not a tenant GUID", crate::error::sanitize(bad))));
        }
        let tenant = match tenant_raw.to_ascii_lowercase().as_str() {
            t @ ("organizations" | "common") => {
                if allowed.is_empty() {
                    return Err(invalid("allowed_tenants", "is required when tenant is organizations or common"));
                }
                Tenant::Multi { segment: t.to_string(), allowed: allowed.iter().map(|a| a.to_ascii_lowercase()).collect() }
            }
            "consumers" => return Err(invalid("tenant", "'consumers' (personal Microsoft accounts) is not supported")),
            t if is_guid(t) || is_domain(t) => Tenant::Single(t.to_string()),
            _ => return Err(invalid("tenant", "must be a tenant GUID, a verified domain, 'organizations' or 'common'")),
        };

        let client_id = opt_str(obj, "client_id")?.ok_or_else(|| invalid("client_id", "is required"))?;
        if !is_guid(client_id) {
            return Err(invalid("client_id", "must be the application (client) ID, a GUID"));
        }

        let secret_file = opt_str(obj, "client_secret_file")?;
        let secret = opt_str(obj, "client_secret")?;
        let cert = opt_str(obj, "client_cert_file")?;
        let key = opt_str(obj, "client_key_file")?;
        let credential = match (secret_file, secret, cert, key) {
            (Some(f), None, None, None) => Credential::SecretFile(f.to_string()),
            (None, Some(s), None, None) => Credential::Secret(s.to_string()),
            (None, None, Some(c), Some(k)) => Credential::Certificate { cert_file: c.to_string(), key_file: k.to_string() },
            (None, None, Some(_), None) => return Err(invalid("client_key_file", "is required with client_cert_file")),
            (None, None, None, Some(_)) => return Err(invalid("client_cert_file", "is required with client_key_file")),
            (None, None, None, None) => {
                return Err(invalid("client_secret_file", "or client_cert_file/client_key_file is required"))
            }
            _ => return Err(invalid("client_secret_file", "conflicts: configure exactly one client credential")),
        };

        let (default_authority, default_graph) = match opt_str(obj, "cloud")?.unwrap_or("public") {
            "public" => (PUBLIC_AUTHORITY, PUBLIC_GRAPH),
            "usgov" => (USGOV_AUTHORITY, USGOV_GRAPH),
            "china" => (CHINA_AUTHORITY, CHINA_GRAPH),
            _ => return Err(invalid("cloud", "must be public, usgov or china")),
        };
        let authority = match opt_str(obj, "authority")? {
            Some(a) => origin("authority", a)?,
            None => default_authority.to_string(),
        };
        let graph_url = match opt_str(obj, "graph_url")? {
            Some(g) => origin("graph_url", g)?,
            None => default_graph.to_string(),
        };

        let scopes_raw = opt_str(obj, "scopes")?.unwrap_or("openid profile email");
        let mut scopes: Vec<&str> = scopes_raw.split_whitespace().collect();
        if scopes.iter().any(|s| !is_token_text(s)) {
            return Err(invalid("scopes", "must be scope names separated by spaces"));
        }
        if !scopes.contains(&"openid") {
            scopes.insert(0, "openid");
        }
        scopes.dedup();

        let username_claim = match opt_str(obj, "username_claim")?.unwrap_or("upn") {
            "upn" => UsernameClaim::Upn,
            "preferred_username" => UsernameClaim::PreferredUsername,
            "email" => UsernameClaim::Email,
            "oid" => UsernameClaim::Oid,
            _ => return Err(invalid("username_claim", "must be upn, preferred_username, email or oid")),
        };

        let prompt = match opt_str(obj, "prompt")? {
            None => None,
            Some(p @ ("login" | "select_account" | "consent" | "none")) => Some(p.to_string()),
            Some(_) => return Err(invalid("prompt", "must be login, select_account, consent or none")),
        };
        let acr_values = match opt_str(obj, "acr_values")? {
            Some(a) if a.split(' ').all(is_token_text) => Some(a.to_string()),
            Some(_) => return Err(invalid("acr_values", "must be printable values separated by spaces")),
            None => None,
        };
        let http_proxy = match opt_str(obj, "http_proxy")? {
            Some(p) if (p.starts_with("http://") || p.starts_with("https://")) && is_token_text(p) => Some(p.to_string()),
            Some(_) => return Err(invalid("http_proxy", "must be an http://host:port URL")),
            None => None,
        };

        let mut groups_map = BTreeMap::new();
        match obj.get("groups_map") {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let group = v.as_str().filter(|g| is_pve_group_name(g)).ok_or_else(|| {
                        invalid("groups_map", "values must be PVE group names (letters, digits, '-', '_', '.')")
                    })?;
                    if k.trim().is_empty() {
                        return Err(invalid("groups_map", "keys must be group GUIDs or app role names"));
                    }
                    groups_map.insert(normalize_group_key(k), group.to_string());
                }
            }
            Some(_) => return Err(invalid("groups_map", "must be an object {\"<group GUID or app role>\": \"<pve group>\"}")),
        }

        Ok(RealmConfig {
            tenant,
            client_id: client_id.to_ascii_lowercase(),
            credential,
            authority,
            graph_url,
            scopes: scopes.join(" "),
            username_claim,
            prompt,
            acr_values,
            http_proxy,
            connect_timeout: opt_ms(obj, "connect_timeout_ms", 5_000, 60_000)?,
            timeout: opt_ms(obj, "timeout_ms", 15_000, 120_000)?,
            groups_map,
            required_groups: str_list(obj, "required_groups")?.iter().map(|g| normalize_group_key(g)).collect(),
            allow_guests: opt_bool(obj, "allow_guests")?,
        })
    }
}

/// Group GUIDs compare case-insensitively; app role names stay as they are. A key may be scoped
/// to one tenant as `<tenant GUID>:<group GUID or app role>` (see `mapping::member_keys`).
pub fn normalize_group_key(k: &str) -> String {
    let k = k.trim();
    if let Some((tid, rest)) = k.split_once(':').filter(|(tid, _)| is_guid(tid)) {
        return format!("{}:{}", tid.to_ascii_lowercase(), normalize_group_key(rest));
    }
    if is_guid(k) {
        k.to_ascii_lowercase()
    } else {
        k.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"tenant": "11111111-2222-3333-4444-555555555555",
               "client_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
               "client_secret_file": "/etc/pve/priv/entraid/entra.secret"})
    }

    fn err_with(patch: Value) -> Error {
        let mut v = base();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        RealmConfig::from_json(&v).unwrap_err()
    }

    #[test]
    fn defaults() {
        let c = RealmConfig::from_json(&base()).unwrap();
        assert_eq!(c.authority, PUBLIC_AUTHORITY);
        assert_eq!(c.graph_url, PUBLIC_GRAPH);
        assert_eq!(c.scopes, "openid profile email");
        assert_eq!(c.username_claim, UsernameClaim::Upn);
        assert_eq!(c.timeout, Duration::from_secs(15));
        assert_eq!(
            c.discovery_url(),
            "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0/.well-known/openid-configuration"
        );
    }

    #[test]
    fn clouds_and_authority() {
        let mut v = base();
        v["cloud"] = json!("usgov");
        assert_eq!(RealmConfig::from_json(&v).unwrap().graph_url, USGOV_GRAPH);
        v["cloud"] = json!("china");
        assert_eq!(RealmConfig::from_json(&v).unwrap().authority, CHINA_AUTHORITY);
        v["authority"] = json!("http://127.0.0.1:8400/");
        let c = RealmConfig::from_json(&v).unwrap();
        assert_eq!(c.authority, "http://127.0.0.1:8400");
        assert!(c.allows_http());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({"tenant": null}), "`tenant`"),
            (json!({"tenant": "not a tenant"}), "`tenant`"),
            (json!({"tenant": "organizations"}), "`allowed_tenants`"),
            (json!({"tenant": "common", "allowed_tenants": ["x"]}), "`allowed_tenants`"),
            (json!({"client_id": "app"}), "`client_id`"),
            (json!({"client_secret": "v"}), "conflicts"),
            (json!({"client_secret_file": null}), "`client_secret_file`"),
            (json!({"cloud": "mars"}), "`cloud`"),
            (json!({"authority": "http://login.example.com"}), "`authority`"),
            (json!({"authority": "https://h/x?y"}), "`authority`"),
            (json!({"graph_url": "ftp://x"}), "`graph_url`"),
            (json!({"username_claim": "sub"}), "`username_claim`"),
            (json!({"prompt": "always"}), "`prompt`"),
            (json!({"http_proxy": "proxy:3128"}), "`http_proxy`"),
            (json!({"timeout_ms": 5}), "`timeout_ms`"),
            (json!({"connect_timeout_ms": "abc"}), "`connect_timeout_ms`"),
            (json!({"groups_map": {"g": "bad group"}}), "`groups_map`"),
            (json!({"allow_guests": "yes"}), "`allow_guests`"),
            (json!({"scopes": 5}), "`scopes`"),
        ];
        for (patch, field) in cases {
            let e = err_with(patch.clone());
            assert_eq!(e.code, Code::ConfigInvalid, "{patch}");
            assert!(e.message.contains(field), "{patch}: {}", e.message);
        }
    }

    #[test]
    fn a_secret_in_a_wrong_place_is_not_echoed() {
        let e = err_with(json!({"allow_guests": "s3cr~et.Value_with~tilde"}));
        assert!(!e.message.contains("s3cr~et"));
        let e = err_with(json!({"client_secret": "s3cr~et.Value_with~tilde", "client_secret_file": null, "client_cert_file": "/c"}));
        assert!(!e.message.contains("s3cr~et"));
        assert!(!format!("{:?}", Credential::Secret("s3cr~et".into())).contains("s3cr~et"));
    }

    #[test]
    fn multi_tenant_and_certificates() {
        let mut v = base();
        v["tenant"] = json!("Organizations");
        v["allowed_tenants"] = json!(["11111111-2222-3333-4444-55555555555A"]);
        v.as_object_mut().unwrap().remove("client_secret_file");
        v["client_cert_file"] = json!("/c.crt");
        v["client_key_file"] = json!("/c.key");
        let c = RealmConfig::from_json(&v).unwrap();
        assert_eq!(
            c.tenant,
            Tenant::Multi { segment: "organizations".into(), allowed: vec!["11111111-2222-3333-4444-55555555555a".into()] }
        );
        assert!(matches!(c.credential, Credential::Certificate { .. }));
        v["tenant"] = json!("contoso.onmicrosoft.com");
        assert_eq!(RealmConfig::from_json(&v).unwrap().tenant, Tenant::Single("contoso.onmicrosoft.com".into()));
    }

    #[test]
    fn scopes_always_have_openid_and_pve_booleans() {
        let mut v = base();
        v["scopes"] = json!("profile email");
        v["allow_guests"] = json!(1);
        v["groups_map"] = json!({"6F7E8D9C-1111-4111-8111-000000000001": "admins", "PVE.Admin": "admins"});
        let c = RealmConfig::from_json(&v).unwrap();
        assert_eq!(c.scopes, "openid profile email");
        assert!(c.allow_guests);
        assert_eq!(c.groups_map.get("6f7e8d9c-1111-4111-8111-000000000001").unwrap(), "admins");
        assert!(c.groups_map.contains_key("PVE.Admin"));
    }
}
