package browser

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/silentauth/silentauth/internal/testenv/logbuf"
)

// A minimal Chrome DevTools Protocol client over --remote-debugging-pipe:
// Chromium reads NUL-terminated JSON commands on its file descriptor 3 and
// writes replies and events on 4. No WebSocket, no port to find, and no
// generated protocol types that a newer Chromium could break: messages are
// decoded into the few fields the tests read.

// cdpError is a protocol error reply.
type cdpError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *cdpError) Error() string { return fmt.Sprintf("cdp error %d: %s", e.Code, e.Message) }

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *cdpError       `json:"error,omitempty"`
}

// cdp is one connection to a browser. Its methods are safe for concurrent
// use.
type cdp struct {
	w      io.Writer
	wmu    sync.Mutex
	nextID atomic.Int64

	mu      sync.Mutex
	pending map[int64]chan cdpMessage
	closed  chan struct{}
	err     error // why the connection ended, set before closed is closed
}

func newCDP(w io.Writer, r io.Reader) *cdp {
	c := &cdp{w: w, pending: map[int64]chan cdpMessage{}, closed: make(chan struct{})}
	go c.read(r)
	return c
}

// read delivers replies to their callers; events are not used.
func (c *cdp) read(r io.Reader) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		b, err := br.ReadBytes(0)
		if err != nil {
			c.mu.Lock()
			c.err = fmt.Errorf("browser connection closed: %w", err)
			c.mu.Unlock()
			close(c.closed)
			return
		}
		var m cdpMessage
		if json.Unmarshal(bytes.TrimSuffix(b, []byte{0}), &m) != nil || m.ID == 0 {
			continue
		}
		c.mu.Lock()
		ch := c.pending[m.ID]
		delete(c.pending, m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends method with params (in session, "" for the browser) and
// decodes the result into out (nil to drop it).
func (c *cdp) call(ctx context.Context, session, method string, params, out any) error {
	id := c.nextID.Add(1)
	ch := make(chan cdpMessage, 1)
	c.mu.Lock()
	c.pending[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}()
	b, err := json.Marshal(cdpMessage{ID: id, Method: method, Params: params, SessionID: session})
	if err != nil {
		return err
	}
	c.wmu.Lock()
	_, err = c.w.Write(append(b, 0))
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %w", method, m.Error)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-c.closed:
		return fmt.Errorf("%s: %w", method, c.err)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// chromium is a headless Chromium started for one test.
type chromium struct {
	*cdp
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *logbuf.Buffer
}

// startChromium starts Chromium headless with a fresh profile and closes it
// when t ends.
func startChromium(t *testing.T, bin string) *chromium {
	t.Helper()
	// Chromium reads commands on fd 3 and writes on fd 4.
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	profile := t.TempDir()
	cmd := exec.Command(bin,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--no-first-run", "--disable-sync", "--no-default-browser-check",
		"--disable-dev-shm-usage", "--mute-audio", "--hide-scrollbars", "--window-size=1100,820",
		"--user-data-dir="+profile, "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	b := &chromium{cmd: cmd, done: make(chan struct{}), stderr: &logbuf.Buffer{}}
	cmd.Stdout, cmd.Stderr = b.stderr, b.stderr
	// Its own process group: renderer and GPU processes go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	cmdR.Close()
	outW.Close()
	go func() { cmd.Wait(); close(b.done) }()
	b.cdp = newCDP(cmdW, outR)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.call(ctx, "", "Browser.close", nil, nil)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			// The group of the browser started above, by its id.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-b.done
		}
		cmdW.Close()
		outR.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v struct{ Product string }
	if err := b.call(ctx, "", "Browser.getVersion", nil, &v); err != nil {
		t.Fatalf("chromium did not answer: %v\n%s", err, b.stderr.String())
	}
	t.Logf("browser: %s", v.Product)
	return b
}

// page is one tab.
type page struct {
	b       *chromium
	session string
}

// newPage opens a tab on about:blank.
func (b *chromium) newPage(ctx context.Context) (*page, error) {
	var created struct{ TargetID string }
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &created); err != nil {
		return nil, err
	}
	var attached struct{ SessionID string }
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": created.TargetID, "flatten": true}, &attached); err != nil {
		return nil, err
	}
	p := &page{b: b, session: attached.SessionID}
	return p, p.b.call(ctx, p.session, "Page.enable", nil, nil)
}

// navigate starts loading url; wait for what should follow with waitFor.
func (p *page) navigate(ctx context.Context, url string) error {
	var r struct{ ErrorText string }
	if err := p.b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}, &r); err != nil {
		return err
	}
	if r.ErrorText != "" {
		return fmt.Errorf("navigate %s: %s", url, r.ErrorText)
	}
	return nil
}

// eval runs expression in the page (awaiting a promise) and decodes its
// value into out (nil to drop it).
func (p *page) eval(ctx context.Context, expression string, out any) error {
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{
		"expression": expression, "awaitPromise": true, "returnByValue": true,
	}, &r)
	if err != nil {
		return err
	}
	if e := r.ExceptionDetails; e != nil {
		return fmt.Errorf("%s: %s %s", expression, e.Text, e.Exception.Description)
	}
	if out == nil || len(r.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// waitFor polls condition, a JavaScript expression, until it is true. A
// page that is between documents cannot evaluate anything: such errors
// only mean "not yet".
func (p *page) waitFor(ctx context.Context, what, condition string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var ok bool
		err := p.eval(ctx, "(() => { try { return !!("+condition+"); } catch (e) { return false; } })()", &ok)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			var href string
			_ = p.eval(ctx, "location.href + ' :: ' + (document.body ? document.body.innerText.slice(0, 300) : '')", &href)
			return fmt.Errorf("waiting for %s: not true after %v (last error %v); page %s", what, timeout, last, href)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// screenshot saves the page as a PNG file.
func (p *page) screenshot(ctx context.Context, path string) error {
	var r struct{ Data string }
	if err := p.b.call(ctx, p.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &r); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(r.Data)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// browserCookie is a cookie of the browser's jar.
type browserCookie struct {
	Name     string  `json:"name"`
	Value    string  `json:"value"`
	Domain   string  `json:"domain"`
	Path     string  `json:"path"`
	Expires  float64 `json:"expires"`
	HTTPOnly bool    `json:"httpOnly"`
	Secure   bool    `json:"secure"`
	SameSite string  `json:"sameSite"`
}

// cookies returns the browser's cookies for host, by name.
func (b *chromium) cookies(ctx context.Context, host string) (map[string]browserCookie, error) {
	var r struct{ Cookies []browserCookie }
	if err := b.call(ctx, "", "Storage.getCookies", nil, &r); err != nil {
		return nil, err
	}
	out := map[string]browserCookie{}
	for _, c := range r.Cookies {
		if c.Domain == host {
			if _, dup := out[c.Name]; dup {
				return nil, errors.New("two cookies named " + c.Name + " for " + host)
			}
			out[c.Name] = c
		}
	}
	return out, nil
}
