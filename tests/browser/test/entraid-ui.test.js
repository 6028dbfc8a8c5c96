'use strict';
// Headless Chromium test of www/pve-entraid.js on a page with a real ExtJS classic build and
// stand-ins for PVE's own UI classes (see page/standins.js).
//
// ExtJS: the public npm registry has no ExtJS 7 classic build (its @sencha/ext* packages are
// trial-licensed sources without a built ext-all.js), so the page loads the GPL ExtJS 6.2.0
// classic build (npm 'extjs-gpl'); PVE ships 7.0.0. What the script uses (Ext.define and
// overrides, inline ViewControllers, ViewModel binding, form fields, QuickTips) is the same in both.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { after, before, beforeEach, test } = require('node:test');
const { chromium } = require('playwright-core');

const { start, ENTRA_REALM_CONFIG } = require('../server.js');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const FIELDS = [
    'tenant-id', 'client-id', 'client-key', 'cloud', 'allowed-tenants', 'username-claim',
    'autocreate', 'groups-map', 'groups-autocreate', 'groups-sync', 'required-groups',
    'allow-guests', 'prompt', 'acr-values', 'scopes', 'default', 'comment',
];

let server;
let context;
let profileDir;
let page;
let pageErrors;

before(async () => {
    server = await start();
    profileDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pve-entraid-chromium-'));
    context = await chromium.launchPersistentContext(profileDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ],
    });
});

after(async () => {
    await context?.close();
    await server?.close();
    fs.rmSync(profileDir, { recursive: true, force: true });
});

beforeEach(async () => {
    server.requests.length = 0;
    server.options.authUrlFails = false;
    for (const old of context.pages()) {
        await old.close();
    }
    page = await context.newPage();
    pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
});

function calls(route) {
    return server.requests.filter((r) => `${r.method} ${r.path}` === route);
}

// waits until the login window's realm list is loaded
async function openLogin(url = '/') {
    await page.goto(server.url + url);
    await page.waitForFunction(() => {
        let realm = Ext.ComponentQuery.query('pmxRealmComboBox')[0];
        return realm && realm.getStore().getCount() > 0 && realm.getValue();
    });
}

async function chooseRealm(label) {
    await page.locator('input[name=realm]').click();
    await page.locator('.x-boundlist-item', { hasText: label }).click();
}

test('the Add menu offers "Microsoft Entra ID" from PVE.Utils.authSchema', async () => {
    await page.goto(`${server.url}/#realms`);
    const schema = await page.evaluate(() => PVE.Utils.authSchema.entraid);
    assert.deepEqual(schema, {
        name: 'Microsoft Entra ID', ipanel: 'pveAuthEntraIDPanel', add: true, tfa: true,
        pwchange: false, sync: false, iconCls: 'fa-windows',
    });

    await page.getByText('Add', { exact: true }).click();
    const item = page.locator('.x-menu-item', { hasText: 'Microsoft Entra ID' });
    await item.waitFor();
    assert.equal(await item.locator('.fa-windows').count(), 1, 'menu item has its icon');
    await item.click();
    await page.locator('.x-window-header-title', { hasText: 'Add: Microsoft Entra ID' }).waitFor();
    assert.deepEqual(pageErrors, []);
});

