//! Directory contents the emulator serves: tenants, app registrations, users.
//!
//! `EmulatorConfig::default()` is the default directory of docs/DESIGN.md. A `--config` file
//! (same field names) *adds* to it: an entry whose key (tenant id, client_id, upn) matches a
//! default entry replaces that entry, others are appended.

use serde::Deserialize;
use std::collections::BTreeMap;

pub const TENANT: &str = "11111111-2222-3333-4444-555555555555";
/// Home tenant of the guest user, also a second tenant for multi-tenant (`organizations`) tests.
pub const FABRIKAM_TENANT: &str = "22222222-3333-4444-5555-666666666666";
pub const CLIENT_ID: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
pub const CLIENT_SECRET: &str = "s3cr~et.Value_with~tilde";
pub const ALICE_OID: &str = "0a1b2c3d-0000-4000-8000-00000000a11c";
pub const BOB_OID: &str = "0b0b0b0b-0000-4000-8000-000000000b0b";
pub const GUEST_OID: &str = "0c0c0c0c-0000-4000-8000-000000000c0c";
pub const CAROL_OID: &str = "0d0d0d0d-0000-4000-8000-000000000d0d";
/// Alice's group (and one of Bob's many).
pub const ADMINS_GROUP: &str = "6f7e8d9c-1111-4111-8111-000000000001";
/// A second well-known group Bob is in, so overage resolution can be checked against a mapping.
pub const OPERATORS_GROUP: &str = "6f7e8d9c-1111-4111-8111-000000000002";
/// Workloads: the client apps (and their service principals, in TENANT) that get access
/// tokens for the realm's app with the client credentials grant. The deploy workload holds the
/// app role `Deploy.Pve` and has a federated credential for the emulated "GitHub Actions" issuer
/// (`/_gh`); the second also holds `Deploy.Pve` (another service principal); the third holds none.
pub const WORKLOAD_CLIENT_ID: &str = "c1c1c1c1-0000-4000-8000-00000000c1c1";
pub const WORKLOAD_SP_OID: &str = "5e5e5e5e-0000-4000-8000-0000000000c1";
pub const WORKLOAD2_CLIENT_ID: &str = "c2c2c2c2-0000-4000-8000-00000000c2c2";
pub const WORKLOAD2_SP_OID: &str = "5e5e5e5e-0000-4000-8000-0000000000c2";
pub const NOROLE_CLIENT_ID: &str = "c3c3c3c3-0000-4000-8000-00000000c3c3";
pub const WORKLOAD_SECRET: &str = "w0rkl0ad~secret";
pub const DEPLOY_ROLE: &str = "Deploy.Pve";
/// The subject of the deploy workload's federated credential (a GitHub Actions job on main).
pub const GH_SUBJECT: &str = "repo:contoso/infra:ref:refs/heads/main";
/// The audience Entra requires of a federated credential's token.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Tenant {
    pub id: String,
    /// Verified domains that resolve to this tenant in the path (`/contoso.example/...`).
    #[serde(default)]
    pub domains: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub client_id: String,
    /// Client secret value; `None` means the app has no secret credential.
    #[serde(default)]
    pub secret: Option<String>,
    /// Whether the bundled certificate `keys/client.crt` is a registered credential.
    #[serde(default = "yes")]
    pub certificate: bool,
    /// Registered redirect URIs. Empty accepts any (a convenience real Entra does not offer,
    /// so tests need not know every port in advance).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// App roles assigned to groups: role value → group ids. Their members hold the role (in
    /// tokens and in Graph's `appRoleAssignedTo`); a user's own `roles` are direct assignments.
    #[serde(default)]
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// Users (oid) and groups (id) assigned the app without a role (Entra's "Default Access"):
    /// `appRoleAssignedTo` lists them with the all-zero role id. As with `group_roles`, only a
    /// group's direct members count as assigned.
    #[serde(default)]
    pub assigned: Vec<String>,
    /// The enterprise application's "Assignment required?" (`appRoleAssignmentRequired`).
    #[serde(default)]
    pub assignment_required: bool,
    /// The manifest's `optionalClaims` (Token configuration → Add optional claim): none on a
    /// new registration, as in Entra. The groups claim (README step 5) is always configured.
    #[serde(default)]
    pub optional_claims: OptionalClaims,
    /// Expose an API → Application ID URI (`identifierUris`).
    #[serde(default)]
    pub identifier_uris: Vec<String>,
    /// The manifest's `api.requestedAccessTokenVersion` (null: v1.0, as Entra issues then).
    #[serde(default)]
    pub requested_access_token_version: Option<u8>,
    /// App roles of this app assigned to service principals (of client apps): role value → SP
    /// object ids (Enterprise application → Users and groups, or an admin-consented application permission).
    #[serde(default)]
    pub app_role_assignments: BTreeMap<String, Vec<String>>,
    /// The object id of this app's service principal in its tenant (the `oid`/`sub` of its
    /// app-only tokens); derived from the client id when not set.
    #[serde(default)]
    pub service_principal_oid: Option<String>,
    /// Certificates & secrets → Federated credentials.
    #[serde(default)]
    pub federated_credentials: Vec<FederatedCredential>,
}

