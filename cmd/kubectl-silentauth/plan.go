package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/silentauth/silentauth/authz/keys"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/token"
)

// minLead is the shortest time between publishing a key and letting it
// sign. Verifiers learn keys from the JWKS: istiod refreshes it every 20
// minutes and caches honour its max-age (keys.jwksMaxAge, 5 minutes by
// default), so a key that signs sooner can produce tokens that a verifier
// still holding the old JWKS rejects. 30 minutes covers both with margin.
// Operators whose verifiers cache longer pass a longer lead; a shorter one
// needs --force.
const minLead = 30 * time.Minute

// defaultLifecycle is the server's default tokens.accessTTL,
// tokens.leeway and sessions.idleTTL, from the token and session
// packages' defaults so they cannot drift. The first two set how long a
// retired key keeps verifying access tokens, which the plans mention but
// do not depend on; the idle TTL sets how long it keeps verifying
// refresh tokens, before which revoke refuses to delete it without
// --force. `keys list` and `keys revoke` take them as flags.
var defaultLifecycle = func() keys.Lifecycle {
	l := token.DefaultSettings().Lifecycle()
	l.RefreshTTL = session.DefaultLifetimes().Idle
	return l
}()

// errRefused marks a change the planner will not make; the message says
// why and what to do instead.
var errRefused = errors.New("refused")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRefused, fmt.Sprintf(format, args...))
}

// change is what a command writes to the Secret: keys added (data and
// annotations), keys whose timestamps change (annotations only), keys
// deleted (data and annotations), and one line per difference for the
// operator. The lines never hold key material, only names and kids.
type change struct {
	add    []keys.Entry
	set    []keys.Entry
	remove []keys.Entry
	lines  []string
}

func (c change) empty() bool { return len(c.add)+len(c.set)+len(c.remove) == 0 }

// planner decides what a command changes and whether that is safe. Its
// methods are pure functions of the entries read from the Secret and of
// Now: the same Secret at the same time always gives the same plan, which
// is what --dry-run shows.
type planner struct {
	Now       time.Time
	Lifecycle keys.Lifecycle
}

// Add plans adding e (Name may be empty: derived from the kid and the
// date). activateAt zero means Now + minLead. When no key signs at Now
// (a fresh install, or a broken one) the key is active at once: while
// nothing signs, no verifier can be missing the key that signs.
func (p planner) Add(cur []keys.Entry, e keys.Entry, activateAt time.Time, force bool) (change, error) {
	if e.Name == "" {
		e.Name = defaultName(e.Key.ID, p.Now)
	}
	if err := validName(e.Name); err != nil {
		return change{}, err
	}
	for _, o := range cur {
		if o.Name == e.Name {
			return change{}, refuse("a key named %s already exists; choose another --name", e.Name)
		}
		if o.Key != nil && o.Key.ID == e.Key.ID {
			return change{}, refuse("key %s already holds kid %s", o.Name, e.Key.ID)
		}
	}
	e.PublishedAt, e.ActivateAt, e.RetireAt = p.Now, time.Time{}, time.Time{}

	var line string
	if _, ok := signer(cur, p.Lifecycle, p.Now); !ok {
		if !activateAt.IsZero() && activateAt.After(p.Now) {
			return change{}, refuse("no key signs now, so the new key must be active at once; drop --activate-at/--activate-in")
		}
		line = fmt.Sprintf("%s: add %s key, kid %s, active at once (no key signs now)", e.Name, e.Key.Alg, e.Key.ID)
	} else {
		if activateAt.IsZero() {
			activateAt = p.Now.Add(minLead)
		}
		if activateAt.Before(p.Now.Add(minLead)) && !force {
			return change{}, refuse("activating %s %s after publishing it is sooner than %s: verifiers that cached the JWKS may reject its tokens "+
				"(istiod refreshes every 20m, plus the JWKS max-age); use --force if every verifier already re-reads the JWKS sooner",
				e.Name, human(activateAt.Sub(p.Now)), human(minLead))
		}
		e.ActivateAt = activateAt
		line = fmt.Sprintf("%s: add %s key, kid %s, published-at %s, activate-at %s", e.Name, e.Key.Alg, e.Key.ID,
			stamp(p.Now), p.when(activateAt))
	}
	c := change{add: []keys.Entry{e}, lines: []string{line}}
	return c, p.checkSigner(cur, apply(cur, c))
}

