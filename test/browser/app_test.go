package browser

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
)

// app is the upstream application behind nginx: a page with script, a JSON
// API that echoes what it received, a login page that starts a session
// through silentauth's session API from the server side, and a money
// transfer that CSRF must never reach.
type app struct {
	sessionAPI string // host:port of silentauth's session API
	calls      atomic.Int64
	transfers  atomic.Int64
	leaked     atomic.Int64 // requests on which the app saw one of silentauth's cookies
	unauthed   atomic.Int64 // API requests without a bearer token
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("GET /login", a.loginPage)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /api/me", a.me)
	mux.HandleFunc("POST /api/transfer", a.transfer)
	return mux
}

// check records what no upstream request may ever carry: silentauth's own
// cookies; and on protected paths it requires the bearer token.
func (a *app) check(r *http.Request, protected bool) {
	if strings.Contains(r.Header.Get("Cookie"), "__Host-sa-") {
		a.leaked.Add(1)
	}
	if protected && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		a.unauthed.Add(1)
	}
}

// me is the API the page calls: who the app was told the caller is, and
// the tail of the access token it received (enough to see it change).
func (a *app) me(w http.ResponseWriter, r *http.Request) {
	a.check(r, true)
	n := a.calls.Add(1)
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	tail := tok
	if len(tail) > 10 {
		tail = tail[len(tail)-10:]
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"n": n, "user": r.Header.Get("X-User-Id"), "token_tail": tail,
		"bearer": strings.HasPrefix(r.Header.Get("Authorization"), "Bearer "),
		"cookie": r.Header.Get("Cookie"),
		// Every header a CGI-style app would read as X-User-Id.
		"aliases": cgiAliases(r.Header, "X-User-Id"),
	})
}

func (a *app) transfer(w http.ResponseWriter, r *http.Request) {
	a.check(r, true)
	a.transfers.Add(1)
	io.WriteString(w, "transferred")
}

