package keys

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Test keys are generated once: RSA generation is slow under -race.
var (
	p256Key   = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	p256KeyB  = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	p384Key   = sync.OnceValue(func() *ecdsa.PrivateKey { return must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	edKey     = sync.OnceValue(func() ed25519.PrivateKey { _, k, err := ed25519.GenerateKey(rand.Reader); return must(k, err) })
	rsa2048   = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 2048)) })
	rsa1024   = sync.OnceValue(func() *rsa.PrivateKey { return must(rsa.GenerateKey(rand.Reader, 1024)) })
	x25519Key = sync.OnceValue(func() *ecdh.PrivateKey { return must(ecdh.X25519().GenerateKey(rand.Reader)) })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func mustKey(t testing.TB, priv crypto.Signer) *Key {
	t.Helper()
	k, err := NewKey(priv)
	if err != nil {
		t.Fatalf("NewKey: %v", err)
	}
	return k
}

func pemOf(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func pkcs8(k any) []byte { return pemOf("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(k))) }

func TestNewKey(t *testing.T) {
	tests := []struct {
		name    string
		priv    crypto.Signer
		wantAlg Alg
		wantErr error
	}{
		{"P-256", p256Key(), ES256, nil},
		{"Ed25519", edKey(), EdDSA, nil},
		{"RSA-2048", rsa2048(), RS256, nil},
		{"P-384 refused", p384Key(), "", ErrUnsupportedKey},
		{"RSA-1024 refused (RFC 7518 §3.3)", rsa1024(), "", ErrUnsupportedKey},
		{"nil refused", nil, "", ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKey(tt.priv)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if k.Alg != tt.wantAlg || len(k.ID) != 43 || k.Signer == nil || k.Public == nil {
				t.Errorf("got alg %s, kid %q (%d chars)", k.Alg, k.ID, len(k.ID))
			}
		})
	}
}

// RFC 7638 §3.1: the example RSA key and its SHA-256 thumbprint.
func TestThumbprintRFC7638(t *testing.T) {
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(must(b64.DecodeString(n))), E: 65537}
	got, err := thumbprint(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Errorf("thumbprint = %s, want %s", got, want)
	}
}

func TestParsePEM(t *testing.T) {
	garbageDER := pemOf("PRIVATE KEY", []byte("definitely not DER"))
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: must(x509.MarshalECPrivateKey(p256Key()))})
	sec1 := pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p256Key())))
	tests := []struct {
		name    string
		data    []byte
		want    crypto.Signer // whose kid the result must have
		wantErr error
	}{
		{"PKCS#8 P-256", pkcs8(p256Key()), p256Key(), nil},
		{"PKCS#8 Ed25519", pkcs8(edKey()), edKey(), nil},
		{"PKCS#8 RSA-2048", pkcs8(rsa2048()), rsa2048(), nil},
		{"SEC1 P-256 (Helm genPrivateKey)", sec1, p256Key(), nil},
		{"PKCS#1 RSA-2048", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048())), rsa2048(), nil},
		{"surrounding whitespace", append(append([]byte("\n\n  "), sec1...), "\n\t\n"...), p256Key(), nil},
		{"PKCS#8 P-384", pkcs8(p384Key()), nil, ErrUnsupportedKey},
		{"SEC1 P-384", pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p384Key()))), nil, ErrUnsupportedKey},
		{"PKCS#1 RSA-1024", pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024())), nil, ErrUnsupportedKey},
		{"PKCS#8 X25519 cannot sign", pkcs8(x25519Key()), nil, ErrUnsupportedKey},
		{"empty", nil, nil, ErrInvalidPEM},
		{"not PEM", []byte("hello"), nil, ErrInvalidPEM},
		{"oversized", append(bytes.Repeat([]byte(" "), MaxPEMBytes), sec1...), nil, ErrInvalidPEM},
		{"two blocks", append(sec1, pkcs8(edKey())...), nil, ErrInvalidPEM},
		{"trailing garbage", append(sec1, "garbage"...), nil, ErrInvalidPEM},
		{"leading garbage", append([]byte("Bag Attributes\n"), sec1...), nil, ErrInvalidPEM},
		{"public key block", pemOf("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(p256Key().Public()))), nil, ErrInvalidPEM},
		{"certificate block", pemOf("CERTIFICATE", []byte{0x30, 0}), nil, ErrInvalidPEM},
		{"encrypted", encrypted, nil, ErrInvalidPEM},
		{"bad DER", garbageDER, nil, ErrInvalidPEM},
		{"SEC1 label on PKCS#8 DER", pemOf("EC PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(p256Key()))), nil, ErrInvalidPEM},
		{"truncated block", sec1[:len(sec1)-20], nil, ErrInvalidPEM},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParsePEM(tt.data)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				assertNoKeyMaterial(t, err, tt.data)
				return
			}
			if want := mustKey(t, tt.want); k.ID != want.ID || k.Alg != want.Alg {
				t.Errorf("got %s %s, want %s %s", k.Alg, k.ID, want.Alg, want.ID)
			}
		})
	}
}

