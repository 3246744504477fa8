package testproc

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func start(t *testing.T, script string) *Process {
	t.Helper()
	p, err := Start("sh", filepath.Join(t.TempDir(), "sh.log"), exec.Command("/bin/sh", "-c", script))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestExitAndTail(t *testing.T) {
	p := start(t, "echo one; echo two >&2; echo three; exit 3")
	<-p.Exited()
	if err := p.ExitErr(); !errors.Is(err, ErrExited) || err.Error() != "sh exited early: exit status 3" {
		t.Errorf("ExitErr() = %v, want sh exited early: exit status 3", err)
	}
	if got := p.Tail(2); got != "two\nthree" {
		t.Errorf("Tail(2) = %q, want %q", got, "two\nthree")
	}
	if got := p.Tail(10); got != "one\ntwo\nthree" {
		t.Errorf("Tail(10) = %q", got)
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Error("Signal after the exit: no error")
	}
	p.Kill() // ended: nothing to do
}

func TestKillWaits(t *testing.T) {
	p := start(t, "exec sleep 60")
	if err := p.ExitErr(); err != nil {
		t.Fatalf("ExitErr() of a running process = %v", err)
	}
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	p.Kill() // SIGKILL ends a stopped process too
	select {
	case <-p.Exited():
	default:
		t.Fatal("Kill returned before the process ended")
	}
}

func TestPoll(t *testing.T) {
	p := start(t, "exec sleep 60")
	tries := 0
	err := Poll(t.Context(), time.Minute, func(context.Context) error {
		if tries++; tries < 3 {
			return errors.New("not yet")
		}
		return nil
	}, nil, p)
	if err != nil || tries != 3 {
		t.Errorf("Poll = %v after %d tries, want nil after 3", err, tries)
	}

	err = Poll(t.Context(), 50*time.Millisecond, func(context.Context) error { return errors.New("never") }, p)
	if err == nil || err.Error() != "not ready after 50ms: never" {
		t.Errorf("Poll past its timeout = %v, want not ready after 50ms: never", err)
	}

	p.Kill()
	err = Poll(t.Context(), time.Minute, func(context.Context) error { return nil }, p)
	if !errors.Is(err, ErrExited) || !strings.HasPrefix(err.Error(), "sh exited early") {
		t.Errorf("Poll of an ended process = %v, want ErrExited", err)
	}
}
