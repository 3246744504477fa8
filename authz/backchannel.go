package authz

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/silentauth/silentauth/authz/session"
)

// Revoker ends sessions by what the identity provider knows of them: its
// session id (the ID token's sid, kept in each family started by provider
// login) or its subject. *session.Manager satisfies it. Both return how
// many live families they revoked; cause is written as the families'
// revoke reason.
type Revoker interface {
	RevokeSID(ctx context.Context, sid, cause string, startedBefore time.Time) (int, error)
	RevokeSubject(ctx context.Context, subject, cause string, startedBefore time.Time) (int, error)
}

// Failures of a back-channel logout request that are not the token's
// (oidc.ErrLogoutToken) or the store's.
var (
	errMediaType = errors.New("authz: back-channel logout: not application/x-www-form-urlencoded")
	// errLogoutRequest: no logout_token, a body too large or not a form.
	errLogoutRequest = errors.New("authz: back-channel logout: malformed request")
	// errLogoutReplay: this logout token (its iss and jti) came before.
	errLogoutReplay = errors.New("authz: back-channel logout: logout token replayed")
	// errLogoutSID: a token naming only the provider's subject while our
	// subject is another provider claim (oidc.subjectClaim): the provider's
	// sub names none of our sessions, so a sid is required.
	errLogoutSID = errors.New("authz: back-channel logout: sid required (oidc.subjectClaim is not sub)")
)

// maxLogoutBody bounds a back-channel logout request's body: one form
// field holding one JWT.
const maxLogoutBody = 64 << 10

// BackChannel returns the handler of OpenID Connect Back-Channel Logout
// 1.0 (§2.5-2.8), served at Options.BackChannelLogoutPath on the public
// listener: the provider POSTs a logout_token (a form), the token is
// verified (oidc.Provider.VerifyLogout), its jti is claimed once in the
// store until the token could no longer be accepted (a replay is refused),
// and every session of its sid, or without a sid every session of its
// subject, is revoked through sessions with cause "backchannel". The
// sessions' cookies stay in the browsers: their next refresh is refused
// and their access tokens end within the access TTL.
//
// Answers: 200 with Cache-Control no-store when the token is good, also
// when no session matched (§2.8); 400 with an OAuth error body for a bad
// token or a replay; 405 for another method; 415 for another content
// type; 503 when the store fails, so that the provider retries. One log
// line per request, never the token. It is safe for concurrent use.
func (l *Login) BackChannel(sessions Revoker, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &backChannel{l: l, sessions: sessions, log: log}
}

type backChannel struct {
	l        *Login
	sessions Revoker
	log      *slog.Logger
}

// logoutOutcome is what one request did, for its log line.
type logoutOutcome struct {
	issuer, sid, subject string
	revoked              int
}

func (h *backChannel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	out, err := h.logout(w, r)
	if err == nil {
		h.log.Info("back-channel logout", "outcome", "revoked", "issuer", out.issuer, "sid", out.sid, "subject", out.subject, "revoked", out.revoked)
		w.WriteHeader(http.StatusOK)
		return
	}
	a := answerFor(err)
	h.log.Log(r.Context(), a.level, "back-channel logout", "outcome", a.reason, "issuer", out.issuer, "sid", out.sid, "subject", out.subject, "error", err)
	if a.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", http.MethodPost)
	}
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{a.code, describe(err)})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	w.Write(body)
}

// logout verifies the request and revokes what its token names.
func (h *backChannel) logout(w http.ResponseWriter, r *http.Request) (logoutOutcome, error) {
	var out logoutOutcome
	if r.Method != http.MethodPost {
		return out, errMethod
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return out, errMediaType
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		return out, fmt.Errorf("%w: %v", errLogoutRequest, err)
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" || len(r.PostForm["logout_token"]) != 1 {
		return out, fmt.Errorf("%w: one logout_token required", errLogoutRequest)
	}
	ctx := r.Context()
	t, err := h.l.Provider.VerifyLogout(ctx, raw)
	if err != nil {
		return out, err
	}
	out.issuer, out.sid, out.subject = t.Issuer, t.SID, t.Subject
	if t.SID == "" && h.l.Options.SubjectClaim != "sub" {
		return out, errLogoutSID
	}
	// The logout ends the sessions that existed when the provider issued
	// it (iat, give or take the clocks' skew), never one started later:
	// so the revocation comes first and a delivery the provider repeats
	// after a failure (503) is harmless. Then the jti is single-use
	// (§2.6): a repeat is told it is one.
	before := t.IssuedAt.Add(logoutSkew)
	if t.SID != "" {
		out.revoked, err = h.sessions.RevokeSID(ctx, t.SID, session.CauseBackChannel, before)
	} else {
		out.revoked, err = h.sessions.RevokeSubject(ctx, t.Subject, session.CauseBackChannel, before)
	}
	if err != nil {
		return out, fmt.Errorf("authz: back-channel logout: revoke: %w", err)
	}
	first, err := h.l.Store.Claim(ctx, "bcl:"+t.Issuer+"\x00"+t.JTI, t.Until())
	if err != nil {
		return out, fmt.Errorf("authz: back-channel logout: claim jti: %w", err)
	}
	if !first {
		return out, errLogoutReplay
	}
	return out, nil
}

// describe is err as an error_description: printable ASCII without the
// quote and backslash RFC 6749 §5.2 excludes, bounded.
func describe(err error) string {
	s := strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, err.Error())
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}

// logoutSkew is how far the provider's clock may lag ours: a session
// started up to this long after the logout token's iat is still one the
// logout ends.
const logoutSkew = time.Minute

var _ Revoker = (*session.Manager)(nil)
