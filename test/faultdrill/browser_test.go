package faultdrill

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/cookie"
)

// appURL is the application the browsers visit.
var appURL = &url.URL{Scheme: "https", Host: "app.example.com", Path: "/"}

var names = cookie.Default()

// browser is one simulated browser: a cookie jar that keeps cookies as a
// browser does (Set-Cookie from any answer, Max-Age honoured, Max-Age=0
// deletes), used by two tabs at once. Its methods are safe for concurrent
// use.
type browser struct {
	n      int
	family string // the session's family id (not a secret)
	jar    *cookiejar.Jar

	mu        sync.Mutex
	requests  int      // sent so far: they alternate between the replicas
	loggedOut bool     // its session ended (the documented loss only)
	history   []string // the last answers, for failure messages
}

func newBrowser(n int) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		panic(err)
	}
	// The application's own cookie, which must survive every rewrite.
	jar.SetCookies(appURL, []*http.Cookie{{Name: "theme", Value: "dark", Path: "/"}})
	return &browser{n: n, jar: jar}
}

// apply stores Set-Cookie values exactly as a browser would: the last
// answer to arrive wins, even when two tabs' answers cross.
func (b *browser) apply(setCookie []string) {
	var cs []*http.Cookie
	for _, v := range setCookie {
		c, err := http.ParseSetCookie(v)
		if err != nil {
			panic(fmt.Sprintf("unparseable Set-Cookie for %s", strings.SplitN(v, "=", 2)[0]))
		}
		cs = append(cs, c)
	}
	b.jar.SetCookies(appURL, cs)
}

// jarNow is what the browser would send now: the Cookie header and our
// two tokens in it ("" when absent).
func (b *browser) jarNow() (header, access, refresh string) {
	var pairs []string
	for _, c := range b.jar.Cookies(appURL) {
		pairs = append(pairs, c.Name+"="+c.Value)
		switch c.Name {
		case names.Access:
			access = c.Value
		case names.Refresh:
			refresh = c.Value
		}
	}
	return strings.Join(pairs, "; "), access, refresh
}

// note records one answer in the browser's recent history.
func (b *browser) note(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.history = append(b.history, fmt.Sprintf(format, args...))
	if len(b.history) > 12 {
		b.history = b.history[1:]
	}
}

func (b *browser) recent() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return "\n\t\t" + strings.Join(b.history, "\n\t\t")
}

// accessExp reads the exp claim of an access token (its payload, no
// signature check: the browser's own view of when it expires).
func accessExp(raw string) time.Time {
	_, rest, _ := strings.Cut(raw, ".")
	payload, _, _ := strings.Cut(rest, ".")
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return time.Time{}
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil {
		return time.Time{}
	}
	return time.Unix(c.Exp, 0)
}

// fp names a refresh token in messages without revealing it.
func fp(rt string) string {
	if rt == "" {
		return "none"
	}
	return authz.Fingerprint(rt)[:8]
}

// envoyRequest is a CheckRequest as Envoy sends it for one browser request:
// lower-case header keys, one cookie header, :authority, TLS terminated in
// front of Envoy. Tab 0 loads pages; tab 1 calls the API and posts now and
// then (same origin).
func envoyRequest(b *browser, tab, seq int, cookieHeader string) *authv3.CheckRequest {
	id := fmt.Sprintf("drill-%d-%d-%d", b.n, tab, seq)
	method, path := http.MethodGet, "/dashboard"
	h := map[string]string{
		":authority":        appURL.Host,
		":scheme":           "http",
		"x-forwarded-proto": "https",
		"user-agent":        "Mozilla/5.0 (X11; Linux x86_64) drill/" + strconv.Itoa(b.n),
		"x-request-id":      id,
		"sec-fetch-site":    "same-origin",
	}
	if cookieHeader != "" {
		h["cookie"] = cookieHeader
	}
	switch {
	case tab == 0:
		h["sec-fetch-mode"], h["sec-fetch-dest"] = "navigate", "document"
		h["accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	case seq%5 == 4:
		method, path = http.MethodPost, "/api/items"
		h["sec-fetch-mode"], h["sec-fetch-dest"] = "cors", "empty"
		h["accept"], h["content-type"] = "application/json", "application/json"
		h["origin"] = "https://" + appURL.Host
	default:
		path = "/api/items?page=" + strconv.Itoa(seq%7)
		h["sec-fetch-mode"], h["sec-fetch-dest"] = "cors", "empty"
		h["accept"] = "application/json"
		h["referer"] = "https://" + appURL.Host + "/dashboard"
	}
	h[":method"], h[":path"] = method, path
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
			SocketAddress: &corev3.SocketAddress{Address: fmt.Sprintf("10.1.%d.%d", b.n/200, b.n%200+1), PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(40000 + tab)}},
		}}},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: id, Method: method, Path: path, Host: appURL.Host, Scheme: "http", Protocol: "HTTP/2", Headers: h,
		}},
	}}
}

