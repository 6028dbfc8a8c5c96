//! The realm configuration as it crosses the ABI (`config` in every request): the realm's
//! domains.cfg section as PVE's SectionConfig holds it (PVE's option names and forms; PVE's schema
//! has checked its syntax), plus the members only the Perl side knows (snake_case: the credential
//! files, datacenter.cfg's proxy, test overrides). Serde reads it into [`Section`]; what the
//! settings mean, and which combinations are allowed, is decided here once, in
//! [`RealmConfig::from_section`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::{IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::error::{Code, Error, Result};
use crate::typed::typed;

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

/// The realm's `username-claim` (openid's option, a free string in PVE's schema).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsernameClaim {
    Upn,
    PreferredUsername,
    Email,
    Oid,
}

/// The realm's `sync-users`: whom a realm sync reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncUsers {
    /// The holders of the `required-groups` keys, or without those, of the `groups-map` keys.
    #[default]
    Mapped,
    /// Every user assigned to the app (its enterprise application's "Users and groups"), of
    /// them only the holders of a `required-groups` key when that is set.
    Assigned,
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
    /// The realm accepts `http://localhost` / `http://127.0.0.1` redirect URLs (the loopback
    /// listener of a command-line client, see `request::check_redirect_url`).
    pub allow_loopback_redirect: bool,
    pub sync_users: SyncUsers,
    /// App role (normalized like a `groups-map` key) → what a workload holding it becomes.
    pub workload_map: BTreeMap<String, WorkloadTarget>,
    /// The audiences a workload's access token may name: the client id, `api://<client id>`,
    /// and the configured `app-id-uri` (the app's Application ID URI), lower case.
    pub workload_audiences: Vec<String>,
}

/// The PVE user (name without `@realm`) and groups of a workload holding a `workload-map` role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadTarget {
    pub user: String,
    pub groups: Vec<String>,
}

impl RealmConfig {
    pub fn discovery_url(&self) -> String {
        // Built on every validation (the key of the in-memory cache): one allocation, no
        // formatting machinery.
        [self.authority.as_str(), "/", self.tenant.segment(), "/v2.0/.well-known/openid-configuration"].concat()
    }

    /// Plain http is allowed only against a loopback authority (the emulator in tests).
    pub fn allows_http(&self) -> bool {
        is_loopback_url(&self.authority)
    }
}

fn invalid(field: &str, why: &str) -> Error {
    Error::new(Code::ConfigInvalid, format!("realm config: `{field}` {why}"))
}

