//! The ID token Entra issues for a code redemption (v2.0; v1.0 as a tamper), and its tampered
//! variants. Which claims a token carries is [`CLAIMS`], Entra's documented claim sets.

use crate::config::{OptionalClaims, User};
use crate::jwt::{encode_part, hmac_sha256, signing_input};
use crate::state::{CodeGrant, Shared, Tamper};
use crate::util::{b64url, now, random_guid, random_token, sha256};
use serde_json::{json, Map, Value};

/// ID token lifetime; Entra's is about an hour.
pub const LIFETIME: u64 = 3600;

/// Entra's pairwise `sub`: stable per (app, user), different across apps.
pub fn pairwise_sub(client_id: &str, oid: &str) -> String {
    b64url(&sha256(
        format!(
            "{}:{}",
            client_id.to_ascii_lowercase(),
            oid.to_ascii_lowercase()
        )
        .as_bytes(),
    ))
}

/// The token format: the endpoint's version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// When Entra puts a claim into an ID token of a user sign-in (authorization code flow, token
/// endpoint). A claim it would issue is still left out when the user has no value for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Issued {
    Never,
    Always,
    /// With this scope in the request.
    Scope(&'static str),
    /// Only as an optional claim of the app registration.
    Optional,
    /// Only for guests.
    Guests,
    /// By default for guests; for members as an optional claim, or with this scope.
    GuestsOrOptional(Option<&'static str>),
    /// By default for members; for guests only as an optional claim with the property
    /// `include_externally_authenticated_upn` (then the guest's `#EXT#` UPN).
    MembersOrExternalUpn,
    /// As an optional claim: for members; for guests only with the property
    /// `include_externally_authenticated_upn`.
    OptionalExternalUpn,
    /// When the user holds some (groups: the app's groups claim; over the limit the overage
    /// claims `_claim_names`/`_claim_sources` instead).
    Held,
}

/// `(claim, v1.0, v2.0)`: Entra's ID token claim sets. Sources: Microsoft's "ID token claims
/// reference" and "Optional claims reference" (v2.0 leaves out `upn`, `given_name`,
/// `family_name`, `ipaddr` unless they are optional claims; `email` is default for guests
/// only; `unique_name`, `amr` are v1.0's), checked against the captured tokens in
/// tests/fixtures/entra (id-token-v1-2016.jwt, id-token-v2-2016.jwt).
pub const CLAIMS: &[(&str, Issued, Issued)] = {
    use Issued::*;
    &[
        ("aud", Always, Always),
        ("iss", Always, Always),
        ("iat", Always, Always),
        ("nbf", Always, Always),
        ("exp", Always, Always),
        ("aio", Always, Always),
        ("rh", Always, Always),
        ("uti", Always, Always),
        ("ver", Always, Always),
        ("tid", Always, Always),
        ("sub", Always, Always),
        ("nonce", Always, Always),
        ("oid", Always, Scope("profile")),
        ("name", Always, Scope("profile")),
        ("preferred_username", Optional, Scope("profile")),
        ("unique_name", Always, Never),
        ("upn", MembersOrExternalUpn, OptionalExternalUpn),
        ("email", GuestsOrOptional(None), GuestsOrOptional(Some("email"))),
        ("given_name", Always, Optional),
        ("family_name", Always, Optional),
        ("amr", Always, Never),
        ("ipaddr", Always, Optional),
        ("idp", Guests, Guests),
        ("acct", Optional, Optional),
        ("groups", Held, Held),
        ("_claim_names", Held, Held),
        ("_claim_sources", Held, Held),
        ("roles", Held, Held),
    ]
};

const EXTERNAL_UPN: &str = "include_externally_authenticated_upn";

/// What decides the claim set of one token.
pub struct Context<'a> {
    pub version: Version,
    pub guest: bool,
    /// The granted scopes, space separated.
    pub scope: &'a str,
    pub optional: &'a OptionalClaims,
}

impl Issued {
    /// Whether Entra issues the claim `name` (a [`CLAIMS`] row with this rule) in `ctx`.
    pub fn applies(self, name: &str, ctx: &Context) -> bool {
        let scope = |s: &str| ctx.scope.split(' ').any(|x| x == s);
        let optional = ctx.optional.id_token_claim(name);
        let external = || optional.is_some_and(|c| c.additional_properties.iter().any(|p| p == EXTERNAL_UPN));
        match self {
            Issued::Never => false,
            Issued::Always | Issued::Held => true,
            Issued::Scope(s) => scope(s),
            Issued::Optional => optional.is_some(),
            Issued::Guests => ctx.guest,
            Issued::GuestsOrOptional(s) => ctx.guest || optional.is_some() || s.is_some_and(scope),
            Issued::MembersOrExternalUpn => if ctx.guest { external() } else { true },
            Issued::OptionalExternalUpn => if ctx.guest { external() } else { optional.is_some() },
        }
    }
}

/// The claim names Entra issues in `ctx` (before the user's values: one without a value is left
/// out, and the `Held` ones depend on the user's groups and roles).
pub fn claim_names(ctx: &Context) -> Vec<&'static str> {
    CLAIMS
        .iter()
        .filter(|(name, v1, v2)| match ctx.version {
            Version::V1 => v1.applies(name, ctx),
            Version::V2 => v2.applies(name, ctx),
        })
        .map(|(name, _, _)| *name)
        .collect()
}

