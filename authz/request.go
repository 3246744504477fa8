package authz

import (
	"errors"
	"net/url"
	"path"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
)

// Limits applied to a CheckRequest before anything is parsed.
const (
	maxHeaders     = 256      // header entries considered; Envoy's own default limit is 100
	maxHeaderBytes = 96 << 10 // all header names and values together
	maxPathBytes   = 8 << 10  // :path including the query
)

// Request is the part of an Envoy CheckRequest that a decision reads: the
// method, the origin, the path and the headers, with header names lower-cased
// as Envoy sends them. Build it with NewRequest; it is read-only afterwards.
type Request struct {
	Method  string
	Scheme  string // "https" or "http": x-forwarded-proto, else the request's scheme
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
	errBadRequest = errors.New("request: missing or oversized attributes")
	errBadPath    = errors.New("request: path is ambiguous or malformed")
)

// NewRequest reads a CheckRequest as Envoy sends it: the headers map (or
// header_map when Envoy is configured with encode_raw_headers), :authority
// or host, and x-forwarded-proto. The request is returned even with
// errBadPath so that a deny can still be shaped for it.
func NewRequest(cr *authv3.CheckRequest) (*Request, error) {
	h := cr.GetAttributes().GetRequest().GetHttp()
	if h == nil {
		return nil, errBadRequest
	}
	headers, ok := collectHeaders(h)
	if !ok {
		return nil, errBadRequest
	}
	r := &Request{
		// Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET,
		// exactly as http.CrossOriginProtection sees it.
		Method:  first(h.GetMethod(), headers[":method"]),
		Host:    strings.ToLower(first(h.GetHost(), headers[":authority"], headers["host"])),
		RawPath: first(h.GetPath(), headers[":path"]),
		headers: headers,
	}
	r.Scheme = strings.ToLower(first(headers["x-forwarded-proto"], h.GetScheme(), headers[":scheme"], "https"))
	if r.Method == "" || r.Host == "" || r.RawPath == "" || len(r.RawPath) > maxPathBytes {
		return nil, errBadRequest
	}
	r.Policy = cr.GetAttributes().GetContextExtensions()[PolicyKey]
	r.ID = h.GetId()
	r.Peer = cr.GetAttributes().GetSource().GetAddress().GetSocketAddress().GetAddress()
	p, q, err := normalizePath(r.RawPath)
	r.Path, r.Query = p, q
	return r, err
}

// collectHeaders flattens either header representation into one map,
// bounded in count and size. Repeated cookie headers (HTTP/2 splits them)
// are joined with "; " as RFC 9113 §8.2.3 prescribes; others with ",".
func collectHeaders(h *authv3.AttributeContext_HttpRequest) (map[string]string, bool) {
	if hm := h.GetHeaderMap(); hm != nil && len(hm.GetHeaders()) > 0 {
		if len(hm.GetHeaders()) > maxHeaders {
			return nil, false
		}
		out := make(map[string]string, len(hm.GetHeaders()))
		size := 0
		for _, hv := range hm.GetHeaders() {
			k := strings.ToLower(hv.GetKey())
			v := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				v = string(raw)
			}
			size += len(k) + len(v)
			if size > maxHeaderBytes {
				return nil, false
			}
			if prev, ok := out[k]; ok {
				sep := ","
				if k == "cookie" {
					sep = "; "
				}
				v = prev + sep + v
			}
			out[k] = v
		}
		return out, true
	}
	if len(h.GetHeaders()) > maxHeaders {
		return nil, false
	}
	size := 0
	for k, v := range h.GetHeaders() {
		size += len(k) + len(v)
		if size > maxHeaderBytes {
			return nil, false
		}
	}
	// Envoy already lower-cases keys in this map; it is used as is, without a copy.
	return h.GetHeaders(), true
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
