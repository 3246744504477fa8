package keys

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// t0 is the fixed "now" of the lifecycle tests.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// lc is the production default lifecycle: access TTL 15m, leeway 30s.
var lc = Lifecycle{AccessTTL: 15 * time.Minute, Leeway: 30 * time.Second}

const (
	minute = time.Minute
	hour   = time.Hour
)

// PEM fixtures of the Secret tests.
var (
	ecPEM   = sync.OnceValue(func() []byte { return pkcs8(p256Key()) })
	ecPEMB  = sync.OnceValue(func() []byte { return pkcs8(p256KeyB()) })
	sec1PEM = sync.OnceValue(func() []byte { return pemOf("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(p256Key()))) })
	edPEM   = sync.OnceValue(func() []byte { return pkcs8(edKey()) })
	rsaPEM  = sync.OnceValue(func() []byte { return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa2048())) })
	weakPEM = sync.OnceValue(func() []byte { return pemOf("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsa1024())) })
	p384PEM = sync.OnceValue(func() []byte { return pkcs8(p384Key()) })
	allPEMs = func() [][]byte {
		return [][]byte{ecPEM(), ecPEMB(), sec1PEM(), edPEM(), rsaPEM(), weakPEM(), p384PEM()}
	}
)

type (
	data = map[string][]byte
	ann  = map[string]string
)

func TestParseSecret(t *testing.T) {
	const p = AnnotationPrefix
	ts := "2026-11-25T12:00:00Z"
	later := "2026-11-25T13:00:00Z"
	tests := []struct {
		name      string
		data      data
		ann       ann
		wantNames []string // entries returned, even with an error
		wantErr   error
		wantInErr string
	}{
		{"PKCS#8 P-256", data{"k1.pem": ecPEM()}, nil, []string{"k1"}, nil, ""},
		{"SEC1 P-256", data{"k1.pem": sec1PEM()}, nil, []string{"k1"}, nil, ""},
		{"PKCS#1 RSA-2048", data{"k1.pem": rsaPEM()}, nil, []string{"k1"}, nil, ""},
		{"Ed25519", data{"k1.pem": edPEM()}, nil, []string{"k1"}, nil, ""},
		{"three keys ordered by name", data{"k3.pem": edPEM(), "k1.pem": ecPEM(), "k2.pem": rsaPEM()}, nil, []string{"k1", "k2", "k3"}, nil, ""},
		{"all three annotations", data{"k1.pem": ecPEM()}, ann{p + "k1.published-at": ts, p + "k1.activate-at": ts, p + "k1.retire-at": later}, []string{"k1"}, nil, ""},
		{"offset and fraction", data{"k1.pem": ecPEM()}, ann{p + "k1.activate-at": "2026-11-25T13:00:00.5+01:00"}, []string{"k1"}, nil, ""},
		{"other annotations ignored", data{"k1.pem": ecPEM()}, ann{"kubectl.kubernetes.io/last-applied-configuration": "{}", "meta.helm.sh/release-name": "x", "silentauth.dev/k1.activate-at": "soon"}, []string{"k1"}, nil, ""},
		{"empty Secret", nil, nil, nil, nil, ""},
		{"bad PEM", data{"k1.pem": []byte("nope")}, nil, nil, ErrInvalidPEM, "data entry k1.pem: invalid PEM private key: no PEM block found"},
		{"RSA-1024", data{"k1.pem": ecPEM(), "k2.pem": weakPEM()}, nil, []string{"k1"}, ErrUnsupportedKey, "data entry k2.pem: unsupported key: RSA modulus of 1024 bits"},
		{"P-384", data{"k1.pem": p384PEM()}, nil, nil, ErrUnsupportedKey, "data entry k1.pem: unsupported key: ECDSA on P-384"},
		{"same key twice", data{"a.pem": ecPEM(), "b.pem": sec1PEM()}, nil, []string{"a"}, ErrDuplicateKID, "data entry b.pem: duplicate kid: same key as a.pem"},
		{"bad timestamp", data{"k1.pem": ecPEM()}, ann{p + "k1.activate-at": "tomorrow"}, nil, ErrSecretFormat, `annotation keys.silentauth.dev/k1.activate-at: "tomorrow" is not an RFC 3339 time`},
		{"date only", data{"k1.pem": ecPEM()}, ann{p + "k1.retire-at": "2026-11-25"}, nil, ErrSecretFormat, `"2026-11-25" is not an RFC 3339 time`},
		{"empty timestamp", data{"k1.pem": ecPEM()}, ann{p + "k1.activate-at": ""}, nil, ErrSecretFormat, `"" is not an RFC 3339 time`},
		{"annotation without data", data{"k1.pem": ecPEM()}, ann{p + "k9.activate-at": ts}, []string{"k1"}, ErrOrphanAnnotation, "annotation keys.silentauth.dev/k9.activate-at: annotation without a data entry: there is no data entry k9.pem"},
		{"retire-at equals activate-at", data{"k1.pem": ecPEM()}, ann{p + "k1.activate-at": ts, p + "k1.retire-at": ts}, nil, ErrSecretFormat, "annotation keys.silentauth.dev/k1.retire-at: 2026-11-25T12:00:00Z is not after activate-at"},
		{"retire-at before activate-at", data{"k1.pem": ecPEM()}, ann{p + "k1.activate-at": later, p + "k1.retire-at": ts}, nil, ErrSecretFormat, "is not after activate-at 2026-11-25T13:00:00Z"},
		{"data key not .pem", data{"k1.pem": ecPEM(), "k2.key": edPEM()}, nil, []string{"k1"}, ErrSecretFormat, "data entry k2.key: not <name>.pem"},
		{"data key upper case", data{"K1.pem": ecPEM()}, nil, nil, ErrSecretFormat, "data entry K1.pem: not <name>.pem"},
		{"data key name too long", data{strings.Repeat("k", 41) + ".pem": ecPEM()}, nil, nil, ErrSecretFormat, "not <name>.pem"},
		{"data key tls.crt", data{"tls.crt": ecPEM()}, nil, nil, ErrSecretFormat, "data entry tls.crt: not <name>.pem"},
		{"unknown silentauth annotation", data{"k1.pem": ecPEM()}, ann{p + "k1.activate_at": ts}, []string{"k1"}, ErrSecretFormat, "annotation keys.silentauth.dev/k1.activate_at: unknown"},
		{"annotation with bad name", data{"k1.pem": ecPEM()}, ann{p + "-k1.activate-at": ts}, []string{"k1"}, ErrSecretFormat, "annotation keys.silentauth.dev/-k1.activate-at: unknown"},
		{"bad key's annotations are no orphans", data{"k1.pem": []byte("x")}, ann{p + "k1.activate-at": ts}, nil, ErrInvalidPEM, "data entry k1.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := ParseSecret(tt.data, tt.ann)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, ErrSecretFormat) {
					t.Errorf("err %v does not wrap ErrSecretFormat", err)
				}
				if !strings.Contains(err.Error(), tt.wantInErr) {
					t.Errorf("err = %v\nwant it to contain %q", err, tt.wantInErr)
				}
				for _, pem := range allPEMs() {
					assertNoKeyMaterial(t, err, pem)
				}
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
				if e.Key == nil || e.Key.Signer == nil {
					t.Errorf("entry %s has no private key", e.Name)
				}
			}
			if !slices.Equal(names, tt.wantNames) {
				t.Errorf("entries = %v, want %v", names, tt.wantNames)
			}
		})
	}
}

func TestParseSecretTimestamps(t *testing.T) {
	entries, err := ParseSecret(data{"k1.pem": ecPEM(), "k2.pem": edPEM()}, ann{
		AnnotationPrefix + "k1.published-at": "2026-11-01T00:00:00Z",
		AnnotationPrefix + "k1.activate-at":  "2026-11-02T00:00:00Z",
		AnnotationPrefix + "k1.retire-at":    " 2026-11-03T00:00:00+01:00 ",
	})
	if err != nil {
		t.Fatal(err)
	}
	day := func(d, h int) time.Time { return time.Date(2026, 11, d, h, 0, 0, 0, time.UTC) }
	k1, k2 := entries[0], entries[1]
	if !k1.PublishedAt.Equal(day(1, 0)) || !k1.ActivateAt.Equal(day(2, 0)) || !k1.RetireAt.Equal(day(2, 23)) {
		t.Errorf("k1 times = %v %v %v", k1.PublishedAt, k1.ActivateAt, k1.RetireAt)
	}
	if !k2.PublishedAt.IsZero() || !k2.ActivateAt.IsZero() || !k2.RetireAt.IsZero() {
		t.Errorf("k2 has times without annotations: %+v", k2)
	}
	if k1.Key.ID != mustKey(t, p256Key()).ID || k2.Key.Alg != EdDSA {
		t.Errorf("keys = %s %s", k1.Key.ID, k2.Key.Alg)
	}
}

// Every problem is reported at once, one *EntryError per line, each naming
// its entry, none quoting key material.
func TestParseSecretReportsEverything(t *testing.T) {
	_, err := ParseSecret(
		data{"k1.pem": ecPEM(), "k2.pem": weakPEM(), "k3.pem": []byte("garbage"), "README": []byte("hi")},
		ann{
			AnnotationPrefix + "k1.activate-at": "noon",
			AnnotationPrefix + "k4.retire-at":   "2026-11-25T12:00:00Z",
		})
	want := []string{
		"data entry README: not <name>.pem",
		"data entry k2.pem: unsupported key: RSA modulus of 1024 bits",
		"data entry k3.pem: invalid PEM private key",
		`annotation keys.silentauth.dev/k1.activate-at: "noon" is not an RFC 3339 time`,
		"annotation keys.silentauth.dev/k4.retire-at: annotation without a data entry",
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(want) {
		t.Fatalf("err = %v\nwant %d joined problems", err, len(want))
	}
	for i, e := range joined.Unwrap() {
		var ee *EntryError
		if !errors.As(e, &ee) || !strings.HasPrefix(e.Error(), want[i]) {
			t.Errorf("problem %d = %q (%T), want prefix %q", i, e, e, want[i])
		}
	}
	for _, pem := range allPEMs() {
		assertNoKeyMaterial(t, err, pem)
	}
}

func TestParseSecretBound(t *testing.T) {
	d := data{}
	for i := range MaxSecretKeys + 1 {
		d[fmt.Sprintf("k%d.pem", i)] = []byte("x") // bad keys count too
	}
	if _, err := ParseSecret(d, nil); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("%d keys, at most %d", MaxSecretKeys+1, MaxSecretKeys)) {
		t.Errorf("err = %v", err)
	}
}

func TestEncodeEntryRoundTrip(t *testing.T) {
	in := []Entry{
		{Name: "k1", Key: mustKey(t, p256Key()), PublishedAt: t0.Add(-48 * hour), ActivateAt: t0.Add(-24 * hour), RetireAt: t0.Add(hour)},
		{Name: "k2", Key: mustKey(t, edKey()), PublishedAt: t0, ActivateAt: t0.Add(90*minute + 500*time.Millisecond)},
		{Name: "k3-rsa", Key: mustKey(t, rsa2048())},
	}
	d, a := data{}, ann{}
	for _, e := range in {
		key, pem, annotations, err := EncodeEntry(e)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(pem, []byte("-----BEGIN PRIVATE KEY-----")) {
			t.Errorf("%s: not PKCS#8: %.30s", e.Name, pem)
		}
		d[key] = pem
		for k, v := range annotations {
			a[k] = v
		}
	}
	if got := a[AnnotationPrefix+"k1.activate-at"]; got != "2026-11-24T12:00:00Z" {
		t.Errorf("activate-at written as %q", got)
	}
	if len(a) != 5 {
		t.Errorf("annotations = %v, want 5 (zero times write none)", a)
	}
	out, err := ParseSecret(d, a)
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		w, g := in[i], out[i]
		if g.Name != w.Name || g.Key.ID != w.Key.ID || !g.PublishedAt.Equal(w.PublishedAt) || !g.ActivateAt.Equal(w.ActivateAt) || !g.RetireAt.Equal(w.RetireAt) {
			t.Errorf("round trip of %s: got %+v", w.Name, g)
		}
	}
}

