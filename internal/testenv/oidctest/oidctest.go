// Package oidctest runs an OpenID provider in-process for tests: the
// example provider of github.com/zitadel/oidc (exampleop and its in-memory
// storage) behind an httptest server on 127.0.0.1, with one confidential
// client, a browserless login, counters and fault knobs on the token
// endpoint, and a record of every refresh-token reuse.
//
// Only tests import it; the product never links zitadel/oidc.
package oidctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// TokenPath is the example provider's token endpoint.
const TokenPath = "/oauth/token"

// KeysPath is the provider's JWKS path.
const KeysPath = "/keys"

// RevocationPath and EndSessionPath are the example provider's revocation
// (RFC 7009) and end-session (RP-Initiated Logout) endpoints, as its
// discovery lists them.
const (
	RevocationPath = "/revoke"
	EndSessionPath = "/end_session"
)

// User is a user of the provider.
type User struct {
	ID, Username, Password string
	Email                  string
	EmailVerified          bool
	// Claims are added to the ID token and the userinfo answer.
	Claims map[string]any
	// UserinfoClaims are added to the userinfo answer only.
	UserinfoClaims map[string]any
}

// Config shapes a Provider.
type Config struct {
	// RedirectURIs registered for the client (exact match). Default
	// https://app.test/auth/callback.
	RedirectURIs []string
	// Users of the provider. Default one: Alice (DefaultUser).
	Users []User
	// PostLogoutRedirectURIs registered for the client (exact match), where
	// the end-session endpoint may send the browser. Default none.
	PostLogoutRedirectURIs []string
	// NoLogoutEndpoints leaves revocation_endpoint and
	// end_session_endpoint out of discovery, as providers without them do.
	NoLogoutEndpoints bool
}

// DefaultUser is the user of a Config without Users.
var DefaultUser = User{
	ID: "alice-id", Username: "alice", Password: "alice-password",
	Email: "alice@example.com", EmailVerified: true,
	Claims: map[string]any{"groups": []string{"dev", "ops"}, "level": 42},
}

// Fault is what the token endpoint does instead of answering.
type Fault int

const (
	// NoFault answers normally.
	NoFault Fault = iota
	// Unavailable answers 503.
	Unavailable
	// Hang answers nothing until the request's context ends.
	Hang
)

// failed does fault in place of an answer to r, and reports whether it
// did (false for NoFault).
func failed(w http.ResponseWriter, r *http.Request, fault Fault) bool {
	switch fault {
	case Unavailable:
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
	case Hang:
		<-r.Context().Done()
	default:
		return false
	}
	return true
}

// Provider is a running provider. Its methods are safe for concurrent use.
type Provider struct {
	// Issuer is the provider's issuer URL (http://127.0.0.1:port).
	Issuer string
	// ClientID and ClientSecret are the confidential client's.
	ClientID, ClientSecret string
	// RedirectURIs are the client's registered redirect URIs.
	RedirectURIs []string

	srv               *httptest.Server
	storage           *rigStorage
	noLogoutEndpoints bool

	mu         sync.Mutex
	grants     map[string]int
	seen       map[string]bool
	reuses     []string
	challenges []string
	fault      Fault
	keysFault  Fault
	rewrite    func(map[string]any)
	issued     []string
	sid        string
	revokes    int
	revFault   Fault
	endSession []EndSessionRequest
}

// EndSessionRequest is a request that reached the end-session endpoint.
type EndSessionRequest struct {
	// Form holds its parameters (query and form body).
	Form url.Values
	// UserAgent is its User-Agent header: a browser's, when the browser
	// was sent there.
	UserAgent string
}

// EndSessions returns the requests that reached the end-session endpoint,
// in order.
func (p *Provider) EndSessions() []EndSessionRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]EndSessionRequest(nil), p.endSession...)
}

