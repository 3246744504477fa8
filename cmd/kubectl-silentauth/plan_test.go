package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
)

// t0 is "now" in every plan test; times are minutes from it.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// no marks an absent timestamp.
const no = -1 << 30

func tm(m int) time.Time {
	if m == no {
		return time.Time{}
	}
	return t0.Add(time.Duration(m) * time.Minute)
}

// k is a key named name, published, activating and retiring at those
// minutes from t0 (no: absent).
func k(t *testing.T, name string, pub, act, ret int) keys.Entry {
	t.Helper()
	key, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	return keys.Entry{Name: name, Key: key, PublishedAt: tm(pub), ActivateAt: tm(act), RetireAt: tm(ret)}
}

func fresh(t *testing.T, name string) keys.Entry { return k(t, name, no, no, no) }

var p = planner{Now: t0, Lifecycle: defaultLifecycle}

// check compares a plan's error with want: "" for success, else a part
// of the refusal.
func check(t *testing.T, what string, err error, want string) bool {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: refused: %v", what, err)
	case want != "" && err == nil:
		t.Errorf("%s: allowed, want refusal containing %q", what, want)
	case want != "" && (!errors.Is(err, errRefused) || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: %v, want refusal containing %q", what, err, want)
	default:
		return want == ""
	}
	return false
}

func TestPlanAdd(t *testing.T) {
	active := func() keys.Entry { return k(t, "k1", -600, no, no) }
	tests := []struct {
		name   string
		cur    []keys.Entry
		new    keys.Entry
		act    int // --activate-in, minutes (no: default)
		force  bool
		want   string
		wantAt int // activate-at of the new key (no: active at once)
	}{
		{"add to empty: active at once", nil, fresh(t, "k2"), no, false, "", no},
		{"add to existing: next at +30m", []keys.Entry{active()}, fresh(t, "k2"), no, false, "", 30},
		{"add with a longer lead", []keys.Entry{active()}, fresh(t, "k2"), 120, false, "", 120},
		{"add activating in 10m refused", []keys.Entry{active()}, fresh(t, "k2"), 10, false, "sooner than 30m", 0},
		{"add activating in 10m, --force", []keys.Entry{active()}, fresh(t, "k2"), 10, true, "", 10},
		{"add to empty with a future activation refused", nil, fresh(t, "k2"), 60, false, "must be active at once", 0},
		{"add when only retiring keys: active at once", []keys.Entry{k(t, "k1", -600, no, -5)}, fresh(t, "k2"), no, false, "", no},
		{"add when only a next key: active at once", []keys.Entry{k(t, "k1", -5, 25, no)}, fresh(t, "k2"), no, false, "", no},
		{"name taken", []keys.Entry{active()}, fresh(t, "k1"), no, false, "already exists", 0},
		{"invalid name", nil, fresh(t, "K_1"), no, false, "invalid key name", 0},
	}
	for _, tc := range tests {
		c, err := p.Add(tc.cur, tc.new, tm(tc.act), tc.force)
		if !check(t, tc.name, err, tc.want) {
			continue
		}
		got := c.add[0]
		if !got.ActivateAt.Equal(tm(tc.wantAt)) || !got.PublishedAt.Equal(t0) || !got.RetireAt.IsZero() || len(c.set)+len(c.remove) != 0 {
			t.Errorf("%s: added %+v (set %d, remove %d), want activate-at %v, published-at now", tc.name, got, len(c.set), len(c.remove), tm(tc.wantAt))
		}
	}
}

