//! ID-token validation with Entra's rules, and the claims we hand to PVE.
//! Order: structure and algorithm, signature (nothing is trusted before it), then version,
//! issuer (with the `{tenantid}` template and the key's own `issuer`), tenant allow-list,
//! audience, azp, times, nonce, required claims.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::config::Tenant;
use crate::discovery::Jwk;
use crate::error::{sanitize, Code, Error, Result};
use crate::jwt::{Jws, Member};

/// Allowed clock difference between this node and Entra.
pub const CLOCK_SKEW_SECS: i64 = 300;

pub const TENANT_TEMPLATE: &str = "{tenantid}";

/// What the token must match.
pub struct Expected<'a> {
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Issuer from discovery, possibly the `{tenantid}` template.
    pub issuer: &'a str,
    pub tenant: &'a Tenant,
    pub now: u64,
}

/// The claims out of a validated ID token (the `claims` object of a login answer).
/// Deserialize: the `map` entry point takes them back (members left out are empty).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Claims {
    pub oid: String,
    pub tid: String,
    pub sub: String,
    pub iss: String,
    pub preferred_username: Option<String>,
    pub upn: Option<String>,
    pub email: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    pub acct: Option<i64>,
    pub idp: Option<String>,
    /// `_claim_names.groups` is present: too many groups for the token, ask Graph.
    pub groups_overage: bool,
}

fn err(code: Code, msg: impl Into<String>) -> Error {
    Error::new(code, msg)
}

/// The claims we read, borrowed from the decoded payload (no JSON tree, no copy until the
/// validated claims are handed out). Unknown claims are skipped; a claim named twice makes the
/// token malformed.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(default, borrow)]
    ver: Member<'a>,
    #[serde(default, borrow)]
    tid: Member<'a>,
    #[serde(default, borrow)]
    iss: Member<'a>,
    #[serde(default, borrow)]
    aud: Member<'a>,
    #[serde(default, borrow)]
    azp: Member<'a>,
    #[serde(default)]
    exp: Member<'a>,
    #[serde(default)]
    nbf: Member<'a>,
    #[serde(default)]
    iat: Member<'a>,
    #[serde(default, borrow)]
    nonce: Member<'a>,
    #[serde(default, borrow)]
    oid: Member<'a>,
    #[serde(default, borrow)]
    sub: Member<'a>,
    #[serde(default, borrow)]
    preferred_username: Member<'a>,
    #[serde(default, borrow)]
    upn: Member<'a>,
    #[serde(default, borrow)]
    email: Member<'a>,
    #[serde(default, borrow)]
    name: Member<'a>,
    #[serde(default, borrow)]
    given_name: Member<'a>,
    #[serde(default, borrow)]
    family_name: Member<'a>,
    #[serde(default, borrow)]
    groups: Member<'a>,
    #[serde(default, borrow)]
    roles: Member<'a>,
    #[serde(default)]
    acct: Member<'a>,
    #[serde(default, borrow)]
    idp: Member<'a>,
    #[serde(default, borrow, rename = "_claim_names")]
    claim_names: Member<'a>,
    // access tokens (`validate_app_token`)
    #[serde(default, borrow)]
    scp: Member<'a>,
    #[serde(default, borrow)]
    idtyp: Member<'a>,
}

fn text(m: &Member) -> Option<String> {
    m.as_str().map(str::to_string)
}

fn string_list(m: Member) -> Vec<String> {
    match m {
        Member::List(strings, _) => strings.into_iter().map(Cow::into_owned).collect(),
        _ => Vec::new(),
    }
}

fn number(m: &Member, name: &str) -> Result<Option<i64>> {
    match m {
        Member::Absent => Ok(None),
        Member::Int(v) => Ok(Some(*v)),
        _ => Err(err(Code::TokenMalformed, format!("ID token claim `{name}` is not a number"))),
    }
}

