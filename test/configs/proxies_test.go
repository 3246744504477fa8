package configs

import (
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"go.yaml.in/yaml/v3"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/config"
)

const proxiesDir = "../../manifests/proxies"

// sessionPaths are request paths as clients may spell them: the session
// endpoints in other cases, percent-encoded, with "//", "." and "..", and
// near misses that are not endpoints, or that silentauth refuses.
var sessionPaths = []string{
	"/auth/refresh", "/auth/logout", "/AUTH/REFRESH", "/Auth/Logout", "/auth/refresh?x=1",
	"/auth/%72efresh", "/auth/%52EFRESH", "/%61uth/logout", "/auth//refresh", "//auth/refresh",
	"/auth/./refresh", "/auth/%2e/refresh", "/x/../auth/refresh", "/auth/%2e%2e/auth/logout",
	"/auth/refre%C5%BFh", // ſ folds to s, in strings.EqualFold and in RE2's (?i) alike
	"/auth/refresh/", "/auth/refresh.", "/auth/refresh%20", "/auth/refreshx", "/auth/refresh.json",
	"/api/auth/refresh", "/auth", "/auth/",
	"/auth%2Frefresh", "/auth%2frefresh", "/auth/refresh;x=1", "/auth/refresh%3B", "/auth%5Crefresh", "/auth/re%00fresh",
}

// TestProxySnippetsRouteSessionEndpoints: the shipped proxy configurations
// send silentauth's session endpoints to silentauth by exactly the rule
// silentauth answers them by (authz.SessionEndpoint, README "Paths").
// Caddy and Traefik route them straight to silentauth's envoy profile
// with a matcher that must be authz.SessionEndpointPattern; nginx and
// Envoy route every path through the authorization check, with no
// endpoint route of their own that could disagree.
func TestProxySnippetsRouteSessionEndpoints(t *testing.T) {
	pol := config.Default().Policy
	want := authz.SessionEndpointPattern(pol.RefreshPath, pol.LogoutPath)

	caddy := readFile(t, filepath.Join(proxiesDir, "caddy", "Caddyfile"))
	m := regexp.MustCompile(`(?m)^\s*@session\s+(\S+)\s+(.*?)\s*$`).FindStringSubmatch(caddy)
	if m == nil || m[1] != "path_regexp" || m[2] != want {
		t.Errorf("Caddyfile: @session is %q, want path_regexp %s", m, want)
	}
	if n := len(mentions(caddy, "#", pol.RefreshPath)); n != 1 {
		t.Errorf("Caddyfile: %d lines name %s, want only the @session matcher", n, pol.RefreshPath)
	}

	var traefik struct {
		HTTP struct {
			Routers map[string]struct {
				Rule    string `yaml:"rule"`
				Service string `yaml:"service"`
			} `yaml:"routers"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(proxiesDir, "traefik", "dynamic.yaml"))), &traefik); err != nil {
		t.Fatal(err)
	}
	var direct []string
	for name, r := range traefik.HTTP.Routers {
		if r.Service == "silentauth" {
			direct = append(direct, name)
			m := regexp.MustCompile("^Host\\(`[^`]*`\\) && PathRegexp\\(`([^`]*)`\\)$").FindStringSubmatch(r.Rule)
			if m == nil || m[1] != want {
				t.Errorf("traefik router %s: rule %q, want Host(…) && PathRegexp(`%s`)", name, r.Rule, want)
			}
		}
	}
	if !slices.Equal(direct, []string{"app-session"}) {
		t.Errorf("traefik: routers to silentauth %v, want [app-session]", direct)
	}

	// nginx: every location but silentauth's own two is protected, and
	// none is the endpoints' own.
	var locations []string
	for _, f := range []string{"silentauth-server.conf", "silentauth-protect.conf", "site.conf"} {
		for _, l := range mentions(readFile(t, filepath.Join(proxiesDir, "nginx", f)), "#", "location ") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "location ") {
				locations = append(locations, l)
			}
		}
	}
	if want := []string{"location = /_silentauth {", "location @silentauth_deny {", "location / {"}; !slices.Equal(locations, want) {
		t.Errorf("nginx locations %q, want %q", locations, want)
	}

	// Envoy: every spelling goes through ext_authz.
	for _, file := range []string{envoyGRPC, envoyHTTPService} {
		hcm := onlyConnectionManager(t, mustLoadEnvoy(t, file))
		for _, p := range sessionPaths {
			if got := checkFor(t, hcm, p); got != "check" {
				t.Errorf("%s: %s: %s, want check", file, p, got)
			}
		}
	}
}

// TestSessionEndpointPatternAgrees: for every spelling, the snippets'
// pattern, applied as Caddy's path_regexp and Traefik's PathRegexp apply
// it (to the decoded path, cleaned with a trailing "/" kept), and
// silentauth agree. A path the pattern routes to silentauth must be an
// endpoint there or refused (400): otherwise its allow, upstream headers
// and all, would go to the browser. An endpoint must be routed: otherwise
// its 2xx answer reaches the proxy as "allow" and the rotated cookies are
// lost.
func TestSessionEndpointPatternAgrees(t *testing.T) {
	pol := config.Default().Policy
	re := regexp.MustCompile(authz.SessionEndpointPattern(pol.RefreshPath, pol.LogoutPath))
	for _, raw := range sessionPaths {
		u, err := url.ParseRequestURI(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		routed := re.MatchString(cleanPath(u.Path))
		endpoint := authz.SessionEndpoint(raw, pol.RefreshPath) || authz.SessionEndpoint(raw, pol.LogoutPath)
		_, refused := authz.FromCheckRequest(&authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
			Http: &authv3.AttributeContext_HttpRequest{Method: "POST", Host: "app.example.com", Path: raw},
		}}})
		switch {
		case endpoint && !routed:
			t.Errorf("%s: silentauth answers it as an endpoint, the proxies send it through forward auth", raw)
		case routed && !endpoint && refused == nil:
			t.Errorf("%s: the proxies route it to silentauth, which takes it for an ordinary request", raw)
		}
	}
}

// cleanPath is the path Caddy's path_regexp matches: path.Clean with a
// trailing "/" kept.
func cleanPath(p string) string {
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mentions returns the lines of text that hold s outside comments.
func mentions(text, comment, s string) []string {
	var out []string
	for line := range strings.Lines(text) {
		if i := strings.Index(line, comment); i >= 0 {
			line = line[:i]
		}
		if strings.Contains(line, s) {
			out = append(out, strings.TrimRight(line, "\n"))
		}
	}
	return out
}