// IssuedTokens lists every token the token endpoint has handed out
// (access, refresh and ID tokens), for tests that prove none is stored or
// logged in clear.
func (p *Provider) IssuedTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

// Start runs a provider until the test ends.
func Start(tb testing.TB, cfg Config) *Provider {
	tb.Helper()
	if len(cfg.RedirectURIs) == 0 {
		cfg.RedirectURIs = []string{"https://app.test/auth/callback"}
	}
	if len(cfg.Users) == 0 {
		cfg.Users = []User{DefaultUser}
	}
	p := &Provider{
		ClientID:          "silentauth",
		ClientSecret:      rand.Text(),
		RedirectURIs:      cfg.RedirectURIs,
		grants:            map[string]int{},
		seen:              map[string]bool{},
		noLogoutEndpoints: cfg.NoLogoutEndpoints,
	}
	p.srv = httptest.NewUnstartedServer(nil)
	p.Issuer = "http://" + p.srv.Listener.Addr().String()

	users := users{}
	for _, u := range cfg.Users {
		users[u.ID] = u
	}
	clients := map[string]*storage.Client{p.ClientID: storage.WebClient(p.ClientID, p.ClientSecret, cfg.RedirectURIs...)}
	p.storage = &rigStorage{Storage: storage.NewStorageWithClients(users, clients), users: users, rig: p, postLogout: cfg.PostLogoutRedirectURIs}
	// exampleop makes a non-nil logger the process's default; a discarding
	// one keeps test and benchmark output clean.
	router := exampleop.SetupServer(p.Issuer, p.storage, slog.New(slog.DiscardHandler), false)
	p.srv.Config.Handler = p.middleware(router)
	p.srv.Start()
	tb.Cleanup(p.srv.Close)
	return p
}

// Client returns an http.Client for the provider (plain http on loopback).
func (p *Provider) Client() *http.Client { return p.srv.Client() }

// SetFault makes the token endpoint misbehave until set back to NoFault.
func (p *Provider) SetFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = f
}

// SetKeysFault makes the JWKS endpoint (the provider's signing keys)
// answer 503 until set back to NoFault.
func (p *Provider) SetKeysFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keysFault = f
}

// SetRevocationFault makes the revocation endpoint misbehave until set
// back to NoFault.
func (p *Provider) SetRevocationFault(f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revFault = f
}

// Revocations returns how many requests reached the revocation endpoint
// (answered or faulted).
func (p *Provider) Revocations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.revokes
}

// SetSID puts sid into every ID token the token endpoint issues from now
// on (re-signed with the provider's key), as providers that support
// back-channel logout do; "" stops.
func (p *Provider) SetSID(sid string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sid = sid
}

// RewriteTokenResponses passes each successful token endpoint answer,
// decoded, to f, which may change it (forged ID tokens); nil stops.
func (p *Provider) RewriteTokenResponses(f func(map[string]any)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rewrite = f
}

// Grants returns how many token endpoint calls each grant_type made.
func (p *Provider) Grants() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.grants))
	for k, v := range p.grants {
		out[k] = v
	}
	return out
}

// Reuses returns how many times a refresh token was presented again
// after its first use (whatever the provider answered).
func (p *Provider) Reuses() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.reuses)
}

// ChallengeMethods returns the code_challenge_method of every
// authorization request the provider accepted, in order ("" without PKCE).
func (p *Provider) ChallengeMethods() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.challenges...)
}

// Revoke ends every token of the user (the provider's logout), so the
// next refresh gets invalid_grant.
func (p *Provider) Revoke(userID string) {
	if err := p.storage.TerminateSession(context.Background(), userID, p.ClientID); err != nil {
		panic(err)
	}
}