/// `template` with every `{tenantid}` replaced by `tid` equals `iss`, without building it
/// (the common case: one placeholder, or none).
fn issuer_matches(template: &str, tid: &str, iss: &str) -> bool {
    match template.split_once(TENANT_TEMPLATE) {
        None => template == iss,
        Some((pre, post)) if !post.contains(TENANT_TEMPLATE) => {
            iss.len() == pre.len() + tid.len() + post.len()
                && iss.starts_with(pre)
                && iss.ends_with(post)
                && &iss[pre.len()..pre.len() + tid.len()] == tid
        }
        Some(_) => template.replace(TENANT_TEMPLATE, tid) == iss,
    }
}

/// `iss` has `/<tid>/` as a path segment, ASCII case-insensitively.
fn issuer_names_tenant(iss: &str, tid: &str) -> bool {
    let (iss, n) = (iss.as_bytes(), tid.len());
    iss.len() >= n + 2
        && iss.windows(n + 2).any(|w| w[0] == b'/' && w[n + 1] == b'/' && w[1..=n].eq_ignore_ascii_case(tid.as_bytes()))
}

/// Validates `token`; `key_for(kid)` returns the tenant's key (refetching JWKS if needed).
/// The steps run in the order of the module comment; nothing of the payload is read before
/// the signature is verified.
pub fn validate(token: &str, expected: &Expected, key_for: &dyn Fn(&str) -> Result<Jwk>) -> Result<Claims> {
    let jws = Jws::parse(token)?;
    let jwk = verify_signature(&jws, key_for)?;
    let p: Payload = jws.payload()?;
    check_version(&p)?;
    let (tid, iss) = check_issuer(&p, &jwk, expected.issuer, expected.tenant).map(|(t, i)| (t.to_string(), i.to_string()))?;
    check_audience(&p, expected)?;
    check_times(&p, expected.now as i64, "ID token")?;
    check_nonce(&p, expected)?;
    claims_of(p, tid, iss)
}

/// RS256 only, the key named by `kid`, a valid signature: the key that signed.
fn verify_signature(jws: &Jws, key_for: &dyn Fn(&str) -> Result<Jwk>) -> Result<Jwk> {
    match jws.alg() {
        Some("RS256") => {}
        Some(alg) => {
            return Err(err(Code::TokenUnsupportedAlg, format!("ID token algorithm '{}' is not accepted (RS256 only)", sanitize(alg))))
        }
        None => return Err(err(Code::TokenUnsupportedAlg, "ID token has no algorithm")),
    }
    let kid = jws.kid().ok_or_else(|| err(Code::TokenMalformed, "ID token header has no key id (kid)"))?;
    let jwk = key_for(kid)?;
    jws.verify_rs256(&jwk.key)?;
    Ok(jwk)
}

/// v1.0 tokens (sts.windows.net issuer) have other claim semantics: refuse them.
fn check_version(p: &Payload) -> Result<()> {
    if p.ver.as_str() != Some("2.0") {
        return Err(err(
            Code::TokenVersion,
            "ID token is not a v2.0 token (set accessTokenAcceptedVersion/ use the v2.0 endpoints)",
        )
        .with_hint("the realm must use the v2.0 endpoints; v1 tokens from sts.windows.net are refused"));
    }
    Ok(())
}

