// Package dextest runs a real Dex (the OpenID Connect provider, v2.45.1, as
// `make tools` builds it) on loopback for the login tests: in-memory storage,
// a local password database of the test's users, static clients, and token
// lifetimes the test chooses. Dex is killed when the test ends.
//
// Dex logs no successful token grant, so the rig puts a reverse proxy in
// front of it that records every POST to the token endpoint with its
// grant_type and answer (TokenRequests, Grants). The issuer is the proxy's
// address, so every client of the rig goes through it.
//
// Login completes Dex's HTML login form with a plain http.Client, so a test
// without a browser can run a real authorization-code flow.
//
// The binary is looked up with toolsdir.Need: without it a test is skipped,
// or fails when SILENTAUTH_REQUIRE_INTEGRATION=1 (CI). Its login pages are
// embedded in it; no Dex source checkout is needed.
package dextest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/silentauth/silentauth/internal/testenv/testproc"
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"
)

// readyTimeout bounds how long Dex may take to serve its discovery document.
// It takes well under a second; the margin is for a loaded two-core machine.
const readyTimeout = 30 * time.Second

// User is an account of Dex's local password database ("staticPasswords").
type User struct {
	Email    string // what the login form takes, and the email claim
	Password string // in clear; the rig stores its bcrypt hash
	Username string // the name claim; default: Email's part before the @
	UserID   string // the sub claim's source; default: "id-" + Username
}

// Client is a static OAuth 2.0 client of Dex.
type Client struct {
	ID           string
	Secret       string // ignored for a public client
	RedirectURIs []string
	Public       bool // a public client (no secret; PKCE is what protects its codes)
}

// Options configures a Dex. The zero value starts one with no users and no
// clients.
type Options struct {
	Users   []User
	Clients []Client

	// IDTokenTTL is how long ID tokens (and access tokens) stay valid.
	// Default: one minute.
	IDTokenTTL time.Duration
	// ReuseInterval is how long after a refresh token was used it may be
	// presented again (and gets the same answer): a grace for a client that
	// lost the answer. After that a second use fails. Default: three
	// seconds (Dex's own default).
	ReuseInterval time.Duration
	// ValidIfNotUsedFor ends a refresh token that was not used for that
	// long, and AbsoluteLifetime one that long after the login. Zero: no
	// limit (Dex's default).
	ValidIfNotUsedFor time.Duration
	AbsoluteLifetime  time.Duration

	// RefreshDelay holds every refresh-token grant this long at the proxy
	// before relaying it to Dex: a slow provider, so that a test can have
	// other requests arrive while one refresh is in flight. Zero: none.
	RefreshDelay time.Duration
}

// TokenRequest is one POST to the token endpoint that the proxy relayed.
type TokenRequest struct {
	GrantType string // the form's grant_type: "authorization_code", "refresh_token", …
	Status    int    // Dex's HTTP status: 200, or 400/401 with an OAuth error; 0 when the client gave up during RefreshDelay
}

// Dex is one running Dex. Its methods are safe for concurrent use.
type Dex struct {
	issuer    string
	redirects []string // every client's redirect URIs: where Login stops
	proc      *testproc.Process
	proxy     *httptest.Server

	mu       sync.Mutex
	requests []TokenRequest
}

// Start starts Dex for t with the configuration o, on a free loopback port
// behind the counting proxy, and kills it when t ends. It returns once the
// discovery document is served and names a signing key (Dex makes its first
// key just after it starts listening).
func Start(t testing.TB, o Options) *Dex {
	t.Helper()
	bin := toolsdir.Need(t, "dex")
	d := &Dex{}
	for _, c := range o.Clients {
		d.redirects = append(d.redirects, c.RedirectURIs...)
	}

	// The proxy's listener is bound first, so the issuer (which Dex must
	// know before it starts) is the proxy's address.
	var dexURL atomic.Pointer[url.URL] // where Dex listens, set before each launch
	d.proxy = httptest.NewServer(d.front(o.RefreshDelay, &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(dexURL.Load())
			r.Out.Host = r.In.Host
		},
		ModifyResponse: d.record,
		// Quietly: while Dex starts, the readiness poll's requests fail.
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "dextest proxy: "+err.Error(), http.StatusBadGateway)
		},
	}))
	t.Cleanup(d.proxy.Close)
	d.issuer = d.proxy.URL + "/dex"

	dir := t.TempDir()
	cfg, err := config(d.issuer, o)
	if err != nil {
		t.Fatalf("dextest: %v", err)
	}
	// The free port is found by listening and closing, so another process
	// can take it before Dex binds: try a few ports.
	for range 3 {
		var port int
		if port, err = freePort(); err != nil {
			break
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		dexURL.Store(&url.URL{Scheme: "http", Host: addr})
		if err = d.launch(t, bin, dir, addr, cfg); !errors.Is(err, testproc.ErrExited) {
			break
		}
	}
	if err != nil {
		t.Fatalf("dextest: %v", err)
	}
	return d
}

