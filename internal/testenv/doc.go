// Package testenv holds what the tests run against, never the product:
// real redis-server and kube-apiserver processes on loopback (redistest,
// kubetest), a throwaway CA (testpki), child processes (testproc), a
// manual clock (fakeclock) and where `make tools` puts binaries
// (toolsdir). The product's own internal packages sit beside it in
// internal/.
package testenv
