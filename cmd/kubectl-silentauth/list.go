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

Usage:
  kubectl silentauth keys list [-o json] [flags]

Examples:
  kubectl silentauth keys list -n auth
  kubectl silentauth keys list -n auth -o json
  kubectl silentauth keys list -n auth --access-ttl 5m --leeway 10s
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
}

func (c *cli) list(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("list")
	output := fs.StringP("output", "o", "", "output format: json (default: a table)")
	ttl := fs.Duration("access-ttl", defaultLifecycle.AccessTTL, "the server's tokens.accessTTL; must match the server's configuration")
	leeway := fs.Duration("leeway", defaultLifecycle.Leeway, "the server's tokens.leeway; must match the server's configuration")
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
	views := view(entries, keys.Lifecycle{AccessTTL: *ttl, Leeway: *leeway}, now)

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
	fmt.Fprintln(tw, "NAME\tKID\tALG\tSTATE\tPUBLISHED\tACTIVATES\tRETIRES")
	for _, v := range views {
		state := v.State
		if v.State == string(keys.StateActive) && !v.Signing {
			state += " (not signing)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, v.KID, v.Alg, state, cell(v.PublishedAt), cell(v.ActivateAt), cell(v.RetireAt))
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
// derives each one's state at now.
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
