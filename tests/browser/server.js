'use strict';
// Test servers on 127.0.0.1 for the browser test.
//
// The PVE node (one origin): serves the REAL frontend built by frontend.js from the pinned upstream
// snapshot, under the paths pveproxy maps (PVE/Service/pveproxy.pm: pages and add_dirs), with the
// static files of the Debian packages a node installs (ExtJS: npm extjs-gpl 6.2 instead of
// libjs-extjs 7.0, which is not in Debian; Font Awesome: fonts-font-awesome). MOCKED: the HTTP API
// under /api2/json and /api2/extjs, answering in the shapes of PVE's API formatters
// (PVE::APIServer::Formatter::Standard) and recording every call.
//
// Microsoft (another origin, like login.microsoftonline.com): MOCKED authorize page that sends the
// browser back to the redirect URI with ?code=&state= (or an Entra error) after a click.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const frontend = require('./frontend.js');

const browserDir = __dirname;
const repoDir = path.resolve(browserDir, '..', '..');
const extDir = path.join(browserDir, 'node_modules', 'extjs-gpl', 'build');
const FA_DIR = '/usr/share/fonts-font-awesome';

const TYPES = {
    '.html': 'text/html; charset=utf-8', '.js': 'application/javascript', '.css': 'text/css',
    '.png': 'image/png', '.gif': 'image/gif', '.svg': 'image/svg+xml', '.ico': 'image/x-icon',
    '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf', '.eot': 'application/vnd.ms-fontobject',
};

const ENTRA_CLIENT_ID = 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee';

// the text every state of the library starts with, read from where it is defined
const STATE_PREFIX = fs.readFileSync(path.join(repoDir, 'src', 'state', 'mod.rs'), 'utf8')
    .match(/^pub const STATE_PREFIX: &str = "([^"]+)";$/m)[1];
// a state of PVE's OpenID realms: JSON text (proxmox-openid's PublicAuthState)
const OIDC_STATE = JSON.stringify({ csrf_token: 'Q1NSRi10b2tlbi1vZi1vaWRj', realm: 'oidc' });
const ENTRA_TENANT = '11111111-2222-3333-4444-555555555555';

// what GET /access/domains answers on a node with pam, pve, an OpenID and an Entra ID realm
const DOMAINS = [
    { realm: 'entra', type: 'entraid', comment: 'Contoso (Entra ID)' },
    { realm: 'oidc', type: 'openid', comment: 'Some OpenID provider' },
    { realm: 'pam', type: 'pam', comment: 'Linux PAM standard authentication' },
    { realm: 'pve', type: 'pve', comment: 'Proxmox VE authentication server' },
];

// what GET /access/domains/entra answers: never a secret
const ENTRA_REALM_CONFIG = {
    type: 'entraid',
    'tenant-id': ENTRA_TENANT,
    'client-id': ENTRA_CLIENT_ID,
    cloud: 'usgov',
    'username-claim': 'upn',
    autocreate: 1,
    'groups-map': '6f7e8d9c-1111-4111-8111-000000000001=admins',
    'groups-sync': 1,
    prompt: 'select_account',
    comment: 'Contoso (Entra ID)',
    digest: '4a7c3e0f1b2d5e6f7a8b9c0d1e2f3a4b5c6d7e8f',
};

// the cap object /access/ticket returns for an administrator (PVE::RPCEnvironment::compute_api_permission)
const ADMIN_CAP = {
    dc: { 'Sys.Audit': 1, 'Sys.Modify': 1, 'SDN.Audit': 1, 'SDN.Allocate': 1, 'SDN.Use': 1 },
    nodes: { 'Sys.Audit': 1, 'Sys.Modify': 1, 'Sys.Console': 1, 'Sys.Syslog': 1, 'Sys.PowerMgmt': 1, 'Sys.Incoming': 1, 'Permissions.Modify': 1 },
    access: { 'User.Modify': 1, 'Group.Allocate': 1, 'Permissions.Modify': 1 },
    vms: { 'VM.Audit': 1, 'VM.Allocate': 1, 'VM.PowerMgmt': 1, 'VM.Migrate': 1, 'VM.Console': 1, 'Permissions.Modify': 1 },
    storage: { 'Datastore.Audit': 1, 'Datastore.Allocate': 1, 'Datastore.AllocateSpace': 1, 'Permissions.Modify': 1 },
    sdn: { 'SDN.Audit': 1, 'SDN.Allocate': 1, 'SDN.Use': 1, 'Permissions.Modify': 1 },
    mapping: { 'Mapping.Audit': 1, 'Mapping.Modify': 1, 'Mapping.Use': 1, 'Permissions.Modify': 1 },
};

