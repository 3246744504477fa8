// Package keys holds silentauth's signing keys: parsing PEM private keys,
// binding each key to exactly one JWS algorithm (RFC 8725 §3.1), naming it by
// its RFC 7638 thumbprint, and publishing the public halves as a JWKS.
//
// Keys come from a directory (LoadDir: one key signs, the others verify,
// forever) or from a Kubernetes Secret (ParseSecret, NewSecretKeyring), whose
// annotations give each key a lifecycle — published before it signs, kept
// verifying after it retires until its tokens have expired, and refresh
// tokens derived from it until the sessions' idle TTL. The package
// reads the Secret's format only (its data and annotations as maps) and
// links no Kubernetes client: the watcher that keeps a Holder filled from
// the Secret is package kubesecret.
//
// A Keyring is immutable once built; a Holder swaps whole keyrings atomically
// so readers never lock. What depends on time (which key signs, verifies, is
// published) is asked with the time, so no timer is needed for correctness.
// All exported functions and methods are safe for concurrent use.
package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Alg is a JWS algorithm name. Each key is bound to exactly one.
type Alg string

// The algorithms silentauth signs and verifies with.
const (
	ES256 Alg = "ES256" // ECDSA P-256 with SHA-256
	EdDSA Alg = "EdDSA" // Ed25519
	RS256 Alg = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, modulus ≥ 2048 bits
)

// Sentinel errors, returned wrapped with a description of the problem that
// never quotes key material.
var (
	ErrUnsupportedKey = errors.New("keys: unsupported key")             // not P-256, Ed25519 or RSA ≥ 2048
	ErrInvalidPEM     = errors.New("keys: invalid PEM private key")     // size, block count, type, DER
	ErrDuplicateKID   = errors.New("keys: duplicate kid")               // two keys with one thumbprint
	ErrNoActiveKey    = errors.New("keys: no usable active key")        // missing, ambiguous or public-only
	ErrInvalidKey     = errors.New("keys: key fields are inconsistent") // hand-built Key whose ID/Alg/Public disagree
	ErrNoPrivateKey   = errors.New("keys: verification-only key")       // Secret needs the private key
)

// MaxPEMBytes bounds the input of ParsePEM and the size of each file LoadDir
// reads. An RSA-4096 PKCS#8 key is about 3.3 KiB.
const MaxPEMBytes = 64 << 10

// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3: "2048 bits
// or larger MUST be used").
const minRSABits = 2048

// Key is one signing key bound to one algorithm.
type Key struct {
	ID     string           // RFC 7638 JWK thumbprint, base64url without padding
	Alg    Alg              // the only algorithm this key signs or verifies
	Signer crypto.Signer    // private key; nil for a verification-only key
	Public crypto.PublicKey // *ecdsa.PublicKey, ed25519.PublicKey or *rsa.PublicKey
}

// Secret derives a 32-byte symmetric key for purpose from the private key
// (HKDF-SHA256 over its PKCS#8 encoding, salted with the kid), so that every
// replica holding the same Secret derives the same value and a key
// rotation rotates it too. Different purposes give unrelated keys. It
// returns ErrNoPrivateKey for a verification-only key.
func (k *Key) Secret(purpose string) ([]byte, error) {
	if k.Signer == nil {
		return nil, ErrNoPrivateKey
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedKey, err)
	}
	return hkdf.Key(sha256.New, der, []byte(k.ID), purpose, 32)
}

// NewKey binds a private key to its algorithm (P-256 → ES256, Ed25519 → EdDSA,
// RSA ≥ 2048 bits → RS256) and computes its kid. Other keys are refused with
// ErrUnsupportedKey.
func NewKey(priv crypto.Signer) (*Key, error) {
	if priv == nil {
		return nil, fmt.Errorf("%w: nil key", ErrUnsupportedKey)
	}
	pub := priv.Public()
	alg, err := algOf(pub)
	if err != nil {
		return nil, err
	}
	kid, err := thumbprint(pub)
	if err != nil {
		return nil, err
	}
	return &Key{ID: kid, Alg: alg, Signer: priv, Public: pub}, nil
}