// launch writes the configuration with Dex listening on addr, starts Dex
// and waits for its discovery document.
func (d *Dex) launch(t testing.TB, bin, dir, addr string, cfg map[string]any) error {
	cfg["web"] = map[string]any{"http": addr}
	// JSON is YAML too, and spares the rig quoting rules.
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	proc, err := testproc.Start("dex", filepath.Join(dir, "dex.log"), exec.Command(bin, "serve", path))
	if err != nil {
		return err
	}
	d.proc = proc
	t.Cleanup(proc.Kill)
	discovery := d.issuer + "/.well-known/openid-configuration"
	err = testproc.Poll(context.Background(), readyTimeout, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, discovery, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		// Dex serves discovery before its first signing key exists (and
		// cannot issue tokens until then); the document names the key's
		// algorithm once there is one.
		var doc struct {
			Algs []string `json:"id_token_signing_alg_values_supported"`
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", discovery, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			return fmt.Errorf("GET %s: %w", discovery, err)
		}
		if len(doc.Algs) == 0 {
			return errors.New("no signing key yet")
		}
		return nil
	}, proc)
	if err != nil {
		proc.Kill()
		return fmt.Errorf("%w\n%s", err, proc.Tail(20))
	}
	return nil
}

// config is Dex's configuration, without the listener (launch adds it).
func config(issuer string, o Options) (map[string]any, error) {
	idTTL := o.IDTokenTTL
	if idTTL == 0 {
		idTTL = time.Minute
	}
	reuse := o.ReuseInterval
	if reuse == 0 {
		reuse = 3 * time.Second
	}
	refresh := map[string]any{"reuseInterval": reuse.String()}
	if o.ValidIfNotUsedFor > 0 {
		refresh["validIfNotUsedFor"] = o.ValidIfNotUsedFor.String()
	}
	if o.AbsoluteLifetime > 0 {
		refresh["absoluteLifetime"] = o.AbsoluteLifetime.String()
	}

	users := []map[string]any{}
	for _, u := range o.Users {
		// Dex refuses (at login) a hash of a cost below bcrypt's default.
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.DefaultCost)
		if err != nil {
			return nil, fmt.Errorf("hash the password of %s: %w", u.Email, err)
		}
		name := u.Username
		if name == "" {
			name, _, _ = strings.Cut(u.Email, "@")
		}
		id := u.UserID
		if id == "" {
			id = "id-" + name
		}
		users = append(users, map[string]any{"email": u.Email, "hash": string(hash), "username": name, "userID": id})
	}
	clients := []map[string]any{}
	for _, c := range o.Clients {
		client := map[string]any{"id": c.ID, "name": c.ID, "redirectURIs": c.RedirectURIs}
		if c.Public {
			client["public"] = true
		} else {
			client["secret"] = c.Secret
		}
		clients = append(clients, client)
	}
	return map[string]any{
		"issuer":           issuer,
		"storage":          map[string]any{"type": "memory"},
		"logger":           map[string]any{"level": "debug", "format": "json"},
		"oauth2":           map[string]any{"skipApprovalScreen": true},
		"expiry":           map[string]any{"idTokens": idTTL.String(), "refreshTokens": refresh},
		"enablePasswordDB": true,
		"staticPasswords":  users,
		"staticClients":    clients,
	}, nil
}

// front is the proxy's handler: it reads the grant_type of a token request
// before relaying it, for record, and holds a refresh-token grant for
// refreshDelay.
func (d *Dex) front(refreshDelay time.Duration, rp *httputil.ReverseProxy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/dex/token" {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			form, _ := url.ParseQuery(string(body))
			r = r.WithContext(context.WithValue(r.Context(), grantKey{}, form.Get("grant_type")))
			if form.Get("grant_type") == "refresh_token" && refreshDelay > 0 {
				select {
				case <-time.After(refreshDelay):
				case <-r.Context().Done():
					// The client gave up: nothing reaches Dex, but the
					// attempt is counted (status 0).
					d.mu.Lock()
					d.requests = append(d.requests, TokenRequest{GrantType: "refresh_token"})
					d.mu.Unlock()
					return
				}
			}
		}
		rp.ServeHTTP(w, r)
	})
}

// grantKey is the context key of a token request's grant_type.
type grantKey struct{}

// record notes a token request when Dex's answer reaches the proxy, before
// the client gets it: a test that counts right after its request returns
// sees it.
func (d *Dex) record(resp *http.Response) error {
	grant, ok := resp.Request.Context().Value(grantKey{}).(string)
	if !ok {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests = append(d.requests, TokenRequest{GrantType: grant, Status: resp.StatusCode})
	return nil
}

// Issuer is Dex's issuer URL, http://127.0.0.1:PORT/dex (the proxy's port).
func (d *Dex) Issuer() string { return d.issuer }

// Log returns what Dex has logged so far (JSON lines, at debug level).
func (d *Dex) Log() string {
	data, err := os.ReadFile(d.proc.LogPath())
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(data)
}

// TokenRequests returns the POSTs to the token endpoint so far, in order.
func (d *Dex) TokenRequests() []TokenRequest {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]TokenRequest(nil), d.requests...)
}

// Grants counts the POSTs to the token endpoint with grant_type grantType,
// whatever Dex answered.
func (d *Dex) Grants(grantType string) int {
	n := 0
	for _, r := range d.TokenRequests() {
		if r.GrantType == grantType {
			n++
		}
	}
	return n
}

// RefreshGrants counts the refresh-token grants (Grants("refresh_token")).
func (d *Dex) RefreshGrants() int { return d.Grants("refresh_token") }

// isRedirect says whether u is at one of the clients' redirect URIs.
func (d *Dex) isRedirect(u *url.URL) bool {
	s := u.String()
	for _, r := range d.redirects {
		if strings.HasPrefix(s, r) {
			return true
		}
	}
	return false
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