const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sha256 = (data) => crypto.createHash('sha256').update(data).digest();
// PVE::API2::EntraID's answer to an anonymous call that failed: its generic text, code, reference
const failure = (status, text, code) => new ApiError(status, `${text} (${code}, reference 5e1f0001)`);

function ticketFor(username, cap = ADMIN_CAP) {
    // PVE::AccessControl::assemble_ticket: PVE:<userid>:<hex time>::<signature>
    return { username, ticket: `PVE:${username}:6745A1B2::c2lnbmF0dXJl`, CSRFPreventionToken: '6745A1B2:Y3NyZg', cap, clustername: 'test' };
}

// the first-factor answer of /access/ticket for a user with TFA (new-format): a !tfa! ticket
// carrying the challenge, NeedTFA and the user name (PVE::API2::AccessControl::create_ticket_do)
function tfaTicketFor(username, challenge) {
    return {
        username,
        ticket: `PVE:!tfa!${encodeURIComponent(JSON.stringify(challenge))}:6745A1B2::c2lnbmF0dXJl`,
        CSRFPreventionToken: '6745A1B2:Y3NyZg',
        NeedTFA: 1,
    };
}
const TOTP_CHALLENGE = { totp: true, recovery: [] };

// the authorization code Microsoft (mocked) returns with an Entra ID state
const codeFor = (state) => `code-for-${state.slice(STATE_PREFIX.length, STATE_PREFIX.length + 8)}`;

class ApiError extends Error {
    constructor(status, message, errors) {
        super(message);
        this.status = status;
        this.errors = errors;
    }
}

