// Package cookie is silentauth's cookie contract: the three cookies it keeps,
// how it reads them from the one Cookie header Envoy forwards, how it hides
// them from the upstream, and the exact Set-Cookie values it emits.
//
// The three cookies are the access token, the refresh token, and an expiry
// hint ("at=<unix>&rt=<unix>", no secret, not HttpOnly) that page script can
// read with URLSearchParams to know when to expect a refresh or a logout.
//
// Guarantees:
//   - Scan, Read and Upstream never panic, whatever the header holds.
//   - One Scan of a header serves both Read's values and Upstream's rewrite.
//     It does not allocate; values come from the first MaxHeaderBytes only,
//     and past them Scan stops at the first name of ours.
//   - Cookie names are compared byte for byte: "__host-sa-rt" is not ours.
//   - Upstream's result never holds a pair named exactly like one of ours,
//     wherever in the header it sits, so the upstream never sees our tokens.
//     It allocates only when it removes something.
//   - Set* values are built by hand, byte for byte, with Max-Age only; a value
//     that is not cookie-octets is never emitted.
//
// Policy is a plain value with no hidden state; all its methods, and the
// package's functions, are safe for concurrent use. Nothing here logs.
package cookie

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Default cookie names. The __Host- prefix makes browsers refuse them unless
// Secure, Path=/ and without Domain (RFC 6265bis §4.1.3.2), so a sibling
// subdomain cannot plant or shadow them (cookie tossing).
const (
	DefaultAccess  = "__Host-sa-at"
	DefaultRefresh = "__Host-sa-rt"
	DefaultHint    = "__Host-sa-exp"
)

// MaxHeaderBytes is how much of a Cookie header Read takes values from.
// Browsers cap a cookie at 4 KiB and Envoy's default header limit is 60 KiB;
// 16 KiB holds any honest header. Names are matched beyond it: Upstream must
// remove our cookies wherever they appear.
const MaxHeaderBytes = 16 << 10

// Policy is the cookie contract: names and attributes of the three cookies.
// Its fields are trusted configuration; check them once with Validate. The
// yaml names are those of the configuration file's cookies section; SameSite
// is not decoded from YAML (its spelling there is the configuration's to
// parse).
type Policy struct {
	// Access holds the access token. Default "__Host-sa-at".
	Access string `yaml:"access"`
	// Refresh holds the refresh token. Default "__Host-sa-rt".
	Refresh string `yaml:"refresh"`
	// Hint holds "at=<unix>&rt=<unix>", readable by page script, no secret.
	// Default "__Host-sa-exp".
	Hint string `yaml:"hint"`
	// Domain of every cookie. Default "" (host-only; required with __Host-).
	Domain string `yaml:"domain"`
	// Path of every cookie. Default "/" (required with __Host-). Validate
	// requires a path; the Set methods send "/" for "".
	Path string `yaml:"path"`
	// Secure flag. Default true (required with __Host-, __Secure- and
	// SameSite=None).
	Secure bool `yaml:"secure"`
	// SameSite of every cookie; 0 and SameSiteDefaultMode mean Lax: we
	// always send SameSite. Default Lax.
	SameSite http.SameSite `yaml:"-"`
}

// Default returns the secure default policy: the Default* names, host-only,
// Path=/, Secure, SameSite=Lax.
func Default() Policy {
	return Policy{
		Access:   DefaultAccess,
		Refresh:  DefaultRefresh,
		Hint:     DefaultHint,
		Path:     "/",
		Secure:   true,
		SameSite: http.SameSiteLaxMode,
	}
}

// Found is what one request's Cookie header holds of ours.
type Found struct {
	Access, Refresh       string // values ("" when absent or empty)
	AccessDup, RefreshDup bool   // the exact name appeared more than once: ambiguous
}

