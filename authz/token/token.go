// Package token mints and verifies silentauth's access tokens: JWTs with
// header typ "at+jwt" (RFC 9068), signed by the keyring's active key, and
// verified with the algorithm pinned to the key named by kid (RFC 8725 §3.1).
//
// Verification failures are reported as the sentinel errors below, so the
// caller can map each to a precise deny reason. Minter and Verifier are safe
// for concurrent use.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/strictjson"
)

// Sentinel errors returned (possibly wrapped) by Verify and Mint.
//
// Verify returns exactly one of these, unwrapped: an error string never
// carries any part of the token.
var (
	ErrTooLarge      = errors.New("token: larger than the size cap")
	ErrMalformed     = errors.New("token: malformed")                           // segments, base64, JSON, a member named twice
	ErrHeader        = errors.New("token: forbidden header")                    // crit, jku, x5u, jwk, x5c
	ErrType          = errors.New("token: typ is not at+jwt")                   // RFC 9068 §4
	ErrAlgorithm     = errors.New("token: algorithm not allowed for this key")  // none, HS*, mismatch
	ErrUnknownKey    = errors.New("token: unknown kid")                         // missing, hostile or removed kid
	ErrSignature     = errors.New("token: signature invalid")                   //
	ErrExpired       = errors.New("token: expired")                             // exp + leeway passed
	ErrNotYetValid   = errors.New("token: not yet valid")                       // nbf or iat in the future beyond leeway
	ErrIssuer        = errors.New("token: wrong issuer")                        //
	ErrAudience      = errors.New("token: wrong audience")                      //
	ErrMissingClaim  = errors.New("token: required claim missing or malformed") // exp, iat, sub, sid, jti
	ErrNoKeyring     = errors.New("token: no keyring loaded")                   // before the first keyring
	ErrReservedClaim = errors.New("token: claim name is reserved")              // Mint refuses overriding iss, sub, exp…
)

// typ is the JWT header type of an access token (RFC 9068 §2.1).
const typ = "at+jwt"

const (
	defaultMaxTokenBytes = 8192
	defaultCacheSize     = 10000
)

// Claims is the verified content of an access token.
//
// A Claims returned by Verify may be shared with other callers (it can come
// from the cache): treat it, including Extra and Audience, as read-only.
type Claims struct {
	// The fields a cache hit reads come first, so that they share a cache
	// line.
	ExpiresAt time.Time
	Subject   string
	SessionID string      // sid: the refresh-token family that minted it
	texts     []claimText // Extra rendered as text, when Verify made c

	Issuer    string
	Audience  []string
	IssuedAt  time.Time
	NotBefore time.Time // zero when absent
	ID        string    // jti
	KeyID     string    // kid of the verifying key
	// Extra holds the session's own claims, nil when there are none, as
	// JSON values whose numbers are json.Number: the digits as signed.
	Extra map[string]any
}

// claimText is one claim of Extra rendered by RenderClaim.
type claimText struct{ name, text string }

// Text returns claim name rendered by RenderClaim, and whether c holds it
// (sub, sid, iss, jti, exp or one of Extra). Claims made by Verify hold
// Extra already rendered, so this costs no allocation.
func (c *Claims) Text(name string) (string, bool) {
	switch name {
	case "sub":
		return c.Subject, c.Subject != ""
	case "sid":
		return c.SessionID, c.SessionID != ""
	case "iss":
		return c.Issuer, c.Issuer != ""
	case "jti":
		return c.ID, c.ID != ""
	case "exp":
		return strconv.FormatInt(c.ExpiresAt.Unix(), 10), true
	}
	if c.texts != nil {
		for _, t := range c.texts {
			if t.name == name {
				return t.text, true
			}
		}
		return "", false
	}
	v, ok := c.Extra[name]
	if !ok {
		return "", false
	}
	return RenderClaim(v)
}

// RenderClaim renders a claim value as text: strings as they are, a
// json.Number as its own digits (so 1541815603606036481 stays that, not a
// float64's 1541815603606036500), other numbers and booleans in decimal,
// anything else as compact JSON. It reports false for a value JSON cannot
// encode.
func RenderClaim(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return string(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(x), true
	default:
		b, err := json.Marshal(x)
		return string(b), err == nil
	}
}

