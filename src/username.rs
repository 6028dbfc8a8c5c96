//! The PVE user name of an Entra account: one rule per `username-claim`, the same for a login
//! (from the ID token) and for realm sync (from Microsoft Graph), and shown by `check`.
//!
//! Each setting names one ID token claim and nothing else: no fallback to another claim, which
//! could name a user by a value the realm's configuration refuses (`preferred_username` in an
//! `organizations`/`common` realm) or by another name than realm sync gives it. A token without
//! the claim is refused, saying what to configure in Entra.
//!
//! | username-claim     | ID token claim (Entra issues it …)                    | realm sync reads |
//! |--------------------|-------------------------------------------------------|------------------|
//! | upn (default)      | `upn`: only as an optional claim of the app; a guest's only with its property `include_externally_authenticated_upn` (then its `…#EXT#@…` UPN) | userPrincipalName |
//! | preferred_username | `preferred_username` (scope `profile`)                | userPrincipalName; guests: their pin |
//! | email              | `email` (scope `email`, or the optional claim)        | mail; guests: their pin |
//! | oid                | `oid`                                                 | id |
//!
//! A guest's `preferred_username` and `email` are its home tenant's sign-in name and address,
//! which its entry in this directory does not hold: realm sync names it by the pin its first
//! login made.
//!
//! Guests. An account is a guest (`allow-guests`; named by its pin above) when its home is
//! another directory — a B2B guest, or an external *member* as cross-tenant sync makes them. A
//! login and realm sync decide it by the same fact, each from what it sees (`is_guest`): the
//! token's `acct` is 1 (userType Guest) or its `idp` is not the issuer, and in the directory
//! `userType` is Guest or the userPrincipalName has `#EXT#`, which Entra gives every account
//! it signs in elsewhere.

use crate::claims::Claims;
use crate::config::UsernameClaim;
use crate::error::{Code, Error, Result};

/// Where realm sync finds a directory user's name (Microsoft Graph `user` attributes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Id,
    UserPrincipalName,
    Mail,
    /// The name the user's login pinned (a guest's home-tenant name is not in this directory).
    Pin,
}

impl UsernameClaim {
    /// The ID token claim that names the user.
    pub fn claim(self) -> &'static str {
        match self {
            UsernameClaim::Upn => "upn",
            UsernameClaim::PreferredUsername => "preferred_username",
            UsernameClaim::Email => "email",
            UsernameClaim::Oid => "oid",
        }
    }

    /// Where realm sync finds the same name for a member or a guest of the directory.
    pub fn source(self, guest: bool) -> Source {
        match self {
            UsernameClaim::Oid => Source::Id,
            // a guest's `upn` (with include_externally_authenticated_upn) is its UPN here
            UsernameClaim::Upn => Source::UserPrincipalName,
            _ if guest => Source::Pin,
            UsernameClaim::PreferredUsername => Source::UserPrincipalName,
            UsernameClaim::Email => Source::Mail,
        }
    }

    /// What to configure so that Entra issues the claim.
    pub fn fix(self) -> &'static str {
        match self {
            UsernameClaim::Upn => "add the optional claim `upn` to the ID token of the app registration (Token configuration \
                 → Add optional claim → ID → upn; for guests, also edit it: Externally authenticated = Yes), \
                 or choose another username-claim",
            UsernameClaim::PreferredUsername => "request the scope `profile` (realm option scopes), or choose another username-claim",
            UsernameClaim::Email => "request the scope `email` (realm option scopes) or add the optional claim `email` to the ID \
                 token, and give the account an e-mail address, or choose another username-claim",
            UsernameClaim::Oid => "request the scope `profile` (realm option scopes)",
        }
    }

    /// The rule, for `check`.
    pub fn describe(self) -> String {
        let sync = match (self.source(false), self.source(true)) {
            (Source::Id, _) => "its object id",
            (Source::UserPrincipalName, Source::UserPrincipalName) => "its userPrincipalName",
            (Source::UserPrincipalName, _) => "its userPrincipalName, a guest by the name its login pinned",
            _ => "its mail, a guest by the name its login pinned",
        };
        let issued = match self {
            UsernameClaim::Upn => "which Entra issues only as an optional claim of the app registration (guests: with \
                 Externally authenticated = Yes); without it logins fail with token.missing_claim",
            UsernameClaim::PreferredUsername => "issued with the scope profile",
            UsernameClaim::Email => "issued with the scope email or as an optional claim, for accounts with an e-mail address",
            UsernameClaim::Oid => "issued with the scope profile",
        };
        format!("username-claim {}: user names are the ID token's `{}` claim ({issued}), lower-cased; realm sync names a user by {sync}",
            self.claim(), self.claim())
    }
}

/// What marks an account as a guest, for a login and for realm sync alike.
pub enum Account<'a> {
    /// An ID token's `acct`, `idp` and `iss` claims.
    Token { acct: Option<i64>, idp: Option<&'a str>, iss: &'a str },
    /// Graph's `userType` and `userPrincipalName`.
    Directory { user_type: Option<&'a str>, upn: Option<&'a str> },
}

/// The `#EXT#` of an external account's UPN in the directory it is a guest or member of.
const EXTERNAL_UPN_MARK: &str = "#ext#@";

