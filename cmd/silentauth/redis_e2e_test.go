package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/silentauth/silentauth/internal/testenv/redistest"
)

// metric returns the value of one sample of p's /metrics, 0 when absent.
func (p *proc) metric(t *testing.T, sample string) float64 {
	t.Helper()
	r, err := http.Get("http://" + p.addrs["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func redisConfig(t *testing.T, keys, addr, extra string) string {
	return writeConfig(t, "keys:\n  dir: "+keys+"\nstore:\n  backend: redis\n  redis:\n    addrs: ["+addr+"]\n"+extra+"shutdown: {drain: 0s, timeout: 5s}\n")
}

func TestThreeReplicasShareRedis(t *testing.T) {
	srv := redistest.Start(t)
	dir, key := keyDir(t)
	cfg := redisConfig(t, dir, srv.Addr(), "")
	procs := []*proc{start(t, []string{"--config", cfg}), start(t, []string{"--config", cfg}), start(t, []string{"--config", cfg})}
	clients := []authv3.AuthorizationClient{procs[0].authz(t), procs[1].authz(t), procs[2].authz(t)}
	ctx := context.Background()

	_, s := procs[0].createSession(t, apiToken, `{"subject":"alice"}`)
	cookieHdr := "__Host-sa-at=" + expiredToken(t, key, s.SessionID) + "; __Host-sa-rt=" + s.RefreshToken

	// 50 requests at once, spread over the three processes.
	const n = 50
	var wg sync.WaitGroup
	rts := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := clients[i%3].Check(ctx, envoyRequest("GET", "/api", "cookie", cookieHdr))
			if err != nil || resp.GetOkResponse() == nil {
				t.Errorf("request %d: %v %v", i, resp, err)
				return
			}
			rts[i], _ = cookieOf(setCookies(resp), "__Host-sa-rt")
		}()
	}
	wg.Wait()
	distinct := map[string]bool{}
	for _, rt := range rts {
		distinct[rt] = true
	}
	var rotations, graces, reuses float64
	for _, p := range procs {
		rotations += p.metric(t, `silentauth_check_decisions_total{decision="allow",reason="refreshed"}`)
		graces += p.metric(t, `silentauth_check_decisions_total{decision="allow",reason="refreshed_grace"}`)
		reuses += p.metric(t, `silentauth_check_decisions_total{decision="deny",reason="refresh_reuse"}`)
	}
	t.Logf("50 concurrent refreshes over 3 processes: %d successor(s), %v rotation(s), %v grace answers, %v reuse detections", len(distinct), rotations, graces, reuses)
	if len(distinct) != 1 || distinct[""] || rotations != 1 || graces != n-1 || reuses != 0 {
		t.Fatalf("want one successor, one rotation, 49 grace answers, no reuse")
	}

	// Rotated on one process, replayed within grace on another: the same
	// successor.
	resp, _ := clients[1].Check(ctx, envoyRequest("GET", "/", "cookie", "__Host-sa-rt="+rts[0]))
	next, _ := cookieOf(setCookies(resp), "__Host-sa-rt")
	resp, _ = clients[2].Check(ctx, envoyRequest("GET", "/", "cookie", "__Host-sa-rt="+rts[0]))
	if again, _ := cookieOf(setCookies(resp), "__Host-sa-rt"); next == "" || again != next {
		t.Fatalf("grace replay on another process: %q vs %q", again, next)
	}
}

// outcome counts what a batch of checks answered.
type outcome struct{ allowed, refreshed, unavailable, clearedCookies, other int }

func (o outcome) String() string {
	return fmt.Sprintf("allowed %d (refreshed %d), 503 %d, cookies cleared %d, other %d", o.allowed, o.refreshed, o.unavailable, o.clearedCookies, o.other)
}

func tally(resp *authv3.CheckResponse, err error, o *outcome) {
	switch {
	case err != nil:
		o.other++
	case resp.GetOkResponse() != nil:
		o.allowed++
		if len(setCookies(resp)) > 0 {
			o.refreshed++
		}
	case resp.GetDeniedResponse().GetStatus().GetCode() == 503 && len(setCookies(resp)) == 0:
		o.unavailable++
	default:
		o.other++
	}
	for _, c := range setCookies(resp) {
		if strings.Contains(c, "Max-Age=0") {
			o.clearedCookies++
			break
		}
	}
}