// algOf returns the one algorithm a public key may be used with
// (RFC 8725 §3.1: each key is used with exactly one algorithm).
func algOf(pub crypto.PublicKey) (Alg, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		if p == nil || p.Curve != elliptic.P256() {
			name := "unknown curve"
			if p != nil && p.Curve != nil {
				name = p.Curve.Params().Name
			}
			return "", fmt.Errorf("%w: ECDSA on %s (only P-256)", ErrUnsupportedKey, name)
		}
		return ES256, nil
	case ed25519.PublicKey:
		if len(p) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrUnsupportedKey, len(p))
		}
		return EdDSA, nil
	case *rsa.PublicKey:
		if p == nil || p.N == nil {
			return "", fmt.Errorf("%w: empty RSA key", ErrUnsupportedKey)
		}
		if bits := p.N.BitLen(); bits < minRSABits {
			return "", fmt.Errorf("%w: RSA modulus of %d bits (RFC 7518 §3.3 requires ≥ %d)", ErrUnsupportedKey, bits, minRSABits)
		}
		return RS256, nil
	default:
		return "", fmt.Errorf("%w: key type %T", ErrUnsupportedKey, pub)
	}
}

// jwk is one public JSON Web Key (RFC 7517 §4, RFC 7518 §6). Field order is
// the output order, so equal keys marshal to equal bytes.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

var b64 = base64.RawURLEncoding

// publicJWK returns the required public members of pub's JWK. EC coordinates
// are full-length (RFC 7518 §6.2.1.2); RSA n and e carry no leading zeros
// (RFC 7518 §6.3.1).
func publicJWK(pub crypto.PublicKey) (jwk, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		pt, err := p.Bytes() // 0x04 || X || Y
		if err != nil || len(pt) != 65 {
			return jwk{}, fmt.Errorf("%w: invalid P-256 point", ErrUnsupportedKey)
		}
		return jwk{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(pt[1:33]), Y: b64.EncodeToString(pt[33:])}, nil
	case ed25519.PublicKey:
		return jwk{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(p)}, nil
	case *rsa.PublicKey:
		e := big.NewInt(int64(p.E)).Bytes()
		return jwk{Kty: "RSA", N: b64.EncodeToString(p.N.Bytes()), E: b64.EncodeToString(e)}, nil
	default:
		return jwk{}, fmt.Errorf("%w: key type %T", ErrUnsupportedKey, pub)
	}
}

// thumbprint computes the RFC 7638 SHA-256 JWK thumbprint: the required
// members only, in lexicographic order, no whitespace (§3.2, §3.3). All
// values are base64url or fixed names, so no JSON escaping is needed.
func thumbprint(pub crypto.PublicKey) (string, error) {
	j, err := publicJWK(pub)
	if err != nil {
		return "", err
	}
	var canon string
	switch j.Kty {
	case "EC":
		canon = `{"crv":"` + j.Crv + `","kty":"EC","x":"` + j.X + `","y":"` + j.Y + `"}`
	case "OKP": // RFC 8037 §2
		canon = `{"crv":"` + j.Crv + `","kty":"OKP","x":"` + j.X + `"}`
	case "RSA":
		canon = `{"e":"` + j.E + `","kty":"RSA","n":"` + j.N + `"}`
	}
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:]), nil
}

