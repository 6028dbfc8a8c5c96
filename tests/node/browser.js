'use strict';
// Headless Chromium (Debian's, through tests/browser's playwright-core) on the test node's real
// login window: pveproxy's index, PVE's login form, the Entra ID realm, "Sign in with Microsoft",
// the emulator's authorize (as login.microsoftonline.com), back to the node, PVE's main screen.
// Then, in the same browser session, with tests/node/cases.sh run in the root in between: the
// previous version installed, sign in; apt upgrade, the trigger reloads the daemons, sign in
// again; the realm requires TFA, sign in through PVE's own TFA window with a TOTP code.
// Run by tests/node/node.sh inside the node's network namespace; prints "ok"/"not ok" lines.
//   node browser.js NODE_URL NODE_IP REALM_LABEL NODE_ROOT
// Chromium resolves the node and Microsoft's name as the root does (host resolver rules) and
// does not know the node's self-signed CA nor the emulator's: certificate errors are ignored
// (the root's own checks verify both chains with curl).

const path = require('node:path');
const crypto = require('node:crypto');
const { spawnSync } = require('node:child_process');
const { chromium } = require(path.join(__dirname, '..', 'browser', 'node_modules', 'playwright-core'));

const [nodeUrl, nodeIp, realmLabel, nodeRoot] = process.argv.slice(2);
const nodeHost = new URL(nodeUrl).hostname;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const USER = 'alice@contoso.example@entra';

let failed = 0;
function ok(name) { console.log(`ok - ${name}`); }
function notOk(name, err) {
    failed++;
    console.log(`not ok - ${name}`);
    for (const l of String(err && err.stack || err).split('\n').slice(0, 8)) console.log(`#   ${l}`);
}

// a step of tests/node/cases.sh in the node's root; its lines are this run's
function nodeCase(...args) {
    const r = spawnSync('chroot', [nodeRoot, '/usr/bin/env', '-i',
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/root', 'LANG=C.UTF-8',
        'DEBIAN_FRONTEND=noninteractive', 'bash', '/root/cases.sh', ...args], { encoding: 'utf8' });
    const out = `${r.stdout}${r.stderr}`.trimEnd();
    if (out) console.log(out);
    const bad = out.split('\n').filter((l) => l.startsWith('not ok - ')).length;
    failed += bad;
    if (r.status !== 0 && !bad) notOk(`cases.sh ${args[0]} exits 0`, `exit ${r.status}`);
    if (r.status !== 0 || bad) throw new Error(`cases.sh ${args[0]} failed`);
}

// RFC 6238 TOTP (SHA-1, 30 s, 6 digits), as an authenticator app computes it
function base32(bytes) {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    let bits = '';
    for (const b of bytes) bits += b.toString(2).padStart(8, '0');
    return bits.match(/.{1,5}/g).map((c) => alphabet[parseInt(c.padEnd(5, '0'), 2)]).join('');
}
function totp(key, now = Date.now()) {
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(Math.floor(now / 30000)));
    const h = crypto.createHmac('sha1', key).update(counter).digest();
    const code = (h.readUInt32BE(h[19] & 15) & 0x7fffffff) % 1000000;
    return String(code).padStart(6, '0');
}

