package authz

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// respond turns a Decision into the CheckResponse Envoy acts on. Every
// header carries an explicit append_action: its default changed meaning
// across Envoy releases, and the deprecated append field is never set.
// Set-Cookie entries are appended one per header entry, so the app's own
// cookies survive and browsers see each (Envoy issue 8649).
func respond(d Decision) *authv3.CheckResponse {
	if d.Allow {
		ok := &authv3.OkHttpResponse{HeadersToRemove: d.Remove}
		for _, h := range d.Upstream {
			ok.Headers = append(ok.Headers, overwrite(h.Name, h.Value))
		}
		ok.ResponseHeadersToAdd = downstreamHeaders(d)
		return &authv3.CheckResponse{
			Status:       &rpcstatus.Status{Code: int32(code.Code_OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
		}
	}
	grpcCode := code.Code_PERMISSION_DENIED
	if d.Status == 401 {
		grpcCode = code.Code_UNAUTHENTICATED
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(grpcCode)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(d.Status)},
			Headers: downstreamHeaders(d),
			Body:    d.Body,
		}},
	}
}

// downstreamHeaders lists the headers sent to the client.
func downstreamHeaders(d Decision) []*corev3.HeaderValueOption {
	if len(d.Response) == 0 && len(d.SetCookie) == 0 {
		return nil
	}
	out := make([]*corev3.HeaderValueOption, 0, len(d.Response)+len(d.SetCookie))
	for _, h := range d.Response {
		out = append(out, overwrite(h.Name, h.Value))
	}
	for _, c := range d.SetCookie {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: "set-cookie", Value: c},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}