// Activate plans setting name's activate-at to at (zero: Now). A key must
// have been published for minLead before it signs, unless force.
func (p planner) Activate(cur []keys.Entry, name string, at time.Time, force bool) (change, error) {
	e, err := find(cur, name)
	if err != nil {
		return change{}, err
	}
	if at.IsZero() {
		at = p.Now
	}
	if !e.RetireAt.IsZero() && !at.Before(e.RetireAt) {
		return change{}, refuse("%s retires at %s; activating it at %s would never let it sign", name, stamp(e.RetireAt), stamp(at))
	}
	if !force {
		switch safe := e.PublishedAt.Add(minLead); {
		case e.PublishedAt.IsZero():
			return change{}, refuse("%s has no published-at, so whether verifiers have it yet is unknown; "+
				"use --force if it has been in the Secret for at least %s", name, human(minLead))
		case at.Before(safe):
			return change{}, refuse("%s was published at %s; activating it before %s (published-at + %s) risks verifiers that have not "+
				"re-read the JWKS rejecting its tokens; use --at %s, or --force", name, stamp(e.PublishedAt), stamp(safe), human(minLead), stamp(safe))
		}
	}
	if e.ActivateAt.Equal(at) {
		return change{}, nil
	}
	e.ActivateAt = at
	c := change{set: []keys.Entry{e}, lines: []string{fmt.Sprintf("%s: activate-at %s", name, p.when(at))}}
	return c, p.checkSigner(cur, apply(cur, c))
}

// Retire plans setting name's retire-at to at (zero: Now). Afterwards some
// key must still sign from Now on; retiring the only usable key is
// refused, with no override.
func (p planner) Retire(cur []keys.Entry, name string, at time.Time) (change, error) {
	e, err := find(cur, name)
	if err != nil {
		return change{}, err
	}
	if at.IsZero() {
		at = p.Now
	}
	if !e.RetireAt.IsZero() && !e.RetireAt.After(p.Now) {
		return change{}, refuse("%s already retired at %s", name, stamp(e.RetireAt))
	}
	if !e.ActivateAt.IsZero() && !at.After(e.ActivateAt) {
		return change{}, refuse("%s does not sign before its activate-at %s, so it cannot retire at %s; "+
			"a key that never signed can simply be removed: kubectl silentauth keys revoke %s", name, stamp(e.ActivateAt), stamp(at), name)
	}
	if e.RetireAt.Equal(at) {
		return change{}, nil
	}
	e.RetireAt = at
	c := change{set: []keys.Entry{e}, lines: []string{fmt.Sprintf("%s: retire-at %s, then verifies for %s more (access TTL + leeway), "+
		"and refresh tokens until %s (sessions' idle TTL): keep it in the Secret until then",
		name, p.when(at), human(p.Lifecycle.Keep()), stamp(p.Lifecycle.RefreshesUntil(e)))}}
	return c, p.checkSigner(cur, apply(cur, c))
}

// CancelRetire plans removing name's planned retire-at, so it keeps
// signing: the first step of aborting a rotation (the second is revoking
// the key that was to take over). A key whose retire-at has passed stays
// retired: verifiers may have dropped it already.
func (p planner) CancelRetire(cur []keys.Entry, name string) (change, error) {
	e, err := find(cur, name)
	if err != nil {
		return change{}, err
	}
	switch {
	case e.RetireAt.IsZero():
		return change{}, nil
	case !e.RetireAt.After(p.Now):
		return change{}, refuse("%s already retired at %s; it cannot sign again, add a new key instead", name, stamp(e.RetireAt))
	}
	was := e.RetireAt
	e.RetireAt = time.Time{}
	c := change{set: []keys.Entry{e}, lines: []string{fmt.Sprintf("%s: remove retire-at %s; it keeps signing", name, p.when(was))}}
	return c, p.checkSigner(cur, apply(cur, c))
}

