// Package faultdrill holds the fault drill: the real Check server over real
// gRPC, two replicas sharing one real redis-server, and a crowd of
// simulated browsers that keep their cookies as browsers do, each Check
// bounded by a 0.5 s deadline as Envoy sets it. Redis is made slow through
// a delaying TCP proxy, paused with SIGSTOP, killed and restarted with its
// data, and finally restarted empty; the drill counts forced logouts,
// cookies cleared, valid tokens not passed and families lost, which must
// all be zero except the documented loss of an empty restart. The package
// has no code of its own; everything is in tests.
package faultdrill
