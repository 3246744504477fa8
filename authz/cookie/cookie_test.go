package cookie

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	now = time.Unix(1700000000, 0)
	p   = Default()
)

func TestRead(t *testing.T) {
	tests := []struct {
		name, header string
		want         Found
	}{
		{"empty", "", Found{}},
		{"none of ours", "a=1; b=2", Found{}},
		{"normal", "a=1; __Host-sa-at=AT; __Host-sa-rt=RT; b=2", Found{Access: "AT", Refresh: "RT"}},
		{"no space", "__Host-sa-at=AT;__Host-sa-rt=RT", Found{Access: "AT", Refresh: "RT"}},
		{"surrounding space", "  __Host-sa-at = AT ;\t__Host-sa-rt=RT  ", Found{Access: "AT", Refresh: "RT"}},
		{"quoted", `__Host-sa-at="AT"; __Host-sa-rt="RT"`, Found{Access: "AT", Refresh: "RT"}},
		{"lone quote kept", `__Host-sa-at="AT`, Found{Access: `"AT`}},
		{"value with =", "__Host-sa-rt=a=b==", Found{Refresh: "a=b=="}},
		{"empty pairs", ";;  ; __Host-sa-rt=RT;;", Found{Refresh: "RT"}},
		{"pair without =", "__Host-sa-rt; __Host-sa-at", Found{}},
		{"case variant ignored", "__host-sa-rt=X; __HOST-SA-AT=Y", Found{}},
		{"case variant then ours", "__host-sa-rt=X; __Host-sa-rt=RT", Found{Refresh: "RT"}},
		{"prefix of ours", "__Host-sa=X; __Host-sa-a=Y; __Host-sa-r=Z", Found{}},
		{"ours is prefix", "__Host-sa-att=X; __Host-sa-rtx=Y; x__Host-sa-rt=Z", Found{}},
		{"hint not read", "__Host-sa-exp=at=1&rt=2", Found{}},
		{"dup access", "__Host-sa-at=A1; __Host-sa-at=A2", Found{Access: "A1", AccessDup: true}},
		{"dup refresh", "__Host-sa-rt=R1; x=1; __Host-sa-rt=R2; __Host-sa-rt=R3", Found{Refresh: "R1", RefreshDup: true}},
		{"dup first empty", "__Host-sa-rt=; __Host-sa-rt=R2", Found{RefreshDup: true}},
		{"empty value", "__Host-sa-at=", Found{}},
		{"garbage", "=;=;==;\x00;\xff\xfe=1; ;", Found{}},
		{"empty name", "=RT", Found{}},
	}
	for _, tt := range tests {
		if got := p.Read(tt.header); got != tt.want {
			t.Errorf("%s: Read(%q) = %+v, want %+v", tt.name, tt.header, got, tt.want)
		}
	}
}

