// Package health keeps the named checks behind /healthz, /readyz and the
// gRPC health service. Only checks marked as gating readiness decide
// /readyz: later dependency trouble (a failed key reload, an unreachable
// store) is reported in the verbose view and in metrics, never by taking
// every replica out of service at once.
//
// All methods are safe for concurrent use.
package health

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Status is one check's state.
type Status struct {
	OK      bool
	Message string // why not OK, or a short note when OK
}

// Registry holds the checks.
type Registry struct {
	mu       sync.RWMutex
	checks   map[string]check
	draining atomic.Bool
}

type check struct {
	gatesReadiness bool
	status         func() Status
}

// New returns an empty Registry.
func New() *Registry { return &Registry{checks: map[string]check{}} }

// Add registers a check. A check that gates readiness keeps /readyz
// failing while it is not OK.
func (r *Registry) Add(name string, gatesReadiness bool, status func() Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.checks[name] = check{gatesReadiness, status}
}

// Drain makes /readyz fail from now on (graceful shutdown).
func (r *Registry) Drain() { r.draining.Store(true) }

// Ready reports whether every gating check is OK and the process is not
// draining, with the reasons when it is not.
func (r *Registry) Ready() (bool, []string) {
	var why []string
	if r.draining.Load() {
		why = append(why, "shutting down")
	}
	for _, name := range r.names() {
		c := r.get(name)
		if st := c.status(); c.gatesReadiness && !st.OK {
			why = append(why, name+": "+st.Message)
		}
	}
	return len(why) == 0, why
}

func (r *Registry) names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.checks))
	for n := range r.checks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (r *Registry) get(name string) check {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.checks[name]
}

// Livez answers /healthz: the process is up.
func (r *Registry) Livez(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// Readyz answers /readyz: 200 when ready, 503 with the reasons otherwise.
// With ?verbose every check is listed in the Kubernetes style
// ("[+]keyring ok", "[-]store: connection refused"), gating or not.
func (r *Registry) Readyz(w http.ResponseWriter, req *http.Request) {
	ok, why := r.Ready()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if _, verbose := req.URL.Query()["verbose"]; verbose {
		for _, name := range r.names() {
			c := r.get(name)
			st := c.status()
			mark, gate := "+", ""
			if !st.OK {
				mark = "-"
			}
			if !c.gatesReadiness {
				gate = " (informational)"
			}
			msg := "ok"
			if st.Message != "" {
				msg = st.Message
			}
			fmt.Fprintf(w, "[%s]%s%s: %s\n", mark, name, gate, msg)
		}
		if r.draining.Load() {
			fmt.Fprintln(w, "[-]shutdown: draining")
		}
	}
	if ok {
		fmt.Fprintln(w, "ready")
		return
	}
	fmt.Fprintln(w, "not ready: "+strings.Join(why, "; "))
}
