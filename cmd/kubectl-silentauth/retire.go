package main

import (
	"context"
	"errors"

	"github.com/silentauth/silentauth/authz/keys"
)

const retireHelp = `Set when a key stops signing (its retire-at). It keeps verifying for the
access-token TTL plus leeway after that, so no token it signed is refused,
then it is dropped from the JWKS.

Retiring the only usable key is refused (there is no override): add its
successor first with "kubectl silentauth keys rotate", which also retires it
at the right moment.

--cancel removes a retire-at that has not come yet: with "keys revoke" of the
key that was to take over, it aborts a rotation.

Usage:
  kubectl silentauth keys retire NAME [--at TIME | --cancel] [flags]

Examples:
  kubectl silentauth keys retire k-20261001-0f3a9c2e -n auth
  kubectl silentauth keys retire k-20261001-0f3a9c2e -n auth --at 2h

  # Abort a rotation: keep the old key signing, drop the new one
  kubectl silentauth keys retire k-20261001-0f3a9c2e -n auth --cancel
  kubectl silentauth keys revoke k-20261125-abcd1234 -n auth --yes
`

func (c *cli) retire(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("retire")
	var at when
	fs.Var(&at, "at", `when to stop signing (RFC 3339, "now", or a duration from now) (default now)`)
	cancel := fs.Bool("cancel", false, "remove a planned retire-at instead: the key keeps signing")
	dryRun := fs.Bool("dry-run", false, "print what would change, write nothing")
	rest, helped, err := c.parse("keys retire", retireHelp, fs, g, args, "the key's NAME")
	if err != nil || helped {
		return err
	}
	if *cancel && at.set {
		return usageError("keys retire", errors.New("--at and --cancel are exclusive"))
	}
	s, err := c.secretRef(g)
	if err != nil {
		return err
	}
	return mutate(ctx, s, c.planner, c.stdout, mutation{
		dryRun: *dryRun,
		plan: func(p planner, cur []keys.Entry) (change, error) {
			if *cancel {
				return p.CancelRetire(cur, rest[0])
			}
			return p.Retire(cur, rest[0], at.at(p.Now))
		},
	})
}