func TestEncodeEntryRefuses(t *testing.T) {
	ec := mustKey(t, p256Key())
	publicOnly := &Key{ID: ec.ID, Alg: ec.Alg, Public: ec.Public}
	tests := []struct {
		name    string
		e       Entry
		wantErr error
	}{
		{"bad name", Entry{Name: "K1", Key: ec}, ErrSecretFormat},
		{"empty name", Entry{Key: ec}, ErrSecretFormat},
		{"nil key", Entry{Name: "k1"}, ErrInvalidKey},
		{"public only", Entry{Name: "k1", Key: publicOnly}, ErrInvalidKey},
		{"retire before activate", Entry{Name: "k1", Key: ec, ActivateAt: t0, RetireAt: t0}, ErrSecretFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := EncodeEntry(tt.e); !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"k1": true, "a": true, "2026-11-key": true, strings.Repeat("a", 40): true,
		"": false, strings.Repeat("a", 41): false, "-k": false, "k-": false, "K1": false, "k_1": false, "k.1": false, "ké": false,
	} {
		if got := ValidName(name); got != want {
			t.Errorf("ValidName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestStateAt(t *testing.T) {
	keep := lc.Keep() // 15m30s
	act, ret := t0, t0.Add(hour)
	full := Entry{ActivateAt: act, RetireAt: ret}
	tests := []struct {
		name string
		e    Entry
		now  time.Time
		want State
	}{
		{"before activate-at", full, act.Add(-time.Nanosecond), StateNext},
		{"at activate-at", full, act, StateActive},
		{"before retire-at", full, ret.Add(-time.Nanosecond), StateActive},
		{"at retire-at", full, ret, StateRetiring},
		{"just before keep ends", full, ret.Add(keep - time.Nanosecond), StateRetiring},
		{"when keep ends", full, ret.Add(keep), StateGone},
		{"long after", full, ret.Add(1000 * hour), StateGone},
		{"no timestamps", Entry{}, t0, StateActive},
		{"no activate-at, before retire-at", Entry{RetireAt: ret}, t0, StateActive},
		{"no activate-at, at retire-at", Entry{RetireAt: ret}, ret, StateRetiring},
		{"no retire-at, long after", Entry{ActivateAt: act}, act.Add(1000 * hour), StateActive},
		{"no retire-at, before", Entry{ActivateAt: act}, act.Add(-hour), StateNext},
		{"zero keep", full, ret, StateRetiring},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lc.StateAt(tt.e, tt.now); got != tt.want {
				t.Errorf("StateAt = %s, want %s", got, tt.want)
			}
		})
	}
	if got := (Lifecycle{}).StateAt(full, ret); got != StateGone {
		t.Errorf("zero keep at retire-at = %s, want gone", got)
	}
}

// The refresh horizon: a retired key keeps verifying refresh tokens until
// retire-at + the sessions' idle TTL, past the end of its access tokens
// (gone, out of the JWKS), never less than that end.
func TestRefreshHorizon(t *testing.T) {
	idle := 30 * 24 * time.Hour
	rl := Lifecycle{AccessTTL: lc.AccessTTL, Leeway: lc.Leeway, RefreshTTL: idle}
	act, ret := t0, t0.Add(hour)
	full := Entry{ActivateAt: act, RetireAt: ret}
	tests := []struct {
		name      string
		l         Lifecycle
		e         Entry
		now       time.Time
		state     State
		refreshes bool
	}{
		{"next", rl, full, act.Add(-time.Nanosecond), StateNext, true},
		{"active", rl, full, act, StateActive, true},
		{"retiring", rl, full, ret, StateRetiring, true},
		{"gone, within the idle TTL", rl, full, ret.Add(rl.Keep()), StateGone, true},
		{"gone, just before the idle TTL ends", rl, full, ret.Add(idle - time.Nanosecond), StateGone, true},
		{"gone, when the idle TTL ends", rl, full, ret.Add(idle), StateGone, false},
		{"gone, long after", rl, full, ret.Add(1000 * 24 * hour), StateGone, false},
		{"no retire-at: refreshes forever", rl, Entry{ActivateAt: act}, act.Add(1000 * 24 * hour), StateActive, true},
		{"zero refresh TTL counts as keep: still retiring", lc, full, ret.Add(lc.Keep() - time.Nanosecond), StateRetiring, true},
		{"zero refresh TTL counts as keep: gone", lc, full, ret.Add(lc.Keep()), StateGone, false},
		{"refresh TTL shorter than keep counts as keep", Lifecycle{AccessTTL: hour, RefreshTTL: minute}, full, ret.Add(hour - time.Nanosecond), StateRetiring, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.l.StateAt(tt.e, tt.now); got != tt.state {
				t.Errorf("StateAt = %s, want %s", got, tt.state)
			}
			if got := tt.l.RefreshesAt(tt.e, tt.now); got != tt.refreshes {
				t.Errorf("RefreshesAt = %v, want %v", got, tt.refreshes)
			}
			// The keyring agrees with the entry alone, next to a key
			// that signs throughout.
			k, other := mustKey(t, p256Key()), mustKey(t, edKey())
			e := tt.e
			e.Name, e.Key = "k1", k
			r, err := NewSecretKeyring([]Entry{e, {Name: "k0", Key: other, ActivateAt: act.Add(-hour)}}, tt.l, act.Add(-hour))
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := r.RefreshKey(k.ID, tt.now); ok != tt.refreshes {
				t.Errorf("RefreshKey = %v, want %v", ok, tt.refreshes)
			}
			if _, ok := r.Lookup(k.ID, tt.now); ok != (tt.state != StateGone) {
				t.Errorf("Lookup = %v in state %s", ok, tt.state)
			}
			st := r.States(tt.now)[1]
			if st.Name != "k1" || st.State != tt.state || !st.RefreshesUntil.Equal(tt.l.RefreshesUntil(tt.e)) {
				t.Errorf("States = %+v, want refreshes until %v", st, tt.l.RefreshesUntil(tt.e))
			}
		})
	}
	if got, want := rl.RefreshesUntil(full), ret.Add(idle); !got.Equal(want) {
		t.Errorf("RefreshesUntil = %v, want %v", got, want)
	}
	if _, ok := must(NewSecretKeyring([]Entry{{Name: "k1", Key: mustKey(t, p256Key())}}, rl, t0)).RefreshKey("no-such-kid", t0); ok {
		t.Error("RefreshKey of an unknown kid")
	}
	if _, err := NewSecretKeyring([]Entry{{Name: "k1", Key: mustKey(t, p256Key())}}, Lifecycle{RefreshTTL: -1}, t0); err == nil {
		t.Error("a negative refresh TTL is accepted")
	}
}

// jwksOf returns r's JWKS body at now.
func jwksOf(r *Keyring, now time.Time) []byte {
	b, _ := r.JWKS(now)
	return b
}

func kidsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS %s: %v", body, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

// The standard rotation: k1 signs, k2 is published an hour before it signs,
// then k1 retires and stays verifying until its last token expires.
func TestSecretKeyringRotation(t *testing.T) {
	k1, k2 := mustKey(t, p256Key()), mustKey(t, edKey())
	activate2 := t0.Add(hour)
	retire1 := activate2.Add(10 * minute)
	gone1 := retire1.Add(lc.Keep())
	r, err := NewSecretKeyring([]Entry{
		{Name: "k2", Key: k2, ActivateAt: activate2},
		{Name: "k1", Key: k1, ActivateAt: t0.Add(-24 * hour), RetireAt: retire1},
	}, lc, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, etagBefore := r.JWKS(t0)
	tests := []struct {
		name       string
		now        time.Time
		wantSigner string
		verifies   []string // of k1, k2
		jwks       []string
		states     []State // of k1, k2
	}{
		{"publish before sign", t0, "k1", []string{"k1", "k2"}, []string{"k1", "k2"}, []State{StateActive, StateNext}},
		{"just before activation", activate2.Add(-time.Nanosecond), "k1", []string{"k1", "k2"}, []string{"k1", "k2"}, []State{StateActive, StateNext}},
		{"at activate-at exactly", activate2, "k2", []string{"k1", "k2"}, []string{"k1", "k2"}, []State{StateActive, StateActive}},
		{"at retire-at", retire1, "k2", []string{"k1", "k2"}, []string{"k1", "k2"}, []State{StateRetiring, StateActive}},
		{"keep after retire", gone1.Add(-time.Nanosecond), "k2", []string{"k1", "k2"}, []string{"k1", "k2"}, []State{StateRetiring, StateActive}},
		{"gone", gone1, "k2", []string{"k2"}, []string{"k2"}, []State{StateGone, StateActive}},
		{"long after", gone1.Add(1000 * hour), "k2", []string{"k2"}, []string{"k2"}, []State{StateGone, StateActive}},
	}
	byName := map[string]*Key{"k1": k1, "k2": k2}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Signer(tt.now); got.ID != byName[tt.wantSigner].ID {
				t.Errorf("Signer = %s, want %s", got.ID, tt.wantSigner)
			}
			for name, k := range byName {
				if _, ok := r.Lookup(k.ID, tt.now); ok != slices.Contains(tt.verifies, name) {
					t.Errorf("Lookup(%s) = %v", name, ok)
				}
			}
			body, _ := r.JWKS(tt.now)
			var want []string
			for _, n := range tt.jwks {
				want = append(want, byName[n].ID)
			}
			if got := kidsOf(t, body); !slices.Equal(got, want) {
				t.Errorf("JWKS kids = %v, want %v", got, want)
			}
			st := r.States(tt.now)
			if len(st) != 2 || st[0].Name != "k1" || st[0].State != tt.states[0] || st[1].State != tt.states[1] {
				t.Errorf("States = %+v, want %v", st, tt.states)
			}
			if st[0].Signing == (tt.wantSigner != "k1") || st[1].Signing == (tt.wantSigner != "k2") {
				t.Errorf("Signing flags = %v %v", st[0].Signing, st[1].Signing)
			}
			if d := r.Degraded(tt.now); d != "" {
				t.Errorf("Degraded = %q", d)
			}
		})
	}
	// Dropping k1 changes the ETag; nothing else does.
	if _, etag := r.JWKS(activate2); etag != etagBefore {
		t.Errorf("ETag changed without a change of keys")
	}
	if _, etag := r.JWKS(gone1); etag == etagBefore {
		t.Errorf("ETag did not change when k1 left the JWKS")
	}
	st := r.States(t0)[0]
	if !st.VerifiesUntil.Equal(gone1) || !st.RetireAt.Equal(retire1) || st.KID != k1.ID || st.Alg != ES256 || !st.PublishedAt.Equal(t0) {
		t.Errorf("k1 status = %+v", st)
	}
}