(async () => {
    const browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
            '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            `--host-resolver-rules=MAP ${nodeHost} ${nodeIp}, MAP login.microsoftonline.com 127.0.0.1, MAP graph.microsoft.com 127.0.0.1`,
        ],
    });
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const problems = [];
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));

    // until FN holds in the page, across the navigations of a sign-in
    async function until(fn, arg, timeout = 60000) {
        const end = Date.now() + timeout;
        for (;;) {
            try {
                if (await page.evaluate(fn, arg)) return;
            } catch (e) { /* the page navigated away meanwhile */ }
            if (Date.now() > end) throw new Error(`timed out waiting for ${fn}`);
            await page.waitForTimeout(100);
        }
    }
    const loginWindowReady = () => page.waitForFunction(() => {
        const realm = typeof Ext !== 'undefined' && Ext.ComponentQuery.query('pmxRealmComboBox')[0];
        return realm && realm.isVisible(true) && realm.getStore().getCount() > 0 && realm.getValue();
    }, null, { timeout: 60000 });
    const signedIn = () => typeof Proxmox !== 'undefined' && Proxmox.UserName && document.readyState === 'complete'
        && !Ext.ComponentQuery.query('window[title=Proxmox VE Login]').some((w) => w.isVisible())
        && !Ext.ComponentQuery.query('window[title=Second login factor required]').length;
    // the login window: the Entra ID realm, "Sign in with Microsoft", off to the emulator and back
    async function signIn() {
        await loginWindowReady();
        await page.locator('input[name=realm]').click();
        await page.locator('.x-boundlist-item:visible', { hasText: realmLabel }).click();
        await page.waitForFunction(() => Ext.ComponentQuery.query('button[reference=loginButton]')[0].getText() === 'Sign in with Microsoft');
        await page.evaluate(() => { window.nodeTestBefore = true; });
        await page.getByRole('button', { name: 'Sign in with Microsoft' }).click();
    }
    const backFromMicrosoft = () => until(() => !window.nodeTestBefore && document.readyState === 'complete');
    async function expectMainScreen(what) {
        await until(signedIn);
        const user = await page.evaluate(() => Proxmox.UserName);
        if (user !== USER) throw new Error(`logged in as ${user}`);
        const cookie = (await context.cookies(nodeUrl)).find((c) => c.name === 'PVEAuthCookie');
        if (!cookie || !decodeURIComponent(cookie.value).startsWith(`PVE:${USER}:`)) {
            throw new Error(`PVEAuthCookie: ${cookie && cookie.value.slice(0, 40)}`);
        }
        ok(`${what}: PVE's main screen as ${user}, with its PVEAuthCookie`);
        await subscriptionChecked();
    }
    // after each login PVE's login handler asks /nodes/localhost/subscription and shows the
    // answer in a message box ("No valid subscription" on a node without one); on the test node
    // that API dies in the proxmox-perl-rs stand-in (README: Stand-ins) and the box says so.
    // Either way the user clicks OK; any other message box is a failure.
    async function subscriptionChecked() {
        const box = page.locator('.x-message-box:visible');
        await box.waitFor({ timeout: 30000 });
        const text = await box.innerText();
        if (!/No valid subscription|Proxmox::RS::Subscription::\w+: not available on the test node/.test(text)) {
            throw new Error(`message box after the login: ${text}`);
        }
        await box.getByRole('button', { name: 'OK' }).click();
        await box.waitFor({ state: 'hidden' });
    }
    // PVE's own logout (the user menu of the main screen)
    async function logout() {
        const id = await page.evaluate(() => Ext.ComponentQuery.query('#userinfo')[0].getId());
        await page.locator(`#${id}`).click();
        await page.locator('.x-menu-item:visible', { hasText: 'Logout' }).click();
        await loginWindowReady();
    }
    const scriptVersion = () => page.evaluate(() => {
        const s = [...document.scripts].find((e) => /pve-entraid\.js/.test(e.src));
        return s && new URL(s.src).searchParams.get('ver');
    });
    const permissions = () => page.evaluate(async () => {
        const r = await fetch('/api2/json/access/permissions');
        return { status: r.status, body: await r.json() };
    });

    const t0 = Date.now();
    try {
        await page.goto(`${nodeUrl}/`);
        await loginWindowReady();
        ok('pveproxy serves PVE\'s login window with the realms from /access/domains');

        await signIn();
        ok('the Entra ID realm turns the button into "Sign in with Microsoft"');
        await backFromMicrosoft();
        await expectMainScreen(`"Sign in with Microsoft" at the emulator (${Date.now() - t0} ms from the first page)`);

        const perms = await permissions();
        if (perms.status !== 200 || !perms.body.data) throw new Error(JSON.stringify(perms));
        ok('GET /api2/json/access/permissions with that cookie answers 200');

        await page.locator('.x-treelist-item-text, .x-tree-node-text', { hasText: nodeHost }).first().waitFor({ timeout: 30000 });
        ok(`the main screen's resource tree shows the node ${nodeHost}`);

        // --- upgrade: the previous version installed, signed in; apt installs the package; the
        // trigger reloads the daemons; the same browser session signs in again ---
        const current = await scriptVersion();
        nodeCase('prev');
        await logout();
        await signIn();
        await backFromMicrosoft();
        await expectMainScreen('previous version installed, the same browser session signs in');
        const prev = await scriptVersion();
        if (!prev || prev !== `${current}~prev`) throw new Error(`the page loads pve-entraid.js?ver=${prev} (installed before: ${current})`);
        ok(`the page loads the previous version's UI (pve-entraid.js?ver=${prev})`);
        nodeCase('upgrade');
        const after = await permissions();
        if (after.status !== 200 || !after.body.data) throw new Error(JSON.stringify(after));
        ok('after the upgrade the session\'s ticket still works (GET /access/permissions 200)');
        await logout();
        await signIn();
        await backFromMicrosoft();
        await expectMainScreen('after the upgrade, the same browser session signs in again (no restart by hand)');
        const now = await scriptVersion();
        if (now !== current) throw new Error(`the page loads pve-entraid.js?ver=${now}, not ${current}`);
        ok(`the page loads the upgraded UI (pve-entraid.js?ver=${now})`);

        // --- TFA: the realm requires it, alice has a TOTP entry; PVE's own TFA window after the
        // emulator, the code an authenticator app would show ---
        const key = crypto.randomBytes(10);
        nodeCase('tfa', base32(key));
        await logout();
        await signIn();
        await backFromMicrosoft();
        await page.locator('.x-window-header-title', { hasText: 'Second login factor required' }).waitFor({ timeout: 60000 });
        const noTicket = async (when) => {
            const c = (await context.cookies(nodeUrl)).find((e) => e.name === 'PVEAuthCookie');
            if (c && decodeURIComponent(c.value).startsWith(`PVE:${USER}:`)) throw new Error(`a full ticket ${when}`);
        };
        await noTicket('before the second factor');
        ok('after the emulator, PVE\'s own TFA window asks for the second factor (no ticket yet)');
        // a code the node must refuse: none of the three it accepts (the previous, this, the next step)
        const valid = [-30000, 0, 30000].map((d) => totp(key, Date.now() + d));
        let wrong = valid[1];
        while (valid.includes(wrong)) wrong = String((Number(wrong) + 1) % 1000000).padStart(6, '0');
        await page.locator('input[name=totp]').fill(wrong);
        await page.getByRole('button', { name: 'Confirm Second Factor' }).click();
        const refused = page.locator('.x-message-box:visible', { hasText: 'Login failed' });
        await refused.waitFor({ timeout: 30000 });
        await noTicket('after a wrong code');
        ok('a wrong TOTP code in PVE\'s TFA window is refused ("Login failed", no ticket)');
        await refused.getByRole('button', { name: 'OK' }).click();
        await signIn();
        await backFromMicrosoft();
        await page.locator('.x-window-header-title', { hasText: 'Second login factor required' }).waitFor({ timeout: 60000 });
        await page.locator('input[name=totp]').fill(totp(key));
        await page.getByRole('button', { name: 'Confirm Second Factor' }).click();
        await expectMainScreen('the TOTP code in PVE\'s TFA window');

        if (problems.length) throw new Error(problems.join('\n'));
        ok('no page errors');
    } catch (err) {
        notOk('browser login through the node', err);
        await page.screenshot({ path: process.env.NODE_SHOT || '/tmp/node-browser-failure.png' }).catch(() => {});
    }
    await browser.close();
    process.exit(failed ? 1 : 0);
})();
