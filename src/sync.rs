//! Realm sync (`pve_entraid_sync_directory`): the realm's users and mapped groups as Microsoft
//! Graph knows them, read with an app-only token and named exactly as at login. Only reads:
//! PVE's own sync code (`PVE::API2::Domains`) decides what changes in user.cfg.
//!
//! Which users (`sync-users`): by default (`mapped`) those holding one of the `required_groups`
//! keys (only they may log in), or, without those, one of the `groups_map` keys; with `assigned`,
//! every user assigned to the app, of them only the holders of a `required_groups` key when
//! that is set. A key is held exactly as a login matches it: a group GUID by transitive
//! membership (the token's `groups` claim), any other key as a value of the app's `roles` claim,
//! i.e. an app role assigned to the user or to a group the user is a *direct* member of (Entra
//! does not pass a group's app roles or assignment on to the members of nested groups).
//!
//! Requests: one paged `transitiveMembers` listing per group GUID key (`$top=999`,
//! `@odata.nextLink`); with app role keys or `assigned`, also the app's service principal, its
//! paged `appRoleAssignedTo`, one paged `members` listing per assigned group and one `users`
//! listing per `USERS_PER_FILTER` directly assigned users. Up to `PARALLEL` listings run at
//! once, so a sync of many groups takes its latency once per `PARALLEL` groups.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{is_guid, SyncUsers, Tenant, UsernameClaim};
use crate::error::{sanitize, Code, Error, Result};
use crate::graph::app_token;
use crate::http::{display_url, GraphResponse, Transport};
use crate::mapping::check_user_name;
use crate::request::{Env, Request, SyncMembers};
use crate::username::{self, Account, Source};

/// Graph's largest page.
const PAGE_SIZE: u32 = 999;
/// A page of 999 users with the selected attributes is about half a megabyte.
const MAX_PAGE_BODY: u64 = 8 * 1024 * 1024;
/// Attributes read per user: identity, the names a `username_claim` can use, profile, state.
const SELECT: &str = "id,userPrincipalName,mail,givenName,surname,accountEnabled,userType";
/// A throttled request (429/503) is retried this often, waiting its `Retry-After` (default
/// below), at most `MAX_RETRY_WAIT` seconds each time: a sync may be slow, never endless.
const MAX_RETRIES: u32 = 5;
const DEFAULT_RETRY_WAIT: u64 = 5;
const MAX_RETRY_WAIT: u64 = 60;
/// No directory has this many pages in one listing; a Graph (or proxy) that links in circles does.
const MAX_PAGES: usize = 100_000;
/// The role id of an assignment without a role (Entra's "Default Access").
const DEFAULT_ACCESS: &str = "00000000-0000-0000-0000-000000000000";
/// Graph's limit of values in one `$filter=id in (...)` (without advanced queries).
const USERS_PER_FILTER: usize = 15;
/// Graph reads in flight at once (threads of the sync worker, joined before the call returns).
/// Far below Graph's per-app limits, and each throttled answer still waits its `Retry-After`.
const PARALLEL: usize = 8;

fn graph_error(msg: String) -> Error {
    Error::new(Code::GraphError, msg)
}

/// One user as Graph lists it.
struct Member {
    oid: String,
    upn: Option<String>,
    mail: Option<String>,
    given: Option<String>,
    surname: Option<String>,
    enabled: bool,
    guest: bool,
}

fn member_of(v: &Value) -> Option<Member> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
    let oid = text("id").filter(|id| is_guid(id))?.to_ascii_lowercase();
    Some(Member {
        oid,
        upn: text("userPrincipalName"),
        mail: text("mail"),
        given: text("givenName"),
        surname: text("surname"),
        // Graph leaves out what it does not know; only an explicit false disables
        enabled: v.get("accountEnabled").and_then(Value::as_bool) != Some(false),
        // the rule a login applies too
        guest: username::is_guest(Account::Directory { user_type: text("userType").as_deref(), upn: text("userPrincipalName").as_deref() }),
    })
}

/// The user name per `username_claim`, by the rule a login names it (`username::Source`);
/// `pinned`: oid → the names pinned to it in this tenant.
fn user_name(m: &Member, claim: UsernameClaim, pinned: &BTreeMap<String, Vec<&str>>) -> std::result::Result<String, &'static str> {
    let value = match claim.source(m.guest) {
        Source::Id => Some(m.oid.clone()),
        Source::UserPrincipalName => m.upn.clone(),
        Source::Mail => m.mail.clone(),
        Source::Pin => match pinned.get(&m.oid).map(Vec::as_slice) {
            Some([name]) => Some(name.to_string()),
            Some([_, _, ..]) => return Err("guest account pinned under several user names"),
            _ => return Err("guest account that has not logged in yet (its user name is its home tenant's, which the directory does not hold)"),
        },
    };
    value.map(|v| v.to_lowercase()).ok_or("no value for the realm's username-claim")
}

/// The membership a `groups_map`/`required_groups` key stands for in tenant `tid` (a group GUID
/// or an app role value), as `mapping::member_keys` matches it at login; `None` for a key
/// scoped to another tenant, which no user of this tenant matches. The key is normalised
/// already (`RealmConfig` reads the section that way).
fn membership(key: &str, tid: &str) -> Option<String> {
    match key.split_once(':') {
        Some((t, rest)) if is_guid(t) => (t == tid).then(|| rest.to_string()),
        _ => Some(key.to_string()),
    }
}

struct Graph<'a> {
    http: &'a dyn Transport,
    token: String,
    origin: String,
    requests: AtomicU64,
}

/// Where users get what they hold (`Through`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Holder {
    /// A group's members, nested groups included: they hold the group's GUID.
    TransitiveMembersOf(String),
    /// A group's direct members: they hold the group's app role assignments.
    DirectMembersOf(String),
    /// A user with app role assignments of its own.
    User(String),
}

/// A Graph listing of users.
enum Read<'a> {
    /// The users among a group's `transitiveMembers` or (direct) `members`: what `holder` holds.
    Group { holder: &'a Holder, group: &'a str, listing: &'static str },
    /// These users (each a `Holder::User`), at most `USERS_PER_FILTER`; a deleted one is not listed.
    Users(&'a [String]),
}

impl Holder {
    /// The listing of a group holder's users; `None` for a user.
    fn group_read(&self) -> Option<Read<'_>> {
        match self {
            Holder::TransitiveMembersOf(group) => Some(Read::Group { holder: self, group, listing: "transitiveMembers" }),
            Holder::DirectMembersOf(group) => Some(Read::Group { holder: self, group, listing: "members" }),
            Holder::User(_) => None,
        }
    }
}