func TestSecretKeyringSigner(t *testing.T) {
	a, b, c := mustKey(t, p256Key()), mustKey(t, edKey()), mustKey(t, p256KeyB())
	tests := []struct {
		name    string
		entries []Entry
		now     time.Time
		want    *Key
	}{
		{"first key of a fresh install: active at once", []Entry{{Name: "k1", Key: a}}, t0, a},
		{"latest activate-at wins", []Entry{{Name: "k1", Key: a, ActivateAt: t0.Add(-2 * hour)}, {Name: "k2", Key: b, ActivateAt: t0.Add(-hour)}}, t0, b},
		{"whatever the names", []Entry{{Name: "z", Key: a, ActivateAt: t0.Add(-2 * hour)}, {Name: "a", Key: b, ActivateAt: t0.Add(-hour)}}, t0, b},
		{"ties: greatest name", []Entry{{Name: "k1", Key: a, ActivateAt: t0}, {Name: "k2", Key: b, ActivateAt: t0}}, t0, b},
		{"ties without activate-at", []Entry{{Name: "k2", Key: a}, {Name: "k1", Key: b}}, t0, a},
		{"next key does not sign", []Entry{{Name: "k1", Key: a}, {Name: "k2", Key: b, ActivateAt: t0.Add(time.Second)}}, t0, a},
		{"retired key does not sign", []Entry{{Name: "k1", Key: a, RetireAt: t0}, {Name: "k2", Key: b, ActivateAt: t0.Add(-hour)}, {Name: "k3", Key: c, ActivateAt: t0.Add(-2 * hour)}}, t0, b},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewSecretKeyring(tt.entries, lc, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Signer(tt.now); got.ID != tt.want.ID || got.Signer == nil {
				t.Errorf("Signer = %s, want %s", got.ID, tt.want.ID)
			}
		})
	}
}

