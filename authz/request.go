package authz

import (
	"errors"
	"net/url"
	"path"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// Limits applied to a request before anything is parsed.
const (
	maxHeaders     = 256      // header entries considered; Envoy's own default limit is 100
	maxHeaderBytes = 96 << 10 // all header names and values together
	maxPathBytes   = 8 << 10  // :path including the query
)

// Request is the part of a request that a decision reads: the method, the
// origin, the path and the headers, with header names lower-cased as Envoy
// sends them. Each transport builds it with NewRequest (FromCheckRequest for
// gRPC); it is read-only afterwards.
type Request struct {
	Method  string
	Scheme  string // "https" or "http", as the transport established it
	Host    string // :authority
	RawPath string // the path as sent, with its query
	Path    string // normalised path without query (see normalizePath)
	Query   string // the raw query without "?"
	// Policy names the policy of the Envoy route (context_extensions
	// "policy"); "" selects the default policy.
	Policy string
	// ID is Envoy's request id, for logs.
	ID string
	// Peer is the client's address as the proxy saw it (Envoy's source
	// address; a trusted proxy's forwarded address in HTTP mode), for logs.
	Peer    string
	headers map[string]string
}

// Header returns the value of the lower-case header name, or "".
func (r *Request) Header(name string) string { return r.headers[name] }

// Request parsing failures. Each is a precise deny, never a gRPC error.
var (
	// ErrBadRequest: missing or oversized attributes. A transport that
	// finds the request's description incomplete or ambiguous passes it to
	// Engine.Decide.
	ErrBadRequest = errors.New("request: missing or oversized attributes")
	errBadPath    = errors.New("request: path is ambiguous or malformed")
)

// Headers are a request's headers as a decision reads them: lower-case
// names, one value each. Repeated cookie headers (HTTP/2 splits them) are
// joined with "; " as RFC 9113 §8.2.3 prescribes; others with ",". They
// count every entry added, and NewRequest refuses more than maxHeaders
// entries or maxHeaderBytes of names and values in all.
type Headers struct {
	m             map[string]string
	entries, size int
}

// MakeHeaders returns empty Headers with room for n names.
func MakeHeaders(n int) Headers { return Headers{m: make(map[string]string, n)} }

// headersOf takes a map that already has one lower-case name per entry (as
// Envoy's headers map does) as it is, without a copy.
func headersOf(m map[string]string) Headers {
	h := Headers{m: m, entries: len(m)}
	if h.entries > maxHeaders {
		return h // refused by count: not worth measuring
	}
	for k, v := range m {
		h.size += len(k) + len(v)
		if h.size > maxHeaderBytes {
			break
		}
	}
	return h
}

// Add adds one header entry; name must be lower case. Beyond the limits
// nothing more is kept: NewRequest refuses the request anyway.
func (h *Headers) Add(name, value string) {
	h.entries++
	h.size += len(name) + len(value)
	if h.over() {
		return
	}
	if h.m == nil {
		h.m = map[string]string{}
	}
	if prev, ok := h.m[name]; ok {
		sep := ","
		if name == "cookie" {
			sep = "; "
		}
		value = prev + sep + value
	}
	h.m[name] = value
}

func (h *Headers) over() bool { return h.entries > maxHeaders || h.size > maxHeaderBytes }

// NewRequest builds the Request of any transport from the original
// request's method, scheme ("" means https), host, path with its query,
// headers and peer address, applying the same limits and path rules to
// all: headers within maxHeaders and maxHeaderBytes, a method, a host and
// a path of at most maxPathBytes, or ErrBadRequest and no Request. The
// request is returned even with errBadPath so that a deny can still be
// shaped for it. The transport sets Policy and ID.
func NewRequest(method, scheme, host, path string, headers Headers, peer string) (*Request, error) {
	if headers.over() {
		return nil, ErrBadRequest
	}
	if method == "" || host == "" || path == "" || len(path) > maxPathBytes {
		return nil, ErrBadRequest
	}
	r := &Request{
		// Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET,
		// exactly as http.CrossOriginProtection sees it.
		Method:  method,
		Scheme:  strings.ToLower(first(scheme, "https")),
		Host:    strings.ToLower(host),
		RawPath: path,
		Peer:    peer,
		headers: headers.m,
	}
	p, q, err := normalizePath(r.RawPath)
	r.Path, r.Query = p, q
	return r, err
}

// FromCheckRequest reads a CheckRequest as Envoy sends it: the headers map
// (or header_map when Envoy is configured with encode_raw_headers),
// :authority or host, and x-forwarded-proto, through NewRequest.
func FromCheckRequest(cr *authv3.CheckRequest) (*Request, error) {
	h := cr.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return nil, ErrBadRequest
	}
	headers := checkHeaders(h)
	if headers.over() {
		return nil, ErrBadRequest
	}
	m := headers.m
	r, err := NewRequest(
		first(h.GetMethod(), m[":method"]),
		first(m["x-forwarded-proto"], h.GetScheme(), m[":scheme"]),
		first(h.GetHost(), m[":authority"], m["host"]),
		first(h.GetPath(), m[":path"]),
		headers,
		cr.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress(),
	)
	if r != nil {
		r.Policy = cr.GetAttributes().GetContextExtensions()[PolicyKey]
		r.ID = h.GetId()
	}
	return r, err
}

// checkHeaders reads either header representation of a CheckRequest.
func checkHeaders(h *authv3.AttributeContext_HttpRequest) Headers {
	hm := h.GetHeaderMap().GetHeaders()
	if len(hm) == 0 {
		// Envoy already lower-cases keys in this map; it is used as is.
		return headersOf(h.GetHeaders())
	}
	if len(hm) > maxHeaders {
		return Headers{entries: len(hm)}
	}
	out := MakeHeaders(len(hm))
	for _, hv := range hm {
		v := hv.GetValue()
		if raw := hv.GetRawValue(); len(raw) > 0 {
			v = string(raw)
		}
		out.Add(strings.ToLower(hv.GetKey()), v)
		if out.over() {
			break
		}
	}
	return out
}

// normalizePath returns the path used to match public paths and the
// session endpoints: the query and fragment removed, percent-decoding
// applied, "//" merged and "." and ".." segments resolved, a trailing "/"
// kept. A path that is not absolute, that holds a control character, a
// "\" or ";" (raw or percent-encoded), an encoded "/", or a broken
// percent-escape is refused: proxies and apps disagree on what such paths
// mean (CVE-2021-43797-style confusion), so silentauth does not guess.
func normalizePath(raw string) (clean, query string, err error) {
	p := raw
	if i := strings.IndexByte(p, '#'); i >= 0 {
		p = p[:i]
	}
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p, query = p[:i], p[i+1:]
	}
	if !strings.HasPrefix(p, "/") {
		return "/", query, errBadPath
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c < 0x20 || c == 0x7f || c == '\\' || c == ';' {
			return "/", query, errBadPath
		}
		if c == '%' && i+2 < len(p) {
			switch strings.ToLower(p[i+1 : i+3]) {
			case "2f", "5c", "3b":
				return "/", query, errBadPath
			}
		}
	}
	dec, uerr := url.PathUnescape(p)
	if uerr != nil {
		return "/", query, errBadPath
	}
	for i := 0; i < len(dec); i++ {
		if dec[i] < 0x20 || dec[i] == 0x7f {
			return "/", query, errBadPath
		}
	}
	clean = path.Clean(dec)
	if strings.HasSuffix(dec, "/") && clean != "/" {
		clean += "/"
	}
	return clean, query, nil
}

// first returns the first non-empty value.
func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
