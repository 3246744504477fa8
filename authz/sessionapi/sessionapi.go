// Package sessionapi is the internal HTTP API an application's login
// handler calls to start a session without ever holding a signing key, and
// that operators call to list and revoke sessions. It is served on its own
// listener, never beside the public JWKS.
//
// Every call is authenticated; an unauthenticated call gets 401 and changes
// nothing. Responses that carry tokens are marked Cache-Control: no-store,
// and tokens never reach the log.
package sessionapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/silentauth/silentauth/authz/cookie"
	"github.com/silentauth/silentauth/authz/session"
	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/token"
	"github.com/silentauth/silentauth/internal/strictjson"
)

// Limits on what a caller may send.
const (
	maxBodyBytes    = 64 << 10
	maxSubjectBytes = 256
	// maxCookieBytes is the size browsers guarantee for one cookie,
	// name, value and attributes together (RFC 6265 §6.1).
	maxCookieBytes = 4096
)

// Authenticator decides whether a request may use the API. It returns the
// caller's name for the log, or an error: the caller gets 503 for an error
// wrapping ErrReviewUnavailable (the credential could not be checked) and
// 401 for any other.
type Authenticator interface {
	Authenticate(r *http.Request) (caller string, err error)
}

// Options are the API's parts; all required but Now.
type Options struct {
	Auth     Authenticator
	Sessions *session.Manager
	Minter   *token.Minter
	// Minters of the named per-route policies, whose audiences differ; a
	// create request may name one. Optional.
	Minters map[string]*token.Minter
	Cookies cookie.Policy
	Log     *slog.Logger
	Now     func() time.Time
}

// Handler serves the session API. It is safe for concurrent use.
type Handler struct {
	o   Options
	mux *http.ServeMux
}