test('the edit panel shows every field with its help, and submits what the API expects', async () => {
    await page.goto(`${server.url}/#realms`);
    await page.evaluate(() => Ext.ComponentQuery.query('pveAuthView')[0].openEditWindow('entraid'));
    await page.waitForFunction(() => Ext.ComponentQuery.query('pveAuthEntraIDPanel')[0]?.rendered);

    const fields = await page.evaluate((names) => {
        let panel = Ext.ComponentQuery.query('pveAuthEntraIDPanel')[0];
        return names.map((name) => {
            let field = panel.down(`field[name=${name}]`);
            return {
                name,
                visible: !!field && field.isVisible(true),
                help: field?.getEl().dom.getAttribute('data-qtip') || '',
            };
        });
    }, FIELDS);
    for (const field of fields) {
        assert.ok(field.visible, `field ${field.name} is shown`);
        assert.ok(field.help.length > 20, `field ${field.name} has help text (got '${field.help}')`);
    }

    // the help appears as a tooltip when hovering the field
    await page.locator('input[name=tenant-id]').hover();
    const tip = page.locator('.x-tip', { hasText: 'Directory (tenant) ID' });
    await tip.waitFor({ state: 'visible' });

    // the cloud choices
    await page.locator('input[name=cloud]').click();
    const clouds = await page.locator('.x-boundlist:visible .x-boundlist-item').allTextContents();
    assert.deepEqual(clouds.map((c) => c.split(' ')[0]), ['Global', 'US', 'China,']);
    await page.keyboard.press('Escape');

    await page.locator('input[name=realm]').fill('entra');
    await page.locator('input[name=tenant-id]').fill('contoso.example');
    await page.locator('input[name=client-id]').fill(ENTRA_REALM_CONFIG['client-id']);
    await page.locator('input[name=client-key]').fill('s3cr~et.Value_with~tilde');
    await page.locator('input[name=groups-map]').fill('6f7e8d9c-1111-4111-8111-000000000001=admins');
    const values = await page.evaluate(() => Ext.ComponentQuery.query('pveAuthEntraIDPanel')[0].getValues());
    assert.deepEqual(values, {
        type: 'entraid',
        realm: 'entra',
        'tenant-id': 'contoso.example',
        'client-id': ENTRA_REALM_CONFIG['client-id'],
        'client-key': 's3cr~et.Value_with~tilde',
        cloud: 'public',
        autocreate: 0,
        'allow-guests': 0,
        'groups-map': '6f7e8d9c-1111-4111-8111-000000000001=admins',
        'groups-autocreate': 0,
        'groups-sync': 0,
        default: 0,
        comment: '',
    });
    assert.equal(await page.locator('input[name=client-key]').getAttribute('type'), 'password', 'secret is masked');
    assert.deepEqual(pageErrors, []);
});

test('editing keeps the stored secret when the secret field stays empty', async () => {
    await page.goto(`${server.url}/#realms`);
    await page.evaluate(() => Ext.ComponentQuery.query('pveAuthView')[0].openEditWindow('entraid', 'entra'));
    await page.locator('.x-window-header-title', { hasText: 'Edit: Microsoft Entra ID' }).waitFor();
    await page.waitForFunction(() => Ext.ComponentQuery.query('pveAuthEntraIDPanel field[name=tenant-id]')[0]?.getValue());

    const values = await page.evaluate(() => Ext.ComponentQuery.query('pveAuthEntraIDPanel')[0].getValues());
    assert.equal(values['tenant-id'], ENTRA_REALM_CONFIG['tenant-id']);
    assert.equal(values.cloud, 'usgov');
    assert.ok(!('client-key' in values), 'no client-key sent: the stored secret is kept');
    assert.ok(!('type' in values), 'type is only sent on create');
    assert.match(values.delete, /\bprompt\b/, 'unset options are deleted on edit, like PVE panels do');
    const claim = await page.evaluate(() => Ext.ComponentQuery.query('pveAuthEntraIDPanel field[name=username-claim]')[0].xtype);
    assert.equal(claim, 'displayfield', 'username claim cannot change after creation');
    assert.equal(await page.locator('input[name=client-key]').getAttribute('placeholder'), 'unchanged');
});

