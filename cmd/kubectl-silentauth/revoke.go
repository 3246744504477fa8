package main

import (
	"context"

	"github.com/silentauth/silentauth/authz/keys"
)

const revokeHelp = `Delete a key from the Secret at once: its data entry and its annotations.

This is the emergency path for a key that leaked. Access tokens it signed
stop verifying as soon as the replicas see the change; browsers holding
them are silently re-issued tokens through the refresh path, so nobody is
logged out. Revoking the only usable key is refused: rotate first.

Without --yes the change is printed and nothing is written.

Usage:
  kubectl silentauth keys revoke NAME --yes [flags]

Examples:
  # A leaked key, once its successor signs
  kubectl silentauth keys revoke k-20261001-0f3a9c2e -n auth --yes
`

func (c *cli) revoke(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("revoke")
	yes := fs.Bool("yes", false, "confirm: delete the key now")
	dryRun := fs.Bool("dry-run", false, "print what would change, write nothing")
	rest, helped, err := c.parse("keys revoke", revokeHelp, fs, g, args, "the key's NAME")
	if err != nil || helped {
		return err
	}
	s, err := c.secretRef(g)
	if err != nil {
		return err
	}
	m := mutation{
		dryRun: *dryRun,
		plan: func(p planner, cur []keys.Entry) (change, error) {
			return p.Revoke(cur, rest[0])
		},
	}
	if !*yes {
		m.confirm = "nothing written: revoking takes effect at once and cannot be undone; run again with --yes"
	}
	return mutate(ctx, s, c.planner, c.stdout, m)
}