func TestPlanAddDefaultName(t *testing.T) {
	e := fresh(t, "")
	c, err := p.Add(nil, e, time.Time{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.add[0].Name, defaultName(e.Key.ID, t0); got != want || !keys.ValidName(got) || !strings.HasPrefix(got, "k-20261125-") {
		t.Errorf("name %q, want %q", got, want)
	}
}

func TestPlanActivate(t *testing.T) {
	tests := []struct {
		name  string
		cur   []keys.Entry
		key   string
		at    int // --at, minutes (no: now)
		force bool
		want  string
	}{
		{"published 40m ago, activate now", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -40, 0+50, no)}, "k2", no, false, ""},
		{"published 10m ago, activate now: too early", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k2", no, false, "published-at + 30m"},
		{"published 10m ago, activate now, --force", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k2", no, true, ""},
		{"published 10m ago, activate at +20m", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 60, no)}, "k2", 20, false, ""},
		{"no published-at", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", no, 60, no)}, "k2", no, false, "no published-at"},
		{"no published-at, --force", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", no, 60, no)}, "k2", no, true, ""},
		{"at or after its retire-at", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -600, 60, 90)}, "k2", 90, false, "never let it sign"},
		{"postpone the only active key", []keys.Entry{k(t, "k1", -600, -300, no)}, "k1", 60, false, "k1 is the only usable key"},
		{"unknown key", []keys.Entry{k(t, "k1", -600, no, no)}, "k9", no, false, "no key named k9; the keys are: k1"},
	}
	for _, tc := range tests {
		c, err := p.Activate(tc.cur, tc.key, tm(tc.at), tc.force)
		if !check(t, tc.name, err, tc.want) {
			continue
		}
		at := tm(tc.at)
		if tc.at == no {
			at = t0
		}
		if len(c.set) != 1 || c.set[0].Name != tc.key || !c.set[0].ActivateAt.Equal(at) {
			t.Errorf("%s: set %+v, want %s activating at %v", tc.name, c.set, tc.key, at)
		}
	}
	// Asking for what is already there changes nothing.
	cur := []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -60, 30, no)}
	if c, err := p.Activate(cur, "k2", tm(30), false); err != nil || !c.empty() {
		t.Errorf("activate at its own activate-at: %+v, %v; want no change", c, err)
	}
}

func TestPlanRetire(t *testing.T) {
	tests := []struct {
		name string
		cur  []keys.Entry
		key  string
		at   int // --at (no: now)
		want string
	}{
		{"the only active key", []keys.Entry{k(t, "k1", -600, no, no)}, "k1", no, "k1 is the only usable key"},
		{"the only active key, later", []keys.Entry{k(t, "k1", -600, no, no)}, "k1", 60, "no key would sign from 2026-11-25T13:00:00Z"},
		{"refusal says what to do", []keys.Entry{k(t, "k1", -600, no, no)}, "k1", no, "kubectl silentauth keys rotate"},
		{"before the successor activates", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k1", no, "no key would sign from 2026-11-25T12:00:00Z"},
		{"says when the successor takes over", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k1", no, "k2 takes over only at 2026-11-25T12:20:00Z"},
		{"when the successor activates", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k1", 20, ""},
		{"the old key once the new one signs", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -60, -30, no)}, "k1", no, ""},
		{"the new key while the old one still could sign", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -60, -30, no)}, "k2", no, ""},
		{"a key that has not activated", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k2", no, "keys revoke k2"},
		{"already retired", []keys.Entry{k(t, "k1", -600, -500, -5), k(t, "k2", -60, -5, no)}, "k1", no, "already retired"},
		{"move a future retire-at", []keys.Entry{k(t, "k1", -600, no, 20), k(t, "k2", -10, 20, no)}, "k1", 40, ""},
		{"unknown key", []keys.Entry{k(t, "k1", -600, no, no)}, "k9", no, "no key named k9"},
	}
	for _, tc := range tests {
		c, err := p.Retire(tc.cur, tc.key, tm(tc.at))
		if !check(t, tc.name, err, tc.want) {
			continue
		}
		at := tm(tc.at)
		if tc.at == no {
			at = t0
		}
		if len(c.set) != 1 || c.set[0].Name != tc.key || !c.set[0].RetireAt.Equal(at) {
			t.Errorf("%s: set %+v, want %s retiring at %v", tc.name, c.set, tc.key, at)
		}
	}
}

