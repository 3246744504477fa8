package oidctest_test

import (
	"context"
	"errors"
	"testing"

	"golang.org/x/oauth2"

	"github.com/silentauth/silentauth/internal/testenv/oidctest"
)

// TestProviderRefreshTokensAreOneTime proves the rig's provider is strict:
// a spent refresh token gets invalid_grant, and the rig records the reuse.
func TestProviderRefreshTokensAreOneTime(t *testing.T) {
	rig := oidctest.Start(t, oidctest.Config{})
	ctx := context.Background()
	cfg := oauth2.Config{
		ClientID: rig.ClientID, ClientSecret: rig.ClientSecret, RedirectURL: rig.RedirectURIs[0],
		Endpoint: oauth2.Endpoint{AuthURL: rig.Issuer + "/auth", TokenURL: rig.Issuer + oidctest.TokenPath},
		Scopes:   []string{"openid", "offline_access"},
	}
	verifier := oauth2.GenerateVerifier()
	cb, err := rig.Login(context.Background(), cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), "alice", "alice-password")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cfg.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	refresh := func(rt string) (*oauth2.Token, error) {
		return cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	}
	next, err := refresh(tok.RefreshToken)
	if err != nil || next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
		t.Fatalf("first use: %v, rotated=%t", err, next != nil && next.RefreshToken != tok.RefreshToken)
	}
	if rig.Reuses() != 0 {
		t.Fatalf("reuses = %d before any reuse", rig.Reuses())
	}
	_, err = refresh(tok.RefreshToken)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("second use: %v, want invalid_grant", err)
	}
	if rig.Reuses() != 1 {
		t.Fatalf("reuses = %d, want 1", rig.Reuses())
	}
	if g := rig.Grants(); g["authorization_code"] != 1 || g["refresh_token"] != 2 {
		t.Fatalf("grants = %v", g)
	}
	if m := rig.ChallengeMethods(); len(m) != 1 || m[0] != "S256" {
		t.Fatalf("challenge methods = %q", m)
	}
}

// TestProviderFaults proves the fault knobs reach the token endpoint.
func TestProviderFaults(t *testing.T) {
	rig := oidctest.Start(t, oidctest.Config{})
	cfg := oauth2.Config{ClientID: rig.ClientID, ClientSecret: rig.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: rig.Issuer + oidctest.TokenPath}}
	rig.SetFault(oidctest.Unavailable)
	_, err := cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: "x"}).Token()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response.StatusCode != 503 {
		t.Fatalf("err = %v, want a 503", err)
	}
	rig.SetFault(oidctest.Hang)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: "x"}).Token(); !errors.Is(err, context.Canceled) {
		t.Fatalf("hang: err = %v, want context.Canceled", err)
	}
}
