package config

import (
	"net/http"
	"testing"
)

func TestCookiesPolicy(t *testing.T) {
	cases := []struct {
		sameSite string
		want     http.SameSite
	}{{"Lax", http.SameSiteLaxMode}, {"Strict", http.SameSiteStrictMode}, {"None", http.SameSiteNoneMode}}
	for _, c := range cases {
		cfg := Development()
		cfg.Cookies.SameSite = c.sameSite
		done, err := cfg.Complete()
		if err != nil {
			t.Fatalf("%s: Complete: %v", c.sameSite, err)
		}
		p := done.CookiePolicy
		if p.SameSite != c.want || p.Access != "__Host-sa-at" || p.Refresh != "__Host-sa-rt" || p.Hint != "__Host-sa-exp" || p.Path != "/" || !p.Secure {
			t.Errorf("%s: %+v", c.sameSite, p)
		}
	}
}
