/*
 * Microsoft Entra ID realm type ('entraid') for the Proxmox VE web UI - package pve-entraid.
 *
 * index.html.tpl loads this file right after pvemanagerlib.js (a hook of pve-entraid-integrate):
 * PVE's classes exist then, but the workspace and its login window are only created on
 * Ext.onReady, so everything below is in place before they are.
 */

// Realm type shown under Datacenter > Permissions > Realms > Add, and used by the login window
// and the user menu (TFA allowed, no password change). No 'syncipanel': users and group
// memberships come from logins, there is no realm sync.
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
                'under /etc/pve/priv and never shown again; leave empty when editing to keep the current one.',
        ),
        cloud: gettext('The Microsoft cloud your tenant lives in: global, US Government or China (21Vianet).'),
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
        prompt: gettext(
            "Sign-in prompt at Microsoft: 'select_account' lets users pick one of several accounts, " +
                "'login' always asks for credentials.",
        ),
        'acr-values': gettext('Authentication context class references to request, separated by spaces.'),
        scopes: gettext("Scopes to request, separated by spaces. 'openid' is always added."),
        default: gettext('Preselect this realm on the login screen.'),
        comment: gettext('Shown in the realm list and, if set, instead of the realm name on the login screen.'),
    },

    onGetValues: function (values) {
        let me = this;

        // an empty secret field means: keep the stored secret; never ask the API to delete it
        if (!values['client-key']) {
            delete values['client-key'];
        }

        return me.callParent([values]);
    },

    initComponent: function () {
        let me = this;

        if (me.type !== 'entraid') {
            throw 'invalid type';
        }

        me.column1 = [
            {
                xtype: 'textfield',
                name: 'tenant-id',
                fieldLabel: gettext('Tenant'),
                emptyText: gettext('Tenant ID or domain'),
                allowBlank: false,
            },
            {
                xtype: 'textfield',
                name: 'client-id',
                fieldLabel: gettext('Client ID'),
                emptyText: '00000000-0000-0000-0000-000000000000',
                allowBlank: false,
            },
            {
                xtype: 'proxmoxtextfield',
                inputType: 'password',
                name: 'client-key',
                fieldLabel: gettext('Client Secret'),
                emptyText: me.isCreate ? '' : gettext('unchanged'),
                allowBlank: !me.isCreate,
            },
            {
                xtype: 'proxmoxKVComboBox',
                name: 'cloud',
                fieldLabel: gettext('Cloud'),
                editable: false,
                value: 'public',
                deleteEmpty: !me.isCreate,
                comboItems: [
                    ['public', gettext('Global') + ' (login.microsoftonline.com)'],
                    ['usgov', gettext('US Government') + ' (login.microsoftonline.us)'],
                    ['china', gettext('China, 21Vianet') + ' (login.chinacloudapi.cn)'],
                ],
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'allowed-tenants',
                fieldLabel: gettext('Allowed Tenants'),
                deleteEmpty: !me.isCreate,
            },
        ];

        me.column2 = [
            {
                // changing it would rename every user of the realm, so like OpenID it is fixed at creation
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
                xtype: 'proxmoxcheckbox',
                name: 'autocreate',
                fieldLabel: gettext('Autocreate Users'),
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
                    ['__default__', gettext('Auth-Provider Default')],
                    ['select_account', 'select_account'],
                    ['login', 'login'],
                    ['consent', 'consent'],
                    ['none', 'none'],
                ],
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'scopes',
                fieldLabel: gettext('Scopes'),
                emptyText: `${Proxmox.Utils.defaultText} (openid profile email)`,
                deleteEmpty: !me.isCreate,
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'acr-values',
                fieldLabel: gettext('ACR Values'),
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
                xtype: 'fieldcontainer',
                layout: 'hbox',
                defaults: { flex: 1 },
                items: [
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
                        fieldLabel: gettext('Sync Groups'),
                        value: 0,
                        deleteEmpty: !me.isCreate,
                    },
                ],
            },
            {
                xtype: 'proxmoxtextfield',
                name: 'required-groups',
                fieldLabel: gettext('Required Groups'),
                emptyText: gettext('none'),
                deleteEmpty: !me.isCreate,
            },
        ];

        // PVE.panel.AuthBase adds realm, default, TFA and comment around these
        me.callParent();

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
// the browser back with ?code=&state=. Mirrors what PVE's login window does for 'openid' realms.
Ext.define('PVE.EntraID', {
    singleton: true,

    // sessionStorage key remembering, across the trip to Microsoft, that a login was started
    // with an entraid realm; the realm itself is sealed into 'state' by the server
    pendingRealmKey: 'pve-entraid-realm',

    isEntraIDRealm: function (realmField) {
        let record = realmField && realmField.getStore().getById(realmField.getValue());
        return !!record && record.data.type === 'entraid';
    },

    redirectToEntraID: function (controller, realm) {
        let form = controller.lookupReference('loginForm');

        // PVE's workspace opens the view in 'openid-deeplink' after any login
        sessionStorage.setItem('openid-deeplink', window.location.hash);
        sessionStorage.setItem(PVE.EntraID.pendingRealmKey, realm);
        form.mask(gettext('Please wait...'), 'x-mask-loading');

        Proxmox.Utils.API2Request({
            url: '/api2/extjs/access/entraid/auth-url',
            params: {
                realm: realm,
                'redirect-url': window.location.origin,
            },
            method: 'POST',
            success: function (response) {
                let data = response.result.data;
                window.location = typeof data === 'string' ? data : data.url;
            },
            failure: function (response) {
                sessionStorage.removeItem(PVE.EntraID.pendingRealmKey);
                form.unmask();
                Ext.Msg.alert(
                    gettext('Error'),
                    gettext('Microsoft Entra ID redirect failed.') + `<br>${response.htmlStatus}`,
                );
            },
        });
    },

    // Returns {code, state} or {error} when this page load is Entra's answer to a login we
    // started, else undefined. Takes code and state out of the address bar: the code is single
    // use, and PVE's own OpenID handler (on 'show') must not send it to /access/openid/login.
    takeCallback: function () {
        if (!sessionStorage.getItem(PVE.EntraID.pendingRealmKey)) {
            return undefined;
        }
        let query = Ext.Object.fromQueryString(window.location.search);
        let callback;
        if (query.code !== undefined && query.state !== undefined) {
            callback = { code: query.code, state: query.state };
        } else if (query.error !== undefined) {
            callback = { error: query.error_description || query.error };
        } else {
            return undefined;
        }
        sessionStorage.removeItem(PVE.EntraID.pendingRealmKey);
        history.replaceState(null, '', window.location.pathname + window.location.hash);
        return callback;
    },

    finishLogin: function (controller, callback) {
        let form = controller.lookupReference('loginForm');

        if (callback.error) {
            Ext.Msg.alert(
                gettext('Error'),
                gettext('Microsoft Entra ID login failed, please try again') +
                    `<br>${Ext.String.htmlEncode(callback.error)}`,
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
            },
            method: 'POST',
            success: function (response) {
                form.unmask();
                // the same ticket data as /access/ticket: continue like any login
                controller.success(response.result.data);
            },
            failure: function (response) {
                form.unmask();
                Ext.Msg.alert(
                    gettext('Error'),
                    gettext('Microsoft Entra ID login failed, please try again') +
                        `<br>${response.htmlStatus}`,
                );
            },
        });
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

        let upstreamOnLogon = controller.onLogon;
        controller.onLogon = function () {
            if (!PVE.EntraID.isEntraIDRealm(realmField)) {
                sessionStorage.removeItem(PVE.EntraID.pendingRealmKey);
                return upstreamOnLogon.apply(this, arguments);
            }
            if (controller.lookupReference('loginForm').isValid()) {
                PVE.EntraID.redirectToEntraID(controller, realmField.getValue());
            }
            return undefined;
        };

        realmField.on('change', function () {
            // PVE's own realm listener sets 'openid' mode only for type 'openid'; run after it so
            // that entraid realms also hide user name and password and show the redirect button
            Promise.resolve().then(() => {
                if (!me.destroyed && PVE.EntraID.isEntraIDRealm(realmField)) {
                    me.getViewModel().set('openid', true);
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
// own LDAP sync panel (scope, enable-new, remove-vanished), without its LDAP-only fields. A
// frontend without that panel keeps entraid realms without the Sync button.
if (Ext.ClassManager.get('PVE.panel.LDAPSyncInputPanel')) {
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
        column2: [],
        columnB: Ext.clone(PVE.panel.LDAPSyncInputPanel.prototype.columnB),
    });

    PVE.Utils.authSchema.entraid.syncipanel = 'pveAuthEntraIDSyncPanel';
}
