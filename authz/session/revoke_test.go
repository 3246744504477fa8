package session_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store/memstore"
	"github.com/silentauth/silentauth/authz/store/storetest"
	"github.com/silentauth/silentauth/internal/testenv/fakeclock"
)

// hookLog records what OnRevoke was told.
type hookLog struct {
	mu  sync.Mutex
	got []session.Revocation
}

func (h *hookLog) record(r session.Revocation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, r)
}

func (h *hookLog) byFamily() map[string][]session.Revocation {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := map[string][]session.Revocation{}
	for _, r := range h.got {
		m[r.Family] = append(m[r.Family], r)
	}
	return m
}

// TestOnRevokeOncePerFamily: every way a family ends reaches the hook with
// its cause, once, however often it is revoked again afterwards.
func TestOnRevokeOncePerFamily(t *testing.T) {
	clk := fakeclock.New(epoch)
	var h hookLog
	p := &storetest.FakeProvider{Now: clk.Now}
	grantEnded := false
	p.Fail = func() error {
		if grantEnded {
			return fmt.Errorf("invalid_grant: %w", session.ErrProviderGrant)
		}
		return nil
	}
	m := session.New(memstore.New(clk.Now), lt, clk.Now, session.OnRevoke(h.record), session.WithProvider(p, time.Second))
	ctx := t.Context()
	start := func(subject, sid string) session.Issued {
		t.Helper()
		l := session.Login{Subject: subject, ProviderSID: sid}
		if sid != "" {
			l.Provider, l.ProviderRefreshAt = p.Issue(), clk.Now().Add(30*time.Minute)
		}
		is, err := m.StartLogin(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		return is
	}
	reused := start("alice", "")
	next, err := m.Refresh(ctx, reused.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	m.Confirm(ctx, next.RefreshToken)
	clk.Advance(time.Minute) // past grace
	loggedOut := start("alice", "")
	admin := start("bob", "")
	back1, back2 := start("carol", "op-sid"), start("dave", "op-sid")
	ended := start("erin", "other-sid")

	if _, err := m.Refresh(ctx, reused.RefreshToken, ""); err == nil {
		t.Fatal("reuse refreshed")
	}
	if err := m.Logout(ctx, loggedOut.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(ctx, admin.Family.ID, ""); err != nil {
		t.Fatal(err)
	}
	if n, err := m.RevokeSID(ctx, "op-sid", session.CauseBackChannel, time.Time{}); n != 2 || err != nil {
		t.Fatalf("RevokeSID = %d, %v; want 2", n, err)
	}
	clk.Advance(30 * time.Minute) // erin's provider tokens are due
	grantEnded = true
	if _, err := m.Refresh(ctx, ended.RefreshToken, ""); err == nil {
		t.Fatal("ended grant refreshed")
	}
	// Revoking again, in every way, reports nothing more.
	for _, is := range []session.Issued{reused, loggedOut, admin, back1, ended} {
		if err := m.Revoke(ctx, is.Family.ID, session.CauseAdmin); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := m.RevokeSID(ctx, "op-sid", "", time.Time{}); n != 0 || err != nil {
		t.Fatalf("second RevokeSID = %d, %v; want 0", n, err)
	}
	for _, s := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if _, err := m.RevokeSubject(ctx, s, session.CauseAdmin, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}

	got := h.byFamily()
	tests := []struct {
		name           string
		is             session.Issued
		cause, subject string
		sid            string
		gen            uint64
	}{
		{"reuse", reused, session.CauseReuse, "alice", "", 2},
		{"logout", loggedOut, session.CauseLogout, "alice", "", 1},
		{"admin", admin, session.CauseAdmin, "bob", "", 1},
		{"back-channel 1", back1, session.CauseBackChannel, "carol", "op-sid", 1},
		{"back-channel 2", back2, session.CauseBackChannel, "dave", "op-sid", 1},
		{"provider", ended, session.CauseProvider, "erin", "other-sid", 1},
	}
	for _, tc := range tests {
		rs := got[tc.is.Family.ID]
		want := session.Revocation{Cause: tc.cause, Subject: tc.subject, Family: tc.is.Family.ID, ProviderSID: tc.sid, Generation: tc.gen}
		if len(rs) != 1 || rs[0] != want {
			t.Errorf("%s: hook got %+v, want once %+v", tc.name, rs, want)
		}
	}
	if len(got) != len(tests) {
		t.Errorf("hook saw %d families, want %d", len(got), len(tests))
	}
}

func TestRevokeSIDAndCauses(t *testing.T) {
	fx := newFixture(lt)
	ctx := t.Context()
	var fams []session.Issued
	for _, sid := range []string{"s1", "s1", "s2", ""} {
		is, err := fx.m.StartLogin(ctx, session.Login{Subject: "alice", ProviderSID: sid, Provider: []byte("p")})
		if err != nil {
			t.Fatal(err)
		}
		fams = append(fams, is)
	}
	tests := []struct {
		sid, cause string
		want       int
		wantErr    bool
	}{
		{"", session.CauseBackChannel, 0, false},
		{"unknown", session.CauseBackChannel, 0, false},
		{"s1", "api", 0, true}, // the old strings are no longer causes
		{"s1", "whatever", 0, true},
		{"s1", "", 2, false}, // "" reads backchannel
		{"s1", session.CauseBackChannel, 0, false},
	}
	for _, tc := range tests {
		n, err := fx.m.RevokeSID(ctx, tc.sid, tc.cause, time.Time{})
		if n != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("RevokeSID(%q, %q) = %d, %v; want %d, error %v", tc.sid, tc.cause, n, err, tc.want, tc.wantErr)
		}
	}
	for i, want := range []string{"backchannel", "backchannel", "", ""} {
		if got := fx.stored(t, fams[i].Family.ID).RevokeReason; got != want {
			t.Errorf("family %d: reason %q, want %q", i, got, want)
		}
	}
	if err := fx.m.Revoke(ctx, fams[2].Family.ID, "subject"); err == nil {
		t.Error("Revoke with an old reason string succeeded")
	}
	if _, err := fx.m.RevokeSubject(ctx, "alice", "nope", time.Time{}); err == nil {
		t.Error("RevokeSubject with an unknown cause succeeded")
	}
}

func TestCauseOf(t *testing.T) {
	for _, tc := range []struct{ reason, want string }{
		{"api", "admin"}, {"subject", "admin"}, {"admin", "admin"}, {"logout", "logout"}, {"reuse", "reuse"},
		{"provider", "provider"}, {"backchannel", "backchannel"}, {"", ""}, {"other", ""},
	} {
		if got := session.CauseOf(tc.reason); got != tc.want {
			t.Errorf("CauseOf(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
	if got := session.Causes(); len(got) != 5 {
		t.Errorf("Causes = %v", got)
	}
}

// TestLoginDescription: the user agent and client address are kept
// cleaned and bounded; LastUsedAt starts at creation and follows each
// rotation, and a grace replay does not move it.
func TestLoginDescription(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name, ua, addr, wantUA, wantAddr string
	}{
		{"plain", "curl/8.5.0", "192.0.2.1", "curl/8.5.0", "192.0.2.1"},
		{"empty", "", "", "", ""},
		{"controls dropped", "evil\r\nX-Injected: 1\x1b[31m", "10.0.0.1\x00", "evilX-Injected: 1[31m", "10.0.0.1"},
		{"bidi and zero-width dropped", "ab\u202ecd\u200b", "::1", "abcd", "::1"},
		{"invalid UTF-8 dropped", "a\xffb", "", "ab", ""},
		{"capped", long, strings.Repeat("1", 100), long[:session.MaxUserAgent], strings.Repeat("1", session.MaxClientAddress)},
		{"capped on a character boundary", strings.Repeat("é", 200), "", strings.Repeat("é", session.MaxUserAgent/2), ""},
	}
	for _, tc := range tests {
		fx := newFixture(lt)
		is, err := fx.m.StartLogin(t.Context(), session.Login{Subject: "alice", UserAgent: tc.ua, ClientAddress: tc.addr})
		if err != nil {
			t.Fatal(err)
		}
		f := fx.stored(t, is.Family.ID)
		if f.UserAgent != tc.wantUA || f.ClientAddress != tc.wantAddr {
			t.Errorf("%s: stored %q, %q; want %q, %q", tc.name, f.UserAgent, f.ClientAddress, tc.wantUA, tc.wantAddr)
		}
	}

	fx := newFixture(lt)
	is := fx.start(t, "alice")
	if f := fx.stored(t, is.Family.ID); !f.LastUsedAt.Equal(epoch) || !f.CreatedAt.Equal(epoch) {
		t.Fatalf("new family: last used %v, created %v; want both %v", f.LastUsedAt, f.CreatedAt, epoch)
	}
	fx.clk.Advance(10 * time.Minute)
	next := fx.refresh(t, is.RefreshToken)
	fx.clk.Advance(time.Second)
	fx.refresh(t, is.RefreshToken) // grace replay: no write
	if f := fx.stored(t, next.Family.ID); !f.LastUsedAt.Equal(epoch.Add(10*time.Minute)) || !f.CreatedAt.Equal(epoch) {
		t.Fatalf("after rotation: last used %v, created %v", f.LastUsedAt, f.CreatedAt)
	}
}