func TestRedisFaultsLoseNothing(t *testing.T) {
	// Append-only with fsync on every write: a crash loses nothing, so
	// "Redis returns" means the same data comes back.
	srv := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	dir, key := keyDir(t)
	cfg := redisConfig(t, dir, srv.Addr(), "    readTimeout: 200ms\n    writeTimeout: 200ms\n    dialTimeout: 200ms\n    maxRetries: 1\n")
	p := start(t, []string{"--config", cfg})
	client := p.authz(t)
	ctx := context.Background()

	const users = 20
	type user struct{ at, expired, rt string }
	var us []user
	for i := range users {
		_, s := p.createSession(t, apiToken, fmt.Sprintf(`{"subject":"user-%d"}`, i))
		us = append(us, user{at: s.AccessToken, expired: expiredToken(t, key, s.SessionID), rt: s.RefreshToken})
	}
	refresh := func(u user, o *outcome) string {
		resp, err := client.Check(ctx, envoyRequest("GET", "/api", "cookie", "__Host-sa-at="+u.expired+"; __Host-sa-rt="+u.rt))
		tally(resp, err, o)
		rt, _ := cookieOf(setCookies(resp), "__Host-sa-rt")
		return rt
	}
	valid := func(u user, o *outcome) {
		resp, err := client.Check(ctx, envoyRequest("GET", "/api", "authorization", "Bearer "+u.at))
		tally(resp, err, o)
	}

	// Redis up: every user refreshes once.
	var up outcome
	for i := range us {
		if rt := refresh(us[i], &up); rt != "" {
			us[i].rt = rt
		}
	}
	if up.refreshed != users {
		t.Fatalf("with Redis up: %v", up)
	}

	// Redis crashes mid-traffic: valid tokens pass, refreshes answer 503
	// and keep the cookies; readiness holds; the store shows as down.
	srv.Stop()
	var down outcome
	for _, u := range us {
		valid(u, &down)
		refresh(u, &down)
	}
	t.Logf("Redis down: %v", down)
	if down.allowed != users || down.unavailable != users || down.clearedCookies != 0 || down.other != 0 {
		t.Fatalf("with Redis down: %v", down)
	}
	if code, body := get(t, "http://"+p.addrs["admin"]+"/readyz?verbose"); code != 200 || !strings.Contains(body, "[-]store (informational)") {
		waitFor(t, 15*time.Second, "store reported down", func() bool {
			code, body = get(t, "http://"+p.addrs["admin"]+"/readyz?verbose")
			return code == 200 && strings.Contains(body, "[-]store (informational)")
		})
	}
	waitFor(t, 15*time.Second, "silentauth_store_up 0", func() bool { return p.metric(t, "silentauth_store_up") == 0 })

	// Redis returns with its data: refreshes work again without a restart,
	// and every family is intact (its current token rotates, nothing was
	// revoked).
	srv.Restart()
	waitFor(t, 15*time.Second, "a refresh after Redis returned", func() bool {
		var o outcome
		resp, err := client.Check(ctx, envoyRequest("GET", "/healthz-probe", "authorization", "Bearer "+us[0].at))
		tally(resp, err, &o)
		return o.allowed == 1 && p.metric(t, "silentauth_store_up") == 1
	})
	var back outcome
	for i := range us {
		if rt := refresh(us[i], &back); rt != "" {
			us[i].rt = rt
		}
	}
	t.Logf("Redis back: %v", back)
	if back.refreshed != users || back.clearedCookies != 0 {
		t.Fatalf("after Redis returned: %v", back)
	}

	// A Redis too slow to answer behaves like one that is down, and
	// recovers by itself once it answers again.
	srv.Pause(3 * time.Second)
	var slow outcome
	start := time.Now()
	for _, u := range us[:5] {
		refresh(u, &slow)
	}
	t.Logf("Redis slow: %v in %v", slow, time.Since(start).Round(time.Millisecond))
	if slow.unavailable != 5 || slow.clearedCookies != 0 {
		t.Fatalf("with Redis slow: %v", slow)
	}
	waitFor(t, 15*time.Second, "a refresh after the slow spell", func() bool {
		var o outcome
		if rt := refresh(us[5], &o); rt != "" {
			us[5].rt = rt
		}
		return o.refreshed == 1
	})
	var after outcome
	for i := range us[:5] {
		if rt := refresh(us[i], &after); rt != "" {
			us[i].rt = rt
		}
	}
	if after.refreshed != 5 || after.clearedCookies != 0 {
		t.Fatalf("after the slow spell: %v", after)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	r, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b)
}

// waitFor polls cond until it holds or d passes: for a real process whose
// state changes on its own schedule, with no clock to inject.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
