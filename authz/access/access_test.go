package access

import (
	"strings"
	"testing"
)

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"": false, "a": true, "__Host-sa-at": true, "x-user_id.v2": true, "!#$%&'*+-.^_`|~": true,
		"a b": false, "a=b": false, "a;b": false, "a,b": false, `a"b`: false, "a/b": false,
		"a:b": false, "(a)": false, "a\tb": false, "é": false, "a\x7f": false, "[a]": false, "{a}": false,
		"a?b": false, "a@b": false, "a<b>": false, `a\b`: false,
	} {
		if got := isToken(s); got != want {
			t.Errorf("isToken(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzPathProblem(f *testing.F) {
	for _, s := range []string{"/", "/static/", "/a/../b", "/a%2Fb", "/a/./b", `/a\b`, "/a;b", "//a", "/.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		if PathProblem(p) != "" {
			return
		}
		// An accepted path is already what a normaliser would produce and
		// carries nothing a decoder could turn into a separator.
		for _, seg := range strings.Split(p, "/")[1:] {
			if seg == "." || seg == ".." {
				t.Fatalf("accepted dot segment in %q", p)
			}
		}
		lower := strings.ToLower(p)
		for _, bad := range []string{"%2f", "%5c", "%3b", "%2e", "%25", `\`, ";", "?", "#", "//"} {
			if strings.Contains(lower, bad) {
				t.Fatalf("accepted %q in %q", bad, p)
			}
		}
	})
}

func TestValidate(t *testing.T) {
	if err := Default().Validate("policy"); err != nil {
		t.Fatalf("Default: %v", err)
	}
	p := Default()
	p.LogoutPath = p.RefreshPath
	p.ClaimHeaders = map[string]string{"x-user": ""}
	err := p.Validate("apps.shop")
	for _, want := range []string{
		`apps.shop.logoutPath: must differ from apps.shop.refreshPath ("/auth/refresh")`,
		"apps.shop.claimHeaders.x-user: must name a claim",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q", err, want)
		}
	}
}
