package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/internal/buildinfo"
)

const rootHelp = `kubectl silentauth manages silentauth's signing keys in their Kubernetes Secret.

Every replica derives each key's state from the Secret's timestamps and the
clock: next (published, not signing) → active (signing) → retiring (verifying
only, for the access-token TTL plus leeway) → gone. A retired key verifies
refresh tokens for the sessions' idle TTL after its retire-at; only then may
it leave the Secret without logging anyone out. Changing keys is editing
those timestamps; this plugin does it safely.

Usage:
  kubectl silentauth keys COMMAND [flags]
  kubectl silentauth sessions COMMAND SUBJECT [flags]

Commands:
  keys list       show every key and its state
  keys add        publish a new key; it signs 30m later
  keys activate   set when a key starts signing
  keys retire     set when a key stops signing
  keys revoke     delete a key once it verifies no refresh token (--force: at once)
  keys rotate     publish a successor and hand over to it 30m later
  sessions list   show a user's sessions (through the session API)
  sessions revoke end one or all of a user's sessions
  version         print the version, commit and Go version of this build

Examples:
  # The first key of a fresh install (creates the Secret; active at once)
  kubectl silentauth keys add -n auth

  # Routine rotation: the new key signs in 30m, the old one retires then
  kubectl silentauth keys rotate -n auth

  # Watch it happen
  kubectl silentauth keys list -n auth
` + globalHelp + `
Use "kubectl silentauth keys COMMAND --help" for more about a command.
`

const globalHelp = `
Global flags:
  -n, --namespace string    namespace of the Secret (default: the kubeconfig context's namespace)
      --secret string       name of the keys Secret (default "silentauth-keys")
      --kubeconfig string   kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)
      --context string      kubeconfig context (default: the current context)
`

const keysHelp = `Manage silentauth's signing keys.

Usage:
  kubectl silentauth keys COMMAND [flags]

Commands:
  list                 show every key and its state
  add                  publish a new key; it signs 30m later (at once on a fresh install)
  activate NAME        set when a key starts signing
  retire NAME          set when a key stops signing (--cancel: keep it signing)
  revoke NAME --yes    delete a retired key after retire-at + sessions' idle TTL
                       (--force: at once, logging out its sessions; emergency)
  rotate               publish a successor and hand over to it 30m later

Examples:
  kubectl silentauth keys list -n auth
  kubectl silentauth keys rotate -n auth --dry-run
  kubectl silentauth keys revoke k-20261125-abcd1234 -n auth --yes
` + globalHelp

// defaultSecret is the Secret the chart creates.
const defaultSecret = "silentauth-keys"

// globals are the flags every command takes.
type globals struct {
	kube   kubeOptions
	secret string
}

// flagSet binds the global flags, defaulting to their current values so
// that parsing at one level keeps what an earlier level set.
func (g *globals) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("global", pflag.ContinueOnError)
	fs.StringVarP(&g.kube.Namespace, "namespace", "n", g.kube.Namespace, "namespace of the Secret")
	fs.StringVar(&g.secret, "secret", g.secret, "name of the keys Secret")
	fs.StringVar(&g.kube.Kubeconfig, "kubeconfig", g.kube.Kubeconfig, "kubeconfig file")
	fs.StringVar(&g.kube.Context, "context", g.kube.Context, "kubeconfig context")
	return fs
}

// cli is the plugin with its environment injected.
type cli struct {
	stdout, stderr io.Writer
	stdin          io.Reader // --token-file -
	connect        clientFactory
	now            func() time.Time
	generate       func(keys.Alg) (*keys.Key, error)
	// http calls the session API; requestToken asks the cluster for a
	// ServiceAccount token (--as-service-account).
	http         *http.Client
	requestToken tokenRequester
}

// run is the whole plugin: args without the program name, output on
// stdout, the cluster through connect. Errors are the caller's to print.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, connect clientFactory) error {
	c := &cli{
		stdout: stdout, stderr: stderr, stdin: os.Stdin, connect: connect, now: time.Now, generate: keys.Generate,
		http: &http.Client{Timeout: 30 * time.Second}, requestToken: kubeTokenRequest,
	}
	return c.run(ctx, args)
}

func (c *cli) run(ctx context.Context, args []string) error {
	g := &globals{secret: defaultSecret}
	rest, helped, err := c.parseLevel("", rootHelp, g, args)
	if err != nil || helped {
		return err
	}
	if len(rest) == 0 {
		fmt.Fprint(c.stderr, rootHelp)
		return errors.New("a command is required")
	}
	switch rest[0] {
	case "keys":
		return c.keys(ctx, g, rest[1:])
	case "sessions":
		return c.sessions(ctx, g, rest[1:])
	case "version":
		fmt.Fprintln(c.stdout, "kubectl-silentauth", buildinfo.Get())
		return nil
	case "help":
		fmt.Fprint(c.stdout, rootHelp)
		return nil
	default:
		return fmt.Errorf("unknown command %q\nSee 'kubectl silentauth --help' for usage.", rest[0])
	}
}