// Login completes the authorization request authURL as the user, without
// a browser: it follows the provider's redirects, posts the login form and
// stops at the redirect URI, whose URL (with code and state, or error) it
// returns.
func (p *Provider) Login(ctx context.Context, authURL, username, password string) (*url.URL, error) {
	jar, _ := cookiejar.New(nil)
	var callback *url.URL
	c := &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		for _, ru := range p.RedirectURIs {
			if strings.HasPrefix(r.URL.String(), ru) {
				callback = r.URL
				return http.ErrUseLastResponse
			}
		}
		return nil
	}}
	get := func(u string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		return c.Do(req)
	}
	resp, err := get(authURL)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if callback != nil { // the provider answered at once (an error)
		return callback, nil
	}
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != http.StatusOK || id == "" {
		return nil, fmt.Errorf("oidctest: authorization request ended at %s (%s), not the login form", resp.Request.URL, resp.Status)
	}
	form := url.Values{"id": {id}, "username": {username}, "password": {password}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Issuer+"/login/username", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if callback == nil {
		return nil, fmt.Errorf("oidctest: login as %q did not reach the redirect URI (%s at %s)", username, resp.Status, resp.Request.URL)
	}
	return callback, nil
}

// middleware counts and faults the token endpoint and records reuse.
func (p *Provider) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		keysDown := p.keysFault != NoFault && r.URL.Path == KeysPath
		p.mu.Unlock()
		if keysDown {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/.well-known/openid-configuration" && p.noLogoutEndpoints {
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var m map[string]any
			if json.Unmarshal(rec.Body.Bytes(), &m) != nil {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			delete(m, "revocation_endpoint")
			delete(m, "end_session_endpoint")
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(m)
			return
		}
		if r.URL.Path == EndSessionPath {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			form := r.URL.Query()
			if fb, err := url.ParseQuery(string(body)); err == nil && r.Method == http.MethodPost {
				for k, v := range fb {
					form[k] = append(form[k], v...)
				}
			}
			p.mu.Lock()
			p.endSession = append(p.endSession, EndSessionRequest{Form: form, UserAgent: r.UserAgent()})
			p.mu.Unlock()
		}
		if r.URL.Path == RevocationPath && r.Method == http.MethodPost {
			// Read the body first: only then does the server notice a
			// client that gives up (and end a hanging request).
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			p.mu.Lock()
			p.revokes++
			fault := p.revFault
			p.mu.Unlock()
			if failed(w, r, fault) {
				return
			}
		}
		if r.URL.Path != TokenPath || r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		form, _ := url.ParseQuery(string(body))
		p.mu.Lock()
		p.grants[form.Get("grant_type")]++
		if rt := form.Get("refresh_token"); rt != "" {
			if p.seen[rt] {
				p.reuses = append(p.reuses, rt)
			}
			p.seen[rt] = true
		}
		fault, rewrite, sid := p.fault, p.rewrite, p.sid
		p.mu.Unlock()
		if failed(w, r, fault) {
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		out := rec.Body.Bytes()
		var m map[string]any
		if rec.Code == http.StatusOK && json.Unmarshal(out, &m) == nil {
			if idt, ok := m["id_token"].(string); ok && sid != "" {
				c := Claims(idt)
				c["sid"] = sid
				m["id_token"] = p.Sign(c)
				out, _ = json.Marshal(m)
			}
			if rewrite != nil {
				rewrite(m)
				out, _ = json.Marshal(m)
			}
			p.mu.Lock()
			for _, k := range []string{"access_token", "refresh_token", "id_token"} {
				if tok, ok := m[k].(string); ok && tok != "" {
					p.issued = append(p.issued, tok)
				}
			}
			p.mu.Unlock()
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(out)
	})
}

// Sign signs claims as the provider does (its key and kid): a token that
// verifies, for claims the provider would not issue (expired, other aud).
func (p *Provider) Sign(claims map[string]any) string {
	k, err := p.storage.SigningKey(context.Background())
	if err != nil {
		panic(err)
	}
	return sign(claims, k.Key(), k.ID(), "JWT")
}

