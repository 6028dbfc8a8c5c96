/*
 * Minimal stand-ins for the parts of proxmox-widget-toolkit (proxmoxlib.js) and pve-manager
 * (pvemanagerlib.js) that www/pve-entraid.js touches, written for this test. Each one keeps
 * the upstream behaviour the script relies on (named in its comment) and nothing more; none is
 * upstream code. Loaded after ExtJS and before www/pve-entraid.js, like the real libraries.
 */
/* global Proxmox: true, PVE: true */

// index.html.tpl defines these when no language file is loaded
function gettext(message) {
    return message;
}

Proxmox = { Setup: { auth_cookie_name: 'PVEAuthCookie' }, ConsentText: '' };
PVE = {};

// proxmox-widget-toolkit src/Utils.js: the request wrapper (prefixes /api2/extjs, decodes the
// answer into response.result, success only when result.success) and the login helpers
Proxmox.Utils = {
    defaultText: 'Default',

    API2Request: function (opts) {
        let url = opts.url.match(/^\/api2/) ? opts.url : '/api2/extjs' + opts.url;
        Ext.Ajax.request({
            url: url,
            method: opts.method || 'GET',
            params: opts.params,
            success: function (response) {
                let result = Ext.decode(response.responseText);
                response.result = result;
                if (result.success) {
                    Ext.callback(opts.success, opts.scope, [response, opts]);
                } else {
                    response.htmlStatus = Ext.String.htmlEncode(result.message || 'error');
                    Ext.callback(opts.failure, opts.scope, [response, opts]);
                }
            },
            failure: function (response) {
                response.result = {};
                response.htmlStatus = `${response.status}: ${Ext.String.htmlEncode(response.statusText)}`;
                Ext.callback(opts.failure, opts.scope, [response, opts]);
            },
        });
    },

    authClear: function () {
        Proxmox.Utils.authCleared = (Proxmox.Utils.authCleared || 0) + 1;
    },

    // upstream: code and state in the query string mean "back from the OpenID provider"
    getOpenIDRedirectionAuthorization: function () {
        let auth = Ext.Object.fromQueryString(window.location.search);
        return auth.state !== undefined && auth.code !== undefined ? auth : undefined;
    },

    // upstream: merges field submit data, collecting 'delete' names into one list
    assemble_field_data: function (values, data) {
        if (!Ext.isObject(data)) {
            return;
        }
        Ext.Object.each(data, function (name, val) {
            if (name === 'delete') {
                values.delete = values.delete ? `${values.delete},${val}` : val;
            } else {
                values[name] = val;
            }
        });
    },
};

// src/form/TextField.js: empty value is not submitted, or submitted as 'delete' with deleteEmpty
Ext.define('Proxmox.form.field.Textfield', {
    extend: 'Ext.form.field.Text',
    alias: 'widget.proxmoxtextfield',
    deleteEmpty: false,
    getSubmitData: function () {
        let me = this;
        if (me.disabled || !me.submitValue) {
            return null;
        }
        let value = me.getValue();
        if (value !== '' && value !== null && value !== undefined) {
            return { [me.getName()]: value };
        }
        return me.deleteEmpty ? { delete: me.getName() } : null;
    },
});

// src/form/Checkbox.js: submits 1/0, or 'delete' when unchecked with deleteEmpty
Ext.define('Proxmox.form.Checkbox', {
    extend: 'Ext.form.field.Checkbox',
    alias: 'widget.proxmoxcheckbox',
    inputValue: '1',
    deleteEmpty: false,
    getSubmitData: function () {
        let me = this;
        if (me.disabled || !me.submitValue) {
            return null;
        }
        if (me.getValue()) {
            return { [me.getName()]: 1 };
        }
        return me.deleteEmpty ? { delete: me.getName() } : { [me.getName()]: 0 };
    },
});