function start({ version, hooked = true }) {
    const built = frontend.build(version);
    const up = path.join(frontend.upstreamBase, version);
    const requests = [];
    const missing = [];
    const options = { authUrlFails: false, authUrlRateLimited: false, entraTfa: false };
    const flows = new Map(); // sealed state -> {realm, bindingHash, redirect}
    let realmConfig = { ...ENTRA_REALM_CONFIG };
    let msUrl;
    // as PVE::API2::Domains names its sync workers
    const syncUpid = (dryRun) => `UPID:pve-test:00001234:00005678:6553F100:auth-realm-sync${dryRun ? '-test' : ''}:entra:root@pam:`;

    // pveproxy's pages and add_dirs, with where each lives on this machine
    const pages = {
        '/proxmoxlib.js': path.join(built, 'proxmoxlib.js'),
        '/favicon.ico': path.join(up, 'pve-manager', 'www', 'images', 'favicon.ico'),
        '/pve2/js/pvemanagerlib.js': path.join(built, 'pvemanagerlib.js'),
        '/pve2/js/pve-entraid.js': path.join(repoDir, 'www', 'pve-entraid.js'),
        '/pve2/js/u2f-api.js': path.join(up, 'pve-manager', 'www', 'u2f-api.js'),
        '/pve2/ext6/charts.js': path.join(extDir, 'packages', 'charts', 'classic', 'charts.js'),
        '/pve2/ext6/charts-debug.js': path.join(extDir, 'packages', 'charts', 'classic', 'charts-debug.js'),
        '/pve2/ext6/crisp/resources/charts-all.css': path.join(extDir, 'packages', 'charts', 'classic', 'crisp', 'resources', 'charts-all.css'),
    };
    const dirs = [
        ['/pve2/ext6/theme-crisp/', path.join(extDir, 'classic', 'theme-crisp')],
        ['/pve2/ext6/locale/', path.join(extDir, 'classic', 'locale')],
        ['/pve2/ext6/', extDir],
        ['/pve2/css/', path.join(up, 'pve-manager', 'www', 'css')],
        ['/pve2/images/', path.join(up, 'pve-manager', 'www', 'images')],
        ['/pve2/fa/css/', path.join(FA_DIR, 'css')],
        ['/pve2/fa/fonts/', path.join(FA_DIR, 'fonts')],
        ['/pwt/css/', path.join(up, 'proxmox-widget-toolkit', 'src', 'css')],
        ['/pwt/images/', path.join(up, 'proxmox-widget-toolkit', 'src', 'images')],
    ];
    // files a node has that are not built or packaged here; served empty so that the page is
    // complete: font-logos (distribution logos), the dark theme (built with sass; only used
    // with prefers-color-scheme: dark), qrcode.min.js (Proxmox's libjs-qrcodejs, not in Debian;
    // only used to show a new TOTP secret)
    const servedEmpty = ['/pve2/font-logos/', '/pwt/themes/', '/qrcode.min.js'];

    function staticFile(pathname) {
        if (pages[pathname]) {
            return pages[pathname];
        }
        for (const [prefix, dir] of dirs) {
            if (pathname.startsWith(prefix)) {
                const file = path.join(dir, path.normalize(pathname.slice(prefix.length)));
                return file.startsWith(dir) ? file : undefined;
            }
        }
        return undefined;
    }

    // ---- mocked API: handler(params, match) returns data or throws ApiError ----
    const api = [
        ['GET', /^\/version$/, () => ({ version: frontend.debianVersion(version, 'pve-manager'), release: version === 'pve9' ? '9.2' : '8.4', repoid: '14a22df3' })],
        ['GET', /^\/access\/domains$/, () => DOMAINS],
        ['GET', /^\/access\/domains\/entra$/, () => realmConfig],
        ['POST', /^\/access\/domains$/, () => null],
        ['PUT', /^\/access\/domains\/entra$/, (p) => {
            if (p.digest !== undefined && p.digest !== realmConfig.digest) {
                throw new ApiError(500, 'detected modified configuration - file changed by other user? Try again.');
            }
            return null;
        }],
        ['POST', /^\/access\/ticket$/, (p) => {
            if (p['tfa-challenge'] !== undefined) {
                if (!p['tfa-challenge'].startsWith('PVE:!tfa!') || p.password !== 'totp:123456') {
                    throw new ApiError(401, 'authentication failure');
                }
                return ticketFor(p.username);
            }
            if (p.username === 'root' && p.realm === 'pam' && p.password === 'secret') {
                return ticketFor('root@pam');
            }
            // the workspace renews its ticket by posting it as password
            if (p.password && p.password.startsWith(`PVE:${p.username}:`)) {
                return ticketFor(p.username);
            }
            throw new ApiError(401, 'authentication failure');
        }],
        ['POST', /^\/access\/openid\/auth-url$/, (p) => `${msUrl}/oidc/authorize?state=${encodeURIComponent(OIDC_STATE)}&redirect_uri=${encodeURIComponent(p['redirect-url'])}`],
        ['POST', /^\/access\/openid\/login$/, (p) => {
            if (p.code === 'oidc-code' && p.state === OIDC_STATE) {
                return ticketFor('bob@oidc');
            }
            throw new ApiError(401, 'authentication failure');
        }],
        ['POST', /^\/access\/entraid\/auth-url$/, (p) => {
            if (options.authUrlFails) {
                throw failure(502, 'Entra ID could not complete the login', 'discovery.invalid');
            }
            if (options.authUrlRateLimited) {
                // PVE::API2::EntraID's answer when the node's budget is spent (request.rate_limited)
                throw failure(429, 'too many sign-in attempts; try again in a minute', 'request.rate_limited');
            }
            if (!/^[A-Za-z0-9_-]{43}$/.test(p['binding-hash'] || '')) {
                throw new ApiError(400, 'Parameter verification failed.', { 'binding-hash': 'value does not match the regex pattern' });
            }
            // like the library: a sealed, single-use state bound to realm, redirect and browser
            const state = STATE_PREFIX + b64url(crypto.randomBytes(48));
            flows.set(state, { realm: p.realm, bindingHash: p['binding-hash'], redirect: p['redirect-url'] });
            const url = new URL(`${msUrl}/${ENTRA_TENANT}/oauth2/v2.0/authorize`);
            url.searchParams.set('client_id', realmConfig['client-id']);
            url.searchParams.set('response_type', 'code');
            url.searchParams.set('redirect_uri', p['redirect-url']);
            url.searchParams.set('scope', 'openid profile email');
            url.searchParams.set('state', state);
            return url.toString();
        }],
        ['POST', /^\/access\/entraid\/login$/, (p) => {
            const flow = flows.get(p.state);
            flows.delete(p.state);
            const stale = (code) => failure(400, 'the login is no longer valid; start it again', code);
            if (!flow || p.code !== codeFor(p.state)) {
                throw stale('state.invalid');
            }
            if (p.realm !== flow.realm || p['redirect-url'] !== flow.redirect) {
                throw stale('state.realm_mismatch');
            }
            if (!/^[A-Za-z0-9_-]{43}$/.test(p['binding-key'] || '') || b64url(sha256(Buffer.from(p['binding-key'], 'base64url'))) !== flow.bindingHash) {
                throw stale('state.binding_mismatch');
            }
            const user = 'alice@contoso.example@entra';
            return options.entraTfa ? tfaTicketFor(user, TOTP_CHALLENGE) : ticketFor(user);
        }],
        ['GET', /^\/cluster\/resources$/, () => [
            { id: 'node/pve-test', type: 'node', node: 'pve-test', status: 'online', level: '', maxcpu: 4, cpu: 0.02, maxmem: 8589934592, mem: 2147483648, maxdisk: 34359738368, disk: 4294967296, uptime: 3600 },
            { id: 'storage/pve-test/local', type: 'storage', node: 'pve-test', storage: 'local', status: 'available', plugintype: 'dir', content: 'iso,vztmpl,backup', shared: 0, maxdisk: 34359738368, disk: 4294967296 },
        ]],
        ['GET', /^\/cluster\/options$/, () => ({ 'registered-tags': '', 'allowed-tags': '' })],
        ['GET', /^\/cluster\/status$/, () => [{ id: 'node/pve-test', type: 'node', name: 'pve-test', nodeid: 0, ip: '127.0.0.1', local: 1, online: 1, level: '' }]],
        ['GET', /^\/cluster\/tasks$/, () => []],
        ['GET', /^\/cluster\/sdn$/, () => ['vnets', 'zones', 'controllers', 'ipams', 'dns'].map((id) => ({ id }))],
        ['GET', /^\/cluster\/ha\/status\/current$/, () => []],
        ['GET', /^\/cluster\/ceph\/status$/, () => { throw new ApiError(500, 'binary not installed: /usr/bin/ceph-mon'); }],
        ['GET', /^\/nodes\/localhost\/subscription$/, () => ({ status: 'active', productname: 'Proxmox VE Community Subscription 1 CPU/year', level: 'c', sockets: 1, key: 'pve1c-0123456789', checktime: 1700000000, nextduedate: '2099-01-01' })],
        ['GET', /^\/cluster\/jobs\/realm-sync$/, () => []],
        ['POST', /^\/cluster\/jobs\/realm-sync\/[^/]+$/, () => null],
        // realm sync: the worker's UPID, then the task viewer's status and log polls
        ['POST', /^\/access\/domains\/entra\/sync$/, (p) => syncUpid(p['dry-run'] === '1')],
        ['GET', /^\/nodes\/pve-test\/tasks\/([^/]+)\/status$/, (p, m) => ({
            upid: decodeURIComponent(m[1]), node: 'pve-test', type: decodeURIComponent(m[1]).split(':')[5], id: 'entra',
            user: 'root@pam', status: 'stopped', exitstatus: 'OK', pid: 4660, pstart: 22136, starttime: 1700000000,
        })],
        ['GET', /^\/nodes\/pve-test\/tasks\/([^/]+)\/log$/, () => [
            { n: 1, t: 'starting sync for realm entra' },
            { n: 2, t: 'TASK OK' },
        ]],
        ['GET', /^\/nodes$/, () => [{ node: 'pve-test', status: 'online', cpu: 0.02, maxcpu: 4, mem: 2147483648, maxmem: 8589934592, uptime: 3600, level: '' }]],
    ];

    function callApi(method, apiPath, params) {
        for (const [m, re, handler] of api) {
            const match = apiPath.match(re);
            if (m === method && match) {
                return handler(params, match);
            }
        }
        // an API call this mock does not know: answer like PVE for a missing method, and note it
        missing.push(`${method} ${apiPath}`);
        throw new ApiError(501, `Method '${method} /api2/json${apiPath}' not implemented`);
    }

    function handle(req, res, body) {
        const url = new URL(req.url, `http://${req.headers.host}`);
        const send = (status, type, data, reason) => {
            res.writeHead(status, reason, { 'Content-Type': type, 'Cache-Control': 'no-cache' });
            res.end(data);
        };

        const apiMatch = url.pathname.match(/^\/api2\/(json|extjs)(\/.*)$/);
        if (apiMatch) {
            const [, format, apiPath] = apiMatch;
            // query and form body; a key sent more than once (an array, as ExtJS encodes
            // 'delete') becomes an array, as PVE's API server reads it
            const params = {};
            for (const [k, v] of [...url.searchParams, ...new URLSearchParams(body)]) {
                params[k] = k in params ? [].concat(params[k], v) : v;
            }
            requests.push({ method: req.method, path: apiPath, format, params, body, csrf: req.headers.csrfpreventiontoken });
            let status = 200;
            let out;
            try {
                out = { data: callApi(req.method, apiPath, params) };
                if (format === 'extjs') {
                    out.success = 1;
                }
            } catch (err) {
                if (!(err instanceof ApiError)) {
                    throw err;
                }
                out = { data: null, message: `${err.message}\n` };
                if (err.errors) {
                    out.errors = err.errors;
                }
                if (format === 'extjs') {
                    // Formatter::Standard: extjs gets HTTP 200 with success 0 and the real status inside
                    out.success = 0;
                    out.status = err.status;
                } else {
                    status = err.status;
                }
                send(status, 'application/json;charset=UTF-8', JSON.stringify(out), err.message);
                return;
            }
            send(status, 'application/json;charset=UTF-8', JSON.stringify(out));
            return;
        }

        if (req.method !== 'GET') {
            send(501, 'text/plain', 'not implemented');
            return;
        }
        if (url.pathname === '/') {
            // pveproxy: index.html.tpl rendered by Template Toolkit (frontend.js did it)
            const index = hooked ? 'index.html' : 'index-unhooked.html';
            send(200, TYPES['.html'], fs.readFileSync(path.join(built, index)));
            return;
        }
        if (servedEmpty.some((p) => url.pathname.startsWith(p))) {
            send(200, TYPES[path.extname(url.pathname)] || 'text/plain', '');
            return;
        }
        const file = staticFile(url.pathname);
        fs.readFile(file || '/nonexistent', (err, data) => {
            if (err) {
                missing.push(`GET ${url.pathname}`);
                send(404, 'text/plain', 'not found');
                return;
            }
            send(200, TYPES[path.extname(file)] || 'application/octet-stream', data);
        });
    }

    // Microsoft's authorize page (another origin): a "Continue" link back to the app with a code
    // for the state, or the Entra error answer when the test asks for it
    function handleMicrosoft(req, res) {
        const url = new URL(req.url, `http://${req.headers.host}`);
        if (url.pathname === '/favicon.ico') {
            res.writeHead(204).end();
            return;
        }
        requests.push({ method: req.method, path: url.pathname, format: 'microsoft', params: Object.fromEntries(url.searchParams) });
        if (!/\/authorize$/.test(url.pathname) || !url.searchParams.get('redirect_uri')) {
            res.writeHead(404).end();
            return;
        }
        const state = url.searchParams.get('state');
        const back = new URL(url.searchParams.get('redirect_uri'));
        const denied = new URL(back);
        back.searchParams.set('code', state === OIDC_STATE ? 'oidc-code' : codeFor(state));
        back.searchParams.set('state', state);
        denied.searchParams.set('error', 'access_denied');
        denied.searchParams.set('error_description', 'AADSTS50105: The signed in user is not assigned to a role for the application <b>.');
        denied.searchParams.set('state', state);
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
        res.end(`<!DOCTYPE html><title>Sign in to your account</title>
<a id="continue" href="${back}">Continue</a> <a id="deny" href="${denied}">Deny</a>`);
    }

    const collect = (handler) => (req, res) => {
        let body = '';
        req.on('data', (chunk) => { body += chunk; });
        req.on('end', () => handler(req, res, body));
    };
    const node = http.createServer(collect(handle));
    const microsoft = http.createServer(collect(handleMicrosoft));

    const listen = (server) => new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`)));
    return Promise.all([listen(node), listen(microsoft)]).then(([url, ms]) => {
        msUrl = ms;
        return {
            url,
            msUrl,
            requests,
            missing,
            options,
            flows,
            setRealmConfig: (config) => { realmConfig = config; },
            reset: () => {
                requests.length = 0;
                missing.length = 0;
                options.authUrlFails = false;
                options.authUrlRateLimited = false;
                options.entraTfa = false;
                realmConfig = { ...ENTRA_REALM_CONFIG };
            },
            close: () => Promise.all([node, microsoft].map((s) => new Promise((done) => {
                s.closeAllConnections();
                s.close(done);
            }))),
        };
    });
}

module.exports = { start, ENTRA_REALM_CONFIG, ENTRA_CLIENT_ID, STATE_PREFIX, OIDC_STATE, codeFor };