/// `config` as it arrives. Option names and forms are PVE's (`pve-entraid-guid-list` strings,
/// 0/1 booleans, `groups-map` as `key=group;...`), so the Perl side passes the section through.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[allow(dead_code)] // the options the Perl side applies are declared (so they are known), not read
pub struct Section {
    tenant_id: String,
    client_id: String,
    #[serde(default)]
    cloud: Cloud,
    allowed_tenants: Option<String>,
    username_claim: Option<UsernameClaim>,
    groups_map: Option<String>,
    required_groups: Option<String>,
    #[serde(default)]
    allow_guests: PveBool,
    #[serde(default)]
    allow_loopback_redirect: PveBool,
    #[serde(default)]
    sync_users: SyncUsers,
    workload_map: Option<String>,
    app_id_uri: Option<String>,
    prompt: Option<String>,
    acr_values: Option<String>,
    scopes: Option<String>,
    /// SectionConfig's section type.
    #[serde(rename = "type")]
    section_type: Option<SectionType>,
    // Realm options the Perl side applies (user.cfg, TFA, realm sync, the UI): known, not read here.
    #[serde(default)]
    autocreate: IgnoredAny,
    #[serde(default)]
    groups_autocreate: IgnoredAny,
    #[serde(default)]
    groups_sync: IgnoredAny,
    #[serde(default)]
    default: IgnoredAny,
    #[serde(default)]
    comment: IgnoredAny,
    #[serde(default)]
    tfa: IgnoredAny,
    #[serde(default)]
    sync_defaults_options: IgnoredAny,
    // Only the Perl side knows these: the credential in /etc/pve/priv, datacenter.cfg's proxy.
    #[serde(rename = "client_secret_file")]
    secret_file: Option<String>,
    /// The secret itself (tests and benchmarks).
    #[serde(rename = "client_secret")]
    secret: Option<String>,
    #[serde(rename = "client_cert_file")]
    cert_file: Option<String>,
    #[serde(rename = "client_key_file")]
    key_file: Option<String>,
    #[serde(rename = "http_proxy")]
    http_proxy: Option<String>,
    /// Tests: the emulator instead of the cloud's hosts, and short timeouts.
    #[serde(rename = "authority")]
    authority: Option<String>,
    #[serde(rename = "graph_url")]
    graph_url: Option<String>,
    #[serde(rename = "connect_timeout_ms")]
    connect_timeout_ms: Option<u64>,
    #[serde(rename = "timeout_ms")]
    timeout_ms: Option<u64>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Cloud {
    #[default]
    Public,
    Usgov,
    China,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum SectionType {
    Entraid,
}

/// A boolean as PVE's SectionConfig holds it (0 or 1); JSON `true`/`false` too.
#[derive(Default, Clone, Copy)]
struct PveBool(bool);

impl<'de> Deserialize<'de> for PveBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<PveBool, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PveBool;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean (0 or 1)")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> std::result::Result<PveBool, E> {
                Ok(PveBool(b))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> std::result::Result<PveBool, E> {
                match n {
                    0 | 1 => Ok(PveBool(n == 1)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Unsigned(n), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A verified domain as a tenant: it becomes a path segment of the authority URLs.
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

/// A list option as PVE's `split_list` reads it (`X-list` formats): separated by `,`, `;` or
/// white space.
fn pve_list(v: &Option<String>) -> impl Iterator<Item = &str> {
    v.as_deref().unwrap_or("").split([',', ';', '\0']).flat_map(str::split_whitespace)
}

/// An empty option is an unset one (SectionConfig keeps `prompt ` as the empty string).
fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Printable ASCII without spaces or characters that would break a URL parameter's meaning.
fn is_token_text(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && s.chars().all(|c| c.is_ascii_graphic())
}

impl RealmConfig {
    /// The `config` member of a request: its form through serde (an error names the member's
    /// path, never its value), its meaning through [`RealmConfig::from_section`].
    pub fn from_json(v: &Value) -> Result<RealmConfig> {
        RealmConfig::from_value(v.clone())
    }

    /// As [`RealmConfig::from_json`], taking the value (a request's own `config`: no copy).
    pub fn from_value(v: Value) -> Result<RealmConfig> {
        if !v.is_object() {
            return Err(invalid("config", "must be a JSON object (the realm's domains.cfg section)"));
        }
        RealmConfig::from_section(typed(v, Code::ConfigInvalid, "config.")?)
    }

    pub fn from_section(s: Section) -> Result<RealmConfig> {
        let allowed: Vec<String> = pve_list(&s.allowed_tenants).map(str::to_ascii_lowercase).collect();
        if allowed.iter().any(|t| !is_guid(t)) {
            return Err(invalid("allowed-tenants", "must list tenant GUIDs"));
        }
        let username_claim = s.username_claim.unwrap_or(UsernameClaim::Upn);
        let tenant = match s.tenant_id.to_ascii_lowercase().as_str() {
            t @ ("organizations" | "common") => {
                if allowed.is_empty() {
                    return Err(invalid("allowed-tenants", "is required when tenant-id is organizations or common"));
                }
                // Any allowed tenant's admin can set these to another tenant's user name (nOAuth).
                if matches!(username_claim, UsernameClaim::Email | UsernameClaim::PreferredUsername) {
                    return Err(invalid("username-claim", "must be upn or oid in an organizations or common realm: the others are editable in every tenant"));
                }
                Tenant::Multi { segment: t.to_string(), allowed }
            }
            "consumers" => return Err(invalid("tenant-id", "'consumers' (personal Microsoft accounts) is not supported")),
            t if is_guid(t) || is_domain(t) => Tenant::Single(t.to_string()),
            _ => return Err(invalid("tenant-id", "must be a tenant GUID, a verified domain, 'organizations' or 'common'")),
        };

        if !is_guid(&s.client_id) {
            return Err(invalid("client-id", "must be the application (client) ID, a GUID"));
        }

        let credential = match (set(&s.secret_file), set(&s.secret), set(&s.cert_file), set(&s.key_file)) {
            (Some(f), None, None, None) => Credential::SecretFile(f.to_string()),
            (None, Some(v), None, None) => Credential::Secret(v.to_string()),
            (None, None, Some(c), Some(k)) => Credential::Certificate { cert_file: c.to_string(), key_file: k.to_string() },
            (None, None, Some(_), None) => return Err(invalid("client_key_file", "is required with client_cert_file")),
            (None, None, None, Some(_)) => return Err(invalid("client_cert_file", "is required with client_key_file")),
            (None, None, None, None) => {
                return Err(invalid("client_secret_file", "or client_cert_file/client_key_file is required"))
            }
            _ => return Err(invalid("client_secret_file", "conflicts: configure exactly one client credential")),
        };

        let (default_authority, default_graph) = match s.cloud {
            Cloud::Public => (PUBLIC_AUTHORITY, PUBLIC_GRAPH),
            Cloud::Usgov => (USGOV_AUTHORITY, USGOV_GRAPH),
            Cloud::China => (CHINA_AUTHORITY, CHINA_GRAPH),
        };
        let authority = match set(&s.authority) {
            Some(a) => origin("authority", a)?,
            None => default_authority.to_string(),
        };
        let graph_url = match set(&s.graph_url) {
            Some(g) => origin("graph_url", g)?,
            None => default_graph.to_string(),
        };

        // Without the option: the default PVE shows for it (openid's `email profile`).
        let mut scopes: Vec<&str> = set(&s.scopes).unwrap_or("email profile").split_whitespace().collect();
        if scopes.iter().any(|s| !is_token_text(s)) {
            return Err(invalid("scopes", "must be scope names separated by spaces"));
        }
        if !scopes.contains(&"openid") {
            scopes.insert(0, "openid");
        }
        scopes.dedup();

        let prompt = match set(&s.prompt) {
            None => None,
            Some(p @ ("login" | "select_account" | "consent" | "none")) => Some(p.to_string()),
            Some(_) => return Err(invalid("prompt", "must be login, select_account, consent or none")),
        };
        let acr_values = match set(&s.acr_values) {
            Some(a) if a.split(' ').all(is_token_text) => Some(a.to_string()),
            Some(_) => return Err(invalid("acr-values", "must be printable values separated by spaces")),
            None => None,
        };
        let http_proxy = match set(&s.http_proxy) {
            Some(p) if (p.starts_with("http://") || p.starts_with("https://")) && is_token_text(p) => Some(p.to_string()),
            Some(_) => return Err(invalid("http_proxy", "must be an http://host:port URL")),
            None => None,
        };

        // `<group GUID or app role>=<PVE group>` pairs (format `pve-entraid-groups-map`).
        let mut groups_map = BTreeMap::new();
        for entry in pve_list(&s.groups_map) {
            match entry.split_once('=') {
                Some((k, g)) if !k.is_empty() && !g.is_empty() => groups_map.insert(normalize_group_key(k), g.to_string()),
                _ => return Err(invalid("groups-map", "must be '<group GUID or app role>=<PVE group>' pairs separated by ';'")),
            };
        }

        // `<app role>=<PVE user>[:<PVE group>...]` entries (format `pve-entraid-workload-map`),
        // the key as a groups-map key (tenant-scoped `<tenant GUID>:<role>` too)
        let mut workload_map = BTreeMap::new();
        for entry in pve_list(&s.workload_map) {
            let bad = || invalid("workload-map", "must be '<app role>=<PVE user>[:<PVE group>...]' entries separated by ';'");
            let (k, v) = entry.split_once('=').ok_or_else(bad)?;
            let mut parts = v.split(':');
            let user = parts.next().filter(|u| !u.is_empty()).ok_or_else(bad)?.to_string();
            let groups: Vec<String> = parts.map(str::to_string).collect();
            if k.is_empty() || groups.iter().any(String::is_empty) {
                return Err(bad());
            }
            if workload_map.insert(normalize_group_key(k), WorkloadTarget { user, groups }).is_some() {
                return Err(invalid("workload-map", "names an app role twice"));
            }
        }
        let client_id = s.client_id.to_ascii_lowercase();
        let mut workload_audiences = vec![client_id.clone(), format!("api://{client_id}")];
        match set(&s.app_id_uri) {
            Some(u) if u.contains("://") && is_token_text(u) && u.len() <= 256 => workload_audiences.push(u.to_ascii_lowercase()),
            Some(_) => return Err(invalid("app-id-uri", "must be the app's Application ID URI, e.g. api://pve.contoso.example")),
            None => {}
        }

        let ms = |field: &str, v: Option<u64>, default: u64, max: u64| match v.unwrap_or(default) {
            ms @ 100.. if ms <= max => Ok(Duration::from_millis(ms)),
            _ => Err(invalid(field, &format!("must be between 100 and {max} ms"))),
        };
        Ok(RealmConfig {
            tenant,
            client_id,
            credential,
            authority,
            graph_url,
            scopes: scopes.join(" "),
            username_claim,
            prompt,
            acr_values,
            http_proxy,
            connect_timeout: ms("connect_timeout_ms", s.connect_timeout_ms, 5_000, 60_000)?,
            timeout: ms("timeout_ms", s.timeout_ms, 15_000, 120_000)?,
            groups_map,
            required_groups: pve_list(&s.required_groups).map(normalize_group_key).collect(),
            allow_guests: s.allow_guests.0,
            allow_loopback_redirect: s.allow_loopback_redirect.0,
            sync_users: s.sync_users,
            workload_map,
            workload_audiences,
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
        json!({"type": "entraid", "tenant-id": "11111111-2222-3333-4444-555555555555",
               "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
               "client_secret_file": "/etc/pve/priv/entraid/entra.secret"})
    }

    fn with(patch: Value) -> Result<RealmConfig> {
        let mut v = base();
        for (k, val) in patch.as_object().unwrap() {
            if val.is_null() {
                v.as_object_mut().unwrap().remove(k);
            } else {
                v[k] = val.clone();
            }
        }
        RealmConfig::from_json(&v)
    }

    #[test]
    fn defaults() {
        let c = RealmConfig::from_json(&base()).unwrap();
        assert_eq!(c.authority, PUBLIC_AUTHORITY);
        assert_eq!(c.graph_url, PUBLIC_GRAPH);
        assert_eq!(c.scopes, "openid email profile");
        assert_eq!(c.username_claim, UsernameClaim::Upn);
        assert_eq!(c.timeout, Duration::from_secs(15));
        assert!(!c.allow_guests);
        assert!(!c.allow_loopback_redirect);
        assert_eq!(
            c.discovery_url(),
            "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0/.well-known/openid-configuration"
        );
    }

    #[test]
    fn clouds_and_authority() {
        assert_eq!(with(json!({"cloud": "usgov"})).unwrap().graph_url, USGOV_GRAPH);
        assert_eq!(with(json!({"cloud": "china"})).unwrap().authority, CHINA_AUTHORITY);
        let c = with(json!({"cloud": "china", "authority": "http://127.0.0.1:8400/"})).unwrap();
        assert_eq!(c.authority, "http://127.0.0.1:8400");
        assert!(c.allows_http());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            (json!({"tenant-id": null}), "`config.tenant-id` is required"),
            (json!({"tenant-id": "not a tenant"}), "`tenant-id`"),
            (json!({"tenant-id": "organizations"}), "`allowed-tenants`"),
            (json!({"tenant-id": "common", "allowed-tenants": "x"}), "`allowed-tenants`"),
            (json!({"tenant-id": "common", "allowed-tenants": "11111111-2222-3333-4444-555555555555", "username-claim": "email"}), "`username-claim`"),
            (json!({"client-id": "app"}), "`client-id`"),
            (json!({"client_secret": "v"}), "conflicts"),
            (json!({"client_secret_file": null}), "`client_secret_file`"),
            (json!({"cloud": "mars"}), "`config.cloud` must be one of"),
            (json!({"authority": "http://login.example.com"}), "`authority`"),
            (json!({"authority": "https://h/x?y"}), "`authority`"),
            (json!({"graph_url": "ftp://x"}), "`graph_url`"),
            (json!({"username-claim": "sub"}), "`config.username-claim` must be one of"),
            (json!({"prompt": "always"}), "`prompt`"),
            (json!({"http_proxy": "proxy:3128"}), "`http_proxy`"),
            (json!({"timeout_ms": 5}), "`timeout_ms`"),
            (json!({"connect_timeout_ms": "abc"}), "`config.connect_timeout_ms` must be"),
            (json!({"groups-map": "g"}), "`groups-map`"),
            (json!({"allow-guests": "yes"}), "`config.allow-guests` must be a boolean (0 or 1)"),
            (json!({"allow-guests": 2}), "`config.allow-guests` must be a boolean (0 or 1)"),
            (json!({"scopes": 5}), "`config.scopes` must be a string"),
            (json!({"type": "openid"}), "`config.type` must be"),
            // the second forms of earlier versions are gone: one form per option
            (json!({"allowed-tenants": ["11111111-2222-3333-4444-555555555555"]}), "`config.allowed-tenants` must be a string"),
            (json!({"groups-map": {"g": "admins"}}), "`config.groups-map` must be a string"),
            (json!({"sync-users": "all"}), "`config.sync-users` must be `mapped` or `assigned`"),
            (json!({"workload-map": "Deploy.Pve"}), "`workload-map`"),
            (json!({"workload-map": "Deploy.Pve=:ci"}), "`workload-map`"),
            (json!({"workload-map": "Deploy.Pve=ci-deploy:"}), "`workload-map`"),
            (json!({"workload-map": "A=u;A=v"}), "`workload-map`"),
            (json!({"app-id-uri": "pve"}), "`app-id-uri`"),
        ];
        for (patch, field) in cases {
            let e = with(patch.clone()).unwrap_err();
            assert_eq!(e.code, Code::ConfigInvalid, "{patch}");
            assert!(e.message.contains(field), "{patch}: {}", e.message);
        }
    }

    #[test]
    fn an_unknown_option_is_named() {
        for name in ["tenant", "groups_map", "client-key", "allow_guests"] {
            let e = with(json!({name: "x"})).unwrap_err();
            assert_eq!(e.code, Code::ConfigInvalid);
            assert_eq!(e.message, format!("`config.{name}` is not a known member"));
        }
        // the options the Perl side applies are known
        with(json!({"autocreate": 1, "groups-sync": 1, "groups-autocreate": 0, "comment": "c", "default": 0,
                    "tfa": "type=oath", "sync-defaults-options": "scope=both"})).unwrap();
    }

    #[test]
    fn a_secret_in_a_wrong_place_is_not_echoed() {
        const SECRET: &str = "s3cr~et.Value_with~tilde";
        for patch in [
            json!({"allow-guests": SECRET}),
            json!({"cloud": SECRET}),
            json!({"username-claim": SECRET}),
            json!({"timeout_ms": SECRET}),
            json!({"client_secret": SECRET, "client_secret_file": null, "client_cert_file": "/c"}),
            json!({"client_secret": 12345678}),
        ] {
            let e = with(patch.clone()).unwrap_err();
            assert!(!e.message.contains("s3cr") && !e.message.contains("12345678"), "{patch}: {}", e.message);
        }
        assert!(!format!("{:?}", Credential::Secret(SECRET.into())).contains("s3cr"));
    }

    #[test]
    fn multi_tenant_and_certificates() {
        let c = with(json!({"tenant-id": "Organizations", "allowed-tenants": "11111111-2222-3333-4444-55555555555A, 22222222-2222-3333-4444-555555555555",
                            "client_secret_file": null, "client_cert_file": "/c.crt", "client_key_file": "/c.key"})).unwrap();
        assert_eq!(
            c.tenant,
            Tenant::Multi {
                segment: "organizations".into(),
                allowed: vec!["11111111-2222-3333-4444-55555555555a".into(), "22222222-2222-3333-4444-555555555555".into()]
            }
        );
        assert!(matches!(c.credential, Credential::Certificate { .. }));
        let c = with(json!({"tenant-id": "contoso.onmicrosoft.com"})).unwrap();
        assert_eq!(c.tenant, Tenant::Single("contoso.onmicrosoft.com".into()));
    }

    #[test]
    fn pve_forms_scopes_and_booleans() {
        let c = with(json!({"scopes": "profile email", "allow-guests": 1,
                            "groups-map": "6F7E8D9C-1111-4111-8111-000000000001=admins;PVE.Admin=admins",
                            "required-groups": "a,b;c"})).unwrap();
        assert_eq!(c.scopes, "openid profile email");
        assert!(c.allow_guests);
        assert_eq!(c.groups_map.get("6f7e8d9c-1111-4111-8111-000000000001").unwrap(), "admins");
        assert!(c.groups_map.contains_key("PVE.Admin"));
        assert_eq!(c.required_groups, ["a", "b", "c"]);
        assert!(!with(json!({"allow-guests": 0})).unwrap().allow_guests);
        assert_eq!(with(json!({})).unwrap().sync_users, SyncUsers::Mapped);
        assert_eq!(with(json!({"sync-users": "assigned"})).unwrap().sync_users, SyncUsers::Assigned);
        assert!(with(json!({"allow-guests": true})).unwrap().allow_guests);
        assert!(with(json!({"allow-loopback-redirect": 1})).unwrap().allow_loopback_redirect);
    }

    #[test]
    fn workload_map_and_audiences() {
        let c = with(json!({"workload-map": "Deploy.Pve=ci-deploy:ci:ops; Backup.Read=backup", "app-id-uri": "api://PVE.contoso.example"})).unwrap();
        assert_eq!(c.workload_map["Deploy.Pve"], WorkloadTarget { user: "ci-deploy".into(), groups: vec!["ci".into(), "ops".into()] });
        assert!(c.workload_map["Backup.Read"].groups.is_empty());
        assert_eq!(c.workload_audiences, ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "api://aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "api://pve.contoso.example"]);
        assert!(with(json!({})).unwrap().workload_map.is_empty());
    }
}