// Read parses a raw Cookie request header leniently, as Envoy forwards it:
// one header of "a=1; b=2" pairs (HTTP/2 cookie crumbs already joined with
// "; ", RFC 9113 §8.2.3). It tolerates a missing space after ";", spaces and
// tabs around names and values, empty pairs, and one pair of DQUOTEs around a
// value, which it strips (RFC 6265 §4.1.1 allows them). A pair without "=" is
// a nameless cookie to browsers (RFC 6265bis §5.6), so it is never ours.
//
// Names match exactly. When our name appears twice, the first value is kept
// and the Dup flag set: two copies mean someone planted one (a subdomain
// without __Host-, or a path-scoped copy), and the caller must not guess.
//
// Values are read from the first MaxHeaderBytes only; a pair straddling that
// limit and all pairs after it are ignored rather than read truncated. Read
// does not allocate: the values it returns are substrings of header.
func (p Policy) Read(header string) Found { return p.Scan(header).Found }

// Jar is what one scan of a Cookie header finds: our values (Found, as Read
// reads them) and whether any pair of the whole header is named like one of
// ours, so that Upstream rewrites the header without searching it again.
type Jar struct {
	Found
	header string
	ours   bool // a pair named Access, Refresh or Hint, anywhere (Upstream's rule)
	// login is 1 + the offset of the first login flow's pair within the
	// values' reach, 0 when there is none: the login paths read them from
	// there (Logins), and every other request carries no more than this.
	login int
}

// MaxLogins is how many login-flow cookies one scan reports; the engine
// keeps fewer pending (oidc.maxPendingLogins), so more means a client
// that made them up.
const MaxLogins = 10

// Login is one login flow's cookie as a request carries it: the flow's
// state (the cookie name after LoginPrefix) and its sealed value.
type Login struct{ State, Value string }

// Logins returns the login-flow cookies of the scanned header, in header
// order: at most MaxLogins, within MaxHeaderBytes, with values read as
// Read reads ours. It reads on from where Scan saw the first one, and only
// the login paths ask.
func (p Policy) Logins(j Jar) []Login {
	if j.login == 0 {
		return nil
	}
	var out []Login
	prefix := p.LoginPrefix()
	for rest, end := j.header[j.login-1:], j.login-1; rest != "" && len(out) < MaxLogins; {
		var pair string
		var cut bool
		pair, rest, cut = strings.Cut(rest, ";")
		end += len(pair)
		if end > MaxHeaderBytes {
			break
		}
		if name, value, ok := splitPair(pair); ok {
			if state, ok := strings.CutPrefix(name, prefix); ok && state != "" {
				out = append(out, Login{State: state, Value: value})
			}
		}
		if cut {
			end++
		}
	}
	return out
}

// Scan reads header once for both Read and Upstream. It does not allocate.
func (p Policy) Scan(header string) Jar {
	j := Jar{header: header}
	var seenAccess, seenRefresh bool
	for rest, end := header, 0; rest != ""; {
		var pair string
		var cut bool
		pair, rest, cut = strings.Cut(rest, ";")
		end += len(pair)
		if !j.ours && p.ours(pairName(trimOWS(pair))) {
			j.ours = true
		}
		// Only whole pairs within the first MaxHeaderBytes carry values.
		if end <= MaxHeaderBytes {
			if name, value, ok := splitPair(pair); ok {
				// Not "else if": should Access and Refresh share a name
				// (Validate forbids it), both see the cookie rather than
				// one silently.
				if name == p.Access {
					j.Access, j.AccessDup = keepFirst(j.Access, value, &seenAccess, j.AccessDup)
				}
				if name == p.Refresh {
					j.Refresh, j.RefreshDup = keepFirst(j.Refresh, value, &seenRefresh, j.RefreshDup)
				}
				if j.login == 0 && strings.HasPrefix(name, p.LoginPrefix()) && len(name) > len(p.LoginPrefix()) {
					j.login = 1 + end - len(pair)
				}
			}
		} else if j.ours {
			break // past the values, and ours is already known
		}
		if cut {
			end++
		}
	}
	return j
}

