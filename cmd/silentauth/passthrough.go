//go:build silentauth_passthrough

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/silentauth/silentauth/authz"
	"github.com/silentauth/silentauth/authz/keys"
)

// The baselines for load tests: the same binary, listeners and gRPC stack,
// with an authorizer that answers OK without looking at the request. Only
// builds with -tags silentauth_passthrough contain it.
//
// With SILENTAUTH_BASELINE_PARSE_KEY naming a PEM key file, the baseline
// also runs golang-jwt's own jwt.Parse on the bearer token with that key
// (and denies what does not parse, so a load test's probes see a wrong
// key): the cost of Parse inside a Check server, under the same load as
// the scenario it bounds.
func init() {
	newAuthorizer = func(*authz.Engine, *slog.Logger, *authz.Metrics) authv3.AuthorizationServer {
		path := os.Getenv("SILENTAUTH_BASELINE_PARSE_KEY")
		if path == "" {
			return passthrough{}
		}
		pem, err := os.ReadFile(path)
		if err != nil {
			panic(fmt.Sprintf("baseline parse key: %v", err))
		}
		k, err := keys.ParsePEM(pem)
		if err != nil {
			panic(fmt.Sprintf("baseline parse key %s: %v", path, err))
		}
		return parseThrough{keyfunc: func(*jwt.Token) (any, error) { return k.Public, nil }}
	}
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
