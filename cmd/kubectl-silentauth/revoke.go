package main

import (
	"context"

	"github.com/silentauth/silentauth/authz/keys"
)

const revokeHelp = `Delete a key from the Secret at once: its data entry and its annotations.

This is the cleanup of a retired key, and the emergency path for a key
that leaked. Access tokens it signed stop verifying as soon as the replicas
see the change; browsers holding them are silently re-issued tokens through
the refresh path. Refresh tokens are MACs under a secret derived from the
key that signed when their session last refreshed, so the sessions whose
refresh tokens the key made are logged out at their next refresh (their
token is unknown and their cookies are cleared; they log in again).

A retired key keeps verifying refresh tokens until its retire-at plus the
sessions' idle TTL (--idle-ttl, the server's sessions.idleTTL). Deleting a
key before then, including a key that still signs or has no retire-at, is
refused unless --force: the message names the time from which it is safe.
Use --force for a leaked key. Revoking the only usable key is refused:
rotate first.

Without --yes the change is printed and nothing is written.

Usage:
  kubectl silentauth keys revoke NAME --yes [flags]

Examples:
  # A retired key, once its retire-at + the sessions' idle TTL has passed
  kubectl silentauth keys revoke k-20261001-0f3a9c2e -n auth --yes

  # A leaked key, once its successor signs: its sessions log in again
  kubectl silentauth keys revoke k-20261001-0f3a9c2e -n auth --force --yes
`

func (c *cli) revoke(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("revoke")
	yes := fs.Bool("yes", false, "confirm: delete the key now")
	dryRun := fs.Bool("dry-run", false, "print what would change, write nothing")
	force := fs.Bool("force", false, "delete a key that may still verify refresh tokens, logging out the sessions it made them for")
	idle := fs.Duration("idle-ttl", defaultLifecycle.RefreshTTL, "the server's sessions.idleTTL; must match the server's configuration")
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
			p.Lifecycle.RefreshTTL = *idle
			return p.Revoke(cur, rest[0], *force)
		},
	}
	if !*yes {
		m.confirm = "nothing written: revoking takes effect at once and cannot be undone " +
			"(sessions whose refresh tokens the key made must log in again, as said above); run again with --yes"
	}
	return mutate(ctx, s, c.planner, c.stdout, m)
}