// ParsePEM parses one PEM private key (PKCS#8, SEC1 "EC PRIVATE KEY" or
// PKCS#1 "RSA PRIVATE KEY") into a Key. Input is bounded by MaxPEMBytes and
// must hold exactly one PEM block and nothing but whitespace around it.
// Errors wrap ErrInvalidPEM or ErrUnsupportedKey and never quote key material.
func ParsePEM(data []byte) (*Key, error) {
	if len(data) > MaxPEMBytes {
		return nil, fmt.Errorf("%w: input larger than %d bytes", ErrInvalidPEM, MaxPEMBytes)
	}
	start := bytes.Index(data, []byte("-----BEGIN "))
	if start < 0 {
		return nil, fmt.Errorf("%w: no PEM block found", ErrInvalidPEM)
	}
	if len(bytes.TrimSpace(data[:start])) != 0 {
		return nil, fmt.Errorf("%w: data before the PEM block", ErrInvalidPEM)
	}
	block, rest := pem.Decode(data[start:])
	if block == nil {
		return nil, fmt.Errorf("%w: PEM block is not well-formed", ErrInvalidPEM)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		if next, _ := pem.Decode(rest); next != nil {
			return nil, fmt.Errorf("%w: more than one PEM block", ErrInvalidPEM)
		}
		return nil, fmt.Errorf("%w: trailing data after the PEM block", ErrInvalidPEM)
	}
	if len(block.Headers) != 0 {
		// RFC 1421 headers such as Proc-Type: 4,ENCRYPTED.
		return nil, fmt.Errorf("%w: PEM headers (encrypted keys) are not supported", ErrInvalidPEM)
	}

	var (
		priv any
		err  error
	)
	switch block.Type {
	case "PRIVATE KEY":
		priv, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY": // SEC 1; what Helm's genPrivateKey "ecdsa" emits
		priv, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		priv, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block type %s is not a supported private key", ErrInvalidPEM, blockType(block.Type))
	}
	if err != nil {
		// The x509 error is dropped on purpose: it describes DER we must not echo.
		return nil, fmt.Errorf("%w: %s block does not hold a valid key", ErrInvalidPEM, block.Type)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T cannot sign", ErrUnsupportedKey, priv)
	}
	return NewKey(signer)
}

// blockType quotes a PEM block type for an error, bounded in length.
func blockType(t string) string {
	const limit = 40
	if len(t) > limit {
		t = t[:limit] + "…"
	}
	return fmt.Sprintf("%q", t)
}

// Generate creates a fresh key for alg: P-256 for ES256, Ed25519 for EdDSA,
// RSA-2048 for RS256.
func Generate(alg Alg) (*Key, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, minRSABits)
	default:
		return nil, fmt.Errorf("%w: algorithm %q", ErrUnsupportedKey, string(alg))
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s: %w", alg, err)
	}
	return NewKey(priv)
}

// Keyring is an immutable set of keys. Which key signs, which verify and
// which are published depends on the time asked, for keyrings built from a
// Secret (NewSecretKeyring); keyrings of NewKeyring and LoadDir have one key
// that signs and verification-only others, forever.
//
// Signer, States, Degraded and JWKS evaluate each key's lifecycle at the
// time asked, over at most MaxSecretKeys keys (usually three); Lookup is a
// map lookup and a comparison with the key's end of verification, computed
// once when the keyring is built.
type Keyring struct {
	members []*member          // JWKS order
	byKID   map[string]*member // every key, including those gone by now
	algs    []string           // distinct algorithms of every key
}

