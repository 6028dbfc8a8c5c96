'use strict';
// Headless Chromium (Debian's, through tests/browser's playwright-core) on the test node's real
// login window: pveproxy's index, PVE's login form, the Entra ID realm, "Sign in with Microsoft",
// the emulator's authorize (as login.microsoftonline.com), back to the node, PVE's main screen.
// Run by tests/node/node.sh inside the node's network namespace; prints "ok"/"not ok" lines.
//   node browser.js NODE_URL NODE_IP REALM_LABEL
// Chromium resolves the node and Microsoft's name as the root does (host resolver rules) and
// does not know the node's self-signed CA nor the emulator's: certificate errors are ignored
// (the root's own checks verify both chains with curl).

const path = require('node:path');
const { chromium } = require(path.join(__dirname, '..', 'browser', 'node_modules', 'playwright-core'));

const [nodeUrl, nodeIp, realmLabel] = process.argv.slice(2);
const nodeHost = new URL(nodeUrl).hostname;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let failed = 0;
function ok(name) { console.log(`ok - ${name}`); }
function notOk(name, err) {
    failed++;
    console.log(`not ok - ${name}`);
    for (const l of String(err && err.stack || err).split('\n').slice(0, 8)) console.log(`#   ${l}`);
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
    const t0 = Date.now();
    try {
        await page.goto(`${nodeUrl}/`);
        await page.waitForFunction(() => {
            const realm = typeof Ext !== 'undefined' && Ext.ComponentQuery.query('pmxRealmComboBox')[0];
            return realm && realm.getStore().getCount() > 0 && realm.getValue();
        }, null, { timeout: 60000 });
        ok('pveproxy serves PVE\'s login window with the realms from /access/domains');

        await page.locator('input[name=realm]').click();
        await page.locator('.x-boundlist-item', { hasText: realmLabel }).click();
        await page.waitForFunction(() => Ext.ComponentQuery.query('button[reference=loginButton]')[0].getText() === 'Sign in with Microsoft');
        ok('the Entra ID realm turns the button into "Sign in with Microsoft"');

        await page.getByRole('button', { name: 'Sign in with Microsoft' }).click();
        await page.waitForURL(`${nodeUrl}/**`, { timeout: 60000 });
        await page.waitForFunction(() => typeof Proxmox !== 'undefined' && Proxmox.UserName &&
            !Ext.ComponentQuery.query('window[title=Proxmox VE Login]').length, null, { timeout: 60000 });
        const user = await page.evaluate(() => Proxmox.UserName);
        if (user !== 'alice@contoso.example@entra') throw new Error(`logged in as ${user}`);
        ok(`"Sign in with Microsoft" at the emulator lands on PVE's main screen as ${user} (${Date.now() - t0} ms from the first page)`);

        const cookie = (await context.cookies(nodeUrl)).find((c) => c.name === 'PVEAuthCookie');
        if (!cookie || !decodeURIComponent(cookie.value).startsWith('PVE:alice@contoso.example@entra:')) {
            throw new Error(`PVEAuthCookie: ${cookie && cookie.value.slice(0, 40)}`);
        }
        ok('the browser holds alice\'s PVEAuthCookie');

        const perms = await page.evaluate(async () => {
            const r = await fetch('/api2/json/access/permissions');
            return { status: r.status, body: await r.json() };
        });
        if (perms.status !== 200 || !perms.body.data) throw new Error(JSON.stringify(perms));
        ok('GET /api2/json/access/permissions with that cookie answers 200');

        await page.locator('.x-treelist-item-text, .x-tree-node-text', { hasText: nodeHost }).first().waitFor({ timeout: 30000 });
        ok(`the main screen's resource tree shows the node ${nodeHost}`);
        if (problems.length) throw new Error(problems.join('\n'));
        ok('no page errors');
    } catch (err) {
        notOk('browser login through the node', err);
        await page.screenshot({ path: process.env.NODE_SHOT || '/tmp/node-browser-failure.png' }).catch(() => {});
    }
    await browser.close();
    process.exit(failed ? 1 : 0);
})();
