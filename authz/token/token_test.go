package token

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

const (
	testIssuer   = "https://auth.example"
	testAudience = "api"
	testLeeway   = 30 * time.Second
	testTTL      = 5 * time.Minute
)

// t0 is the fixed "now" of every test.
var t0 = time.Unix(1_800_000_000, 0)

// Test keys are generated once: RSA generation is slow under -race.
var (
	ecKey  = sync.OnceValue(func() *keys.Key { return must(keys.Generate(keys.ES256)) })
	ecKey2 = sync.OnceValue(func() *keys.Key { return must(keys.Generate(keys.ES256)) })
	edKey  = sync.OnceValue(func() *keys.Key { return must(keys.Generate(keys.EdDSA)) })
	rsKey  = sync.OnceValue(func() *keys.Key { return must(keys.Generate(keys.RS256)) })
)

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

type fixture struct {
	ec, ec2, ed, rs *keys.Key
	ring            *keys.Keyring
	holder          *keys.Holder
	clock           *fakeclock.Clock
	v               *Verifier
	m               *Minter
}

// newFixture: ES256 signs; EdDSA and RS256 verify; ec2 is outside the ring.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{ec: ecKey(), ec2: ecKey2(), ed: edKey(), rs: rsKey(), holder: &keys.Holder{}, clock: fakeclock.New(t0)}
	f.ring = must(keys.NewKeyring(f.ec, f.ed, f.rs))
	f.holder.Store(f.ring)
	f.v = NewVerifier(VerifierOptions{Issuer: testIssuer, Audiences: []string{"other", testAudience}, Leeway: testLeeway, Keys: f.holder, Now: f.clock.Now})
	f.m = NewMinter(MinterOptions{Issuer: testIssuer, Audience: testAudience, TTL: testTTL, Keys: f.holder, Now: f.clock.Now})
	return f
}

// A signer produces a hand-built token's signature; its key gives the
// default alg and kid headers.
type signer struct {
	k    *keys.Key
	sign func(input string) []byte
}

// by signs as a correct issuer would with k.
func by(k *keys.Key) signer {
	return signer{k, func(in string) []byte {
		return must(jwt.GetSigningMethod(string(k.Alg)).Sign(in, k.Signer))
	}}
}

// macWithPublic is the classic confusion attack: HS256 keyed with the PEM
// bytes of k's public key, which a naive verifier would hand to HMAC.
func macWithPublic(k *keys.Key) signer {
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(k.Public))})
	return signer{k, func(in string) []byte { return must(jwt.SigningMethodHS256.Sign(in, secret)) }}
}

// junk signs with fixed bytes.
func junk(k *keys.Key) signer {
	return signer{k, func(string) []byte { return []byte("not a signature") }}
}

// A mod changes one header (h) or claim (c) member; the value drop deletes it.
type mod struct {
	header bool
	name   string
	value  any
}

var drop = new(struct{})

func h(name string, v any) mod { return mod{true, name, v} }
func c(name string, v any) mod { return mod{false, name, v} }
func ms(m ...mod) []mod        { return m }

func unix(d time.Duration) int64 { return t0.Add(d).Unix() }

// forge builds a token by hand from the default header and claims, changed
// by mods, so tests can plant any member of any JSON type.
func forge(s signer, mods ...mod) string {
	hdr := map[string]any{"alg": string(s.k.Alg), "typ": "at+jwt", "kid": s.k.ID}
	cl := map[string]any{
		"iss": testIssuer, "sub": "user-1", "aud": testAudience, "exp": unix(testTTL), "iat": unix(0),
		"jti": "jti-1", "sid": "sid-1", "email": "a@example.com",
	}
	for _, m := range mods {
		target := cl
		if m.header {
			target = hdr
		}
		if m.value == drop {
			delete(target, m.name)
		} else {
			target[m.name] = m.value
		}
	}
	in := seg(must(json.Marshal(hdr))) + "." + seg(must(json.Marshal(cl)))
	return in + "." + seg(s.sign(in))
}

// signed signs an encoded header and a raw claims payload.
func signed(s signer, header, payload string) string {
	in := header + "." + seg([]byte(payload))
	return in + "." + seg(s.sign(in))
}