/// The issuer (template, the tenant in its path, the key's own issuer) and the tenant
/// allow-list: the token's `tid` and `iss`.
fn check_issuer<'p>(p: &'p Payload, jwk: &Jwk, issuer: &str, tenant: &Tenant) -> Result<(&'p str, &'p str)> {
    let tid = p.tid.as_str().ok_or_else(|| err(Code::TokenMissingClaim, "ID token has no `tid` claim"))?;
    let iss = p.iss.as_str().unwrap_or_default();
    if !issuer_matches(issuer, tid, iss) {
        let expected_iss = issuer.replace(TENANT_TEMPLATE, tid);
        return Err(err(
            Code::TokenIssuerMismatch,
            format!("ID token issuer '{}' is not the expected '{}'", sanitize(iss), sanitize(&expected_iss)),
        ));
    }
    if !issuer_names_tenant(iss, tid) {
        // The tenant id we pin identities to must be the tenant of the issuer.
        return Err(err(Code::TokenIssuerMismatch, "ID token `tid` is not the tenant of its issuer"));
    }
    if let Some(key_issuer) = &jwk.issuer {
        // Entra's per-key issuer ties a signing key to its tenant (e.g. MSA keys in /common).
        if !issuer_matches(key_issuer, tid, iss) {
            return Err(err(Code::TokenIssuerMismatch, "ID token was signed by a key of another issuer"));
        }
    }
    if let Tenant::Multi { allowed, .. } = tenant {
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(tid)) {
            return Err(err(
                Code::TokenTenantNotAllowed,
                format!("tenant {} is not in the realm's allowed-tenants", sanitize(tid)),
            ));
        }
    }
    Ok((tid, iss))
}

/// Entra ID tokens name exactly one audience: our client id. Anything else is refused; so is
/// an authorized party (azp) other than us.
fn check_audience(p: &Payload, expected: &Expected) -> Result<()> {
    let aud_ok = match &p.aud {
        Member::Str(a) => a.eq_ignore_ascii_case(expected.client_id),
        Member::List(a, len) => *len == 1 && a.len() == 1 && a[0].eq_ignore_ascii_case(expected.client_id),
        _ => false,
    };
    if !aud_ok {
        return Err(err(Code::TokenAudienceMismatch, "ID token audience is not this realm's client id"));
    }
    if !matches!(p.azp, Member::Absent) && !p.azp.as_str().is_some_and(|s| s.eq_ignore_ascii_case(expected.client_id)) {
        return Err(err(Code::TokenAzpMismatch, "ID token authorized party (azp) is not this realm's client id"));
    }
    Ok(())
}

/// `exp`, `nbf` and `iat` against this node's clock, with [`CLOCK_SKEW_SECS`] either way.
fn check_times(p: &Payload, now: i64, kind: &str) -> Result<()> {
    let exp = number(&p.exp, "exp")?.ok_or_else(|| err(Code::TokenMissingClaim, format!("{kind} has no `exp` claim")))?;
    if now > exp.saturating_add(CLOCK_SKEW_SECS) {
        return Err(err(Code::TokenExpired, format!("{kind} has expired (check this node's clock if this repeats)")));
    }
    if let Some(nbf) = number(&p.nbf, "nbf")? {
        if now + CLOCK_SKEW_SECS < nbf {
            return Err(err(Code::TokenNotYetValid, format!("{kind} is not valid yet (check this node's clock)")));
        }
    }
    let iat = number(&p.iat, "iat")?.ok_or_else(|| err(Code::TokenMissingClaim, format!("{kind} has no `iat` claim")))?;
    if iat > now + CLOCK_SKEW_SECS {
        return Err(err(Code::TokenIssuedInFuture, format!("{kind} was issued in the future (check this node's clock)")));
    }
    Ok(())
}

/// The nonce sealed into this login's state.
fn check_nonce(p: &Payload, expected: &Expected) -> Result<()> {
    match p.nonce.as_str() {
        None => Err(err(Code::TokenNonceMissing, "ID token carries no nonce")),
        Some(n) if n != expected.nonce => Err(err(Code::TokenNonceMismatch, "ID token nonce does not match this login")),
        Some(_) => Ok(()),
    }
}

/// What a workload's access token must match (`validate_app_token`).
pub struct AppExpected<'a> {
    /// The realm's client id, `api://<client id>` and the configured `app-id-uri`, lower case.
    pub audiences: &'a [String],
    /// Issuer from discovery, possibly the `{tenantid}` template.
    pub issuer: &'a str,
    pub tenant: &'a Tenant,
    pub now: u64,
}

