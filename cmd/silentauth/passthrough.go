//go:build silentauth_passthrough

package main

import (
	"context"
	"log/slog"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/silentauth/silentauth/authz"
)

// The baseline for load tests: the same binary, listeners and gRPC stack,
// with an authorizer that answers OK without looking at the request. Only
// builds with -tags silentauth_passthrough contain it.
func init() {
	newAuthorizer = func(*authz.Engine, *slog.Logger, *authz.Metrics) authv3.AuthorizationServer {
		return passthrough{}
	}
}

type passthrough struct {
	authv3.UnimplementedAuthorizationServer
}

var okResponse = &authv3.CheckResponse{
	Status:       &rpcstatus.Status{Code: int32(code.Code_OK)},
	HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{}},
}

func (passthrough) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return okResponse, nil
}