// SignLogout signs claims as a logout token (typ logout+jwt, OpenID
// Connect Back-Channel Logout 1.0 §2.4) with the provider's key.
func (p *Provider) SignLogout(claims map[string]any) string {
	k, err := p.storage.SigningKey(context.Background())
	if err != nil {
		panic(err)
	}
	return sign(claims, k.Key(), k.ID(), "logout+jwt")
}

// LogoutClaims returns the claims of a valid logout token for the client,
// issued at iat: iss, aud, iat, exp (two minutes later), a fresh jti and
// the backchannel-logout event; the caller adds sid and/or sub.
func (p *Provider) LogoutClaims(iat time.Time) map[string]any {
	return map[string]any{
		"iss": p.Issuer, "aud": p.ClientID, "iat": iat.Unix(), "exp": iat.Add(2 * time.Minute).Unix(),
		"jti":    rand.Text(),
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	}
}

// Forge signs claims with a key the provider never published, under the
// provider's kid.
func (p *Provider) Forge(claims map[string]any) string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	k, _ := p.storage.SigningKey(context.Background())
	return sign(claims, key, k.ID(), "JWT")
}

func sign(claims map[string]any, key any, kid, typ string) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", kid))
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}

// Claims decodes a JWT's payload without verifying it.
func Claims(jwt string) map[string]any {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		panic(errors.New("oidctest: not a JWT"))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		panic(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		panic(err)
	}
	return m
}

// users is the example storage's UserStore over our users.
type users map[string]User

func (u users) GetUserByID(id string) *storage.User {
	user, ok := u[id]
	if !ok {
		return nil
	}
	return &storage.User{
		ID: user.ID, Username: user.Username, Password: user.Password,
		FirstName: user.Username, LastName: "Test",
		Email: user.Email, EmailVerified: user.EmailVerified,
		PreferredLanguage: language.English,
	}
}

func (u users) GetUserByUsername(name string) *storage.User {
	for id, user := range u {
		if user.Username == name {
			return u.GetUserByID(id)
		}
	}
	return nil
}

func (u users) ExampleClientID() string { return storage.ServiceUserID }

// rigStorage is the example storage with the users' extra claims, the
// claims in the ID token (like Google's), and a record of PKCE methods.
type rigStorage struct {
	*storage.Storage
	users      users
	rig        *Provider
	postLogout []string
}

func (s *rigStorage) CreateAuthRequest(ctx context.Context, req *zoidc.AuthRequest, userID string) (op.AuthRequest, error) {
	s.rig.mu.Lock()
	s.rig.challenges = append(s.rig.challenges, string(req.CodeChallengeMethod))
	s.rig.mu.Unlock()
	return s.Storage.CreateAuthRequest(ctx, req, userID)
}

func (s *rigStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return claimsInIDToken{c, s.postLogout}, nil
}

// claimsInIDToken puts the userinfo claims in the ID token too, and
// registers the configured post-logout redirect URIs.
type claimsInIDToken struct {
	op.Client
	postLogout []string
}

func (claimsInIDToken) IDTokenUserinfoClaimsAssertion() bool { return true }

func (c claimsInIDToken) PostLogoutRedirectURIs() []string { return c.postLogout }

func (s *rigStorage) SetUserinfoFromRequest(ctx context.Context, ui *zoidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	for k, v := range s.users[req.GetSubject()].Claims {
		ui.AppendClaims(k, v)
	}
	return nil
}

func (s *rigStorage) SetUserinfoFromToken(ctx context.Context, ui *zoidc.UserInfo, tokenID, subject, origin string) error {
	if err := s.Storage.SetUserinfoFromToken(ctx, ui, tokenID, subject, origin); err != nil {
		return err
	}
	u := s.users[ui.Subject]
	for k, v := range u.Claims {
		ui.AppendClaims(k, v)
	}
	for k, v := range u.UserinfoClaims {
		ui.AppendClaims(k, v)
	}
	return nil
}
