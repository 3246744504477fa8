package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/token"
)

// The cookie names and token issuer/audience of the benchmark
// configurations: silentauth's defaults.
const (
	accessCookie  = "__Host-sa-at"
	refreshCookie = "__Host-sa-rt"
	issuer        = "silentauth"
	audience      = "silentauth"
)

// want is the decision a request must get: allow or deny, and the reason
// silentauth records in silentauth_check_decisions_total.
type want struct {
	Allow  bool
	Reason string
}

func (w want) key() string {
	if w.Allow {
		return "allow/" + w.Reason
	}
	return "deny/" + w.Reason
}

func (w want) String() string { return w.key() }

var (
	wantValid     = want{true, "valid"}
	wantRefreshed = want{true, "refreshed"}
	wantGrace     = want{true, "refreshed_grace"}
	wantBadSig    = want{false, "token_signature"}
	wantMalformed = want{false, "token_malformed"}
	wantNoCreds   = want{false, "no_credentials"}
)

// item is one CheckRequest of a data set and the decision it must get.
type item struct {
	req  *authv3.CheckRequest
	want want
}

// dataset is what one load run sends, in order. ghz cycles through it, so
// a consuming data set (single-use refresh tokens) must hold more items
// than the run sends; probe items are extra ones, checked one by one before
// the load and never part of it.
type dataset struct {
	items     []item
	probe     []item
	consuming bool
}

// wants counts the decisions the first n items must get, or all of them
// cycled n times over when n exceeds the set (a non-consuming set).
func (d *dataset) wants(n int64) map[string]int64 {
	out := map[string]int64{}
	if len(d.items) == 0 {
		return out
	}
	full, rest := n/int64(len(d.items)), n%int64(len(d.items))
	for i, it := range d.items {
		c := full
		if int64(i) < rest {
			c++
		}
		if c > 0 {
			out[it.want.key()] += c
		}
	}
	return out
}

// write stores the items as ghz's --binary-file: each CheckRequest
// prefixed with its length as a varint.
func (d *dataset) write(path string) error {
	var b []byte
	for _, it := range d.items {
		m, err := proto.Marshal(it.req)
		if err != nil {
			return err
		}
		b = protowire.AppendVarint(b, uint64(len(m)))
		b = append(b, m...)
	}
	return os.WriteFile(path, b, 0o644)
}

// seq numbers requests across the whole invocation for x-request-id.
var seq struct {
	sync.Mutex
	n int
}

func nextID() string {
	seq.Lock()
	defer seq.Unlock()
	seq.n++
	return fmt.Sprintf("loadtest-%08d", seq.n)
}

// envoyRequest builds a CheckRequest shaped exactly as Envoy's ext_authz
// filter sends one for a browser's or an API client's GET: lower-case
// header keys, one cookie header, :authority and x-forwarded-proto, the
// socket addresses and the request time. kv are extra header pairs.
func envoyRequest(path string, kv ...string) *authv3.CheckRequest {
	id := nextID()
	h := map[string]string{
		":authority": "app.example.com", ":method": "GET", ":path": path, ":scheme": "http",
		"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.7", "x-request-id": id,
		"user-agent":      "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
		"accept-encoding": "gzip, deflate, br, zstd", "accept-language": "en-GB,en;q=0.8",
		"x-envoy-expected-rq-timeout-ms": "15000",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	addr := func(ip string, port uint32) *authv3.AttributeContext_Peer {
		return &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
		}}}
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source:      addr("10.0.3.17", 48212),
		Destination: addr("10.0.5.4", 8080),
		Request: &authv3.AttributeContext_Request{
			Time: timestamppb.Now(),
			Http: &authv3.AttributeContext_HttpRequest{
				Id: id, Method: "GET", Path: path, Host: "app.example.com", Scheme: "http",
				Protocol: "HTTP/1.1", Headers: h,
			},
		},
	}}
}

// The request shapes of the scenarios.

func bearerRequest(tok string) *authv3.CheckRequest {
	return envoyRequest("/api/items?page=2", "authorization", "Bearer "+tok, "accept", "application/json")
}

// refreshRequest is a browser's fetch() carrying an expired access token
// and the refresh token in their cookies, beside one of the app's own.
func refreshRequest(expired, refresh string) *authv3.CheckRequest {
	return envoyRequest("/api/items",
		"cookie", "theme=dark; "+accessCookie+"="+expired+"; "+refreshCookie+"="+refresh,
		"accept", "*/*", "sec-fetch-site", "same-origin", "sec-fetch-mode", "cors", "sec-fetch-dest", "empty")
}

func anonymousRequest() *authv3.CheckRequest {
	return envoyRequest("/api/items", "accept", "application/json")
}

// issued is what the session API answers for a new session.
type issued struct {
	ID      string `json:"session_id"`
	Access  string `json:"access_token"`
	Refresh string `json:"refresh_token"`
}