// Every key's retire-at passed without a successor: the most recently
// active key keeps signing and verifying, and Degraded says so.
func TestSecretKeyringDegraded(t *testing.T) {
	k1, k2, k3 := mustKey(t, p256Key()), mustKey(t, edKey()), mustKey(t, p256KeyB())
	retire1, retire2 := t0.Add(-3*hour), t0.Add(-2*hour)
	entries := []Entry{
		{Name: "k1", Key: k1, ActivateAt: t0.Add(-48 * hour), RetireAt: retire1},
		{Name: "k2", Key: k2, ActivateAt: t0.Add(-49 * hour), RetireAt: retire2}, // older, but retired last
	}
	r, err := NewSecretKeyring(entries, lc, t0) // loads: a restart must not turn this into an outage
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Signer(t0); got.ID != k2.ID {
		t.Errorf("Signer = %s, want k2 (active most recently)", got.ID)
	}
	if d := r.Degraded(t0); !strings.Contains(d, "no key is active") || !strings.Contains(d, "k2") {
		t.Errorf("Degraded = %q", d)
	}
	if _, ok := r.Lookup(k2.ID, t0.Add(1000*hour)); !ok {
		t.Error("the degraded signer does not verify its own tokens")
	}
	if _, ok := r.Lookup(k1.ID, t0); ok {
		t.Error("k1, gone and not signing, still verifies")
	}
	if got := kidsOf(t, jwksOf(r, t0)); !slices.Equal(got, []string{k2.ID}) {
		t.Errorf("JWKS = %v, want only k2", got)
	}
	if st := r.States(t0); st[1].State != StateRetiring || !st[1].Signing || st[0].State != StateGone {
		t.Errorf("States = %+v", st)
	}

	// A successor that activates later: k2 signed until then, so it
	// verifies until that time plus keep, not retire-at plus keep.
	activate3 := t0.Add(hour)
	r, err = NewSecretKeyring(append(entries, Entry{Name: "k3", Key: k3, ActivateAt: activate3}), lc, t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		now      time.Time
		signer   *Key
		degraded bool
		k2ok     bool
	}{
		{t0, k2, true, true},
		{activate3.Add(-time.Nanosecond), k2, true, true},
		{activate3, k3, false, true},
		{activate3.Add(lc.Keep() - time.Nanosecond), k3, false, true},
		{activate3.Add(lc.Keep()), k3, false, false},
	} {
		if _, ok := r.RefreshKey(k2.ID, tt.now); ok != tt.k2ok { // no refresh TTL: as long as it verifies
			t.Errorf("at %v: k2 refreshes %v", tt.now, ok)
		}
		_, ok := r.Lookup(k2.ID, tt.now)
		if got := r.Signer(tt.now); got.ID != tt.signer.ID || (r.Degraded(tt.now) != "") != tt.degraded || ok != tt.k2ok {
			t.Errorf("at %v: signer %s, degraded %q, k2 verifies %v", tt.now, got.ID, r.Degraded(tt.now), ok)
		}
	}
	// Its refresh tokens, too, verify from the end of its signing on.
	rl := lc
	rl.RefreshTTL = 24 * hour
	r2 := must(NewSecretKeyring(append(entries, Entry{Name: "k3", Key: k3, ActivateAt: activate3}), rl, t0))
	if st := r2.States(t0)[1]; st.Name != "k2" || !st.RefreshesUntil.Equal(activate3.Add(24*hour)) {
		t.Errorf("k2 status = %+v, want refreshes until %v", st, activate3.Add(24*hour))
	}
	if _, ok := r2.RefreshKey(k2.ID, activate3.Add(24*hour)); ok {
		t.Error("k2 refreshes past activate-at of k3 + refresh TTL")
	}
	// Before every activate-at (a clock behind the builder's): never nil.
	if got := r.Signer(t0.Add(-1000 * hour)); got == nil || r.Degraded(t0.Add(-1000*hour)) == "" {
		t.Errorf("Signer long before = %v, degraded %q", got, r.Degraded(t0.Add(-1000*hour)))
	}
}