// Revoke plans deleting name at once. Refused when it would leave no key
// signing, with no override. Refused too, unless force, while the key may
// still verify refresh tokens (before its retire-at + the sessions' idle
// TTL, or with no retire-at): deleting it logs out the sessions whose
// refresh tokens it made. A key that never signed made none.
func (p planner) Revoke(cur []keys.Entry, name string, force bool) (change, error) {
	e, err := find(cur, name)
	if err != nil {
		return change{}, err
	}
	state := p.Lifecycle.StateAt(e, p.Now)
	line := fmt.Sprintf("%s: delete the key (kid %s, %s) and its annotations", name, kidOf(e), state)
	horizon, refreshes := p.refreshHorizon(cur, e)
	const loggedOut = "the sessions whose refresh tokens it made (those that have not refreshed since it stopped signing) " +
		"are logged out at their next refresh: their token is unknown, their cookies are cleared, they must log in again"
	switch {
	case state == keys.StateNext:
		line += "; it has signed nothing yet"
		refreshes = false
	case state == keys.StateGone && !refreshes:
		line += "; it no longer verifies anything, refresh tokens included"
	case state == keys.StateGone:
		line += "; it no longer verifies access tokens, but " + loggedOut
	default:
		line += "; access tokens it signed stop verifying at once and are re-minted through the refresh path, but " + loggedOut
	}
	c := change{remove: []keys.Entry{e}, lines: []string{line}}
	if err := p.checkSigner(cur, apply(cur, c)); err != nil {
		return change{}, err
	}
	if refreshes && !force {
		if horizon.IsZero() {
			return change{}, refuse("%s may still verify refresh tokens (it has signed, and keeps doing so or has no successor): "+
				"deleting it logs out the sessions whose refresh tokens it made. Rotate first (kubectl silentauth keys rotate) and "+
				"delete it after its retire-at + the sessions' idle TTL (%s), or use --force to revoke it now (a leaked key)",
				name, human(p.Lifecycle.RefreshKeep()))
		}
		return change{}, refuse("%s may still verify refresh tokens until %s (its signing end + the sessions' idle TTL, %s): "+
			"deleting it before then logs out the sessions whose refresh tokens it made and that have not refreshed since; "+
			"delete it after %s, or use --force to revoke it now (a leaked key)",
			name, p.when(horizon), human(p.Lifecycle.RefreshKeep()), stamp(horizon))
	}
	return c, nil
}

// refreshHorizon returns until when e may verify refresh tokens (zero:
// no end in sight) and whether it still may at Now. It is e's retire-at +
// the refresh keep, unless no key was active at e's retire-at: then e may
// have kept signing as the server's fallback, until the next activate-at
// after it (none: as long as no successor comes).
func (p planner) refreshHorizon(cur []keys.Entry, e keys.Entry) (time.Time, bool) {
	horizon := p.Lifecycle.RefreshesUntil(e)
	if !e.RetireAt.IsZero() {
		if _, ok := signer(cur, p.Lifecycle, e.RetireAt); !ok {
			var next time.Time
			for _, o := range cur {
				if a := o.ActivateAt; o.Name != e.Name && a.After(e.RetireAt) && (next.IsZero() || a.Before(next)) {
					next = a
				}
			}
			horizon = time.Time{}
			if !next.IsZero() {
				horizon = next.Add(p.Lifecycle.RefreshKeep())
			}
		}
	}
	return horizon, horizon.IsZero() || p.Now.Before(horizon)
}