func TestReadBounded(t *testing.T) {
	pad := strings.Repeat("x", MaxHeaderBytes-len("a=; __Host-sa-rt=RT")) // ends exactly at the limit
	tests := []struct {
		name, header string
		want         Found
	}{
		{"ends at limit", "a=" + pad + "; __Host-sa-rt=RT", Found{Refresh: "RT"}},
		{"limit then ;", "a=" + pad + "; __Host-sa-rt=RT; b=1", Found{Refresh: "RT"}},
		{"straddles limit", "a=" + pad + "; __Host-sa-rt=RTTT", Found{}},
		{"beyond limit", "a=" + pad + "x; __Host-sa-rt=RT", Found{}},
		{"one huge pair", strings.Repeat("y", 2*MaxHeaderBytes), Found{}},
	}
	for _, tt := range tests {
		if got := p.Read(tt.header); got != tt.want {
			t.Errorf("%s: Read = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestReadDoesNotAllocate(t *testing.T) {
	h := strings.Repeat("a=1; __Host-sa-at=AT; ", 2000)
	if n := testing.AllocsPerRun(10, func() { p.Read(h) }); n != 0 {
		t.Errorf("Read allocated %v times", n)
	}
}

func TestStrip(t *testing.T) {
	tests := []struct {
		name, header, rest string
		removed            bool
	}{
		{"empty", "", "", false},
		{"none of ours unchanged", " a=1;b=2 ;; ", " a=1;b=2 ;; ", false},
		{"case variant kept", "__host-sa-rt=X", "__host-sa-rt=X", false},
		{"prefix kept", "__Host-sa=X; __Host-sa-rtx=Y", "__Host-sa=X; __Host-sa-rtx=Y", false},
		{"all three", "a=1; __Host-sa-at=AT; __Host-sa-rt=RT; __Host-sa-exp=at=1&rt=2; b=2", "a=1; b=2", true},
		{"only ours", "__Host-sa-at=AT; __Host-sa-rt=RT", "", true},
		{"no space", "a=1;__Host-sa-rt=RT;b=2", "a=1; b=2", true},
		{"spaces and empties", " ; a=1 ;  __Host-sa-rt = RT ;; b=2 ", "a=1; b=2", true},
		{"duplicates", "__Host-sa-rt=R1; a=1; __Host-sa-rt=R2", "a=1", true},
		{"pair without =", "a=1; __Host-sa-rt", "a=1", true},
		{"quoted", `__Host-sa-rt="RT"; a="1"`, `a="1"`, true},
		{"control whitespace", "\v__Host-sa-rt\f=RT\r; a=1", "a=1", true},
	}
	for _, tt := range tests {
		if rest, removed := strip(tt.header); rest != tt.rest || removed != tt.removed {
			t.Errorf("%s: Strip(%q) = %q, %v; want %q, %v", tt.name, tt.header, rest, removed, tt.rest, tt.removed)
		}
	}
}

func TestStripBeyondReadLimit(t *testing.T) {
	h := "a=" + strings.Repeat("x", 2*MaxHeaderBytes) + "; __Host-sa-rt=RT"
	rest, removed := strip(h)
	if !removed || strings.Contains(rest, "RT") {
		t.Errorf("Strip left the refresh token past MaxHeaderBytes: removed=%v", removed)
	}
}

func TestSet(t *testing.T) {
	dom := p
	dom.Access, dom.Refresh, dom.Hint = "sa-at", "sa-rt", "sa-exp"
	dom.Domain, dom.Path, dom.Secure, dom.SameSite = "example.com", "/app", false, http.SameSiteStrictMode
	none := p
	none.SameSite = http.SameSiteNoneMode
	zero := p
	zero.Path, zero.SameSite = "", 0

	tests := []struct {
		name, got, want string
	}{
		{"access", p.SetAccess("AT", now.Add(15*time.Minute), now), "__Host-sa-at=AT; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Lax"},
		{"refresh", p.SetRefresh("RT", now.Add(720*time.Hour), now), "__Host-sa-rt=RT; Path=/; Max-Age=2592000; HttpOnly; Secure; SameSite=Lax"},
		{"hint", p.SetHint(now.Add(time.Minute), now.Add(time.Hour), now), "__Host-sa-exp=at=1700000060&rt=1700003600; Path=/; Max-Age=3600; Secure; SameSite=Lax"},
		{"ceil seconds", p.SetAccess("AT", now.Add(1500*time.Millisecond), now), "__Host-sa-at=AT; Path=/; Max-Age=2; HttpOnly; Secure; SameSite=Lax"},
		{"1ns left is 1s", p.SetAccess("AT", now.Add(time.Nanosecond), now), "__Host-sa-at=AT; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Lax"},
		{"expires now", p.SetAccess("AT", now, now), "__Host-sa-at=AT; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"},
		{"expired never negative", p.SetRefresh("RT", now.Add(-time.Hour), now), "__Host-sa-rt=RT; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"},
		{"domain path strict insecure", dom.SetAccess("AT", now.Add(time.Minute), now), "sa-at=AT; Path=/app; Domain=example.com; Max-Age=60; HttpOnly; SameSite=Strict"},
		{"hint with domain", dom.SetHint(now, now.Add(time.Second), now), "sa-exp=at=1700000000&rt=1700000001; Path=/app; Domain=example.com; Max-Age=1; SameSite=Strict"},
		{"samesite none", none.SetAccess("AT", now.Add(time.Second), now), "__Host-sa-at=AT; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=None"},
		{"zero path and samesite", zero.SetAccess("AT", now.Add(time.Second), now), "__Host-sa-at=AT; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Lax"},
		{"jwt value", p.SetAccess("eyJ0.eyJz-_.c2ln", now.Add(time.Second), now), "__Host-sa-at=eyJ0.eyJz-_.c2ln; Path=/; Max-Age=1; HttpOnly; Secure; SameSite=Lax"},
		{"invalid value deletes", p.SetAccess("a;b", now.Add(time.Hour), now), "__Host-sa-at=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"},
		{"CRLF never emitted", p.SetRefresh("x\r\nSet-Cookie: y=1", now.Add(time.Hour), now), "__Host-sa-rt=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, tt.got, tt.want)
		}
	}
}

// TestSetParsesBack checks our hand-built values against net/http's
// Set-Cookie parser: what we mean is what a client reads.
func TestSetParsesBack(t *testing.T) {
	c, err := http.ParseSetCookie(p.SetAccess("AT", now.Add(time.Hour), now))
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != DefaultAccess || c.Value != "AT" || c.MaxAge != 3600 || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Errorf("parsed back as %+v", c)
	}
}

func TestClear(t *testing.T) {
	want := []string{
		"__Host-sa-at=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
		"__Host-sa-rt=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
		"__Host-sa-exp=; Path=/; Max-Age=0; Secure; SameSite=Lax",
	}
	got := p.Clear()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Clear() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestHintValue(t *testing.T) {
	tests := []struct {
		at, rt time.Time
		want   string
	}{
		{now, now.Add(9999 * time.Second), "at=1700000000&rt=1700009999"},
		{now.Add(500 * time.Millisecond), now, "at=1700000000&rt=1700000000"},
		{time.Unix(0, 0), time.Unix(-1, 0), "at=0&rt=-1"},
	}
	for _, tt := range tests {
		got := HintValue(tt.at, tt.rt)
		q, err := url.ParseQuery(got)
		if got != tt.want || err != nil || q.Get("at") != strings.TrimPrefix(strings.Split(tt.want, "&")[0], "at=") || len(q) != 2 {
			t.Errorf("HintValue = %q (parsed %v, %v), want %q", got, q, err, tt.want)
		}
		if !ValidValue(got) {
			t.Errorf("HintValue %q is not cookie-octets", got)
		}
	}
}

func TestValidValue(t *testing.T) {
	tests := []struct {
		v    string
		want bool
	}{
		{"", true},
		{"eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_", true},
		{"at=1&rt=2", true},
		{"!#$%&'()*+-./:<=>?@[]^_`{|}~", true},
		{"a b", false},
		{`a"b`, false},
		{"a,b", false},
		{"a;b", false},
		{`a\b`, false},
		{"a\x7fb", false},
		{"a\x00b", false},
		{"a\tb", false},
		{"é", false},
	}
	for _, tt := range tests {
		if got := ValidValue(tt.v); got != tt.want {
			t.Errorf("ValidValue(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	plain := Policy{Access: "a", Refresh: "r", Hint: "h", Path: "/", Secure: true}
	with := func(q Policy, f func(*Policy)) Policy { f(&q); return q }
	tests := []struct {
		name string
		p    Policy
		want []error
	}{
		{"default", Default(), nil},
		{"plain names with domain", with(plain, func(q *Policy) { q.Domain = "example.com" }), nil},
		{"empty name", with(plain, func(q *Policy) { q.Hint = "" }), []error{ErrName}},
		{"separator in name", with(plain, func(q *Policy) { q.Access = "a=b" }), []error{ErrName}},
		{"same names", with(plain, func(q *Policy) { q.Refresh = q.Access }), []error{ErrSameName}},
		{"host with domain", with(Default(), func(q *Policy) { q.Domain = "example.com" }), []error{ErrPrefix}},
		{"host lower-case prefix", with(plain, func(q *Policy) { q.Access, q.Path = "__host-x", "/app" }), []error{ErrPrefix}},
		{"secure prefix insecure", with(plain, func(q *Policy) { q.Access, q.Secure = "__Secure-a", false }), []error{ErrPrefix}},
		{"none insecure", with(plain, func(q *Policy) { q.Secure, q.SameSite = false, http.SameSiteNoneMode }), []error{ErrInsecure}},
		{"path injection", with(plain, func(q *Policy) { q.Path = "/; Domain=evil" }), []error{ErrAttr}},
		{"relative path", with(plain, func(q *Policy) { q.Path = "app" }), []error{ErrAttr}},
		{"domain injection", with(plain, func(q *Policy) { q.Domain = "x.com;Secure" }), []error{ErrAttr}},
		{"bad samesite", with(plain, func(q *Policy) { q.SameSite = 9 }), []error{ErrAttr}},
		{"several at once", Policy{Refresh: "x", Hint: "x", SameSite: http.SameSiteNoneMode}, []error{ErrName, ErrSameName, ErrInsecure}},
	}
	for _, tt := range tests {
		err := tt.p.Validate("cookies")
		if (err == nil) != (len(tt.want) == 0) {
			t.Errorf("%s: Validate() = %v, want %v", tt.name, err, tt.want)
		}
		for _, w := range tt.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: Validate() = %v, want it to wrap %v", tt.name, err, w)
			}
		}
	}
}

// pairNames is an oracle independent of the package's parser: every
// ";"-separated pair's name as a permissive upstream would read it.
func pairNames(header string) []string {
	var names []string
	for _, pair := range strings.Split(header, ";") {
		name, _, _ := strings.Cut(pair, "=")
		names = append(names, strings.TrimSpace(name))
	}
	return names
}

var fuzzSeeds = []string{
	"",
	"a=1; b=2",
	"__Host-sa-at=AT; __Host-sa-rt=RT; __Host-sa-exp=at=1&rt=2",
	"a=1;__Host-sa-rt=RT;b=2",
	`__Host-sa-rt="RT"; __Host-sa-rt=R2`,
	"__host-sa-rt=X; __Host-sa-rt",
	" ;; = ; \v__Host-sa-rt\f=x\r\n",
	"\xff\xfe__Host-sa-at=\x00",
}

func FuzzRead(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		got := p.Read(header)
		// Values are substrings of the header, never longer than it.
		if !strings.Contains(header, got.Access) || !strings.Contains(header, got.Refresh) {
			t.Errorf("Read(%q) = %+v: values not from the header", header, got)
		}
		if got.AccessDup && strings.Count(header, DefaultAccess) < 2 || got.RefreshDup && strings.Count(header, DefaultRefresh) < 2 {
			t.Errorf("Read(%q) = %+v: Dup without two copies", header, got)
		}
		if (got.Access != "" && !strings.Contains(header, DefaultAccess)) || (got.Refresh != "" && !strings.Contains(header, DefaultRefresh)) {
			t.Errorf("Read(%q) = %+v: found a cookie whose name is absent", header, got)
		}
	})
}

func FuzzStrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		rest, removed := strip(header)
		for _, name := range pairNames(rest) {
			if p.ours(name) {
				t.Fatalf("Strip(%q) = %q: still holds a pair named %q", header, rest, name)
			}
		}
		if got := p.Read(rest); got != (Found{}) {
			t.Fatalf("Strip(%q) = %q: Read still finds %+v", header, rest, got)
		}
		if !removed && rest != header {
			t.Fatalf("Strip(%q) = %q, false: changed the header without removing", header, rest)
		}
		if again, removedAgain := strip(rest); removedAgain || again != rest {
			t.Fatalf("Strip not idempotent: %q → %q → %q", header, rest, again)
		}
	})
}

