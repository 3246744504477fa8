package browser

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/logbuf"
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"
)

// tools are the binaries the tests run, found by TestMain.
var tools struct {
	silentauth, nginx, chromium, caddy string
	missing                            string // why the tests cannot run
}

func TestMain(m *testing.M) {
	tools.nginx = lookPath("SILENTAUTH_NGINX", "/usr/sbin/nginx", "nginx")
	tools.caddy = lookPath("SILENTAUTH_CADDY", "/usr/bin/caddy", "caddy")
	tools.chromium = lookPath("SILENTAUTH_CHROMIUM", "/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
	switch {
	case tools.nginx == "":
		tools.missing = "nginx not found"
	case tools.chromium == "":
		tools.missing = "chromium not found"
	}
	var dir string
	if tools.missing == "" {
		if tools.silentauth = os.Getenv("SILENTAUTH_BINARY"); tools.silentauth == "" {
			var err error
			if dir, err = os.MkdirTemp("", "silentauth-browser"); err != nil {
				panic(err)
			}
			tools.silentauth = filepath.Join(dir, "silentauth")
			cmd := exec.Command("go", "build", "-race", "-o", tools.silentauth, "./cmd/silentauth")
			cmd.Dir = filepath.Join("..", "..")
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "building silentauth: %v\n%s", err, out)
				os.Exit(1)
			}
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// lookPath returns the binary named by env, else the first of candidates
// (absolute paths, then names on PATH) that exists.
func lookPath(env string, candidates ...string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, c := range candidates {
		if filepath.IsAbs(c) {
			if fi, err := os.Stat(c); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}

// requireTools skips t when nginx or chromium is missing, or fails it when
// SILENTAUTH_REQUIRE_INTEGRATION=1.
func requireTools(t *testing.T) {
	t.Helper()
	if tools.missing == "" {
		return
	}
	toolsdir.Missing(t, "%s: run make tools", tools.missing)
}

// requireTool skips t when the named binary is missing, or fails it when
// SILENTAUTH_REQUIRE_INTEGRATION=1.
func requireTool(t *testing.T, name, path string) {
	t.Helper()
	if path != "" {
		return
	}
	toolsdir.Missing(t, "%s not found: run make tools", name)
}

const apiToken = "browser-session-api-token-0123456789"

// silentauth is a running silentauth.
type silentauth struct {
	addrs map[string]string // listener → address
	logs  *logbuf.Buffer
	done  chan struct{}
}

// startSilentauth writes a signing key and the configuration (yaml, with
// KEYS_DIR replaced), starts silentauth on loopback ports chosen by the
// kernel and waits until it is ready.
func startSilentauth(t *testing.T, yaml string) *silentauth {
	t.Helper()
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keys, "signing.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "silentauth.yaml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(yaml, "KEYS_DIR", keys)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(),
		"SILENTAUTH_GRPC_ADDRESS=127.0.0.1:0", "SILENTAUTH_PUBLIC_ADDRESS=127.0.0.1:0",
		"SILENTAUTH_SESSION_API_ADDRESS=127.0.0.1:0", "SILENTAUTH_ADMIN_ADDRESS=127.0.0.1:0",
		"SILENTAUTH_API_TOKEN="+apiToken)

	cmd := exec.Command(tools.silentauth, "serve", "--config", cfg)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &silentauth{addrs: map[string]string{}, logs: &logbuf.Buffer{}, done: make(chan struct{})}
	ready := make(chan struct{})
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.logs.Write([]byte(line + "\n"))
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil {
				mu.Lock()
				if rec["msg"] == "listening" {
					s.addrs[rec["listener"].(string)] = rec["address"].(string)
				}
				mu.Unlock()
				if rec["msg"] == "silentauth ready" {
					once.Do(func() { close(ready) })
				}
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { stopProcess(cmd, s.done, syscall.SIGTERM, 10*time.Second) })
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("silentauth exited before ready:\n%s", s.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("silentauth not ready after 30s:\n%s", s.logs.String())
	}
	mu.Lock()
	defer mu.Unlock()
	return s
}

// metric returns the value of the counter line starting with series in
// silentauth's /metrics (0 when absent).
func (s *silentauth) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.addrs["admin"] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// nginx is a running nginx.
type nginx struct {
	addr string // host:port it listens on
	logs *logbuf.Buffer
}

// startNginx runs nginx as a foreground process with conf (the http block's
// contents; LISTEN is replaced by a free loopback port) in its own prefix
// directory, and stops it when t ends.
func startNginx(t *testing.T, conf string) *nginx {
	t.Helper()
	var n *nginx
	// The free port is found by listening and closing, so another process
	// could take it first: try a few.
	for attempt := 0; attempt < 3; attempt++ {
		if n = startNginxOn(t, conf, freePort(t)); n != nil {
			return n
		}
	}
	t.Fatalf("nginx: no free port after 3 tries")
	return nil
}

// startNginxOn is startNginx on the given port, for a test that must name
// the origin before nginx starts (a provider's registered redirect URI).
// It returns nil when another process took the port first.
func startNginxOn(t *testing.T, conf string, port int) *nginx {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"logs", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n := &nginx{addr: "127.0.0.1:" + strconv.Itoa(port), logs: &logbuf.Buffer{}}
	user := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody and could not read
		// the test's private folders.
		user = "user root;"
	}
	full := fmt.Sprintf(`%s
worker_processes 1;
events { worker_connections 256; }
http {
    access_log %[2]s/logs/access.log;
    client_body_temp_path %[2]s/tmp/body;
    proxy_temp_path %[2]s/tmp/proxy;
    fastcgi_temp_path %[2]s/tmp/fastcgi;
    uwsgi_temp_path %[2]s/tmp/uwsgi;
    scgi_temp_path %[2]s/tmp/scgi;
%[3]s
}
`, user, dir, strings.ReplaceAll(conf, "LISTEN", n.addr))
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tools.nginx, "-p", dir, "-e", "stderr", "-c", confPath,
		"-g", "daemon off; error_log stderr; pid "+filepath.Join(dir, "nginx.pid")+";")
	d := daemon{name: "nginx", addr: n.addr, ready: 10 * time.Second, quit: syscall.SIGQUIT, inUse: "Address already in use"}
	if d.run(t, cmd, n.logs) {
		return n
	}
	t.Logf("nginx: port %d taken:\n%s", port, n.logs.String())
	return nil
}

// daemon is how a test runs a server in the background (nginx, Caddy).
type daemon struct {
	name  string        // in messages
	addr  string        // where it listens once ready
	ready time.Duration // how long it may take to listen
	quit  os.Signal     // asks it to stop; SIGKILL follows after 5 s
	inUse string        // what its log says when addr was taken
}

// run starts cmd, its output in logs, killed with the test binary, and
// waits until it listens on d.addr; it stops the process when t ends,
// logging its output if t failed. It returns false, the process stopped,
// when another process took the port first: the caller then tries another.
func (d daemon) run(t *testing.T, cmd *exec.Cmd, logs *logbuf.Buffer) bool {
	t.Helper()
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	if err := waitListening(d.addr, done, d.ready); err != nil {
		stopProcess(cmd, done, d.quit, 5*time.Second)
		if strings.Contains(logs.String(), d.inUse) {
			return false
		}
		t.Fatalf("%s: %v\n%s", d.name, err, logs.String())
	}
	t.Cleanup(func() {
		stopProcess(cmd, done, d.quit, 5*time.Second)
		if t.Failed() {
			t.Logf("%s log:\n%s", d.name, logs.String())
		}
	})
	return true
}

// stopProcess sends sig to cmd and waits until done is closed; after grace
// it kills the process.
func stopProcess(cmd *exec.Cmd, done <-chan struct{}, sig os.Signal, grace time.Duration) {
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
	}
}

// waitListening polls addr until it accepts connections.
func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("exited before listening on %s", addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v", addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serveLoopback serves h on a free loopback port until t ends.
func serveLoopback(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String()
}

// startCaddy runs Caddy with manifests/proxies/caddy/Caddyfile, its
// upstreams pointed at the stack, on a free loopback port, and returns its
// origin.
func startCaddy(t *testing.T, s *stack) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "manifests", "proxies", "caddy", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for attempt := 0; attempt < 3; attempt++ {
		addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
		conf := "{\n\tadmin off\n\tauto_https off\n}\n" + strings.NewReplacer(
			"app.example.com {", "http://"+addr+" {",
			"silentauth:9002", s.sa.addrs["public"],
			"app:8000", s.appAddr,
		).Replace(string(b))
		path := filepath.Join(dir, "Caddyfile")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(tools.caddy, "run", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		d := daemon{name: "caddy", addr: addr, ready: 15 * time.Second, quit: syscall.SIGTERM, inUse: "address already in use"}
		if d.run(t, cmd, &logbuf.Buffer{}) {
			return "http://" + addr
		}
	}
	t.Fatal("caddy: no free port after 3 tries")
	return ""
}