// Rotate plans a rotation: e (Name may be empty) is added to activate at
// Now + lead, and every key that signs now retires at that same moment,
// so exactly one key signs at every instant. Refused while another key
// is already waiting to activate (a rotation in progress).
func (p planner) Rotate(cur []keys.Entry, e keys.Entry, lead time.Duration, force bool) (change, error) {
	if _, ok := signer(cur, p.Lifecycle, p.Now); !ok {
		return change{}, refuse("no key signs now, so there is nothing to rotate; kubectl silentauth keys add makes a key active at once")
	}
	for _, o := range cur {
		if p.Lifecycle.StateAt(o, p.Now) == keys.StateNext {
			abort := ""
			for _, r := range cur {
				if r.RetireAt.Equal(o.ActivateAt) {
					abort += "kubectl silentauth keys retire " + r.Name + " --cancel, then "
				}
			}
			return change{}, refuse("%s is already waiting to activate at %s (a rotation in progress); "+
				"let it finish, or abort it: %skubectl silentauth keys revoke %s --yes", o.Name, stamp(o.ActivateAt), abort, o.Name)
		}
	}
	if lead < minLead && !force {
		return change{}, refuse("--lead %s is shorter than %s: verifiers that cached the JWKS may reject the new key's tokens; use --force to insist",
			human(lead), human(minLead))
	}
	at := p.Now.Add(lead)
	c, err := p.Add(cur, e, at, true)
	if err != nil {
		return change{}, err
	}
	for _, o := range cur {
		if p.Lifecycle.StateAt(o, p.Now) != keys.StateActive || (!o.RetireAt.IsZero() && !o.RetireAt.After(at)) {
			continue
		}
		o.RetireAt = at
		c.set = append(c.set, o)
		c.lines = append(c.lines, fmt.Sprintf("%s: retire-at %s, when %s takes over", o.Name, p.when(at), c.add[0].Name))
	}
	// A rotation promises a signer at every instant, even where the
	// Secret already lacked one (a retire-at set by hand).
	if gap, ok := firstGap(apply(cur, c), p.Lifecycle, p.Now); ok {
		return change{}, refuse("no key would sign from %s, before the new key activates at %s; "+
			"move the current key's retire-at first (kubectl silentauth keys retire NAME --at %s) or rotate with a shorter --lead",
			p.when(gap), stamp(at), stamp(at))
	}
	return c, nil
}

// checkSigner refuses a change after which, at some moment from Now on, no
// key would be active, unless nothing was active at that moment before
// the change either (a gap the change did not cause).
func (p planner) checkSigner(before, after []keys.Entry) error {
	gap, ok := firstGap(after, p.Lifecycle, p.Now)
	if !ok {
		return nil
	}
	if was, had := firstGap(before, p.Lifecycle, p.Now); had && !gap.Before(was) {
		return nil
	}
	var usable []string
	for _, e := range before {
		if s := p.Lifecycle.StateAt(e, p.Now); s == keys.StateActive || s == keys.StateNext {
			usable = append(usable, e.Name)
		}
	}
	msg := fmt.Sprintf("after this change no key would sign from %s", p.when(gap))
	if len(usable) == 1 {
		msg += fmt.Sprintf(": %s is the only usable key", usable[0])
	}
	// Say what to do instead, from what the Secret holds.
	var hints []string
	for _, e := range after {
		if e.RetireAt.Equal(gap) && gap.After(p.Now) {
			hints = append(hints, fmt.Sprintf("keep %s signing: kubectl silentauth keys retire %s --cancel", e.Name, e.Name))
		}
	}
	var successor keys.Entry
	for _, e := range after {
		if e.ActivateAt.After(gap) && (successor.Name == "" || e.ActivateAt.Before(successor.ActivateAt)) {
			successor = e
		}
	}
	if successor.Name != "" {
		hints = append(hints, fmt.Sprintf("%s takes over only at %s: make the change take effect then or later (--at %s)",
			successor.Name, stamp(successor.ActivateAt), stamp(successor.ActivateAt)))
	}
	if len(hints) == 0 {
		hints = append(hints, fmt.Sprintf("add a successor first: kubectl silentauth keys rotate (it publishes a new key, "+
			"activates it after %s and retires the current one at that moment)", human(minLead)))
	}
	return refuse("%s. To keep a key signing, %s", msg, strings.Join(hints, "; or "))
}

