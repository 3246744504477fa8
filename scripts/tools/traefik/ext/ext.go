// Package ext stands in for Traefik's dynamic-configuration extension point
// (github.com/traefik/traefik/dynamic/ext), which Traefik's repository keeps
// as a nested module at pkg/config/dynamic/ext and the module proxy does not
// serve. In the open-source build both types are empty structs that
// pkg/config/dynamic embeds inline in dynamic.HTTP and dynamic.Router, so
// they add no configuration; v3.7.13 uses nothing else from the package.
package ext

// HTTP is embedded in Traefik's dynamic.HTTP.
type HTTP struct{}

// Router is embedded in Traefik's dynamic.Router.
type Router struct{}
