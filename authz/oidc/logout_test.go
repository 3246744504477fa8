package oidc_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/oidc"
)

// No input verifies as a logout token unless the provider signed it, and
// every refusal is ErrLogoutToken: the handler's answer (400) depends on
// it, never a panic or another error.
func FuzzBackChannelVerifyLogout(f *testing.F) {
	rig, p := start(f, nil)
	c := rig.LogoutClaims(time.Now())
	c["sid"] = "sid-1"
	good := rig.SignLogout(c)
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.")
	f.Add("..")
	f.Add("a.b.c.d")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := p.VerifyLogout(context.Background(), raw)
		switch {
		case err == nil && raw != good:
			t.Fatalf("%q verified: %+v", raw, tok)
		case err != nil && !errors.Is(err, oidc.ErrLogoutToken):
			t.Fatalf("%q: %v is not ErrLogoutToken", raw, err)
		}
	})
}

// The end-session request carries exactly the RP-Initiated Logout
// parameters: no hint when none is given, no post_logout_redirect_uri
// when none is configured.
func TestLogoutEndSessionURL(t *testing.T) {
	rig, p := start(t, nil)
	for _, tc := range []struct {
		hint, want string
	}{
		{"the-id-token", rig.Issuer + "/end_session?client_id=" + rig.ClientID + "&id_token_hint=the-id-token"},
		{"", rig.Issuer + "/end_session?client_id=" + rig.ClientID},
	} {
		if got := p.EndSessionURL(tc.hint); got != tc.want {
			t.Errorf("EndSessionURL(%q) = %q, want %q", tc.hint, got, tc.want)
		}
	}
	rig, p = start(t, func(o *oidc.Options) {
		o.PostLogoutRedirectURL, o.PostLogoutRedirectURLs = "https://app.test/bye", []string{"https://app.test/bye"}
	})
	if got, want := p.EndSessionURL(""), "client_id="+rig.ClientID+"&post_logout_redirect_uri=https%3A%2F%2Fapp.test%2Fbye"; len(got) < len(want) || got[len(got)-len(want):] != want {
		t.Errorf("with a post-logout URL: %q", got)
	}
}
