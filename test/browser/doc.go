// Package browser proves silent refresh in a real browser, with real parts
// only: Debian's nginx in front of a small upstream app, auth_request to the
// silentauth binary's HTTP authorization mode (with the snippets of
// manifests/proxies/nginx included as they are), and Debian's Chromium,
// headless, driven over the Chrome DevTools Protocol.
//
// The browser signs in through the app, keeps using the page past several
// access-token expiries (time really passes: a browser cannot use a fake
// clock, so the lifetimes are seconds), fires parallel requests at the
// moment of expiry, is attacked by a same-site page on another port, and
// logs out. The cookie jar is read from the browser itself.
//
// Provider login runs in the browser too (TestDexLoginInBrowser): a real
// Dex (internal/testenv/dextest) is the OpenID Connect provider; Chromium
// fills in Dex's login form, lands back on the page it first asked for, and
// keeps the session while silentauth refreshes Dex's tokens inside its own
// rotation; two tabs log in at once. Logout runs against zitadel/oidc's
// example provider (internal/testenv/oidctest), which, unlike Dex, has
// end-session and revocation endpoints (TestLogoutEndsProviderSessionInBrowser),
// and a back-channel logout sent while a browser is idle ends its session
// at its next request once the access token expires
// (TestBackChannelLogoutInBrowser). Without a
// browser, the same answers are checked through nginx and through Caddy
// (manifests/proxies/caddy/Caddyfile).
//
// nginx, chromium and caddy come from `make tools` (scripts/tools/browser.sh),
// and so does dex.
// Without them the tests are skipped, or fail when
// SILENTAUTH_REQUIRE_INTEGRATION=1 (CI). Screenshots of the key moments are
// kept in the test's temporary folder, or in test/browser/artifacts/ when
// SILENTAUTH_BROWSER_ARTIFACTS=1; SILENTAUTH_BROWSER_DOCS=1 also refreshes
// docs/browser-refresh.png. SILENTAUTH_BINARY runs a prebuilt silentauth
// instead of building cmd/silentauth.
//
// The package has no code of its own; everything is in tests.
package browser
