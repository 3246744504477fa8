package dextest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/silentauth/silentauth/internal/testenv/dextest"
)

const redirectURI = "http://127.0.0.1:1/callback" // never fetched: Login stops there

var (
	alice  = dextest.User{Email: "alice@example.com", Password: "wonderland", Username: "alice", UserID: "u-alice"}
	client = dextest.Client{ID: "silentauth", Secret: "s3cret", RedirectURIs: []string{redirectURI}}
)

func TestDiscovery(t *testing.T) {
	dex := dextest.Start(t, dextest.Options{})
	resp, err := http.Get(dex.Issuer() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer              string   `json:"issuer"`
		TokenEndpoint       string   `json:"token_endpoint"`
		GrantTypes          []string `json:"grant_types_supported"`
		CodeChallengeMethod []string `json:"code_challenge_methods_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != dex.Issuer() || doc.TokenEndpoint != dex.Issuer()+"/token" {
		t.Errorf("issuer %q, token endpoint %q; want %q and its /token", doc.Issuer, doc.TokenEndpoint, dex.Issuer())
	}
	if !slices.Contains(doc.GrantTypes, "refresh_token") || !slices.Contains(doc.CodeChallengeMethod, "S256") {
		t.Errorf("grant types %v, code challenge methods %v; want refresh_token and S256 among them", doc.GrantTypes, doc.CodeChallengeMethod)
	}
}

// TestCodeFlowAndRefresh signs in through the login form, redeems the code
// with PKCE, refreshes, and shows the strictness of refresh-token rotation:
// the consumed token is accepted again within ReuseInterval and refused
// after it.
func TestCodeFlowAndRefresh(t *testing.T) {
	const reuse = time.Second
	dex := dextest.Start(t, dextest.Options{
		Users:         []dextest.User{alice},
		Clients:       []dextest.Client{client},
		IDTokenTTL:    30 * time.Second,
		ReuseInterval: reuse,
	})
	ctx := context.Background()
	conf := &oauth2.Config{
		ClientID:     client.ID,
		ClientSecret: client.Secret,
		RedirectURL:  redirectURI,
		Scopes:       []string{"openid", "email", "profile", "offline_access"},
		// In the header only: auto-detection may send a failed request twice.
		Endpoint: oauth2.Endpoint{AuthURL: dex.Issuer() + "/auth", TokenURL: dex.Issuer() + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}

	verifier := oauth2.GenerateVerifier()
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(dex.Log())
		}
	})
	callback := dex.Login(t, conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), alice.Email, alice.Password)
	q := callback.Query()
	if q.Get("state") != "st4te" || q.Get("code") == "" {
		t.Fatalf("callback %s: want state st4te and a code", callback)
	}

	// A wrong verifier is refused: Dex enforces PKCE.
	if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Fatal("code redeemed with a wrong PKCE verifier")
	}
	// The code is single-use, so sign in again for the real exchange.
	verifier = oauth2.GenerateVerifier()
	callback = dex.Login(t, conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), alice.Email, alice.Password)
	tok, err := conf.Exchange(ctx, callback.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	claims := idClaims(t, tok)
	if claims["iss"] != dex.Issuer() || claims["aud"] != client.ID || claims["email"] != alice.Email || claims["name"] != alice.Username {
		t.Errorf("ID token claims %v", claims)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat != 30 {
		t.Errorf("ID token lives %vs; want IDTokenTTL, 30s", exp-iat)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	if n := dex.Grants("authorization_code"); n != 2 {
		t.Errorf("%d authorization-code grants; want 2 (one refused)", n)
	}

	refresh := func(rt string) (*oauth2.Token, error) {
		return conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	first := tok.RefreshToken
	// Within ReuseInterval of its issue (or last use) a refresh token is
	// not rotated: Dex answers with new ID and access tokens and the same
	// refresh token.
	same, err := refresh(first)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if same.RefreshToken != first || idClaims(t, same)["email"] != alice.Email {
		t.Fatalf("refresh within ReuseInterval: refresh token %q, email %v; want the same token and alice", same.RefreshToken, idClaims(t, same)["email"])
	}
	if n := dex.RefreshGrants(); n != 1 {
		t.Fatalf("%d refresh grants counted; want 1", n)
	}

	// After it, a refresh rotates the token.
	time.Sleep(reuse + 200*time.Millisecond)
	tok2, err := refresh(first)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if tok2.RefreshToken == "" || tok2.RefreshToken == first {
		t.Fatalf("refresh after ReuseInterval returned refresh token %q; want a new one (rotation)", tok2.RefreshToken)
	}
	// Within ReuseInterval of that use the consumed token gets the current
	// one again (a client that lost the answer can retry).
	if again, err := refresh(first); err != nil || again.RefreshToken != tok2.RefreshToken {
		t.Fatalf("reuse within ReuseInterval: %v (refresh token %q, want %q)", err, again.RefreshToken, tok2.RefreshToken)
	}
	// After it, a second use of the consumed token is an OAuth error: the
	// strictness silentauth must never trigger.
	time.Sleep(reuse + 200*time.Millisecond)
	_, err = refresh(first)
	var oerr *oauth2.RetrieveError
	if !errors.As(err, &oerr) || oerr.ErrorCode == "" {
		t.Fatalf("reuse after ReuseInterval: %v; want an OAuth error", err)
	}
	t.Logf("reuse after ReuseInterval: HTTP %d, %s: %s", oerr.Response.StatusCode, oerr.ErrorCode, oerr.ErrorDescription)
	if !strings.Contains(dex.Log(), "refresh token claimed twice") {
		t.Errorf("Dex's log does not say the refresh token was claimed twice:\n%s", dex.Log())
	}
	ok := http.StatusOK
	want := []dextest.TokenRequest{{"refresh_token", ok}, {"refresh_token", ok}, {"refresh_token", ok}, {"refresh_token", oerr.Response.StatusCode}}
	if got := dex.TokenRequests()[2:]; !slices.Equal(got, want) {
		t.Errorf("token requests after the exchanges %v; want %v", got, want)
	}
	// The current token still works.
	if _, err := refresh(tok2.RefreshToken); err != nil {
		t.Errorf("refresh with the current token: %v", err)
	}
}

// idClaims decodes the payload of tok's ID token (unverified: the rig's own
// Dex issued it).
func idClaims(t *testing.T, tok *oauth2.Token) map[string]any {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("no ID token in %v", tok)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(data, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// TestRefreshDelay holds a refresh-token grant at the proxy for
// RefreshDelay, and counts one the client abandoned during it.
func TestRefreshDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	dex := dextest.Start(t, dextest.Options{Users: []dextest.User{alice}, Clients: []dextest.Client{client}, RefreshDelay: delay})
	conf := &oauth2.Config{
		ClientID: client.ID, ClientSecret: client.Secret, RedirectURL: redirectURI,
		Scopes:   []string{"openid", "email", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: dex.Issuer() + "/auth", TokenURL: dex.Issuer() + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier()
	callback := dex.Login(t, conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier)), alice.Email, alice.Password)
	began := time.Now()
	tok, err := conf.Exchange(context.Background(), callback.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took >= delay {
		t.Errorf("the code exchange took %v: only refresh grants are delayed", took)
	}
	began = time.Now()
	if _, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < delay {
		t.Errorf("the refresh took %v; want at least RefreshDelay, %v", took, delay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), delay/3)
	defer cancel()
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("a refresh abandoned within RefreshDelay succeeded")
	}
	// The abandoned one is recorded when the proxy sees the client go.
	deadline := time.Now().Add(5 * time.Second)
	for dex.RefreshGrants() != 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	want := []dextest.TokenRequest{{"authorization_code", 200}, {"refresh_token", 200}, {"refresh_token", 0}}
	if got := dex.TokenRequests(); !slices.Equal(got, want) {
		t.Errorf("token requests %v; want %v", got, want)
	}
}
