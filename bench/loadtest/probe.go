package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// dial opens one HTTP/2 connection to a Check server, as an Envoy worker
// holds one.
func dial(addr string) (*grpc.ClientConn, authv3.AuthorizationClient, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	return conn, authv3.NewAuthorizationClient(conn), nil
}

// decisionOf reads the CheckResponse to req as the decision it expresses.
// An allow must leave the upstream an Authorization: Bearer header (set by
// the answer, or the request's own when the answer leaves it untouched);
// one that sets our refresh cookie is a refresh ("refreshed"; the response
// cannot tell a rotation from a grace replay, the metrics can), any other
// allow is "valid"; a deny carries its reason in the JSON body.
func decisionOf(req *authv3.CheckRequest, resp *authv3.CheckResponse) (want, error) {
	if ok := resp.GetOkResponse(); ok != nil {
		if !strings.HasPrefix(upstreamReceives(req, resp, "authorization"), "Bearer ") {
			return want{}, errors.New("allowed without an upstream Authorization: Bearer header")
		}
		if refreshCookieOf(resp) != "" {
			return wantRefreshed, nil
		}
		return wantValid, nil
	}
	d := resp.GetDeniedResponse()
	if d == nil {
		return want{}, fmt.Errorf("neither allowed nor denied: %v", resp)
	}
	var body struct{ Reason string }
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil || body.Reason == "" {
		return want{}, fmt.Errorf("denied %d without a reason: %q", d.GetStatus().GetCode(), d.GetBody())
	}
	return want{false, body.Reason}, nil
}

// upstreamReceives is the value of header name that the upstream gets
// when Envoy applies the allowed resp to req: set by the answer, else
// removed by it, else the request's own.
func upstreamReceives(req *authv3.CheckRequest, resp *authv3.CheckResponse, name string) string {
	ok := resp.GetOkResponse()
	for _, h := range ok.GetHeaders() {
		if h.GetHeader().GetKey() == name {
			return h.GetHeader().GetValue()
		}
	}
	if slices.Contains(ok.GetHeadersToRemove(), name) {
		return ""
	}
	return req.GetAttributes().GetRequest().GetHttp().GetHeaders()[name]
}

// refreshCookieOf returns the refresh-cookie value an allowed response
// sets, or "".
func refreshCookieOf(resp *authv3.CheckResponse) string {
	for _, h := range resp.GetOkResponse().GetResponseHeadersToAdd() {
		if h.GetHeader().GetKey() != "set-cookie" {
			continue
		}
		if v, ok := strings.CutPrefix(h.GetHeader().GetValue(), refreshCookie+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			return v
		}
	}
	return ""
}

// probe sends each item once, in order, and reports every decision that
// differs from the one it must get. ghz counts a deny as a success, so
// this is where a data set proves it exercises what its scenario claims.
func probe(ctx context.Context, addr string, items []item, baseline bool) error {
	conn, client, err := dial(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	var errs []error
	for i, it := range items {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := client.Check(ctx, it.req)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("probe %d: gRPC error %v", i, err))
			continue
		}
		if baseline {
			// The pass-through allows everything and adds nothing.
			if resp.GetOkResponse() == nil {
				errs = append(errs, fmt.Errorf("probe %d: the baseline did not allow", i))
			}
			continue
		}
		got, err := decisionOf(it.req, resp)
		if err != nil {
			errs = append(errs, fmt.Errorf("probe %d: %w", i, err))
			continue
		}
		if got.key() != canonical(it.want).key() {
			errs = append(errs, fmt.Errorf("probe %d: got %s, want %s", i, got, it.want))
		}
	}
	return errors.Join(errs...)
}

// canonical maps a wanted decision to what decisionOf can tell apart.
func canonical(w want) want {
	if w == wantGrace {
		return wantRefreshed
	}
	return w
}

// sample returns up to n items spread evenly over items.
func sample(items []item, n int) []item {
	if len(items) <= n {
		return items
	}
	out := make([]item, 0, n)
	for i := range n {
		out = append(out, items[i*len(items)/n])
	}
	return out
}

// burstResult is the outcome of one concurrent refresh of one family.
type burstResult struct {
	Allowed    int           `json:"allowed"`
	Successors int           `json:"distinct_successors"`
	Wall       time.Duration `json:"wall_ns"`
	Errors     []string      `json:"errors,omitempty"`
}

// burst sends n Checks at once, all carrying the same expired access token
// and refresh cookie, over one connection, as n tabs of one browser would:
// all must be allowed and all must receive the same successor refresh
// token, which differs from the presented one.
func burst(ctx context.Context, client authv3.AuthorizationClient, it item, presented string, n int) burstResult {
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		resps = make([]*authv3.CheckResponse, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			resps[i], errs[i] = client.Check(ctx, it.req)
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	r := burstResult{Wall: time.Since(t0)}
	successors := map[string]bool{}
	for i := range n {
		if errs[i] != nil {
			r.Errors = append(r.Errors, errs[i].Error())
			continue
		}
		if resps[i].GetOkResponse() == nil {
			d, _ := decisionOf(it.req, resps[i])
			r.Errors = append(r.Errors, "denied: "+d.String())
			continue
		}
		r.Allowed++
		rt := refreshCookieOf(resps[i])
		if rt == "" || rt == presented {
			r.Errors = append(r.Errors, "allowed without a new refresh cookie")
			continue
		}
		successors[rt] = true
	}
	r.Successors = len(successors)
	return r
}
