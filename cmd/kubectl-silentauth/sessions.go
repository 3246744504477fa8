package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/pflag"
)

const sessionsHelp = `List and end a user's sessions through silentauth's session API.

The session API is the chart's Service port http-session (9003). From outside
the cluster, forward it first and point --api at it:

  kubectl port-forward -n auth svc/silentauth 9003 &
  kubectl silentauth sessions list alice --api http://localhost:9003 --as-service-account auth/ops

Every call carries a bearer token of a ServiceAccount the server accepts
(config.sessionAPI.serviceAccounts), for the API's audience:
  --as-service-account NS/NAME   the plugin requests one (TokenRequest) with your kubeconfig
                                 credentials (needs create on serviceaccounts/token)
  --token-file FILE              a token you have, "-" for stdin:
      kubectl create token ops -n auth --audience silentauth-session-api | \
        kubectl silentauth sessions list alice --token-file -

Usage:
  kubectl silentauth sessions COMMAND SUBJECT [flags]

Commands:
  list SUBJECT                         show the subject's sessions
  revoke SUBJECT [--session ID] --yes  end one session, or every session of the subject
` + sessionFlagsHelp + globalHelp

const sessionFlagsHelp = `
Session API flags:
      --api URL                     the session API (default http://silentauth.NAMESPACE.svc:9003)
      --token-file FILE             bearer token to present, "-" for stdin
      --as-service-account NS/NAME  request a token for this ServiceAccount
      --audience string             audience of a requested token (default "silentauth-session-api")
`

const sessionsListHelp = `Show a subject's sessions: live, revoked (with the cause) or idle-expired,
when each was started and last used, and where from.

Usage:
  kubectl silentauth sessions list SUBJECT [-o json] [flags]

Examples:
  kubectl silentauth sessions list alice -n auth --as-service-account auth/ops
  kubectl silentauth sessions list alice --api http://localhost:9003 --token-file token -o json
`

const sessionsRevokeHelp = `End a subject's sessions at once: the next refresh of each is refused, and
the user signs in again once the current access token expires. The cause
recorded is "admin".

Without --yes nothing is revoked. With --session only that session (it must
belong to SUBJECT); otherwise every live session of SUBJECT.

Usage:
  kubectl silentauth sessions revoke SUBJECT [--session ID] --yes [flags]

Examples:
  kubectl silentauth sessions revoke alice --session 3q2-7w0oQ0uY8FvS8VQ3vA -n auth --as-service-account auth/ops --yes
  kubectl silentauth sessions revoke alice -n auth --as-service-account auth/ops --yes
`

// Defaults of the session API flags: what the chart creates.
const (
	defaultService     = "silentauth"
	defaultAPIPort     = 9003
	defaultAPIAudience = "silentauth-session-api"
	tokenLifetime      = 10 * time.Minute // a requested token lives only for the command
	maxAnswerBytes     = 4 << 20
)

// apiOptions are the session API flags.
type apiOptions struct {
	url, tokenFile, serviceAccount, audience string
}

func (o *apiOptions) bind(fs *pflag.FlagSet) {
	fs.StringVar(&o.url, "api", "", "the session API URL (default http://silentauth.NAMESPACE.svc:9003)")
	fs.StringVar(&o.tokenFile, "token-file", "", `bearer token file, "-" for stdin`)
	fs.StringVar(&o.serviceAccount, "as-service-account", "", "request a token for ServiceAccount NS/NAME")
	fs.StringVar(&o.audience, "audience", defaultAPIAudience, "audience of a requested token")
}

// apiClient calls the session API.
type apiClient struct {
	base  *url.URL
	token string
	http  *http.Client
}

// sessionAPI resolves the flags into a client: the URL, and a token read
// or requested.
func (c *cli) sessionAPI(ctx context.Context, g *globals, o apiOptions) (*apiClient, error) {
	if (o.tokenFile == "") == (o.serviceAccount == "") {
		return nil, errors.New("give exactly one of --token-file and --as-service-account (see 'kubectl silentauth sessions --help')")
	}
	raw := o.url
	if raw == "" {
		_, ns, err := c.connect(g.kube)
		if err != nil {
			return nil, err
		}
		raw = fmt.Sprintf("http://%s.%s.svc:%d", defaultService, ns, defaultAPIPort)
	}
	base, err := url.Parse(raw)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("--api %q: want an http or https URL", raw)
	}
	var token string
	switch {
	case o.tokenFile == "-":
		in := c.stdin
		if in == nil {
			in = os.Stdin
		}
		b, err := io.ReadAll(io.LimitReader(in, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("token from stdin: %w", err)
		}
		token = string(b)
	case o.tokenFile != "":
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		token = string(b)
	default:
		ns, name, ok := strings.Cut(o.serviceAccount, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("--as-service-account %q: want NAMESPACE/NAME", o.serviceAccount)
		}
		request := c.requestToken
		if request == nil {
			request = kubeTokenRequest
		}
		if token, err = request(ctx, g.kube, ns, name, o.audience, tokenLifetime); err != nil {
			return nil, fmt.Errorf("token for serviceaccount %s: %w", o.serviceAccount, err)
		}
	}
	token = strings.TrimSpace(token)
	if token == "" || strings.ContainsFunc(token, unicode.IsSpace) {
		return nil, errors.New("the token is empty or not one line")
	}
	hc := c.http
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &apiClient{base: base, token: token, http: hc}, nil
}