// assertNoKeyMaterial fails if err quotes any base64 line of data's PEM body.
func assertNoKeyMaterial(t *testing.T, err error, data []byte) {
	t.Helper()
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if len(line) >= 16 && !strings.HasPrefix(line, "-----") && strings.Contains(err.Error(), line[:16]) {
			t.Errorf("error quotes key material: %v", err)
		}
	}
}

func TestGenerate(t *testing.T) {
	tests := []struct {
		alg     Alg
		wantErr error
	}{
		{ES256, nil},
		{EdDSA, nil},
		{RS256, nil},
		{"HS256", ErrUnsupportedKey},
		{"ES384", ErrUnsupportedKey},
	}
	for _, tt := range tests {
		t.Run(string(tt.alg), func(t *testing.T) {
			k, err := Generate(tt.alg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (k.Alg != tt.alg || k.Signer == nil) {
				t.Errorf("got %+v", k)
			}
		})
	}
}

func TestNewKeyring(t *testing.T) {
	ec, ed, rs := mustKey(t, p256Key()), mustKey(t, edKey()), mustKey(t, rsa2048())
	publicOnly := &Key{ID: ed.ID, Alg: ed.Alg, Public: ed.Public}
	wrongAlg := &Key{ID: ec.ID, Alg: RS256, Public: ec.Public}
	wrongID := &Key{ID: ed.ID, Alg: ES256, Public: ec.Public}
	mismatched := &Key{ID: ec.ID, Alg: ES256, Signer: p256KeyB(), Public: ec.Public}
	tests := []struct {
		name    string
		active  *Key
		others  []*Key
		wantErr error
	}{
		{"one key", ec, nil, nil},
		{"three algorithms", ec, []*Key{ed, rs}, nil},
		{"verification-only other", ec, []*Key{publicOnly}, nil},
		{"nil active", nil, nil, ErrNoActiveKey},
		{"public-only active", publicOnly, nil, ErrNoActiveKey},
		{"duplicate kid", ec, []*Key{ed, ec}, ErrDuplicateKID},
		{"alg not the key's", ec, []*Key{wrongAlg}, ErrInvalidKey},
		{"kid not the thumbprint", ed, []*Key{wrongID}, ErrInvalidKey},
		{"signer is another key", mismatched, nil, ErrInvalidKey},
		{"nil other", ec, []*Key{nil}, ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewKeyring(tt.active, tt.others...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestKeyringAccessors(t *testing.T) {
	ec, ed, rs, ec2 := mustKey(t, p256Key()), mustKey(t, edKey()), mustKey(t, rsa2048()), mustKey(t, p256KeyB())
	r, err := NewKeyring(ed, rs, ec, ec2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got := r.Signer(now); got.ID != ed.ID || got.Signer == nil {
		t.Errorf("Signer = %s, want %s", got.ID, ed.ID)
	}
	keys := r.Keys()
	if len(keys) != 4 || keys[0].ID != ed.ID {
		t.Fatalf("Keys() = %d keys, first %s", len(keys), keys[0].ID)
	}
	for i := 2; i < len(keys); i++ {
		if keys[i-1].ID > keys[i].ID {
			t.Errorf("non-active keys not ordered by kid: %s > %s", keys[i-1].ID, keys[i].ID)
		}
	}
	for _, k := range []*Key{ec, ed, rs, ec2} {
		if got, ok := r.Lookup(k.ID, now); !ok || got.Alg != k.Alg {
			t.Errorf("Lookup(%s) = %v, %v", k.ID, got, ok)
		}
	}
	if _, ok := r.Lookup("../../etc/passwd", now); ok {
		t.Error("Lookup of an unknown kid succeeded")
	}
	for alg, want := range map[string]bool{"ES256": true, "EdDSA": true, "RS256": true, "none": false, "HS256": false} {
		if r.HasAlg(alg) != want {
			t.Errorf("HasAlg(%s) = %v, want %v", alg, !want, want)
		}
	}
	keys[0] = nil // the caller's copy
	if r.Keys()[0] == nil {
		t.Error("Keys returned the ring's own slice")
	}
}

func TestJWKS(t *testing.T) {
	ec, ed, rs := mustKey(t, p256Key()), mustKey(t, edKey()), mustKey(t, rsa2048())
	r, err := NewKeyring(ec, ed, rs)
	if err != nil {
		t.Fatal(err)
	}
	body, etag := r.JWKS(time.Now())

	// Same content, other order and fresh copies: byte-identical.
	r2, err := NewKeyring(mustKey(t, p256Key()), mustKey(t, rsa2048()), mustKey(t, edKey()))
	if err != nil {
		t.Fatal(err)
	}
	if body2, etag2 := r2.JWKS(time.Now()); !bytes.Equal(body, body2) || etag != etag2 {
		t.Errorf("equal keyrings give different JWKS:\n%s\n%s", body, body2)
	}
	if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || strings.HasPrefix(etag, "W/") {
		t.Errorf("ETag %s is not a strong quoted tag", etag)
	}

	var set struct{ Keys []map[string]string }
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 3 || set.Keys[0]["kid"] != ec.ID {
		t.Fatalf("JWKS = %s", body)
	}
	msg := []byte("payload")
	digest := sha256.Sum256(msg)
	for _, j := range set.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
			if _, ok := j[private]; ok {
				t.Errorf("JWK %s publishes private member %q", j["kid"], private)
			}
		}
		k, ok := r.Lookup(j["kid"], time.Now())
		if !ok || j["alg"] != string(k.Alg) || j["use"] != "sig" {
			t.Fatalf("JWK %v does not match the ring", j)
		}
		pub := publicFromJWK(t, j)
		if kid, err := thumbprint(pub); err != nil || kid != k.ID {
			t.Errorf("JWK round-trip gives kid %s, want %s", kid, k.ID)
		}
		switch p := pub.(type) {
		case *ecdsa.PublicKey:
			sig := must(k.Signer.Sign(rand.Reader, digest[:], crypto.SHA256))
			if !ecdsa.VerifyASN1(p, digest[:], sig) {
				t.Error("ES256 signature does not verify with the JWKS key")
			}
		case ed25519.PublicKey:
			sig := must(k.Signer.Sign(rand.Reader, msg, crypto.Hash(0)))
			if !ed25519.Verify(p, msg, sig) {
				t.Error("EdDSA signature does not verify with the JWKS key")
			}
		case *rsa.PublicKey:
			sig := must(k.Signer.Sign(rand.Reader, digest[:], crypto.SHA256))
			if err := rsa.VerifyPKCS1v15(p, crypto.SHA256, digest[:], sig); err != nil {
				t.Error("RS256 signature does not verify with the JWKS key")
			}
		}
	}
}

// publicFromJWK rebuilds a public key from its JWK members.
func publicFromJWK(t *testing.T, j map[string]string) crypto.PublicKey {
	t.Helper()
	dec := func(s string) []byte { return must(b64.DecodeString(s)) }
	switch j["kty"] {
	case "EC":
		pt := append(append([]byte{4}, dec(j["x"])...), dec(j["y"])...)
		return must(ecdsa.ParseUncompressedPublicKey(elliptic.P256(), pt))
	case "OKP":
		return ed25519.PublicKey(dec(j["x"]))
	case "RSA":
		return &rsa.PublicKey{N: new(big.Int).SetBytes(dec(j["n"])), E: int(new(big.Int).SetBytes(dec(j["e"])).Int64())}
	}
	t.Fatalf("unexpected kty in %v", j)
	return nil
}

func TestLoadDir(t *testing.T) {
	ec, ed := mustKey(t, p256Key()), mustKey(t, edKey())
	ecPEM := pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p256Key())))
	edPEM := pkcs8(edKey())
	type files = map[string][]byte
	tests := []struct {
		name       string
		files      files
		active     string
		wantActive string // kid
		wantKeys   int
		wantErr    error
		wantInErr  string // a file name the error must name
	}{
		{"one key, no active", files{"a.pem": ecPEM}, "", ec.ID, 1, nil, ""},
		{"active by file name", files{"a.pem": ecPEM, "b.pem": edPEM}, "b.pem", ed.ID, 2, nil, ""},
		{"active by stem", files{"a.pem": ecPEM, "b.pem": edPEM}, "a", ec.ID, 2, nil, ""},
		{"active by kid", files{"a.pem": ecPEM, "b.pem": edPEM}, ed.ID, ed.ID, 2, nil, ""},
		{"other files ignored", files{"a.pem": ecPEM, "README": []byte("x"), ".hidden.pem": []byte("x")}, "", ec.ID, 1, nil, ""},
		{"two keys, no active", files{"a.pem": ecPEM, "b.pem": edPEM}, "", "", 0, ErrNoActiveKey, ""},
		{"active not found", files{"a.pem": ecPEM}, "zzz", "", 0, ErrNoActiveKey, ""},
		{"empty dir", files{}, "", "", 0, ErrNoActiveKey, ""},
		{"only non-pem files", files{"key.txt": ecPEM}, "", "", 0, ErrNoActiveKey, ""},
		{"bad file named", files{"a.pem": ecPEM, "broken.pem": []byte("nope")}, "a", "", 0, ErrInvalidPEM, "broken.pem"},
		{"refused key named", files{"weak.pem": pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024()))}, "", "", 0, ErrUnsupportedKey, "weak.pem"},
		{"oversized file named", files{"big.pem": bytes.Repeat([]byte(" "), MaxPEMBytes+1)}, "", "", 0, ErrInvalidPEM, "big.pem"},
		{"same key twice", files{"a.pem": ecPEM, "b.pem": pkcs8(p256Key())}, "a", "", 0, ErrDuplicateKID, "b.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r, err := LoadDir(dir, tt.active)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.wantInErr) {
					t.Errorf("error %q does not name %s", err, tt.wantInErr)
				}
				return
			}
			if got := r.Signer(time.Now()).ID; got != tt.wantActive || len(r.Keys()) != tt.wantKeys {
				t.Errorf("active %s with %d keys, want %s with %d", got, len(r.Keys()), tt.wantActive, tt.wantKeys)
			}
		})
	}
}

