/*
 * Starts the test page like PVE.StdWorkspace: a realm list (Datacenter > Realms) and the login
 * window, whose handler records the login data as PVE's workspace would use it.
 */
window.loginData = null;

Ext.onReady(function () {
    Ext.tip.QuickTipManager.init();

    Ext.create('Ext.container.Viewport', {
        layout: 'fit',
        items: [{ xtype: 'pveAuthView', itemId: 'authView' }],
    });

    // '#realms' opens only the realm list (the login window is modal)
    if (window.location.hash === '#realms') {
        return;
    }

    // like PVE.Workspace.showLogin: the deep link kept before a redirect is opened after login
    Ext.create('PVE.window.LoginWindow', {
        handler: function (data) {
            window.loginData = data;
            let deeplink = sessionStorage.getItem('openid-deeplink');
            if (deeplink) {
                sessionStorage.removeItem('openid-deeplink');
                window.loginDeeplink = deeplink;
            }
        },
    }).show();
});
