package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/sessionapi"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/token"
)

const apiToken = "operator-token-for-tests"

// apiRig is a real session API (sessionapi.New over a memstore) served
// by httptest, and the plugin pointed at it.
type apiRig struct {
	t         *testing.T
	srv       *httptest.Server
	st        *memstore.Store
	sessions  *session.Manager
	now       time.Time
	tokenFile string
	requested []string // --as-service-account requests: "ns/name audience ttl"
	urls      []string // URLs the plugin called
}

func newAPIRig(t *testing.T, auth sessionapi.Authenticator) *apiRig {
	t.Helper()
	r := &apiRig{t: t, now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	now := func() time.Time { return r.now }
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	ring := &keys.Holder{}
	kr, _ := keys.NewKeyring(k)
	ring.Store(kr)
	r.st = memstore.New(now)
	r.sessions = session.New(r.st, session.Lifetimes{Idle: 24 * time.Hour, Absolute: 72 * time.Hour, Grace: 30 * time.Second}, now)
	if auth == nil {
		auth = sessionapi.NewBearer(apiToken)
	}
	h := sessionapi.New(sessionapi.Options{
		Auth: auth, Sessions: r.sessions,
		Minter:  token.NewMinter(token.MinterOptions{Issuer: "iss", Audience: "aud", TTL: 15 * time.Minute, Keys: ring, Now: now}),
		Cookies: cookie.Default(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: now,
	})
	r.srv = httptest.NewServer(h)
	t.Cleanup(r.srv.Close)
	r.tokenFile = filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(r.tokenFile, []byte(apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// recorder notes every URL the plugin calls, then passes the request on.
type recorder struct {
	r    *apiRig
	next http.RoundTripper
}

func (rt recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	rt.r.urls = append(rt.r.urls, req.URL.String())
	return rt.next.RoundTrip(req)
}

// run runs one plugin command line (stdin as given) and returns stdout and
// stderr together.
func (r *apiRig) run(line, stdin string) (string, error) {
	var stdout, stderr bytes.Buffer
	c := &cli{
		stdout: &stdout, stderr: &stderr, stdin: strings.NewReader(stdin),
		now: func() time.Time { return r.now },
		connect: func(o kubeOptions) (secretClient, string, error) {
			return nil, cmpOr(o.Namespace, "auth"), nil
		},
		http: &http.Client{Transport: recorder{r, http.DefaultTransport}},
		requestToken: func(_ context.Context, _ kubeOptions, ns, name, audience string, ttl time.Duration) (string, error) {
			r.requested = append(r.requested, ns+"/"+name+" "+audience+" "+ttl.String())
			return apiToken, nil
		},
	}
	line = strings.NewReplacer("API", r.srv.URL, "TOKEN", r.tokenFile).Replace(line)
	err := c.run(r.t.Context(), strings.Fields(line))
	return stdout.String() + stderr.String(), err
}

func (r *apiRig) mustRun(line string) string {
	r.t.Helper()
	out, err := r.run(line, "")
	if err != nil {
		r.t.Fatalf("%s: %v\n%s", line, err, out)
	}
	return out
}

func (r *apiRig) stored(id string) *store.Family {
	r.t.Helper()
	f, err := r.st.Get(r.t.Context(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return f
}

func TestSessionsListAndRevoke(t *testing.T) {
	r := newAPIRig(t, nil)
	ctx := t.Context()
	web, err := r.sessions.StartLogin(ctx, session.Login{
		Subject: "alice", Provider: []byte("sealed"), ProviderSID: "op-sid-7",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0", ClientAddress: "198.51.100.7",
	})
	if err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(time.Hour)
	phone, _ := r.sessions.StartLogin(ctx, session.Login{Subject: "alice", UserAgent: "curl/8.5.0\x1b[2J", ClientAddress: "2001:db8::1"})
	r.now = r.now.Add(time.Minute)
	old, _ := r.sessions.Start(ctx, "alice", "", nil)
	bob, _ := r.sessions.Start(ctx, "bob", "", nil)
	if err := r.sessions.Logout(ctx, old.RefreshToken); err != nil {
		t.Fatal(err)
	}
	r.now = r.now.Add(2 * time.Hour)
	if _, err := r.sessions.Refresh(ctx, phone.RefreshToken, ""); err != nil {
		t.Fatal(err)
	}

	out := r.mustRun("sessions list alice --api API --token-file TOKEN")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "SESSION") || !strings.Contains(lines[0], "LAST USED") {
		t.Fatalf("list:\n%s", out)
	}
	for i, want := range [][]string{
		{web.Family.ID, "live", "2026-11-25T12:00:00Z", "198.51.100.7", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko…", "op-sid-7"},
		{phone.Family.ID, "live", "2026-11-25T13:00:00Z", "2026-11-25T15:01:00Z", "2001:db8::1", "curl/8.5.0[2J"},
		{old.Family.ID, "revoked (logout)", "2026-11-25T13:01:00Z"},
	} {
		for _, cell := range want {
			if !strings.Contains(lines[i+1], cell) {
				t.Errorf("row %d lacks %q:\n%s", i, cell, lines[i+1])
			}
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("a control character reached the terminal:\n%q", out)
	}

	out = r.mustRun("sessions list alice --api API --token-file TOKEN -o json")
	var doc struct {
		Subject  string
		Sessions []sessionView
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Subject != "alice" || len(doc.Sessions) != 3 ||
		doc.Sessions[0].ProviderSID != "op-sid-7" || doc.Sessions[2].RevokeCause != "logout" {
		t.Fatalf("list -o json: %v\n%s", err, out)
	}

	// Without --yes nothing happens, and the API is not even called.
	r.urls = nil
	if out := r.mustRun("sessions revoke alice --session " + web.Family.ID + " --api API --token-file TOKEN"); !strings.Contains(out, "nothing revoked") || len(r.urls) != 0 {
		t.Fatalf("revoke without --yes: %v\n%s", r.urls, out)
	}
	// Another subject's session is not found under alice.
	if out, err := r.run("sessions revoke alice --session "+bob.Family.ID+" --yes --api API --token-file TOKEN", ""); err == nil || !strings.Contains(err.Error(), "no such session") {
		t.Fatalf("revoke of bob's session as alice's: %v\n%s", err, out)
	}
	if !r.stored(bob.Family.ID).RevokedAt.IsZero() {
		t.Fatal("bob's session was revoked")
	}
	if out := r.mustRun("sessions revoke alice --session " + web.Family.ID + " --yes --api API --token-file TOKEN"); !strings.Contains(out, "revoked") {
		t.Fatalf("revoke one:\n%s", out)
	}
	if f := r.stored(web.Family.ID); f.RevokedAt.IsZero() || f.RevokeReason != session.CauseAdmin {
		t.Fatalf("web session: revoked %v for %q", f.RevokedAt, f.RevokeReason)
	}
	if out := r.mustRun("sessions revoke alice --yes --api API --token-file TOKEN"); !strings.Contains(out, `1 sessions of "alice" revoked`) {
		t.Fatalf("revoke all:\n%s", out)
	}
	if f := r.stored(phone.Family.ID); f.RevokeReason != session.CauseAdmin {
		t.Fatalf("phone session: reason %q", f.RevokeReason)
	}
	if f := r.stored(old.Family.ID); f.RevokeReason != session.CauseLogout {
		t.Fatalf("logged-out session: reason %q, want the first cause kept", f.RevokeReason)
	}
}

func TestSessionsTokensAndURL(t *testing.T) {
	r := newAPIRig(t, nil)
	if _, err := r.sessions.Start(t.Context(), "a b/c", "", nil); err != nil {
		t.Fatal(err)
	}
	// The subject is one path segment, escaped.
	r.urls = nil
	r.mustRun("sessions list a%20b/c --api API --token-file TOKEN") // the literal subject "a%20b/c"
	if len(r.urls) != 1 || !strings.HasSuffix(r.urls[0], "/v1/subjects/a%2520b%2Fc/sessions") {
		t.Errorf("called %v", r.urls)
	}

	// A token on stdin, and one requested for a ServiceAccount.
	if out, err := r.run("sessions list alice --api API --token-file -", apiToken+"\n"); err != nil {
		t.Fatalf("token on stdin: %v\n%s", err, out)
	}
	r.mustRun("sessions list alice --api API --as-service-account auth/ops")
	if len(r.requested) != 1 || r.requested[0] != "auth/ops silentauth-session-api 10m0s" {
		t.Errorf("token requests: %v", r.requested)
	}
	r.mustRun("sessions list alice --api API --as-service-account auth/ops --audience other")
	if len(r.requested) != 2 || r.requested[1] != "auth/ops other 10m0s" {
		t.Errorf("token requests: %v", r.requested)
	}

	// The default URL is the chart's Service in the namespace.
	r.urls = nil
	_, _ = r.run("sessions list alice -n shop --token-file TOKEN", "")
	if len(r.urls) != 1 || r.urls[0] != "http://silentauth.shop.svc:9003/v1/subjects/alice/sessions" {
		t.Errorf("default URL: called %v", r.urls)
	}

	tests := []struct{ line, want string }{
		{"sessions list alice --api API", "exactly one of --token-file and --as-service-account"},
		{"sessions list alice --api API --token-file TOKEN --as-service-account a/b", "exactly one of"},
		{"sessions list alice --api API --as-service-account ops", "want NAMESPACE/NAME"},
		{"sessions list alice --api ftp://x --token-file TOKEN", "want an http or https URL"},
		{"sessions list --api API --token-file TOKEN", "expected 1 argument (the SUBJECT)"},
		{"sessions list a b --api API --token-file TOKEN", "expected 1 argument (the SUBJECT)"},
		{"sessions list alice --api API --token-file TOKEN -o yaml", "the formats are json"},
		{"sessions frob", `unknown sessions command "frob"`},
		{"sessions", "a sessions command is required"},
	}
	for _, tc := range tests {
		if out, err := r.run(tc.line, ""); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q\n%s", tc.line, err, tc.want, out)
		}
	}
	if out, err := r.run("sessions list alice --api API --token-file -", ""); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty stdin: %v\n%s", err, out)
	}

	// A wrong token is refused by the API, and the error says what to check.
	if out, err := r.run("sessions list alice --api API --token-file -", "wrong"); err == nil ||
		!strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "config.sessionAPI.serviceAccounts") || strings.Contains(out+err.Error(), "wrong") {
		t.Errorf("wrong token: %v\n%s", err, out)
	}

	for _, line := range []string{"sessions --help", "sessions list --help", "sessions revoke --help", "--help"} {
		if out := r.mustRun(line); !strings.Contains(out, "sessions") {
			t.Errorf("%s:\n%s", line, out)
		}
	}
}