// NewKeyring builds a keyring. active must hold a private key; others are
// published and accepted for verification only. Duplicate kids are refused
// (ErrDuplicateKID), and so is a Key whose ID or Alg does not match its
// public key (ErrInvalidKey). The keys are copied; the ring does not see
// later changes to the arguments. The state of the keys does not change
// with time: active signs forever, the others verify forever.
//
// The non-active keys are ordered by kid, so the same set of keys gives
// byte-identical JWKS and ETag whatever the argument order.
func NewKeyring(active *Key, others ...*Key) (*Keyring, error) {
	if active == nil {
		return nil, fmt.Errorf("%w: nil active key", ErrNoActiveKey)
	}
	if active.Signer == nil {
		return nil, fmt.Errorf("%w: active key %s has no private key", ErrNoActiveKey, active.ID)
	}
	if err := checkSigner(active); err != nil {
		return nil, err
	}

	var members []*member
	add := func(k *Key, verifyOnly bool) error {
		if k == nil {
			return fmt.Errorf("%w: nil key", ErrInvalidKey)
		}
		if err := checkKey(k); err != nil {
			return err
		}
		c := *k
		members = append(members, &member{key: &c, entry: Entry{Key: &c}, verifyOnly: verifyOnly})
		return nil
	}
	if err := add(active, false); err != nil {
		return nil, err
	}
	sorted := slices.Clone(others)
	slices.SortStableFunc(sorted, func(a, b *Key) int {
		if a == nil || b == nil {
			return 0 // add reports nil keys
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, k := range sorted {
		if err := add(k, true); err != nil {
			return nil, err
		}
	}
	return newKeyring(members)
}

// checkKey refuses a Key whose fields disagree, so a hand-built Key cannot
// unpin its algorithm (RFC 8725 §3.1) or impersonate another kid.
func checkKey(k *Key) error {
	alg, err := algOf(k.Public)
	if err != nil {
		return err
	}
	if alg != k.Alg {
		return fmt.Errorf("%w: key %s: alg %q does not match its public key", ErrInvalidKey, k.ID, string(k.Alg))
	}
	kid, err := thumbprint(k.Public)
	if err != nil {
		return err
	}
	if kid != k.ID {
		return fmt.Errorf("%w: key ID is not the RFC 7638 thumbprint of its public key", ErrInvalidKey)
	}
	return nil
}

// LoadDir reads every *.pem file in dir (in name order; names starting with
// "." are skipped, as are directories). The key in the file named active
// (with or without ".pem") or whose kid is active signs; if active is empty
// the directory must hold exactly one key. Errors name the offending file.
// Symbolic links are followed, as Kubernetes Secret volumes need.
func LoadDir(dir, active string) (*Keyring, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	type loaded struct {
		name string
		key  *Key
	}
	var all []loaded
	seen := map[string]string{} // kid → file
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".pem") {
			continue
		}
		path := filepath.Join(dir, name)
		data, isDir, err := readBounded(path)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", name, err)
		}
		if isDir {
			continue
		}
		k, err := ParsePEM(data)
		if err != nil {
			return nil, fmt.Errorf("keys: %s: %w", name, err)
		}
		if prev, dup := seen[k.ID]; dup {
			return nil, fmt.Errorf("keys: %s: %w: same key as %s", name, ErrDuplicateKID, prev)
		}
		seen[k.ID] = name
		all = append(all, loaded{name, k})
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("keys: %s: %w: no *.pem key files", dir, ErrNoActiveKey)
	}

	pick := -1
	switch {
	case active == "" && len(all) == 1:
		pick = 0
	case active == "":
		return nil, fmt.Errorf("keys: %s: %w: %d keys and no active key named", dir, ErrNoActiveKey, len(all))
	default:
		for i, l := range all {
			if l.name == active || strings.TrimSuffix(l.name, ".pem") == active || l.key.ID == active {
				if pick >= 0 {
					return nil, fmt.Errorf("keys: %s: %w: %q matches both %s and %s", dir, ErrNoActiveKey, active, all[pick].name, l.name)
				}
				pick = i
			}
		}
		if pick < 0 {
			return nil, fmt.Errorf("keys: %s: %w: no file or kid %q", dir, ErrNoActiveKey, active)
		}
	}

	others := make([]*Key, 0, len(all)-1)
	for i, l := range all {
		if i != pick {
			others = append(others, l.key)
		}
	}
	r, err := NewKeyring(all[pick].key, others...)
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", dir, err)
	}
	return r, nil
}

// readBounded reads at most MaxPEMBytes of path, following symlinks. It
// reports directories instead of reading them.
func readBounded(path string) (data []byte, isDir bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if fi.IsDir() {
		return nil, true, nil
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxPEMBytes+1))
	if err != nil {
		return nil, false, err
	}
	if len(data) > MaxPEMBytes {
		return nil, false, fmt.Errorf("%w: file larger than %d bytes", ErrInvalidPEM, MaxPEMBytes)
	}
	return data, false, nil
}

// Signer returns the key that signs new tokens at now: among the active
// keys the one with the latest activate-at (ties: the greatest name). When
// no key is active at now it is still never nil: it is the key that was
// active most recently, and Degraded says so. The returned Key must not be
// modified.
func (r *Keyring) Signer(now time.Time) *Key {
	s, _ := signerAt(r.members, now)
	return s.key
}

// Lookup returns the key with kid if it may verify tokens at now: a key in
// state next, active or retiring, or a gone key that is still the signer or
// signed less than access TTL + leeway ago. The returned Key must not be
// modified.
func (r *Keyring) Lookup(kid string, now time.Time) (*Key, bool) {
	m, ok := r.byKID[kid]
	if !ok || !m.verifiesAt(now) {
		return nil, false
	}
	return m.key, true
}

