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
//
// An allow is built in a few allocations (the messages in one block, the
// headers in another): it answers most requests.
func respond(d Decision) *authv3.CheckResponse {
	if d.Allow {
		b := &okAnswer{}
		b.ok.Headers = headerOptions(d.Upstream, nil)
		b.ok.HeadersToRemove = d.Remove
		b.ok.ResponseHeadersToAdd = downstreamHeaders(d)
		b.status.Code = int32(code.Code_OK)
		b.oneof.OkResponse = &b.ok
		b.resp.Status, b.resp.HttpResponse = &b.status, &b.oneof
		return &b.resp
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

// okAnswer holds the messages of an allowed CheckResponse in one
// allocation.
type okAnswer struct {
	resp   authv3.CheckResponse
	status rpcstatus.Status
	oneof  authv3.CheckResponse_OkResponse
	ok     authv3.OkHttpResponse
}

// downstreamHeaders lists the headers sent to the client: d.Response
// overwritten, then one appended Set-Cookie entry per cookie.
func downstreamHeaders(d Decision) []*corev3.HeaderValueOption {
	return headerOptions(d.Response, d.SetCookie)
}

// headerOption is one header entry with its value, allocated together.
type headerOption struct {
	opt corev3.HeaderValueOption
	val corev3.HeaderValue
}

// headerOptions returns set as overwriting entries followed by cookies as
// appended set-cookie entries, or nil when both are empty.
func headerOptions(set []Header, cookies []string) []*corev3.HeaderValueOption {
	n := len(set) + len(cookies)
	if n == 0 {
		return nil
	}
	block := make([]headerOption, n)
	out := make([]*corev3.HeaderValueOption, n)
	for i := range block {
		h := &block[i]
		if i < len(set) {
			h.val.Key, h.val.Value = set[i].Name, set[i].Value
			h.opt.AppendAction = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		} else {
			h.val.Key, h.val.Value = "set-cookie", cookies[i-len(set)]
			h.opt.AppendAction = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
		}
		h.opt.Header = &h.val
		out[i] = &h.opt
	}
	return out
}
