//! The stable result codes, defined once: the number of each code (C ABI) is its discriminant in
//! [`pve_entraid_result`], its string (JSON) and the HTTP status PVE's API answers it with are its
//! row in the one exhaustive table below. Everything else is derived from these two: the C
//! header (cbindgen), `pve_entraid_result_code`, the `api_status` member the Perl side answers
//! with, and the table in docs/DESIGN.md (checked by tests/codes.rs).

/// Result of every JSON entry point: `PVE_ENTRAID_OK` (0) or the numeric value of an error code.
/// The numbers and their string codes are part of the ABI (docs/DESIGN.md) and never change.
#[allow(non_camel_case_types)] // the C name
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum pve_entraid_result {
    Ok = 0,
    RequestInvalid = 1,
    RequestTooLarge = 2,
    ConfigInvalid = 3,
    ConfigSecret = 4,
    RequestRateLimited = 5,
    RequestRedirectNotAllowed = 6,
    StateInvalid = 10,
    StateExpired = 11,
    StateReplayed = 12,
    StateRealmMismatch = 13,
    StateKey = 14,
    StateBindingMismatch = 15,
    IdpUnreachable = 20,
    IdpTimeout = 21,
    IdpBadResponse = 22,
    IdpError = 23,
    DiscoveryInvalid = 24,
    JwksInvalid = 25,
    IdpTls = 26,
    TokenMalformed = 30,
    TokenUnsupportedAlg = 31,
    TokenBadSignature = 32,
    TokenIssuerMismatch = 34,
    TokenAudienceMismatch = 35,
    TokenAzpMismatch = 36,
    TokenExpired = 37,
    TokenNotYetValid = 38,
    TokenIssuedInFuture = 39,
    TokenNonceMissing = 40,
    TokenNonceMismatch = 41,
    TokenVersion = 42,
    TokenTenantNotAllowed = 43,
    TokenMissingClaim = 44,
    TokenUnknownKid = 45,
    TokenNotAppOnly = 46,
    TokenRefusedBefore = 47,
    AccessDenied = 50,
    AccessGuest = 51,
    IdentityPinMismatch = 52,
    GraphError = 60,
    CacheIo = 70,
    InternalPanic = 90,
    InternalError = 91,
}

/// Shorter name used inside the crate.
pub use pve_entraid_result as Code;

/// Generates, from one list of rows, the exhaustive `match` (the compiler refuses a code without
/// a row or with two) and the list of all codes.
macro_rules! code_table {
    ($($variant:ident => $code:literal, $api_status:literal;)*) => {
        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The row of this code: string form with a NUL terminator (for C), API status.
            const fn row(self) -> (&'static str, u16) {
                match self {
                    $(Code::$variant => (concat!($code, "\0"), $api_status),)*
                }
            }
        }
    };
}

