package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/token"
)

// binary is the silentauth binary built once for the end-to-end tests,
// stamped as a release build is (make build, make release).
var binary string

// The version and commit the test binary is stamped with.
const (
	stampedVersion = "v0.0.0-e2e"
	stampedCommit  = "e2e0123"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "silentauth-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "silentauth")
	ldflags := "-X github.com/silentauth/silentauth/internal/buildinfo.version=" + stampedVersion +
		" -X github.com/silentauth/silentauth/internal/buildinfo.commit=" + stampedCommit
	out, err := exec.Command("go", "build", "-race", "-ldflags", ldflags, "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building silentauth: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running silentauth process.
type proc struct {
	cmd   *exec.Cmd
	addrs map[string]string // listener name → address
	mu    sync.Mutex
	logs  bytes.Buffer
	done  chan error
}

func (p *proc) Logs() string { p.mu.Lock(); defer p.mu.Unlock(); return p.logs.String() }

const apiToken = "e2e-session-api-token-0123456789"

// start runs silentauth serve with args and env on loopback ports chosen
// by the kernel, and waits until it logs that it is ready.
func start(t *testing.T, args []string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve"}, args...)...)
	cmd.Env = append(os.Environ(),
		"SILENTAUTH_GRPC_ADDRESS=127.0.0.1:0", "SILENTAUTH_PUBLIC_ADDRESS=127.0.0.1:0",
		"SILENTAUTH_SESSION_API_ADDRESS=127.0.0.1:0", "SILENTAUTH_ADMIN_ADDRESS=127.0.0.1:0",
		"SILENTAUTH_API_TOKEN="+apiToken)
	cmd.Env = append(cmd.Env, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, addrs: map[string]string{}, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil {
				if rec["msg"] == "listening" {
					p.addrs[rec["listener"].(string)] = rec["address"].(string)
				}
				if rec["msg"] == "silentauth ready" {
					once.Do(func() { close(ready) })
				}
			}
			p.mu.Unlock()
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case <-ready:
	case err := <-p.done:
		t.Fatalf("silentauth exited before ready: %v\n%s", err, p.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("silentauth not ready after 30s\n%s", p.Logs())
	}
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("silentauth exited with %v\n%s", err, p.Logs())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("silentauth did not stop within 30s of SIGTERM")
	}
}

// keyDir writes a fresh ES256 key as SEC1 PEM (as Helm's genPrivateKey
// does) and returns the directory and the key.
func keyDir(t *testing.T) (string, *keys.Key) {
	t.Helper()
	k, err := keys.Generate(keys.ES256)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k.Signer.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "signing.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, k
}

// writeConfig writes a YAML configuration file.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "silentauth.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// session is the session API's answer.
type sessionResp struct {
	SessionID    string   `json:"session_id"`
	AccessToken  string   `json:"access_token"`
	RefreshToken string   `json:"refresh_token"`
	SetCookie    []string `json:"set_cookie"`
	Error        string   `json:"error"`
	Message      string   `json:"message"`
}

// waitReady waits until the service reports ready: its first keyring is
// loaded (a Secret's keys arrive after the listeners are up).
func (p *proc) waitReady(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "/readyz", func() bool {
		code, _ := get(t, "http://"+p.addrs["admin"]+"/readyz")
		return code == 200
	})
}

func (p *proc) createSession(t *testing.T, auth, body string) (int, sessionResp) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+p.addrs["sessionAPI"]+"/v1/sessions", strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out sessionResp
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("session API answered %d with %q", resp.StatusCode, b)
	}
	if resp.StatusCode == 201 && resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("session API response with tokens is cacheable")
	}
	return resp.StatusCode, out
}

func (p *proc) authz(t *testing.T) authv3.AuthorizationClient {
	t.Helper()
	conn, err := grpc.NewClient(p.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return authv3.NewAuthorizationClient(conn)
}

// envoyRequest is a CheckRequest shaped as Envoy sends it.
func envoyRequest(method, path string, kv ...string) *authv3.CheckRequest {
	h := map[string]string{":authority": "app.example.com", ":method": method, ":path": path, ":scheme": "http",
		"x-forwarded-proto": "https", "x-request-id": "e2e", "user-agent": "e2e"}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{Id: "e2e", Method: method, Path: path, Host: "app.example.com", Scheme: "http", Protocol: "HTTP/1.1", Headers: h},
	}}}
}

// received is what the upstream gets when Envoy applies the allowed resp
// to cr (ext_authz Filter::onComplete): the request's headers, the
// answer's set over them, then its removals.
func received(cr *authv3.CheckRequest, resp *authv3.CheckResponse) map[string]string {
	out := maps.Clone(cr.GetAttributes().GetRequest().GetHttp().GetHeaders())
	maps.Copy(out, upstream(resp))
	for _, name := range resp.GetOkResponse().GetHeadersToRemove() {
		delete(out, name)
	}
	return out
}

