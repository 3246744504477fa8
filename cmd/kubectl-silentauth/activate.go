package main

import (
	"context"

	"github.com/silentauth/silentauth/authz/keys"
)

const activateHelp = `Set when a key starts signing (its activate-at). Among the active keys, the
one with the latest activate-at signs.

A key must have been published for 30m before it signs: verifiers that have
not re-read the JWKS would reject its tokens. Sooner is refused unless
--force. A change that would leave no key signing at some moment is refused.

Usage:
  kubectl silentauth keys activate NAME [--at TIME] [--force] [flags]

Examples:
  # Sign with it now (it was added more than 30m ago)
  kubectl silentauth keys activate k-20261125-abcd1234 -n auth

  # Postpone a pending key
  kubectl silentauth keys activate k-20261125-abcd1234 -n auth --at 2026-11-26T09:00:00Z
`

func (c *cli) activate(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("activate")
	var at when
	fs.Var(&at, "at", `when to start signing (RFC 3339, "now", or a duration from now) (default now)`)
	force := fs.Bool("force", false, "allow activation sooner than 30m after the key was published")
	dryRun := fs.Bool("dry-run", false, "print what would change, write nothing")
	rest, helped, err := c.parse("keys activate", activateHelp, fs, g, args, "the key's NAME")
	if err != nil || helped {
		return err
	}
	s, err := c.secretRef(g)
	if err != nil {
		return err
	}
	return mutate(ctx, s, c.planner, c.stdout, mutation{
		dryRun: *dryRun,
		plan: func(p planner, cur []keys.Entry) (change, error) {
			return p.Activate(cur, rest[0], at.at(p.Now), *force)
		},
	})
}