func TestNewSecretKeyringRefuses(t *testing.T) {
	a, b := mustKey(t, p256Key()), mustKey(t, edKey())
	publicOnly := &Key{ID: a.ID, Alg: a.Alg, Public: a.Public}
	tests := []struct {
		name    string
		entries []Entry
		l       Lifecycle
		wantErr error
		wantIn  string
	}{
		{"no entries", nil, lc, ErrNoActiveKey, "holds no keys"},
		{"next keys only", []Entry{{Name: "k1", Key: a, ActivateAt: t0.Add(time.Second)}}, lc, ErrNoActiveKey, "the first, k1, activates at 2026-11-25T12:00:01Z"},
		{"duplicate kid", []Entry{{Name: "k1", Key: a}, {Name: "k2", Key: a}}, lc, ErrDuplicateKID, "k1 and k2 hold the same key"},
		{"duplicate name", []Entry{{Name: "k1", Key: a}, {Name: "k1", Key: b}}, lc, ErrSecretFormat, "two entries named k1"},
		{"invalid name", []Entry{{Name: "K1", Key: a}}, lc, ErrSecretFormat, "name"},
		{"nil key", []Entry{{Name: "k1"}}, lc, ErrInvalidKey, "entry k1"},
		{"public-only key", []Entry{{Name: "k1", Key: publicOnly}}, lc, ErrInvalidKey, "no private key"},
		{"retire-at not after activate-at", []Entry{{Name: "k1", Key: a, ActivateAt: t0, RetireAt: t0}}, lc, ErrSecretFormat, "not after"},
		{"negative lifecycle", []Entry{{Name: "k1", Key: a}}, Lifecycle{AccessTTL: -1}, nil, "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSecretKeyring(tt.entries, tt.l, t0)
			if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Errorf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantIn)
			}
		})
	}
}