/// The claims of a validated app-only access token: the service principal (`oid`) of tenant
/// `tid`, the client app that asked for the token (`azp`), its app roles, and its expiry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct AppClaims {
    pub tid: String,
    pub oid: String,
    pub azp: String,
    pub roles: Vec<String>,
    pub exp: i64,
}

/// The part of an access token's validation that needs no key: its structure, `alg` and `kid`.
/// Then [`validate_app_token`] with the key.
pub fn parse_app_token(token: &str) -> Result<Jws<'_>> {
    let jws = Jws::parse(token)?;
    if jws.alg() != Some("RS256") {
        return Err(err(Code::TokenUnsupportedAlg, "access token algorithm is not RS256"));
    }
    if jws.kid().is_none() {
        return Err(err(Code::TokenMalformed, "access token header has no key id (kid)"));
    }
    Ok(jws)
}

/// The access token's expiry as it says (for the store of refused tokens; read only after the
/// signature verified).
pub fn expiry_of(jws: &Jws) -> Option<i64> {
    let p: Payload = jws.payload().ok()?;
    number(&p.exp, "exp").ok().flatten()
}

/// The signature of `jws` by `jwk` (the tenant's key named by its `kid`): nothing of the
/// payload is read before.
pub fn verify_app_token_signature(jws: &Jws, jwk: &Jwk) -> Result<()> {
    jws.verify_rs256(&jwk.key).map_err(|_| err(Code::TokenBadSignature, "access token signature does not verify"))
}

/// Validates a workload's access token as strictly as an ID token (same keys, issuer rules,
/// tenant allow-list and clock skew): a v2.0 token for this app (`aud`: one of `audiences`),
/// app-only (no `scp`, `idtyp` absent or `app`, `sub` = `oid`: a service principal), naming
/// the client app (`azp`). v1.0 tokens (issuer sts.windows.net, `appid`) are refused: the app's
/// manifest sets which version Entra issues for it (`requestedAccessTokenVersion`).
/// Call it only after [`verify_app_token_signature`] succeeded with the same key.
pub fn validate_app_token(jws: &Jws, jwk: &Jwk, expected: &AppExpected) -> Result<AppClaims> {
    let p: Payload = jws.payload()?;
    if p.ver.as_str() != Some("2.0") {
        return Err(err(Code::TokenVersion, "access token is not a v2.0 token (a v1.0 token from sts.windows.net with `appid`?)")
            .with_hint("set requestedAccessTokenVersion to 2 in the manifest of the realm's app registration (API: api.requestedAccessTokenVersion)"));
    }
    let (tid, _) = check_issuer(&p, jwk, expected.issuer, expected.tenant)?;
    let aud_ok = match &p.aud {
        Member::Str(a) => expected.audiences.iter().any(|x| a.eq_ignore_ascii_case(x)),
        _ => false,
    };
    if !aud_ok {
        return Err(err(Code::TokenAudienceMismatch, "access token audience is not this realm's app (client id or Application ID URI)"));
    }
    check_times(&p, expected.now as i64, "access token")?;
    let oid = text(&p.oid).ok_or_else(|| err(Code::TokenMissingClaim, "access token has no `oid` claim"))?;
    let app_only = matches!(p.scp, Member::Absent)
        && p.idtyp.as_str().is_none_or(|t| t == "app")
        && matches!(p.idtyp, Member::Absent | Member::Str(_))
        && p.sub.as_str() == Some(oid.as_str());
    if !app_only {
        return Err(err(Code::TokenNotAppOnly, "access token is a delegated (user) token, not an app-only one of the client credentials grant"));
    }
    let azp = text(&p.azp).ok_or_else(|| err(Code::TokenMissingClaim, "access token has no `azp` claim"))?;
    let exp = number(&p.exp, "exp")?.unwrap_or_default();
    Ok(AppClaims { tid: tid.to_string(), oid, azp, roles: string_list(p.roles), exp })
}

