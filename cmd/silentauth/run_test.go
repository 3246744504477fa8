package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/silentauth/silentauth/authz/config"
	"github.com/silentauth/silentauth/authz/httpauthz"
	"github.com/silentauth/silentauth/internal/testenv/testpki"
)

func noenv(string) string { return "" }

func TestRunCommands(t *testing.T) {
	dir, _ := keyDir(t)
	good := writeConfig(t, "keys:\n  dir: "+dir+"\n")
	bad := writeConfig(t, `
cookies:
  domain: example.com
  sameSite: None
  secure: false
tokens:
  refreshBefore: 10m
`)
	warns := writeConfig(t, "keys:\n  dir: "+dir+"\nhttpAuthz:\n  trustedProxies: [0.0.0.0/0]\npolicy:\n  publicPaths: [/]\n")
	tooLong := writeConfig(t, "keys:\n  dir: "+dir+"\nsessions:\n  absoluteTTL: 9624h\n")
	unknownAndBad := writeConfig(t, "keys:\n  dir: "+dir+"\nisuer: x\npolicy:\n  claimHeaders: {location: sub}\n")
	cases := []struct {
		name    string
		args    []string
		env     func(string) string
		wantErr string
		wantOut string
	}{
		{"no command", nil, noenv, "a command is required", ""},
		{"unknown command", []string{"frobnicate"}, noenv, `unknown command "frobnicate"`, ""},
		{"help", []string{"help"}, noenv, "", "silentauth serve"},
		{"version of an unstamped build", []string{"version"}, noenv, "", "silentauth dev (commit unknown, " + runtime.Version() + ")\n"},
		{"config example", []string{"config", "example"}, noenv, "", "refreshBefore: 60s"},
		{"validate good", []string{"config", "validate", "--config", good}, func(k string) string {
			return map[string]string{"SILENTAUTH_API_TOKEN": "0123456789abcdef"}[k]
		}, "", "configuration is valid"},
		{"validate lists warnings", []string{"config", "validate", "--config", warns}, func(k string) string {
			return map[string]string{"SILENTAUTH_API_TOKEN": "0123456789abcdef"}[k]
		}, "", "configuration is valid (store memory, grpc :9001)\nwarning: httpAuthz.trustedProxies: trusts every IPv4 address"},
		{"validate refuses a session longer than browsers keep cookies", []string{"config", "validate", "--config", tooLong}, func(k string) string {
			return map[string]string{"SILENTAUTH_API_TOKEN": "0123456789abcdef"}[k]
		}, "sessions.absoluteTTL: must be at most 9600h0m0s (400 days): RFC 6265bis", ""},
		{"validate reports an unknown field with the other problems", []string{"config", "validate", "--config", unknownAndBad}, noenv,
			"isuer: unknown field (line 3 of config file " + unknownAndBad + ")\n" +
				`policy.claimHeaders.location: "location" is reserved`, ""},
		{"validate needs an API token outside development", []string{"config", "validate", "--config", good}, noenv, "sessionAPI.tokenFile: required", ""},
		{"validate bad reports every problem", []string{"config", "validate", "--config", bad}, noenv, "cookies.domain", ""},
		{"missing file", []string{"config", "validate", "--config", "/nonexistent.yaml"}, noenv, "nonexistent.yaml", ""},
		{"bad env", []string{"config", "validate"}, func(k string) string {
			return map[string]string{"SILENTAUTH_ACCESS_TTL": "soon"}[k]
		}, "SILENTAUTH_ACCESS_TTL", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), c.args, c.env, &out, &errOut)
			if c.wantErr == "" && err != nil {
				t.Fatalf("error %v\n%s", err, errOut.String())
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("error %v, want %q", err, c.wantErr)
			}
			if !strings.Contains(out.String(), c.wantOut) {
				t.Fatalf("output lacks %q:\n%s", c.wantOut, out.String())
			}
		})
	}
}