// Revoke: the entry is gone from the next Secret, so from the next keyring.
func TestSecretKeyringRevoke(t *testing.T) {
	k1, k2 := mustKey(t, p256Key()), mustKey(t, edKey())
	before := must(NewSecretKeyring([]Entry{{Name: "k1", Key: k1}, {Name: "k2", Key: k2, ActivateAt: t0.Add(-hour)}}, lc, t0))
	after := must(NewSecretKeyring([]Entry{{Name: "k1", Key: k1}}, lc, t0))
	if _, ok := before.Lookup(k2.ID, t0); !ok {
		t.Fatal("k2 does not verify before the revoke")
	}
	if _, ok := after.Lookup(k2.ID, t0); ok {
		t.Error("revoked k2 still verifies")
	}
	if after.Signer(t0).ID != k1.ID || slices.Contains(kidsOf(t, jwksOf(after, t0)), k2.ID) {
		t.Error("revoked k2 still signs or is published")
	}
}

// Equal Secrets give byte-identical JWKS on every replica.
func TestSecretKeyringJWKSDeterministic(t *testing.T) {
	mk := func(order ...int) []byte {
		all := []Entry{
			{Name: "k1", Key: mustKey(t, p256Key()), RetireAt: t0.Add(hour)},
			{Name: "k2", Key: mustKey(t, edKey()), ActivateAt: t0.Add(-hour)},
			{Name: "k3", Key: mustKey(t, rsa2048()), ActivateAt: t0.Add(2 * hour)},
		}
		var es []Entry
		for _, i := range order {
			es = append(es, all[i])
		}
		b, _ := must(NewSecretKeyring(es, lc, t0)).JWKS(t0)
		return b
	}
	a, b := mk(0, 1, 2), mk(2, 0, 1)
	if !bytes.Equal(a, b) {
		t.Errorf("JWKS depends on entry order:\n%s\n%s", a, b)
	}
	for _, private := range []string{`"d"`, `"p"`, `"q"`, `"dp"`} {
		if bytes.Contains(a, []byte(private)) {
			t.Errorf("JWKS publishes %s", private)
		}
	}
}

