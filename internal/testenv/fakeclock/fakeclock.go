// Package fakeclock is a clock that tests set and move by hand, for code
// that takes its time from an injected func() time.Time: pass Clock.Now.
// Time stands still between calls; nothing happens by itself when it moves.
//
// The methods of a Clock are safe for concurrent use, so one clock can feed
// a server's goroutines while the test moves it.
package fakeclock

import (
	"sync"
	"time"
)

// Clock is a fake time source. Create it with New.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock that reads t until it is moved.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d (backwards when d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