func TestPlanCancelRetire(t *testing.T) {
	tests := []struct {
		name string
		cur  []keys.Entry
		key  string
		want string
	}{
		{"abort a rotation, step one", []keys.Entry{k(t, "k1", -600, no, 30), k(t, "k2", 0, 30, no)}, "k1", ""},
		{"a key retiring later", []keys.Entry{k(t, "k1", -600, no, 30)}, "k1", ""},
		{"a retired key", []keys.Entry{k(t, "k1", -600, no, -5), k(t, "k2", -60, -5, no)}, "k1", "cannot sign again"},
		{"unknown key", []keys.Entry{k(t, "k1", -600, no, no)}, "k9", "no key named k9"},
	}
	for _, tc := range tests {
		c, err := p.CancelRetire(tc.cur, tc.key)
		if check(t, tc.name, err, tc.want) && (len(c.set) != 1 || !c.set[0].RetireAt.IsZero()) {
			t.Errorf("%s: set %+v, want %s without retire-at", tc.name, c.set, tc.key)
		}
	}
	// Abort a rotation: cancel, then the successor can go.
	cur := []keys.Entry{k(t, "k1", -600, no, 30), k(t, "k2", 0, 30, no)}
	c, err := p.CancelRetire(cur, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Revoke(apply(cur, c), "k2", false); err != nil {
		t.Errorf("revoke the successor after cancelling: %v", err)
	}
	if c, err := p.CancelRetire([]keys.Entry{k(t, "k1", -600, no, no)}, "k1"); err != nil || !c.empty() {
		t.Errorf("cancel without a retire-at: %+v, %v; want no change", c, err)
	}
}

func TestPlanRevoke(t *testing.T) {
	idle := int(defaultLifecycle.RefreshTTL / time.Minute) // 30 days, in minutes
	tests := []struct {
		name  string
		cur   []keys.Entry
		key   string
		force bool
		want  string // refusal, or a part of the printed line
		ok    bool
	}{
		{"the only active key", []keys.Entry{k(t, "k1", -600, no, no)}, "k1", true, "k1 is the only usable key", false},
		{"the signer while a next key waits", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k1", true, "no key would sign", false},
		{"a next key", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -10, 20, no)}, "k2", false, "signed nothing", true},
		{"a retiring key", []keys.Entry{k(t, "k1", -600, no, -5), k(t, "k2", -60, -5, no)}, "k1", false,
			"k1 may still verify refresh tokens until 2026-12-25T11:55:00Z (in 29d23h55m) (its signing end + the sessions' idle TTL, 30d): " +
				"deleting it before then logs out the sessions whose refresh tokens it made and that have not refreshed since; " +
				"delete it after 2026-12-25T11:55:00Z, or use --force", false},
		{"a retiring key, forced", []keys.Entry{k(t, "k1", -600, no, -5), k(t, "k2", -60, -5, no)}, "k1", true,
			"re-minted through the refresh path, but the sessions whose refresh tokens it made", true},
		{"a gone key within the idle TTL", []keys.Entry{k(t, "k1", -600, no, -60), k(t, "k2", -120, -60, no)}, "k1", false,
			"k1 may still verify refresh tokens until 2026-12-25T11:00:00Z", false},
		{"a gone key within the idle TTL, forced", []keys.Entry{k(t, "k1", -600, no, -60), k(t, "k2", -120, -60, no)}, "k1", true,
			"gone) and its annotations; it no longer verifies access tokens, but the sessions whose refresh tokens it made " +
				"(those that have not refreshed since it stopped signing) are logged out at their next refresh: their token is unknown, " +
				"their cookies are cleared", true},
		{"a gone key a minute before the idle TTL ends", []keys.Entry{k(t, "k1", -2*idle, no, -idle+1), k(t, "k2", -2*idle, -idle+1, no)}, "k1", false,
			"may still verify refresh tokens until 2026-11-25T12:01:00Z (in 1m)", false},
		{"a gone key when the idle TTL ends", []keys.Entry{k(t, "k1", -2*idle, no, -idle), k(t, "k2", -2*idle, -idle, no)}, "k1", false,
			"no longer verifies anything", true},
		{"a gone key once the idle TTL has passed", []keys.Entry{k(t, "k1", -2*idle, no, -idle-1), k(t, "k2", -2*idle, -idle-1, no)}, "k1", false,
			"no longer verifies anything, refresh tokens included", true},
		{"the signer beside another active key", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -60, -30, no)}, "k2", false,
			"k2 may still verify refresh tokens (it has signed, and keeps doing so or has no successor)", false},
		{"the signer beside another active key, forced", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -60, -30, no)}, "k2", true, "stop verifying at once", true},
		// Nothing signed after k1's retire-at until k2 activated: k1 kept
		// signing as the server's fallback, so its refresh tokens run
		// from k2's activate-at.
		{"a degraded signer counts from its successor", []keys.Entry{k(t, "k1", -4*idle, no, -3*idle), k(t, "k2", -3*idle, -idle+10, no)}, "k1", false,
			"until 2026-11-25T12:10:00Z", false},
		{"the successor of a key retiring later", []keys.Entry{k(t, "k1", -600, no, 30), k(t, "k2", 0, 30, no)}, "k2", false, "keys retire k1 --cancel", false},
		{"unknown key", nil, "k1", false, "the Secret holds no keys", false},
	}
	for _, tc := range tests {
		c, err := p.Revoke(tc.cur, tc.key, tc.force)
		if !tc.ok {
			check(t, tc.name, err, tc.want)
			continue
		}
		if !check(t, tc.name, err, "") {
			continue
		}
		if len(c.remove) != 1 || c.remove[0].Name != tc.key || !strings.Contains(strings.Join(c.lines, "\n"), tc.want) {
			t.Errorf("%s: remove %d, lines %q; want %s removed, saying %q", tc.name, len(c.remove), c.lines, tc.key, tc.want)
		}
	}
	// --idle-ttl sets the horizon.
	short := p
	short.Lifecycle.RefreshTTL = time.Hour
	cur := []keys.Entry{k(t, "k1", -600, no, -60), k(t, "k2", -120, -60, no)}
	if _, err := short.Revoke(cur, "k1", false); err != nil {
		t.Errorf("a key retired an idle TTL of 1h ago: %v", err)
	}
	short.Lifecycle.RefreshTTL = 2 * time.Hour
	_, err := short.Revoke(cur, "k1", false)
	check(t, "a key retired 1h ago, idle TTL 2h", err, "until 2026-11-25T13:00:00Z (in 1h)")
}