// compact renders c.Extra into c.texts and moves Subject, SessionID and
// every rendered name and text into one string, so that a cached token's
// hot text is one contiguous block of memory rather than many small ones.
// A claim JSON cannot render is left out of texts (Text reports it absent,
// as it would when rendering it).
func (c *Claims) compact() {
	var b strings.Builder
	n := len(c.Subject) + len(c.SessionID)
	texts := make([]claimText, 0, len(c.Extra))
	for name, v := range c.Extra {
		if t, ok := RenderClaim(v); ok {
			texts = append(texts, claimText{name, t})
			n += len(name) + len(t)
		}
	}
	b.Grow(n)
	b.WriteString(c.Subject)
	b.WriteString(c.SessionID)
	for _, t := range texts {
		b.WriteString(t.name)
		b.WriteString(t.text)
	}
	block, at := b.String(), 0
	take := func(n int) string { s := block[at : at+n]; at += n; return s }
	c.Subject = take(len(c.Subject))
	c.SessionID = take(len(c.SessionID))
	for i := range texts {
		texts[i] = claimText{take(len(texts[i].name)), take(len(texts[i].text))}
	}
	c.texts = texts
}

// ExpiresWithin reports whether the token expires within d of now.
func (c *Claims) ExpiresWithin(now time.Time, d time.Duration) bool {
	return !c.ExpiresAt.After(now.Add(d))
}

// Reserved reports whether name is a claim the minter sets itself or that
// carries authorization meaning elsewhere, so a session may not supply it:
// the RFC 7519 §4.1 registered claims iss, sub, aud, exp, nbf, iat, jti;
// our sid; typ; cnf (RFC 7800, proof of possession); and the RFC 9068 §2.2
// claims client_id, auth_time, acr, amr and scope. Names are case-sensitive
// (RFC 7519 §4), so "ISS" is not reserved.
func Reserved(name string) bool {
	switch name {
	case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid",
		"typ", "cnf", "client_id", "auth_time", "acr", "amr", "scope":
		return true
	}
	return false
}

// Minter signs access tokens.
type Minter struct {
	issuer   string
	audience string
	ttl      time.Duration
	keys     keys.Source
	now      func() time.Time
}

// MinterOptions configure a Minter.
type MinterOptions struct {
	Issuer   string
	Audience string
	TTL      time.Duration
	Keys     keys.Source
	Now      func() time.Time // default time.Now
}

// NewMinter returns a Minter.
func NewMinter(o MinterOptions) *Minter {
	m := &Minter{issuer: o.Issuer, audience: o.Audience, ttl: o.TTL, keys: o.Keys, now: o.Now}
	if m.now == nil {
		m.now = time.Now
	}
	return m
}

// Ready reports whether a keyring is loaded, so Mint can sign. Callers
// check it before a step that cannot be undone, such as a rotation.
func (m *Minter) Ready() bool { return m.keys.Keyring() != nil }

// Mint signs a token for subject in session sid carrying extra claims.
// A json.Number in extra is written as its own digits, so claims decoded
// from a token, a store or the session API are signed exactly as they came.
// It returns ErrReservedClaim if extra names a reserved claim, ErrMissingClaim
// if subject or sid is empty (Verify would refuse the token) and
// ErrNoKeyring before the first keyring. exp is the token's exp claim,
// whole seconds.
//
// The header is {alg, kid, typ: "at+jwt"}; the claims are iss, sub, aud (one
// string), exp, iat, jti (16 random bytes, base64url), sid and extra.
func (m *Minter) Mint(subject, sid string, extra map[string]any) (raw string, exp time.Time, err error) {
	for name := range extra {
		if Reserved(name) {
			return "", time.Time{}, fmt.Errorf("%w: %q", ErrReservedClaim, name)
		}
	}
	if subject == "" || sid == "" {
		return "", time.Time{}, fmt.Errorf("%w: empty sub or sid", ErrMissingClaim)
	}
	var ring *keys.Keyring
	if m.keys != nil {
		ring = m.keys.Keyring()
	}
	if ring == nil {
		return "", time.Time{}, ErrNoKeyring
	}
	now := m.now()
	key := ring.Signer(now)
	method := jwt.GetSigningMethod(string(key.Alg))
	if method == nil {
		return "", time.Time{}, fmt.Errorf("token: no signing method for %s", key.Alg)
	}

	var jti [16]byte
	rand.Read(jti[:]) // never fails (crypto/rand, Go 1.24+)
	exp = time.Unix(now.Add(m.ttl).Unix(), 0)

	claims := make(jwt.MapClaims, len(extra)+7)
	maps.Copy(claims, extra)
	claims["iss"] = m.issuer
	claims["sub"] = subject
	claims["aud"] = m.audience // a single string, as RFC 7519 §4.1.3 allows
	claims["exp"] = exp.Unix()
	claims["iat"] = now.Unix()
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti[:])
	claims["sid"] = sid

	t := jwt.NewWithClaims(method, claims)
	t.Header["typ"] = typ
	t.Header["kid"] = key.ID
	// golang-jwt encodes ES256 as the 64-byte R||S of RFC 7518 §3.4, not ASN.1.
	raw, err = t.SignedString(key.Signer)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign with key %s: %w", key.ID, err)
	}
	return raw, exp, nil
}

