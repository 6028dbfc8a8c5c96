//! The ID token Entra v2.0 issues for a code redemption, and its tampered variants.

use crate::config::User;
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

pub fn claims(shared: &Shared, grant: &CodeGrant, user: &User) -> Map<String, Value> {
    let t = now();
    let tid = &grant.tid;
    let mut c = Map::new();
    c.insert("aud".into(), grant.client_id.clone().into());
    c.insert(
        "iss".into(),
        format!("{}/{tid}/v2.0", shared.base_url).into(),
    );
    c.insert("iat".into(), t.into());
    c.insert("nbf".into(), t.into());
    c.insert("exp".into(), (t + LIFETIME).into());
    c.insert("name".into(), user.name.clone().into());
    c.insert("nonce".into(), grant.nonce.clone().into());
    c.insert("oid".into(), user.oid.clone().into());
    c.insert("preferred_username".into(), user.sign_in_name().into());
    c.insert("rh".into(), format!("1.A{}", random_token(48)).into());
    c.insert(
        "sub".into(),
        pairwise_sub(&grant.client_id, &user.oid).into(),
    );
    c.insert("tid".into(), tid.clone().into());
    c.insert("uti".into(), random_token(16).into());
    c.insert("ver".into(), "2.0".into());
    if let Some(email) = &user.email {
        c.insert("email".into(), email.clone().into());
    }
    c.insert("given_name".into(), user.given_name.clone().into());
    c.insert("family_name".into(), user.family_name.clone().into());
    c.insert("upn".into(), user.upn.clone().into());
    c.insert("acct".into(), user.acct.into());
    if let Some(idp) = &user.idp {
        c.insert("idp".into(), idp.clone().into());
    }
    let groups = shared.cfg.groups_of(user);
    if groups.len() > shared.cfg.groups_overage_limit {
        // Entra's overage indicator; the endpoint is the legacy AAD Graph URL that clients must
        // not call (they use Microsoft Graph getMemberObjects instead).
        c.insert("_claim_names".into(), json!({"groups": "src1"}));
        c.insert("_claim_sources".into(), json!({"src1": {
            "endpoint": format!("https://graph.windows.net/{tid}/users/{}/getMemberObjects", user.oid)
        }}));
    } else if !groups.is_empty() {
        c.insert("groups".into(), groups.into());
    }
    let roles = match shared.cfg.app(&grant.client_id) {
        Some(app) => shared.cfg.roles_of(user, app),
        None => user.roles.clone(),
    };
    if !roles.is_empty() {
        c.insert("roles".into(), roles.into());
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
    let mut c = claims(shared, grant, user);
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
        Some(Tamper::V1) => {
            // Shape of a v1.0 token (fixture SOURCES.txt #2): sts.windows.net issuer, trailing slash.
            c.insert(
                "iss".into(),
                format!("https://sts.windows.net/{}/", grant.tid).into(),
            );
            c.insert("ver".into(), "1.0".into());
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