/// What the users of a listing hold through it.
#[derive(Default)]
struct Through {
    /// `groups_map`/`required_groups` keys (memberships as `membership` gives them).
    keys: BTreeSet<String>,
    /// Assigned to the app (any role, or none: Entra's "Default Access").
    assigned: bool,
}

impl Graph<'_> {
    /// One answer, retrying throttled ones within the bounds above.
    fn get(&self, url: &str, what: &str) -> Result<Value> {
        let mut attempt = 0;
        loop {
            let r = self.http.get_bearer(url, &self.token, MAX_PAGE_BODY)?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            if r.status == 200 {
                return serde_json::from_slice(&r.body)
                    .map_err(|_| graph_error(format!("Graph answer from {} is not JSON", display_url(url))));
            }
            if (r.status == 429 || r.status == 503) && attempt < MAX_RETRIES {
                attempt += 1;
                std::thread::sleep(Duration::from_secs(retry_wait(r.retry_after.as_deref())));
                continue;
            }
            return Err(answer_error(&r, what));
        }
    }

    /// The `value` items of every page of a listing.
    fn list(&self, first: String, what: &str) -> Result<Vec<Value>> {
        let mut url = first;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let mut page = self.get(&url, what)?;
            match page.get_mut("value").map(Value::take) {
                Some(Value::Array(items)) => out.extend(items),
                _ => return Err(graph_error(format!("Graph answer for {what} has no `value` list"))),
            }
            match page.get("@odata.nextLink").and_then(Value::as_str) {
                // the token goes to Graph only, whatever a page links to
                Some(next) if next.starts_with(&format!("{}/", self.origin)) => url = next.to_string(),
                Some(_) => return Err(graph_error(format!("Graph answer for {what} links to a page on another host"))),
                None => return Ok(out),
            }
        }
        Err(graph_error(format!("Graph answer for {what} has more than {MAX_PAGES} pages")))
    }

    fn read(&self, what: &Read) -> Result<Vec<Member>> {
        match what {
            Read::Group { group, listing, .. } => {
                let url =
                    format!("{}/v1.0/groups/{group}/{listing}/microsoft.graph.user?$select={SELECT}&$top={PAGE_SIZE}", self.origin);
                Ok(self.list(url, &format!("group {group}"))?.iter().filter_map(member_of).collect())
            }
            Read::Users(oids) => {
                // GUIDs (checked when the assignments were read): nothing to escape but the spaces
                let ids: Vec<String> = oids.iter().map(|oid| format!("'{oid}'")).collect();
                let url = format!(
                    "{}/v1.0/users?$filter=id%20in%20({})&$select={SELECT}&$top={PAGE_SIZE}",
                    self.origin,
                    ids.join(",")
                );
                Ok(self.list(url, "the users assigned to the app")?.iter().filter_map(member_of).collect())
            }
        }
    }

    /// The app's assignments by principal (a user, or a group whose direct members they cover):
    /// the role values of `wanted` it holds, and with `any_assignment` whether it is assigned the
    /// app at all (Default Access or an enabled role), which that mode requires to mean "may log in".
    fn assignments(
        &self,
        client_id: &str,
        wanted: &BTreeSet<&str>,
        any_assignment: bool,
        warnings: &mut Vec<String>,
    ) -> Result<BTreeMap<Holder, Through>> {
        let what = format!("the service principal of app {client_id}");
        let url = format!(
            "{}/v1.0/servicePrincipals(appId='{client_id}')?$select=id,appRoles,appRoleAssignmentRequired",
            self.origin
        );
        let sp = self.get(&url, &what)?;
        let sp_id = sp.get("id").and_then(Value::as_str).filter(|id| is_guid(id)).ok_or_else(|| {
            graph_error(format!("Graph answer for {what} has no id"))
        })?;
        // without it, users who are not assigned log in too, and a sync would remove them again
        if any_assignment && sp.get("appRoleAssignmentRequired").and_then(Value::as_bool) != Some(true) {
            return Err(Error::new(
                Code::ConfigInvalid,
                "sync-users is 'assigned', but the app's enterprise application does not require assignment: users who are \
                 not assigned to the app can log in as well",
            )
            .with_hint("set 'Assignment required?' to Yes in Entra (Enterprise applications, the app, Properties), or set sync-users to mapped"));
        }
        // id => value of every enabled role: a disabled one is issued in no token and counts as no assignment
        let mut enabled: BTreeMap<String, &str> = BTreeMap::new();
        for role in sp.get("appRoles").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(value), true) = (
                role.get("id").and_then(Value::as_str),
                role.get("value").and_then(Value::as_str),
                role.get("isEnabled").and_then(Value::as_bool) != Some(false),
            ) {
                enabled.insert(id.to_ascii_lowercase(), value);
            }
        }
        for value in wanted.iter().filter(|v| !enabled.values().any(|r| r == *v)) {
            warnings.push(format!("app role '{}' is not an enabled role of the app registration: nobody holds it", sanitize(value)));
        }
        let mut holders: BTreeMap<Holder, Through> = BTreeMap::new();
        if !any_assignment && !enabled.values().any(|v| wanted.contains(v)) {
            return Ok(holders);
        }
        let url = format!(
            "{}/v1.0/servicePrincipals/{sp_id}/appRoleAssignedTo?$select=appRoleId,principalId,principalType&$top={PAGE_SIZE}",
            self.origin
        );
        for a in self.list(url, &format!("the app role assignments of app {client_id}"))? {
            let text = |k: &str| a.get(k).and_then(Value::as_str).map(str::to_ascii_lowercase);
            let (Some(role), Some(principal), Some(kind)) = (text("appRoleId"), text("principalId"), text("principalType")) else {
                continue;
            };
            let value = enabled.get(&role).copied();
            let wanted_value = value.filter(|v| wanted.contains(v));
            let assigned = any_assignment && (role == DEFAULT_ACCESS || value.is_some());
            if (wanted_value.is_none() && !assigned) || !is_guid(&principal) {
                continue;
            }
            let holder = match kind.as_str() {
                "user" => Holder::User(principal),
                "group" => Holder::DirectMembersOf(principal),
                _ => continue, // service principals hold roles too; they are no PVE users
            };
            let through = holders.entry(holder).or_default();
            through.keys.extend(wanted_value.map(str::to_string));
            through.assigned |= assigned;
        }
        Ok(holders)
    }
}

