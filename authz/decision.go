package authz

import "log/slog"

// Header is one HTTP header to set.
type Header struct{ Name, Value string }

// Decision is the whole answer to one request, free of any transport:
// respond turns it into a CheckResponse, and the HTTP authorization mode
// can turn the same value into an HTTP answer.
type Decision struct {
	// Allow lets the request through to the upstream.
	Allow bool
	// Status is the HTTP status sent to the client when Allow is false
	// (401, 403, 302, 503, 204, 200 or 400).
	Status int
	// Reason is the low-cardinality metric label of this decision.
	Reason string

	// Upstream headers to set (overwriting) on the request, and headers to
	// remove from it. Only used when Allow is true.
	Upstream []Header
	Remove   []string

	// SetCookie values sent to the client, each its own header entry.
	SetCookie []string
	// Response headers (other than Set-Cookie) sent to the client.
	Response []Header
	// Body of a denied response.
	Body string

	// Err is the cause of a deny or of a degraded allow, for the log.
	Err error
	// Level is the log level the decision deserves.
	Level slog.Level
	// Subject and Session identify the caller in logs, when known.
	Subject, Session string
	// Event names a security event (see the answers table); its log line
	// is never dropped.
	Event string

	// login marks a deny of a page load that provider login answers
	// instead (decide starts the flow).
	login bool
}
