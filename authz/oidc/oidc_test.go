package oidc_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/silentauth/silentauth/authz/oidc"
	"github.com/silentauth/silentauth/internal/testenv/oidctest"
)

const redirect = "https://app.test/auth/callback"

func options(rig *oidctest.Provider) oidc.Options {
	o := oidc.Default()
	o.IssuerURL = rig.Issuer
	o.ClientID = rig.ClientID
	o.ProviderTimeout = 300 * time.Millisecond
	return o
}

func start(t testing.TB, mutate func(*oidc.Options)) (*oidctest.Provider, *oidc.Provider) {
	t.Helper()
	rig := oidctest.Start(t, oidctest.Config{})
	o := options(rig)
	if mutate != nil {
		mutate(&o)
	}
	p, err := oidc.New(context.Background(), o, rig.ClientSecret, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return rig, p
}

// flow is one login's secrets and its callback.
type flow struct {
	state, nonce, verifier, code string
}

func login(t testing.TB, rig *oidctest.Provider, p *oidc.Provider) flow {
	t.Helper()
	f := flow{state: oauth2.GenerateVerifier(), nonce: oauth2.GenerateVerifier(), verifier: oauth2.GenerateVerifier()}
	cb, err := rig.Login(context.Background(), p.AuthURL(redirect, f.state, f.nonce, f.verifier), "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	if got := cb.Query().Get("state"); got != f.state {
		t.Fatalf("callback state %q, want %q", got, f.state)
	}
	f.code = cb.Query().Get("code")
	return f
}

func TestOIDCCodeFlowWithPKCE(t *testing.T) {
	rig, p := start(t, nil)
	f := login(t, rig, p)
	l, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
	if err != nil {
		t.Fatal(err)
	}
	if got := rig.ChallengeMethods(); !reflect.DeepEqual(got, []string{"S256"}) {
		t.Errorf("provider saw code_challenge_method %q, want [S256]", got)
	}
	if l.Subject != "alice-id" || l.Tokens.RefreshToken == "" || l.Tokens.IDToken == "" || l.Tokens.AccessToken == "" || l.Tokens.Expiry.IsZero() {
		t.Errorf("login = %+v", l)
	}
	if g := rig.Grants(); g["authorization_code"] != 1 {
		t.Errorf("grants = %v", g)
	}
}

func TestOIDCExchangeWrongVerifierIsRefused(t *testing.T) {
	rig, p := start(t, nil)
	f := login(t, rig, p)
	_, err := p.Exchange(context.Background(), redirect, f.code, oauth2.GenerateVerifier(), f.nonce)
	if !errors.Is(err, oidc.ErrExchange) {
		t.Fatalf("err = %v, want ErrExchange", err)
	}
}

func TestOIDCNonceMismatch(t *testing.T) {
	rig, p := start(t, nil)
	f := login(t, rig, p)
	_, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, "another-nonce")
	if !errors.Is(err, oidc.ErrNonce) {
		t.Fatalf("err = %v, want ErrNonce", err)
	}
}

func TestOIDCForgedAndExpiredIDTokens(t *testing.T) {
	cases := []struct {
		name  string
		forge func(rig *oidctest.Provider, claims map[string]any) string
	}{
		{"wrong key", func(rig *oidctest.Provider, c map[string]any) string { return rig.Forge(c) }},
		{"expired", func(rig *oidctest.Provider, c map[string]any) string {
			c["exp"], c["iat"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-2*time.Hour).Unix()
			return rig.Sign(c)
		}},
		{"other audience", func(rig *oidctest.Provider, c map[string]any) string { c["aud"] = "someone-else"; return rig.Sign(c) }},
		{"other azp", func(rig *oidctest.Provider, c map[string]any) string { c["azp"] = "someone-else"; return rig.Sign(c) }},
		{"two audiences, no azp", func(rig *oidctest.Provider, c map[string]any) string {
			c["aud"] = []string{rig.ClientID, "other"}
			delete(c, "azp")
			return rig.Sign(c)
		}},
		{"other issuer", func(rig *oidctest.Provider, c map[string]any) string {
			c["iss"] = "https://evil.test"
			return rig.Sign(c)
		}},
		// RFC 8725 §3.1, §3.2: no unsigned token, and no HMAC keyed with
		// the client secret, which the client itself knows.
		{"alg none", func(rig *oidctest.Provider, c map[string]any) string { return unsigned(c) }},
		{"HS256 with the client secret", func(rig *oidctest.Provider, c map[string]any) string { return hs256(c, rig.ClientSecret) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rig, p := start(t, nil)
			rig.RewriteTokenResponses(func(m map[string]any) {
				c := oidctest.Claims(m["id_token"].(string))
				delete(c, "at_hash")
				m["id_token"] = tc.forge(rig, c)
			})
			f := login(t, rig, p)
			_, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
			if !errors.Is(err, oidc.ErrIDToken) {
				t.Fatalf("err = %v, want ErrIDToken", err)
			}
		})
	}
}

