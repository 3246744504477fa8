package dextest

import (
	"strings"
	"testing"
)

// TestLoginRefused: a wrong password or an unknown client ends at a Dex page,
// not at the redirect URI, and the error shows it.
func TestLoginRefused(t *testing.T) {
	const redirect = "http://127.0.0.1:1/cb"
	d := Start(t, Options{
		Users:   []User{{Email: "bob@example.com", Password: "right"}},
		Clients: []Client{{ID: "app", Secret: "x", RedirectURIs: []string{redirect}}},
	})
	auth := d.Issuer() + "/auth?response_type=code&scope=openid&state=s&redirect_uri=" + redirect + "&client_id="
	for _, tc := range []struct{ name, client, password, want string }{
		{"wrong password", "app", "wrong", "Invalid Email Address and password"},
		{"unknown client", "nobody", "right", "Invalid client_id"},
	} {
		_, err := d.login(auth+tc.client, "bob@example.com", tc.password)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want an error containing %q", tc.name, err, tc.want)
		}
	}
	if cb := d.Login(t, auth+"app", "bob@example.com", "right"); cb.Query().Get("code") == "" {
		t.Errorf("callback %s without a code", cb)
	}
}