// sessionClaims are the claims every benchmark session carries: a typical
// OIDC-ish set, so tokens have a realistic size.
var sessionClaims = map[string]any{
	"email": "ada.lovelace@example.com", "name": "Ada Lovelace", "role": "admin",
	"groups": []string{"engineering", "admins"},
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}

// createSessions starts n sessions through the server's session API
// (POST /v1/sessions), several at a time.
func createSessions(ctx context.Context, apiAddr string, n int) ([]issued, error) {
	out := make([]issued, n)
	return out, postSessions(ctx, apiAddr, n, func(i int, s issued) { out[i] = s })
}

// postSessions starts n sessions, of subjects user-0 to user-(n-1), and
// hands each answer to got (called concurrently, each i once).
func postSessions(ctx context.Context, apiAddr string, n int, got func(i int, s issued)) error {
	return postSessionsAs(ctx, apiAddr, "user-", n, got)
}

// postSessionsAs is postSessions with the subjects prefix0 to
// prefix(n-1), 8 requests at a time.
func postSessionsAs(ctx context.Context, apiAddr, prefix string, n int, got func(i int, s issued)) error {
	body, _ := json.Marshal(map[string]any{"claims": sessionClaims})
	prefix = strings.TrimSuffix(strconv.Quote(prefix), `"`) // JSON-safe for the printable prefixes used here
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			b := strings.Replace(string(body), "{", `{"subject":`+prefix+strconv.Itoa(i)+`",`, 1)
			req, err := http.NewRequestWithContext(ctx, "POST", "http://"+apiAddr+"/v1/sessions", strings.NewReader(b))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+apiToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := httpClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			rb, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if resp.StatusCode != http.StatusCreated {
				return fmt.Errorf("POST /v1/sessions: %s: %.200s", resp.Status, rb)
			}
			var s issued
			if err := json.Unmarshal(rb, &s); err != nil {
				return fmt.Errorf("POST /v1/sessions: %w", err)
			}
			if s.Access == "" || s.Refresh == "" || s.ID == "" {
				return errors.New("POST /v1/sessions: an answer without tokens")
			}
			got(i, s)
			return nil
		})
	}
	return g.Wait()
}

// keyFiles writes a fresh signing key of alg into a new directory under
// parent, as PKCS#8 PEM, and returns the directory and the key.
func keyFiles(parent string, alg keys.Alg) (string, *keys.Key, error) {
	k, err := keys.Generate(alg)
	if err != nil {
		return "", nil, err
	}
	var der []byte
	switch priv := k.Signer.(type) {
	case *ecdsa.PrivateKey, ed25519.PrivateKey:
		der, err = x509.MarshalPKCS8PrivateKey(priv)
	default:
		err = fmt.Errorf("unexpected %T", priv)
	}
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(parent, "keys-")
	if err != nil {
		return "", nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "signing.pem"), pemBytes, 0o600); err != nil {
		return "", nil, err
	}
	return dir, k, nil
}

// expiredMinter signs access tokens with the server's own key that
// expired an hour ago, as a browser holds after a lunch break.
func expiredMinter(k *keys.Key) (*token.Minter, error) {
	ring, err := keys.NewKeyring(k)
	if err != nil {
		return nil, err
	}
	h := &keys.Holder{}
	h.Store(ring)
	return token.NewMinter(token.MinterOptions{
		Issuer: issuer, Audience: audience, TTL: 15 * time.Minute, Keys: h,
		Now: func() time.Time { return time.Now().Add(-75 * time.Minute) },
	}), nil
}

// refreshItems pairs each session's refresh token with an expired access
// token of the same session.
func refreshItems(m *token.Minter, ss []issued) ([]item, error) {
	out := make([]item, len(ss))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, s := range ss {
		g.Go(func() error {
			exp, _, err := m.Mint("user", s.ID, sessionClaims)
			if err != nil {
				return err
			}
			out[i] = item{refreshRequest(exp, s.Refresh), wantRefreshed}
			return nil
		})
	}
	return out, g.Wait()
}

// tamper flips one bit in the middle of a JWT's signature: the token still
// parses, names a known key and has valid claims; only the signature check
// can refuse it.
func tamper(jwt string) string {
	i := strings.LastIndexByte(jwt, '.')
	sig, err := base64.RawURLEncoding.DecodeString(jwt[i+1:])
	if err != nil || len(sig) == 0 {
		return jwt + "x"
	}
	sig[len(sig)/2] ^= 0x40
	return jwt[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// malformedTokens are bearer values that fail before any key is used.
var malformedTokens = []string{
	"not.a.jwt",
	"eyJhbGciOiJFUzI1NiJ9.e30",
	"eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.~~~.c2ln", // a bearer token (RFC 6750 b64token), not base64url
	"garbage-garbage-garbage-garbage-garbage-garbage",
	"eyJub3QganNvbg.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
}

// shuffled returns items in a fixed pseudo-random order (the same every
// run), so kinds are interleaved.
func shuffled(items []item, seed uint64) []item {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	r.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return items
}
