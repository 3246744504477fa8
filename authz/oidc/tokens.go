package oidc

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Tokens are what the provider handed us for one session. Refreshing them
// (Refresh) learns whether the user may still log in. They are secrets:
// String and LogValue-free formatting never print them; the caller seals
// the MarshalBinary form before storing it.
type Tokens struct {
	RefreshToken string
	IDToken      string
	AccessToken  string
	// Expiry is the access token's end; zero when the provider said none.
	Expiry time.Time
	// Obtained is when the provider issued these tokens (our clock).
	Obtained time.Time
}

// String never shows the tokens.
func (t Tokens) String() string {
	return fmt.Sprintf("oidc.Tokens{refresh:%t id:%t access:%t expiry:%s}", t.RefreshToken != "", t.IDToken != "", t.AccessToken != "", t.Expiry.UTC().Format(time.RFC3339))
}

// GoString never shows the tokens (%#v).
func (t Tokens) GoString() string { return t.String() }

// expiryMargin is how long before the access token's end it is refreshed,
// so that an upstream never receives one about to expire.
const expiryMargin = 30 * time.Second

// DueAt returns when the tokens need a refresh: the access token's expiry
// less a margin (30s, or a quarter of its lifetime when that is shorter),
// or Obtained plus refreshInterval (when positive), whichever comes first.
// It returns the zero time ("never") when there is no refresh token or
// neither bound applies.
func (t Tokens) DueAt(refreshInterval time.Duration) time.Time {
	if t.RefreshToken == "" {
		return time.Time{}
	}
	var due time.Time
	if !t.Expiry.IsZero() {
		margin := expiryMargin
		if !t.Obtained.IsZero() {
			margin = min(margin, t.Expiry.Sub(t.Obtained)/4)
		}
		due = t.Expiry.Add(-margin)
	}
	if refreshInterval > 0 && !t.Obtained.IsZero() {
		if at := t.Obtained.Add(refreshInterval); due.IsZero() || at.Before(due) {
			due = at
		}
	}
	return due
}

// Due reports whether the tokens need a refresh at now.
func (t Tokens) Due(refreshInterval time.Duration, now time.Time) bool {
	at := t.DueAt(refreshInterval)
	return !at.IsZero() && !now.Before(at)
}

// tokensVersion is the first byte of the binary form.
const tokensVersion = 1

// maxTokenLen bounds each decoded token (hostile or corrupt input).
const maxTokenLen = 64 << 10

// MarshalBinary encodes t compactly: a version byte, Expiry and Obtained
// as varint Unix milliseconds (0 for zero), then the refresh, ID and
// access tokens, each uvarint-length-prefixed.
func (t Tokens) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+3*binary.MaxVarintLen32+len(t.RefreshToken)+len(t.IDToken)+len(t.AccessToken))
	b = append(b, tokensVersion)
	b = binary.AppendVarint(b, unixMilli(t.Expiry))
	b = binary.AppendVarint(b, unixMilli(t.Obtained))
	for _, s := range []string{t.RefreshToken, t.IDToken, t.AccessToken} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b, nil
}

// UnmarshalBinary decodes the form of MarshalBinary.
func (t *Tokens) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || b[0] != tokensVersion {
		return errors.New("oidc: tokens: unknown version")
	}
	b = b[1:]
	var times [2]time.Time
	for i := range times {
		ms, n := binary.Varint(b)
		if n <= 0 {
			return errors.New("oidc: tokens: truncated")
		}
		if ms != 0 {
			times[i] = time.UnixMilli(ms)
		}
		b = b[n:]
	}
	var s [3]string
	for i := range s {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > maxTokenLen || uint64(len(b)-n) < l {
			return errors.New("oidc: tokens: truncated")
		}
		s[i] = string(b[n : n+int(l)])
		b = b[n+int(l):]
	}
	if len(b) != 0 {
		return errors.New("oidc: tokens: trailing bytes")
	}
	*t = Tokens{RefreshToken: s[0], IDToken: s[1], AccessToken: s[2], Expiry: times[0], Obtained: times[1]}
	return nil
}

func unixMilli(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// subjectOf reads the sub claim of an ID token we verified earlier
// (without verifying it again: it comes from our own sealed storage).
func subjectOf(idToken string) (string, error) {
	parts := strings.Split(idToken, ".")
	if len(parts) != 3 {
		return "", errors.New("malformed ID token")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("malformed ID token: %w", err)
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", fmt.Errorf("malformed ID token: %w", err)
	}
	return c.Sub, nil
}