func TestValidateReportsEveryProblemWithItsPath(t *testing.T) {
	bad := writeConfig(t, `
cookies:
  domain: example.com
  sameSite: None
  secure: false
tokens:
  refreshBefore: 10m
`)
	err := run(context.Background(), []string{"config", "validate", "--config", bad}, noenv, &bytes.Buffer{}, &bytes.Buffer{})
	for _, want := range []string{"cookies.domain:", "cookies.secure:", "tokens.refreshBefore:", "keys.dir:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
	client                    tls.Certificate
}

func newPKI(t *testing.T) pki {
	t.Helper()
	dir := t.TempDir()
	ca, err := testpki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(cn string, usage x509.ExtKeyUsage) ([]byte, []byte) {
		cert, key, err := ca.Issue(&x509.Certificate{Subject: pkix.Name{CommonName: cn},
			DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{usage}})
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	p := pki{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key"), pool: ca.Pool()}
	sc, sk := issue("silentauth", x509.ExtKeyUsageServerAuth)
	cc, ck := issue("envoy", x509.ExtKeyUsageClientAuth)
	for path, data := range map[string][]byte{p.caFile: ca.CertPEM, p.certFile: sc, p.keyFile: sk} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.client, err = tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTLSListeners(t *testing.T) {
	dir, _ := keyDir(t)
	p := newPKI(t)
	cfg := writeConfig(t, `
keys:
  dir: `+dir+`
listen:
  grpc:
    tls: {certFile: `+p.certFile+`, keyFile: `+p.keyFile+`, clientCAFile: `+p.caFile+`}
  sessionAPI:
    tls: {certFile: `+p.certFile+`, keyFile: `+p.keyFile+`}
shutdown: {drain: 0s, timeout: 5s}
`)
	proc := start(t, []string{"--config", cfg})

	// gRPC with a client certificate from the CA: a Check is answered.
	withCert := credentials.NewTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}, ServerName: "localhost"})
	conn, err := grpc.NewClient(proc.addrs["grpc"], grpc.WithTransportCredentials(withCert))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, envoyRequest("GET", "/api"))
	if err != nil || resp.GetDeniedResponse().GetStatus().GetCode() != 401 {
		t.Fatalf("mTLS Check: %v %v", resp, err)
	}
	// Without a client certificate the handshake is refused.
	noCert := credentials.NewTLS(&tls.Config{RootCAs: p.pool, ServerName: "localhost"})
	conn2, _ := grpc.NewClient(proc.addrs["grpc"], grpc.WithTransportCredentials(noCert))
	defer conn2.Close()
	if _, err := authv3.NewAuthorizationClient(conn2).Check(ctx, envoyRequest("GET", "/api")); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	// The session API speaks TLS.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.pool, ServerName: "localhost"}}}
	r, err := hc.Post("https://"+proc.addrs["sessionAPI"]+"/v1/sessions", "application/json", strings.NewReader(`{"subject":"a"}`))
	if err != nil || r.StatusCode != 401 {
		t.Fatalf("TLS session API: %v %v", r, err)
	}
	r.Body.Close()
	// Plaintext HTTP never reaches the API behind a TLS listener.
	if r, err := http.Post("http://"+proc.addrs["sessionAPI"]+"/v1/sessions", "application/json", strings.NewReader(`{}`)); err == nil {
		r.Body.Close()
		if r.StatusCode == 401 {
			t.Fatal("the session API answered plaintext HTTP")
		}
	}
}

// The configuration package keeps its own list of the HTTP authorization
// mode's headers (it does not import authz): no header silentauth is
// configured to set may be one of them.
func TestConfigRefusesTheHTTPModeHeaders(t *testing.T) {
	for _, h := range []string{httpauthz.HeaderAction, httpauthz.HeaderStatus, httpauthz.HeaderLocation, httpauthz.HeaderBody,
		httpauthz.HeaderPolicy, httpauthz.HeaderCookiePrefix + "1", httpauthz.HeaderCookiePrefix + "4"} {
		c := config.Development()
		c.Policy.AccessTokenHeader = h
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "policy.accessTokenHeader") {
			t.Errorf("accessTokenHeader %s: Validate() = %v", h, err)
		}
		c = config.Development()
		c.Policy.ClaimHeaders = map[string]string{h: "sub"}
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "policy.claimHeaders") {
			t.Errorf("claim header %s: Validate() = %v", h, err)
		}
	}
}
