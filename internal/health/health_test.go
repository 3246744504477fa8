package health

import (
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func TestReadiness(t *testing.T) {
	r := New()
	var keyring atomic.Bool
	r.Add("keyring", true, func() Status {
		if keyring.Load() {
			return Status{OK: true}
		}
		return Status{Message: "waiting for the first usable keyring"}
	})
	r.Add("store", false, func() Status { return Status{Message: "connection refused"} })

	get := func(path string) (int, string) {
		w := httptest.NewRecorder()
		r.Readyz(w, httptest.NewRequest("GET", path, nil))
		return w.Code, w.Body.String()
	}
	cases := []struct {
		name       string
		step       func()
		path       string
		code       int
		wantInBody string
	}{
		{"waits for the keyring", func() {}, "/readyz", 503, "keyring: waiting for the first usable keyring"},
		{"an informational check never gates", func() { keyring.Store(true) }, "/readyz", 200, "ready"},
		{"verbose lists every check", func() {}, "/readyz?verbose", 200, "[-]store (informational): connection refused"},
		{"verbose marks passing checks", func() {}, "/readyz?verbose", 200, "[+]keyring: ok"},
		{"draining fails readiness", r.Drain, "/readyz", 503, "shutting down"},
	}
	for _, c := range cases {
		c.step()
		code, body := get(c.path)
		if code != c.code || !strings.Contains(body, c.wantInBody) {
			t.Errorf("%s: %d %q", c.name, code, body)
		}
	}
	w := httptest.NewRecorder()
	r.Livez(w, httptest.NewRequest("GET", "/healthz", nil))
	if w.Code != 200 {
		t.Errorf("liveness %d while draining", w.Code)
	}
}
