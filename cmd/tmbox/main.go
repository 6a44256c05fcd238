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
	"syscall"

	"github.com/tmbox/tmbox/preflight"
)

// Exit codes. They are part of tmbox's interface (docs/cli.md).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitPreflight: a preflight check failed; nothing was changed.
	exitPreflight = 3
	exitCancelled = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(ctx)
	code := exitCode(ctx, err) // before stop(), which cancels ctx
	stop()
	os.Exit(code)
}

// exitCode maps the outcome of a command to the process exit code and
// prints the error, if any, to stderr.
func exitCode(ctx context.Context, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	var ue *usageError
	var pf *preflight.FailedError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &pf):
		return exitPreflight
	case ctx.Err() != nil:
		return exitCancelled
	default:
		return exitError
	}
}

// usageError marks an error in how tmbox was called (bad flag, bad value).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }
