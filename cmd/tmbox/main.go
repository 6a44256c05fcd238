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
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/tmbox/tmbox/bundle"
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
	// exitImagesMissing: an image cannot be pulled (tmbox images check,
	// or bundle create's check before it writes anything).
	exitImagesMissing = 5
	exitCancelled     = 130
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	stopProfile := startProfile()
	root := newRootCmd(os.Stdout, os.Stderr)
	routeKlog(root, os.Stderr)
	cmd, err := root.ExecuteContextC(ctx)
	stopProfile()
	printError(os.Stderr, cmd, err)
	code := exitCode(ctx, err) // before stop(), which cancels ctx
	stop()
	os.Exit(code)
}

// routeKlog sends client-go's klog lines into the debug log (-v) and drops
// them otherwise. Istio's log package, linked for the in-process render,
// points klog at stderr in its init: a watch that ends because its context
// was cancelled ("context canceled: Unexpected error when reading response
// body") would print in the middle of a command's output. What client-go
// reports that matters reaches tmbox as a returned error.
//
// klog's logger is process-wide, so only main sets it; verbosity is known
// once flags are parsed, in the root's PersistentPreRunE (the tree's only
// one).
func routeKlog(root *cobra.Command, errOut io.Writer) {
	klog.SetLogger(logr.Discard())
	pre := root.PersistentPreRunE
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if v, _ := root.PersistentFlags().GetBool("verbose"); v {
			klog.SetSlogLogger(slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelDebug})).With("logger", "klog"))
		}
		return pre(cmd, args)
	}
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

// printError prints a command's error, if any; a usage error ends with
// where the command's usage is (cmd is the command that ran, or the one
// whose flags or arguments were refused).
func printError(w io.Writer, cmd *cobra.Command, err error) {
	if err == nil {
		return
	}
	fmt.Fprintln(w, "Error:", strings.TrimRight(err.Error(), "\n"))
	if _, code := outcome(context.Background(), err); code == exitUsage {
		path := "tmbox"
		if cmd != nil {
			path = cmd.CommandPath()
		}
		fmt.Fprintf(w, "Run '%s --help' for usage.\n", path)
	}
}

// exitCode maps the outcome of a command to the process exit code.
func exitCode(ctx context.Context, err error) int {
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
	var de *declinedError
	var im *bundle.ImagesMissingError
	var oe *bundle.OverrideError
	switch {
	case err == nil:
		return installer.ResultSucceeded, exitOK
	case errors.As(err, &ue), errors.As(err, &se), errors.As(err, &pe), errors.As(err, &oe):
		return "usage-error", exitUsage
	case errors.As(err, &pf):
		return "preflight-failed", exitPreflight
	case errors.As(err, &im):
		return "images-missing", exitImagesMissing
	case errors.As(err, &de):
		return installer.ResultCancelled, exitCancelled
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

// declinedError is a confirmation answered with no: nothing was changed.
// It exits 130, as a cancel does (docs/cli.md).
type declinedError struct{}

func (*declinedError) Error() string { return "cancelled: not confirmed; nothing was changed" }
