// Package preflight checks the host and the cluster before tmbox changes
// anything. A check has a stable kebab-case name (its API: users name it in
// --ignore-preflight-errors), a category, and returns pass, warn or fail with
// a message and a remediation. Run runs checks in parallel, each under its
// own timeout.
//
// The package never prints; it returns results.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Status is a check's outcome.
type Status string

// Outcomes, from best to worst.
const (
	StatusPass Status = "pass"
	StatusWarn Status = "warn"
	StatusFail Status = "fail"
	// StatusSkip says the check could not run because one it depends on
	// failed (e.g. the cluster does not answer); it does not fail a run.
	StatusSkip Status = "skip"
)

// Category groups checks by what they look at.
type Category string

// Categories.
const (
	CategoryHost    Category = "host"
	CategoryCluster Category = "cluster"
	CategoryBundle  Category = "bundle"
)

// Result is one check's outcome.
type Result struct {
	// Name is the check's stable kebab-case name.
	Name string `json:"name"`
	// Category is host, cluster or bundle.
	Category Category `json:"category"`
	// Status is pass, warn or fail.
	Status Status `json:"status"`
	// Message says what was found.
	Message string `json:"message"`
	// Remediation says how to fix a warning or failure.
	Remediation string `json:"remediation,omitempty"`
	// Ignored is set when --ignore-preflight-errors turned a failure into
	// a warning.
	Ignored bool `json:"ignored,omitempty"`
	// Fix, when set, is a safe change tmbox can make itself (--fix).
	Fix *Fix `json:"fix,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"durationNanos"`
}

// Fix is a change that remedies a failed or warned check.
type Fix struct {
	// Description says what the fix does.
	Description string `json:"description"`
	// Changes are the exact changes, shown before asking for confirmation
	// (e.g. "write 524288 to /proc/sys/fs/inotify/max_user_watches").
	Changes []string `json:"changes"`
	// Apply makes the change.
	Apply func(ctx context.Context) error `json:"-"`
}

// Pass returns a passing result.
func Pass(format string, args ...any) Result {
	return Result{Status: StatusPass, Message: fmt.Sprintf(format, args...)}
}

// Warn returns a warning with a remediation.
func Warn(remediation, format string, args ...any) Result {
	return Result{Status: StatusWarn, Message: fmt.Sprintf(format, args...), Remediation: remediation}
}

// Fail returns a failure with a remediation.
func Fail(remediation, format string, args ...any) Result {
	return Result{Status: StatusFail, Message: fmt.Sprintf(format, args...), Remediation: remediation}
}

// Check is one preflight check.
type Check interface {
	// Name is the stable kebab-case name.
	Name() string
	// Category is what the check looks at.
	Category() Category
	// Run performs the check. It honours ctx's deadline.
	Run(ctx context.Context) Result
}

// New makes a Check from a function.
func New(name string, category Category, run func(ctx context.Context) Result) Check {
	return funcCheck{name: name, category: category, run: run}
}

type funcCheck struct {
	name     string
	category Category
	run      func(ctx context.Context) Result
}

func (c funcCheck) Name() string                   { return c.name }
func (c funcCheck) Category() Category             { return c.category }
func (c funcCheck) Run(ctx context.Context) Result { return c.run(ctx) }

// Options tune Run.
type Options struct {
	// Timeout bounds each check (default 5s). A check that overruns fails
	// with a message saying so.
	Timeout time.Duration
	// Ignore names checks whose failures become warnings; "all" names
	// every check.
	Ignore []string
	// Concurrency bounds how many checks run at once (default 8).
	Concurrency int
}

// ValidateIgnore refuses names in ignore that are neither "all" nor one of
// known.
func ValidateIgnore(ignore, known []string) error {
	var errs []error
	for _, n := range ignore {
		if n != "all" && !slices.Contains(known, n) {
			errs = append(errs, fmt.Errorf("unknown preflight check %q in --ignore-preflight-errors (checks: %s)", n, strings.Join(known, ", ")))
		}
	}
	return errors.Join(errs...)
}

// Report is the outcome of a run, in the order the checks were given.
type Report struct {
	Results []Result `json:"results"`
}

// Failed returns the failures (after Ignore).
func (r Report) Failed() []Result {
	var out []Result
	for _, res := range r.Results {
		if res.Status == StatusFail {
			out = append(out, res)
		}
	}
	return out
}

// Err is nil when nothing failed, and otherwise a *FailedError naming the
// failed checks.
func (r Report) Err() error {
	if f := r.Failed(); len(f) > 0 {
		return &FailedError{Failed: f}
	}
	return nil
}

// FailedError says which checks failed.
type FailedError struct {
	Failed []Result
}

// Error names the failed checks.
func (e *FailedError) Error() string {
	var parts []string
	for _, f := range e.Failed {
		s := f.Name + ": " + f.Message
		if f.Remediation != "" {
			s += " (fix: " + f.Remediation + ")"
		}
		parts = append(parts, s)
	}
	return fmt.Sprintf("preflight failed: %s", strings.Join(parts, "; "))
}

// Run runs the checks in parallel, each under opts.Timeout, and returns
// their results in the order given. It returns early only when ctx ends;
// checks still running then fail with ctx's error.
func Run(ctx context.Context, checks []Check, opts Options) Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	results := make([]Result, len(checks))
	var g errgroup.Group
	g.SetLimit(opts.Concurrency)
	for i, c := range checks {
		g.Go(func() error {
			results[i] = runOne(ctx, c, opts.Timeout)
			return nil // a check's failure is its result
		})
	}
	_ = g.Wait()
	for i := range results {
		r := &results[i]
		if r.Status == StatusFail && (slices.Contains(opts.Ignore, "all") || slices.Contains(opts.Ignore, r.Name)) {
			r.Status, r.Ignored = StatusWarn, true
		}
	}
	return Report{Results: results}
}

// runOne runs a check under its timeout; a check that does not return in
// time is reported as failed (its goroutine is left to notice ctx).
func runOne(ctx context.Context, c Check, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- Fail("report this as a tmbox bug", "check panicked: %v", p)
			}
		}()
		done <- c.Run(ctx)
	}()
	var r Result
	select {
	case r = <-done:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r = Fail("re-run with a longer --preflight-timeout, or find out why the check hangs", "did not finish within %s", timeout)
		} else {
			r = Fail("", "cancelled: %v", ctx.Err())
		}
	}
	r.Name, r.Category, r.Duration = c.Name(), c.Category(), time.Since(start)
	if r.Status == "" {
		r.Status = StatusPass
	}
	return r
}
