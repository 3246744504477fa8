package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/testenv/kubetest"
	"github.com/silentauth/silentauth/internal/testenv/toolsdir"
)

// recipeStep is one command of the README's plain-kubectl rotation.
type recipeStep struct {
	cmd   string
	later bool // a comment before it says to wait ("later, after k1 has left the JWKS")
}

// readmeRecipe returns the fenced block that follows "The same rotation
// with plain kubectl" in README.md, one step per command: a line that
// starts with a space continues the command above it, a comment line
// separates phases.
func readmeRecipe(t *testing.T) []recipeStep {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "The same rotation with plain kubectl")
	if !ok {
		t.Fatal(`README.md has no "The same rotation with plain kubectl"`)
	}
	_, block, ok := strings.Cut(after, "```sh\n")
	block, _, closed := strings.Cut(block, "```")
	if !ok || !closed {
		t.Fatal("README.md: no ```sh block after the plain-kubectl rotation")
	}
	var steps []recipeStep
	later := false
	for line := range strings.Lines(block) {
		switch {
		case strings.HasPrefix(line, "#"):
			later = true
		case strings.HasPrefix(line, " "):
			if len(steps) == 0 {
				t.Fatalf("README.md recipe starts with a continuation line: %q", line)
			}
			steps[len(steps)-1].cmd += line
		case strings.TrimSpace(line) != "":
			steps = append(steps, recipeStep{cmd: line, later: later})
			later = false
		}
	}
	return steps
}

// shell is one bash process that runs commands one at a time, so that the
// variables a step sets are there for the next, as in a terminal.
type shell struct {
	in  io.WriteCloser
	out *bufio.Reader
}

func newShell(t *testing.T, dir string, env []string) *shell {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-s")
	cmd.Dir, cmd.Env = dir, env
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait(); cancel() })
	sh := &shell{in: in, out: bufio.NewReader(out)}
	sh.run(t, "exec 2>&1") // one stream, in order
	return sh
}

// run runs one command and returns its output and exit status.
func (sh *shell) run(t *testing.T, command string) (string, int) {
	t.Helper()
	const done = "__step_done__"
	if _, err := io.WriteString(sh.in, command+"\necho "+done+" $?\n"); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		line, err := sh.out.ReadString('\n')
		if status, ok := strings.CutPrefix(line, done+" "); ok {
			code, _ := strconv.Atoi(strings.TrimSpace(status))
			return out.String(), code
		}
		out.WriteString(line)
		if err != nil {
			t.Fatalf("bash ended: %v\n%s", err, out.String())
		}
	}
}