// keepFirst records one occurrence of a cookie: the first value wins, any
// further occurrence marks the cookie duplicated.
func keepFirst(cur, value string, seen *bool, dup bool) (string, bool) {
	if *seen {
		return cur, true
	}
	*seen = true
	return value, dup
}

// Upstream returns the scanned header without every pair named exactly
// Access, Refresh or Hint, and whether it removed any. It is what the
// upstream sees, so it covers the whole header, not only MaxHeaderBytes. A
// pair without "=" is matched on its whole text, since some server parsers
// (net/http among them) read "x" as a cookie named x.
//
// When nothing is removed, the header is returned unchanged and nothing is
// allocated. Otherwise the kept pairs, trimmed, are joined with "; " (empty
// pairs dropped), and rest is "" when nothing remains, so the caller can
// remove the header instead.
//
// Upstream splits on ";" only, as browsers join cookies (RFC 6265 §5.4). An
// upstream that also splits on "," (RFC 2965) could find a pair hidden inside
// another cookie's value; only the client itself can put one there.
func (p Policy) Upstream(j Jar) (rest string, removed bool) {
	if !j.ours {
		return j.header, false
	}
	var b strings.Builder
	b.Grow(len(j.header))
	for h := j.header; h != ""; {
		var pair string
		pair, h, _ = strings.Cut(h, ";")
		pair = trimOWS(pair)
		if pair == "" || p.ours(pairName(pair)) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(pair)
	}
	return b.String(), true
}

// ours reports whether name is exactly one of our three names, or a login
// flow's. The empty name is never ours, even when a Policy field is empty.
func (p Policy) ours(name string) bool {
	return name != "" && (name == p.Access || name == p.Refresh || name == p.Hint || strings.HasPrefix(name, p.LoginPrefix()))
}

// LoginPrefix starts the name of a login flow's cookie, which ends with the
// flow's state: one cookie per flow, so that several tabs logging in at
// once each find their own. __Host- whenever the cookies are Secure: a
// flow cookie is always host-only with Path=/, whatever Domain the session
// cookies use, since the provider sends the browser back to the host that
// started the flow.
func (p Policy) LoginPrefix() string {
	if p.Secure {
		return "__Host-sa-login-"
	}
	return "sa-login-"
}

// SetLogin returns the Set-Cookie value of a login flow's cookie: HttpOnly,
// host-only, Path=/, for ttl, and SameSite=Lax whatever the session
// cookies use, because the browser comes back from the provider with a
// top-level cross-site navigation, which Strict would strip it from.
func (p Policy) SetLogin(state, value string, ttl time.Duration) string {
	return p.write(p.LoginPrefix()+state, value, int64(ttl/time.Second), true, "", "/", http.SameSiteLaxMode)
}

// ClearLogin returns the Set-Cookie value that deletes the login flow's
// cookie of state.
func (p Policy) ClearLogin(state string) string {
	return p.write(p.LoginPrefix()+state, "", 0, true, "", "/", http.SameSiteLaxMode)
}

// pairName is the trimmed text before the first "=", or the whole pair.
func pairName(pair string) string {
	name, _, _ := strings.Cut(pair, "=")
	return trimOWS(name)
}

// splitPair splits one cookie-pair into a trimmed name and a trimmed,
// unquoted value. ok is false for pairs without "=" or with an empty name.
func splitPair(pair string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(pair, "=")
	name = trimOWS(name)
	if !ok || name == "" {
		return "", "", false
	}
	value = trimOWS(value)
	if len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
		value = value[1 : len(value)-1]
	}
	return name, value, true
}

// trimOWS trims white space. It is wider than RFC 9110's OWS (SP, HTAB) on
// purpose: an upstream parser that trims CR, LF, VT, FF or Unicode spaces
// (strings.TrimSpace does) must not find our name where we did not.
func trimOWS(s string) string {
	return strings.TrimSpace(s)
}

