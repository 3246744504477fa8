// Package testproc runs the servers that integration-test helpers start
// (etcd, kube-apiserver, redis-server) as child processes of the test binary.
//
// It guarantees:
//   - a started process writes its stdout and stderr to its log file, which
//     it holds open itself: nothing in the test binary copies its output;
//   - on Linux the kernel kills it (SIGKILL) when the test binary dies, so a
//     test that times out or is interrupted leaves no server behind;
//   - it is waited for exactly once, by a goroutine of its own, so its exit
//     is seen (Exited, ExitErr) without anyone calling Wait;
//   - Kill returns only once the process has exited.
//
// The methods of a Process are safe for concurrent use.
package testproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"
)

// Process is one running child process, its output kept in a log file.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been waited for
	err     error         // the result of Wait, set before exited is closed
}

// Start creates (or truncates) the file logPath and starts cmd with its
// stdout and stderr going there. It sets cmd's Stdout, Stderr and
// SysProcAttr; everything else (Env, Dir, …) is the caller's. name is how
// errors refer to the process.
func Start(name, logPath string, cmd *exec.Cmd) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// Name is the name given to Start.
func (p *Process) Name() string { return p.name }

// LogPath is the file that holds the process's output.
func (p *Process) LogPath() string { return p.logPath }

// Exited is closed once the process has ended.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Kill sends SIGKILL (which also ends a SIGSTOPped process) and waits for
// the exit. Killing an ended process does nothing.
func (p *Process) Kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Signal sends sig unless the process has ended.
func (p *Process) Signal(sig os.Signal) error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s has exited", p.name)
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// ErrExited is wrapped by ExitErr: the process ended while it was expected
// to run (a server whose port was taken, say).
var ErrExited = errors.New("exited early")

// ExitErr reports, without blocking, whether the process has ended: nil
// while it runs, else an error wrapping ErrExited that carries the exit
// status ("redis-server exited early: exit status 1").
func (p *Process) ExitErr() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s %w: %v", p.name, ErrExited, p.err)
	default:
		return nil
	}
}

// Tail returns the last n lines of the process's log, or the error that
// kept it from being read, in parentheses.
func (p *Process) Tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// Poll calls ready until it returns nil. It gives up when one of procs (nil
// ones are skipped) has ended, returning that process's ExitErr, or when
// timeout has passed or ctx is done, returning ready's last error. ready gets
// a context that ends then too.
//
// The pause between tries doubles from 2 ms up to 100 ms: a server is
// usually ready in a few milliseconds, and a slow one is not hammered.
func Poll(ctx context.Context, timeout time.Duration, ready func(context.Context) error, procs ...*Process) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	pause := 2 * time.Millisecond
	for {
		for _, p := range procs {
			if p == nil {
				continue
			}
			if err := p.ExitErr(); err != nil {
				return err
			}
		}
		err := ready(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		case <-time.After(pause):
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}
