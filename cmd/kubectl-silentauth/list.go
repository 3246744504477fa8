package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
)

const listHelp = `Show every key in the Secret and its state now.

STATE is derived exactly as the server derives it, from the timestamps, the
clock, and the server's access-token TTL and leeway: a retired key keeps
verifying for their sum. --access-ttl and --leeway must match the server's
tokens.accessTTL and tokens.leeway for retiring/gone to be right.

REFRESHES-UNTIL is when the key stops verifying refresh tokens: its
retire-at plus the sessions' idle TTL (--idle-ttl, the server's
sessions.idleTTL), "-" while it has no end. A gone key reads
"gone (refresh only)" until then: it has left the JWKS, but deleting it
would log out the sessions whose refresh tokens it made. Once that time
has passed, "keys revoke" deletes it without --force.

Usage:
  kubectl silentauth keys list [-o json] [flags]

Examples:
  kubectl silentauth keys list -n auth
  kubectl silentauth keys list -n auth -o json
  kubectl silentauth keys list -n auth --access-ttl 5m --leeway 10s --idle-ttl 168h
`

// keyView is one key as list shows it. Nothing secret: the kid is the
// public key's thumbprint.
type keyView struct {
	Name        string     `json:"name"`
	KID         string     `json:"kid"`
	Alg         string     `json:"alg"`
	State       string     `json:"state"`
	Signing     bool       `json:"signing"`
	PublishedAt *time.Time `json:"publishedAt,omitempty"`
	ActivateAt  *time.Time `json:"activateAt,omitempty"`
	RetireAt    *time.Time `json:"retireAt,omitempty"`
	GoneAt      *time.Time `json:"goneAt,omitempty"` // retire-at + access TTL + leeway
	// RefreshesUntil is when it stops verifying refresh tokens (retire-at
	// + the sessions' idle TTL); absent while no end is set.
	RefreshesUntil *time.Time `json:"refreshesUntil,omitempty"`
}

func (c *cli) list(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("list")
	output := fs.StringP("output", "o", "", "output format: json (default: a table)")
	ttl := fs.Duration("access-ttl", defaultLifecycle.AccessTTL, "the server's tokens.accessTTL; must match the server's configuration")
	leeway := fs.Duration("leeway", defaultLifecycle.Leeway, "the server's tokens.leeway; must match the server's configuration")
	idle := fs.Duration("idle-ttl", defaultLifecycle.RefreshTTL, "the server's sessions.idleTTL; must match the server's configuration")
	if _, helped, err := c.parse("keys list", listHelp, fs, g, args, ""); err != nil || helped {
		return err
	}
	if *output != "" && *output != "json" {
		return usageError("keys list", fmt.Errorf("-o %q: the formats are json and the default table", *output))
	}
	s, err := c.secretRef(g)
	if err != nil {
		return err
	}
	sec, entries, err := s.read(ctx)
	if err != nil {
		return err
	}
	if sec == nil {
		return s.missing()
	}
	now := c.now().UTC().Truncate(time.Second)
	views := view(entries, keys.Lifecycle{AccessTTL: *ttl, Leeway: *leeway, RefreshTTL: *idle}, now)

	if *output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Namespace string    `json:"namespace"`
			Secret    string    `json:"secret"`
			Now       time.Time `json:"now"`
			Keys      []keyView `json:"keys"`
		}{s.namespace, s.name, now, views})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKID\tALG\tSTATE\tPUBLISHED\tACTIVATES\tRETIRES\tREFRESHES-UNTIL")
	for _, v := range views {
		state := v.State
		switch {
		case v.State == string(keys.StateActive) && !v.Signing:
			state += " (not signing)"
		case v.State == string(keys.StateGone) && (v.RefreshesUntil == nil || now.Before(*v.RefreshesUntil)):
			state += " (refresh only)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.KID, v.Alg, state,
			cell(v.PublishedAt), cell(v.ActivateAt), cell(v.RetireAt), cell(v.RefreshesUntil))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case len(views) == 0:
		fmt.Fprintf(c.stderr, "secret %s holds no keys; add one with: kubectl silentauth keys add -n %s\n", s, s.namespace)
	case !slices.ContainsFunc(views, func(v keyView) bool { return v.Signing }):
		fmt.Fprintf(c.stderr, "warning: no key signs now, so silentauth refuses this Secret; add one with: kubectl silentauth keys add -n %s\n", s.namespace)
	}
	return nil
}

// view orders the keys as they sign (activate-at, absent first), and
// derives each one's state at now and, for a key that has signed, until
// when it verifies refresh tokens, as revoke judges it.
func view(entries []keys.Entry, lc keys.Lifecycle, now time.Time) []keyView {
	entries = slices.Clone(entries)
	slices.SortFunc(entries, func(a, b keys.Entry) int {
		return cmp.Or(a.ActivateAt.Compare(b.ActivateAt), a.PublishedAt.Compare(b.PublishedAt), cmp.Compare(a.Name, b.Name))
	})
	sig, signing := signer(entries, lc, now)
	out := make([]keyView, 0, len(entries))
	for _, e := range entries {
		v := keyView{
			Name:        e.Name,
			KID:         kidOf(e),
			State:       string(lc.StateAt(e, now)),
			Signing:     signing && e.Name == sig.Name,
			PublishedAt: timePtr(e.PublishedAt),
			ActivateAt:  timePtr(e.ActivateAt),
			RetireAt:    timePtr(e.RetireAt),
		}
		if e.Key != nil {
			v.Alg = string(e.Key.Alg)
		}
		if !e.RetireAt.IsZero() {
			v.GoneAt = timePtr(e.RetireAt.Add(lc.Keep()))
		}
		if lc.StateAt(e, now) != keys.StateNext {
			horizon, _ := planner{Now: now, Lifecycle: lc}.refreshHorizon(entries, e)
			v.RefreshesUntil = timePtr(horizon)
		}
		out = append(out, v)
	}
	return out
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func cell(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return stamp(*t)
}