// do sends one request and decodes a JSON answer into out (nil: none
// expected). A refusal is an error naming the API's own message.
func (a *apiClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(a.base.String(), "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("session API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("session API: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e struct{ Error, Message string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			return fmt.Errorf("session API: %s %s: %s", method, path, resp.Status)
		}
		hint := ""
		if resp.StatusCode == http.StatusUnauthorized {
			hint = " (is the ServiceAccount in config.sessionAPI.serviceAccounts, and the audience right?)"
		}
		return fmt.Errorf("session API: %s: %s%s", resp.Status, printable(e.Message), hint)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(out); err != nil {
		return fmt.Errorf("session API: answer: %w", err)
	}
	return nil
}

// sessionView is one session as the session API lists it.
type sessionView struct {
	ID                string     `json:"id"`
	Subject           string     `json:"subject"`
	Policy            string     `json:"policy,omitempty"`
	CreatedAt         time.Time  `json:"created_at"`
	LastUsedAt        *time.Time `json:"last_used_at,omitempty"`
	IdleExpiresAt     time.Time  `json:"idle_expires_at"`
	AbsoluteExpiresAt time.Time  `json:"absolute_expires_at"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	RevokeReason      string     `json:"revoke_reason,omitempty"`
	RevokeCause       string     `json:"revoke_cause,omitempty"`
	UserAgent         string     `json:"user_agent,omitempty"`
	ClientAddress     string     `json:"client_address,omitempty"`
	ProviderSID       string     `json:"provider_sid,omitempty"`
}

// state is how the session stands at now.
func (v sessionView) state(now time.Time) string {
	switch {
	case v.RevokedAt != nil:
		return "revoked (" + printable(cmpOr(v.RevokeCause, v.RevokeReason, "?")) + ")"
	case !now.Before(v.AbsoluteExpiresAt), !now.Before(v.IdleExpiresAt):
		return "expired"
	}
	return "live"
}

func cmpOr(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func (c *cli) sessions(ctx context.Context, g *globals, args []string) error {
	return c.dispatch(ctx, "sessions", sessionsHelp, g, args, map[string]command{
		"list":   c.sessionsList,
		"revoke": c.sessionsRevoke,
	})
}

func (c *cli) sessionsList(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("list")
	var o apiOptions
	o.bind(fs)
	output := fs.StringP("output", "o", "", "output format: json (default: a table)")
	rest, helped, err := c.parse("sessions list", sessionsListHelp, fs, g, args, "the SUBJECT")
	if err != nil || helped {
		return err
	}
	if *output != "" && *output != "json" {
		return usageError("sessions list", fmt.Errorf("-o %q: the formats are json and the default table", *output))
	}
	api, err := c.sessionAPI(ctx, g, o)
	if err != nil {
		return err
	}
	var list struct {
		Sessions []sessionView `json:"sessions"`
	}
	if err := api.do(ctx, http.MethodGet, "/v1/subjects/"+url.PathEscape(rest[0])+"/sessions", &list); err != nil {
		return err
	}
	now := c.now().UTC()
	if *output == "json" {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Subject  string        `json:"subject"`
			Now      time.Time     `json:"now"`
			Sessions []sessionView `json:"sessions"`
		}{rest[0], now.Truncate(time.Second), list.Sessions})
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "SESSION\tSTATE\tCREATED\tLAST USED\tCLIENT\tUSER AGENT\tPROVIDER SID")
	for _, v := range list.Sessions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(v.ID), v.state(now), stamp(v.CreatedAt), cell(v.LastUsedAt),
			dash(v.ClientAddress), dash(shorten(v.UserAgent, 48)), dash(v.ProviderSID))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(list.Sessions) == 0 {
		fmt.Fprintf(c.stderr, "no sessions of %q\n", rest[0])
	}
	return nil
}

func (c *cli) sessionsRevoke(ctx context.Context, g *globals, args []string) error {
	fs := newFlags("revoke")
	var o apiOptions
	o.bind(fs)
	id := fs.String("session", "", "revoke only this session (its id, as list shows it)")
	yes := fs.Bool("yes", false, "confirm: revoke now")
	rest, helped, err := c.parse("sessions revoke", sessionsRevokeHelp, fs, g, args, "the SUBJECT")
	if err != nil || helped {
		return err
	}
	subject := rest[0]
	if !*yes {
		what := "every session of " + fmt.Sprintf("%q", subject)
		if *id != "" {
			what = "session " + *id
		}
		fmt.Fprintf(c.stdout, "nothing revoked: revoking %s takes effect at once and cannot be undone; run again with --yes\n", what)
		return nil
	}
	api, err := c.sessionAPI(ctx, g, o)
	if err != nil {
		return err
	}
	path := "/v1/subjects/" + url.PathEscape(subject) + "/sessions"
	if *id != "" {
		if err := api.do(ctx, http.MethodDelete, path+"/"+url.PathEscape(*id), nil); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "session %s of %q revoked\n", *id, subject)
		return nil
	}
	var res struct {
		Revoked int `json:"revoked"`
	}
	if err := api.do(ctx, http.MethodDelete, path, &res); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%d sessions of %q revoked\n", res.Revoked, subject)
	return nil
}

// printable drops control and formatting characters from what the server
// sent before it reaches the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
}

func shorten(s string, n int) string {
	s = printable(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func dash(s string) string {
	if s = printable(s); s == "" {
		return "-"
	}
	return s
}