// The README's rotation with plain kubectl, extracted from README.md so
// the two cannot drift, run step by step against a real API server while
// users keep browsing: every Check passes and nobody is logged out, after
// each step a token minted before it still verifies, each write leaves a
// Secret the server takes without complaint, the new key signs only from
// its activate-at, and refreshes keep working once the old key is gone.
func TestREADMEKubectlRotation(t *testing.T) {
	// The recipe's programs, the pinned kubectl first on PATH.
	path := os.Getenv("PATH")
	for _, tool := range []string{"openssl", "jq", "kubectl"} {
		path = filepath.Dir(toolsdir.Need(t, tool)) + string(os.PathListSeparator) + path
	}
	env := kubetest.Start(t)
	ns := env.NewNamespace(t)
	admin := kubernetes.NewForConfigOrDie(env.AdminConfig())
	grantKeyReader(t, admin, ns)
	adminKubeconfig := env.AdminKubeconfig(t)
	// The first key as `keys add` writes it, with a published-at
	// annotation that the recipe must remove along with the key.
	plugin(t, adminKubeconfig, ns)("keys", "add", "--name", "k1")

	// The recipe's namespace becomes the test's, and its 30-minute lead
	// 3 seconds: the access TTL below is 10 s, not 15 min.
	steps := readmeRecipe(t)
	leads := 0
	for i, st := range steps {
		if strings.HasPrefix(st.cmd, "kubectl ") && !strings.Contains(st.cmd, "-n silentauth ") {
			t.Fatalf("README.md recipe: a kubectl step that does not name the namespace: %s", st.cmd)
		}
		leads += strings.Count(st.cmd, "'+30 min'")
		st.cmd = strings.ReplaceAll(st.cmd, "-n silentauth ", "-n "+ns+" ")
		steps[i].cmd = strings.ReplaceAll(st.cmd, "'+30 min'", "'+3 sec'")
	}
	if leads != 1 || len(steps) < 3 || !slices.ContainsFunc(steps, func(st recipeStep) bool { return st.later }) {
		t.Fatalf("README.md recipe: want a new key, one activate-at of '+30 min' and a later cleanup: %+v", steps)
	}

	// The sessions' idle TTL: how long k1 must stay in the Secret after
	// its retire-at. Longer than the wait for k1 to leave the JWKS (lead
	// + access TTL + leeway), so a session idle since the rotation is
	// still alive then.
	const idleTTL = 30 * time.Second
	lifecycle := keys.Lifecycle{AccessTTL: 10 * time.Second, Leeway: time.Second, RefreshTTL: idleTTL}
	p := startOnKeySecret(t, env, ns, idleTTL)
	client := p.authz(t)
	appToken := env.ServiceAccountToken(t, ns, "app", "silentauth")
	session := func(subject string) sessionResp {
		t.Helper()
		code, s := p.createSession(t, appToken, `{"subject":"`+subject+`"}`)
		if code != 201 {
			t.Fatalf("session: %d %s\n%s", code, s.Message, p.Logs())
		}
		return s
	}
	const users = 10
	bs := make([]*browser, users)
	for i := range bs {
		s := session(fmt.Sprintf("user-%d", i))
		bs[i] = &browser{at: s.AccessToken, rt: s.RefreshToken, lastKid: kidOf(t, s.AccessToken)}
	}
	k1 := kidOf(t, bs[0].at)
	// A session that does not browse from before the rotation until the
	// cleanup: its refresh token is under k1 throughout.
	idle := session("idle-since-rotation")
	if kid := kidOf(t, idle.AccessToken); kid != k1 {
		t.Fatalf("idle session minted under %s, not k1 %s", kid, k1)
	}
	tr := startTraffic(t, client, bs)
	defer tr.halt()
	jwks := func() string { _, body := get(t, "http://"+p.addrs["public"]+"/.well-known/jwks.json"); return body }
	// verifies reports whether a Check with only the access token passes
	// without minting a new one.
	verifies := func(at string) bool {
		resp, err := client.Check(context.Background(), envoyRequest("GET", "/api", "cookie", "__Host-sa-at="+at))
		return err == nil && resp.GetOkResponse() != nil && upstream(resp)["authorization"] == "Bearer "+at && len(setCookies(resp)) == 0
	}

	work := t.TempDir()
	sh := newShell(t, work, []string{"HOME=" + work, "PATH=" + path, "KUBECONFIG=" + adminKubeconfig})
	for _, st := range steps {
		if st.later {
			waitFor(t, 40*time.Second, "k1 gone from the JWKS", func() bool { return !strings.Contains(jwks(), k1) })
			// Gone from the JWKS, k1 still refreshes the session idle
			// since it signed (issue #18), with a token of k2.
			resp, err := client.Check(context.Background(), envoyRequest("GET", "/api", "cookie", "__Host-sa-rt="+idle.RefreshToken))
			if err != nil || resp.GetOkResponse() == nil {
				t.Fatalf("refresh of a session idle since the rotation, k1 gone from the JWKS: %v %v", err, resp.GetDeniedResponse().GetBody())
			}
			if at, _ := cookieOf(setCookies(resp), "__Host-sa-at"); at == "" || kidOf(t, at) == k1 || !verifies(at) {
				t.Errorf("refresh of the idle session: access token %q", at)
			}
			// The README's wait: k1's retire-at + the sessions' idle TTL.
			var retire time.Time
			for _, e := range secretEntries(t, admin, ns) {
				if e.Key.ID == k1 {
					retire = e.RetireAt
				}
			}
			if retire.IsZero() {
				t.Fatal("k1 has no retire-at before the cleanup")
			}
			if got := lifecycle.RefreshesUntil(keys.Entry{RetireAt: retire}); !got.Equal(retire.Add(idleTTL)) {
				t.Fatalf("k1 refreshes until %v, want retire-at + idle TTL", got)
			}
			time.Sleep(time.Until(retire.Add(idleTTL)))
		}
		minted := session("before-step").AccessToken
		held := map[string]bool{}
		for _, e := range secretEntries(t, admin, ns) {
			held[e.Key.ID] = true
		}
		start := time.Now()
		out, code := sh.run(t, st.cmd)
		t.Logf("$ %s%s", st.cmd, out)
		if code != 0 {
			t.Fatalf("exit status %d", code)
		}
		if strings.HasPrefix(st.cmd, "kubectl ") {
			s, err := admin.CoreV1().Secrets(ns).Get(context.Background(), "silentauth-keys", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			loaded := `"resourceVersion":"` + s.ResourceVersion + `"`
			waitFor(t, 20*time.Second, "silentauth loading resourceVersion "+s.ResourceVersion, func() bool {
				for line := range strings.Lines(p.Logs()) {
					if strings.Contains(line, `"keyring loaded"`) && strings.Contains(line, loaded) {
						return true
					}
				}
				return false
			})
			// Each write leaves a Secret that is valid as written, not one
			// the server merely tolerates, and a key it adds is published
			// first and signs only later, from its activate-at.
			entries := secretEntries(t, admin, ns)
			ring, err := keys.NewSecretKeyring(entries, lifecycle, start)
			if err != nil {
				t.Fatalf("after the step the Secret is refused: %v", err)
			}
			for _, e := range entries {
				if held[e.Key.ID] {
					continue
				}
				if !e.ActivateAt.After(start) || ring.Signer(e.ActivateAt.Add(-time.Nanosecond)).ID == e.Key.ID {
					t.Errorf("%s, added by the step, signs before it is published (activate-at %v)", e.Name, e.ActivateAt)
				}
				if !strings.Contains(jwks(), e.Key.ID) {
					t.Errorf("%s, added by the step, is not in the JWKS", e.Name)
				}
			}
		}
		if !verifies(minted) {
			t.Errorf("a token minted before the step no longer verifies")
		}
	}

	// The old key is gone from the Secret; refreshes keep working, with
	// the new key.
	s, err := admin.CoreV1().Secrets(ns).Get(context.Background(), "silentauth-keys", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range s.Data {
		if k != "k2.pem" {
			t.Errorf("left in the Secret: data %s", k)
		}
	}
	for k := range s.Annotations {
		if strings.Contains(k, "k1.") {
			t.Errorf("left in the Secret: annotation %s", k)
		}
	}
	resp, err := client.Check(context.Background(), envoyRequest("GET", "/api", "cookie", "__Host-sa-rt="+session("after").RefreshToken))
	if err != nil || resp.GetOkResponse() == nil {
		t.Fatalf("refresh after k1 was removed: %v %v", err, resp.GetDeniedResponse().GetBody())
	}
	if at, _ := cookieOf(setCookies(resp), "__Host-sa-at"); at == "" || kidOf(t, at) == k1 || !verifies(at) {
		t.Errorf("refresh after k1 was removed: access token %q", at)
	}
	before := tr.refreshes.Load()
	waitFor(t, 20*time.Second, "more refreshes after k1 was removed", func() bool { return tr.refreshes.Load() > before+users })
	if kids := tr.signingKids(); kids[k1] || len(kids) != 1 {
		t.Errorf("tokens sent upstream after the rotation: %v", kids)
	}
	if logs := p.Logs(); strings.Contains(logs, "refused") || strings.Contains(logs, "leftover annotations") {
		t.Errorf("silentauth complained about a Secret the README wrote:\n%s", logs)
	}
	tr.stopAndCheck(t, "README kubectl rotation")
}

// secretEntries reads the key Secret and parses it, failing the test unless
// it is valid as written.
func secretEntries(t *testing.T, c kubernetes.Interface, ns string) []keys.Entry {
	t.Helper()
	s, err := c.CoreV1().Secrets(ns).Get(context.Background(), "silentauth-keys", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := keys.ParseSecret(s.Data, s.Annotations)
	if err != nil {
		t.Fatalf("the Secret is not valid: %v", err)
	}
	return entries
}
