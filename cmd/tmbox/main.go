// Command tmbox installs and upgrades a pinned Istio + Knative + TriggerMesh
// stack on a kind cluster or an existing Kubernetes cluster.
//
// This package is the cobra tree only: flags fill options, SIGINT/SIGTERM
// cancel the context, and main is the only place that exits the process.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/preflight"
	"github.com/tmbox/tmbox/tui"
)

// Exit codes. They are part of tmbox's interface (docs/cli.md,
// docs/automation.md), the same for every command.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitPreflight: a preflight check failed; nothing was changed.
	exitPreflight = 3
	// exitRolledBack: an upgrade hop failed and was rolled back; the
	// cluster runs the release it started from, healthy.
	exitRolledBack = 4
	exitCancelled  = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile()
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stopProfile()
	code := exitCode(ctx, err) // before stop(), which cancels ctx
	stop()
	os.Exit(code)
}

// startProfile writes a CPU profile to $TMBOX_CPUPROFILE and an execution
// trace to $TMBOX_TRACE, for `go tool pprof` and `go tool trace`
// (docs/development.md).
func startProfile() func() {
	var stops []func()
	if p := os.Getenv("TMBOX_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if p := os.Getenv("TMBOX_TRACE"); p != "" {
		if f, err := os.Create(p); err == nil && trace.Start(f) == nil {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}

// exitCode maps the outcome of a command to the process exit code and
// prints the error, if any, to stderr.
func exitCode(ctx context.Context, err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
	}
	_, code := outcome(ctx, err)
	return code
}

// outcome names a command's result and its exit code.
func outcome(ctx context.Context, err error) (string, int) {
	var ue *usageError
	var pf *preflight.FailedError
	var rb *installer.RolledBackError
	var se *installer.SettingError
	var pe *settings.Error
	switch {
	case err == nil:
		return installer.ResultSucceeded, exitOK
	case errors.As(err, &ue), errors.As(err, &se), errors.As(err, &pe):
		return "usage-error", exitUsage
	case errors.As(err, &pf):
		return "preflight-failed", exitPreflight
	case ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, tui.ErrCancelled) || errors.Is(err, tui.ErrAborted):
		return installer.ResultCancelled, exitCancelled
	case errors.As(err, &rb):
		return installer.ResultRolledBack, exitRolledBack
	default:
		return installer.ResultFailed, exitError
	}
}

// usageError marks an error in how tmbox was called (bad flag, bad value).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
