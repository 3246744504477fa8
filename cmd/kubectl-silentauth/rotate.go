package main

import (
	"context"

	"github.com/silentauth/silentauth/authz/keys"
)

const rotateHelp = `Rotate the signing key: generate a key, publish it as "next" to activate
after --lead (default 30m), and set the current key's retire-at to that same
moment, so exactly one key signs at every instant. The old key keeps
verifying for the access-token TTL plus leeway after that.

Refused while another key is waiting to activate (a rotation in progress),
and for a lead under 30m unless --force.

Usage:
  kubectl silentauth keys rotate [--alg ES256|EdDSA|RS256] [--lead 30m] [flags]

Examples:
  kubectl silentauth keys rotate -n auth
  kubectl silentauth keys rotate -n auth --alg EdDSA --lead 1h --dry-run
`

func (c *cli) rotate(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("rotate")
	name := fs.String("name", "", "name of the new key (default k-<yyyymmdd>-<first 8 characters of the kid>)")
	algName := fs.String("alg", string(keys.ES256), "algorithm of the new key: ES256, EdDSA or RS256")
	lead := fs.Duration("lead", minLead, "how long the new key is published before it signs")
	force := fs.Bool("force", false, "allow a lead under 30m")
	dryRun := fs.Bool("dry-run", false, "print what would change, write nothing")
	if _, helped, err := c.parse("keys rotate", rotateHelp, fs, g, args, ""); err != nil || helped {
		return err
	}
	alg, err := parseAlg(*algName)
	if err != nil {
		return usageError("keys rotate", err)
	}
	if *name != "" {
		if err := validName(*name); err != nil {
			return err
		}
	}
	s, err := c.secretRef(g)
	if err != nil {
		return err
	}
	k, err := c.generate(alg) // one key for every attempt
	if err != nil {
		return err
	}
	return mutate(ctx, s, c.planner, c.stdout, mutation{
		dryRun: *dryRun,
		plan: func(p planner, cur []keys.Entry) (change, error) {
			return p.Rotate(cur, keys.Entry{Name: *name, Key: k}, *lead, *force)
		},
	})
}