// Concurrent first requests for one interval all get the same body.
func TestJWKSConcurrent(t *testing.T) {
	r := must(NewSecretKeyring([]Entry{{Name: "k1", Key: mustKey(t, p256Key())}, {Name: "k2", Key: mustKey(t, edKey())}}, lc, t0))
	var wg sync.WaitGroup
	etags := make([]string, 16)
	for i := range etags {
		wg.Go(func() { _, etags[i] = r.JWKS(t0) })
	}
	wg.Wait()
	for _, e := range etags {
		if e != etags[0] {
			t.Fatalf("ETags differ: %v", etags)
		}
	}
}

// Keyrings without timestamps behave as before: first key active forever,
// the others verification-only forever.
func TestStaticKeyringIsTimeless(t *testing.T) {
	ec, ed := mustKey(t, p256Key()), mustKey(t, edKey())
	r := must(NewKeyring(ec, ed))
	for _, now := range []time.Time{{}, t0, t0.Add(1e6 * hour)} {
		if r.Signer(now).ID != ec.ID || r.Degraded(now) != "" {
			t.Errorf("at %v: signer %s, degraded %q", now, r.Signer(now).ID, r.Degraded(now))
		}
		if _, ok := r.Lookup(ed.ID, now); !ok {
			t.Errorf("at %v: verification-only key refused", now)
		}
		if _, ok := r.RefreshKey(ec.ID, now); !ok {
			t.Errorf("at %v: the static signer does not refresh", now)
		}
		if got := kidsOf(t, jwksOf(r, now)); len(got) != 2 {
			t.Errorf("at %v: JWKS %v", now, got)
		}
		st := r.States(now)
		if st[0].State != StateActive || !st[0].Signing || st[1].State != StateRetiring || st[1].Signing || st[1].Name != "" {
			t.Errorf("at %v: States %+v", now, st)
		}
	}
}