// string code (`family.detail`; the C name is `PVE_ENTRAID_` + its upper case with `_` for `.`),
// HTTP status of PVE's API answer: the caller's fault (4xx) or ours/the IdP's (5xx).
code_table! {
    Ok => "ok", 200;
    RequestInvalid => "request.invalid", 400;
    RequestTooLarge => "request.too_large", 400;
    ConfigInvalid => "config.invalid", 500;
    ConfigSecret => "config.secret", 500;
    RequestRateLimited => "request.rate_limited", 429;
    RequestRedirectNotAllowed => "request.redirect_not_allowed", 400;
    StateInvalid => "state.invalid", 400;
    StateExpired => "state.expired", 400;
    StateReplayed => "state.replayed", 400;
    StateRealmMismatch => "state.realm_mismatch", 400;
    StateKey => "state.key", 500;
    StateBindingMismatch => "state.binding_mismatch", 400;
    IdpUnreachable => "idp.unreachable", 503;
    IdpTimeout => "idp.timeout", 504;
    IdpBadResponse => "idp.bad_response", 502;
    IdpError => "idp.error", 401;
    DiscoveryInvalid => "discovery.invalid", 502;
    JwksInvalid => "jwks.invalid", 502;
    IdpTls => "idp.tls", 502;
    TokenMalformed => "token.malformed", 401;
    TokenUnsupportedAlg => "token.unsupported_alg", 401;
    TokenBadSignature => "token.bad_signature", 401;
    TokenIssuerMismatch => "token.issuer_mismatch", 401;
    TokenAudienceMismatch => "token.audience_mismatch", 401;
    TokenAzpMismatch => "token.azp_mismatch", 401;
    TokenExpired => "token.expired", 401;
    TokenNotYetValid => "token.not_yet_valid", 401;
    TokenIssuedInFuture => "token.issued_in_future", 401;
    TokenNonceMissing => "token.nonce_missing", 401;
    TokenNonceMismatch => "token.nonce_mismatch", 401;
    TokenVersion => "token.version", 401;
    TokenTenantNotAllowed => "token.tenant_not_allowed", 401;
    TokenMissingClaim => "token.missing_claim", 401;
    TokenUnknownKid => "token.unknown_kid", 401;
    TokenNotAppOnly => "token.not_app_only", 401;
    TokenRefusedBefore => "token.refused_before", 401;
    AccessDenied => "access.denied", 403;
    AccessGuest => "access.guest", 403;
    IdentityPinMismatch => "identity.pin_mismatch", 403;
    GraphError => "graph.error", 502;
    CacheIo => "cache.io", 500;
    InternalPanic => "internal.panic", 500;
    InternalError => "internal.error", 500;
}

impl Code {
    /// Stable string code, e.g. `"token.expired"`.
    pub fn as_str(self) -> &'static str {
        let with_nul = self.row().0;
        &with_nul[..with_nul.len() - 1]
    }

    /// The string code as a static NUL-terminated C string.
    pub fn as_c_str(self) -> *const std::ffi::c_char {
        self.row().0.as_ptr().cast()
    }

    /// The HTTP status PVE's API answers this error with.
    pub fn api_status(self) -> u16 {
        self.row().1
    }

    /// The code for a raw number coming from C; `None` for numbers that are no code.
    pub fn from_u32(n: u32) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| *c as u32 == n)
    }

    /// The code for its string form (tests, tools).
    pub fn from_str_code(s: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for pair in Code::ALL.windows(2) {
            assert!((pair[0] as u32) < (pair[1] as u32), "{:?} before {:?}", pair[0], pair[1]);
        }
        for &c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate {}", c.as_str());
            assert_eq!(Code::from_u32(c as u32), Some(c));
            assert_eq!(Code::from_str_code(c.as_str()), Some(c));
            assert!(!c.as_str().contains('\0'));
        }
        assert_eq!(Code::from_u32(33), None);
        assert_eq!(Code::InternalPanic as u32, 90);
        assert_eq!(Code::TokenUnknownKid.as_str(), "token.unknown_kid");
    }

    /// The variant name, the string code and (through it) the C name say the same thing:
    /// `TokenUnknownKid` is `token.unknown_kid` is `PVE_ENTRAID_TOKEN_UNKNOWN_KID`.
    #[test]
    fn variant_names_spell_the_string_codes() {
        for &c in Code::ALL {
            let mut words = Vec::new();
            for ch in format!("{c:?}").chars() {
                if ch.is_ascii_uppercase() {
                    words.push(String::new());
                }
                words.last_mut().unwrap().push(ch.to_ascii_lowercase());
            }
            let spelled = match words.split_first() {
                Some((family, [])) => family.clone(),
                Some((family, rest)) => format!("{family}.{}", rest.join("_")),
                None => unreachable!(),
            };
            assert_eq!(spelled, c.as_str(), "{c:?}");
        }
    }

    #[test]
    fn api_status_is_an_error_status_except_for_ok() {
        assert_eq!(Code::Ok.api_status(), 200);
        for &c in &Code::ALL[1..] {
            assert!((400..600).contains(&c.api_status()), "{c:?}");
        }
    }
}