/// A federated identity credential: a token of `issuer` with this `subject` and one of
/// `audiences` is accepted as the app's client assertion. An issuer of `{emulator}/...` names a
/// path of the emulator itself (its "GitHub Actions" issuer is `{emulator}/_gh`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
}

/// An app manifest's `optionalClaims`, in its own form; only the ID token part matters here.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OptionalClaims {
    #[serde(default)]
    pub id_token: Vec<OptionalClaim>,
    #[serde(default)]
    pub access_token: Vec<OptionalClaim>,
    #[serde(default)]
    pub saml2_token: Vec<OptionalClaim>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OptionalClaim {
    pub name: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub essential: bool,
    /// e.g. `include_externally_authenticated_upn` on `upn`.
    #[serde(default)]
    pub additional_properties: Vec<String>,
}

impl OptionalClaims {
    /// ID token optional claims of these names, without properties.
    pub fn id_token(names: &[&str]) -> OptionalClaims {
        let claim = |n: &&str| OptionalClaim { name: n.to_string(), source: None, essential: false, additional_properties: vec![] };
        OptionalClaims { id_token: names.iter().map(claim).collect(), ..Default::default() }
    }

    /// The ID token optional claim `name`, if configured.
    pub fn id_token_claim(&self, name: &str) -> Option<&OptionalClaim> {
        self.id_token.iter().find(|c| c.name == name)
    }
}

impl App {
    /// The object id of the app's service principal.
    pub fn sp_oid(&self) -> String {
        self.service_principal_oid.clone().unwrap_or_else(|| crate::util::guid_from(&format!("sp:{}", self.client_id)))
    }

    /// The app roles of this app assigned to the service principal `sp_oid`.
    pub fn roles_of_sp(&self, sp_oid: &str) -> Vec<String> {
        self.app_role_assignments.iter().filter(|(_, sps)| sps.iter().any(|s| s.eq_ignore_ascii_case(sp_oid))).map(|(r, _)| r.clone()).collect()
    }

    /// Users and groups assigned to the app, with Default Access or a role.
    pub fn principals(&self) -> impl Iterator<Item = &String> {
        self.assigned.iter().chain(self.group_roles.values().flatten())
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub upn: String,
    pub oid: String,
    /// Sign-in name; defaults to `upn`. Guests sign in with their home address, not the #EXT# UPN.
    #[serde(default)]
    pub preferred_username: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub given_name: String,
    #[serde(default)]
    pub family_name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Extra synthetic group memberships (deterministic GUIDs), to exceed the overage limit.
    #[serde(default)]
    pub generated_groups: usize,
    #[serde(default)]
    pub roles: Vec<String>,
    /// 0 member, 1 guest (Entra's optional `acct` claim).
    #[serde(default)]
    pub acct: u8,
    /// Identity provider of an external account (a guest, or with `acct` 0 an external member as
    /// cross-tenant sync makes them), e.g. "https://sts.windows.net/<home tid>/".
    #[serde(default)]
    pub idp: Option<String>,
    /// Tenant the user signs in to (the `tid` of their tokens); default: the first tenant.
    #[serde(default)]
    pub tid: Option<String>,
    /// Graph's `accountEnabled`, as realm sync reads it.
    #[serde(default = "yes")]
    pub account_enabled: bool,
}

impl User {
    pub fn sign_in_name(&self) -> &str {
        self.preferred_username.as_deref().unwrap_or(&self.upn)
    }