// RefreshKey returns the key with kid if it may verify refresh tokens at
// now: from when it is in the ring until retire-at + the sessions' idle
// TTL (Lifecycle.RefreshKeep), in whatever state, so a gone key that left
// the JWKS still refreshes the sessions it last rotated. New refresh
// tokens are made under the Signer only. A key past its refresh horizon
// is treated as absent from the ring: its tokens read
// session.ErrUnknownSecret and their sessions must log in again. Keys of
// NewKeyring and LoadDir refresh forever. The returned Key must not be
// modified.
func (r *Keyring) RefreshKey(kid string, now time.Time) (*Key, bool) {
	m, ok := r.byKID[kid]
	if !ok || !m.refreshesAt(now) {
		return nil, false
	}
	return m.key, true
}

// Key returns the key with kid whatever its state, as long as it is in
// the ring: values sealed under a key (package seal) stay readable until
// the key leaves the Secret. The returned Key must not be modified.
func (r *Keyring) Key(kid string) (*Key, bool) {
	m, ok := r.byKID[kid]
	if !ok {
		return nil, false
	}
	return m.key, true
}

// HasAlg reports whether a key in the ring, whatever its state, uses alg
// (the verifier's allow-list of algorithms): Lookup refuses the keys that
// may not verify.
func (r *Keyring) HasAlg(alg string) bool { return slices.Contains(r.algs, alg) }

// Keys lists every key, including keys gone by now: for NewKeyring and
// LoadDir the active first, then the others ordered by kid; for
// NewSecretKeyring ordered by entry name. The slice is the caller's; the
// Keys must not be modified.
func (r *Keyring) Keys() []*Key {
	keys := make([]*Key, len(r.members))
	for i, m := range r.members {
		keys[i] = m.key
	}
	return keys
}

// JWKS returns the JSON Web Key Set (RFC 7517 §5) of the public keys that
// may verify at now, and its strong ETag (RFC 9110 §8.8.3). The same set
// of keys always gives the same bytes and ETag, so a key dropping out
// changes the ETag and nothing else does. The body is a copy the caller
// may keep.
//
// Time only ever removes keys from the JWKS; keys are added by a new
// keyring (a Secret update). So a client caching the JWKS for max-age at
// worst keeps a key that no longer verifies.
func (r *Keyring) JWKS(now time.Time) (body []byte, etag string) { return r.jwksAt(now) }

// Source yields the current keyring, or nil before the first one is loaded.
type Source interface {
	Keyring() *Keyring
}

var _ Source = (*Holder)(nil)

// Holder is a Source whose keyring is replaced atomically. The zero value
// holds no keyring and is ready to use.
type Holder struct {
	p atomic.Pointer[Keyring]
}

// Keyring returns the current keyring or nil.
func (h *Holder) Keyring() *Keyring { return h.p.Load() }

// Store replaces the current keyring.
func (h *Holder) Store(r *Keyring) { h.p.Store(r) }

// JWKSHandler serves the current keyring's JWKS, with the keys published
// at the time of each request, with Cache-Control max-age and ETag /
// If-None-Match support (RFC 9110 §13.1.2, weak comparison, "*"); 503
// before the first keyring. Only GET and HEAD are allowed (405 with Allow
// otherwise).
func JWKSHandler(src Source, maxAge time.Duration) http.Handler {
	return jwksHandler(src, maxAge, time.Now)
}

// jwksHandler is JWKSHandler with the clock that decides which keys are
// published.
func jwksHandler(src Source, maxAge time.Duration, now func() time.Time) http.Handler {
	cacheControl := fmt.Sprintf("public, max-age=%d", max(0, int64(maxAge/time.Second)))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := w.Header()
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		r := src.Keyring()
		if r == nil {
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"error":"no signing keys loaded yet"}`+"\n")
			return
		}
		body, etag := r.jwksAt(now())
		// ServeContent answers If-None-Match (weak comparison, "*") with a
		// 304 that keeps ETag and Cache-Control (RFC 9110 §15.4.5), sets
		// Content-Length, and omits the body for HEAD.
		h.Set("ETag", etag)
		h.Set("Cache-Control", cacheControl)
		h.Set("Content-Type", "application/jwk-set+json") // RFC 7517 §8.5.1
		h.Set("X-Content-Type-Options", "nosniff")
		http.ServeContent(w, req, "", time.Time{}, bytes.NewReader(body))
	})
}
