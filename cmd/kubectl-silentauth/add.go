package main

import (
	"context"
	"errors"

	"github.com/silentauth/silentauth/authz/keys"
)

const addHelp = `Generate a key and publish it in the Secret as "next": verifiers learn it
from the JWKS now, and it starts signing after --activate-in (default 30m,
longer than istiod's 20-minute JWKS refresh plus the JWKS max-age).

If the Secret does not exist, it is created and this first key is active at
once: nothing signs yet, so no verifier can be behind. The same holds when
no key signs now.

The key never leaves the Secret and is never printed; only its kid (the
public key's RFC 7638 thumbprint) is.

Usage:
  kubectl silentauth keys add [--name NAME] [--alg ES256|EdDSA|RS256] [--activate-in 30m | --activate-at TIME] [flags]

Examples:
  # First key of a fresh install
  kubectl silentauth keys add -n auth

  # Publish now, sign in two hours (verifiers that cache the JWKS longer)
  kubectl silentauth keys add -n auth --activate-in 2h

  # See what would change
  kubectl silentauth keys add -n auth --alg EdDSA --dry-run
`

func (c *cli) add(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("add")
	name := fs.String("name", "", "key name (default k-<yyyymmdd>-<first 8 characters of the kid>)")
	algName := fs.String("alg", string(keys.ES256), "algorithm: ES256, EdDSA or RS256")
	in := fs.Duration("activate-in", minLead, "start signing this long after publishing")
	var at when
	fs.Var(&at, "activate-at", `start signing at this time (RFC 3339, "now", or a duration from now)`)
	force := fs.Bool("force", false, "allow activation sooner than 30m after publishing")
	dryRun := fs.Bool("dry-run", false, "print what would change, write nothing")
	if _, helped, err := c.parse("keys add", addHelp, fs, g, args, ""); err != nil || helped {
		return err
	}
	if fs.Changed("activate-in") && fs.Changed("activate-at") {
		return usageError("keys add", errors.New("--activate-in and --activate-at are exclusive"))
	}
	if *in < 0 {
		return usageError("keys add", errors.New("--activate-in must not be negative"))
	}
	alg, err := parseAlg(*algName)
	if err != nil {
		return usageError("keys add", err)
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
	// One key for every attempt: a retry after a conflict plans the same key.
	k, err := c.generate(alg)
	if err != nil {
		return err
	}
	inChanged := fs.Changed("activate-in")
	return mutate(ctx, s, c.planner, c.stdout, mutation{
		create: true,
		dryRun: *dryRun,
		plan: func(p planner, cur []keys.Entry) (change, error) {
			activateAt := at.at(p.Now)
			if inChanged {
				activateAt = p.Now.Add(*in)
			}
			return p.Add(cur, keys.Entry{Name: *name, Key: k}, activateAt, *force)
		},
	})
}
