package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisServer is a redis-server on loopback with nothing persisted.
type redisServer struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// findRedis returns redis-server from /usr/bin (Debian's package, as
// `make tools` installs it) or PATH.
func findRedis() (string, error) {
	if fi, err := os.Stat("/usr/bin/redis-server"); err == nil && !fi.IsDir() {
		return "/usr/bin/redis-server", nil
	}
	return exec.LookPath("redis-server")
}

// startRedis starts bin on a free loopback port and waits for PING.
func startRedis(ctx context.Context, bin, dir string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "")
	cmd.SysProcAttr = sysProcAttr()
	logs := &tailWriter{t: newTail(20)}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &redisServer{cmd: cmd, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(r.done) }()
	c := redis.NewClient(&redis.Options{Addr: r.addr, DisableIdentity: true, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := c.Ping(pctx).Err()
		cancel()
		if err == nil {
			return r, nil
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("redis-server exited: %s", logs.t)
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, errors.Join(fmt.Errorf("redis-server not answering PING on %s", r.addr), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *redisServer) stop() {
	_ = r.cmd.Process.Kill()
	<-r.done
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before the server binds; a failure to start then says so.
func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts asks the kernel for n distinct free loopback ports: every
// listener stays open until all are chosen, so no port is handed out twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