// SetAccess returns the Set-Cookie value carrying the access token until
// expires: "Name=token; Path=/; Max-Age=N; HttpOnly; Secure; SameSite=Lax",
// with "; Domain=…" after Path when Domain is set and Secure only when set.
//
// Max-Age is the ceiling of the seconds from now until expires: at least 1
// when expires is in the future, 0 (delete) when it is not, never negative.
// No Expires attribute: Max-Age takes precedence (RFC 6265 §4.1.2.2), every
// browser we serve supports it, and being relative it is immune to a client
// whose clock is wrong; only pre-2011 clients (IE 8) ignore it.
//
// token must be cookie-octets (see ValidValue); silentauth passes only JWTs
// and base64url. A token that is not is never emitted: SetAccess returns the
// deletion value instead, so a bug logs the user out rather than splitting a
// header or injecting attributes.
func (p Policy) SetAccess(token string, expires time.Time, now time.Time) string {
	return p.set(p.Access, token, maxAge(expires, now), true)
}

// SetRefresh is SetAccess for the refresh token; expires is the session's
// absolute end, so the cookie's Max-Age never grows with rotation (the idle
// end is enforced by the store).
func (p Policy) SetRefresh(token string, expires time.Time, now time.Time) string {
	return p.set(p.Refresh, token, maxAge(expires, now), true)
}

// SetHint returns the Set-Cookie value of the expiry hint: HintValue(accessExp,
// sessionEnd), living until sessionEnd, with the attributes of SetAccess but
// without HttpOnly, since page script is its reader. It carries no secret.
func (p Policy) SetHint(accessExp, sessionEnd time.Time, now time.Time) string {
	return p.set(p.Hint, HintValue(accessExp, sessionEnd), maxAge(sessionEnd, now), false)
}

// SetSession returns the three Set-Cookie values that carry a session's
// state whenever it starts or rotates, in the order access, refresh, hint:
// the access token until accessExp, the refresh token until the session's
// absolute end (its Max-Age never grows with rotation), and the hint until
// sessionEnd, when the session ends if unused.
func (p Policy) SetSession(access string, accessExp time.Time, refresh string, absoluteEnd, sessionEnd, now time.Time) []string {
	return []string{
		p.SetAccess(access, accessExp, now),
		p.SetRefresh(refresh, absoluteEnd, now),
		p.SetHint(accessExp, sessionEnd, now),
	}
}

// Clear returns three Set-Cookie values, access, refresh and hint, that delete
// our cookies: empty values, Max-Age=0, and otherwise the attributes they were
// set with, since a browser deletes only the cookie whose name, Domain and
// Path match (RFC 6265 §5.3 step 11). Each must be its own Set-Cookie header
// field: they cannot be folded into one (RFC 6265 §3).
func (p Policy) Clear() []string {
	return []string{
		p.set(p.Access, "", 0, true),
		p.set(p.Refresh, "", 0, true),
		p.set(p.Hint, "", 0, false),
	}
}

// HintValue is the hint cookie's value, "at=1700000000&rt=1700009999": the
// access token's expiry and the session's end in Unix seconds, a query string
// that URLSearchParams and url.ParseQuery read.
func HintValue(accessExp, sessionEnd time.Time) string {
	return "at=" + strconv.FormatInt(accessExp.Unix(), 10) +
		"&rt=" + strconv.FormatInt(sessionEnd.Unix(), 10)
}

// ValidValue reports whether v is a cookie-value made of cookie-octets
// (RFC 6265 §4.1.1): printable US-ASCII except space, DQUOTE, comma,
// semicolon and backslash. The empty value is valid.
func ValidValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isCookieOctet(v[i]) {
			return false
		}
	}
	return true
}

func isCookieOctet(c byte) bool {
	return c >= 0x21 && c <= 0x7e && c != '"' && c != ',' && c != ';' && c != '\\'
}

