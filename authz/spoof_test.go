package authz

import (
	"slices"
	"testing"
)

// Every client-sent spelling of a header only silentauth sets upstream is
// removed: CGI, WSGI, PHP and many frameworks read x_user_id and x-user-id
// as one variable, so a client's "x_user_id: admin" must never reach the
// upstream beside silentauth's x-user-id. Before, only the exact names were
// removed.
func TestIdentityHeaderSpellingsRemoved(t *testing.T) {
	r := newRig(t)
	at, rt := r.login("alice", nil)
	cases := []struct {
		header string
		want   string // what the upstream receives under that name ("" = nothing)
	}{
		{"x-user-id", "alice"}, // overwritten, not removed
		{"x_user_id", ""},
		{"x-user_id", ""},
		{"x_user-id", ""},
		{"X_User_Id", ""},
		{"x-user-role", ""}, // a claim the session lacks: removed, not set
		{"x_user_role", ""},
		{"x-silentauth-access-token", ""},
		{"x_silentauth_access_token", ""},
		{"x-user-idx", "mallory"},
		{"x_request_id", "mallory"},
	}
	for _, c := range cases {
		for _, credentials := range [][]string{
			{"authorization", "Bearer " + at},
			{"cookie", ours(at, rt)},
		} {
			_, v := r.run(t, req("GET", "/api", append(credentials, c.header, "mallory")...))
			if !v.allow || v.received["x-user-id"] != "alice" {
				t.Fatalf("%s: allow=%v x-user-id %q", c.header, v.allow, v.received["x-user-id"])
			}
			if got := v.received[c.header]; got != c.want {
				t.Errorf("%s (%s): upstream receives %q, want %q", c.header, credentials[0], got, c.want)
			}
		}
	}

	// Public paths and refreshed requests are scrubbed the same way, and
	// the list is in a stable order.
	_, v := r.run(t, req("GET", "/healthz", "x_user_id", "mallory", "x-user_role", "admin", "X_USER_ID", "mallory"))
	if !v.allow || !slices.Equal(v.remove, []string{"X_USER_ID", "x-user_role", "x_user_id"}) {
		t.Errorf("public path: allow=%v remove %v", v.allow, v.remove)
	}
	r.clock.Advance(testAccessTTL + 1)
	_, v = r.run(t, req("GET", "/api", "cookie", ours(at, rt), "x_user_id", "mallory"))
	if !v.allow || v.received["x_user_id"] != "" || v.received["x-user-id"] != "alice" {
		t.Errorf("refreshed: allow=%v x_user_id %q x-user-id %q", v.allow, v.received["x_user_id"], v.received["x-user-id"])
	}
}

// The scrub runs on every allowed request: with no spelling to remove it
// allocates nothing.
func TestScrubAllocatesNothingWithoutSpellings(t *testing.T) {
	r := newRig(t)
	req, err := FromCheckRequest(req("GET", "/api", "authorization", "Bearer x", "accept", "application/json", "cookie", "theme=dark", "x-request-id", "1"))
	if err != nil {
		t.Fatal(err)
	}
	d := &Decision{Remove: make([]string, 0, 4)}
	if n := testing.AllocsPerRun(100, func() {
		d.Remove = d.Remove[:0]
		r.engine.def.scrubUpstream(req, r.cookies.Scan(req.Header("cookie")), d)
	}); n != 0 || len(d.Remove) != 0 {
		t.Errorf("%v allocations, remove %v", n, d.Remove)
	}
}
