// Command silentauth is the silent-authentication service for Envoy's
// ext_authz filter. See the README for the quick start.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	// The Mozilla root certificates, used only where the system has none:
	// the image is built FROM scratch, and must still reach a public
	// identity provider over TLS. oidc.caFile adds a private CA.
	_ "golang.org/x/crypto/x509roots/fallback"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal starts a graceful shutdown; from then on the
		// signals have their default effect, so a second Ctrl-C exits at
		// once instead of waiting out the drain.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "silentauth:", err)
		os.Exit(1)
	}
}