// set builds one Set-Cookie value by hand rather than with http.Cookie's
// String, which silently drops invalid bytes, quotes values holding a space
// or comma, and reports problems through the global log package.
func (p Policy) set(name, value string, age int64, httpOnly bool) string {
	return p.write(name, value, age, httpOnly, p.Domain, p.path(), p.SameSite)
}

// write is set with the Domain, Path and SameSite given.
func (p Policy) write(name, value string, age int64, httpOnly bool, domain, path string, site http.SameSite) string {
	if !ValidValue(value) {
		value, age = "", 0
	}
	var b strings.Builder
	b.Grow(len(name) + len(value) + len(domain) + len(path) + 80)
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteString("; Path=")
	b.WriteString(path)
	if domain != "" {
		b.WriteString("; Domain=")
		b.WriteString(domain)
	}
	b.WriteString("; Max-Age=")
	b.WriteString(strconv.FormatInt(age, 10))
	if httpOnly {
		b.WriteString("; HttpOnly")
	}
	if p.Secure {
		b.WriteString("; Secure")
	}
	b.WriteString("; SameSite=")
	b.WriteString(sameSite(site))
	return b.String()
}

func (p Policy) path() string {
	if p.Path == "" {
		return "/"
	}
	return p.Path
}

// sameSite names the attribute value. We never omit SameSite: browsers
// disagree on the default (Chrome Lax, others None), so we say Lax.
func sameSite(s http.SameSite) string {
	switch s {
	case http.SameSiteStrictMode:
		return "Strict"
	case http.SameSiteNoneMode:
		return "None"
	default:
		return "Lax"
	}
}

