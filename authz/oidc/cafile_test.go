package oidc_test

import (
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/silentauth/silentauth/authz/oidc"
)

// A private provider (its certificate from a CA no system trusts) is
// reached over TLS with oidc.caFile, and refused without it.
func TestOIDCProviderPrivateCA(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": srv.URL, "authorization_endpoint": srv.URL + "/authorize", "token_endpoint": srv.URL + "/token",
			"jwks_uri": srv.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
		})
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	o := oidc.Default()
	o.IssuerURL, o.ClientID = srv.URL, "silentauth"
	log := slog.New(slog.DiscardHandler)
	if _, err := oidc.New(t.Context(), o, "", log); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without caFile: New = %v, want a certificate error", err)
	}
	o.CAFile = ca
	if _, err := oidc.New(t.Context(), o, "", log); err != nil {
		t.Fatalf("with caFile: %v", err)
	}
}