// src/form/KVComboBox.js: items as [key, text]; '__default__' means "not set"
Ext.define('Proxmox.form.KVComboBox', {
    extend: 'Ext.form.field.ComboBox',
    alias: 'widget.proxmoxKVComboBox',
    deleteEmpty: true,
    comboItems: [],
    queryMode: 'local',
    valueField: 'key',
    displayField: 'value',
    initComponent: function () {
        let me = this;
        me.store = Ext.create('Ext.data.ArrayStore', { fields: ['key', 'value'], data: me.comboItems });
        me.callParent();
    },
    getSubmitData: function () {
        let me = this;
        let value = me.getValue();
        if (me.disabled || !me.submitValue) {
            return null;
        }
        if (value === '__default__' || value === null || value === '') {
            return me.deleteEmpty ? { delete: me.getName() } : null;
        }
        return { [me.getName()]: value };
    },
});

// pve-manager www/manager6/form/TFASelector.js: a field named 'tfa'
Ext.define('PVE.form.TFASelector', {
    extend: 'Proxmox.form.KVComboBox',
    alias: 'widget.pveTFASelector',
    name: 'tfa',
    fieldLabel: 'Require TFA',
    value: '__default__',
    comboItems: [['__default__', 'none'], ['oath', 'OATH/TOTP'], ['yubico', 'Yubico']],
});

// src/panel/InputPanel.js: columnT / column1 + column2 / columnB layout; getValues collects the
// fields' submit data and passes it through onGetValues
Ext.define('Proxmox.panel.InputPanel', {
    extend: 'Ext.panel.Panel',
    alias: 'widget.inputpanel',
    border: false,
    onGetValues: (values) => values,
    getValues: function () {
        let me = this;
        let values = {};
        for (const field of me.query('[isFormField]')) {
            if (!field.up('inputpanel') || field.up('inputpanel') === me) {
                Proxmox.Utils.assemble_field_data(values, field.getSubmitData());
            }
        }
        return me.onGetValues(values);
    },
    setValues: function (values) {
        let me = this;
        for (const field of me.query('[isFormField]')) {
            if (values[field.getName()] !== undefined) {
                field.setValue(values[field.getName()]);
            }
        }
    },
    initComponent: function () {
        let me = this;
        let items = [];
        if (me.columnT) {
            items.push({ xtype: 'container', layout: 'anchor', items: me.columnT });
        }
        items.push({
            xtype: 'container',
            layout: 'column',
            defaults: { columnWidth: 0.5, layout: 'anchor', xtype: 'container', padding: '0 5' },
            items: [{ items: me.column1 || [] }, { items: me.column2 || [] }],
        });
        if (me.columnB) {
            items.push({ xtype: 'container', layout: 'anchor', items: me.columnB });
        }
        me.items = items;
        me.callParent();
    },
});

// src/window/Edit.js: a window around the input panel, titled "Add: <subject>" / "Edit: <subject>"
Ext.define('Proxmox.window.Edit', {
    extend: 'Ext.window.Window',
    alias: 'widget.proxmoxWindowEdit',
    width: 720,
    modal: true,
    initComponent: function () {
        let me = this;
        me.title = `${me.isCreate ? 'Add' : 'Edit'}: ${me.subject}`;
        me.items = Ext.isArray(me.items) ? me.items : [me.items];
        me.callParent();
    },
    load: function (opts) {
        let me = this;
        Proxmox.Utils.API2Request({ url: me.url, method: 'GET', success: opts.success });
    },
    setValues: function (values) {
        this.down('inputpanel').setValues(values);
    },
});

// pve-manager www/manager6/Utils.js: the realm types PVE ships
PVE.Utils = {
    getUiLanguage: () => 'en',
    authSchema: {
        ad: { name: 'Active Directory Server', ipanel: 'pveAuthBasePanel', add: true, tfa: true, pwchange: true },
        openid: {
            name: 'OpenID Connect Server',
            ipanel: 'pveAuthBasePanel',
            add: true,
            tfa: false,
            pwchange: false,
            iconCls: 'pmx-itype-icon-openid-logo',
        },
        pam: { name: 'Linux PAM', ipanel: 'pveAuthBasePanel', add: false, tfa: true, pwchange: true },
        pve: { name: 'Proxmox VE authentication server', ipanel: 'pveAuthBasePanel', add: false, tfa: true, pwchange: true },
    },
};