// upstream lists the headers an allowed resp sets on the request.
func upstream(resp *authv3.CheckResponse) map[string]string {
	out := map[string]string{}
	for _, h := range resp.GetOkResponse().GetHeaders() {
		out[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	dir, key := keyDir(t)
	cfg := writeConfig(t, `
issuer: https://auth.example.com
audience: app
keys:
  dir: `+dir+`
policy:
  claimHeaders:
    x-user-id: sub
    x-user-role: role
shutdown:
  drain: 0s
  timeout: 5s
`)
	p := start(t, []string{"--config", cfg})
	ctx := context.Background()

	// The session API refuses strangers and reserved claims.
	if code, _ := p.createSession(t, "", `{"subject":"alice"}`); code != 401 {
		t.Fatalf("unauthenticated session create: %d", code)
	}
	if code, _ := p.createSession(t, "wrong-token-wrong-token", `{"subject":"alice"}`); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, r := p.createSession(t, apiToken, `{"subject":"alice","claims":{"exp":1,"iss":"x"}}`); code != 400 || !strings.Contains(r.Message, "exp") {
		t.Fatalf("reserved claims: %d %+v", code, r)
	}
	big := strings.Repeat("x", 4000)
	if code, r := p.createSession(t, apiToken, `{"subject":"alice","claims":{"blob":"`+big+`"}}`); code != 400 || r.Error != "claims_too_large" {
		t.Fatalf("oversized claims: %d %+v", code, r)
	}
	code, s := p.createSession(t, apiToken, `{"subject":"alice","claims":{"role":"admin"}}`)
	if code != 201 || s.AccessToken == "" || s.RefreshToken == "" || len(s.SetCookie) != 3 {
		t.Fatalf("session create: %d %+v", code, s.Error)
	}
	for i, prefix := range []string{"__Host-sa-at=", "__Host-sa-rt=", "__Host-sa-exp="} {
		if !strings.HasPrefix(s.SetCookie[i], prefix) || !strings.Contains(s.SetCookie[i], "Secure") {
			t.Errorf("cookie %d = %.30q…", i, s.SetCookie[i])
		}
	}

	client := p.authz(t)
	// Valid → OK with the right upstream headers.
	cr := envoyRequest("GET", "/api/items", "authorization", "Bearer "+s.AccessToken, "x-user-id", "mallory")
	resp, err := client.Check(ctx, cr)
	if err != nil {
		t.Fatal(err)
	}
	up := received(cr, resp)
	if resp.GetOkResponse() == nil || up["authorization"] != "Bearer "+s.AccessToken || up["x-user-id"] != "alice" || up["x-user-role"] != "admin" {
		t.Fatalf("valid token: %v", resp)
	}
	// The same from the cookie, our cookies kept from the upstream.
	resp, _ = client.Check(ctx, envoyRequest("GET", "/", "cookie", "a=1; __Host-sa-at="+s.AccessToken+"; __Host-sa-rt="+s.RefreshToken))
	if up := upstream(resp); resp.GetOkResponse() == nil || up["cookie"] != "a=1" {
		t.Fatalf("cookie token: %v", resp)
	}

	// Tampered, expired, foreign and missing → the right deny.
	minter := func(now time.Time, iss string) string {
		ring := &keys.Holder{}
		kr, _ := keys.NewKeyring(key)
		ring.Store(kr)
		tok, _, err := token.NewMinter(token.MinterOptions{Issuer: iss, Audience: "app", TTL: 15 * time.Minute, Keys: ring, Now: func() time.Time { return now }}).Mint("alice", "sid-e2e-000000000000000", nil)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	other, _ := keys.Generate(keys.ES256)
	otherRing := &keys.Holder{}
	okr, _ := keys.NewKeyring(other)
	otherRing.Store(okr)
	foreign, _, _ := token.NewMinter(token.MinterOptions{Issuer: "https://auth.example.com", Audience: "app", TTL: time.Minute, Keys: otherRing}).Mint("alice", "sid", nil)
	tampered := s.AccessToken[:len(s.AccessToken)-4] + "AAAA"
	if strings.HasSuffix(s.AccessToken, "AAAA") {
		tampered = s.AccessToken[:len(s.AccessToken)-4] + "BBBB"
	}
	denies := []struct {
		name, header, reason string
	}{
		{"tampered", "Bearer " + tampered, "token_signature"},
		{"expired", "Bearer " + minter(time.Now().Add(-time.Hour), "https://auth.example.com"), "token_expired"},
		{"wrong issuer", "Bearer " + minter(time.Now(), "https://evil.example"), "token_issuer"},
		{"unknown key", "Bearer " + foreign, "token_unknown_key"},
		{"missing", "", "no_credentials"},
	}
	for _, d := range denies {
		resp, err := client.Check(ctx, envoyRequest("GET", "/api", "authorization", d.header))
		if err != nil {
			t.Fatalf("%s: gRPC error %v", d.name, err)
		}
		dr := resp.GetDeniedResponse()
		if dr == nil || dr.GetStatus().GetCode() != 401 || !strings.Contains(dr.GetBody(), `"reason":"`+d.reason+`"`) {
			t.Errorf("%s: %v", d.name, resp)
		}
	}

	// JWKS with caching headers.
	jr, err := http.Get("http://" + p.addrs["public"] + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jb, _ := io.ReadAll(jr.Body)
	jr.Body.Close()
	if jr.StatusCode != 200 || !strings.Contains(string(jb), key.ID) || jr.Header.Get("ETag") == "" || !strings.Contains(jr.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("jwks: %d %s %v", jr.StatusCode, jb, jr.Header)
	}
	cond, _ := http.NewRequest("GET", "http://"+p.addrs["public"]+"/.well-known/jwks.json", nil)
	cond.Header.Set("If-None-Match", jr.Header.Get("ETag"))
	if r, err := http.DefaultClient.Do(cond); err != nil || r.StatusCode != 304 {
		t.Fatalf("jwks If-None-Match: %v %v", r, err)
	}
	// The session API is not on the public listener.
	if r, _ := http.Post("http://"+p.addrs["public"]+"/v1/sessions", "application/json", strings.NewReader(`{}`)); r == nil || r.StatusCode != 404 {
		t.Fatalf("session API reachable on the public listener: %v", r)
	}

	// Admin: ready, metrics (the build among them), gRPC health.
	buildInfo := fmt.Sprintf(`silentauth_build_info{goversion=%q,revision=%q,version=%q} 1`, runtime.Version(), stampedCommit, stampedVersion)
	for path, want := range map[string]string{"/readyz": "ready", "/healthz": "ok", "/readyz?verbose": "[+]keyring", "/metrics": `silentauth_check_decisions_total{decision="deny",reason="token_signature"} 1`, "/metrics?build": buildInfo} {
		r, err := http.Get("http://" + p.addrs["admin"] + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, want %q in\n%s", path, r.StatusCode, want, b)
		}
	}
	conn, _ := grpc.NewClient(p.addrs["grpc"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer conn.Close()
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.auth.v3.Authorization"})
	if err != nil || hr.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health: %v %v", hr, err)
	}

	p.stop(t)
	logs := p.Logs()
	if want := `"msg":"starting silentauth","version":"` + stampedVersion + `","commit":"` + stampedCommit + `"`; !strings.Contains(logs, want) {
		t.Errorf("the startup log line does not name the build (%s):\n%s", want, logs)
	}
	_, secret, _ := strings.Cut(s.RefreshToken, ".")
	for _, leak := range []string{s.AccessToken, secret, apiToken} {
		if strings.Contains(logs, leak) {
			t.Fatal("a token or secret reached the logs")
		}
	}
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no clean stop in the logs:\n%s", logs)
	}
}

func TestDevelopmentDefaultsPrintTheAPITokenOnce(t *testing.T) {
	cmd := exec.Command(binary, "serve")
	cmd.Env = append(os.Environ(),
		"SILENTAUTH_GRPC_ADDRESS=127.0.0.1:0", "SILENTAUTH_PUBLIC_ADDRESS=127.0.0.1:0",
		"SILENTAUTH_SESSION_API_ADDRESS=127.0.0.1:0", "SILENTAUTH_ADMIN_ADDRESS=127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	var tokenLine string
	var lines []string
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Session-API token (printed once): "); ok {
			tokenLine = v
		}
		if strings.Contains(line, "Press Ctrl-C") {
			break
		}
	}
	if len(tokenLine) < 32 {
		t.Fatalf("no generated token in the banner:\n%s", strings.Join(lines, "\n"))
	}
	// The banner shows it; the structured log never does.
	for _, line := range lines {
		if strings.HasPrefix(line, "{") && strings.Contains(line, tokenLine) {
			t.Errorf("the generated token reached the log: %s", line)
		}
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"development signing key generated", `"address":"127.0.0.1:`} {
		if !strings.Contains(all, want) {
			t.Errorf("startup output lacks %q", want)
		}
	}
}

// pprof is served on the admin listener only when profiling is on.
func TestProfilingEndpoints(t *testing.T) {
	dir, _ := keyDir(t)
	for _, on := range []bool{false, true} {
		cfg := writeConfig(t, fmt.Sprintf("keys: {dir: %s}\nprofiling: %v\nshutdown: {drain: 0s, timeout: 5s}\n", dir, on))
		p := start(t, []string{"--config", cfg})
		r, err := http.Get("http://" + p.addrs["admin"] + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if on && (r.StatusCode != 200 || !strings.Contains(string(b), "serve")) {
			t.Errorf("profiling on: %d %q", r.StatusCode, b)
		}
		if !on && r.StatusCode != 404 {
			t.Errorf("profiling off: /debug/pprof/cmdline answered %d", r.StatusCode)
		}
	}
}

// What the configuration allows but probably should not starts all the
// same, with one warning line each.
func TestStartWarnsAboutTheConfiguration(t *testing.T) {
	dir, _ := keyDir(t)
	cfg := writeConfig(t, "keys: {dir: "+dir+"}\nhttpAuthz: {trustedProxies: [0.0.0.0/0]}\n"+
		"policy: {publicPaths: [/], loginURL: 'http://id.example/login'}\nshutdown: {drain: 0s, timeout: 5s}\n")
	p := start(t, []string{"--config", cfg})
	var got []string
	for line := range strings.SplitSeq(p.Logs(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["level"] == "WARN" && rec["warning"] != nil {
			got = append(got, rec["warning"].(string))
		}
	}
	want := []string{"httpAuthz.trustedProxies: trusts every IPv4", "policy.loginURL: ", `policy.publicPaths[0]: "/" makes every path public`}
	if len(got) != len(want) {
		t.Fatalf("warnings %q, want %d", got, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w) {
			t.Errorf("warning %d = %q, want prefix %q", i, got[i], w)
		}
	}
	p.stop(t)
}

// A flood of forged tokens is counted, not written line by line: every
// Check is either logged or counted as suppressed.
func TestCheckLogCapped(t *testing.T) {
	dir, _ := keyDir(t)
	p := start(t, []string{"--config", writeConfig(t, "keys: {dir: "+dir+"}\nlog: {checkLinesPerSecond: 3}\nshutdown: {drain: 0s, timeout: 5s}\n")})
	_, s := p.createSession(t, apiToken, `{"subject":"alice"}`)
	// One bit of the decoded signature flipped: the token still parses;
	// only the signature check refuses it.
	dot := strings.LastIndexByte(s.AccessToken, '.')
	sig, err := base64.RawURLEncoding.DecodeString(s.AccessToken[dot+1:])
	if err != nil {
		t.Fatal(err)
	}
	sig[5] ^= 1
	forged := s.AccessToken[:dot+1] + base64.RawURLEncoding.EncodeToString(sig)
	client := p.authz(t)
	const n = 40
	for range n {
		resp, err := client.Check(context.Background(), envoyRequest("GET", "/api", "authorization", "Bearer "+forged))
		if err != nil || resp.GetDeniedResponse() == nil {
			t.Fatalf("forged token: %v %v", resp, err)
		}
	}
	suppressed := p.metric(t, `silentauth_check_log_suppressed_total{reason="token_signature"}`)
	if suppressed == 0 || suppressed >= n {
		t.Fatalf("%v of %d lines suppressed", suppressed, n)
	}
	// The lines written reach the test through a pipe: wait for them.
	waitFor(t, 5*time.Second, "every line logged or suppressed", func() bool {
		return strings.Count(p.Logs(), `"reason":"token_signature"`)+int(suppressed) == n
	})
	if counted := p.metric(t, `silentauth_check_decisions_total{decision="deny",reason="token_signature"}`); counted != n {
		t.Fatalf("decisions counted %v, want %d", counted, n)
	}
}

// The first signal starts the graceful shutdown (here a 60 s drain); a
// second one ends the process at once.
func TestSecondSignalExitsAtOnce(t *testing.T) {
	dir, _ := keyDir(t)
	p := start(t, []string{"--config", writeConfig(t, "keys: {dir: "+dir+"}\nshutdown: {drain: 60s, timeout: 5s}\n")})
	p.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.Logs(), `"msg":"shutting down"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown after SIGTERM\n%s", p.Logs())
		}
		time.Sleep(20 * time.Millisecond) // polling the log for a line, not waiting out time
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-p.done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != os.Interrupt {
			t.Fatalf("after the second signal: %v, want death by SIGINT", err)
		}
	case <-time.After(20 * time.Second): // far less than the 60 s drain
		t.Fatalf("the second signal did not end the process\n%s", p.Logs())
	}
}
