//! Workload token exchange: an Entra access token that a workload (managed identity, service
//! principal, federated credential) got for this realm's app with the client credentials grant,
//! validated as strictly as an ID token (`claims::validate_app_token`) and mapped to the PVE user
//! of its app role (`mapping::map_workload`). Anonymous: the client's budget first; the realm's
//! only for a token that passed every check, right before PVE's side does the expensive part
//! (user.cfg under its lock, the ticket's RSA signature). A token refused after its signature
//! verified is remembered as refused until it expires (`state::refuse_token`): a later change
//! (a role or a map entry added, a pin removed, the clock) never lets the same token in.

use serde_json::{json, Value};

use crate::claims::{self, AppExpected, CLOCK_SKEW_SECS};
use crate::error::{Code, Error, Result};
use crate::flow::discovery;
use crate::mapping;
use crate::ratelimit::{self, Bucket};
use crate::request::{invalid, Env, RefuseTokenMembers, Request, WorkloadTokenMembers};
use crate::state;

/// Entra's access tokens are 1.5 to 3 KB; a generous bound on work and memory.
pub const MAX_ACCESS_TOKEN: usize = 16 * 1024;
/// A refused token is remembered until it expires; Entra's tokens live a day at most (managed
/// identities'), so a later `exp` is not remembered past this.
const MAX_REFUSED_SECS: u64 = 7 * 24 * 3600;

/// Until when a refusal of a token that expires at `exp` is remembered: its expiry plus the
/// clock skew (the same for every presentation of the token: the store files it by that minute).
/// None when there is nothing to remember: no `exp` (refused for that, always), already expired
/// (refused as expired, always), or beyond any lifetime Entra gives.
fn refused_until(exp: Option<i64>, now: u64) -> Option<u64> {
    let until = u64::try_from(exp?.saturating_add(CLOCK_SKEW_SECS)).ok()?;
    (now < until && until <= now + MAX_REFUSED_SECS).then_some(until)
}

/// Whether a refusal is remembered: only one of a token that Entra issued in an accepted tenant
/// for this realm's app. Entra signs the tokens of every tenant, and for every app, with the same
/// keys: anyone with a tenant of their own gets as many distinct verifiable tokens as they like,
/// and remembering those would let anyone grow the store by one file per call.
fn remembered(e: &Error) -> bool {
    !matches!(e.code, Code::TokenVersion | Code::TokenIssuerMismatch | Code::TokenTenantNotAllowed | Code::TokenAudienceMismatch)
}

/// `{"userid", "username", "pve_groups", "managed_groups", "identity": {"tid", "oid"}, "roles", "azp",
/// "token_id", "refused_until"}`.
pub fn workload_token(req: &Request<WorkloadTokenMembers>, env: &Env) -> Result<Value> {
    let caller = req.body.caller();
    ratelimit::admit(&caller, Bucket::Address { realm: &req.realm })?;
    if req.cfg.workload_map.is_empty() {
        return Err(Error::new(Code::AccessDenied, "the realm has no workload-map: it exchanges no workload tokens"));
    }
    let token = req.body.access_token.as_str();
    if token.is_empty() || token.len() > MAX_ACCESS_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::new(Code::TokenMalformed, "access token is not a JWT of at most 16 KiB"));
    }
    let jws = claims::parse_app_token(token)?;
    let disc = discovery(req, env);
    let provider = disc.provider()?;
    // cached keys; a fetch on an unknown kid at most once per 5 minutes (discovery)
    let jwk = disc.key(jws.kid().unwrap_or_default())?;
    claims::verify_app_token_signature(&jws, &jwk)?;

    // Entra signed it: from here on, a refusal is remembered for this very token.
    let id = state::token_fingerprint(&req.realm, jws.signing_input());
    let until = refused_until(claims::expiry_of(&jws), env.now);
    let cache_dir = req.cache_dir.as_deref();
    if let Some(u) = until {
        if state::token_was_refused(cache_dir, &id, u, env.now)? {
            return Err(Error::new(Code::TokenRefusedBefore, "this access token was refused before; it stays refused until it expires: get a new one"));
        }
    }
    let expected = AppExpected { audiences: &req.cfg.workload_audiences, issuer: &provider.issuer, tenant: &req.cfg.tenant, now: env.now };
    let mapped = claims::validate_app_token(&jws, &jwk, &expected).and_then(|c| {
        let mut m = mapping::map_workload(&req.cfg, &req.realm, &c)?;
        m["azp"] = json!(c.azp);
        Ok(m)
    });
    let mut mapped = match mapped {
        Ok(m) => m,
        Err(e) => {
            if let (Some(until), true) = (until, remembered(&e)) {
                state::refuse_token(cache_dir, &id, until, env.now)?;
            }
            return Err(e);
        }
    };
    // Only a valid token for a mapped role gets here: the realm's budget bounds what PVE's side
    // does next (user.cfg under its lock, an RSA-signed ticket), and junk cannot spend it.
    ratelimit::admit(&caller, Bucket::Realm(&req.realm))?;
    mapped["token_id"] = json!(id);
    // (a valid token has an `exp` within Entra's lifetimes: `until` is known)
    mapped["refused_until"] = json!(until);
    Ok(mapped)
}

/// Records a token that the library accepted and PVE's side refused (the user's pin, a
/// disabled user): the `token_id` and `refused_until` of its workload_token answer.
pub fn refuse_token(req: &Request<RefuseTokenMembers>, env: &Env) -> Result<Value> {
    let m = &req.body;
    if m.token_id.len() != 32 || !m.token_id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(invalid("`token_id` must be the token_id of a workload_token answer"));
    }
    if m.refused_until <= env.now || m.refused_until > env.now + MAX_REFUSED_SECS {
        return Err(invalid("`refused_until` must be the refused_until of a workload_token answer"));
    }
    state::refuse_token(req.cache_dir.as_deref(), &m.token_id, m.refused_until, env.now)?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_tokens_anyone_can_mint_are_not_remembered() {
        for code in [Code::TokenVersion, Code::TokenIssuerMismatch, Code::TokenTenantNotAllowed, Code::TokenAudienceMismatch] {
            assert!(!remembered(&Error::new(code, "x")), "{code:?}");
        }
        for code in [Code::TokenNotAppOnly, Code::TokenExpired, Code::TokenMissingClaim, Code::AccessDenied] {
            assert!(remembered(&Error::new(code, "x")), "{code:?}");
        }
    }

    #[test]
    fn a_refusal_is_remembered_until_the_token_expires() {
        assert_eq!(refused_until(Some(1000), 900), Some(1000 + CLOCK_SKEW_SECS as u64));
        assert_eq!(refused_until(Some(1000), 1000 + CLOCK_SKEW_SECS as u64), None, "expired: refused as such");
        assert_eq!(refused_until(None, 900), None);
        assert_eq!(refused_until(Some(-5), 900), None);
        assert_eq!(refused_until(Some(900 + 8 * 24 * 3600), 900), None, "beyond Entra's lifetimes");
    }
}
