'use strict';
// Test server on 127.0.0.1: the test page, ExtJS, www/pve-entraid.js, and doubles of the PVE API
// calls the page makes plus a stand-in for Microsoft's authorize page. Records every API call.

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const browserDir = __dirname;
const repoDir = path.resolve(browserDir, '..', '..');
const extDir = path.join(browserDir, 'node_modules', 'extjs-gpl', 'build');

const REALMS = [
    { realm: 'pam', type: 'pam', comment: 'Linux PAM standard authentication' },
    { realm: 'pve', type: 'pve', comment: 'Proxmox VE authentication server' },
    { realm: 'oidc', type: 'openid', comment: 'Some OpenID provider' },
    { realm: 'entra', type: 'entraid', comment: 'Contoso (Entra ID)' },
];

// what GET /access/domains/entra answers: never a secret
const ENTRA_REALM_CONFIG = {
    realm: 'entra',
    type: 'entraid',
    'tenant-id': '11111111-2222-3333-4444-555555555555',
    'client-id': 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee',
    cloud: 'usgov',
    'username-claim': 'upn',
    autocreate: 1,
    comment: 'Contoso (Entra ID)',
};

const TYPES = { '.html': 'text/html', '.js': 'application/javascript', '.css': 'text/css', '.png': 'image/png', '.gif': 'image/gif', '.svg': 'image/svg+xml', '.woff': 'font/woff', '.woff2': 'font/woff2', '.ttf': 'font/ttf' };

function ticketFor(username) {
    return { username, ticket: `PVE:${username}:4EEC61E2::sig`, CSRFPreventionToken: '4EEC61E2:token', cap: {}, clustername: 'test' };
}

function start() {
    const requests = [];
    const options = { authUrlFails: false };

    const server = http.createServer((req, res) => {
        const url = new URL(req.url, `http://${req.headers.host}`);
        const origin = `http://${req.headers.host}`;
        let body = '';
        req.on('data', (chunk) => { body += chunk; });
        req.on('end', () => {
            const params = Object.fromEntries(new URLSearchParams(body));
            const json = (status, data) => {
                res.writeHead(status, { 'Content-Type': 'application/json' });
                res.end(JSON.stringify(data));
            };
            const file = (filePath) => {
                if (!filePath.startsWith(browserDir) && !filePath.startsWith(repoDir)) {
                    res.writeHead(403).end();
                    return;
                }
                fs.readFile(filePath, (err, data) => {
                    if (err) {
                        res.writeHead(404).end();
                        return;
                    }
                    res.writeHead(200, { 'Content-Type': TYPES[path.extname(filePath)] || 'application/octet-stream' });
                    res.end(data);
                });
            };

            if (url.pathname.startsWith('/api2/') || url.pathname.startsWith('/entra/')) {
                requests.push({ method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams), params });
            }

            const route = `${req.method} ${url.pathname}`;
            if (route === 'GET /') {
                file(path.join(browserDir, 'page', 'index.html'));
            } else if (req.method === 'GET' && url.pathname.startsWith('/page/')) {
                file(path.join(browserDir, path.normalize(url.pathname)));
            } else if (req.method === 'GET' && url.pathname.startsWith('/ext/')) {
                file(path.join(extDir, path.normalize(url.pathname.slice('/ext/'.length))));
            } else if (route === 'GET /pve2/js/pve-entraid.js') {
                file(path.join(repoDir, 'www', 'pve-entraid.js'));
            } else if (route === 'GET /api2/json/access/domains') {
                json(200, { data: REALMS });
            } else if (route === 'GET /api2/extjs/access/domains/entra') {
                json(200, { success: 1, data: ENTRA_REALM_CONFIG });
            } else if (route === 'POST /api2/extjs/access/entraid/auth-url') {
                if (options.authUrlFails) {
                    json(200, { success: 0, message: 'discovery.invalid: tenant not found' });
                    return;
                }
                // like Entra's authorize URL: the app's redirect URI and a sealed state
                const authorize = new URL('/entra/oauth2/v2.0/authorize', origin);
                authorize.searchParams.set('client_id', ENTRA_REALM_CONFIG['client-id']);
                authorize.searchParams.set('redirect_uri', params['redirect-url']);
                authorize.searchParams.set('state', 'sealed-state-1');
                json(200, { success: 1, data: authorize.toString() });
            } else if (route === 'GET /entra/oauth2/v2.0/authorize') {
                // stands in for Microsoft's sign-in page: "Continue" sends the browser back with a code
                const back = new URL(url.searchParams.get('redirect_uri'));
                back.searchParams.set('code', 'auth-code-1');
                back.searchParams.set('state', url.searchParams.get('state'));
                res.writeHead(200, { 'Content-Type': 'text/html' });
                res.end(`<!DOCTYPE html><title>Sign in to your account</title><a id="continue" href="${back}">Continue</a>`);
            } else if (route === 'POST /api2/extjs/access/entraid/login') {
                if (params.code === 'auth-code-1' && params.state === 'sealed-state-1') {
                    json(200, { success: 1, data: ticketFor('alice@contoso.example@entra') });
                } else {
                    json(200, { success: 0, message: 'state.invalid' });
                }
            } else if (route === 'POST /api2/extjs/access/openid/login') {
                json(200, { success: 1, data: ticketFor('bob@oidc') });
            } else if (route === 'POST /api2/extjs/access/openid/auth-url') {
                json(200, { success: 1, data: `${origin}/entra/not-for-openid` });
            } else if (route === 'POST /api2/extjs/access/ticket') {
                json(200, { success: 1, data: ticketFor(`${params.username}@${params.realm}`) });
            } else {
                res.writeHead(404).end();
            }
        });
    });

    return new Promise((resolve) => {
        server.listen(0, '127.0.0.1', () => {
            resolve({
                url: `http://127.0.0.1:${server.address().port}`,
                requests,
                options,
                close: () => new Promise((done) => server.close(done)),
            });
        });
    });
}

module.exports = { start, ENTRA_REALM_CONFIG };