/// `f` over every item, up to `PARALLEL` at a time; the first failure (in item order) stops the
/// rest and is the answer.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let workers = PARALLEL.min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done: Vec<Mutex<Option<Result<R>>>> = items.iter().map(|_| Mutex::new(None)).collect();
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= items.len() || failed.load(Ordering::Relaxed) {
            return;
        }
        let r = f(&items[i]);
        failed.fetch_or(r.is_err(), Ordering::Relaxed);
        *done[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    };
    std::thread::scope(|s| {
        let blocked = BlockedSignals::new();
        let spawned = (0..workers).filter(|_| std::thread::Builder::new().spawn_scoped(s, work).is_ok()).count();
        drop(blocked);
        if spawned == 0 {
            work(); // no thread to be had: read them here, one after the other
        }
    });
    let mut out = Vec::with_capacity(items.len());
    for r in done.into_iter().filter_map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())) {
        out.push(r?);
    }
    if out.len() != items.len() {
        return Err(Error::new(Code::InternalError, "realm sync: a Graph read was left undone"));
    }
    Ok(out)
}

/// Signals a thread raises itself by a fault: left unblocked, so a fault in a Graph thread still
/// reaches its handler (e.g. Rust's stack-overflow report) instead of the kernel killing the
/// process silently. SIGABRT stays blocked: abort() unblocks it itself, and one sent to the
/// process belongs to the caller's thread like any other.
const FAULT_SIGNALS: [libc::c_int; 5] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL, libc::SIGTRAP];

/// Blocks every signal but the fault signals in the calling thread until dropped, so that
/// threads started meanwhile inherit the blocked mask: signals to the process (e.g. a task's
/// SIGTERM) then reach only the caller's thread, where the embedding Perl interpreter's handlers
/// can run.
struct BlockedSignals(libc::sigset_t);

impl BlockedSignals {
    fn new() -> BlockedSignals {
        // SAFETY: sigfillset/sigdelset/pthread_sigmask on local, initialised sets.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            for signal in FAULT_SIGNALS {
                libc::sigdelset(&mut all, signal);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            BlockedSignals(old)
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved by `new` in this same thread.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &self.0, std::ptr::null_mut());
        }
    }
}

/// Seconds to wait before retrying: `Retry-After` (seconds; an HTTP date counts as the
/// default), bounded.
fn retry_wait(header: Option<&str>) -> u64 {
    header.and_then(|h| h.trim().parse::<u64>().ok()).unwrap_or(DEFAULT_RETRY_WAIT).min(MAX_RETRY_WAIT)
}

fn answer_error(r: &GraphResponse, what: &str) -> Error {
    let v: Option<Value> = serde_json::from_slice(&r.body).ok();
    let code = v.as_ref().and_then(|v| v.pointer("/error/code")).and_then(Value::as_str).unwrap_or("unknown");
    let request_id = r
        .request_id
        .clone()
        .or_else(|| v.as_ref().and_then(|v| v.pointer("/error/innerError/request-id")).and_then(Value::as_str).map(str::to_string));
    let mut msg = format!("Graph answered HTTP {} for {what}: {}", r.status, sanitize(code));
    if let Some(id) = request_id {
        msg.push_str(&format!(" (request-id {})", sanitize(&id)));
    }
    let mut e = graph_error(msg).with_status(r.status);
    if r.status == 403 || code == "Authorization_RequestDenied" {
        e = e.with_hint("grant the app registration the Microsoft Graph application permissions User.Read.All and GroupMember.Read.All (admin consent); app role keys and sync-users=assigned also need Application.Read.All");
    } else if r.status == 404 && what.starts_with("the service principal") {
        e = e.with_hint("the app registration has no enterprise application (service principal) in the tenant");
    } else if r.status == 404 {
        e = e.with_hint("a group GUID in groups-map or required-groups does not exist in the tenant");
    }
    e
}

/// The tenant GUID whose directory is read (and which the identity pins record): the realm's
/// tenant, or for a verified domain the GUID in its discovery document's issuer. A multi-tenant
/// realm has no one directory to read.
fn tenant_id(req: &Request<SyncMembers>, env: &Env) -> Result<String> {
    let cfg = &req.cfg;
    match &cfg.tenant {
        Tenant::Single(t) if is_guid(t) => Ok(t.to_ascii_lowercase()),
        Tenant::Single(_) => {
            let issuer = crate::flow::discovery(req, env).provider()?.issuer;
            // Entra's single-tenant issuer: {authority}/{tenant GUID}/v2.0
            issuer
                .trim_end_matches('/')
                .rsplit('/')
                .nth(1)
                .filter(|t| is_guid(t))
                .map(str::to_ascii_lowercase)
                .ok_or_else(|| Error::new(Code::IdpBadResponse, format!("discovery issuer {} names no tenant GUID", sanitize(&issuer))))
        }
        Tenant::Multi { segment, .. } => Err(Error::new(
            Code::ConfigInvalid,
            format!(
                "realm sync reads one tenant's directory; a realm for `{segment}` names none (its users come from every allowed tenant): \
                 sync a realm whose tenant is the tenant's GUID or domain"
            ),
        )),
    }
}