// maxAge is the ceiling of the whole seconds from now until expires, and 0
// when expires is not after now: a negative Max-Age is legal but pointless,
// and 0 is the one every browser reads as "delete now".
func maxAge(expires, now time.Time) int64 {
	d := expires.Sub(now) // saturates rather than overflows
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// Sentinel errors wrapped by the problems Validate reports.
var (
	ErrName     = errors.New("cookie: invalid cookie name")              // empty or not an RFC 6265 token
	ErrSameName = errors.New("cookie: two cookies share a name")         // also when they differ only in case
	ErrPrefix   = errors.New("cookie: name prefix rules not met")        // __Host-, __Secure-
	ErrInsecure = errors.New("cookie: SameSite=None requires Secure")    // RFC 6265bis storage model; browsers drop it
	ErrAttr     = errors.New("cookie: invalid Path, Domain or SameSite") // would corrupt Set-Cookie
)

const (
	hostPrefix   = "__Host-"
	securePrefix = "__Secure-"
)

// problem is one finding of Validate: "path.field: message", wrapping one
// of the sentinels above.
type problem struct {
	text string
	kind error
}

func (p *problem) Error() string { return p.text }
func (p *problem) Unwrap() error { return p.kind }

// Validate reports every problem of the policy at once (errors.Join), each
// prefixed by its field's YAML path under path (as "cookies.access") and
// wrapping one of the sentinels above: names must be distinct RFC 6265
// tokens, not only differing in case; __Host- names need Secure, Path "/"
// and no Domain, __Secure- names need Secure (RFC 6265bis §4.1.3, prefixes
// matched case-insensitively as browsers now do, and required in their
// canonical spelling so that older browsers enforce them too); SameSite=None
// needs Secure; Path must start with "/" and, like Domain, hold nothing
// that would inject attributes into Set-Cookie. It does not change p.
func (p Policy) Validate(path string) error {
	var errs []error
	add := func(kind error, field, format string, args ...any) {
		errs = append(errs, &problem{text: path + "." + field + ": " + fmt.Sprintf(format, args...), kind: kind})
	}
	names := []struct{ field, name string }{{"access", p.Access}, {"refresh", p.Refresh}, {"hint", p.Hint}}
	var withHost, withSecure []string // paths of names with each prefix
	for i, n := range names {
		if n.name == "" {
			add(ErrName, n.field, "must not be empty")
			continue
		}
		if !validName(n.name) {
			add(ErrName, n.field, "%q is not a valid cookie name (RFC 6265: token characters only)", n.name)
			continue
		}
		if strings.HasPrefix(strings.ToLower(n.name), strings.ToLower(p.LoginPrefix())) {
			add(ErrSameName, n.field, "%q starts like the login flows' cookies (%s<state>)", n.name, p.LoginPrefix())
		}
		for _, m := range names[:i] {
			switch {
			case m.name == n.name:
				add(ErrSameName, n.field, "same name as %s.%s (%q)", path, m.field, m.name)
			case strings.EqualFold(m.name, n.name):
				add(ErrSameName, n.field, "%q differs from %s.%s (%q) only in case; some proxies and frameworks fold cookie names", n.name, path, m.field, m.name)
			}
		}
		for _, pre := range []string{hostPrefix, securePrefix} {
			if len(n.name) >= len(pre) && strings.EqualFold(n.name[:len(pre)], pre) {
				if n.name[:len(pre)] != pre {
					add(ErrPrefix, n.field, "write the prefix of %q as %q; older browsers match it case-sensitively", n.name, pre)
				}
				if pre == hostPrefix {
					withHost = append(withHost, path+"."+n.field)
				} else {
					withSecure = append(withSecure, path+"."+n.field)
				}
			}
		}
	}
	// RFC 6265bis §4.1.3.2: __Host- cookies are Secure, Path=/, no Domain.
	if len(withHost) > 0 {
		which := strings.Join(withHost, ", ")
		if !p.Secure {
			add(ErrPrefix, "secure", "must be true with the __Host- prefix (%s)", which)
		}
		if p.Path != "/" {
			add(ErrPrefix, "path", "must be \"/\" with the __Host- prefix (%s)", which)
		}
		if p.Domain != "" {
			add(ErrPrefix, "domain", "must be empty with the __Host- prefix (%s)", which)
		}
	}
	// RFC 6265bis §4.1.3.1: __Secure- cookies are Secure.
	if len(withSecure) > 0 && !p.Secure {
		add(ErrPrefix, "secure", "must be true with the __Secure- prefix (%s)", strings.Join(withSecure, ", "))
	}
	if p.SameSite < 0 || p.SameSite > http.SameSiteNoneMode {
		add(ErrAttr, "sameSite", "must be Lax, Strict or None (got %d)", p.SameSite)
	}
	if p.SameSite == http.SameSiteNoneMode && !p.Secure {
		add(ErrInsecure, "secure", "must be true with %s.sameSite None (browsers reject SameSite=None without Secure)", path)
	}
	switch {
	case !strings.HasPrefix(p.Path, "/"):
		add(ErrAttr, "path", "must start with \"/\" (got %q)", p.Path)
	case strings.ContainsFunc(p.Path, func(r rune) bool { return r == ';' || r < 0x20 || r == 0x7f }):
		// A ";" would inject attributes into Set-Cookie.
		add(ErrAttr, "path", "must not contain \";\" or control characters (got %q)", p.Path)
	}
	if p.Domain != "" && !isDomain(p.Domain) {
		add(ErrAttr, "domain", "%q is not a host name such as example.com", p.Domain)
	}
	return errors.Join(errs...)
}

// isDomain reports whether s is a plausible cookie Domain: letters, digits,
// '-' and '.', an optional leading '.', no empty labels and no port. It keeps
// ';' and spaces out of Set-Cookie.
func isDomain(s string) bool {
	s = strings.TrimPrefix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-') {
				return false
			}
		}
	}
	return true
}

// validName reports whether name is an RFC 6265 §4.1.1 cookie-name: a token
// (RFC 9110 §5.6.2), so non-empty and free of separators and controls.
func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}`, c) >= 0 {
			return false
		}
	}
	return true
}
