//! The catalogue of AADSTS codes administrators meet when setting up a confidential client, each with

//! the Entra (or realm) setting to change.

/// What to change in Entra (or in the realm) for the AADSTS codes administrators meet when
/// setting up a confidential client. Sources: Microsoft's AADSTS reference and field reports.
pub fn hint(code: u64) -> Option<&'static str> {
    Some(match code {
        7000215 => "The client secret is wrong: enter the secret's Value (shown once when created under Certificates & secrets), not its Secret ID",
        7000222 => "The client secret has expired: create a new one under App registrations > Certificates & secrets and update the realm",
        700016 => "No application with this client ID in the tenant: check the Application (client) ID and the tenant of the realm",
        50011 => "The redirect URI is not registered: add the realm's redirect URL (exactly, including port) as a Web redirect URI of the app registration",
        501481 | 50148 => "PKCE code verifier did not match: the login must finish on the same realm configuration it started; retry the login",
        54005 => "The authorization code was already redeemed: retry the login",
        70008 => "The authorization code has expired or was revoked: retry the login",
        90002 => "Tenant not found: check the tenant ID or domain and the cloud (public, usgov, china) of the realm",
        700027 => "The client assertion is invalid: upload the realm's certificate (.crt) under Certificates & secrets and check its key",
        700024 => "The client assertion is outside its validity window: check the clock (NTP) of this node",
        7000218 => "The request needs a client credential: configure a client secret or certificate in the realm",
        50076 | 50079 => "Multi-factor authentication is required: complete MFA in the browser and retry",
        50105 => "The user is not assigned to the application: assign the user or a group under Enterprise applications > Users and groups, or disable 'Assignment required'",
        65001 => "Admin consent is missing: grant admin consent for the API permissions of the app registration",
        70011 => "The scope is invalid: check the realm's scopes (openid profile email)",
        50020 => "The user's account is not from an allowed tenant: add the tenant or invite the user as a guest",
        700054 => "response_type 'id_token' is not enabled: the realm uses the code flow, check the app's platform configuration is 'Web'",
        9002325 => "The app registration is configured as a single-page application: register the redirect URI under the 'Web' platform",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_for_the_setup_errors() {
        for c in [7000215, 7000222, 700016, 50011, 501481, 50148, 54005, 70008, 90002] {
            assert!(hint(c).is_some(), "{c}");
        }
        assert!(hint(1).is_none());
    }
}
