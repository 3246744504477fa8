package faultdrill

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/silentauth/silentauth/authz/store"
)

// recorder sits between gRPC and a replica's Check server and notes, by
// Envoy's request id, what the server decided and how long it took. When
// a browser's Check ends in a gRPC deadline error, this tells the product
// (a Check that denied, or ran past its deadline) from the machine (an
// answer given in time that the client received late, or a request that
// reached the server only after its deadline).
type recorder struct {
	authv3.UnimplementedAuthorizationServer
	inner authv3.AuthorizationServer
	seen  *sync.Map // request id → served
}

// served is one Check as the server saw it.
type served struct {
	start, end time.Time // the handler's start and answer
	allowed    bool
}

func (r recorder) Check(ctx context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	start := time.Now()
	id := cr.GetAttributes().GetRequest().GetHttp().GetId()
	resp, err := r.inner.Check(context.WithValue(ctx, requestKey{}, id), cr)
	r.seen.Store(id, served{start: start, end: time.Now(), allowed: resp.GetOkResponse() != nil})
	return resp, err
}

// stallMeter measures how late a 10 ms ticker fires: on a machine whose
// CPUs are oversubscribed, every goroutine of the process (browsers, gRPC,
// servers) can stand still for a while, and the meter says how long.
type stallMeter struct {
	max  atomic.Int64 // nanoseconds, since the last reset
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	stalls []stall // every stall of 20 ms or more
}

// stall is a stretch of time: the process standing still, a store call.
type stall struct{ from, to time.Time }

func newStallMeter() *stallMeter {
	m := &stallMeter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		const tick = 10 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-m.stop:
				return
			case <-t.C:
				now := time.Now()
				late := now.Sub(last) - tick
				if int64(late) > m.max.Load() {
					m.max.Store(int64(late))
				}
				if late >= 20*time.Millisecond {
					m.mu.Lock()
					m.stalls = append(m.stalls, stall{now.Add(-late), now})
					m.mu.Unlock()
				}
				last = now
			}
		}
	}()
	return m
}

// longest returns the longest stall that overlapped [from, to].
func (m *stallMeter) longest(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var d time.Duration
	for _, s := range m.stalls {
		if s.from.Before(to) && s.to.After(from) {
			d = max(d, s.to.Sub(s.from))
		}
	}
	return d
}

// reset returns the longest stall since the last reset and starts anew.
func (m *stallMeter) reset() time.Duration { return time.Duration(m.max.Swap(0)) }

func (m *stallMeter) close() {
	close(m.stop)
	<-m.done
}

// requestKey carries Envoy's request id in a Check's context, down to the
// store calls it makes.
type requestKey struct{}

// timedStore measures, by request id, how long each Check waited on the
// store: the product bounds that wait for a valid token, while the rest
// of a Check's time is CPU, which an oversubscribed machine may starve.
type timedStore struct {
	store.Store
	waits *sync.Map // request id → *storeCalls
}

// storeCalls are the spans of the store calls made for one request,
// including those that go on after its Check has answered (a swap).
type storeCalls struct {
	mu    sync.Mutex
	spans []stall
}

// within is the time the calls spent inside [from, to].
func (c *storeCalls) within(from, to time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d time.Duration
	for _, s := range c.spans {
		if a, b := later(s.from, from), earlier(s.to, to); b.After(a) {
			d += b.Sub(a)
		}
	}
	return d
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (s timedStore) note(ctx context.Context, start time.Time) {
	id, _ := ctx.Value(requestKey{}).(string)
	if id == "" {
		return // not a Check's call (a login)
	}
	v, _ := s.waits.LoadOrStore(id, new(storeCalls))
	c := v.(*storeCalls)
	c.mu.Lock()
	c.spans = append(c.spans, stall{start, time.Now()})
	c.mu.Unlock()
}

func (s timedStore) Create(ctx context.Context, f *store.Family) error {
	defer s.note(ctx, time.Now())
	return s.Store.Create(ctx, f)
}

func (s timedStore) Get(ctx context.Context, id string) (*store.Family, error) {
	defer s.note(ctx, time.Now())
	return s.Store.Get(ctx, id)
}

func (s timedStore) Swap(ctx context.Context, expected uint64, next *store.Family) error {
	defer s.note(ctx, time.Now())
	return s.Store.Swap(ctx, expected, next)
}