/// The validated claims, owned; `oid` and `sub` are required.
fn claims_of(p: Payload, tid: String, iss: String) -> Result<Claims> {
    let required = |m: &Member, name: &str| text(m).ok_or_else(|| err(Code::TokenMissingClaim, format!("ID token has no `{name}` claim")));
    Ok(Claims {
        oid: required(&p.oid, "oid")?,
        sub: required(&p.sub, "sub")?,
        tid,
        iss,
        preferred_username: text(&p.preferred_username),
        upn: text(&p.upn),
        email: text(&p.email),
        name: text(&p.name),
        given_name: text(&p.given_name),
        family_name: text(&p.family_name),
        groups: string_list(p.groups),
        roles: string_list(p.roles),
        acct: number(&p.acct, "acct")?,
        idp: text(&p.idp),
        groups_overage: matches!(p.claim_names, Member::Object { has_groups: true }),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::jwt::{b64url, public_key, rsa_key_from_pem, sign_rs256};
    use ring::signature::RsaKeyPair;
    use serde_json::{json, Value};
    use std::sync::OnceLock;

    pub const TID: &str = "11111111-2222-3333-4444-555555555555";
    pub const CLIENT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    pub const NOW: u64 = 1_700_000_000;

    /// A fixed 2048-bit test key (the emulator's first signing key; ring cannot generate RSA keys).
    pub const TEST_KEY_PEM: &str = include_str!("../tests/emulator/keys/signing-1.key");

    pub fn test_key() -> &'static RsaKeyPair {
        static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
        KEY.get_or_init(|| rsa_key_from_pem(TEST_KEY_PEM).expect("PKCS#8 RSA test key"))
    }

    /// The test key as an Entra-shaped JWK (no alg).
    pub fn test_jwk_json(kid: &str, issuer: &str) -> Value {
        let k = public_key(test_key());
        json!({"kty": "RSA", "use": "sig", "kid": kid, "x5t": kid, "n": b64url(&k.n),
               "e": b64url(&k.e), "issuer": issuer, "cloud_instance_name": "microsoftonline.com"})
    }

    pub fn good_claims() -> Value {
        json!({"aud": CLIENT, "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
               "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600, "nonce": "n0nce", "ver": "2.0",
               "tid": TID, "oid": "0a1b2c3d-0000-4000-8000-00000000a11c", "sub": "pairwise-sub",
               "preferred_username": "alice@contoso.example", "name": "Alice", "groups": ["g1"], "roles": ["PVE.Admin"]})
    }

    pub fn sign(claims: &Value) -> String {
        sign_rs256(test_key(), &json!({"typ": "JWT", "alg": "RS256", "kid": "k1"}), claims)
    }

    fn keys(kid: &str) -> Result<Jwk> {
        let jwks = json!({"keys": [test_jwk_json("k1", "https://login.microsoftonline.com/{tenantid}/v2.0")]});
        crate::discovery::parse_jwks(&jwks)?
            .into_iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| err(Code::TokenUnknownKid, "unknown"))
    }

    fn multi() -> Tenant {
        Tenant::Multi { segment: "organizations".into(), allowed: vec![TID.into()] }
    }

    fn check(token: &str) -> Result<Claims> {
        let tenant = multi();
        let e = Expected { client_id: CLIENT, nonce: "n0nce", issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", tenant: &tenant, now: NOW };
        validate(token, &e, &keys)
    }

    fn code_of(patch: Value) -> Code {
        let mut c = good_claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        check(&sign(&c)).unwrap_err().code
    }

    #[test]
    fn a_good_token_gives_its_claims() {
        let c = check(&sign(&good_claims())).unwrap();
        assert_eq!(c.tid, TID);
        assert_eq!(c.preferred_username.as_deref(), Some("alice@contoso.example"));
        assert_eq!(c.roles, vec!["PVE.Admin"]);
        assert!(!c.groups_overage);
        let mut over = good_claims();
        over["_claim_names"] = json!({"groups": "src1"});
        over["_claim_sources"] = json!({"src1": {"endpoint": "https://graph.windows.net/x/getMemberObjects"}});
        assert!(check(&sign(&over)).unwrap().groups_overage);
    }

    #[test]
    fn skew_of_five_minutes_is_tolerated() {
        let mut c = good_claims();
        c["exp"] = json!(NOW - 299);
        c["nbf"] = json!(NOW + 299);
        c["iat"] = json!(NOW + 299);
        check(&sign(&c)).unwrap();
    }

    #[test]
    fn each_rule_has_its_code() {
        let iss = |t: &str| json!(format!("https://login.microsoftonline.com/{t}/v2.0"));
        let cases = [
            (json!({"exp": NOW - 301}), Code::TokenExpired),
            (json!({"exp": null}), Code::TokenMissingClaim),
            (json!({"exp": "soon"}), Code::TokenMalformed),
            (json!({"nbf": NOW + 301}), Code::TokenNotYetValid),
            (json!({"iat": NOW + 301}), Code::TokenIssuedInFuture),
            (json!({"nonce": null}), Code::TokenNonceMissing),
            (json!({"nonce": "other"}), Code::TokenNonceMismatch),
            (json!({"ver": "1.0", "iss": format!("https://sts.windows.net/{TID}/")}), Code::TokenVersion),
            (json!({"ver": null}), Code::TokenVersion),
            (json!({"iss": iss("99999999-2222-3333-4444-555555555555")}), Code::TokenIssuerMismatch),
            (json!({"iss": null}), Code::TokenIssuerMismatch),
            (json!({"tid": "99999999-2222-3333-4444-555555555555", "iss": iss("99999999-2222-3333-4444-555555555555")}), Code::TokenTenantNotAllowed),
            (json!({"tid": null}), Code::TokenMissingClaim),
            (json!({"aud": "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"}), Code::TokenAudienceMismatch),
            (json!({"aud": [CLIENT, "api://other"]}), Code::TokenAudienceMismatch),
            (json!({"aud": null}), Code::TokenAudienceMismatch),
            (json!({"azp": "bbbbbbbb-bbbb-cccc-dddd-eeeeeeeeeeee"}), Code::TokenAzpMismatch),
            (json!({"oid": null}), Code::TokenMissingClaim),
            (json!({"sub": null}), Code::TokenMissingClaim),
        ];
        for (patch, code) in cases {
            assert_eq!(code_of(patch.clone()), code, "{patch}");
        }
    }

    #[test]
    fn algorithm_and_signature_rules() {
        let claims = good_claims();
        let body = b64url(claims.to_string().as_bytes());
        let none = format!("{}.{body}.", b64url(br#"{"alg":"none","kid":"k1"}"#));
        assert_eq!(check(&none).unwrap_err().code, Code::TokenUnsupportedAlg);
        let hs = format!("{}.{body}.c2ln", b64url(br#"{"alg":"HS256","kid":"k1"}"#));
        assert_eq!(check(&hs).unwrap_err().code, Code::TokenUnsupportedAlg);
        let noalg = format!("{}.{body}.c2ln", b64url(br#"{"kid":"k1"}"#));
        assert_eq!(check(&noalg).unwrap_err().code, Code::TokenUnsupportedAlg);
        let nokid = sign_rs256(test_key(), &json!({"alg": "RS256"}), &claims);
        assert_eq!(check(&nokid).unwrap_err().code, Code::TokenMalformed);
        let other_kid = sign_rs256(test_key(), &json!({"alg": "RS256", "kid": "k9"}), &claims);
        assert_eq!(check(&other_kid).unwrap_err().code, Code::TokenUnknownKid);
        // Payload changed after signing.
        let good = sign(&claims);
        let mut parts: Vec<&str> = good.split('.').collect();
        let mut forged = claims.clone();
        forged["oid"] = json!("attacker");
        let forged_body = b64url(forged.to_string().as_bytes());
        parts[1] = &forged_body;
        assert_eq!(check(&parts.join(".")).unwrap_err().code, Code::TokenBadSignature);
        for bad in ["", "a.b", "a.b.c.d", "!!.??.##", &format!("{}.{body}.x", b64url(b"[1]"))] {
            assert_eq!(check(bad).unwrap_err().code, Code::TokenMalformed, "{bad}");
        }
    }

    /// A token over a payload given as text (which `serde_json::Value` could not hold).
    fn sign_text(header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64url(header.as_bytes()), b64url(payload.as_bytes()));
        let key = test_key();
        let mut sig = vec![0u8; key.public().modulus_len()];
        key.sign(&ring::signature::RSA_PKCS1_SHA256, &ring::rand::SystemRandom::new(), input.as_bytes(), &mut sig).unwrap();
        format!("{input}.{}", b64url(&sig))
    }

    #[test]
    fn typed_claims_keep_the_rules_of_the_json_tree() {
        let header = r#"{"alg":"RS256","kid":"k1"}"#;
        let good = good_claims().to_string();
        assert!(check(&sign_text(header, &good)).is_ok());
        // A claim named twice is ambiguous: refused, not "last one wins".
        let twice = good.replacen('{', r#"{"oid":"attacker","#, 1);
        assert_eq!(check(&sign_text(header, &twice)).unwrap_err().code, Code::TokenMalformed);
        // A header or payload that is a JSON array of the right values is still not an object.
        assert_eq!(check(&sign_text(r#"["RS256","k1"]"#, &good)).unwrap_err().code, Code::TokenMalformed);
        assert_eq!(check(&sign_text(header, "[1]")).unwrap_err().code, Code::TokenMalformed);
        // null is a present claim of the wrong type, not an absent one.
        for (patch, code) in [
            (json!({"exp": null}), Code::TokenMalformed),
            (json!({"azp": null}), Code::TokenAzpMismatch),
            (json!({"aud": [CLIENT, 5]}), Code::TokenAudienceMismatch),
            (json!({"oid": 5}), Code::TokenMissingClaim),
        ] {
            let mut c = good_claims();
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            assert_eq!(check(&sign(&c)).unwrap_err().code, code, "{patch}");
        }
        // Escaped strings are read as well as plain ones; non-string list items are skipped.
        let mut c = good_claims();
        c["preferred_username"] = json!("al\"ice\u{e9}");
        c["groups"] = json!(["g1", 2, null, "g2"]);
        let claims = check(&sign(&c)).unwrap();
        assert_eq!(claims.preferred_username.as_deref(), Some("al\"ice\u{e9}"));
        assert_eq!(claims.groups, vec!["g1", "g2"]);
    }

    const SP: &str = "5e5e5e5e-0000-4000-8000-000000000001";

    fn app_claims() -> Value {
        json!({"aud": format!("api://{CLIENT}"), "iss": format!("https://login.microsoftonline.com/{TID}/v2.0"),
               "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600, "ver": "2.0", "tid": TID, "oid": SP, "sub": SP,
               "azp": "cccccccc-0000-4000-8000-00000000c1c1", "azpacr": "1", "idtyp": "app", "roles": ["Deploy.Pve"],
               "uti": "u", "rh": "r", "aio": "a"})
    }

    fn check_app(c: &Value) -> Result<AppClaims> {
        let tenant = multi();
        let audiences = [CLIENT.to_string(), format!("api://{CLIENT}")];
        let e = AppExpected { audiences: &audiences, issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", tenant: &tenant, now: NOW };
        let jws = parse_app_token(Box::leak(sign(c).into_boxed_str()))?;
        let jwk = keys(jws.kid().unwrap())?;
        verify_app_token_signature(&jws, &jwk)?;
        validate_app_token(&jws, &jwk, &e)
    }

    #[test]
    fn an_app_only_access_token_gives_its_service_principal_and_roles() {
        let c = check_app(&app_claims()).unwrap();
        assert_eq!((c.tid.as_str(), c.oid.as_str(), c.roles.as_slice()), (TID, SP, &["Deploy.Pve".to_string()][..]));
        let mut bare = app_claims();
        bare.as_object_mut().unwrap().remove("idtyp"); // an optional claim in Entra
        bare["aud"] = json!(CLIENT);
        check_app(&bare).unwrap();
        let other = "99999999-2222-3333-4444-555555555555";
        for (patch, code) in [
            (json!({"aud": "api://other"}), Code::TokenAudienceMismatch),
            (json!({"aud": [format!("api://{CLIENT}")]}), Code::TokenAudienceMismatch),
            (json!({"scp": "user_impersonation"}), Code::TokenNotAppOnly),
            (json!({"idtyp": "user"}), Code::TokenNotAppOnly),
            (json!({"sub": "pairwise"}), Code::TokenNotAppOnly),
            (json!({"ver": "1.0", "iss": format!("https://sts.windows.net/{TID}/"), "appid": "c"}), Code::TokenVersion),
            (json!({"exp": NOW - 301}), Code::TokenExpired),
            (json!({"nbf": NOW + 301}), Code::TokenNotYetValid),
            (json!({"tid": other, "iss": format!("https://login.microsoftonline.com/{other}/v2.0")}), Code::TokenTenantNotAllowed),
            (json!({"iss": format!("https://login.microsoftonline.com/{other}/v2.0")}), Code::TokenIssuerMismatch),
            (json!({"azp": null}), Code::TokenMissingClaim),
            (json!({"oid": null}), Code::TokenMissingClaim),
        ] {
            let mut c = app_claims();
            for (k, v) in patch.as_object().unwrap() {
                if v.is_null() { c.as_object_mut().unwrap().remove(k); } else { c[k] = v.clone(); }
            }
            assert_eq!(check_app(&c).unwrap_err().code, code, "{patch}");
        }
        let e = check_app(&json!({"ver": "1.0", "iss": format!("https://sts.windows.net/{TID}/")})).unwrap_err();
        assert!(e.hint.unwrap().contains("requestedAccessTokenVersion"));
    }

    #[test]
    fn key_issuer_must_match_token_issuer() {
        // An MSA key from /common (issuer pinned to the MSA tenant) must not sign for our tenant.
        let jwks = json!({"keys": [test_jwk_json("k1", "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")]});
        let set = crate::discovery::parse_jwks(&jwks).unwrap();
        let tenant = multi();
        let e = Expected { client_id: CLIENT, nonce: "n0nce", issuer: "https://login.microsoftonline.com/{tenantid}/v2.0", tenant: &tenant, now: NOW };
        let r = validate(&sign(&good_claims()), &e, &|_| Ok(set[0].clone()));
        assert_eq!(r.unwrap_err().code, Code::TokenIssuerMismatch);
    }

    #[test]
    fn single_tenant_uses_the_concrete_issuer() {
        let tenant = Tenant::Single(TID.into());
        let issuer = format!("https://login.microsoftonline.com/{TID}/v2.0");
        let e = Expected { client_id: CLIENT, nonce: "n0nce", issuer: &issuer, tenant: &tenant, now: NOW };
        validate(&sign(&good_claims()), &e, &keys).unwrap();
        let mut other = good_claims();
        other["tid"] = json!("99999999-2222-3333-4444-555555555555");
        assert_eq!(validate(&sign(&other), &e, &keys).unwrap_err().code, Code::TokenIssuerMismatch);
    }
}