func TestOIDCCodeReplayIsRefused(t *testing.T) {
	rig, p := start(t, nil)
	f := login(t, rig, p)
	if _, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce); err != nil {
		t.Fatal(err)
	}
	_, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
	if !errors.Is(err, oidc.ErrExchange) {
		t.Fatalf("replayed code: err = %v, want ErrExchange", err)
	}
}

func TestOIDCProviderDiscoveryIssuerMismatchFailsNew(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"issuer": "https://impostor.test", "authorization_endpoint": "https://impostor.test/auth", "token_endpoint": "https://impostor.test/token", "jwks_uri": "https://impostor.test/keys"})
	}))
	defer srv.Close()
	o := oidc.Default()
	o.IssuerURL, o.ClientID = srv.URL, "c"
	_, err := oidc.New(context.Background(), o, "", slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), srv.URL) || !strings.Contains(err.Error(), "https://impostor.test") {
		t.Fatalf("err = %v, want one naming both issuers", err)
	}
}

func TestOIDCProviderUnreachableFailsNew(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	o := oidc.Default()
	o.IssuerURL, o.ClientID = url, "c"
	_, err := oidc.New(context.Background(), o, "", slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), url+"/.well-known/openid-configuration") {
		t.Fatalf("err = %v, want one naming the discovery URL", err)
	}
}