func (a *app) loginPage(w http.ResponseWriter, r *http.Request) {
	a.check(r, false)
	back := r.URL.Query().Get("return_to")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html><head><meta charset="utf-8"><title>Sign in</title>%s</head>
<body><main class="card"><h1>Sign in</h1>
<p>The demo app starts a session by calling silentauth's session API from its server, then hands the browser the cookies of its <code>set_cookie</code> array.</p>
<form method="post" action="/login"><input type="hidden" name="return_to" value="%s">
<button id="signin" type="submit">Sign in as alice</button></form></main></body></html>`, style, html.EscapeString(back))
}

// login starts a session for alice and passes each set_cookie value to the
// browser as its own Set-Cookie header, then returns to the page asked for.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	a.check(r, false)
	req, _ := http.NewRequestWithContext(r.Context(), "POST", "http://"+a.sessionAPI+"/v1/sessions",
		strings.NewReader(`{"subject":"alice","claims":{"role":"admin"}}`))
	req.Header.Set("Authorization", "Bearer "+apiToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	var s struct {
		SetCookie []string `json:"set_cookie"`
	}
	if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&s) != nil {
		http.Error(w, "session API answered "+resp.Status, http.StatusBadGateway)
		return
	}
	for _, c := range s.SetCookie {
		w.Header().Add("Set-Cookie", c)
	}
	// The app's own cookie: it must reach the app again, ours never.
	w.Header().Add("Set-Cookie", "app_pref=compact; Path=/; SameSite=Lax")
	back := r.PostFormValue("return_to")
	if u, err := url.Parse(back); err != nil || !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || u.Host != "" {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

func (a *app) home(w http.ResponseWriter, r *http.Request) {
	a.check(r, true)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, `<!doctype html><html><head><meta charset="utf-8"><title>silentauth demo</title>`+style+`</head>
<body><main class="card">
<header><h1>Silent refresh behind nginx</h1>
<form id="logout" method="post" action="/auth/logout"><button id="logoutbtn" type="submit">Log out</button></form></header>
<p id="who">Loading…</p>
<p class="small">Every row is a <code>fetch('/api/me')</code>. nginx asks silentauth (auth_request); when the access token
expires, silentauth rotates the refresh token inside that request and the browser receives three new cookies.
The refresh cookie is HttpOnly: page script never sees it.</p>
<div id="hint" class="small"></div>
<table><thead><tr><th>#</th><th>at</th><th>status</th><th>user</th><th>access token received by the app</th><th>refresh cookie visible to script?</th></tr></thead>
<tbody id="log"></tbody></table></main>
<script>
const started = Date.now();
let rows = 0, lastTail = '';
function hint() {
  const c = document.cookie.split('; ').find(c => c.startsWith('__Host-sa-exp='));
  return c ? new URLSearchParams(c.slice('__Host-sa-exp='.length)) : null;
}
function showHint() {
  const h = hint(), el = document.getElementById('hint');
  if (!h) { el.textContent = 'no session hint cookie'; return; }
  const at = Number(h.get('at')) * 1000 - Date.now();
  el.textContent = 'Expiry hint cookie (readable by script): access token expires in ' + (at / 1000).toFixed(1) + ' s';
}
setInterval(showHint, 250);
async function callAPI(label) {
  const r = await fetch('/api/me', {headers: {accept: 'application/json'}});
  let body = {};
  try { body = await r.json(); } catch (e) {}
  const res = {status: r.status, user: body.user || '', tail: body.token_tail || '', bearer: !!body.bearer,
               upstreamCookie: body.cookie || '', docCookie: document.cookie, label: label || ''};
  rows++;
  const tr = document.createElement('tr');
  const renewed = lastTail !== '' && res.tail !== lastTail;
  lastTail = res.tail;
  const cells = [rows + (label ? ' ' + label : ''), ((Date.now() - started) / 1000).toFixed(1) + ' s', r.status, res.user,
                 '…' + res.tail + (renewed ? '   ↻ renewed silently' : ''), document.cookie.includes('__Host-sa-rt') ? 'YES (bug)' : 'no'];
  if (renewed) tr.className = 'new';
  for (const c of cells) { const td = document.createElement('td'); td.textContent = c; tr.appendChild(td); }
  if (r.status !== 200) tr.className = 'bad';
  const log = document.getElementById('log');
  log.insertBefore(tr, log.firstChild);
  while (log.children.length > 12) log.removeChild(log.lastChild);
  showHint();
  return res;
}
// parallel fires n requests together once the access token has expired
// (the hint cookie says when), and returns their results.
async function parallel(n) {
  const h = hint();
  const wait = Number(h.get('at')) * 1000 - Date.now() + 150;
  if (wait > 0) await new Promise(r => setTimeout(r, wait));
  return Promise.all(Array.from({length: n}, (_, i) => callAPI('∥' + (i + 1))));
}
window.callAPI = callAPI;
window.parallel = parallel;
window.ready = callAPI('load').then(r => {
  document.getElementById('who').textContent = r.status === 200 ? 'Signed in as ' + r.user : 'Not signed in (' + r.status + ')';
  return r;
});
</script></body></html>`)
}

// evil is the attacker's page on another port of localhost: same site,
// different origin, so the browser sends the Lax cookies with its POST.
func evil(target string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><meta charset="utf-8"><title>Win a prize</title></head><body>
<form id="f" method="post" action="%s"><input type="hidden" name="amount" value="1000"><input type="hidden" name="to" value="mallory"></form>
<script>document.getElementById('f').submit();</script></body></html>`, html.EscapeString(target))
	})
}

const style = `<style>
body { font: 15px/1.45 system-ui, "DejaVu Sans", sans-serif; background: #eef1f5; margin: 0; padding: 24px; color: #1d2430; }
.card { background: #fff; border-radius: 10px; padding: 20px 26px; max-width: 1000px; margin: auto; box-shadow: 0 1px 4px #0002; }
header { display: flex; justify-content: space-between; align-items: center; }
h1 { font-size: 22px; margin: 4px 0 10px; }
button { font: inherit; padding: 6px 16px; border-radius: 6px; border: 1px solid #345; background: #2b5fd9; color: #fff; }
#who { font-weight: 600; font-size: 17px; }
.small { color: #4a5568; font-size: 13px; }
table { border-collapse: collapse; width: 100%; margin-top: 10px; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e2e8f0; }
th { background: #f7fafc; }
tr.bad td { background: #fde8e8; }
tr.new td { background: #e6f6ec; font-weight: 600; }
code { background: #f1f3f7; padding: 1px 4px; border-radius: 4px; }
</style>`