pub fn claims(shared: &Shared, grant: &CodeGrant, user: &User, version: Version) -> Map<String, Value> {
    let t = now();
    let tid = &grant.tid;
    let optional = shared.optional_claims(&grant.client_id);
    // an external account (B2B guest, or a member made by cross-tenant sync) gets a guest's claims
    let ctx = Context { version, guest: user.acct == 1 || user.idp.is_some(), scope: &grant.scope, optional: &optional };
    let groups = shared.cfg.groups_of(user);
    let overage = groups.len() > shared.cfg.groups_overage_limit;
    let text = |s: &str| (!s.is_empty()).then(|| Value::from(s));
    let mut c = Map::new();
    for name in claim_names(&ctx) {
        let value = match name {
            "aud" => Some(grant.client_id.clone().into()),
            "iss" => Some(match version {
                // Shape of a v1.0 token (fixture SOURCES.txt #2): sts.windows.net issuer, trailing slash.
                Version::V1 => format!("https://sts.windows.net/{tid}/").into(),
                Version::V2 => format!("{}/{tid}/v2.0", shared.base_url).into(),
            }),
            "iat" | "nbf" => Some(t.into()),
            "exp" => Some((t + LIFETIME).into()),
            "aio" => Some(random_token(48).into()),
            "rh" => Some(format!("1.A{}", random_token(48)).into()),
            "uti" => Some(random_token(16).into()),
            "ver" => Some(match version { Version::V1 => "1.0", Version::V2 => "2.0" }.into()),
            "tid" => Some(tid.clone().into()),
            "sub" => Some(pairwise_sub(&grant.client_id, &user.oid).into()),
            "nonce" => Some(grant.nonce.clone().into()),
            "oid" => Some(user.oid.clone().into()),
            "name" => text(&user.name),
            "preferred_username" | "unique_name" => Some(user.sign_in_name().into()),
            "upn" => Some(user.upn.clone().into()),
            "email" => user.email.clone().map(Value::from),
            "given_name" => text(&user.given_name),
            "family_name" => text(&user.family_name),
            "amr" => Some(json!(["pwd"])),
            "ipaddr" => Some("127.0.0.1".into()),
            "idp" => user.idp.clone().map(Value::from),
            "acct" => Some(user.acct.into()),
            "groups" => (!overage && !groups.is_empty()).then(|| groups.clone().into()),
            // Entra's overage indicator; the endpoint is the legacy AAD Graph URL that clients
            // must not call (they use Microsoft Graph getMemberObjects instead).
            "_claim_names" => overage.then(|| json!({"groups": "src1"})),
            "_claim_sources" => overage.then(|| json!({"src1": {
                "endpoint": format!("https://graph.windows.net/{tid}/users/{}/getMemberObjects", user.oid)
            }})),
            "roles" => {
                let roles = match shared.cfg.app(&grant.client_id) {
                    Some(app) => shared.cfg.roles_of(user, app),
                    None => user.roles.clone(),
                };
                (!roles.is_empty()).then(|| roles.into())
            }
            other => unreachable!("claim {other} of CLAIMS has no value here"),
        };
        if let Some(v) = value {
            c.insert(name.into(), v);
        }
    }
    c
}

/// Signs the token, applying a one-shot tamper first.
pub fn issue(
    shared: &Shared,
    grant: &CodeGrant,
    user: &User,
    tamper: Option<Tamper>,
    rotations: usize,
) -> String {
    let version = if tamper == Some(Tamper::V1) { Version::V1 } else { Version::V2 };
    let mut c = claims(shared, grant, user, version);
    let t = now();
    let other = random_guid();
    let mut key = shared.keys.signing(rotations);
    match tamper {
        Some(Tamper::WrongIss) => {
            c.insert(
                "iss".into(),
                format!("{}/{other}/v2.0", shared.base_url).into(),
            );
        }
        Some(Tamper::WrongAud) => {
            c.insert("aud".into(), other.clone().into());
        }
        Some(Tamper::ExtraAud) => {
            c.insert("aud".into(), json!([grant.client_id, other]));
        }
        Some(Tamper::Expired) => {
            c.insert("iat".into(), (t - LIFETIME - 600).into());
            c.insert("nbf".into(), (t - LIFETIME - 600).into());
            c.insert("exp".into(), (t - 600).into());
        }
        Some(Tamper::NbfFuture) => {
            c.insert("nbf".into(), (t + 3600).into());
            c.insert("exp".into(), (t + 3600 + LIFETIME).into());
        }
        Some(Tamper::IatFuture) => {
            c.insert("iat".into(), (t + 3600).into());
        }
        Some(Tamper::NoNonce) => {
            c.remove("nonce");
        }
        Some(Tamper::WrongNonce) => {
            c.insert("nonce".into(), random_token(16).into());
        }
        Some(Tamper::WrongTid) => {
            c.insert("tid".into(), other.clone().into());
        }
        Some(Tamper::BadAzp) => {
            c.insert("azp".into(), other.clone().into());
        }
        Some(Tamper::UnknownKid) => key = shared.keys.held_back(rotations),
        _ => {}
    }
    let claims = Value::Object(c);
    let mut header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
    match tamper {
        Some(Tamper::AlgNone) => {
            header = json!({"typ": "JWT", "alg": "none"});
            return format!("{}.{}.", encode_part(&header), encode_part(&claims));
        }
        Some(Tamper::Hs256Pubkey) => {
            // Algorithm confusion: HMAC keyed with the published public key's PEM bytes.
            header = json!({"typ": "JWT", "alg": "HS256", "kid": key.kid});
            let input = signing_input(&header, &claims);
            let mac = hmac_sha256(key.public_pem.as_bytes(), input.as_bytes());
            return format!("{input}.{}", b64url(&mac));
        }
        Some(Tamper::NoKid) => {
            header = json!({"typ": "JWT", "alg": "RS256"});
        }
        _ => {}
    }
    let input = signing_input(&header, &claims);
    let mut sig = key.sign_rs256(input.as_bytes());
    if tamper == Some(Tamper::BadSignature) {
        sig[10] ^= 0x01;
    }
    format!("{input}.{}", b64url(&sig))
}