// pve-manager www/manager6/dc/AuthEditBase.js: realm first and default last in column1, TFA
// last in column2 when the type allows it, comment in columnB; 'type' sent on create
Ext.define('PVE.panel.AuthBase', {
    extend: 'Proxmox.panel.InputPanel',
    xtype: 'pveAuthBasePanel',
    type: '',
    onGetValues: function (values) {
        if (this.isCreate) {
            values.type = this.type;
        }
        return values;
    },
    initComponent: function () {
        let me = this;
        let options = PVE.Utils.authSchema[me.type];
        me.column1 = me.column1 || [];
        me.column2 = me.column2 || [];
        me.columnB = me.columnB || [];
        me.column1.unshift({
            xtype: me.isCreate ? 'textfield' : 'displayfield',
            name: 'realm',
            fieldLabel: 'Realm',
            value: me.realm,
            allowBlank: false,
        });
        me.column1.push({ xtype: 'proxmoxcheckbox', fieldLabel: 'Default', name: 'default', uncheckedValue: 0 });
        if (options.tfa) {
            me.column2.push({ xtype: 'pveTFASelector', deleteEmpty: !me.isCreate });
        }
        me.columnB.push({ xtype: 'textfield', name: 'comment', fieldLabel: 'Comment' });
        me.callParent();
    },
});

// pve-manager www/manager6/dc/AuthEditBase.js: the edit window shows the type's ipanel
Ext.define('PVE.dc.AuthEditBase', {
    extend: 'Proxmox.window.Edit',
    initComponent: function () {
        let me = this;
        me.isCreate = !me.realm;
        me.url = '/api2/extjs/access/domains' + (me.isCreate ? '' : `/${me.realm}`);
        let authConfig = PVE.Utils.authSchema[me.authType];
        if (!authConfig) {
            throw 'unknown auth type';
        }
        me.subject = authConfig.name;
        me.items = [{ realm: me.realm, xtype: authConfig.ipanel, isCreate: me.isCreate, type: me.authType }];
        me.callParent();
        if (!me.isCreate) {
            me.load({ success: (response) => me.setValues(response.result.data) });
        }
    },
});

// pve-manager www/manager6/dc/AuthView.js: the Add menu lists every type with add: true
Ext.define('PVE.dc.AuthView', {
    extend: 'Ext.panel.Panel',
    alias: 'widget.pveAuthView',
    title: 'Realms',
    openEditWindow: function (authType, realm) {
        Ext.create('PVE.dc.AuthEditBase', { authType, realm }).show();
    },
    initComponent: function () {
        let me = this;
        let items = [];
        for (const [authType, config] of Object.entries(PVE.Utils.authSchema)) {
            if (config.add) {
                items.push({
                    text: config.name,
                    iconCls: 'fa fa-fw ' + (config.iconCls || 'fa-address-book-o'),
                    handler: () => me.openEditWindow(authType),
                });
            }
        }
        me.tbar = [
            { text: 'Add', itemId: 'addButton', menu: { items } },
            { text: 'Edit', itemId: 'editButton', handler: () => me.openEditWindow('entraid', 'entra') },
        ];
        me.callParent();
    },
});

// src/data/model/Realm.js: realm records, identified by realm name, shown by comment or name
Ext.define('pmx-domains', {
    extend: 'Ext.data.Model',
    fields: ['realm', 'type', 'comment', 'default', { name: 'descr', convert: (v, rec) => rec.data.comment || rec.data.realm }],
    idProperty: 'realm',
    proxy: { type: 'ajax', url: '/api2/json/access/domains', reader: { type: 'json', rootProperty: 'data' } },
});

