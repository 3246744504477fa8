package config

import (
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// LogValue summarises c for a startup log line, following the YAML layout:
// every field under its YAML name, durations as strings ("15m0s"), and
// lists and maps as their length only (paths, origins, claim headers,
// ServiceAccounts, named policies). Config holds no secret, but a field
// tagged log:"set" (the session-API token file, the kubeconfig) is shown
// only as whether it is set ("tokenFileSet"), one tagged log:"url" (the
// login URL) without its query, fragment and user information, and one
// tagged log:"-" not at all; types that summarise themselves (Listener,
// SecretRef, Store) implement slog.LogValuer. A new field is logged without
// any change here.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(logAttrs(reflect.ValueOf(c))...)
}

var (
	logDuration = reflect.TypeFor[time.Duration]()
	valuerType  = reflect.TypeFor[slog.LogValuer]()
)

// logAttrs renders the fields of struct v as LogValue describes.
func logAttrs(v reflect.Value) []slog.Attr {
	var attrs []slog.Attr
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		switch {
		case !f.IsExported() || name == "-" || f.Tag.Get("log") == "-":
			continue
		case opts == "inline":
			attrs = append(attrs, logAttrs(fv)...)
			continue
		}
		attrs = append(attrs, logAttr(name, f.Tag.Get("log"), fv))
	}
	return attrs
}

func logAttr(name, tag string, v reflect.Value) slog.Attr {
	switch {
	case tag == "set":
		return slog.Bool(name+"Set", !v.IsZero())
	case tag == "url":
		return slog.String(name, withoutQuery(v.String()))
	case v.Type().Implements(valuerType):
		return slog.Any(name, v.Interface())
	case v.Type() == logDuration:
		return slog.String(name, time.Duration(v.Int()).String())
	}
	switch v.Kind() {
	case reflect.Struct:
		return slog.Attr{Key: name, Value: slog.GroupValue(logAttrs(v)...)}
	case reflect.Slice, reflect.Map:
		return slog.Int(name, v.Len())
	case reflect.String:
		return slog.String(name, v.String())
	case reflect.Bool:
		return slog.Bool(name, v.Bool())
	case reflect.Int, reflect.Int64:
		return slog.Int64(name, v.Int())
	}
	return slog.String(name, v.Kind().String()) // no such field today
}

// LogValue renders the key Secret as namespace/name ("" without one; the
// namespace reads "<pod>" when it defaults to the pod's).
func (s SecretRef) LogValue() slog.Value {
	if s.Name == "" {
		return slog.StringValue("")
	}
	ns := s.Namespace
	if ns == "" {
		ns = "<pod>"
	}
	return slog.StringValue(ns + "/" + s.Name)
}

// LogValue shows the address and whether TLS and client certificates are
// on, not the file paths.
func (l Listener) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("address", l.Address),
		slog.Bool("tls", l.TLS.Enabled()),
		slog.Bool("clientCerts", l.TLS.ClientCAFile != ""),
	)
}

// LogValue names the backend only.
func (s Store) LogValue() slog.Value { return slog.StringValue(s.Backend) }

// withoutQuery drops the query, fragment and user information of a URL; it
// returns "" for what does not parse, since the summary must never fail.
func withoutQuery(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment, u.User = "", false, "", "", nil
	return u.String()
}