func (c *cli) keys(ctx context.Context, g *globals, args []string) error {
	return c.dispatch(ctx, "keys", keysHelp, g, args, map[string]command{
		"list":     c.list,
		"add":      c.add,
		"activate": c.activate,
		"retire":   c.retire,
		"revoke":   c.revoke,
		"rotate":   c.rotate,
	})
}

// command is one subcommand, given the flags parsed so far and its
// arguments.
type command func(context.Context, *globals, []string) error

// dispatch parses the global flags of the command group name (help is its
// help text), then runs the subcommand named by the next argument.
func (c *cli) dispatch(ctx context.Context, name, help string, g *globals, args []string, cmds map[string]command) error {
	rest, helped, err := c.parseLevel(name, help, g, args)
	if err != nil || helped {
		return err
	}
	if len(rest) == 0 {
		fmt.Fprint(c.stderr, help)
		return fmt.Errorf("a %s command is required", name)
	}
	cmd, ok := cmds[rest[0]]
	if !ok {
		return fmt.Errorf("unknown %s command %q\nSee 'kubectl silentauth %s --help' for usage.", name, rest[0], name)
	}
	return cmd(ctx, g, rest[1:])
}

// parseLevel parses the global flags that come before a (sub)command.
func (c *cli) parseLevel(name, help string, g *globals, args []string) (rest []string, helped bool, err error) {
	fs := g.flagSet()
	fs.SetInterspersed(false)
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(c.stdout, help)
			return nil, true, nil
		}
		return nil, false, usageError(name, err)
	}
	return fs.Args(), false, nil
}

// parse parses a command's own flags together with the global ones, in
// any order among its arguments, and checks its arguments: none when arg
// is "", else exactly one, which arg describes ("the key's NAME").
func (c *cli) parse(name, help string, own *pflag.FlagSet, g *globals, args []string, arg string) (rest []string, helped bool, err error) {
	all := pflag.NewFlagSet(name, pflag.ContinueOnError)
	all.Usage = func() {}
	all.SetOutput(io.Discard)
	all.AddFlagSet(own)
	all.AddFlagSet(g.flagSet())
	if err := all.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			fmt.Fprint(c.stdout, help, "\nFlags:\n", own.FlagUsages(), globalHelp)
			return nil, true, nil
		}
		return nil, false, usageError(name, err)
	}
	switch {
	case arg == "" && all.NArg() != 0:
		return nil, false, usageError(name, fmt.Errorf("unexpected arguments: %s", strings.Join(all.Args(), " ")))
	case arg != "" && (all.NArg() != 1 || all.Arg(0) == ""):
		return nil, false, usageError(name, fmt.Errorf("expected 1 argument (%s), got %d", arg, all.NArg()))
	}
	return all.Args(), false, nil
}

func usageError(name string, err error) error {
	cmd := "kubectl silentauth"
	if name != "" {
		cmd += " " + name
	}
	return fmt.Errorf("%w\nSee '%s --help' for usage.", err, cmd)
}

func newFlags(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	return fs
}

// secretRef connects with the global flags and names the Secret.
func (c *cli) secretRef(g *globals) (secretRef, error) {
	client, ns, err := c.connect(g.kube)
	if err != nil {
		return secretRef{}, err
	}
	if g.secret == "" {
		return secretRef{}, errors.New("--secret must not be empty")
	}
	return secretRef{client: client, namespace: ns, name: g.secret}, nil
}

// planner returns a planner at the current time.
// Times are whole seconds, as the annotations are best read.
func (c *cli) planner() planner {
	return planner{Now: c.now().UTC().Truncate(time.Second), Lifecycle: defaultLifecycle}
}

// when is a time flag: an RFC 3339 time, "now", or a duration from now
// such as 30m. It is resolved when the command plans, so a retry after a
// conflict sees the time it runs at.
type when struct {
	abs time.Time
	rel time.Duration
	set bool
}

var _ pflag.Value = (*when)(nil)

func (w *when) String() string {
	switch {
	case !w.set:
		return ""
	case !w.abs.IsZero():
		return stamp(w.abs)
	default:
		return human(w.rel)
	}
}

func (w *when) Set(s string) error {
	if s == "now" {
		*w = when{set: true}
		return nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		*w = when{abs: t.UTC(), set: true}
		return nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		*w = when{rel: d, set: true}
		return nil
	}
	return errors.New(`want an RFC 3339 time (2026-11-25T12:30:00Z), "now", or a duration from now (30m)`)
}

func (w *when) Type() string { return "TIME" }

// at resolves w at now; zero when the flag was not given.
func (w *when) at(now time.Time) time.Time {
	switch {
	case !w.set:
		return time.Time{}
	case !w.abs.IsZero():
		return w.abs
	default:
		return now.Add(w.rel)
	}
}

// parseAlg parses --alg.
func parseAlg(s string) (keys.Alg, error) {
	for _, a := range []keys.Alg{keys.ES256, keys.EdDSA, keys.RS256} {
		if strings.EqualFold(s, string(a)) {
			return a, nil
		}
	}
	return "", fmt.Errorf("--alg %q: want ES256, EdDSA or RS256", s)
}
