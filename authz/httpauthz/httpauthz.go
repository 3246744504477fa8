// Package httpauthz is silentauth's HTTP authorization mode: the same
// authz.Engine behind a plain HTTP endpoint, for proxies that ask an
// authorization service over HTTP (nginx auth_request, Traefik ForwardAuth,
// Caddy forward_auth, Envoy's ext_authz http_service). The handler builds
// the authz.Request straight from what the proxy forwards (authz.NewRequest,
// with the limits and path rules of every transport; forwarded headers
// only from trusted proxies), decides with the Engine, records the decision
// with an authz.Observer like the gRPC server does, and writes the Decision
// in the shape that proxy understands. Manifests for each proxy live in
// manifests/proxies/.
package httpauthz

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/silentauth/silentauth/authz"
)

// Profile names how one proxy forwards the original request and how it
// acts on the answer.
type Profile string

// The profiles, each served at Prefix + "/" + its name.
const (
	// ProfileEnvoy is Envoy's ext_authz http_service with path_prefix
	// Prefix+"/envoy": the auth request is the original request itself
	// (method, path after the prefix, :authority, allowed headers). It is
	// also what a plain proxy route to silentauth uses, e.g. for the
	// session endpoints.
	ProfileEnvoy Profile = "envoy"
	// ProfileNginx is nginx auth_request: the original method in
	// X-Original-Method, the URI in X-Original-URI, the host in
	// X-Forwarded-Host (else Host). nginx understands only 2xx, 401 and
	// 403 from the subrequest and keeps only the first Set-Cookie, so
	// denies are 401 or 403 with X-Silentauth-* instructions and every
	// cookie travels in its own X-Silentauth-Cookie-N header.
	ProfileNginx Profile = "nginx"
	// ProfileTraefik is Traefik's ForwardAuth: X-Forwarded-Method,
	// -Proto, -Host and -Uri.
	ProfileTraefik Profile = "traefik"
	// ProfileCaddy is Caddy's forward_auth: X-Forwarded-Method and -Uri
	// (set by forward_auth), -Host and -Proto (set by reverse_proxy).
	ProfileCaddy Profile = "caddy"
)

// Options configure the HTTP authorization mode.
type Options struct {
	// Prefix is the path the handler serves; default "/authz".
	Prefix string
	// Profile answers requests to Prefix itself: nginx, traefik or caddy
	// ("" = none; Prefix/<profile> always works). Envoy is served only at
	// Prefix/envoy, whose path_prefix form leaves no room for a default.
	Profile Profile
	// TrustedProxies are the peer addresses whose forwarded headers
	// (X-Forwarded-*, X-Original-*) and policy selection are believed.
	// From any other peer they are ignored: the request is decided as it
	// reached silentauth, so a client cannot talk its way past a check by
	// sending them itself. Default none.
	TrustedProxies []netip.Prefix
	// Next serves requests outside Prefix (nil = 404). Put the handler in
	// front of the public ServeMux this way rather than registering it on
	// the mux: ServeMux redirects paths holding "//", "." or "..", and
	// Envoy's path_prefix passes the client's path on unnormalised; the
	// Engine must judge that path, not a redirect to a cleaned one.
	Next http.Handler
}

// Headers of the HTTP mode's own contract.
const (
	// HeaderAction tells nginx's error_page what a deny means: login
	// (redirect to X-Silentauth-Location), unavailable (503, cookies
	// kept), deny (an error answer) or done (a session endpoint answered).
	HeaderAction = "X-Silentauth-Action"
	// HeaderStatus is the status the client must receive (nginx).
	HeaderStatus = "X-Silentauth-Status"
	// HeaderLocation is the redirect target of a login or logout (nginx).
	HeaderLocation = "X-Silentauth-Location"
	// HeaderBody is the answer's JSON body (nginx discards subrequest
	// bodies). It never holds CR or LF.
	HeaderBody = "X-Silentauth-Body"
	// HeaderCookiePrefix + "1".."4" carry one Set-Cookie value each (nginx
	// always, Caddy on allow): auth_request_set sees only the first of
	// several Set-Cookie headers, and Caddy's placeholders join them with
	// commas. The Engine emits at most three.
	HeaderCookiePrefix = "X-Silentauth-Cookie-"
	// HeaderPolicy names the policy on the envoy profile: Envoy's
	// http_service sets it with authorization_request.headers_to_add, and
	// a plain proxy route to Prefix/envoy must set or delete it on every
	// request, since the proxy forwards a client's copy otherwise. The
	// other profiles read only ?policy=NAME on the auth URI, which the
	// proxy writes (Caddy's rewrite must write the query, or it keeps the
	// client's). Both only from trusted proxies; two values are refused.
	HeaderPolicy = "X-Silentauth-Policy"
	// headerRemove is how Envoy's http_service learns which upstream
	// headers to remove (Envoy's x-envoy-auth-headers-to-remove).
	headerRemove = "X-Envoy-Auth-Headers-To-Remove"
)