func TestOIDCEmailDomainsAndRequiredClaims(t *testing.T) {
	cases := []struct {
		name    string
		domains []string
		require map[string][]string
		want    error
	}{
		{"domain allowed, any case", []string{"EXAMPLE.com"}, nil, nil},
		{"domain refused", []string{"corp.test"}, nil, oidc.ErrEmailDomain},
		{"group present", nil, map[string][]string{"groups": {"ops"}}, nil},
		{"group absent", nil, map[string][]string{"groups": {"admins"}}, oidc.ErrClaims},
		{"number claim matches", nil, map[string][]string{"level": {"42"}}, nil},
		{"claim missing", nil, map[string][]string{"department": {}}, oidc.ErrClaims},
		{"claim any value", nil, map[string][]string{"email": {}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rig, p := start(t, func(o *oidc.Options) { o.AllowedEmailDomains, o.RequiredClaims = tc.domains, tc.require })
			f := login(t, rig, p)
			_, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestOIDCUnverifiedEmailIsRefused(t *testing.T) {
	u := oidctest.DefaultUser
	// zitadel omits a false email_verified (omitempty); the claim says it
	// the way providers that send it do.
	u.EmailVerified = false
	u.Claims = map[string]any{"email_verified": false}
	rig := oidctest.Start(t, oidctest.Config{Users: []oidctest.User{u}})
	o := options(rig)
	o.AllowedEmailDomains = []string{"example.com"}
	p, err := oidc.New(context.Background(), o, rig.ClientSecret, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := login(t, rig, p)
	if _, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce); !errors.Is(err, oidc.ErrEmailDomain) {
		t.Fatalf("err = %v, want ErrEmailDomain", err)
	}
}

func TestOIDCClaimsMapping(t *testing.T) {
	u := oidctest.DefaultUser
	u.UserinfoClaims = map[string]any{"department": "platform"}
	rig := oidctest.Start(t, oidctest.Config{Users: []oidctest.User{u}})
	o := options(rig)
	o.Userinfo = true
	o.Claims = map[string]string{"email": "email", "groups": "groups", "lvl": "level", "dept": "department", "absent": "nothing"}
	p, err := oidc.New(context.Background(), o, rig.ClientSecret, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	f := login(t, rig, p)
	l, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"email": "alice@example.com", "groups": []any{"dev", "ops"}, "lvl": json.Number("42"), "dept": "platform"}
	if !reflect.DeepEqual(l.Claims, want) {
		t.Errorf("claims = %#v\nwant %#v", l.Claims, want)
	}
}

func TestOIDCRefreshRotatesWithoutReuse(t *testing.T) {
	rig, p := start(t, nil)
	f := login(t, rig, p)
	l, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
	if err != nil {
		t.Fatal(err)
	}
	tok := l.Tokens
	for range 3 {
		next, err := p.Refresh(context.Background(), tok)
		if err != nil {
			t.Fatal(err)
		}
		if next.RefreshToken == tok.RefreshToken || next.AccessToken == tok.AccessToken {
			t.Fatal("refresh did not rotate the tokens")
		}
		tok = next
	}
	if g := rig.Grants(); g["refresh_token"] != 3 {
		t.Errorf("grants = %v", g)
	}
	if n := rig.Reuses(); n != 0 {
		t.Errorf("provider saw %d refresh-token reuses, want 0", n)
	}
}

func TestOIDCRefreshAfterRevocationIsGrantDead(t *testing.T) {
	rig, p := start(t, nil)
	f := login(t, rig, p)
	l, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
	if err != nil {
		t.Fatal(err)
	}
	rig.Revoke(l.Subject)
	if _, err := p.Refresh(context.Background(), l.Tokens); !errors.Is(err, oidc.ErrGrantDead) {
		t.Fatalf("err = %v, want ErrGrantDead", err)
	}
}

func TestOIDCRefreshProviderFaultsAreUnavailable(t *testing.T) {
	for _, fault := range []oidctest.Fault{oidctest.Unavailable, oidctest.Hang} {
		rig, p := start(t, nil)
		f := login(t, rig, p)
		l, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
		if err != nil {
			t.Fatal(err)
		}
		rig.SetFault(fault)
		before := rig.Grants()["refresh_token"]
		// The hang ends by the client's providerTimeout (300ms here), the
		// only deadline: the context never ends.
		if _, err := p.Refresh(context.Background(), l.Tokens); !errors.Is(err, oidc.ErrUnavailable) {
			t.Errorf("fault %d: err = %v, want ErrUnavailable", fault, err)
		}
		// Presented once: a failed request is never sent again in another
		// client-authentication style (x/oauth2's auto-detection would).
		if n := rig.Grants()["refresh_token"] - before; n != 1 {
			t.Errorf("fault %d: the provider saw the refresh token %d times, want once", fault, n)
		}
		rig.SetFault(oidctest.NoFault)
		// The refused answer spent nothing: the token still works.
		if _, err := p.Refresh(context.Background(), l.Tokens); err != nil && fault == oidctest.Unavailable {
			t.Errorf("after the fault: %v", err)
		}
	}
}

func TestOIDCExchangeProviderDownIsUnavailable(t *testing.T) {
	rig, p := start(t, nil)
	f := login(t, rig, p)
	rig.SetFault(oidctest.Unavailable)
	if _, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce); !errors.Is(err, oidc.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestOIDCCallbackErrorIsCapped(t *testing.T) {
	err := oidc.CallbackError("access_denied", strings.Repeat("x\n", 500))
	var pe *oidc.ProviderError
	if !errors.Is(err, oidc.ErrProviderError) || !errors.As(err, &pe) || pe.Code != "access_denied" || len(pe.Description) > 210 || strings.Contains(pe.Description, "\n") {
		t.Fatalf("err = %q", err)
	}
}

func TestOIDCAuthURLCarriesFlowAndExtraParams(t *testing.T) {
	_, p := start(t, func(o *oidc.Options) { o.AuthParams = map[string]string{"access_type": "offline", "prompt": "consent"} })
	u := p.AuthURL(redirect, "st", "no", oauth2.GenerateVerifier())
	for _, want := range []string{"code_challenge_method=S256", "nonce=no", "state=st", "access_type=offline", "prompt=consent", "scope=openid+email+profile+offline_access", "response_type=code"} {
		if !strings.Contains(u, want) {
			t.Errorf("auth URL %s lacks %s", u, want)
		}
	}
}

func TestOIDCTokensBinaryRoundTrip(t *testing.T) {
	in := oidc.Tokens{RefreshToken: "r", IDToken: "i.d.t", AccessToken: "a", Expiry: time.UnixMilli(1_700_000_000_123), Obtained: time.UnixMilli(1_699_999_000_000)}
	b, _ := in.MarshalBinary()
	var out oidc.Tokens
	if err := out.UnmarshalBinary(b); err != nil || !out.Expiry.Equal(in.Expiry) || !out.Obtained.Equal(in.Obtained) || out.RefreshToken != "r" || out.IDToken != "i.d.t" || out.AccessToken != "a" {
		t.Fatalf("round trip: %v %+v", err, out)
	}
	for i := range len(b) {
		if err := out.UnmarshalBinary(b[:i]); err == nil {
			t.Errorf("truncated at %d: no error", i)
		}
	}
	if strings.Contains(in.String(), "i.d.t") {
		t.Error("String shows a token")
	}
}

func TestOIDCTokensDueAt(t *testing.T) {
	t0 := time.Unix(1_000_000, 0)
	cases := []struct {
		name     string
		tok      oidc.Tokens
		interval time.Duration
		want     time.Time
	}{
		{"no refresh token: never", oidc.Tokens{Expiry: t0.Add(time.Hour), Obtained: t0}, 0, time.Time{}},
		{"expiry less 30s", oidc.Tokens{RefreshToken: "r", Expiry: t0.Add(time.Hour), Obtained: t0}, 0, t0.Add(time.Hour - 30*time.Second)},
		{"short token: quarter", oidc.Tokens{RefreshToken: "r", Expiry: t0.Add(time.Minute), Obtained: t0}, 0, t0.Add(45 * time.Second)},
		{"interval first", oidc.Tokens{RefreshToken: "r", Expiry: t0.Add(time.Hour), Obtained: t0}, 10 * time.Minute, t0.Add(10 * time.Minute)},
		{"no expiry, interval", oidc.Tokens{RefreshToken: "r", Obtained: t0}, time.Minute, t0.Add(time.Minute)},
		{"no expiry, no interval", oidc.Tokens{RefreshToken: "r", Obtained: t0}, 0, time.Time{}},
	}
	for _, tc := range cases {
		if got := tc.tok.DueAt(tc.interval); !got.Equal(tc.want) {
			t.Errorf("%s: DueAt = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestOIDCOptionsValidateReportsEveryProblem(t *testing.T) {
	if err := oidc.Default().Validate("oidc"); err != nil {
		t.Fatalf("off section: %v", err)
	}
	good := oidc.Default()
	good.IssuerURL, good.ClientID = "https://accounts.example.com", "c"
	if err := good.Validate("oidc"); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, loop := range []string{"http://127.0.0.1:5556/dex", "http://localhost", "http://[::1]:80"} {
		o := good
		o.IssuerURL = loop
		if err := o.Validate("oidc"); err != nil {
			t.Errorf("%s: %v", loop, err)
		}
	}
	bad := oidc.Options{
		IssuerURL:           "http://idp.example.com",
		Scopes:              []string{"email", "email"},
		AuthParams:          map[string]string{"Code_Challenge_Method": "plain", "redirect_uri": "x", "access_type": "offline"},
		CallbackPath:        "auth/callback",
		RedirectURL:         "http://app.example.com/cb",
		Claims:              map[string]string{"sub": "email", "team": ""},
		AllowedEmailDomains: []string{"@corp.test"},
		RefreshInterval:     -1,
		LoginTTL:            time.Hour,
		MaxPendingLogins:    11,
		RefreshLease:        time.Minute,
		ProviderTimeout:     2 * time.Minute,
	}
	err := bad.Validate("oidc")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"oidc.issuerURL:", "oidc.clientID:", "oidc.scopes:", "oidc.scopes[1]:", "oidc.authParams.Code_Challenge_Method:", "oidc.authParams.redirect_uri:",
		"oidc.callbackPath:", "oidc.redirectURL:", "oidc.subjectClaim:", "oidc.claims.sub:", "oidc.claims.team:", "oidc.allowedEmailDomains[0]:",
		"oidc.refreshInterval:", "oidc.loginTTL:", "oidc.maxPendingLogins:", "oidc.refreshLease:", "oidc.providerTimeout:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "access_type") {
		t.Errorf("access_type refused:\n%v", err)
	}
}

func BenchmarkOIDCExchange(b *testing.B) {
	rig, p := start(b, nil)
	for b.Loop() {
		b.StopTimer()
		f := login(b, rig, p)
		b.StartTimer()
		if _, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOIDCRefresh(b *testing.B) {
	rig, p := start(b, nil)
	f := login(b, rig, p)
	l, err := p.Exchange(context.Background(), redirect, f.code, f.verifier, f.nonce)
	if err != nil {
		b.Fatal(err)
	}
	tok := l.Tokens
	for b.Loop() {
		if tok, err = p.Refresh(context.Background(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// unsigned is an ID token with alg none.
func unsigned(claims map[string]any) string {
	return b64json(map[string]any{"alg": "none", "typ": "JWT"}) + "." + b64json(claims) + "."
}

// hs256 is an ID token MACed with secret.
func hs256(claims map[string]any, secret string) string {
	signing := b64json(map[string]any{"alg": "HS256", "typ": "JWT"}) + "." + b64json(claims)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func b64json(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}