func TestPlanRotate(t *testing.T) {
	tests := []struct {
		name    string
		cur     []keys.Entry
		lead    int
		force   bool
		want    string
		retired []string // keys whose retire-at becomes the new key's activate-at
	}{
		{"one active key", []keys.Entry{k(t, "k1", -600, no, no)}, 30, false, "", []string{"k1"}},
		{"longer lead", []keys.Entry{k(t, "k1", -600, no, no)}, 120, false, "", []string{"k1"}},
		{"lead of 10m refused", []keys.Entry{k(t, "k1", -600, no, no)}, 10, false, "shorter than 30m", nil},
		{"lead of 10m, --force", []keys.Entry{k(t, "k1", -600, no, no)}, 10, true, "", []string{"k1"}},
		{"two active keys both hand over", []keys.Entry{k(t, "k1", -600, no, no), k(t, "k2", -300, -200, no)}, 30, false, "", []string{"k1", "k2"}},
		{"retiring keys are left alone", []keys.Entry{k(t, "k0", -900, no, -10), k(t, "k1", -600, -10, no)}, 30, false, "", []string{"k1"}},
		{"a later retire-at is brought forward", []keys.Entry{k(t, "k1", -600, no, 600)}, 30, false, "", []string{"k1"}},
		{"the signer retires before the new key activates", []keys.Entry{k(t, "k1", -600, no, 10)}, 30, false, "no key would sign from 2026-11-25T12:10:00Z", nil},
		{"a rotation in progress", []keys.Entry{k(t, "k1", -600, no, 30), k(t, "k2", 0, 30, no)}, 30, false, "abort it: kubectl silentauth keys retire k1 --cancel, then kubectl silentauth keys revoke k2 --yes", nil},
		{"nothing to rotate", nil, 30, false, "keys add", nil},
	}
	for _, tc := range tests {
		c, err := p.Rotate(tc.cur, fresh(t, "new"), time.Duration(tc.lead)*time.Minute, tc.force)
		if !check(t, tc.name, err, tc.want) {
			continue
		}
		at := tm(tc.lead)
		if len(c.add) != 1 || !c.add[0].ActivateAt.Equal(at) || !c.add[0].PublishedAt.Equal(t0) {
			t.Errorf("%s: added %+v, want one key activating at %v", tc.name, c.add, at)
			continue
		}
		var retired []string
		for _, e := range c.set {
			if !e.RetireAt.Equal(c.add[0].ActivateAt) {
				t.Errorf("%s: %s retires at %v, new key activates at %v", tc.name, e.Name, e.RetireAt, c.add[0].ActivateAt)
			}
			retired = append(retired, e.Name)
		}
		if strings.Join(retired, ",") != strings.Join(tc.retired, ",") {
			t.Errorf("%s: retired %q, want %q", tc.name, retired, tc.retired)
		}
		// Exactly one signer before, at, and after the handover.
		after := apply(tc.cur, c)
		for _, m := range []int{0, tc.lead - 1, tc.lead, tc.lead + 1, 10000} {
			s, ok := signer(after, p.Lifecycle, tm(m))
			want := "new"
			if m < tc.lead {
				want = tc.retired[len(tc.retired)-1]
			}
			if !ok || s.Name != want {
				t.Errorf("%s: at +%dm the signer is %q (%v), want %s", tc.name, m, s.Name, ok, want)
			}
		}
	}
}

