// Command kubectl-silentauth is the kubectl plugin that rotates
// silentauth's signing keys in their Kubernetes Secret, and lists and ends
// users' sessions through the session API:
//
//	kubectl silentauth keys list|add|activate|retire|revoke|rotate
//	kubectl silentauth sessions list|revoke SUBJECT
//
// Install it on PATH (or through krew) and run "kubectl silentauth --help".
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, kubeClient); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}
