package dextest

import (
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// passwordForm finds the form of Dex's password page (password.html):
// <form method="post" action="{{ .PostURL }}">.
var passwordForm = regexp.MustCompile(`<form method="post" action="([^"]*)"`)

// Login signs email in at Dex as a browser would, without one: it opens
// authURL (an authorization request of one of the clients) with a fresh
// cookie jar, which leads to the password database's login page, posts email and
// password, and follows Dex's redirects until one leads to a client's
// redirect URI. That URL, carrying the code and state (or an OAuth error)
// is returned; it is not fetched. Anything else (a wrong password, an
// unknown client) fails t, with the page Dex showed.
func (d *Dex) Login(t testing.TB, authURL, email, password string) (callbackURL *url.URL) {
	t.Helper()
	callback, err := d.login(authURL, email, password)
	if err != nil {
		t.Fatalf("dextest: login of %s: %v", email, err)
	}
	return callback
}

func (d *Dex) login(authURL, email, password string) (*url.URL, error) {
	jar, err := cookiejar.New(nil)
	if err != nil {
		return nil, err
	}
	var callback *url.URL
	client := &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if d.isRedirect(req.URL) {
				callback = req.URL
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			return nil
		},
	}
	page, body, err := fetch(client.Get, authURL)
	if callback != nil || err != nil {
		return callback, err
	}
	// With the password database as its only connector, Dex goes straight
	// to its login page.
	form := passwordForm.FindStringSubmatch(body)
	if form == nil {
		return nil, fmt.Errorf("no login form at %s (%s):\n%s", page.Request.URL, page.Status, excerpt(body))
	}
	action, err := page.Request.URL.Parse(html.UnescapeString(form[1]))
	if err != nil {
		return nil, err
	}
	post := func(u string) (*http.Response, error) {
		return client.PostForm(u, url.Values{"login": {email}, "password": {password}})
	}
	page, body, err = fetch(post, action.String())
	if callback != nil || err != nil {
		return callback, err
	}
	return nil, fmt.Errorf("no redirect to a client after posting the login form to %s; Dex answered %s at %s:\n%s",
		action, page.Status, page.Request.URL, excerpt(body))
}

// fetch does one request through do (its redirects followed) and reads the
// page it ends at.
func fetch(do func(string) (*http.Response, error), u string) (*http.Response, string, error) {
	resp, err := do(u)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(data), err
}

// excerpt is the start of a page, for an error message.
func excerpt(body string) string {
	body = strings.TrimSpace(body)
	if len(body) > 2000 {
		body = body[:2000] + "…"
	}
	return body
}