// SetSession is the one place the three cookies of a session are built:
// the access token until its exp, the refresh token until the absolute end
// (however late the rotation), the hint until the session's end if unused.
func TestSetSession(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	accessExp, end, absolute := now.Add(15*time.Minute), now.Add(30*24*time.Hour), now.Add(90*24*time.Hour)
	got := p.SetSession("A.B.C", accessExp, "rt", absolute, end, now)
	want := []string{
		"__Host-sa-at=A.B.C; Path=/; Max-Age=900; HttpOnly; Secure; SameSite=Lax",
		"__Host-sa-rt=rt; Path=/; Max-Age=7776000; HttpOnly; Secure; SameSite=Lax",
		"__Host-sa-exp=at=" + fmt.Sprint(accessExp.Unix()) + "&rt=" + fmt.Sprint(end.Unix()) + "; Path=/; Max-Age=2592000; Secure; SameSite=Lax",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("SetSession =\n%q\nwant\n%q", got, want)
	}
}

// strip is the upstream rewrite of one header, as Check makes it.
func strip(header string) (string, bool) { return p.Upstream(p.Scan(header)) }

// Each login flow has its own cookie named after its state: one scan finds
// every one (bounded), the upstream never sees them, and Set/Clear make
// host-only, Path=/, HttpOnly, Lax cookies whatever the session cookies'
// Domain, Path and SameSite.
func TestLoginCookies(t *testing.T) {
	h := "a=1; __Host-sa-login-S1=v1; __Host-sa-rt=RT; __Host-sa-login-=empty; __Host-sa-login-S2=\"v2\"; __host-sa-login-S3=case"
	j := p.Scan(h)
	if got, want := p.Logins(j), []Login{{"S1", "v1"}, {"S2", "v2"}}; !slices.Equal(got, want) {
		t.Errorf("Logins = %v, want %v", got, want)
	}
	if rest, removed := p.Upstream(j); !removed || rest != "a=1; __host-sa-login-S3=case" {
		t.Errorf("Upstream = %q, %v", rest, removed)
	}
	var many strings.Builder
	for i := range MaxLogins + 5 {
		fmt.Fprintf(&many, "__Host-sa-login-s%d=v; ", i)
	}
	j = p.Scan(many.String())
	if n := len(p.Logins(j)); n != MaxLogins {
		t.Errorf("%d login cookies reported, want the first %d", n, MaxLogins)
	}
	if n := testing.AllocsPerRun(10, func() { p.Scan(h) }); n != 0 {
		t.Errorf("Scan with login cookies allocated %v times", n)
	}

	wide := Policy{Access: "sa-at", Refresh: "sa-rt", Hint: "sa-exp", Domain: "example.com", Path: "/app", Secure: true, SameSite: http.SameSiteStrictMode}
	if got, want := wide.SetLogin("S1", "v1", 10*time.Minute), "__Host-sa-login-S1=v1; Path=/; Max-Age=600; HttpOnly; Secure; SameSite=Lax"; got != want {
		t.Errorf("SetLogin = %q, want %q", got, want)
	}
	if got, want := wide.ClearLogin("S1"), "__Host-sa-login-S1=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax"; got != want {
		t.Errorf("ClearLogin = %q, want %q", got, want)
	}
	clash := p
	clash.Hint = "__Host-sa-login-hint"
	if err := clash.Validate("cookies"); err == nil || !strings.Contains(err.Error(), "cookies.hint: \"__Host-sa-login-hint\" starts like the login flows' cookies") {
		t.Errorf("a session cookie named like a login flow's: Validate = %v", err)
	}
	plain := Policy{Access: "at", Refresh: "rt", Hint: "exp", Path: "/"}
	if got := plain.SetLogin("S1", "v1", time.Minute); !strings.HasPrefix(got, "sa-login-S1=v1;") {
		t.Errorf("without Secure: SetLogin = %q, want the sa-login- prefix (no __Host-)", got)
	}
}