// forwarding says where a profile finds the original request. Empty names
// mean the request itself (Envoy).
type forwarding struct {
	method, uri, host string
	// numbered sends cookies of allows (and, with denyNumbered, of denies)
	// as X-Silentauth-Cookie-N instead of Set-Cookie.
	numbered, denyNumbered bool
}

var profiles = map[Profile]forwarding{
	ProfileEnvoy:   {},
	ProfileNginx:   {method: "X-Original-Method", uri: "X-Original-Uri", host: "X-Forwarded-Host", numbered: true, denyNumbered: true},
	ProfileTraefik: {method: "X-Forwarded-Method", uri: "X-Forwarded-Uri", host: "X-Forwarded-Host"},
	// Caddy copies a non-2xx answer to the client as it is: its cookies
	// must be real Set-Cookie headers there, and the numbered ones must
	// never reach a browser (page script could read them).
	ProfileCaddy: {method: "X-Forwarded-Method", uri: "X-Forwarded-Uri", host: "X-Forwarded-Host", numbered: true},
}

// handler is the HTTP mode. It is safe for concurrent use.
type handler struct {
	engine *authz.Engine
	opts   Options
	log    *slog.Logger
	obs    map[Profile]*authz.Observer // metrics and the decision log, per profile
}

// NewHandler returns the HTTP authorization mode deciding with e. Its
// decisions are counted in m and logged like Check's, with transport=http
// and the profile.
func NewHandler(e *authz.Engine, o Options, log *slog.Logger, m *authz.Metrics) http.Handler {
	if o.Prefix == "" {
		o.Prefix = "/authz"
	}
	o.Prefix = strings.TrimSuffix(o.Prefix, "/")
	h := &handler{engine: e, opts: o, log: log, obs: make(map[Profile]*authz.Observer, len(profiles))}
	for p := range profiles {
		h.obs[p] = authz.NewObserver(log.With("transport", "http", "profile", string(p)), m)
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	uri := r.RequestURI
	if !strings.HasPrefix(uri, "/") {
		// Absolute-form or "*": never an auth request.
		uri = r.URL.RequestURI()
	}
	p, rest, ok := h.route(uri)
	if !ok {
		if h.opts.Next != nil {
			h.opts.Next.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
		return
	}
	req, err := h.request(r, p, rest)
	d := h.engine.Decide(r.Context(), req, err)
	h.obs[p].Observe(r.Context(), req, d, time.Since(start))
	h.write(w, p, req, d)
}

// route picks the profile from the request URI: Prefix itself (the
// default profile), Prefix/nginx, /traefik, /caddy (any query is the auth
// URI's own), or Prefix/envoy followed by the original path and query.
func (h *handler) route(uri string) (p Profile, rest string, ok bool) {
	rest, ok = strings.CutPrefix(uri, h.opts.Prefix)
	if !ok || (rest != "" && rest[0] != '/' && rest[0] != '?') {
		return "", "", false
	}
	if rest == "" || rest[0] == '?' {
		_, known := profiles[h.opts.Profile]
		return h.opts.Profile, rest, known && h.opts.Profile != ProfileEnvoy
	}
	if after, ok := strings.CutPrefix(rest, "/"+string(ProfileEnvoy)); ok && (after == "" || after[0] == '/' || after[0] == '?') {
		if after == "" || after[0] == '?' {
			after = "/" + after
		}
		return ProfileEnvoy, after, true
	}
	name, query, _ := strings.Cut(rest[1:], "?")
	if q := Profile(name); q != ProfileEnvoy {
		if _, known := profiles[q]; known {
			if query != "" {
				query = "?" + query
			}
			return q, query, true
		}
	}
	return "", "", false
}

// request builds the original request from the auth request through
// authz.NewRequest, which applies the limits and path rules of every
// transport. Forwarded headers count only from a trusted proxy; an error
// means a trusted proxy sent an incomplete or ambiguous description (the
// Request is still returned when it could be built, for the log).
func (h *handler) request(r *http.Request, p Profile, rest string) (*authz.Request, error) {
	fw := profiles[p]
	method, path, host := r.Method, rest, r.Host
	if fw.method != "" {
		// Without a trusted description the request is judged as it
		// arrived: the auth URI's own method and "/" (its query is ours).
		path = "/"
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	policy := ""
	var err error
	peer, _, _ := net.SplitHostPort(r.RemoteAddr)
	if h.trusted(r.RemoteAddr) {
		// The client as the trusted proxy saw it: the entry it appended.
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			list := xff[len(xff)-1]
			if v := strings.TrimSpace(list[strings.LastIndexByte(list, ',')+1:]); v != "" {
				peer = v
			}
		}
		if v, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ","); strings.TrimSpace(v) != "" {
			scheme = strings.TrimSpace(v)
		}
		if fw.method != "" {
			var okM, okU, okH bool
			method, okM = single(r.Header, fw.method)
			path, okU = single(r.Header, fw.uri)
			var fhost string
			if fhost, okH = single(r.Header, fw.host); fhost != "" {
				host = fhost
			}
			if !okM || !okU || !okH || !validMethod(method) || path == "" {
				err = authz.ErrBadRequest
			}
			if q, ok := strings.CutPrefix(rest, "?"); ok {
				policy = queryValue(q, authz.PolicyKey)
			}
		} else {
			// The proxy must write the header itself, replacing a
			// client's (Envoy's headers_to_add does; the shipped Caddy
			// and Traefik snippets do on the routes to /authz/envoy). A
			// proxy that appends its own beside a client's sends two:
			// ambiguous, refused rather than guessed.
			var okP bool
			if policy, okP = single(r.Header, HeaderPolicy); !okP {
				err = authz.ErrBadRequest
			}
		}
	} else if forwardedBy(r.Header) {
		h.log.Warn("http authz: forwarded headers from an untrusted peer ignored; the request is decided as it arrived",
			"peer", r.RemoteAddr, "profile", string(p))
	}

	headers := authz.MakeHeaders(len(r.Header))
	for name, values := range r.Header {
		lname := strings.ToLower(name)
		if isForwarding(lname) {
			// Read above, from trusted proxies only; the Engine never
			// sees them.
			continue
		}
		for _, v := range values {
			headers.Add(lname, v)
		}
	}
	req, rerr := authz.NewRequest(method, scheme, host, path, headers, peer)
	if req != nil {
		req.Policy, req.ID = policy, r.Header.Get("X-Request-Id")
	}
	if err == nil {
		err = rerr
	}
	return req, err
}

// trusted reports whether the peer is one of the trusted proxies.
func (h *handler) trusted(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	addr := ap.Addr().Unmap()
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// isForwarding reports the headers through which a proxy describes the
// original request or selects a policy (every name in describing, and the
// X-Forwarded-For and -Proto family). The Engine never sees them: they are
// read in request, from trusted proxies only.
func isForwarding(lname string) bool {
	return strings.HasPrefix(lname, "x-forwarded-") || strings.HasPrefix(lname, "x-original-") ||
		lname == "forwarded" || strings.EqualFold(lname, HeaderPolicy)
}

// describing lists the headers that describe another request: each
// profile's method, URI and host headers, and HeaderPolicy.
var describing = func() []string {
	names := []string{HeaderPolicy}
	for _, p := range []Profile{ProfileNginx, ProfileTraefik, ProfileCaddy} {
		fw := profiles[p]
		for _, n := range []string{fw.method, fw.uri, fw.host} {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}()

// forwardedBy reports whether a request carries headers that describe
// another request: worth a warning when the peer is not trusted.
func forwardedBy(h http.Header) bool {
	for _, name := range describing {
		if len(h.Values(name)) > 0 {
			return true
		}
	}
	return false
}

// single returns the one value of header name; two values are ambiguous
// (a client's copy beside the proxy's) and reported as not ok.
func single(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return "", true
	case 1:
		return strings.TrimSpace(vs[0]), true
	default:
		return "", false
	}
}

// validMethod reports whether m is an HTTP method token (RFC 9110 §9.1).
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// queryValue returns the first value of key in the raw query q, or "".
func queryValue(q, key string) string {
	for part := range strings.SplitSeq(q, "&") {
		if k, v, _ := strings.Cut(part, "="); k == key {
			return v
		}
	}
	return ""
}

// write answers the proxy. An allow is 200 with the headers the upstream
// must receive (authorization, claim headers, the cookie header without
// ours), and the headers and cookies for the browser. A deny is the
// Decision's status, headers, cookies and body; for nginx it is 401 or 403
// with X-Silentauth-* instructions that its error_page turns into the
// real answer.
func (h *handler) write(w http.ResponseWriter, p Profile, r *authz.Request, d authz.Decision) {
	fw := profiles[p]
	hdr := w.Header()
	if d.Allow {
		for _, x := range upstreamView(r, d) {
			hdr.Set(x.Name, x.Value)
		}
		if p == ProfileEnvoy && len(d.Remove) > 0 {
			hdr.Set(headerRemove, strings.Join(d.Remove, ","))
		}
		for _, x := range d.Response {
			hdr.Set(x.Name, x.Value)
		}
		setCookies(hdr, d.SetCookie, fw.numbered)
		w.WriteHeader(http.StatusOK)
		return
	}
	if p != ProfileNginx {
		for _, x := range d.Response {
			hdr.Set(x.Name, x.Value)
		}
		setCookies(hdr, d.SetCookie, false)
		w.WriteHeader(d.Status)
		_, _ = w.Write([]byte(d.Body))
		return
	}

	// nginx: the subrequest may answer only 401 or 403; error_page reads
	// what the client must get from our headers.
	status, action := http.StatusForbidden, "deny"
	for _, x := range d.Response {
		switch x.Name {
		case "location":
			hdr.Set(HeaderLocation, x.Value)
		default:
			hdr.Set(x.Name, x.Value)
		}
	}
	switch {
	case d.Status >= 300 && d.Status < 400:
		status, action = http.StatusUnauthorized, "login"
	case d.Status >= 500:
		action = "unavailable"
	case d.Status < 300:
		action = "done"
	case d.Status == http.StatusUnauthorized:
		status = http.StatusUnauthorized
	}
	hdr.Set(HeaderAction, action)
	hdr.Set(HeaderStatus, strconv.Itoa(d.Status))
	if d.Body != "" && !strings.ContainsAny(d.Body, "\r\n") {
		hdr.Set(HeaderBody, d.Body)
	}
	setCookies(hdr, d.SetCookie, fw.denyNumbered)
	w.WriteHeader(status)
	_, _ = w.Write([]byte(d.Body))
}

// upstreamView lists the headers the upstream must receive, with their
// final values. Proxies of the forward-auth family copy a listed header
// from the answer or delete it when the answer lacks it, so the answer
// states every header the Engine may touch: authorization and cookie keep
// the client's value unless the Engine set or removed them; claim headers
// are present only when the Engine set them (client copies are removed).
func upstreamView(r *authz.Request, d authz.Decision) []authz.Header {
	out := make([]authz.Header, 0, len(d.Upstream)+2)
	out = append(out, d.Upstream...)
	for _, name := range []string{"authorization", "cookie"} {
		if slices.ContainsFunc(d.Upstream, func(h authz.Header) bool { return h.Name == name }) || slices.Contains(d.Remove, name) {
			continue
		}
		if v := r.Header(name); v != "" {
			out = append(out, authz.Header{Name: name, Value: v})
		}
	}
	return out
}

// setCookies adds each Set-Cookie value as its own header: Set-Cookie, or
// X-Silentauth-Cookie-1, -2, … when numbered.
func setCookies(hdr http.Header, values []string, numbered bool) {
	for i, c := range values {
		if numbered {
			hdr.Set(HeaderCookiePrefix+strconv.Itoa(i+1), c)
		} else {
			hdr.Add("Set-Cookie", c)
		}
	}
}