func TestFirstGap(t *testing.T) {
	tests := []struct {
		name string
		cur  []keys.Entry
		gap  int // no: none
	}{
		{"empty", nil, 0},
		{"one active key", []keys.Entry{k(t, "k1", no, no, no)}, no},
		{"one key retiring later", []keys.Entry{k(t, "k1", no, no, 60)}, 60},
		{"handover at one instant", []keys.Entry{k(t, "k1", no, no, 30), k(t, "k2", 0, 30, no)}, no},
		{"successor a minute late", []keys.Entry{k(t, "k1", no, no, 30), k(t, "k2", 0, 31, no)}, 30},
		{"only a next key", []keys.Entry{k(t, "k2", 0, 30, no)}, 0},
	}
	for _, tc := range tests {
		got, ok := firstGap(tc.cur, p.Lifecycle, t0)
		if ok != (tc.gap != no) || ok && !got.Equal(tm(tc.gap)) {
			t.Errorf("%s: firstGap = %v, %v; want %v", tc.name, got, ok, tm(tc.gap))
		}
	}
}

func TestDefaultName(t *testing.T) {
	tests := []struct{ kid, want string }{
		{"AbCd1234efgh", "k-20261125-abcd1234"},
		{"a_b-C9zzzzzz", "k-20261125-axbxc9zz"},
		{"--______", "k-20261125-xxxxxxxx"},
		{"ab", "k-20261125-abxxxxxx"},
	}
	for _, tc := range tests {
		if got := defaultName(tc.kid, t0.Add(3*time.Hour)); got != tc.want || !keys.ValidName(got) {
			t.Errorf("defaultName(%q) = %q, want %q", tc.kid, got, tc.want)
		}
	}
}

func TestHuman(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{30 * time.Minute, "30m"},
		{90 * time.Minute, "1h30m"},
		{15*time.Minute + 30*time.Second, "15m30s"},
		{50 * time.Hour, "2d2h"},
		{1500 * time.Millisecond, "2s"},
		{0, "0s"},
		{-time.Minute, "-1m"},
	}
	for _, tc := range tests {
		if got := human(tc.d); got != tc.want {
			t.Errorf("human(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