    /// Every group membership: listed ones first, then the generated ones.
    pub fn all_groups(&self) -> Vec<String> {
        let mut all = self.groups.clone();
        let prefix: String = self.oid.chars().take(8).collect();
        all.extend((1..=self.generated_groups).map(|i| format!("{prefix}-9999-4000-8000-{i:012}")));
        all
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(from = "ConfigFile")]
pub struct EmulatorConfig {
    pub tenants: Vec<Tenant>,
    pub apps: Vec<App>,
    pub users: Vec<User>,
    /// Nested groups: group id → the groups that are members of it. Their users are transitive
    /// members (in tokens' `groups` and `transitiveMembers`), not direct ones.
    pub subgroups: BTreeMap<String, Vec<String>>,
    /// More groups than this → `_claim_names`/`_claim_sources` instead of `groups` (Entra: 200 for JWT).
    pub groups_overage_limit: usize,
    /// Latency added to every IdP request from the start (the `latency_ms` control changes it).
    pub latency_ms: u64,
}

fn yes() -> bool {
    true
}

fn member(upn: &str, oid: &str, given: &str, family: &str) -> User {
    User {
        upn: upn.into(),
        oid: oid.into(),
        preferred_username: None,
        name: format!("{given} {family}"),
        given_name: given.into(),
        family_name: family.into(),
        email: Some(upn.into()),
        groups: vec![],
        generated_groups: 0,
        roles: vec![],
        acct: 0,
        idp: None,
        tid: Some(TENANT.into()),
        account_enabled: true,
    }
}

/// A workload's app registration: a secret, no certificate, no redirect URIs.
fn workload(client_id: &str, sp_oid: &str, federated_credentials: Vec<FederatedCredential>) -> App {
    App {
        client_id: client_id.into(),
        secret: Some(WORKLOAD_SECRET.into()),
        certificate: false,
        redirect_uris: vec![],
        group_roles: BTreeMap::new(),
        assigned: vec![],
        assignment_required: false,
        optional_claims: OptionalClaims::default(),
        identifier_uris: vec![],
        requested_access_token_version: Some(2),
        app_role_assignments: BTreeMap::new(),
        service_principal_oid: Some(sp_oid.into()),
        federated_credentials,
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        let alice = User {
            groups: vec![ADMINS_GROUP.into()],
            roles: vec!["PVE.Admin".into()],
            ..member("alice@contoso.example", ALICE_OID, "Alice", "Example")
        };
        let bob = User {
            groups: vec![ADMINS_GROUP.into(), OPERATORS_GROUP.into()],
            generated_groups: 248, // 250 in all: over the overage limit of 200
            ..member("bob@contoso.example", BOB_OID, "Bob", "Example")
        };
        let guest = User {
            upn: "guest_fabrikam.example#EXT#@contoso.example".into(),
            preferred_username: Some("guest@fabrikam.example".into()),
            email: Some("guest@fabrikam.example".into()),
            acct: 1,
            idp: Some(format!("https://sts.windows.net/{FABRIKAM_TENANT}/")),
            ..member("guest@fabrikam.example", GUEST_OID, "Gwen", "Guest")
        };
        let carol = User {
            tid: Some(FABRIKAM_TENANT.into()),
            ..member("carol@fabrikam.example", CAROL_OID, "Carol", "Fabrikam")
        };
        EmulatorConfig {
            tenants: vec![
                Tenant {
                    id: TENANT.into(),
                    domains: vec!["contoso.example".into(), "contoso.onmicrosoft.com".into()],
                },
                Tenant {
                    id: FABRIKAM_TENANT.into(),
                    domains: vec!["fabrikam.example".into()],
                },
            ],
            apps: vec![App {
                client_id: CLIENT_ID.into(),
                secret: Some(CLIENT_SECRET.into()),
                certificate: true,
                redirect_uris: vec![],
                group_roles: BTreeMap::new(),
                assigned: vec![],
                assignment_required: false,
                optional_claims: OptionalClaims::default(),
                identifier_uris: vec![format!("api://{CLIENT_ID}")],
                requested_access_token_version: Some(2),
                app_role_assignments: BTreeMap::from([(DEPLOY_ROLE.into(), vec![WORKLOAD_SP_OID.into(), WORKLOAD2_SP_OID.into()])]),
                service_principal_oid: None,
                federated_credentials: vec![],
            },
            workload(WORKLOAD_CLIENT_ID, WORKLOAD_SP_OID, vec![FederatedCredential {
                issuer: "{emulator}/_gh".into(),
                subject: GH_SUBJECT.into(),
                audiences: vec![TOKEN_EXCHANGE_AUDIENCE.into()],
            }]),
            workload(WORKLOAD2_CLIENT_ID, WORKLOAD2_SP_OID, vec![]),
            workload(NOROLE_CLIENT_ID, "5e5e5e5e-0000-4000-8000-0000000000c3", vec![]),
            ],
            users: vec![alice, bob, guest, carol],
            subgroups: BTreeMap::new(),
            groups_overage_limit: 200,
            latency_ms: 0,
        }
    }
}

/// On-disk form: every field optional, merged onto the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    tenants: Vec<Tenant>,
    #[serde(default)]
    apps: Vec<App>,
    #[serde(default)]
    users: Vec<User>,
    #[serde(default)]
    subgroups: BTreeMap<String, Vec<String>>,
    groups_overage_limit: Option<usize>,
    latency_ms: Option<u64>,
}

fn merge<T>(base: &mut Vec<T>, extra: Vec<T>, same: impl Fn(&T, &T) -> bool) {
    for item in extra {
        match base.iter_mut().find(|b| same(b, &item)) {
            Some(slot) => *slot = item,
            None => base.push(item),
        }
    }
}

impl From<ConfigFile> for EmulatorConfig {
    fn from(f: ConfigFile) -> Self {
        let mut cfg = EmulatorConfig::default();
        merge(&mut cfg.tenants, f.tenants, |a, b| a.id == b.id);
        merge(&mut cfg.apps, f.apps, |a, b| a.client_id == b.client_id);
        merge(&mut cfg.users, f.users, |a, b| {
            a.upn.eq_ignore_ascii_case(&b.upn)
        });
        cfg.subgroups.extend(f.subgroups);
        if let Some(n) = f.groups_overage_limit {
            cfg.groups_overage_limit = n;
        }
        if let Some(ms) = f.latency_ms {
            cfg.latency_ms = ms;
        }
        cfg
    }
}

impl EmulatorConfig {
    /// Every app with these ID token optional claims (e.g. `upn`, which a realm's default
    /// `username-claim` needs), replacing the ones configured.
    pub fn with_id_token_claims(mut self, names: &[&str]) -> Self {
        for app in &mut self.apps {
            app.optional_claims = OptionalClaims::id_token(names);
        }
        self
    }