/// Whether the account's home is another directory (see the module's guests paragraph).
pub fn is_guest(a: Account) -> bool {
    match a {
        Account::Token { acct, idp, iss } => acct == Some(1) || idp.is_some_and(|i| i != iss),
        Account::Directory { user_type, upn } => {
            user_type.is_some_and(|t| t.eq_ignore_ascii_case("guest"))
                || upn.is_some_and(|u| u.to_ascii_lowercase().contains(EXTERNAL_UPN_MARK))
        }
    }
}

/// The PVE user name of a login: the claim `which` of the token, lower-cased (names, not the
/// oid, are case-insensitive in Entra while PVE user ids are case-sensitive).
pub fn from_token(c: &Claims, which: UsernameClaim) -> Result<String> {
    let value = match which {
        UsernameClaim::Upn => c.upn.as_deref(),
        UsernameClaim::PreferredUsername => c.preferred_username.as_deref(),
        UsernameClaim::Email => c.email.as_deref(),
        UsernameClaim::Oid => Some(c.oid.as_str()),
    };
    value.filter(|v| !v.is_empty()).map(str::to_lowercase).ok_or_else(|| {
        Error::new(Code::TokenMissingClaim, format!("ID token has no `{}` claim for the user name (username-claim {})", which.claim(), which.claim()))
            .with_hint(which.fix())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [UsernameClaim; 4] = [UsernameClaim::Upn, UsernameClaim::PreferredUsername, UsernameClaim::Email, UsernameClaim::Oid];

    #[test]
    fn the_claim_named_and_no_other() {
        let c = Claims {
            oid: "OID".into(),
            upn: Some("Alice@Contoso.example".into()),
            preferred_username: Some("P@x".into()),
            email: Some("E@x".into()),
            ..Default::default()
        };
        assert_eq!(from_token(&c, UsernameClaim::Upn).unwrap(), "alice@contoso.example");
        assert_eq!(from_token(&c, UsernameClaim::PreferredUsername).unwrap(), "p@x");
        assert_eq!(from_token(&c, UsernameClaim::Email).unwrap(), "e@x");
        assert_eq!(from_token(&c, UsernameClaim::Oid).unwrap(), "oid");
    }

    /// A v2.0 token of an app without optional claims has `preferred_username` but no `upn`:
    /// `upn` does not fall back to it (an `organizations` realm refuses preferred_username).
    #[test]
    fn a_missing_claim_is_refused_naming_the_fix() {
        let c = Claims { oid: "oid".into(), preferred_username: Some("alice@contoso.example".into()), ..Default::default() };
        let e = from_token(&c, UsernameClaim::Upn).unwrap_err();
        assert_eq!(e.code, Code::TokenMissingClaim);
        assert!(e.message.contains("no `upn` claim"), "{}", e.message);
        assert!(e.hint.as_deref().unwrap().contains("optional claim `upn`"), "{:?}", e.hint);
        let empty = Claims { oid: "oid".into(), upn: Some(String::new()), ..Default::default() };
        for which in [UsernameClaim::Upn, UsernameClaim::PreferredUsername, UsernameClaim::Email] {
            let e = from_token(&empty, which).unwrap_err();
            assert_eq!(e.code, Code::TokenMissingClaim, "{which:?}");
            assert!(e.message.contains(which.claim()) && e.hint.is_some(), "{which:?}");
        }
    }

    /// An external member (cross-tenant sync: userType Member, `#EXT#` UPN, `idp` its home
    /// tenant) is a guest for a login and for sync, as a B2B guest is; a member is neither.
    #[test]
    fn login_and_sync_classify_alike() {
        let iss = "https://login.microsoftonline.com/t/v2.0";
        let home = Some("https://sts.windows.net/home/");
        let ext_upn = Some("bob_fabrikam.example#EXT#@contoso.example");
        // (token acct, token idp, directory userType, directory UPN, guest)
        let cases = [
            (Some(1), home, Some("Guest"), ext_upn, true),          // B2B guest
            (Some(0), home, Some("Member"), ext_upn, true),         // external member
            (None, home, None, ext_upn, true),                      // no acct claim, nothing selected
            (Some(1), None, Some("guest"), Some("g@contoso.example"), true), // local guest
            (Some(0), None, Some("Member"), Some("a@contoso.example"), false),
            (None, Some(iss), None, Some("a@contoso.example"), false),
        ];
        for (acct, idp, user_type, upn, guest) in cases {
            assert_eq!(is_guest(Account::Token { acct, idp, iss }), guest, "{acct:?} {idp:?}");
            assert_eq!(is_guest(Account::Directory { user_type, upn }), guest, "{user_type:?} {upn:?}");
        }
    }

    #[test]
    fn sync_reads_what_the_token_names() {
        for which in ALL {
            // members: the directory attribute holding the claim's value
            assert_ne!(which.source(false), Source::Pin, "{which:?}");
        }
        assert_eq!(UsernameClaim::Upn.source(true), Source::UserPrincipalName);
        assert_eq!(UsernameClaim::Oid.source(true), Source::Id);
        assert_eq!(UsernameClaim::PreferredUsername.source(true), Source::Pin);
        assert_eq!(UsernameClaim::Email.source(true), Source::Pin);
        for which in ALL {
            let d = which.describe();
            assert!(d.contains(&format!("`{}` claim", which.claim())), "{d}");
        }
        assert!(UsernameClaim::Upn.describe().contains("optional claim"));
    }
}
