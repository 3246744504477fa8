package config

import "flag"

// flagBindings lists the command-line flags, the YAML path each overrides
// (for the usage text) and where it writes.
var flagBindings = []struct {
	name, field, usage string
	target             func(*Config) *string
}{
	{"grpc-address", "listen.grpc.address", "host:port of the ext_authz gRPC listener",
		func(c *Config) *string { return &c.Listen.GRPC.Address }},
	{"public-address", "listen.public.address", "host:port of the JWKS listener",
		func(c *Config) *string { return &c.Listen.Public.Address }},
	{"session-api-address", "listen.sessionAPI.address", "host:port of the session API listener",
		func(c *Config) *string { return &c.Listen.SessionAPI.Address }},
	{"admin-address", "listen.admin.address", "host:port of the metrics and health listener",
		func(c *Config) *string { return &c.Listen.Admin.Address }},
	{"log-level", "log.level", "debug, info, warn or error",
		func(c *Config) *string { return &c.Log.Level }},
	{"keys-dir", "keys.dir", "directory of PEM signing keys",
		func(c *Config) *string { return &c.Keys.Dir }},
}

// Overrides holds the configuration flags registered on one FlagSet. Apply it
// after the FlagSet has been parsed. It is not safe for concurrent use with
// parsing.
type Overrides struct {
	fs     *flag.FlagSet
	values map[string]*string // flag name → parsed value
}

// RegisterFlags defines --grpc-address, --public-address,
// --session-api-address, --admin-address, --log-level and --keys-dir on fs.
// Their defaults are empty: a flag overrides only when it is given, so the
// configured value (default, file or environment) otherwise stands. It
// panics, as flag does, if fs already defines one of these names.
func RegisterFlags(fs *flag.FlagSet) *Overrides {
	o := &Overrides{fs: fs, values: make(map[string]*string, len(flagBindings))}
	for _, b := range flagBindings {
		o.values[b.name] = fs.String(b.name, "", b.usage+" (overrides "+b.field+")")
	}
	return o
}

// Apply writes into c the flags that were set on the command line, even to
// an empty value, and leaves the others alone. A nil Overrides applies
// nothing. Apply does not validate.
func (o *Overrides) Apply(c *Config) {
	if o == nil || o.fs == nil {
		return
	}
	set := make(map[string]bool)
	o.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, b := range flagBindings {
		if set[b.name] {
			*b.target(c) = *o.values[b.name]
		}
	}
}