    /// Tenant GUID for a path segment that is a GUID or a verified domain.
    pub fn resolve_tenant(&self, segment: &str) -> Option<&Tenant> {
        self.tenants.iter().find(|t| {
            t.id.eq_ignore_ascii_case(segment)
                || t.domains.iter().any(|d| d.eq_ignore_ascii_case(segment))
        })
    }

    /// The app a client credentials `scope` (`<client id or Application ID URI>/.default`) names.
    pub fn resource_app(&self, resource: &str) -> Option<&App> {
        self.apps.iter().find(|a| {
            a.client_id.eq_ignore_ascii_case(resource) || a.identifier_uris.iter().any(|u| u.eq_ignore_ascii_case(resource))
        })
    }

    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    /// A user by UPN or sign-in name (what a login_hint carries).
    pub fn user_by_hint(&self, hint: &str) -> Option<&User> {
        self.users.iter().find(|u| {
            u.upn.eq_ignore_ascii_case(hint) || u.sign_in_name().eq_ignore_ascii_case(hint)
        })
    }

    pub fn user_by_oid(&self, oid: &str) -> Option<&User> {
        self.users.iter().find(|u| u.oid.eq_ignore_ascii_case(oid))
    }

    /// Every group a user is in, directly or through nested groups (Entra's `groups` claim and
    /// `getMemberObjects`): the direct ones first.
    pub fn groups_of(&self, user: &User) -> Vec<String> {
        let mut all = user.all_groups();
        let mut i = 0;
        while i < all.len() {
            let child = all[i].clone();
            let parents = self.subgroups.iter().filter(|(_, subs)| subs.iter().any(|s| s.eq_ignore_ascii_case(&child)));
            for (parent, _) in parents {
                if !all.iter().any(|g| g.eq_ignore_ascii_case(parent)) {
                    all.push(parent.clone());
                }
            }
            i += 1;
        }
        all
    }

    /// Whether a group exists: it has a member (user or group), is a member of one, or is
    /// assigned to an app.
    pub fn group_exists(&self, group: &str) -> bool {
        let is = |g: &String| g.eq_ignore_ascii_case(group);
        self.users.iter().any(|u| u.all_groups().iter().any(is))
            || self.subgroups.iter().any(|(g, subs)| is(g) || subs.iter().any(is))
            || self.apps.iter().any(|a| a.principals().any(is))
    }

    /// Whether a user is assigned to `app`: itself (a role or Default Access) or a group it is a
    /// direct member of, as Entra's "Assignment required?" checks at sign-in.
    pub fn is_assigned(&self, user: &User, app: &App) -> bool {
        let direct = user.all_groups();
        let principal = |p: &String| p.eq_ignore_ascii_case(&user.oid) || direct.iter().any(|g| g.eq_ignore_ascii_case(p));
        !user.roles.is_empty() || app.principals().any(principal)
    }

    /// The app roles a user holds in `app`: assigned directly or to a group the user is a
    /// direct member of (Entra does not pass a group's app roles on to nested groups).
    pub fn roles_of(&self, user: &User, app: &App) -> Vec<String> {
        let groups = user.all_groups();
        let mut roles = user.roles.clone();
        for (role, holders) in &app.group_roles {
            let held = holders.iter().any(|h| groups.iter().any(|g| g.eq_ignore_ascii_case(h)));
            if held && !roles.contains(role) {
                roles.push(role.clone());
            }
        }
        roles
    }

    pub fn user_tid<'a>(&'a self, user: &'a User) -> &'a str {
        user.tid.as_deref().unwrap_or_else(|| {
            self.tenants
                .first()
                .map(|t| t.id.as_str())
                .unwrap_or(TENANT)
        })
    }
}
