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
			Claims: map[string]any{
				"n": 1.0, "s": "x", "nil": nil, "uid": json.Number("1541815603606036481"),
				"list":  []any{"a", map[string]any{"k": []any{1.0}}},
				"bytes": []byte{1, 2},
				"strs":  []string{"a"},
				"smap":  map[string]string{"a": "b"},
				"obj":   map[string]any{"inner": map[string]any{"v": []byte{3}}},
			},
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
		{"claims key", func(c *Family) { c.Claims["new"] = true }},
		{"nested slice", func(c *Family) { c.Claims["list"].([]any)[0] = "z" }},
		{"slice in map in slice", func(c *Family) { c.Claims["list"].([]any)[1].(map[string]any)["k"].([]any)[0] = 2.0 }},
		{"bytes claim", func(c *Family) { c.Claims["bytes"].([]byte)[0] = 7 }},
		{"strings claim", func(c *Family) { c.Claims["strs"].([]string)[0] = "z" }},
		{"string map claim", func(c *Family) { c.Claims["smap"].(map[string]string)["a"] = "z" }},
		{"nested bytes", func(c *Family) { c.Claims["obj"].(map[string]any)["inner"].(map[string]any)["v"].([]byte)[0] = 7 }},
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
	if c.Claims != nil || c.Secrets != nil || c.Successor != nil {
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