// answer is one Check as the browser experienced it.
type answer struct {
	id          string // Envoy's request id
	sent, done  time.Time
	replica     int
	access      string    // the access token sent ("" if none)
	accessExp   time.Time // its exp
	refresh     string    // the refresh token sent
	err         error     // a gRPC error (Envoy answers 503 itself)
	allowed     bool
	status      int    // HTTP status of a denial
	reason      string // reason of a JSON denial
	authz       bool   // an allowed request carries an Authorization header upstream
	setCookie   []string
	newRefresh  string // the refresh token set, if any
	cleared     bool   // our cookies were deleted
	deadlineErr bool   // the gRPC deadline passed
}

// validWhenSent: the browser sent an access token that had not expired.
func (a answer) validWhenSent() bool { return a.access != "" && a.sent.Before(a.accessExp) }

func (a answer) String() string {
	at := "no access token"
	if a.access != "" {
		at = fmt.Sprintf("access exp %+.2fs", a.accessExp.Sub(a.sent).Seconds())
	}
	out := "?"
	switch {
	case a.err != nil:
		out = "gRPC " + status.Code(a.err).String()
	case a.allowed:
		out = "allowed"
	default:
		out = fmt.Sprintf("%d %s", a.status, a.reason)
	}
	switch {
	case a.cleared:
		out += ", cookies cleared"
	case a.newRefresh != "":
		out += ", refresh " + fp(a.newRefresh)
	}
	return fmt.Sprintf("%s replica %d, %s, refresh %s → %s in %v", a.sent.Format("15:04:05.000"), a.replica, at, fp(a.refresh), out, a.done.Sub(a.sent).Round(time.Millisecond))
}

// checkDeadline is the deadline of every Check, as Envoy's ext_authz
// timeout sets it (grpc-timeout).
const checkDeadline = 500 * time.Millisecond

// visit sends one request from tab of b to one of the replicas, applies
// the answer's cookies as a browser would, and returns the answer. ok is
// false when the browser holds no refresh cookie (logged out).
func (b *browser) visit(clients []authv3.AuthorizationClient, tab int) (a answer, ok bool) {
	b.mu.Lock()
	seq := b.requests
	b.requests++
	b.mu.Unlock()
	header, access, refresh := b.jarNow()
	if refresh == "" {
		return a, false
	}
	a = answer{replica: seq % len(clients), access: access, refresh: refresh}
	if access != "" {
		a.accessExp = accessExp(access)
	}
	cr := envoyRequest(b, tab, seq, header)
	a.id = cr.GetAttributes().GetRequest().GetHttp().GetId()
	ctx, cancel := context.WithTimeout(context.Background(), checkDeadline)
	a.sent = time.Now()
	resp, err := clients[a.replica].Check(ctx, cr)
	a.done = time.Now()
	cancel()
	if err != nil {
		// Envoy answers the browser itself (503, or its failure mode);
		// no Set-Cookie reaches the browser.
		a.err = err
		a.deadlineErr = status.Code(err) == codes.DeadlineExceeded
		b.note("%v", a)
		return a, true
	}
	var hs []*corev3.HeaderValueOption
	if okr := resp.GetOkResponse(); okr != nil {
		a.allowed = true
		for _, h := range okr.GetHeaders() {
			if h.GetHeader().GetKey() == "authorization" && strings.HasPrefix(h.GetHeader().GetValue(), "Bearer ") {
				a.authz = true
			}
		}
		hs = okr.GetResponseHeadersToAdd()
	} else {
		d := resp.GetDeniedResponse()
		a.status = int(d.GetStatus().GetCode())
		var body struct{ Reason string }
		_ = json.Unmarshal([]byte(d.GetBody()), &body)
		a.reason = body.Reason
		if a.status == http.StatusFound {
			a.reason = "login redirect"
		}
		hs = d.GetHeaders()
	}
	for _, h := range hs {
		if h.GetHeader().GetKey() == "set-cookie" {
			a.setCookie = append(a.setCookie, h.GetHeader().GetValue())
		}
	}
	for _, v := range a.setCookie {
		name, rest, _ := strings.Cut(v, "=")
		value, _, _ := strings.Cut(rest, ";")
		if name == names.Refresh {
			if value == "" || strings.Contains(v, "Max-Age=0") {
				a.cleared = true
			} else {
				a.newRefresh = value
			}
		}
	}
	b.apply(a.setCookie)
	b.note("%v", a)
	return a, true
}
