/*
 * Microsoft Entra ID realm type ('entraid') for the Proxmox VE web UI - package pve-entraid.
 *
 * index.html.tpl loads this file right after pvemanagerlib.js (a hook of pve-entraid-integrate):
 * PVE's classes exist then, but the workspace and its login window are only created on
 * Ext.onReady, so everything below is in place before they are.
 */

// Realm type shown under Datacenter > Permissions > Realms > Add, and used by the login window
// and the user menu (no password change). 'syncipanel' (the Sync button and sync jobs) is set at the
// end of this file, where the frontend has PVE's LDAP sync panel to build on. 'tfa' offers the realm's "Require TFA" field and the user menu's
// TFA item: /access/entraid/login asks for the second factor of users with TFA entries (or of a
// realm requiring TFA) like /access/ticket, and the login window below completes it.
PVE.Utils.authSchema.entraid = {
    name: 'Microsoft Entra ID',
    ipanel: 'pveAuthEntraIDPanel',
    add: true,
    tfa: true,
    pwchange: false,
    sync: false,
    iconCls: 'fa-windows',
};

Ext.define('PVE.panel.EntraIDInputPanel', {
    extend: 'PVE.panel.AuthBase',
    xtype: 'pveAuthEntraIDPanel',

    // help text of every field, shown as a tooltip over the field (like PVE's data-qtip ones)
    fieldHelp: {
        realm: gettext('Name of the realm: the suffix of user names, as in alice@contoso.com@realm.'),
        'tenant-id': gettext(
            'Directory (tenant) ID of your Microsoft Entra tenant, or one of its verified domains. ' +
                "'organizations' or 'common' accept several tenants: then list them under Allowed Tenants.",
        ),
        'client-id': gettext(
            'Application (client) ID of the app registration. Its redirect URI (platform Web) must be ' +
                'the address you open this web interface with, for example https://pve1.example.com:8006',
        ),
        'client-key': gettext(
            'Client secret value of the app registration (not its secret ID). It is stored root-only ' +
                'under /etc/pve/priv and never shown again; leave empty when editing to keep the current one. ' +
                'Or use a certificate (Advanced).',
        ),
        'client-cert': gettext(
            'Instead of a client secret: the PEM text of a certificate uploaded to the app registration ' +
                '(Certificates & secrets), together with its private key. It replaces a stored secret; ' +
                'leave empty when editing to keep the current credential.',
        ),
        'client-cert-key': gettext(
            "PEM text of the certificate's private key. It is stored root-only under /etc/pve/priv " +
                'and never shown again.',
        ),
        cloud: gettext(
            'The Microsoft cloud your tenant lives in: Global (login.microsoftonline.com), ' +
                'US Government (login.microsoftonline.us) or China, operated by 21Vianet (login.chinacloudapi.cn).',
        ),
        'allowed-tenants': gettext(
            "Tenant IDs allowed to log in, separated by ','. Required for the tenants 'organizations' and 'common'.",
        ),
        'username-claim': gettext(
            'ID token claim that becomes the PVE user name. Users stay pinned to their Entra object ID, ' +
                'so a reused name cannot take over an account. Cannot be changed later.',
        ),
        autocreate: gettext('Create a PVE user on first login (name and email from the ID token).'),
        'groups-map': gettext(
            "Entra group object ID or app role mapped to a PVE group, as ID=group, separated by ';'. " +
                'Example: 6f7e8d9c-1111-4111-8111-000000000001=admins;PVE.Admin=admins',
        ),
        'groups-autocreate': gettext('Create mapped PVE groups that do not exist yet.'),
        'groups-sync': gettext(
            'On every login, remove the user from mapped PVE groups it no longer belongs to in Entra. ' +
                'Groups the map does not name are never touched.',
        ),
        'required-groups': gettext(
            "Entra group object IDs or app roles, separated by ','. Only members of at least one may log in.",
        ),
        'allow-guests': gettext('Allow guest (B2B) accounts of other tenants to log in.'),
        'allow-loopback-redirect': gettext(
            'Allow sign-in from command-line clients such as pve-entraid-login, which receive the ' +
                'answer of Microsoft on http://localhost. The app registration needs the redirect URI ' +
                'http://localhost (platform Web) too.',
        ),
        prompt: gettext(
            "Sign-in prompt at Microsoft: 'select_account' lets users pick one of several accounts, " +
                "'login' always asks for credentials.",
        ),
        'acr-values': gettext(
            'Authentication context class reference to request, for example the ID of an Entra ' +
                "authentication context ('c1'). Spaces are not allowed.",
        ),
        scopes: gettext(
            "Scopes to request, separated by spaces. Default: 'openid profile email'; 'openid' is always added.",
        ),
        default: gettext('Preselect this realm on the login screen.'),
        comment: gettext('Shown in the realm list and, if set, instead of the realm name on the login screen.'),
    },

    certificateGiven: function () {
        let cert = this.down('field[name=client-cert]');
        return !!cert && !!cert.getValue();
    },

    onGetValues: function (values) {
        let me = this;

        // an empty credential field means: keep the stored credential; never ask the API to
        // delete it (the API stores credentials outside domains.cfg)
        for (const name of ['client-key', 'client-cert', 'client-cert-key']) {
            if (!values[name]) {
                delete values[name];
            }
        }

        return me.callParent([values]);
    },

    initComponent: function () {
        let me = this;

        if (me.type !== 'entraid') {
            throw 'invalid type';
        }

        // the two IDs are GUIDs (36 characters): full width, above the columns, like the
        // Issuer URL of PVE's OpenID dialog
        me.columnT = [
            {
                xtype: 'textfield',
                name: 'tenant-id',
                fieldLabel: gettext('Tenant'),
                emptyText: gettext('Directory (tenant) ID or verified domain'),
                allowBlank: false,
            },
            {
                xtype: 'textfield',
                name: 'client-id',
                fieldLabel: gettext('Client ID'),
                emptyText: gettext('Application (client) ID'),
                allowBlank: false,
            },
        ];

        me.column1 = [
            {
                xtype: 'proxmoxtextfield',
                inputType: 'password',
                name: 'client-key',
                fieldLabel: gettext('Client Secret'),
                emptyText: me.isCreate ? '' : gettext('unchanged'),
                // a new realm needs a secret, or a certificate (Advanced)
                validator: function (value) {
                    if (!me.isCreate || value || me.certificateGiven()) {
                        return true;
                    }
                    return gettext('Enter the client secret, or a certificate under Advanced');
                },
            },
            {
                xtype: 'proxmoxKVComboBox',
                name: 'cloud',
                fieldLabel: gettext('Cloud'),
                editable: false,
                value: 'public',
                deleteEmpty: !me.isCreate,
                // the sign-in host of each is in the field's help
                comboItems: [
                    ['public', gettext('Global')],
                    ['usgov', gettext('US Government')],
                    ['china', gettext('China (21Vianet)')],
                ],
            },
            {
                // in the left column, whose fields are wider: 'preferred_username' fits there.
                // Changing it would rename every user of the realm, so like OpenID it is fixed at creation
                xtype: me.isCreate ? 'proxmoxKVComboBox' : 'displayfield',
                name: 'username-claim',
                fieldLabel: gettext('Username Claim'),
                value: me.isCreate ? '__default__' : undefined,
                deleteEmpty: false,
                comboItems: [
                    ['__default__', Proxmox.Utils.defaultText + ' (upn)'],
                    ['upn', 'upn'],
                    ['preferred_username', 'preferred_username'],
                    ['email', 'email'],
                    ['oid', 'oid'],
                ],
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'allowed-tenants',
                fieldLabel: gettext('Allowed Tenants'),
                emptyText: gettext('any (single tenant)'),
                deleteEmpty: !me.isCreate,
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'scopes',
                fieldLabel: gettext('Scopes'),
                emptyText: Proxmox.Utils.defaultText,
                deleteEmpty: !me.isCreate,
            },
        ];

        me.column2 = [
            {
                xtype: 'proxmoxcheckbox',
                name: 'autocreate',
                fieldLabel: gettext('Autocreate Users'),
                value: 0,
                deleteEmpty: !me.isCreate,
            },
            {
                xtype: 'proxmoxcheckbox',
                name: 'groups-autocreate',
                fieldLabel: gettext('Autocreate Groups'),
                value: 0,
                deleteEmpty: !me.isCreate,
            },
            {
                xtype: 'proxmoxcheckbox',
                name: 'groups-sync',
                fieldLabel: gettext('Update Groups at Login'),
                value: 0,
                deleteEmpty: !me.isCreate,
            },
            {
                xtype: 'proxmoxcheckbox',
                name: 'allow-guests',
                fieldLabel: gettext('Allow Guests'),
                value: 0,
                deleteEmpty: !me.isCreate,
            },
            {
                xtype: 'proxmoxKVComboBox',
                name: 'prompt',
                fieldLabel: gettext('Prompt'),
                editable: true,
                value: me.isCreate ? '__default__' : undefined,
                deleteEmpty: !me.isCreate,
                comboItems: [
                    ['__default__', Proxmox.Utils.defaultText],
                    ['select_account', 'select_account'],
                    ['login', 'login'],
                    ['consent', 'consent'],
                    ['none', 'none'],
                ],
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'acr-values',
                fieldLabel: gettext('ACR Values'),
                emptyText: gettext('none'),
                // the pattern of PVE's OpenId.pm, which the realm inherits
                regex: /^[^\x00-\x1F\x7F <>#"]*$/,
                regexText: gettext('Spaces and the characters <>#" are not allowed.'),
                deleteEmpty: !me.isCreate,
            },
        ];

        me.columnB = [
            {
                xtype: 'proxmoxtextfield',
                name: 'groups-map',
                fieldLabel: gettext('Group Mapping'),
                emptyText: gettext('none'),
                deleteEmpty: !me.isCreate,
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'required-groups',
                fieldLabel: gettext('Required Groups'),
                emptyText: gettext('none'),
                deleteEmpty: !me.isCreate,
            },
        ];

        // the other credential: a certificate and its key, both PEM text (the API never takes a
        // file name); pasted, or read in the browser from PEM files (a file may hold both)
        let pemField = (name, label, begin) => ({
            xtype: 'textarea',
            name: name,
            fieldLabel: label,
            // three lines: the theme's minimum (60 px) would make the dialog taller than needed
            height: 48,
            fieldStyle: 'min-height: 0',
            emptyText: me.isCreate ? begin : gettext('unchanged'),
            validator: function (value) {
                let other = me.down(`field[name=${name === 'client-cert' ? 'client-cert-key' : 'client-cert'}]`);
                if (!value !== !other.getValue()) {
                    return gettext('Certificate and private key are needed together');
                }
                if (value && !value.trim().startsWith('-----BEGIN ')) {
                    return gettext('PEM text is expected (-----BEGIN ...)');
                }
                return true;
            },
            listeners: {
                change: () => me.query('field[name=client-key], textarea').forEach((f) => f.validate()),
            },
        });
        let pemBlock = (text, label) =>
            text.match(new RegExp(`-----BEGIN ${label}-----[^-]+-----END ${label}-----\\r?\\n?`))?.[0];
        me.advancedColumnB = [
            {
                xtype: 'proxmoxcheckbox',
                name: 'allow-loopback-redirect',
                fieldLabel: gettext('Allow Command-Line Sign-In'),
                value: 0,
                deleteEmpty: !me.isCreate,
            },
            pemField('client-cert', gettext('Certificate (PEM)'), '-----BEGIN CERTIFICATE-----'),
            pemField('client-cert-key', gettext('Private Key (PEM)'), '-----BEGIN PRIVATE KEY-----'),
            {
                xtype: 'container',
                layout: { type: 'hbox', pack: 'end' },
                items: {
                    xtype: 'filebutton',
                    text: gettext('From PEM Files'),
                    multiple: true,
                    listeners: {
                        afterrender: (button) => button.fileInputEl.set({ multiple: 'multiple' }),
                        change: async function (button, event) {
                            let files = [...event.event.target.files];
                            button.reset(); // the same file may be chosen again
                            for (const file of files) {
                                let text = await file.text();
                                let cert = pemBlock(text, 'CERTIFICATE');
                                let key = pemBlock(text, '(?:RSA )?PRIVATE KEY');
                                if (cert) {
                                    me.down('field[name=client-cert]').setValue(cert);
                                }
                                if (key) {
                                    me.down('field[name=client-cert-key]').setValue(key);
                                }
                            }
                        },
                    },
                },
            },
        ];

        // PVE.panel.AuthBase adds realm, default, TFA and comment around these
        me.callParent();

        // 'Update Groups at Login' needs more than the dialog's label width (120): widen the labels
        // of the whole right column (TFA included), so that its fields stay aligned. PVE's TFA
        // selector lays its fields out at their natural width (label plus a fixed body), which
        // the wider label would push past the column's edge: fit them to the column instead.
        let tfa = me.down('pveTFASelector');
        tfa?.setLayout('anchor');
        for (const field of me.down('field[name=autocreate]').ownerCt.query('field')) {
            field.labelWidth = 160;
            field.anchor = '100%';
        }

        // The window grows downwards when "Advanced" is switched on, past the bottom of a small
        // screen (and its buttons with it): move it up as far as needed, like a constrained window.
        me.on(
            'afterrender',
            () => {
                let win = me.up('window');
                win?.on('resize', () => {
                    let overflow = win.getY() + win.getHeight() - Ext.Element.getViewportHeight();
                    if (overflow > 0) {
                        win.setY(Math.max(0, win.getY() - overflow));
                    }
                });
            },
            null,
            { single: true },
        );

        for (const field of me.query('field')) {
            let help = me.fieldHelp[field.getName()];
            if (help) {
                field.on('afterrender', () => field.getEl().set({ 'data-qtip': help }), null, {
                    single: true,
                });
            }
        }
    },
});

// Login with an 'entraid' realm: redirect to Microsoft, then finish the login when Entra sends
// the browser back with ?code=&state=. Mirrors what PVE's login window does for 'openid' realms,
// plus the browser binding of the login (RFC 9700 4.7.1): auth-url gets the SHA-256 of 32 random
// bytes that only this tab keeps (sessionStorage), login must present the bytes. A code and state
// landed in another browser (login CSRF) cannot be completed there.
Ext.define('PVE.EntraID', {
    singleton: true,

    // sessionStorage key prefix; the key is the sealed state auth-url returned, the value
    // {realm, key}: the realm the login was started for and the base64url binding bytes
    bindingPrefix: 'pve-entraid-binding:',

    // every state of auth-url starts with it: src/state/mod.rs STATE_PREFIX (PVE's OpenID states
    // are JSON text)
    statePrefix: 'entraid.',

    isEntraIDRealm: function (realmField) {
        let record = realmField && realmField.getStore().getById(realmField.getValue());
        return !!record && record.data.type === 'entraid';
    },

    base64url: function (bytes) {
        let binary = '';
        for (const b of bytes) {
            binary += String.fromCharCode(b);
        }
        return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    },

    // 32 random bytes and their SHA-256, both base64url without padding (43 characters each).
    // crypto.subtle exists only in a secure context: PVE is served over https.
    newBinding: async function () {
        let bytes = crypto.getRandomValues(new Uint8Array(32));
        let hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
        return { key: PVE.EntraID.base64url(bytes), hash: PVE.EntraID.base64url(hash) };
    },

    bindingKeys: function () {
        return Object.keys(sessionStorage).filter((k) => k.startsWith(PVE.EntraID.bindingPrefix));
    },

    // The text of a failed call, as HTML. PVE::API2::EntraID answers '<what to do> (<code>,
    // reference <8 hex>)' and logs the detail under that reference in the node's system log: say
    // so, once. 429 (request.rate_limited): the node's budget of sign-in calls is spent for now.
    // The extjs API format carries the API status in the answer, a bare HTTP error in the response.
    failureText: function (response) {
        if ((response.result?.status || response.status) === 429) {
            return gettext('Too many sign-in attempts, try again in a minute.');
        }
        let answer = /^(.+) \(([a-z_]+\.[a-z_]+), reference ([0-9a-f]{8})\)\s*$/.exec(
            response.result?.message ?? '',
        );
        if (!answer) {
            return response.htmlStatus;
        }
        let [, text, code, reference] = answer;
        let where = Ext.String.format(
            gettext('Details: reference {0} in the system log of node {1} ({2}).'),
            reference,
            Proxmox.NodeName,
            code,
        );
        return `${Ext.String.htmlEncode(Ext.String.capitalize(text))}.<br>${Ext.String.htmlEncode(where)}`;
    },

    showError: function (title, detail) {
        Ext.Msg.alert(gettext('Error'), `${title}<br>${detail}`);
    },

    redirectToEntraID: async function (controller, realm) {
        let form = controller.lookupReference('loginForm');
        form.mask(gettext('Please wait...'), 'x-mask-loading');

        let binding;
        try {
            binding = await PVE.EntraID.newBinding();
        } catch (err) {
            form.unmask();
            PVE.EntraID.showError(
                gettext('Microsoft Entra ID sign-in needs a secure connection (https).'),
                Ext.String.htmlEncode(String(err)),
            );
            return;
        }

        Proxmox.Utils.API2Request({
            url: '/api2/extjs/access/entraid/auth-url',
            params: {
                realm: realm,
                'redirect-url': window.location.origin,
                'binding-hash': binding.hash,
            },
            method: 'POST',
            success: function (response) {
                let url = response.result.data;
                let state = null;
                try {
                    state = new URL(url).searchParams.get('state');
                } catch (_err) {
                    // not an address: handled below
                }
                if (!state) {
                    form.unmask();
                    PVE.EntraID.showError(
                        gettext('Microsoft Entra ID sign-in could not be started.'),
                        gettext('The server sent no sign-in address.'),
                    );
                    return;
                }
                // the state names this login when Entra sends the browser back
                sessionStorage.setItem(
                    PVE.EntraID.bindingPrefix + state,
                    JSON.stringify({ realm, key: binding.key }),
                );
                // PVE's workspace opens the view in 'openid-deeplink' after any login
                sessionStorage.setItem('openid-deeplink', window.location.hash);
                window.location = url;
            },
            failure: function (response) {
                form.unmask();
                PVE.EntraID.showError(
                    gettext('Microsoft Entra ID sign-in could not be started.'),
                    PVE.EntraID.failureText(response),
                );
            },
        });
    },

    // Returns {code, state, realm, key}, {error} when this page load is Entra's answer to one of
    // our sign-ins, else undefined (then it is PVE's own, e.g. an OpenID realm's login).
    // Takes code and state out of the address bar: the code is single use, and PVE's own OpenID
    // handler (on 'show') must not send it to /access/openid/login.
    takeCallback: function () {
        let query = Ext.Object.fromQueryString(window.location.search);
        if (query.state === undefined || (query.code === undefined && query.error === undefined)) {
            return undefined;
        }
        let started = PVE.EntraID.bindingKeys();
        // ours by the state's prefix, even in a tab that holds no binding (a new tab, another
        // browser); a tab that went to Microsoft for us takes any answer as ours (login CSRF)
        if (!query.state.startsWith(PVE.EntraID.statePrefix) && !started.length) {
            return undefined;
        }
        let stored = sessionStorage.getItem(PVE.EntraID.bindingPrefix + query.state);
        // a binding is used once: forget this one and any of abandoned attempts
        started.forEach((k) => sessionStorage.removeItem(k));
        history.replaceState(null, '', window.location.pathname + window.location.hash);

        if (stored === null) {
            return {
                error: gettext(
                    'This sign-in was started in another tab or browser. Start it again here.',
                ),
            };
        }
        if (query.error !== undefined) {
            return { error: query.error_description || query.error };
        }
        let { realm, key } = JSON.parse(stored);
        return { code: query.code, state: query.state, realm, key };
    },

    finishLogin: function (controller, callback) {
        let form = controller.lookupReference('loginForm');

        if (callback.error) {
            PVE.EntraID.showError(
                gettext('Microsoft Entra ID sign-in failed.'),
                Ext.String.htmlEncode(callback.error),
            );
            return;
        }

        Proxmox.Utils.authClear();
        form.mask(gettext('Microsoft Entra ID login - please wait...'), 'x-mask-loading');

        Proxmox.Utils.API2Request({
            url: '/api2/extjs/access/entraid/login',
            params: {
                code: callback.code,
                state: callback.state,
                'redirect-url': window.location.origin,
                realm: callback.realm,
                'binding-key': callback.key,
            },
            method: 'POST',
            success: function (response) {
                form.unmask();
                let data = response.result.data;
                if (data.ticket.startsWith('PVE:!tfa!')) {
                    PVE.EntraID.secondFactor(controller, data);
                } else {
                    // the same ticket data as /access/ticket: continue like any login
                    controller.success(data);
                }
            },
            failure: function (response) {
                form.unmask();
                PVE.EntraID.showError(
                    gettext('Microsoft Entra ID sign-in failed.'),
                    PVE.EntraID.failureText(response),
                );
            },
        });
    },

    // The answer asks for a second factor (TFA entries in PVE): finish it as PVE's login window
    // does after a password (its onLogon, 'PVE:!tfa!' branch): its own TFA dialog, then
    // /access/ticket with the challenge ticket.
    secondFactor: async function (controller, data) {
        data.LoggedOut = true;
        Proxmox.Utils.setAuthData(data);
        let result;
        try {
            result = await controller.performTFAChallenge(data);
        } catch (response) {
            // authClear() keeps a ticket while 'LoggedOut' is set (PVE's perform_otp does the same)
            Proxmox.LoggedOut = false;
            Proxmox.Utils.authClear();
            if (response) {
                controller.failure(response);
            }
            // else: the TFA dialog was cancelled, the login window stays for another try
            return;
        }
        result.CSRFPreventionToken = Proxmox.CSRFPreventionToken;
        result.username = Proxmox.UserName;
        controller.success(result);
    },
});

Ext.define('PVE.window.EntraIDLoginWindowOverride', {
    override: 'PVE.window.LoginWindow',

    initComponent: function () {
        let me = this;

        me.callParent(arguments);

        // the controller exists now; PVE calls its init() and wires its handlers right after this
        let controller = me.getController();
        let realmField = me.down('field[name=realm]');
        let viewModel = me.getViewModel();

        // Runs before PVE's own click handler (wired through the controller's 'control', which
        // ExtJS dispatches only when no direct listener returned false); the Enter key of the
        // window's defaultButton clicks the same button.
        me.lookupReference('loginButton').on('click', function () {
            if (!PVE.EntraID.isEntraIDRealm(realmField)) {
                // an abandoned Entra attempt must not claim the next OpenID callback
                PVE.EntraID.bindingKeys().forEach((k) => sessionStorage.removeItem(k));
                return undefined;
            }
            if (controller.lookupReference('loginForm').isValid()) {
                PVE.EntraID.redirectToEntraID(controller, realmField.getValue());
            }
            return false;
        });

        // Microsoft's wording for the button with an entraid realm, PVE's own text otherwise
        viewModel.set('entraid', false);
        viewModel.setFormulas({
            entraidButtonText: (get) =>
                get('entraid') ? gettext('Sign in with Microsoft') : get('button_text'),
        });
        me.lookupReference('loginButton').setBind({ text: '{entraidButtonText}' });

        realmField.on('change', function () {
            // PVE's own realm listener sets 'openid' mode only for type 'openid'; run after it so
            // that entraid realms also hide user name and password (no password is asked here)
            Promise.resolve().then(() => {
                if (!me.destroyed) {
                    let entraid = PVE.EntraID.isEntraIDRealm(realmField);
                    viewModel.set('entraid', entraid);
                    if (entraid) {
                        viewModel.set('openid', true);
                    }
                }
            });
        });

        let callback;
        me.on('beforeshow', () => {
            callback = PVE.EntraID.takeCallback();
        });
        me.on('show', () => {
            if (callback) {
                PVE.EntraID.finishLogin(controller, callback);
                callback = undefined;
            }
        });
    },
});

// Realm sync (Sync button, sync jobs): the sync defaults of an entraid realm are those of PVE's
// own LDAP sync panel (scope, enable-new, remove-vanished), without its LDAP-only fields, beside
// the realm's own choice of users to sync. A frontend without that panel keeps entraid realms
// without the Sync button.
if (Ext.ClassManager.get('PVE.panel.LDAPSyncInputPanel')) {
    // which users a sync reads, for each choice of 'sync-users': said in the form, below the choice
    const syncUsersText = {
        __default__: gettext(
            "A sync reads the members of the realm's Required Groups or, without them, of the groups and " +
                'app roles of its Group Mapping.',
        ),
        assigned: gettext(
            'A sync reads every user assigned to the app in Entra (Enterprise applications, Users and groups), ' +
                'for when the app requires assignment; the Group Mapping still sets their groups.',
        ),
    };

    Ext.define('PVE.panel.EntraIDSyncInputPanel', {
        extend: 'PVE.panel.LDAPSyncInputPanel',
        xtype: 'pveAuthEntraIDSyncPanel',

        editableAttributes: [],

        onGetValues: function (values) {
            let me = this;
            values = me.callParent([values]);
            // LDAP's attribute mapping: an entraid realm has no such property
            delete values.sync_attributes;
            if (Ext.isArray(values.delete)) {
                values.delete = values.delete.filter((k) => k !== 'sync_attributes');
                if (!values.delete.length) {
                    delete values.delete;
                }
            }
            return values;
        },

        column1: (function () {
            let ldap = PVE.panel.LDAPSyncInputPanel.prototype;
            let field = (name) => Ext.clone([...ldap.column1, ...ldap.column2].find((f) => f.name === name));
            return [field('scope'), field('enable-new')];
        })(),
        column2: [
            {
                xtype: 'proxmoxKVComboBox',
                name: 'sync-users',
                fieldLabel: gettext('Users to sync'),
                value: '__default__',
                deleteEmpty: true,
                comboItems: [
                    ['__default__', `${gettext('Mapped')} (${Proxmox.Utils.defaultText})`],
                    ['assigned', gettext('Assigned to the app')],
                ],
                listeners: {
                    change: (field, value) =>
                        field
                            .up('inputpanel')
                            .down('#syncUsersText')
                            .update(Ext.String.htmlEncode(syncUsersText[value || '__default__'])),
                },
            },
        ],
        columnB: [
            {
                xtype: 'component',
                itemId: 'syncUsersText',
                padding: '0 0 10 0',
                html: Ext.String.htmlEncode(syncUsersText.__default__),
            },
            ...Ext.clone(PVE.panel.LDAPSyncInputPanel.prototype.columnB),
        ],
    });

    PVE.Utils.authSchema.entraid.syncipanel = 'pveAuthEntraIDSyncPanel';
}

// Realm sync jobs: PVE's job editor offers a new job only the LDAP and AD realms, though jobs
// sync through the same API (PVE::Jobs::RealmSync) that syncs entraid realms. Its realm field is
// configured on the class, so entraid is let through there, before any editor is made; a
// frontend whose editor is built otherwise keeps its own choice.
(function () {
    let editor = Ext.ClassManager.get('PVE.dc.RealmSyncJobEdit');
    let columns = editor?.prototype?.items?.[0]?.column1 ?? [];
    let realm = columns.find((field) => field.name === 'realm' && field.editConfig?.xtype === 'pmxRealmComboBox');
    let upstream = realm?.editConfig?.storeFilter;
    if (typeof upstream === 'function') {
        realm.editConfig.storeFilter = (rec) => rec.data.type === 'entraid' || upstream(rec);
    }
})();