test('logging in with an entraid realm redirects to Microsoft and completes on the way back', async () => {
    await openLogin('/#v1:0:=qemu%2F100');
    await chooseRealm('Contoso (Entra ID)');

    // like an OpenID realm: no user name or password, the button says it redirects
    await page.waitForFunction(() => !Ext.ComponentQuery.query('field[name=username]')[0].isVisible());
    assert.equal(await page.getByRole('button', { name: 'Login (OpenID redirect)' }).count(), 1);

    await page.getByRole('button', { name: 'Login (OpenID redirect)' }).click();
    await page.waitForURL(/\/entra\/oauth2\/v2\.0\/authorize\?/);

    assert.deepEqual(calls('POST /api2/extjs/access/entraid/auth-url').map((r) => r.params),
        [{ realm: 'entra', 'redirect-url': server.url }]);
    assert.equal(calls('POST /api2/extjs/access/openid/auth-url').length, 0);
    const authorize = calls('GET /entra/oauth2/v2.0/authorize');
    assert.equal(authorize.length, 1, 'the browser went to the URL auth-url returned');
    assert.equal(authorize[0].query.redirect_uri, server.url);

    // Microsoft sends the browser back with ?code=&state=
    await page.click('#continue');
    await page.waitForURL(`${server.url}/?code=auth-code-1&state=sealed-state-1`, { waitUntil: 'commit' });
    await page.waitForFunction(() => window.loginData);

    assert.deepEqual(calls('POST /api2/extjs/access/entraid/login').map((r) => r.params),
        [{ code: 'auth-code-1', state: 'sealed-state-1', 'redirect-url': server.url }]);
    assert.equal(calls('POST /api2/extjs/access/openid/login').length, 0, 'PVE\'s OpenID handler kept out');

    const state = await page.evaluate(() => ({
        loginData: window.loginData,
        deeplink: window.loginDeeplink,
        search: window.location.search,
        pending: sessionStorage.getItem('pve-entraid-realm'),
        windowOpen: Ext.ComponentQuery.query('window[title=Proxmox VE Login]').length,
    }));
    assert.equal(state.loginData.username, 'alice@contoso.example@entra');
    assert.match(state.loginData.ticket, /^PVE:alice@contoso\.example@entra:/);
    assert.equal(state.deeplink, '#v1:0:=qemu%2F100', 'the view opened before the redirect is restored');
    assert.equal(state.search, '', 'code and state are gone from the address bar');
    assert.equal(state.pending, null);
    assert.equal(state.windowOpen, 0, 'login window closed');
    assert.deepEqual(pageErrors, []);
});

test('an OpenID callback is still handled by PVE itself', async () => {
    await page.goto(`${server.url}/?code=oidc-code&state=oidc-state`);
    await page.waitForFunction(() => window.loginData);
    assert.equal(await page.evaluate(() => window.loginData.username), 'bob@oidc');
    assert.equal(calls('POST /api2/extjs/access/openid/login').length, 1);
    assert.equal(calls('POST /api2/extjs/access/entraid/login').length, 0);
});

test('password realms still log in through PVE\'s own path', async () => {
    await openLogin();
    await chooseRealm('Contoso (Entra ID)');
    await chooseRealm('Linux PAM standard authentication');
    await page.locator('input[name=username]').waitFor({ state: 'visible' });
    await page.locator('input[name=username]').fill('root');
    await page.locator('input[name=password]').fill('secret');
    await page.getByRole('button', { name: 'Login', exact: true }).click();
    await page.waitForFunction(() => window.loginData);
    assert.deepEqual(calls('POST /api2/extjs/access/ticket').map((r) => r.params.realm), ['pam']);
    assert.equal(calls('POST /api2/extjs/access/entraid/auth-url').length, 0);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('pve-entraid-realm')), null);
});

test('a failed auth-url call shows the error and stays on the login window', async () => {
    server.options.authUrlFails = true;
    await openLogin();
    await chooseRealm('Contoso (Entra ID)');
    await page.getByRole('button', { name: 'Login (OpenID redirect)' }).click();
    await page.locator('.x-message-box', { hasText: 'Microsoft Entra ID redirect failed.' }).waitFor();
    assert.match(await page.locator('.x-message-box').innerText(), /discovery\.invalid: tenant not found/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('pve-entraid-realm')), null);
    assert.equal(new URL(page.url()).pathname, '/');
});

test('an error sent back by Entra is shown, and no login is attempted', async () => {
    await page.goto(`${server.url}/#realms`);
    await page.evaluate(() => sessionStorage.setItem('pve-entraid-realm', 'entra'));
    await page.goto(`${server.url}/?error=access_denied&error_description=AADSTS50105%3A+user+not+assigned+%3Cb%3E&state=s`);
    await page.locator('.x-message-box', { hasText: 'Microsoft Entra ID login failed' }).waitFor();
    const text = await page.locator('.x-message-box').innerText();
    assert.match(text, /AADSTS50105: user not assigned <b>/, 'the error is shown as text, not HTML');
    assert.equal(calls('POST /api2/extjs/access/entraid/login').length, 0);
    assert.equal(await page.evaluate(() => window.location.search), '');
});