func seg(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// tokenCase is one hand-built token and the verdict it must get.
type tokenCase struct {
	name string
	s    signer
	want error
	mods []mod
}

func tokenCases(f *fixture) []tokenCase {
	ec, ed, rs := f.ec, f.ed, f.rs
	long := strings.Repeat("k", 4000)
	return []tokenCase{
		{"valid ES256", by(ec), nil, nil},
		{"valid EdDSA (verification-only key)", by(ed), nil, nil},
		{"valid RS256", by(rs), nil, nil},
		{"typ application/at+jwt (RFC 9068 §4)", by(ec), nil, ms(h("typ", "application/at+jwt"))},
		{"typ case-insensitive", by(ec), nil, ms(h("typ", "AT+JWT"))},
		{"expired", by(ec), ErrExpired, ms(c("exp", unix(-testLeeway-time.Second)))},
		{"expired within leeway", by(ec), nil, ms(c("exp", unix(-testLeeway+time.Second)))},
		{"nbf beyond leeway", by(ec), ErrNotYetValid, ms(c("nbf", unix(testLeeway+time.Second)))},
		{"nbf within leeway", by(ec), nil, ms(c("nbf", unix(testLeeway-time.Second)))},
		{"iat beyond leeway", by(ec), ErrNotYetValid, ms(c("iat", unix(testLeeway+time.Second)))},
		{"iat within leeway", by(ec), nil, ms(c("iat", unix(testLeeway-time.Second)))},
		{"wrong iss", by(ec), ErrIssuer, ms(c("iss", "https://evil.example"))},
		{"iss missing", by(ec), ErrMissingClaim, ms(c("iss", drop))},
		{"iss not a string", by(ec), ErrMissingClaim, ms(c("iss", 7))},
		{"wrong aud", by(ec), ErrAudience, ms(c("aud", "someone-else"))},
		{"aud array with ours", by(ec), nil, ms(c("aud", []string{"x", testAudience}))},
		{"aud array without ours", by(ec), ErrAudience, ms(c("aud", []string{"x", "y"}))},
		{"aud missing", by(ec), ErrMissingClaim, ms(c("aud", drop))},
		{"aud array of numbers", by(ec), ErrMissingClaim, ms(c("aud", []int{1}))},
		{"exp missing", by(ec), ErrMissingClaim, ms(c("exp", drop))},
		{"exp as string", by(ec), ErrMissingClaim, ms(c("exp", fmt.Sprint(unix(testTTL))))},
		{"iat missing", by(ec), ErrMissingClaim, ms(c("iat", drop))},
		{"iat as string", by(ec), ErrMissingClaim, ms(c("iat", "0"))},
		{"nbf as string", by(ec), ErrMissingClaim, ms(c("nbf", "0"))},
		{"exp beyond float64", by(ec), ErrMissingClaim, ms(c("exp", json.Number("1e400")))},
		{"nbf beyond float64", by(ec), ErrMissingClaim, ms(c("nbf", json.Number("1e400")))},
		{"iat beyond float64", by(ec), ErrMissingClaim, ms(c("iat", json.Number("-1e400")))},
		{"exp with a fraction", by(ec), nil, ms(c("exp", json.Number(fmt.Sprint(unix(testTTL))+".5")))},
		{"sub missing", by(ec), ErrMissingClaim, ms(c("sub", drop))},
		{"sub not a string", by(ec), ErrMissingClaim, ms(c("sub", 42))},
		{"sid missing", by(ec), ErrMissingClaim, ms(c("sid", drop))},
		{"sid empty", by(ec), ErrMissingClaim, ms(c("sid", ""))},
		{"jti missing", by(ec), ErrMissingClaim, ms(c("jti", drop))},
		{"jti not a string", by(ec), ErrMissingClaim, ms(c("jti", []string{"a"}))},
		{"alg none", junk(ec), ErrAlgorithm, ms(h("alg", "none"))},
		{"alg missing", by(ec), ErrAlgorithm, ms(h("alg", drop))},
		{"alg unknown", by(ec), ErrAlgorithm, ms(h("alg", "XS999"))},
		{"alg not a string", by(ec), ErrAlgorithm, ms(h("alg", 256))},
		{"HS256 MAC keyed with the public key", macWithPublic(rs), ErrAlgorithm, ms(h("alg", "HS256"))},
		{"HS256 MAC keyed with the EC public key", macWithPublic(ec), ErrAlgorithm, ms(h("alg", "HS256"))},
		{"ES256 header on the RS256 key", by(ec), ErrAlgorithm, ms(h("kid", rs.ID))},
		{"EdDSA header on the ES256 key", by(ed), ErrAlgorithm, ms(h("kid", ec.ID))},
		{"PS256 on the RS256 key", by(rs), ErrAlgorithm, ms(h("alg", "PS256"))},
		{"unknown kid", by(f.ec2), ErrUnknownKey, nil},
		{"unknown kid, alg none", junk(ec), ErrUnknownKey, ms(h("alg", "none"), h("kid", "nope"))},
		{"hostile kid: long", by(ec), ErrUnknownKey, ms(h("kid", long))},
		{"hostile kid: path traversal", by(ec), ErrUnknownKey, ms(h("kid", "../../../etc/passwd\x00"))},
		{"hostile kid: SQL", by(ec), ErrUnknownKey, ms(h("kid", "' OR 1=1 --"))},
		{"kid missing", by(ec), ErrUnknownKey, ms(h("kid", drop))},
		{"kid not a string", by(ec), ErrUnknownKey, ms(h("kid", 1))},
		{"typ missing", by(ec), ErrType, ms(h("typ", drop))},
		{"typ JWT", by(ec), ErrType, ms(h("typ", "JWT"))},
		{"typ not a string", by(ec), ErrType, ms(h("typ", 1))},
		{"crit", by(ec), ErrHeader, ms(h("crit", []string{"exp"}))},
		{"jku", by(ec), ErrHeader, ms(h("jku", "https://evil.example/jwks"))},
		{"x5u", by(ec), ErrHeader, ms(h("x5u", "https://evil.example/cert"))},
		{"jwk (CVE-2018-0114)", by(ec), ErrHeader, ms(h("jwk", map[string]string{"kty": "EC"}))},
		{"x5c", by(ec), ErrHeader, ms(h("x5c", []string{"MII"}))},
		{"another key, same kid", by(f.ec2), ErrSignature, ms(h("kid", ec.ID))},
		{"junk signature", junk(ec), ErrSignature, nil},
	}
}

// rawCases are malformed at the byte level.
func rawCases(f *fixture) []struct {
	name, raw string
	want      error
} {
	good := forge(by(f.ec))
	other := forge(by(f.ec), c("sub", "admin"))
	parts := strings.Split(good, ".")
	none := forge(signer{f.ec, func(string) []byte { return nil }}, h("alg", "none"))
	// Hand-written JSON, to name a member twice (RFC 7515 §4, RFC 7519 §4).
	claims := func(more string) string {
		return fmt.Sprintf(`{"iss":%q,"sub":"user-1","aud":%q,"exp":%d,"iat":%d,"jti":"jti-1","sid":"sid-1","email":"a@example.com"%s}`,
			testIssuer, testAudience, unix(testTTL), unix(0), more)
	}
	header := func(more string) string {
		return seg(fmt.Appendf(nil, `{"alg":"ES256","typ":"at+jwt","kid":%q%s}`, f.ec.ID, more))
	}
	subTwice := claims(`,"sub":"mallory"`)
	return []struct {
		name, raw string
		want      error
	}{
		{"empty", "", ErrMalformed},
		{"one segment", "abc", ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], ErrMalformed},
		{"four segments", good + ".x", ErrMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrMalformed},
		{"empty header", "." + parts[1] + "." + parts[2], ErrMalformed},
		{"alg none, empty signature", none, ErrMalformed},
		{"bad base64 header", "!!!" + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"bad base64 claims", parts[0] + ".*." + parts[2], ErrMalformed},
		{"bad base64 signature", parts[0] + "." + parts[1] + ".%%", ErrMalformed},
		{"padded header", parts[0] + "==." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not JSON", seg([]byte("{")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not an object", seg([]byte(`[1,2]`)) + "." + parts[1] + "." + parts[2], ErrMalformed},
		// Claims are decoded only once the signature holds: unsigned
		// garbage in the payload is a forgery, not a parse error.
		{"claims not an object, signature reused", parts[0] + "." + seg([]byte(`"sub"`)) + "." + parts[2], ErrSignature},
		{"claims not JSON, signature reused", parts[0] + "." + seg([]byte(`{"sub":`)) + "." + parts[2], ErrSignature},
		{"claims not an object, signed", signed(by(f.ec), parts[0], `"sub"`), ErrMalformed},
		{"claims not JSON, signed", signed(by(f.ec), parts[0], `{"sub":`), ErrMalformed},
		{"claims null, signed", signed(by(f.ec), parts[0], "null"), ErrMissingClaim},
		{"claims an array, signed", signed(by(f.ec), parts[0], "[]"), ErrMalformed},
		{"claims null, signature reused", parts[0] + "." + seg([]byte(`null`)) + "." + parts[2], ErrSignature},
		{"claims swapped (tampered)", parts[0] + "." + strings.Split(other, ".")[1] + "." + parts[2], ErrSignature},
		// A member named twice is refused, never read as the last: an
		// upstream parsing the forwarded token may keep the first.
		{"hand-written JSON, no member twice", signed(by(f.ec), header(""), claims("")), nil},
		{"same name in two objects, signed", signed(by(f.ec), header(""), claims(`,"a":{"x":1},"b":{"x":1}`)), nil},
		{"claims: sub twice, signed", signed(by(f.ec), header(""), subTwice), ErrMalformed},
		{"claims: sub twice, signature reused", header("") + "." + seg([]byte(subTwice)) + "." + parts[2], ErrSignature},
		{"claims: sub twice, once escaped", signed(by(f.ec), header(""), claims(`,"\u0073ub":"mallory"`)), ErrMalformed},
		{"claims: own claim twice", signed(by(f.ec), header(""), claims(`,"uid":1,"uid":2`)), ErrMalformed},
		{"claims: exp twice", signed(by(f.ec), header(""), claims(fmt.Sprintf(`,"exp":%d`, unix(time.Hour)))), ErrMalformed},
		{"claims: twice in a nested object", signed(by(f.ec), header(""), claims(`,"org":{"id":"a","id":"b"}`)), ErrMalformed},
		{"claims: twice in an object in a list", signed(by(f.ec), header(""), claims(`,"teams":[{"n":1},{"n":1,"n":2}]`)), ErrMalformed},
		{"header: kid twice", signed(by(f.ec), header(fmt.Sprintf(`,"kid":%q`, f.ec.ID)), claims("")), ErrMalformed},
		{"header: alg twice", signed(by(f.ec), header(`,"alg":"none"`), claims("")), ErrMalformed},
		{"header: typ twice, once escaped", signed(by(f.ec), header(`,"\u0074yp":"JWT"`), claims("")), ErrMalformed},
		{"header: twice in a nested object", signed(by(f.ec), header(`,"x":{"a":1,"a":2}`), claims("")), ErrMalformed},
		{"oversized", strings.Repeat("a", defaultMaxTokenBytes+1), ErrTooLarge},
		{"oversized but otherwise valid", forge(by(f.ec), c("pad", strings.Repeat("p", defaultMaxTokenBytes))), ErrTooLarge},
		{"at the cap", strings.Repeat("a", defaultMaxTokenBytes), ErrMalformed},
	}
}

func TestVerify(t *testing.T) {
	f := newFixture(t)
	for _, tt := range tokenCases(f) {
		t.Run(tt.name, func(t *testing.T) {
			raw := forge(tt.s, tt.mods...)
			got, err := f.v.Verify(raw)
			if err != tt.want { // exactly the sentinel: no token text in the error
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			if got.Subject != "user-1" || got.SessionID != "sid-1" || got.ID != "jti-1" || got.Issuer != testIssuer ||
				got.KeyID != tt.s.k.ID || got.Extra["email"] != "a@example.com" || len(got.Extra) != 1 {
				t.Errorf("claims = %+v", got)
			}
		})
	}
	for _, tt := range rawCases(f) {
		t.Run("raw/"+tt.name, func(t *testing.T) {
			if _, err := f.v.Verify(tt.raw); err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerifyClaims(t *testing.T) {
	f := newFixture(t)
	raw := forge(by(f.ec), c("nbf", unix(-time.Second)), c("aud", []string{"x", testAudience}), c("roles", []string{"admin"}))
	got, err := f.v.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !got.ExpiresAt.Equal(t0.Add(testTTL)) || !got.IssuedAt.Equal(t0) || !got.NotBefore.Equal(t0.Add(-time.Second)) {
		t.Errorf("times: exp %v iat %v nbf %v", got.ExpiresAt, got.IssuedAt, got.NotBefore)
	}
	if strings.Join(got.Audience, ",") != "x,"+testAudience {
		t.Errorf("Audience = %v", got.Audience)
	}
	if roles, _ := got.Extra["roles"].([]any); len(roles) != 1 || roles[0] != "admin" || len(got.Extra) != 2 {
		t.Errorf("Extra = %v", got.Extra)
	}
	if !got.ExpiresWithin(t0, testTTL) || got.ExpiresWithin(t0, testTTL-time.Second) {
		t.Error("ExpiresWithin is off")
	}
}

// Numbers reach Extra and Text with the digits that were signed: a
// float64 would turn uid 1541815603606036481 into 1541815603606036500.
func TestVerifyNumbersExact(t *testing.T) {
	f := newFixture(t)
	raw := signed(by(f.ec), seg(fmt.Appendf(nil, `{"alg":"ES256","typ":"at+jwt","kid":%q}`, f.ec.ID)),
		fmt.Sprintf(`{"iss":%q,"sub":"user-1","aud":%q,"exp":%d,"iat":%d,"jti":"j","sid":"s",`+
			`"uid":1541815603606036481,"f":1.5,"f0":1.50,"huge":1e400,"tiny":1e-400,"neg":-0,`+
			`"wide":123456789012345678901234567890,"ids":[1541815603606036481],"org":{"id":9007199254740993}}`,
			testIssuer, testAudience, unix(testTTL), unix(0)))
	got, err := f.v.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, text string }{
		{"uid", "1541815603606036481"}, {"f", "1.5"}, {"f0", "1.50"}, {"huge", "1e400"}, {"tiny", "1e-400"},
		{"neg", "-0"}, {"wide", "123456789012345678901234567890"}, {"ids", "[1541815603606036481]"},
		{"org", `{"id":9007199254740993}`},
	}
	for _, tt := range tests {
		if s, ok := got.Text(tt.name); !ok || s != tt.text {
			t.Errorf("Text(%q) = %q, %v; want %q", tt.name, s, ok, tt.text)
		}
	}
	if got.Extra["uid"] != json.Number("1541815603606036481") {
		t.Errorf("Extra[uid] = %#v, want json.Number", got.Extra["uid"])
	}
}

// Mint writes a json.Number as its own digits, so claims round-trip
// through a token exactly.
func TestMintNumbersExact(t *testing.T) {
	f := newFixture(t)
	raw, _, err := f.m.Mint("user-1", "sid-1", map[string]any{
		"uid": json.Number("1541815603606036481"), "f": json.Number("1.50"), "huge": json.Number("1e400"),
		"n": int64(1541815603606036481), "ids": []any{json.Number("1541815603606036481")},
	})
	if err != nil {
		t.Fatal(err)
	}
	payload := string(must(base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[1])))
	for _, member := range []string{`"uid":1541815603606036481`, `"f":1.50`, `"huge":1e400`, `"n":1541815603606036481`, `"ids":[1541815603606036481]`} {
		if !strings.Contains(payload, member) {
			t.Errorf("payload lacks %s", member)
		}
	}
	got := must(f.v.Verify(raw))
	for name, text := range map[string]string{"uid": "1541815603606036481", "n": "1541815603606036481", "f": "1.50"} {
		if s, _ := got.Text(name); s != text {
			t.Errorf("Text(%q) = %q, want %q", name, s, text)
		}
	}
}

// An empty Issuer or Audiences must not switch the check off.
func TestVerifyFailsClosed(t *testing.T) {
	f := newFixture(t)
	raw := forge(by(f.ec))
	tests := []struct {
		name string
		o    VerifierOptions
		want error
	}{
		{"no issuer configured", VerifierOptions{Audiences: []string{testAudience}}, ErrIssuer},
		{"no audience configured", VerifierOptions{Issuer: testIssuer}, ErrAudience},
		{"no keyring yet", VerifierOptions{Issuer: testIssuer, Audiences: []string{testAudience}, Keys: &keys.Holder{}}, ErrNoKeyring},
		{"no Keys at all", VerifierOptions{Issuer: testIssuer, Audiences: []string{testAudience}, Keys: nil}, ErrNoKeyring},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			if tt.want != ErrNoKeyring {
				o.Keys = f.holder
			}
			o.Now = f.clock.Now
			if _, err := NewVerifier(o).Verify(raw); err != tt.want {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// A ring holding only RS256 refuses an ES256 token at WithValidMethods.
func TestVerifyAlgorithmNotInRing(t *testing.T) {
	f := newFixture(t)
	f.holder.Store(must(keys.NewKeyring(f.rs)))
	if _, err := f.v.Verify(forge(by(f.ec), h("kid", f.rs.ID))); err != ErrAlgorithm {
		t.Fatalf("err = %v, want ErrAlgorithm", err)
	}
}

func TestVerifyMaxTokenBytes(t *testing.T) {
	f := newFixture(t)
	raw := forge(by(f.ec))
	for _, tt := range []struct {
		max  int
		want error
	}{{len(raw), nil}, {len(raw) - 1, ErrTooLarge}} {
		v := NewVerifier(VerifierOptions{Issuer: testIssuer, Audiences: []string{testAudience}, Leeway: testLeeway, Keys: f.holder, Now: f.clock.Now, MaxTokenBytes: tt.max})
		if _, err := v.Verify(raw); err != tt.want {
			t.Errorf("MaxTokenBytes %d: err = %v, want %v", tt.max, err, tt.want)
		}
	}
}

func TestCache(t *testing.T) {
	t.Run("hit returns the cached claims", func(t *testing.T) {
		f := newFixture(t)
		raw := forge(by(f.ec))
		a, b := must(f.v.Verify(raw)), must(f.v.Verify(raw))
		if a != b {
			t.Error("second Verify did not come from the cache")
		}
	})
	t.Run("new keyring with the same key misses", func(t *testing.T) {
		f := newFixture(t)
		raw := forge(by(f.ec))
		a := must(f.v.Verify(raw))
		f.holder.Store(must(keys.NewKeyring(f.ec, f.ed, f.rs)))
		b := must(f.v.Verify(raw))
		if a == b {
			t.Error("cache answered across a keyring change")
		}
		if c := must(f.v.Verify(raw)); c != b {
			t.Error("the token was not cached under the new keyring")
		}
	})
	t.Run("removed key fails even though cached", func(t *testing.T) {
		for _, tt := range []struct {
			name          string
			before, after []*keys.Key
			signer        *keys.Key
		}{
			{"last key of its alg", []*keys.Key{ecKey(), edKey()}, []*keys.Key{ecKey()}, edKey()},
			{"alg still in use", []*keys.Key{ecKey(), ecKey2()}, []*keys.Key{ecKey()}, ecKey2()},
		} {
			f := newFixture(t)
			f.holder.Store(must(keys.NewKeyring(tt.before[0], tt.before[1:]...)))
			raw := forge(by(tt.signer))
			must(f.v.Verify(raw))
			f.holder.Store(must(keys.NewKeyring(tt.after[0], tt.after[1:]...)))
			if _, err := f.v.Verify(raw); err != ErrUnknownKey {
				t.Errorf("%s: err = %v, want ErrUnknownKey", tt.name, err)
			}
		}
	})
	t.Run("entry not honoured after exp + leeway", func(t *testing.T) {
		f := newFixture(t)
		raw := forge(by(f.ec))
		a := must(f.v.Verify(raw))
		f.clock.Set(t0.Add(testTTL + testLeeway - time.Second))
		if b, err := f.v.Verify(raw); err != nil || b != a {
			t.Fatalf("within leeway: %v, cached %v", err, b == a)
		}
		f.clock.Set(t0.Add(testTTL + testLeeway))
		if _, err := f.v.Verify(raw); err != ErrExpired {
			t.Fatalf("err = %v, want ErrExpired", err)
		}
		if n := f.v.cache.len(); n != 0 {
			t.Errorf("stale entry kept: %d entries", n)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		for _, size := range []int{1, 3, 16, 40} {
			f := newFixture(t)
			v := NewVerifier(VerifierOptions{Issuer: testIssuer, Audiences: []string{testAudience}, Keys: f.holder, Now: f.clock.Now, CacheSize: size})
			for i := range 2*size + 20 {
				must(v.Verify(forge(by(f.ed), c("jti", fmt.Sprint(i)))))
				if n := v.cache.len(); n > size {
					t.Fatalf("CacheSize %d: %d entries", size, n)
				}
			}
		}
	})
	t.Run("eviction prefers expired entries", func(t *testing.T) {
		c := newCache(2)
		r := must(keys.NewKeyring(ecKey()))
		old, live, fresh := [32]byte{1}, [32]byte{2}, [32]byte{3}
		c.put(old, r, &Claims{}, t0)
		c.put(live, r, &Claims{}, t0.Add(time.Hour))
		c.put(fresh, r, &Claims{}, t0.Add(time.Hour))
		if _, ok := c.get(live, r, t0.Add(time.Minute)); !ok {
			t.Error("live entry evicted before the expired one")
		}
	})
}

// Concurrent verifies while the keyring is swapped: run with -race.
func TestVerifyConcurrent(t *testing.T) {
	f := newFixture(t)
	ringB := must(keys.NewKeyring(f.ec, f.ed, f.rs))
	tokens := []string{forge(by(f.ec)), forge(by(f.ed)), forge(by(f.rs)), forge(by(f.ec), c("jti", "2"))}
	v := NewVerifier(VerifierOptions{Issuer: testIssuer, Audiences: []string{testAudience}, Leeway: testLeeway, Keys: f.holder, Now: f.clock.Now, CacheSize: 2})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 50 {
				if g == 0 && i%5 == 0 {
					if i%10 == 0 {
						f.holder.Store(ringB)
					} else {
						f.holder.Store(f.ring)
					}
				}
				if _, err := v.Verify(tokens[(g+i)%len(tokens)]); err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestMint(t *testing.T) {
	for _, k := range []*keys.Key{ecKey(), edKey(), rsKey()} {
		t.Run(string(k.Alg), func(t *testing.T) {
			f := newFixture(t)
			f.holder.Store(must(keys.NewKeyring(k)))
			raw, exp, err := f.m.Mint("user-1", "sid-1", map[string]any{"email": "a@example.com"})
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(t0.Add(testTTL)) {
				t.Errorf("exp = %v", exp)
			}
			parts := strings.Split(raw, ".")
			var hdr map[string]any
			var cl map[string]json.RawMessage
			if json.Unmarshal(must(base64.RawURLEncoding.DecodeString(parts[0])), &hdr) != nil ||
				json.Unmarshal(must(base64.RawURLEncoding.DecodeString(parts[1])), &cl) != nil {
				t.Fatalf("token segments are not JSON")
			}
			if hdr["alg"] != string(k.Alg) || hdr["typ"] != "at+jwt" || hdr["kid"] != k.ID || len(hdr) != 3 {
				t.Errorf("header = %v", hdr)
			}
			if string(cl["aud"]) != `"`+testAudience+`"` {
				t.Errorf("aud = %s, want a single string", cl["aud"])
			}
			if sig := must(base64.RawURLEncoding.DecodeString(parts[2])); k.Alg == keys.ES256 && len(sig) != 64 {
				t.Errorf("ES256 signature is %d bytes, want 64 (RFC 7518 §3.4)", len(sig))
			}
			got, err := f.v.Verify(raw)
			if err != nil {
				t.Fatalf("Verify(Mint) = %v", err)
			}
			if got.Subject != "user-1" || got.SessionID != "sid-1" || got.KeyID != k.ID || !got.ExpiresAt.Equal(exp) ||
				!got.IssuedAt.Equal(t0) || got.Extra["email"] != "a@example.com" {
				t.Errorf("claims = %+v", got)
			}
			if jti := must(base64.RawURLEncoding.DecodeString(got.ID)); len(jti) != 16 {
				t.Errorf("jti is %d bytes", len(jti))
			}
			raw2, _, _ := f.m.Mint("user-1", "sid-1", nil)
			if got2 := must(f.v.Verify(raw2)); got2.ID == got.ID || got2.Extra != nil {
				t.Errorf("second token: jti %s (first %s), Extra %v", got2.ID, got.ID, got2.Extra)
			}
		})
	}
}

// errAny in a table accepts any non-nil error.
var errAny = errors.New("any error")

func TestMintErrors(t *testing.T) {
	f := newFixture(t)
	empty := NewMinter(MinterOptions{Issuer: testIssuer, Audience: testAudience, TTL: testTTL, Keys: &keys.Holder{}})
	tests := []struct {
		name     string
		m        *Minter
		sub, sid string
		extra    map[string]any
		want     error
	}{
		{"no keyring", empty, "u", "s", nil, ErrNoKeyring},
		{"no Keys", NewMinter(MinterOptions{}), "u", "s", nil, ErrNoKeyring},
		{"empty subject", f.m, "", "s", nil, ErrMissingClaim},
		{"empty sid", f.m, "u", "", nil, ErrMissingClaim},
		{"unmarshalable extra", f.m, "u", "s", map[string]any{"f": func() {}}, errAny},
		{"json.Number not a number", f.m, "u", "s", map[string]any{"n": json.Number("1,2")}, errAny},
	}
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "typ", "cnf", "client_id", "auth_time", "acr", "amr", "scope"} {
		tests = append(tests, struct {
			name     string
			m        *Minter
			sub, sid string
			extra    map[string]any
			want     error
		}{"reserved " + name, f.m, "u", "s", map[string]any{"ok": 1, name: "x"}, ErrReservedClaim})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.m.Mint(tt.sub, tt.sid, tt.extra)
			if err == nil || tt.want != errAny && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestReserved(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"iss", true}, {"sub", true}, {"aud", true}, {"exp", true}, {"nbf", true}, {"iat", true}, {"jti", true},
		{"sid", true}, {"typ", true}, {"cnf", true}, {"client_id", true}, {"auth_time", true}, {"acr", true},
		{"amr", true}, {"scope", true},
		{"email", false}, {"roles", false}, {"ISS", false}, {"", false}, {"groups", false}, {"sub ", false},
	}
	for _, tt := range tests {
		if got := Reserved(tt.name); got != tt.want {
			t.Errorf("Reserved(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

var sentinels = []error{
	ErrTooLarge, ErrMalformed, ErrHeader, ErrType, ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrExpired,
	ErrNotYetValid, ErrIssuer, ErrAudience, ErrMissingClaim, ErrNoKeyring,
}

// FuzzVerify: arbitrary strings never panic, and every failure is exactly
// one of the sentinels (so no error ever carries token text).
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	for _, tt := range tokenCases(fx) {
		f.Add(forge(tt.s, tt.mods...))
	}
	for _, tt := range rawCases(fx) {
		if len(tt.raw) <= defaultMaxTokenBytes {
			f.Add(tt.raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := fx.v.Verify(raw)
		if err == nil {
			if got == nil || got.Subject == "" || got.SessionID == "" || got.ID == "" {
				t.Fatalf("accepted with claims %+v", got)
			}
			return
		}
		for _, s := range sentinels {
			if err == s {
				return
			}
		}
		t.Fatalf("error is not a sentinel: %v", err)
	})
}

func TestExpiredUnverified(t *testing.T) {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier(VerifierOptions{Issuer: "i", Audiences: []string{"a"}, Leeway: 30 * time.Second, Now: func() time.Time { return now }, MaxTokenBytes: 8192, CacheSize: 1})
	tok := func(payload string) string { return b64(`{"alg":"ES256"}`) + "." + b64(payload) + ".sig" }
	cases := []struct {
		name, raw string
		expired   bool
	}{
		{"an hour ago", tok(`{"exp":1799996400}`), true},
		{"within leeway", tok(`{"exp":1799999990}`), false},
		{"just past leeway", tok(`{"exp":1799999970}`), true},
		{"future", tok(`{"exp":1800000900}`), false},
		{"no exp", tok(`{"sub":"x"}`), false},
		{"exp as string", tok(`{"exp":"1"}`), false},
		{"not json", b64(`{}`) + "." + b64(`nope`) + ".s", false},
		{"one segment", "abc", false},
		{"bad base64", "a.!!!.c", false},
	}
	for _, c := range cases {
		if got := v.ExpiredUnverified(c.raw); got != c.expired {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}

// Text answers the same for a verified token, whose claims are rendered
// once, as for Claims built by hand, rendered on each call.
func TestClaimsText(t *testing.T) {
	f := newFixture(t)
	raw := forge(by(f.ec), c("n", 42), c("pi", 3.5), c("ok", true), c("roles", []string{"a", "b"}),
		c("org", map[string]any{"id": 7}), c("empty", ""))
	got, err := f.v.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	byHand := &Claims{Subject: got.Subject, SessionID: got.SessionID, Issuer: got.Issuer, ID: got.ID,
		ExpiresAt: got.ExpiresAt, Extra: got.Extra}
	want := map[string]string{
		"sub": "user-1", "sid": "sid-1", "iss": testIssuer, "jti": "jti-1",
		"exp":   strconv.FormatInt(got.ExpiresAt.Unix(), 10),
		"email": "a@example.com", "n": "42", "pi": "3.5", "ok": "true",
		"roles": `["a","b"]`, "org": `{"id":7}`, "empty": "",
	}
	for name, text := range want {
		for _, cl := range []*Claims{got, byHand} {
			if s, ok := cl.Text(name); !ok || s != text {
				t.Errorf("Text(%q) = %q, %v; want %q", name, s, ok, text)
			}
		}
	}
	for _, absent := range []string{"nope", "aud", "iat", "Email"} {
		for _, cl := range []*Claims{got, byHand} {
			if s, ok := cl.Text(absent); ok {
				t.Errorf("Text(%q) = %q, want absent", absent, s)
			}
		}
	}
}

// len returns the number of entries.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