// Verifier checks access tokens, remembering recently verified ones.
type Verifier struct {
	issuer    string
	audiences []string
	leeway    time.Duration
	keys      keys.Source
	now       func() time.Time
	maxBytes  int
	cache     *cache
	validator *jwt.Validator // golang-jwt's claim checks: exp, iat, nbf, iss, aud
}

// VerifierOptions configure a Verifier.
//
// An empty Issuer or Audiences makes every token fail (ErrIssuer or
// ErrAudience): the checks fail closed rather than being skipped.
type VerifierOptions struct {
	Issuer        string
	Audiences     []string // the token's aud must contain one of these
	Leeway        time.Duration
	Keys          keys.Source
	Now           func() time.Time // default time.Now
	MaxTokenBytes int              // default 8192; larger tokens get ErrTooLarge before parsing
	CacheSize     int              // verified-token cache entries; default 10000; 0 < n
}

// NewVerifier returns a Verifier. MaxTokenBytes and CacheSize below 1 take
// their defaults.
func NewVerifier(o VerifierOptions) *Verifier {
	v := &Verifier{
		issuer:    o.Issuer,
		audiences: slices.Clone(o.Audiences),
		leeway:    o.Leeway,
		keys:      o.Keys,
		now:       o.Now,
		maxBytes:  o.MaxTokenBytes,
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.maxBytes < 1 {
		v.maxBytes = defaultMaxTokenBytes
	}
	size := o.CacheSize
	if size < 1 {
		size = defaultCacheSize
	}
	v.cache = newCache(size)
	v.validator = jwt.NewValidator(
		jwt.WithIssuer(v.issuer),
		jwt.WithAudience(v.audiences...),
		jwt.WithLeeway(v.leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(v.now),
	)
	return v
}

// ExpiredUnverified reports whether raw's exp, read WITHOUT checking the
// signature, has passed (with leeway). It lets a caller that will refresh
// whatever is wrong with the token skip the cost of verifying one that is
// expired anyway; it must never be used to accept a token. Anything it
// cannot read counts as not expired.
func (v *Verifier) ExpiredUnverified(raw string) bool {
	if len(raw) > v.maxBytes {
		return false
	}
	_, rest, ok := strings.Cut(raw, ".")
	payload, _, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || len(payload) > base64.RawURLEncoding.EncodedLen(v.maxBytes) {
		return false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return false
	}
	var c struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(b, &c) != nil || c.Exp == nil {
		return false
	}
	return !v.now().Before(time.Unix(int64(*c.Exp), 0).Add(v.leeway))
}

// Verify checks raw and returns its claims. A repeat of a token verified
// under the same keyring is answered from a cache keyed by the token's
// SHA-256, never past the token's exp (plus leeway); a keyring change
// empties the cache. The returned Claims may be shared: do not modify it.
//
// The error is exactly one of the package's sentinels.
func (v *Verifier) Verify(raw string) (*Claims, error) {
	// Cheap rejections first: size, then the cache, then the shape.
	if len(raw) > v.maxBytes {
		return nil, ErrTooLarge
	}
	var ring *keys.Keyring
	if v.keys != nil {
		ring = v.keys.Keyring()
	}
	if ring == nil {
		return nil, ErrNoKeyring
	}
	now := v.now()
	sum := hash(raw)
	if c, ok := v.cache.get(sum, ring, now); ok {
		return c, nil
	}
	if !threeSegments(raw) {
		return nil, ErrMalformed
	}
	c, err := v.verify(raw, ring, now)
	if err != nil {
		return nil, err
	}
	v.cache.put(sum, ring, c, c.ExpiresAt.Add(v.leeway))
	return c, nil
}

// hash returns the SHA-256 of raw, the cache key. A collision-resistant
// hash, so no token can be crafted to answer for another. Typical tokens are
// hashed from a stack copy, sparing the hot path a heap allocation.
func hash(raw string) [32]byte {
	var buf [2048]byte
	if len(raw) <= len(buf) {
		return sha256.Sum256(buf[:copy(buf[:], raw)])
	}
	return sha256.Sum256([]byte(raw))
}

// threeSegments reports whether raw is three non-empty dot-separated parts
// (RFC 7515 §7.1, compact serialization).
func threeSegments(raw string) bool {
	h, rest, ok := strings.Cut(raw, ".")
	if !ok || h == "" {
		return false
	}
	p, sig, ok := strings.Cut(rest, ".")
	return ok && p != "" && sig != "" && !strings.Contains(sig, ".")
}

// forbiddenHeaders are refused outright. crit names extensions we would have
// to understand (RFC 7515 §4.1.11); jku and x5u make the verifier fetch a
// URL (SSRF); jwk and x5c embed the key to verify with, so the token vouches
// for itself (CVE-2018-0114).
var forbiddenHeaders = [...]string{"crit", "jku", "x5u", "jwk", "x5c"}

// segment is base64url without padding, strictly: one encoding per token
// (RFC 7515 §2), so no two spellings of a token share a signature.
var segment = base64.RawURLEncoding.Strict()

// verify checks a token the cache does not know. It authenticates before it
// interprets: the header is read to find the key, the signature is checked
// with golang-jwt's method for the key's algorithm, and only then are the
// claims decoded and validated (by golang-jwt's Validator). A forged token
// costs a header decode and one signature check, and its claims are never
// parsed.
func (v *Verifier) verify(raw string, ring *keys.Keyring, now time.Time) (*Claims, error) {
	h, rest, _ := strings.Cut(raw, ".") // three segments, checked by Verify
	p, s, _ := strings.Cut(rest, ".")
	header, err := decodeHeader(h)
	if err != nil {
		return nil, ErrMalformed
	}
	payload, err := segment.DecodeString(p)
	if err != nil {
		return nil, ErrMalformed
	}
	sig, err := segment.DecodeString(s)
	if err != nil {
		return nil, ErrMalformed
	}
	key, err := pickKey(header, ring, now)
	if err != nil {
		return nil, err
	}
	method := jwt.GetSigningMethod(string(key.Alg))
	if method == nil || method.Verify(raw[:len(h)+1+len(p)], sig, key.Public) != nil {
		return nil, ErrSignature
	}

	// RFC 7519 §4: claim names are unique; a token naming one twice is
	// refused rather than read as the last, since an upstream reading the
	// forwarded token as the first would see another user. Numbers stay
	// json.Number, so Extra carries the digits that were signed.
	mc := make(jwt.MapClaims, 10)
	if err := strictjson.Unmarshal(payload, &mc); err != nil {
		return nil, ErrMalformed
	}
	if err := timesAsFloats(mc); err != nil {
		return nil, err
	}
	if err := v.validator.Validate(mc); err != nil {
		return nil, claimError(err)
	}
	// golang-jwt skips the iss and aud checks when none is expected; we fail
	// closed instead.
	if iss, _ := mc["iss"].(string); v.issuer == "" || iss != v.issuer {
		return nil, ErrIssuer
	}
	if len(v.audiences) == 0 {
		return nil, ErrAudience
	}
	exp, _ := mc.GetExpirationTime() // required, so non-nil here
	iat, _ := mc.GetIssuedAt()
	nbf, _ := mc.GetNotBefore()
	aud, _ := mc.GetAudience()
	sub, _ := mc["sub"].(string)
	sid, _ := mc["sid"].(string)
	jti, _ := mc["jti"].(string)
	if exp == nil || iat == nil || sub == "" || sid == "" || jti == "" {
		return nil, ErrMissingClaim
	}
	c := &Claims{
		Subject:   sub,
		Issuer:    v.issuer,
		Audience:  v.shareAudience(aud),
		ExpiresAt: exp.Time,
		IssuedAt:  iat.Time,
		ID:        jti,
		SessionID: sid,
		KeyID:     key.ID,
	}
	if nbf != nil {
		c.NotBefore = nbf.Time
	}
	c.Extra = extraClaims(mc)
	c.compact()
	return c, nil
}

// timesAsFloats turns exp, iat and nbf from json.Number into the float64
// golang-jwt's Validator reads. One beyond float64's range (1e400) is
// refused as malformed: golang-jwt would read it as +Inf seconds, a time
// Go cannot hold, and make up some other time from it.
func timesAsFloats(mc jwt.MapClaims) error {
	for _, name := range [...]string{"exp", "iat", "nbf"} {
		if n, ok := mc[name].(json.Number); ok {
			f, err := strconv.ParseFloat(string(n), 64)
			if err != nil {
				return ErrMissingClaim
			}
			mc[name] = f
		}
	}
	return nil
}

// pickKey applies the header's rules and returns the key to verify with.
func pickKey(header map[string]any, ring *keys.Keyring, now time.Time) (*keys.Key, error) {
	kid, _ := header["kid"].(string)
	// RFC 8725 §3.1: the key decides the algorithm, never the token. An
	// algorithm no key uses (none, HS*, one retired with its keys) is
	// refused before anything else, except that a kid the ring does not
	// know is reported as such, so a token signed by a removed key reads as
	// rotation, not as an attack.
	alg, _ := header["alg"].(string)
	if jwt.GetSigningMethod(alg) == nil {
		return nil, ErrAlgorithm // missing, not a string, or unknown to golang-jwt
	}
	if !ring.HasAlg(alg) {
		if !known(ring, kid, now) {
			return nil, ErrUnknownKey
		}
		return nil, ErrAlgorithm
	}
	// RFC 9068 §4: the typ must be at+jwt; "application/" may be prefixed
	// and media types compare case-insensitively (RFC 7515 §4.1.9).
	t, _ := header["typ"].(string)
	if !strings.EqualFold(t, typ) && !strings.EqualFold(t, "application/"+typ) {
		return nil, ErrType
	}
	for _, name := range forbiddenHeaders {
		if _, ok := header[name]; ok {
			return nil, ErrHeader
		}
	}
	key, ok := ring.Lookup(kid, now)
	if !ok {
		return nil, ErrUnknownKey
	}
	if alg != string(key.Alg) { // an ES256 header on an RS256 key
		return nil, ErrAlgorithm
	}
	return key, nil
}

// decodeHeader decodes a JOSE header segment into a map, so that header
// names compare exactly as RFC 7515 §4 says (case-sensitively), and
// refuses a header naming a parameter twice, at any depth (RFC 7515 §4:
// names must be unique): two algs or kids would let us and another JOSE
// library pick different keys for the same token.
func decodeHeader(seg string) (map[string]any, error) {
	b, err := segment.DecodeString(seg)
	if err != nil {
		return nil, err
	}
	var header map[string]any
	err = strictjson.Unmarshal(b, &header)
	return header, err
}

// shareAudience returns aud, or the Verifier's own copy when aud is exactly
// one of the configured audiences, so cached tokens share one slice.
func (v *Verifier) shareAudience(aud jwt.ClaimStrings) []string {
	if len(aud) == 1 {
		for i, a := range v.audiences {
			if a == aud[0] {
				return v.audiences[i : i+1 : i+1]
			}
		}
	}
	return []string(aud)
}

// extraClaims returns the claims of mc that are not registered ones, in a
// map of their own size (it may live in the cache), or nil.
func extraClaims(mc jwt.MapClaims) map[string]any {
	n := 0
	for name := range mc {
		if !registered(name) {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	extra := make(map[string]any, n)
	for name, val := range mc {
		if !registered(name) {
			extra[name] = val
		}
	}
	return extra
}

// registered reports whether name is a claim Verify returns in its own field.
func registered(name string) bool {
	switch name {
	case "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid":
		return true
	}
	return false
}

func known(ring *keys.Keyring, kid string, now time.Time) bool {
	_, ok := ring.Lookup(kid, now)
	return ok
}

// claimError turns the error of golang-jwt's Validator into exactly one of
// our sentinels, dropping its text. When several checks fail, the most
// basic problem wins: a malformed or mis-addressed token is reported as
// such even if it is also expired.
func claimError(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing), errors.Is(err, jwt.ErrInvalidType):
		return ErrMissingClaim
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	}
	return ErrMalformed
}
