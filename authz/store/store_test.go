package store

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestCloneNil(t *testing.T) {
	if (*Family)(nil).Clone() != nil {
		t.Fatal("nil Clone is not nil")
	}
}

func TestCloneIsDeep(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	orig := func() *Family {
		return &Family{
			ID: "f", Subject: "alice", Policy: "shop", CreatedAt: now, IdleExpiresAt: now, AbsoluteExpiresAt: now,
			Claims: MustClaims(map[string]any{
				"n": 1.0, "s": "x", "nil": nil, "uid": json.Number("1541815603606036481"),
				"list": []any{"a", map[string]any{"k": []any{1.0}}},
				"obj":  map[string]any{"inner": map[string]any{"v": "w"}},
			}),
			Secrets: [][]byte{{1}, {2}}, Successor: []byte{9}, Version: 3,
			Provider: []byte{5, 6}, ProviderSID: "sid-1", ProviderRefreshAt: now, LeaseUntil: now,
		}
	}
	f := orig()
	c := f.Clone()
	if !reflect.DeepEqual(f, c) {
		t.Fatalf("clone differs:\n%#v\n%#v", f, c)
	}
	tests := []struct {
		name   string
		mutate func(c *Family)
	}{
		{"decoded claims", func(c *Family) {
			m, _ := c.Claims.Map()
			m["new"] = true
			m["list"].([]any)[1].(map[string]any)["k"].([]any)[0] = 2.0
		}},
		{"secret bytes", func(c *Family) { c.Secrets[0][0] = 7 }},
		{"secrets slice", func(c *Family) { c.Secrets[1] = nil }},
		{"successor", func(c *Family) { c.Successor[0] = 7 }},
		{"provider tokens", func(c *Family) { c.Provider[0] = 7 }},
	}
	for _, tc := range tests {
		c := f.Clone()
		tc.mutate(c)
		if !reflect.DeepEqual(f, orig()) {
			t.Errorf("%s: mutating the clone changed the original", tc.name)
		}
	}
}

func TestCloneKeepsNilness(t *testing.T) {
	c := (&Family{ID: "f"}).Clone()
	if !c.Claims.IsZero() || c.Secrets != nil || c.Successor != nil {
		t.Fatalf("clone of empty family allocated: %#v", c)
	}
}

// Hashes share one backing array in a clone; appending to one must not
// overwrite the next.
func TestCloneSecretsAreIndependent(t *testing.T) {
	f := &Family{Secrets: [][]byte{{1, 1}, nil, {}, {2, 2}}}
	c := f.Clone()
	if !reflect.DeepEqual(f, c) {
		t.Fatalf("clone differs: %#v", c)
	}
	_ = append(c.Secrets[0], 9)
	if c.Secrets[3][0] != 2 {
		t.Fatal("append to one hash overwrote the next")
	}
}

// Claims keep the digits they were given and decode strictly.
func TestClaims(t *testing.T) {
	c, err := EncodeClaims(map[string]any{"uid": json.Number("1541815603606036481"), "b": "x"})
	if err != nil || c.JSON() != `{"b":"x","uid":1541815603606036481}` {
		t.Fatalf("EncodeClaims = %q, %v", c.JSON(), err)
	}
	m, err := c.Map()
	if err != nil || m["uid"] != json.Number("1541815603606036481") {
		t.Fatalf("Map = %#v, %v", m, err)
	}
	if z, _ := EncodeClaims(nil); !z.IsZero() {
		t.Fatal("no claims encode to something")
	}
	if m, err := (Claims{}).Map(); m != nil || err != nil {
		t.Fatalf("zero Claims decode to %#v, %v", m, err)
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `null`, `[1]`, `{"a":`, `"x"`} {
		if _, err := RawClaims([]byte(bad)).Map(); err == nil {
			t.Errorf("Map accepted %s", bad)
		}
	}
}
