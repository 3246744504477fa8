package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
)

// headerFlags collects repeated --header name:value flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// checkCmd sends one CheckRequest shaped as Envoy sends it (lower-case
// header keys, :authority, x-forwarded-proto, one cookie header) and
// prints the CheckResponse as JSON. It is a development aid: the printed
// response holds the upstream Authorization header, as Envoy would see it.
func checkCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:9001", "silentauth gRPC address (plaintext)")
	method := fs.String("method", "GET", "HTTP method of the checked request")
	path := fs.String("path", "/", "path and query of the checked request")
	host := fs.String("host", "app.localhost", ":authority of the checked request")
	tok := fs.String("token", "", "access token sent as Authorization: Bearer")
	cookieHdr := fs.String("cookie", "", "raw cookie header of the checked request")
	var extra headerFlags
	fs.Var(&extra, "header", "extra request header name:value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	headers := map[string]string{
		":authority": *host, ":method": *method, ":path": *path, ":scheme": "https",
		"x-forwarded-proto": "https", "user-agent": "silentauth-check",
	}
	if *tok != "" {
		headers["authorization"] = "Bearer " + *tok
	}
	if *cookieHdr != "" {
		headers["cookie"] = *cookieHdr
	}
	for _, h := range extra {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return fmt.Errorf("--header %q: want name:value", h)
		}
		headers[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(value)
	}
	req := &authv3.CheckRequest{Attributes: &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{
		Http: &authv3.AttributeContext_HttpRequest{
			Id: "silentauth-check", Method: *method, Path: *path, Host: *host, Scheme: "https",
			Protocol: "HTTP/1.1", Headers: headers,
		},
	}}}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	resp, err := authv3.NewAuthorizationClient(conn).Check(ctx, req)
	if err != nil {
		return err
	}
	out, err := protojson.MarshalOptions{Multiline: true}.Marshal(resp)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, string(out))
	return nil
}
