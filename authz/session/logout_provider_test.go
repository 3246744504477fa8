package session_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/silentauth/silentauth/authz/session"
)

// LogoutFamily hands the family (its provider tokens) only to the holder
// of the current secret, revoked or not: a guessed secret, even for a
// family already revoked, gets nothing; a superseded one is a reuse.
func TestLogoutFamilyOnlyToTheHolder(t *testing.T) {
	fx := newFixture(lt)
	is, err := fx.m.StartLogin(t.Context(), session.Login{Subject: "alice", Provider: []byte("sealed"), ProviderSID: "sid-1"})
	if err != nil {
		t.Fatal(err)
	}
	id, rt := is.Family.ID, is.RefreshToken
	guess := id + "." + randomB64(32)

	if f, err := fx.m.LogoutFamily(t.Context(), guess); f != nil || !errors.Is(err, session.ErrUnknownSecret) {
		t.Fatalf("guessed secret: family %v, err %v", f != nil, err)
	}
	if !fx.stored(t, id).RevokedAt.IsZero() {
		t.Fatal("a guessed secret revoked the family")
	}
	f, err := fx.m.LogoutFamily(t.Context(), rt)
	if err != nil || f == nil || !bytes.Equal(f.Provider, []byte("sealed")) || f.ProviderSID != "sid-1" || f.ID != id {
		t.Fatalf("current secret: family %+v, err %v", f, err)
	}
	if s := fx.stored(t, id); s.RevokedAt.IsZero() || s.RevokeReason != "logout" {
		t.Fatalf("not revoked: %v %q", s.RevokedAt, s.RevokeReason)
	}
	// Again (a second click): the holder still gets the family; a guess
	// at the revoked family gets nothing and no error, as Logout.
	if f, err := fx.m.LogoutFamily(t.Context(), rt); err != nil || f == nil {
		t.Errorf("second logout: family %v, err %v", f != nil, err)
	}
	if f, err := fx.m.LogoutFamily(t.Context(), guess); err != nil || f != nil {
		t.Errorf("guess at a revoked family: family %v, err %v", f != nil, err)
	}

	// A superseded secret: reuse, the family revoked, nothing handed out.
	is2, _ := fx.m.StartLogin(t.Context(), session.Login{Subject: "alice", Provider: []byte("sealed")})
	old := is2.RefreshToken
	next := fx.refresh(t, old)
	fx.present(t, next.RefreshToken)
	fx.clk.Advance(lt.Grace * 2)
	if f, err := fx.m.LogoutFamily(t.Context(), old); f != nil || !errors.Is(err, session.ErrReuse) {
		t.Errorf("superseded secret: family %v, err %v", f != nil, err)
	}
	if fx.stored(t, is2.Family.ID).RevokeReason != "reuse" {
		t.Error("reuse at logout did not revoke the family")
	}
}