// Kubernetes Secret volumes present each key as a symlink into ..data/, and
// hold directories whose names we must skip.
func TestLoadDirSecretVolume(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..2026_01_01")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "k.pem"), pkcs8(edKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(data, "k.pem"), filepath.Join(dir, "k.pem")); err != nil {
		t.Skipf("symlinks unsupported: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.pem"), 0o700); err != nil {
		t.Fatal(err)
	}
	r, err := LoadDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Signer(time.Now()).ID; got != mustKey(t, edKey()).ID {
		t.Errorf("active = %s", got)
	}
	if _, err := LoadDir(filepath.Join(dir, "missing"), ""); err == nil {
		t.Error("LoadDir of a missing directory succeeded")
	}
}

func TestJWKSHandler(t *testing.T) {
	r, err := NewKeyring(mustKey(t, p256Key()), mustKey(t, edKey()))
	if err != nil {
		t.Fatal(err)
	}
	body, etag := r.JWKS(time.Now())
	var h Holder
	handler := JWKSHandler(&h, 5*time.Minute)

	// Before the first keyring.
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
	if rec.Code != http.StatusServiceUnavailable || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("no keyring: %d %s", rec.Code, rec.Body)
	}

	h.Store(r)
	tests := []struct {
		name        string
		method      string
		ifNoneMatch string
		wantCode    int
		wantBody    bool
	}{
		{"GET", http.MethodGet, "", http.StatusOK, true},
		{"HEAD", http.MethodHead, "", http.StatusOK, false},
		{"stale ETag", http.MethodGet, `"0123"`, http.StatusOK, true},
		{"current ETag", http.MethodGet, etag, http.StatusNotModified, false},
		{"weak current ETag", http.MethodGet, "W/" + etag, http.StatusNotModified, false},
		{"ETag in a list", http.MethodGet, `"0123", ` + etag, http.StatusNotModified, false},
		{"star", http.MethodGet, "*", http.StatusNotModified, false},
		{"HEAD current ETag", http.MethodHead, etag, http.StatusNotModified, false},
		{"POST", http.MethodPost, "", http.StatusMethodNotAllowed, false},
		{"DELETE", http.MethodDelete, "", http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/.well-known/jwks.json", nil)
			if tt.ifNoneMatch != "" {
				req.Header.Set("If-None-Match", tt.ifNoneMatch)
			}
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			res := rec.Result()
			if res.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.wantCode)
			}
			if tt.wantCode == http.StatusMethodNotAllowed {
				if got := res.Header.Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q", got)
				}
				return
			}
			if got := res.Header.Get("ETag"); got != etag {
				t.Errorf("ETag = %q, want %q", got, etag)
			}
			if got := res.Header.Get("Cache-Control"); got != "public, max-age=300" {
				t.Errorf("Cache-Control = %q", got)
			}
			if tt.wantCode == http.StatusOK {
				if got := res.Header.Get("Content-Type"); got != "application/jwk-set+json" {
					t.Errorf("Content-Type = %q", got)
				}
			}
			if gotBody := rec.Body.Bytes(); tt.wantBody != (len(gotBody) > 0) || tt.wantBody && !bytes.Equal(gotBody, body) {
				t.Errorf("body = %q", gotBody)
			}
		})
	}
}

// FuzzParsePEM: arbitrary input never panics, and every failure is one of
// the package's sentinels.
func FuzzParsePEM(f *testing.F) {
	f.Add(pkcs8(p256Key()))
	f.Add(pkcs8(edKey()))
	f.Add(pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p256Key()))))
	f.Add(pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048())))
	f.Add(pemOf("PRIVATE KEY", []byte{0x30, 0x03, 0x02, 0x01, 0x00}))
	f.Add(pemOf("EC PRIVATE KEY", []byte{0x30, 0x80}))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN X-----\nAAAA\n-----END Y-----"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePEM(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPEM) && !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("error is not a sentinel: %v", err)
			}
			return
		}
		if k.Signer == nil || k.Public == nil || checkKey(k) != nil {
			t.Fatalf("inconsistent key %+v", k)
		}
	})
}
