// Command baseline is the load test's pass-through Check server: a bare Go
// ext_authz server that answers OK without looking at the request, on the
// same gRPC stack and options as silentauth (authz.GRPCOptions), so the
// difference between the two is the cost of silentauth's decision.
//
// With SILENTAUTH_BASELINE_PARSE_KEY naming a PEM key file it instead runs
// golang-jwt's own jwt.Parse on the bearer token with that key and denies
// what does not parse (so the harness's probes see a wrong key): the cost
// of Parse inside a Check server, under the same load as the cache-miss
// scenario it bounds.
//
// It listens on SILENTAUTH_GRPC_ADDRESS and logs, as silentauth does, a
// JSON "listening" line and then "silentauth ready" on stderr.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/keys"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run() error {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var check authv3.AuthorizationServer = passthrough{}
	if path := os.Getenv("SILENTAUTH_BASELINE_PARSE_KEY"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		k, err := keys.ParsePEM(pem)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		check = parseThrough{keyfunc: func(*jwt.Token) (any, error) { return k.Public, nil }}
	}
	addr := os.Getenv("SILENTAUTH_GRPC_ADDRESS")
	if addr == "" {
		addr = "127.0.0.1:9001"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := grpc.NewServer(authz.GRPCOptions()...)
	authv3.RegisterAuthorizationServer(srv, check)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Stop()
	}()
	log.Info("listening", "listener", "grpc", "address", lis.Addr().String())
	log.Info("silentauth ready")
	return srv.Serve(lis)
}

type passthrough struct {
	authv3.UnimplementedAuthorizationServer
}

var (
	okResponse = &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
	}
	deniedResponse = &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code.Code_PERMISSION_DENIED)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{}},
	}
)

func (passthrough) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return okResponse, nil
}

// parseThrough answers OK when golang-jwt's jwt.Parse accepts the bearer
// token.
type parseThrough struct {
	authv3.UnimplementedAuthorizationServer
	keyfunc jwt.Keyfunc
}

func (p parseThrough) Check(_ context.Context, cr *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	raw, ok := strings.CutPrefix(cr.GetAttributes().GetRequest().GetHttp().GetHeaders()["authorization"], "Bearer ")
	if !ok {
		return deniedResponse, nil
	}
	if _, err := jwt.Parse(raw, p.keyfunc); err != nil {
		return deniedResponse, nil
	}
	return okResponse, nil
}