// firstGap returns the first moment at or after from at which no key is
// active. The set of active keys only changes at an activate-at or a
// retire-at, so it suffices to look at from and at each of those.
func firstGap(es []keys.Entry, lc keys.Lifecycle, from time.Time) (time.Time, bool) {
	moments := []time.Time{from}
	for _, e := range es {
		for _, t := range []time.Time{e.ActivateAt, e.RetireAt} {
			if t.After(from) {
				moments = append(moments, t)
			}
		}
	}
	slices.SortFunc(moments, time.Time.Compare)
	for _, t := range moments {
		if _, ok := signer(es, lc, t); !ok {
			return t, true
		}
	}
	return time.Time{}, false
}

// signer returns the key that signs at t: among the active keys, the one
// with the latest activate-at (absent counts as earliest), as the server
// picks it.
func signer(es []keys.Entry, lc keys.Lifecycle, t time.Time) (keys.Entry, bool) {
	var (
		best keys.Entry
		ok   bool
	)
	for _, e := range es {
		if lc.StateAt(e, t) != keys.StateActive {
			continue
		}
		if !ok || e.ActivateAt.After(best.ActivateAt) {
			best, ok = e, true
		}
	}
	return best, ok
}

// apply returns cur with c made: the plans check the result, the Secret
// is written from c.
func apply(cur []keys.Entry, c change) []keys.Entry {
	out := make([]keys.Entry, 0, len(cur)+len(c.add))
	for _, e := range cur {
		if slices.ContainsFunc(c.remove, func(r keys.Entry) bool { return r.Name == e.Name }) {
			continue
		}
		if i := slices.IndexFunc(c.set, func(s keys.Entry) bool { return s.Name == e.Name }); i >= 0 {
			e = c.set[i]
		}
		out = append(out, e)
	}
	return append(out, c.add...)
}

func find(cur []keys.Entry, name string) (keys.Entry, error) {
	names := make([]string, 0, len(cur))
	for _, e := range cur {
		if e.Name == name {
			return e, nil
		}
		names = append(names, e.Name)
	}
	if len(names) == 0 {
		return keys.Entry{}, refuse("no key named %s: the Secret holds no keys", name)
	}
	slices.Sort(names)
	return keys.Entry{}, refuse("no key named %s; the keys are: %s", name, strings.Join(names, ", "))
}

func kidOf(e keys.Entry) string {
	if e.Key == nil {
		return "?"
	}
	return e.Key.ID
}

// validName checks a key name by the Secret format's rule.
func validName(name string) error {
	if !keys.ValidName(name) {
		return refuse("invalid key name %q: 1–40 characters of a-z, 0-9 and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// defaultName is k-<yyyymmdd>-<first 8 characters of the kid, lower-cased,
// anything but [a-z0-9] replaced by x>: sortable by date, and recognisable
// next to the kid a token header carries.
func defaultName(kid string, now time.Time) string {
	var b strings.Builder
	for _, c := range strings.ToLower(kid) {
		if b.Len() == 8 {
			break
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		} else {
			b.WriteByte('x')
		}
	}
	for b.Len() < 8 {
		b.WriteByte('x')
	}
	return "k-" + now.UTC().Format("20060102") + "-" + b.String()
}

// when renders t with its distance from Now: "2026-11-25T12:30:00Z (in 30m)".
func (p planner) when(t time.Time) string {
	return stamp(t) + " (" + relative(t, p.Now) + ")"
}

// stamp renders a time as RFC 3339 in UTC, whole seconds.
func stamp(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func relative(t, now time.Time) string {
	d := t.Sub(now)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d > 0:
		return "in " + human(d)
	default:
		return human(-d) + " ago"
	}
}

// human renders a duration compactly: 30m, 1h30m, 2d4h, 45s.
func human(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 0 {
		return "-" + human(-d)
	}
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	for _, u := range []struct {
		n time.Duration
		s string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if d >= u.n {
			fmt.Fprintf(&b, "%d%s", d/u.n, u.s)
			d %= u.n
		}
	}
	return b.String()
}