// New returns the API handler.
func New(o Options) *Handler {
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &Handler{o: o, mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /v1/sessions", h.create)
	h.mux.HandleFunc("DELETE /v1/sessions/{id}", h.revoke)
	h.mux.HandleFunc("GET /v1/subjects/{subject}/sessions", h.list)
	h.mux.HandleFunc("DELETE /v1/subjects/{subject}/sessions", h.revokeSubject)
	h.mux.HandleFunc("DELETE /v1/subjects/{subject}/sessions/{id}", h.revokeOfSubject)
	return h
}

// ServeHTTP authenticates the caller, then routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, err := h.o.Auth.Authenticate(r)
	if errors.Is(err, ErrReviewUnavailable) {
		// An API server that cannot answer is not a verdict on the caller.
		h.o.Log.Error("session api: cannot check the caller's credential", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the caller's credential cannot be checked now; retry")
		return
	}
	if err != nil {
		h.o.Log.Info("session api: unauthenticated call", "path", r.URL.Path, "remote", r.RemoteAddr, "error", err)
		w.Header().Set("WWW-Authenticate", `Bearer realm="silentauth-session-api"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", "a valid bearer credential is required")
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), callerKey{}, caller))
	h.mux.ServeHTTP(w, r)
}

type callerKey struct{}

func callerOf(r *http.Request) string { s, _ := r.Context().Value(callerKey{}).(string); return s }

// createRequest is the body of POST /v1/sessions.
type createRequest struct {
	Subject string         `json:"subject"`
	Claims  map[string]any `json:"claims"`
	// Policy names the per-route policy whose audience the first access
	// token is minted for; "" is the default policy.
	Policy string `json:"policy"`
}

// createResponse is its answer. The Set-Cookie values are ready to be
// passed to the browser as they are, one header each.
type createResponse struct {
	SessionID             string    `json:"session_id"`
	Subject               string    `json:"subject"`
	AccessToken           string    `json:"access_token"`
	AccessTokenExpiresAt  time.Time `json:"access_token_expires_at"`
	RefreshToken          string    `json:"refresh_token"`
	RefreshTokenExpiresAt time.Time `json:"refresh_token_expires_at"`
	SessionExpiresAt      time.Time `json:"session_expires_at"`
	SetCookie             []string  `json:"set_cookie"`
}

func (h *Handler) create(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body: "+err.Error())
		return
	}
	if msg := ambiguous(body); msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	var req createRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "body must be a JSON object {\"subject\": string, \"claims\": object}: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid_request", "body must hold one JSON object")
		return
	}
	if msg := validateCreate(req); msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
		return
	}
	// Claims keep their numbers as json.Number: the digits given here are
	// the digits every access token of the session carries.
	claims := req.Claims
	minter := h.o.Minter
	if req.Policy != "" {
		if minter = h.o.Minters[req.Policy]; minter == nil {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("policy: %q is not configured", req.Policy))
			return
		}
	}

	// Measure the access-token cookie before anything is stored: a token
	// made with a placeholder session id of the real length has the real
	// size, and a browser silently drops a cookie past 4096 bytes.
	probe, exp, err := minter.Mint(req.Subject, strings.Repeat("x", session.IDLength), claims)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if n := len(h.o.Cookies.SetAccess(probe, exp, h.o.Now())); n > maxCookieBytes {
		writeError(w, http.StatusBadRequest, "claims_too_large",
			fmt.Sprintf("the access-token cookie would be %d bytes, over the %d browsers keep; send fewer or smaller claims", n, maxCookieBytes))
		return
	}

	// The session belongs to this policy: only its routes (and those that
	// accept its sessions) can refresh it.
	iss, err := h.o.Sessions.Start(r.Context(), req.Subject, req.Policy, claims)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	f := iss.Family
	raw, exp, err := minter.Mint(f.Subject, f.ID, claims) // the claims the family was started with
	if err != nil {
		h.fail(w, r, err)
		return
	}
	now := h.o.Now()
	resp := createResponse{
		SessionID:             f.ID,
		Subject:               f.Subject,
		AccessToken:           raw,
		AccessTokenExpiresAt:  exp.UTC(),
		RefreshToken:          iss.RefreshToken,
		RefreshTokenExpiresAt: f.AbsoluteExpiresAt.UTC(),
		SessionExpiresAt:      iss.SessionEnd().UTC(),
		SetCookie:             h.o.Cookies.SetSession(raw, exp, iss.RefreshToken, f.AbsoluteExpiresAt, iss.SessionEnd(), now),
	}
	h.o.Log.Info("session started", "session", f.ID, "subject", f.Subject, "policy", f.Policy, "caller", callerOf(r))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, resp)
}

// validateCreate returns what is wrong with req, or "".
func validateCreate(req createRequest) string {
	var problems []string
	switch {
	case req.Subject == "":
		problems = append(problems, "subject: required")
	case len(req.Subject) > maxSubjectBytes:
		problems = append(problems, fmt.Sprintf("subject: longer than %d bytes", maxSubjectBytes))
	case !printable(req.Subject):
		problems = append(problems, "subject: must be printable text")
	}
	var reserved []string
	for name := range req.Claims {
		if token.Reserved(name) {
			reserved = append(reserved, name)
		}
	}
	if len(reserved) > 0 {
		sort.Strings(reserved)
		problems = append(problems, "claims: reserved names may not be set: "+strings.Join(reserved, ", "))
	}
	names := slices.Sorted(maps.Keys(req.Claims)) // one order, so the message is stable
	for _, name := range names {
		problems = append(problems, outOfRange("claims."+name, req.Claims[name])...)
	}
	return strings.Join(problems, "; ")
}

// ambiguous returns why body could be read two ways, or "": a member named
// twice at any depth (RFC 8259 §4 leaves the meaning to each parser, and
// these claims are copied into every access token, whose readers may keep
// the first where Go keeps the last), or two top-level names that differ
// only in case, which encoding/json matches to one field (the last wins).
// Other faults of the body are left to the decoder's own message.
func ambiguous(body []byte) string {
	v, err := strictjson.Decode(body)
	if errors.Is(err, strictjson.ErrDuplicate) {
		return "body: " + err.Error()
	}
	top, _ := v.(map[string]any)
	seen := make(map[string]string, len(top))
	for _, name := range slices.Sorted(maps.Keys(top)) {
		key := foldKey(name)
		if other, ok := seen[key]; ok {
			return fmt.Sprintf("body: member names %q and %q differ only in case and would fill one field", other, name)
		}
		seen[key] = name
	}
	return ""
}

// foldKey maps s to one representative of the names strings.EqualFold
// (and so encoding/json's field matching) holds equal to it: each rune
// becomes the least rune of its Unicode simple-folding orbit.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// outOfRange returns a problem for every number in v, at path, beyond the
// range of a 64-bit float (1e400): a token reader decoding numbers as
// float64, as JavaScript and Go do, would fail or see Infinity. Integers
// past 2^53 keep their digits exactly and are accepted.
func outOfRange(path string, v any) []string {
	switch x := v.(type) {
	case json.Number:
		if _, err := strconv.ParseFloat(string(x), 64); err != nil {
			return []string{path + ": number beyond the range of a 64-bit float; send it as a string"}
		}
	case map[string]any:
		var problems []string
		for _, name := range slices.Sorted(maps.Keys(x)) {
			problems = append(problems, outOfRange(path+"."+name, x[name])...)
		}
		return problems
	case []any:
		var problems []string
		for i, e := range x {
			problems = append(problems, outOfRange(path+"["+strconv.Itoa(i)+"]", e)...)
		}
		return problems
	}
	return nil
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == 0xfffd {
			return false
		}
	}
	return true
}

func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := h.o.Sessions.Revoke(r.Context(), id, session.CauseAdmin); err != nil {
		h.fail(w, r, err)
		return
	}
	h.o.Log.Info("session revoked", "session", id, "cause", session.CauseAdmin, "caller", callerOf(r))
	w.WriteHeader(http.StatusNoContent)
}

// revokeOfSubject revokes session id only if it belongs to subject (404
// otherwise): an operator who names both cannot end someone else's
// session by a mistyped id.
func (h *Handler) revokeOfSubject(w http.ResponseWriter, r *http.Request) {
	subject, id := r.PathValue("subject"), r.PathValue("id")
	fams, err := h.o.Sessions.List(r.Context(), subject)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if !slices.ContainsFunc(fams, func(f *store.Family) bool { return f.ID == id }) {
		h.fail(w, r, session.ErrUnknown)
		return
	}
	if err := h.o.Sessions.Revoke(r.Context(), id, session.CauseAdmin); err != nil {
		h.fail(w, r, err)
		return
	}
	h.o.Log.Info("session revoked", "session", id, "subject", subject, "cause", session.CauseAdmin, "caller", callerOf(r))
	w.WriteHeader(http.StatusNoContent)
}

// sessionInfo describes one family without anything secret.
type sessionInfo struct {
	ID                string     `json:"id"`
	Subject           string     `json:"subject"`
	Policy            string     `json:"policy,omitempty"` // "" (omitted): the default policy
	CreatedAt         time.Time  `json:"created_at"`
	IdleExpiresAt     time.Time  `json:"idle_expires_at"`
	AbsoluteExpiresAt time.Time  `json:"absolute_expires_at"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	// RevokeReason is the stored reason as it was written (records from
	// before the closed set of causes may say "api" or "subject");
	// RevokeCause is the same on the closed set (session.CauseOf).
	RevokeReason string `json:"revoke_reason,omitempty"`
	RevokeCause  string `json:"revoke_cause,omitempty"`
	// LastUsedAt is when a refresh token of the session was last used
	// (created_at until then; omitted for records from before it was
	// kept).
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
	// UserAgent and ClientAddress describe where the session was started,
	// when known; ProviderSID is the identity provider's session id of a
	// session started by provider login.
	UserAgent     string `json:"user_agent,omitempty"`
	ClientAddress string `json:"client_address,omitempty"`
	ProviderSID   string `json:"provider_sid,omitempty"`
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) {
	fams, err := h.o.Sessions.List(r.Context(), r.PathValue("subject"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	out := make([]sessionInfo, 0, len(fams))
	for _, f := range fams {
		out = append(out, info(f))
	}
	slices.SortFunc(out, func(a, b sessionInfo) int { return a.CreatedAt.Compare(b.CreatedAt) })
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

func info(f *store.Family) sessionInfo {
	i := sessionInfo{
		ID: f.ID, Subject: f.Subject, Policy: f.Policy, CreatedAt: f.CreatedAt.UTC(),
		IdleExpiresAt: f.IdleExpiresAt.UTC(), AbsoluteExpiresAt: f.AbsoluteExpiresAt.UTC(),
		RevokeReason: f.RevokeReason, RevokeCause: session.CauseOf(f.RevokeReason),
		UserAgent: f.UserAgent, ClientAddress: f.ClientAddress, ProviderSID: f.ProviderSID,
	}
	if !f.RevokedAt.IsZero() {
		t := f.RevokedAt.UTC()
		i.RevokedAt = &t
	}
	if !f.LastUsedAt.IsZero() {
		t := f.LastUsedAt.UTC()
		i.LastUsedAt = &t
	}
	return i
}

func (h *Handler) revokeSubject(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	n, err := h.o.Sessions.RevokeSubject(r.Context(), subject, session.CauseAdmin, time.Time{})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.o.Log.Info("subject sessions revoked", "subject", subject, "revoked", n, "cause", session.CauseAdmin, "caller", callerOf(r))
	writeJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

// fail maps an error to an answer: unknown sessions are 404, reserved
// claims 400, anything else (store or keyring unavailable) 503.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, session.ErrUnknown):
		writeError(w, http.StatusNotFound, "not_found", "no such session")
	case errors.Is(err, token.ErrReservedClaim):
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
	default:
		h.o.Log.Error("session api: unavailable", "path", r.URL.Path, "error", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the session store or keyring is unavailable; retry")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}
