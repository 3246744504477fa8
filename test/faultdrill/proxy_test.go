package faultdrill

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowProxy forwards TCP connections to a target and delays every chunk
// of bytes, in both directions, by half of the round-trip delay it is set
// to: a real network slowness between a client and Redis, with no change
// to either. Connections are dialled anew when the target restarts.
type slowProxy struct {
	ln     net.Listener
	target string
	oneWay atomic.Int64 // nanoseconds added to each direction
	dials  atomic.Int64 // connections accepted so far

	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// newSlowProxy listens on a loopback port and forwards to target until t
// ends.
func newSlowProxy(t testing.TB, target string) *slowProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &slowProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *slowProxy) Addr() string { return p.ln.Addr().String() }

// SetRoundTrip makes every round trip through the proxy d slower (0: no
// delay). Bytes already on their way keep the delay they were given.
func (p *slowProxy) SetRoundTrip(d time.Duration) { p.oneWay.Store(int64(d / 2)) }

func (p *slowProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *slowProxy) handle(c net.Conn) {
	p.dials.Add(1)
	u, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil { // the target is down: the client sees the connection drop
		c.Close()
		return
	}
	if !p.track(c, u) {
		return
	}
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pipe(u, c) }()
	go func() { defer both.Done(); p.pipe(c, u) }()
	both.Wait()
	p.untrack(c, u)
}

// pipe copies src to dst, each chunk written once its delay has passed,
// in order. When either side ends, both connections are closed.
func (p *slowProxy) pipe(dst, src net.Conn) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	ch := make(chan chunk, 256)
	go func() {
		defer close(ch)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{append([]byte(nil), buf[:n]...), time.Now().Add(time.Duration(p.oneWay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.due))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	for range ch { // the reader stops now that src is closed
	}
}

func (p *slowProxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil { // closed
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *slowProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

func (p *slowProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// The proxy delays a round trip by what it is set to, and forwards
// faithfully.
func TestSlowProxy(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 1024)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					c.Write(buf[:n])
				}
			}()
		}
	}()
	p := newSlowProxy(t, echo.Addr().String())
	roundTrip := func() time.Duration {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		start := time.Now()
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := c.Read(buf); err != nil || string(buf) != "ping" {
			t.Fatalf("echo through the proxy: %q, %v", buf, err)
		}
		return time.Since(start)
	}
	if d := roundTrip(); d > 100*time.Millisecond {
		t.Errorf("round trip without delay took %v", d)
	}
	p.SetRoundTrip(200 * time.Millisecond)
	if d := roundTrip(); d < 200*time.Millisecond || d > 400*time.Millisecond {
		t.Errorf("round trip with a 200ms delay took %v", d)
	}
	echo.Close()
	c, err := net.Dial("tcp", p.Addr())
	if err == nil {
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, net.ErrClosed) {
			t.Errorf("a connection to a target that is down: read %v, want it dropped", err)
		}
	}
}