// src/form/RealmComboBox.js: realms from /access/domains, the default realm preselected
Ext.define('Proxmox.form.RealmComboBox', {
    extend: 'Ext.form.field.ComboBox',
    alias: 'widget.pmxRealmComboBox',
    fieldLabel: 'Realm',
    name: 'realm',
    queryMode: 'local',
    editable: false,
    valueField: 'realm',
    displayField: 'descr',
    initComponent: function () {
        let me = this;
        me.store = Ext.create('Ext.data.Store', { model: 'pmx-domains' });
        me.callParent();
        me.store.on('load', (store, records) => {
            if (me.destroyed) {
                return; // a callback login may close the window before the realms arrive
            }
            let def = records.find((rec) => rec.data.default);
            me.setValue(def ? def.data.realm : 'pam');
        });
        me.store.load();
    },
});

// pve-manager www/manager6/window/LoginWindow.js: an inline ViewController with onLogon (OpenID
// realms redirect via /access/openid/auth-url), a realm 'change' listener setting the 'openid'
// view model flag for type 'openid' only, and a 'show' listener that finishes an OpenID login
// when the page carries ?code=&state=; success() hands the ticket data to the window's handler
Ext.define('PVE.window.LoginWindow', {
    extend: 'Ext.window.Window',

    viewModel: {
        data: { openid: false },
        formulas: {
            button_text: (get) => (get('openid') === true ? 'Login (OpenID redirect)' : 'Login'),
        },
    },

    controller: {
        xclass: 'Ext.app.ViewController',

        init: function () {
            if (Proxmox.ConsentText && Proxmox.Utils.getOpenIDRedirectionAuthorization() === undefined) {
                window.consentShown = true;
            }
        },

        onLogon: function () {
            let me = this;
            let form = me.lookupReference('loginForm');
            if (!form.isValid()) {
                return;
            }
            let creds = form.getValues();
            if (me.getViewModel().get('openid') === true) {
                sessionStorage.setItem('openid-deeplink', window.location.hash);
                Proxmox.Utils.API2Request({
                    url: '/api2/extjs/access/openid/auth-url',
                    params: { realm: creds.realm, 'redirect-url': location.origin },
                    method: 'POST',
                    success: (resp) => {
                        window.location = resp.result.data;
                    },
                });
                return;
            }
            Proxmox.Utils.API2Request({
                url: '/api2/extjs/access/ticket',
                params: creds,
                method: 'POST',
                success: (resp) => me.success(resp.result.data),
            });
        },

        success: function (data) {
            let view = this.getView();
            (view.handler || Ext.emptyFn).call(this, data);
            view.close();
        },

        control: {
            'field[name=realm]': {
                change: function (f, value) {
                    let record = f.store.getById(value);
                    if (record) {
                        this.getViewModel().set('openid', record.data.type === 'openid');
                    }
                },
            },
            'button[reference=loginButton]': { click: 'onLogon' },
            '#': {
                show: function () {
                    let me = this;
                    let auth = Proxmox.Utils.getOpenIDRedirectionAuthorization();
                    if (auth !== undefined) {
                        Proxmox.Utils.API2Request({
                            url: '/api2/extjs/access/openid/login',
                            params: { state: auth.state, code: auth.code, 'redirect-url': location.origin },
                            method: 'POST',
                            success: (response) => {
                                history.replaceState(null, '', location.origin);
                                me.success(response.result.data);
                            },
                        });
                    }
                },
            },
        },
    },

    width: 400,
    modal: true,
    closable: false,
    title: 'Proxmox VE Login',

    items: [
        {
            xtype: 'form',
            reference: 'loginForm',
            fieldDefaults: { labelAlign: 'right', allowBlank: false },
            items: [
                {
                    xtype: 'textfield',
                    fieldLabel: 'User name',
                    name: 'username',
                    reference: 'usernameField',
                    bind: { visible: '{!openid}', disabled: '{openid}' },
                },
                {
                    xtype: 'textfield',
                    inputType: 'password',
                    fieldLabel: 'Password',
                    name: 'password',
                    reference: 'passwordField',
                    bind: { visible: '{!openid}', disabled: '{openid}' },
                },
                { xtype: 'pmxRealmComboBox', name: 'realm' },
            ],
            buttons: [{ bind: { text: '{button_text}' }, reference: 'loginButton' }],
        },
    ],
});