// The handler follows its clock: when a key leaves the JWKS, the ETag a
// client holds stops matching and the new body comes back.
func TestJWKSHandlerClock(t *testing.T) {
	k1, k2 := mustKey(t, p256Key()), mustKey(t, edKey())
	retire1 := t0.Add(10 * minute)
	r := must(NewSecretKeyring([]Entry{{Name: "k1", Key: k1, ActivateAt: t0.Add(-2 * hour), RetireAt: retire1}, {Name: "k2", Key: k2, ActivateAt: retire1}}, lc, t0))
	var h Holder
	h.Store(r)
	now := t0
	handler := jwksHandler(&h, time.Minute, func() time.Time { return now })
	get := func(etag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		return rec
	}
	first := get("")
	etag := first.Header().Get("ETag")
	if first.Code != http.StatusOK || len(kidsOf(t, first.Body.Bytes())) != 2 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	if rec := get(etag); rec.Code != http.StatusNotModified {
		t.Errorf("same time, same ETag: %d", rec.Code)
	}
	now = retire1.Add(lc.Keep())
	rec := get(etag)
	if rec.Code != http.StatusOK || rec.Header().Get("ETag") == etag || !slices.Equal(kidsOf(t, rec.Body.Bytes()), []string{k2.ID}) {
		t.Errorf("after k1 is gone: %d ETag %s body %s", rec.Code, rec.Header().Get("ETag"), rec.Body)
	}
	if got := rec.Header().Get("Content-Length"); got != fmt.Sprint(rec.Body.Len()) {
		t.Errorf("Content-Length %s for %d bytes", got, rec.Body.Len())
	}
}

func BenchmarkJWKSHandler(b *testing.B) {
	r := must(NewSecretKeyring([]Entry{{Name: "k1", Key: mustKey(b, p256Key()), RetireAt: t0.Add(hour)}, {Name: "k2", Key: mustKey(b, edKey())}}, lc, t0))
	var h Holder
	h.Store(r)
	handler := jwksHandler(&h, time.Minute, func() time.Time { return t0 })
	req := httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil)
	for b.Loop() {
		handler.ServeHTTP(httptest.NewRecorder(), req)
	}
}

func BenchmarkSignerLookup(b *testing.B) {
	k2 := mustKey(b, edKey())
	r := must(NewSecretKeyring([]Entry{{Name: "k1", Key: mustKey(b, p256Key()), RetireAt: t0.Add(hour)}, {Name: "k2", Key: k2, ActivateAt: t0.Add(-hour)}}, lc, t0))
	for b.Loop() {
		r.Signer(t0)
		r.Lookup(k2.ID, t0)
	}
}