pub fn sync_directory(req: &Request<SyncMembers>, env: &Env) -> Result<Value> {
    let cfg = &req.cfg;
    let sync_assigned = cfg.sync_users == SyncUsers::Assigned;
    // only holders of a `required-groups` key may log in (one of another tenant: nobody here)
    let restricted = !cfg.required_groups.is_empty();
    if !restricted && cfg.groups_map.is_empty() && !sync_assigned {
        return Err(Error::new(
            Code::ConfigInvalid,
            "realm sync needs keys (Entra group GUIDs or app role values) in `groups-map` or `required-groups`: it syncs \
             their holders (or, with `sync-users` assigned, every user assigned to the app)",
        ));
    }
    let tid = tenant_id(req, env)?;
    let mapped: Vec<(String, &String)> = cfg.groups_map.iter().filter_map(|(k, v)| Some((membership(k, &tid)?, v))).collect();
    let required: BTreeSet<String> = cfg.required_groups.iter().filter_map(|k| membership(k, &tid)).collect();
    // the keys of which a synced user holds one (unrestricted `assigned`: none, the assignment decides)
    let scope: BTreeSet<String> = match (restricted, sync_assigned) {
        (true, _) => required,
        (false, false) => mapped.iter().map(|(m, _)| m.clone()).collect(),
        (false, true) => BTreeSet::new(),
    };
    let wanted: BTreeSet<&String> = scope.iter().chain(mapped.iter().map(|(m, _)| m)).collect();
    let roles: BTreeSet<&str> = wanted.iter().filter(|m| !is_guid(m)).map(|m| m.as_str()).collect();

    let graph = Graph { http: env.http, token: app_token(cfg, env, &tid)?, origin: cfg.graph_url.clone(), requests: AtomicU64::new(0) };
    let mut warnings = Vec::new();
    let mut through: BTreeMap<Holder, Through> = if roles.is_empty() && !sync_assigned {
        BTreeMap::new()
    } else {
        graph.assignments(&cfg.client_id, &roles, sync_assigned, &mut warnings)?
    };
    for group in wanted.iter().filter(|m| is_guid(m)) {
        through.entry(Holder::TransitiveMembersOf(group.to_string())).or_default().keys.insert(group.to_string());
    }
    // every group on its own, the users with assignments of their own a few at a time
    let users: Vec<String> =
        through.keys().filter_map(|h| if let Holder::User(oid) = h { Some(oid.clone()) } else { None }).collect();
    let reads: Vec<Read> =
        through.keys().filter_map(Holder::group_read).chain(users.chunks(USERS_PER_FILTER).map(Read::Users)).collect();
    let listings = in_parallel(&reads, |r| graph.read(r))?;

    // per user: the keys held, and whether assigned to the app
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let mut held: BTreeMap<String, (BTreeSet<&String>, bool)> = BTreeMap::new();
    for (read, listed) in reads.iter().zip(listings) {
        for m in listed {
            let via = match read {
                Read::Group { holder, .. } => &through[*holder],
                // only what the user itself was assigned (Graph answers only the users asked for)
                Read::Users(_) => match through.get(&Holder::User(m.oid.clone())) {
                    Some(via) => via,
                    None => continue,
                },
            };
            let (keys, assigned) = held.entry(m.oid.clone()).or_default();
            keys.extend(&via.keys);
            *assigned |= via.assigned;
            members.entry(m.oid.clone()).or_insert(m);
        }
    }

    // oid → the names pinned to it in this tenant
    let mut pinned: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, pin) in req.body.pins.iter().filter(|(_, p)| p.tid.eq_ignore_ascii_case(&tid)) {
        pinned.entry(pin.oid.to_ascii_lowercase()).or_default().push(name.as_str());
    }
    let mut users: BTreeMap<String, Value> = BTreeMap::new();
    let mut skipped = Vec::new();
    let mut taken: BTreeMap<String, usize> = BTreeMap::new();
    for (oid, m) in &members {
        let (holds, assigned) = &held[oid];
        let holds_scope = holds.iter().any(|h| scope.contains(*h));
        let in_scope = if sync_assigned { *assigned && (!restricted || holds_scope) } else { holds_scope };
        if !in_scope {
            continue;
        }
        if m.guest && !cfg.allow_guests {
            skipped.push(json!({"oid": oid, "reason": "guest account (allow-guests is off)"}));
            continue;
        }
        let userid = match user_name(m, cfg.username_claim, &pinned).map(|n| check_user_name(&n, &req.realm)) {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => {
                skipped.push(json!({"oid": oid, "reason": e.message}));
                continue;
            }
            Err(why) => {
                // the names it is pinned under (a guest's): their PVE users are kept as they are
                let userids: Vec<String> =
                    pinned.get(oid).into_iter().flatten().filter_map(|n| check_user_name(n, &req.realm).ok()).collect();
                skipped.push(json!({"oid": oid, "userids": userids, "reason": why}));
                continue;
            }
        };
        *taken.entry(userid.clone()).or_default() += 1;
        let pve_groups: BTreeSet<&String> = mapped.iter().filter(|(k, _)| holds.contains(k)).map(|(_, v)| *v).collect();
        let mut user = json!({"userid": userid, "oid": oid, "enable": m.enabled, "groups": pve_groups});
        for (k, v) in [("firstname", &m.given), ("lastname", &m.surname), ("email", &m.mail)] {
            if let Some(v) = v {
                user[k] = json!(v);
            }
        }
        users.insert(format!("{userid}\n{oid}"), user);
    }
    // two identities under one name (e.g. the same mail): neither is synced, as neither could log in safely
    let users: Vec<Value> = users
        .into_values()
        .filter(|u| {
            let unique = taken[u["userid"].as_str().unwrap_or_default()] == 1;
            if !unique {
                let userid = u["userid"].as_str().unwrap_or_default();
                skipped.push(json!({"oid": u["oid"], "userids": [userid], "reason": format!("another Entra user has the same user id {userid}")}));
            }
            unique
        })
        .collect();
    // every mapped PVE group, as a login manages them all: one whose keys nobody here holds is emptied
    let mut groups: BTreeMap<&str, Vec<&str>> = cfg.groups_map.values().map(|g| (g.as_str(), Vec::new())).collect();
    for u in &users {
        for g in u["groups"].as_array().into_iter().flatten().filter_map(Value::as_str) {
            if let Some(list) = groups.get_mut(g) {
                list.push(u["userid"].as_str().unwrap_or_default());
            }
        }
    }
    let groups = json!(groups);
    let requests = graph.requests.load(Ordering::Relaxed);
    Ok(json!({"tid": tid, "users": users, "groups": groups, "skipped": skipped, "warnings": warnings, "requests": requests}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_threads_block_process_signals_but_not_faults() {
        let blocked = BlockedSignals::new();
        let mask = std::thread::spawn(|| {
            // SAFETY: queries this thread's mask into a local set.
            unsafe {
                let mut mask: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask);
                [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD, libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL]
                    .map(|s| libc::sigismember(&mask, s) == 1)
            }
        })
        .join()
        .unwrap();
        drop(blocked);
        assert_eq!(mask, [true, true, true, true, false, false, false, false]);
    }
    use crate::http::{HttpResponse, Transport};
    use std::sync::Mutex;

    const TID: &str = "11111111-2222-3333-4444-555555555555";
    const G1: &str = "6f7e8d9c-1111-4111-8111-000000000001";
    const G2: &str = "6f7e8d9c-1111-4111-8111-000000000002";

    /// Graph pages by URL; each URL's answers are used in turn (the last one repeats). Counts
    /// the reads in flight at once; each takes `delay`.
    #[derive(Default)]
    struct FakeGraph {
        pages: Mutex<BTreeMap<String, Vec<(u16, Value)>>>,
        seen: Mutex<Vec<String>>,
        delay: Duration,
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl Transport for FakeGraph {
        /// Discovery, for a realm whose tenant is a domain.
        fn get(&self, url: &str, _: u64) -> Result<HttpResponse> {
            self.seen.lock().unwrap().push(url.to_string());
            assert_eq!(url, "https://login.microsoftonline.com/contoso.example/v2.0/.well-known/openid-configuration");
            let doc = crate::discovery::tests::fixture("discovery-tenant-v2-sanitized.json");
            Ok(HttpResponse { status: 200, body: doc.to_string().into_bytes() })
        }
        fn post_form(&self, _: &str, _: &[(&str, &str)], _: u64) -> Result<HttpResponse> {
            Ok(HttpResponse { status: 200, body: br#"{"access_token":"tok","token_type":"Bearer","expires_in":3600}"#.to_vec() })
        }
        fn post_json(&self, _: &str, _: &str, _: &str, _: u64) -> Result<HttpResponse> {
            unreachable!()
        }
        fn get_bearer(&self, url: &str, bearer: &str, _: u64) -> Result<GraphResponse> {
            assert_eq!(bearer, "tok");
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_in_flight.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(self.delay);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.seen.lock().unwrap().push(url.to_string());
            let mut pages = self.pages.lock().unwrap();
            let list = pages.get_mut(url).unwrap_or_else(|| panic!("unexpected GET {url}"));
            let (status, body) = if list.len() > 1 { list.remove(0) } else { list[0].clone() };
            Ok(GraphResponse { status, body: body.to_string().into_bytes(), retry_after: Some("0".into()), request_id: Some("rid-1".into()) })
        }
    }

    fn url(g: &str) -> String {
        format!("https://graph.microsoft.com/v1.0/groups/{g}/transitiveMembers/microsoft.graph.user?$select={SELECT}&$top=999")
    }

    fn direct_url(g: &str) -> String {
        format!("https://graph.microsoft.com/v1.0/groups/{g}/members/microsoft.graph.user?$select={SELECT}&$top=999")
    }

    fn users_url(oids: &[&str]) -> String {
        let ids: Vec<String> = oids.iter().map(|oid| format!("'{oid}'")).collect();
        format!("https://graph.microsoft.com/v1.0/users?$filter=id%20in%20({})&$select={SELECT}&$top=999", ids.join(","))
    }

    fn user(oid: &str, upn: &str, enabled: bool) -> Value {
        json!({"id": oid, "userPrincipalName": upn, "mail": upn, "givenName": "G", "surname": "S", "accountEnabled": enabled, "userType": "Member"})
    }

    fn run(cfg_extra: Value, pages: Vec<(String, Vec<(u16, Value)>)>) -> (Result<Value>, Vec<String>) {
        let (res, fake) = run_with(cfg_extra, pages, Duration::ZERO);
        (res, fake.seen.into_inner().unwrap())
    }

    fn run_with(cfg_extra: Value, pages: Vec<(String, Vec<(u16, Value)>)>, delay: Duration) -> (Result<Value>, FakeGraph) {
        run_request(json!({}), cfg_extra, pages, delay)
    }

    /// `members`: the request's own members (e.g. `pins`).
    fn run_request(members: Value, cfg_extra: Value, pages: Vec<(String, Vec<(u16, Value)>)>, delay: Duration) -> (Result<Value>, FakeGraph) {
        let mut cfg = json!({"tenant-id": TID, "client-id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "client_secret": "x",
            "groups-map": format!("{G1}=admins;{G2}=ops")});
        for (k, v) in cfg_extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let mut req = json!({"realm": "entra", "config": cfg});
        for (k, v) in members.as_object().unwrap() {
            req[k] = v.clone();
        }
        let req = Request::parse(req).unwrap();
        let fake = FakeGraph { pages: Mutex::new(pages.into_iter().collect()), delay, ..Default::default() };
        let res = sync_directory(&req, &Env { now: 1_700_000_000, http: &fake });
        (res, fake)
    }

    const A: &str = "0a1b2c3d-0000-4000-8000-00000000a11c";
    const B: &str = "0b0b0b0b-0000-4000-8000-000000000b0b";

    #[test]
    fn pages_are_followed_and_users_named_as_at_login() {
        let next = "https://graph.microsoft.com/v1.0/groups/x/transitiveMembers?$skiptoken=2";
        let (res, seen) = run(json!({}), vec![
            (url(G1), vec![(200, json!({"value": [user(A, "Alice@Contoso.example", true)], "@odata.nextLink": next}))]),
            (next.into(), vec![(200, json!({"value": [user(B, "bob@contoso.example", false)]}))]),
            (url(G2), vec![(200, json!({"value": [user(B, "bob@contoso.example", false)]}))]),
        ]);
        let v = res.unwrap();
        assert_eq!(seen.len(), 3);
        assert_eq!(v["requests"], 3);
        assert_eq!(v["users"][0]["userid"], "alice@contoso.example@entra");
        assert_eq!(v["users"][0]["enable"], true);
        assert_eq!(v["users"][1]["enable"], false);
        assert_eq!(v["users"][1]["groups"], json!(["admins", "ops"]));
        assert_eq!(v["groups"], json!({"admins": ["alice@contoso.example@entra", "bob@contoso.example@entra"], "ops": ["bob@contoso.example@entra"]}));
    }

    #[test]
    fn required_groups_limit_the_users() {
        let (res, _) = run(json!({"required-groups": G2}), vec![
            (url(G1), vec![(200, json!({"value": [user(A, "alice@c.example", true), user(B, "bob@c.example", true)]}))]),
            (url(G2), vec![(200, json!({"value": [user(B, "bob@c.example", true)]}))]),
        ]);
        let v = res.unwrap();
        assert_eq!(v["users"].as_array().unwrap().len(), 1);
        assert_eq!(v["groups"]["admins"], json!(["bob@c.example@entra"]));
    }

    #[test]
    fn throttling_is_retried_then_answered() {
        let (res, seen) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(
            url(G1),
            vec![(429, json!({"error": {"code": "TooManyRequests"}})), (200, json!({"value": [user(A, "a@c.example", true)]}))],
        )]);
        assert_eq!(res.unwrap()["users"].as_array().unwrap().len(), 1);
        assert_eq!(seen.len(), 2);
        let (res, seen) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(url(G1), vec![(503, json!({}))])]);
        let e = res.unwrap_err();
        assert_eq!(e.code, Code::GraphError);
        assert_eq!(seen.len(), 1 + MAX_RETRIES as usize, "bounded retries");
        assert!(e.message.contains("request-id rid-1"), "{}", e.message);
    }

    #[test]
    fn errors_name_the_permission_and_never_follow_foreign_links() {
        let (res, _) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(url(G1), vec![(403, json!({"error": {"code": "Authorization_RequestDenied"}}))])]);
        let e = res.unwrap_err();
        assert!(e.hint.unwrap().contains("GroupMember.Read.All"));
        let (res, seen) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(
            url(G1),
            vec![(200, json!({"value": [], "@odata.nextLink": "https://evil.example/v1.0/x"}))],
        )]);
        assert_eq!(res.unwrap_err().code, Code::GraphError);
        assert_eq!(seen.len(), 1);
    }

    #[test]
    fn guests_and_duplicates_are_skipped() {
        let mut guest = user(B, "bob_x.example#EXT#@c.example", true);
        guest["userType"] = json!("Guest");
        let (res, _) = run(json!({"groups-map": format!("{G1}=admins")}), vec![(url(G1), vec![(200, json!({"value": [user(A, "a@c.example", true), guest]}))])]);
        let v = res.unwrap();
        assert_eq!(v["users"].as_array().unwrap().len(), 1);
        assert_eq!(v["skipped"][0]["oid"], B);

        let (res, _) = run(json!({"groups-map": format!("{G1}=admins"), "username-claim": "email"}), vec![(
            url(G1),
            vec![(200, json!({"value": [user(A, "same@c.example", true), user(B, "SAME@c.example", true)]}))],
        )]);
        let v = res.unwrap();
        assert_eq!(v["users"], json!([]));
        assert_eq!(v["skipped"].as_array().unwrap().len(), 2);
        // the name both would take, so that an existing PVE user of that name is kept as it is
        assert_eq!(v["skipped"][0]["userids"], json!(["same@c.example@entra"]));
    }

    const SP: &str = "5e5e5e5e-0000-4000-8000-00000000005e";
    const ROLE_ADMIN: &str = "9a000000-0000-4000-8000-0000000000a1";
    const ROLE_OLD: &str = "9a000000-0000-4000-8000-0000000000a2";
    const C: &str = "0d0d0d0d-0000-4000-8000-000000000d0d";
    const OTHER_TID: &str = "22222222-3333-4444-5555-666666666666";

    fn sp_url() -> String {
        "https://graph.microsoft.com/v1.0/servicePrincipals(appId='aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee')?$select=id,appRoles,appRoleAssignmentRequired".into()
    }

    fn assigned_url() -> String {
        format!("https://graph.microsoft.com/v1.0/servicePrincipals/{SP}/appRoleAssignedTo?$select=appRoleId,principalId,principalType&$top=999")
    }

    fn assignment(role: &str, principal: &str, kind: &str) -> Value {
        json!({"appRoleId": role, "principalId": principal, "principalType": kind})
    }

    #[test]
    fn app_role_holders_are_synced_directly_and_through_groups() {
        let next = format!("{}&$skiptoken=x", assigned_url());
        let roles = json!({"id": SP, "appRoles": [
            {"id": ROLE_ADMIN, "value": "PVE.Admin", "isEnabled": true},
            {"id": ROLE_OLD, "value": "PVE.Old", "isEnabled": false},
        ]});
        let (res, seen) = run(
            json!({"groups-map": format!("PVE.Admin=admins;PVE.Old=old;PVE.Missing=none;{OTHER_TID}:PVE.Admin=foreign;{TID}:{G1}=ops")}),
            vec![
                (sp_url(), vec![(200, roles)]),
                (assigned_url(), vec![(200, json!({"value": [assignment(ROLE_ADMIN, A, "User"), assignment(ROLE_OLD, B, "User")], "@odata.nextLink": next}))]),
                (next.clone(), vec![(200, json!({"value": [assignment(ROLE_ADMIN, G2, "Group"), assignment(ROLE_ADMIN, SP, "ServicePrincipal")]}))]),
                (users_url(&[A]), vec![(200, json!({"value": [user(A, "a@c.example", true)]}))]),
                (direct_url(G2), vec![(200, json!({"value": [user(C, "c@c.example", false)]}))]),
                (url(G1), vec![(200, json!({"value": [user(B, "b@c.example", true)]}))]),
            ],
        );
        let v = res.unwrap();
        assert_eq!(seen.len(), 6, "{seen:?}");
        assert_eq!(v["requests"], 6);
        assert_eq!(v["groups"], json!({
            "admins": ["a@c.example@entra", "c@c.example@entra"],
            "foreign": [], "none": [], "old": [],
            "ops": ["b@c.example@entra"],
        }), "a disabled role, an undefined role and another tenant's key are held by nobody");
        let warnings = v["warnings"].to_string();
        assert!(warnings.contains("'PVE.Missing'") && warnings.contains("'PVE.Old'"), "{warnings}");

        // required role: only its holders are synced; a deleted direct holder is left out
        let (res, _) = run(
            json!({"groups-map": format!("{G1}=ops"), "required-groups": "PVE.Admin"}),
            vec![
                (sp_url(), vec![(200, json!({"id": SP, "appRoles": [{"id": ROLE_ADMIN, "value": "PVE.Admin"}]}))]),
                (assigned_url(), vec![(200, json!({"value": [assignment(ROLE_ADMIN, A, "User"), assignment(ROLE_ADMIN, C, "User")]}))]),
                // C was deleted since it was assigned: not listed
                (users_url(&[A, C]), vec![(200, json!({"value": [user(A, "a@c.example", true)]}))]),
                (url(G1), vec![(200, json!({"value": [user(A, "a@c.example", true), user(B, "b@c.example", true)]}))]),
            ],
        );
        let v = res.unwrap();
        assert_eq!(v["users"].as_array().unwrap().len(), 1);
        assert_eq!(v["groups"], json!({"ops": ["a@c.example@entra"]}));

        let (res, _) = run(json!({"groups-map": "PVE.Admin=admins"}), vec![(sp_url(), vec![(404, json!({"error": {"code": "Request_ResourceNotFound"}}))])]);
        assert!(res.unwrap_err().hint.unwrap().contains("enterprise application"));
    }

    /// Entra passes an app role assigned to a group on to the group's direct members only (as
    /// in tokens' `roles`), while its GUID is held by nested members too (tokens' `groups`).
    #[test]
    fn a_group_role_reaches_direct_members_only() {
        const NESTED: &str = "0e0e0e0e-0000-4000-8000-000000000e5e";
        let (res, seen) = run(
            json!({"groups-map": format!("PVE.Admin=admins;{G2}=ops")}),
            vec![
                (sp_url(), vec![(200, json!({"id": SP, "appRoles": [{"id": ROLE_ADMIN, "value": "PVE.Admin"}]}))]),
                (assigned_url(), vec![(200, json!({"value": [assignment(ROLE_ADMIN, G2, "Group")]}))]),
                (direct_url(G2), vec![(200, json!({"value": [user(C, "c@c.example", true)]}))]),
                (url(G2), vec![(200, json!({"value": [user(C, "c@c.example", true), user(NESTED, "n@c.example", true)]}))]),
            ],
        );
        let v = res.unwrap();
        assert_eq!(v["groups"], json!({"admins": ["c@c.example@entra"], "ops": ["c@c.example@entra", "n@c.example@entra"]}));
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(v["warnings"], json!([]));
    }

    /// `sync-users` assigned: every user assigned to the app (with an enabled role or Default
    /// Access, directly or as a direct member of an assigned group), whatever the map; the map
    /// still decides the PVE groups, and `required-groups` still restricts.
    #[test]
    fn assigned_syncs_every_user_assigned_to_the_app() {
        const D: &str = "0d0d0d0d-0000-4000-8000-0000000000dd";
        const E: &str = "0e0e0e0e-0000-4000-8000-0000000000ee";
        const F: &str = "0f0f0f0f-0000-4000-8000-0000000000ff";
        let directory = |required: bool| {
            let roles = json!([{"id": ROLE_ADMIN, "value": "PVE.Admin"}, {"id": ROLE_OLD, "value": "PVE.Old", "isEnabled": false}]);
            vec![
                (sp_url(), vec![(200, json!({"id": SP, "appRoles": roles, "appRoleAssignmentRequired": required}))]),
                (assigned_url(), vec![(200, json!({"value": [
                    assignment(DEFAULT_ACCESS, D, "User"), assignment(DEFAULT_ACCESS, G1, "Group"), assignment(ROLE_ADMIN, A, "User"),
                    // neither a disabled role nor a service principal makes a user to sync
                    assignment(ROLE_OLD, F, "User"), assignment(DEFAULT_ACCESS, SP, "ServicePrincipal"),
                ]}))]),
                (users_url(&[A, D]), vec![(200, json!({"value": [user(A, "a@c.example", true), user(D, "d@c.example", true)]}))]),
                (direct_url(G1), vec![(200, json!({"value": [user(B, "b@c.example", true)]}))]),
                // E is in a mapped group, but not assigned
                (url(G2), vec![(200, json!({"value": [user(A, "a@c.example", true), user(E, "e@c.example", true)]}))]),
            ]
        };
        let userids = |v: &Value| -> Vec<String> {
            v["users"].as_array().unwrap().iter().map(|u| u["userid"].as_str().unwrap().to_string()).collect()
        };
        let cfg = json!({"sync-users": "assigned", "groups-map": format!("PVE.Admin=admins;{G2}=ops")});
        let (res, seen) = run(cfg.clone(), directory(true));
        let v = res.unwrap();
        assert_eq!(userids(&v), ["a@c.example@entra", "b@c.example@entra", "d@c.example@entra"]);
        assert_eq!(v["groups"], json!({"admins": ["a@c.example@entra"], "ops": ["a@c.example@entra"]}));
        assert_eq!((seen.len(), v["warnings"].clone()), (5, json!([])));

        // an app that does not require assignment lets others log in, whom a sync would remove
        let (res, seen) = run(cfg, directory(false));
        let e = res.unwrap_err();
        assert_eq!(e.code, Code::ConfigInvalid);
        assert!(e.message.contains("does not require assignment") && e.hint.unwrap().contains("Assignment required"), "{}", e.message);
        assert_eq!(seen.len(), 1, "nothing read after the service principal: {seen:?}");

        // required-groups: of the assigned users only their holders, by role or by (transitive) group
        let (res, _) = run(json!({"sync-users": "assigned", "groups-map": format!("{G2}=ops"), "required-groups": "PVE.Admin"}), directory(true));
        assert_eq!(userids(&res.unwrap()), ["a@c.example@entra"]);
        let (res, _) = run(json!({"sync-users": "assigned", "groups-map": null, "required-groups": G2}), directory(true));
        assert_eq!(userids(&res.unwrap()), ["a@c.example@entra"], "E holds G2, but is not assigned");

        // no keys at all: the assigned users, in no group
        let (res, _) = run(json!({"sync-users": "assigned", "groups-map": null}), directory(true));
        let v = res.unwrap();
        assert_eq!(userids(&v).len(), 3);
        assert_eq!(v["groups"], json!({}));
        // while a mapped sync without keys has nobody to read
        let e = run(json!({"groups-map": null}), vec![]).0.unwrap_err();
        assert_eq!(e.code, Code::ConfigInvalid);
    }

    /// `required-groups` naming only another tenant's keys: nobody here may log in, so nobody is
    /// synced, in either mode (not: every holder of a mapped key, or every assigned user).
    #[test]
    fn required_keys_of_another_tenant_sync_nobody() {
        let required = format!("{OTHER_TID}:PVE.Admin");
        let (res, _) = run(
            json!({"groups-map": format!("{G1}=ops"), "required-groups": required}),
            vec![(url(G1), vec![(200, json!({"value": [user(A, "a@c.example", true)]}))])],
        );
        let v = res.unwrap();
        assert_eq!((v["users"].clone(), v["groups"].clone()), (json!([]), json!({"ops": []})));
        let (res, _) = run(
            json!({"sync-users": "assigned", "groups-map": null, "required-groups": required}),
            vec![
                (sp_url(), vec![(200, json!({"id": SP, "appRoles": [], "appRoleAssignmentRequired": true}))]),
                (assigned_url(), vec![(200, json!({"value": [assignment(DEFAULT_ACCESS, A, "User")]}))]),
                (users_url(&[A]), vec![(200, json!({"value": [user(A, "a@c.example", true)]}))]),
            ],
        );
        assert_eq!(res.unwrap()["users"], json!([]));
    }

    /// Users with assignments of their own are read 15 to a request (Graph's limit for `in`),
    /// and only what they asked for counts: a user Graph adds unasked gets nothing.
    #[test]
    fn directly_assigned_users_are_read_by_fifteen() {
        let oids: Vec<String> = (0..20).map(|i| format!("0f000000-0000-4000-8000-{i:012}")).collect();
        let oids: Vec<&str> = oids.iter().map(String::as_str).collect();
        let assignments: Vec<Value> = oids.iter().map(|oid| assignment(ROLE_ADMIN, oid, "User")).collect();
        let listed = |oids: &[&str]| json!({"value": oids.iter().map(|oid| user(oid, &format!("{}@c.example", &oid[30..]), true)).collect::<Vec<_>>()});
        let mut second = listed(&oids[15..]);
        second["value"].as_array_mut().unwrap().push(user(A, "a@c.example", true));
        let (res, seen) = run(
            json!({"groups-map": "PVE.Admin=admins"}),
            vec![
                (sp_url(), vec![(200, json!({"id": SP, "appRoles": [{"id": ROLE_ADMIN, "value": "PVE.Admin"}]}))]),
                (assigned_url(), vec![(200, json!({"value": assignments}))]),
                (users_url(&oids[..15]), vec![(200, listed(&oids[..15]))]),
                (users_url(&oids[15..]), vec![(200, second)]),
            ],
        );
        let v = res.unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(v["users"].as_array().unwrap().len(), 20);
        assert!(!v["groups"]["admins"].as_array().unwrap().contains(&json!("a@c.example@entra")));
    }

    /// A guest's `preferred_username` names it by its home tenant, its directory entry here
    /// does not: it is synced under the name its login pinned, and skipped before it has one;
    /// members are named from the directory whatever the pins say. Its `upn` (the optional
    /// claim with include_externally_authenticated_upn) is its UPN here: no pin needed.
    #[test]
    fn guests_are_named_by_their_pin() {
        const GUEST: &str = "0c0c0c0c-0000-4000-8000-000000000c0c";
        let guest = json!({"id": GUEST, "userPrincipalName": "guest_fabrikam.example#EXT#@contoso.example",
            "mail": "guest@fabrikam.example", "accountEnabled": true, "userType": "Guest"});
        let pages = || vec![(url(G1), vec![(200, json!({"value": [guest.clone(), user(A, "a@c.example", true)]}))])];
        let upn = json!({"groups-map": format!("{G1}=ops"), "allow-guests": 1});
        let (res, _) = run_request(json!({"pins": {"guest@fabrikam.example": {"tid": TID, "oid": GUEST}}}), upn, pages(), Duration::ZERO);
        assert_eq!(res.unwrap()["groups"]["ops"], json!(["a@c.example@entra", "guest_fabrikam.example#ext#@contoso.example@entra"]));

        let cfg = json!({"groups-map": format!("{G1}=ops"), "allow-guests": 1, "username-claim": "preferred_username"});
        let sync = |pins: Value| run_request(json!({"pins": pins}), cfg.clone(), pages(), Duration::ZERO).0.unwrap();

        let v = sync(json!({}));
        assert_eq!(v["groups"]["ops"], json!(["a@c.example@entra"]));
        assert!(v["skipped"][0]["reason"].as_str().unwrap().contains("has not logged in yet"), "{}", v["skipped"]);
        // pinned in another tenant: not this guest
        assert_eq!(sync(json!({"guest@fabrikam.example": {"tid": OTHER_TID, "oid": GUEST}}))["groups"]["ops"], json!(["a@c.example@entra"]));
        let v = sync(json!({"guest@fabrikam.example": {"tid": TID, "oid": GUEST.to_uppercase()}, "someone": {"tid": TID, "oid": A}}));
        assert_eq!(v["groups"]["ops"], json!(["a@c.example@entra", "guest@fabrikam.example@entra"]), "a's pin does not rename a member");
        let v = sync(json!({"guest@fabrikam.example": {"tid": TID, "oid": GUEST}, "guest2@fabrikam.example": {"tid": TID, "oid": GUEST}}));
        assert!(v["skipped"][0]["reason"].as_str().unwrap().contains("several user names"), "{}", v["skipped"]);
        // both names' PVE users are kept as they are (which one is current is not to be known)
        assert_eq!(v["skipped"][0]["userids"], json!(["guest2@fabrikam.example@entra", "guest@fabrikam.example@entra"]));
        // username-claim oid: no pin needed
        let (res, _) = run_with(json!({"groups-map": format!("{G1}=ops"), "allow-guests": 1, "username-claim": "oid"}), pages(), Duration::ZERO);
        assert_eq!(res.unwrap()["users"].as_array().unwrap().len(), 2);
    }

    /// An external member (cross-tenant sync: userType Member, `#EXT#` UPN) is a guest at login
    /// (its token's `idp` is its home tenant): sync names it by the pin its login made, not by
    /// its UPN, and skips it unless guests are allowed, as the login refuses it.
    #[test]
    fn external_members_are_named_as_their_login_names_them() {
        const EXT: &str = "0e0e0e0e-0000-4000-8000-000000000e0e";
        let ext = json!({"id": EXT, "userPrincipalName": "bob_fabrikam.example#EXT#@contoso.example",
            "mail": "bob@fabrikam.example", "accountEnabled": true, "userType": "Member"});
        let pages = || vec![(url(G1), vec![(200, json!({"value": [ext.clone()]}))])];
        let pins = || json!({"pins": {"bob@fabrikam.example": {"tid": TID, "oid": EXT}}});
        let cfg = json!({"groups-map": format!("{G1}=ops"), "allow-guests": 1, "username-claim": "preferred_username"});
        let (res, _) = run_request(pins(), cfg, pages(), Duration::ZERO);
        assert_eq!(res.unwrap()["groups"]["ops"], json!(["bob@fabrikam.example@entra"]));
        let (res, _) = run_request(pins(), json!({"groups-map": format!("{G1}=ops")}), pages(), Duration::ZERO);
        let v = res.unwrap();
        assert_eq!(v["groups"]["ops"], json!([]), "{v}");
        assert!(v["skipped"][0]["reason"].as_str().unwrap().contains("allow-guests"), "{v}");
    }

    #[test]
    fn group_listings_run_in_parallel_bounded() {
        let groups: Vec<String> = (0..40).map(|i| format!("6f7e8d9c-2222-4222-8222-{i:012}")).collect();
        let map: Vec<String> = groups.iter().enumerate().map(|(i, g)| format!("{g}=g{i}")).collect();
        let map = map.join(";");
        let pages = groups
            .iter()
            .enumerate()
            .map(|(i, g)| (url(g), vec![(200, json!({"value": [user(&format!("0f000000-0000-4000-8000-{i:012}"), &format!("u{i}@c.example"), true)]}))]))
            .collect();
        let (res, fake) = run_with(json!({"groups-map": map}), pages, Duration::from_millis(20));
        let v = res.unwrap();
        assert_eq!(v["users"].as_array().unwrap().len(), 40);
        assert_eq!(v["groups"]["g7"], json!(["u7@c.example@entra"]));
        let most = fake.most_in_flight.load(Ordering::SeqCst);
        assert!(most > 1 && most <= PARALLEL, "{most} reads at once");

        // one failing listing fails the sync with its own error
        let mut pages: Vec<(String, Vec<(u16, Value)>)> = groups.iter().map(|g| (url(g), vec![(200, json!({"value": []}))])).collect();
        pages[17].1 = vec![(404, json!({"error": {"code": "Request_ResourceNotFound"}}))];
        let (res, _) = run_with(json!({"groups-map": map}), pages, Duration::ZERO);
        let e = res.unwrap_err();
        assert!(e.message.contains(&groups[17]) && e.http_status == Some(404), "{}", e.message);
    }

    #[test]
    fn tenants_sync_reads() {
        // a verified domain: the tenant GUID (for the pins) is the one in discovery's issuer
        let (res, seen) = run(json!({"tenant-id": "contoso.example", "groups-map": format!("{G1}=admins")}), vec![
            (url(G1), vec![(200, json!({"value": [user(A, "a@c.example", true)]}))]),
        ]);
        assert_eq!(res.unwrap()["tid"], "88888888-8888-8888-8888-888888888888");
        assert_eq!(seen.len(), 2, "discovery, then the group");

        for (extra, what) in [
            (json!({"tenant-id": "organizations", "allowed-tenants": TID}), "realm for `organizations` names none"),
            (json!({"tenant-id": "common", "allowed-tenants": TID}), "realm for `common` names none"),
            (json!({"groups-map": ""}), "needs keys"),
        ] {
            let (res, seen) = run(extra, vec![]);
            let e = res.unwrap_err();
            assert_eq!(e.code, Code::ConfigInvalid);
            assert!(e.message.contains(what), "{}", e.message);
            assert!(seen.is_empty());
        }
    }
}
