package installer

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/tmbox/tmbox/preflight"
)

// Event types.
const (
	EventPhaseStart = "phase-start"
	EventPhaseDone  = "phase-done"
	EventPhaseSkip  = "phase-skip"
	EventPhaseFail  = "phase-fail"
	EventProgress   = "progress"
	EventWaiting    = "waiting"
	EventInfo       = "info"
	// EventCheck carries one preflight check's result.
	EventCheck = "check"
	// EventPlan carries one phase's plan (--dry-run).
	EventPlan = "plan"
	// EventResult is the last event of a command: its outcome and exit
	// code.
	EventResult = "result"
)

// EventTypes lists every event type, for consumers that map them (the
// wizard's adapter tests that it handles each).
func EventTypes() []string {
	return []string{EventPhaseStart, EventPhaseDone, EventPhaseSkip, EventPhaseFail, EventProgress, EventWaiting, EventInfo, EventCheck, EventPlan, EventResult}
}

// Event is one thing an operation reports. The plain reporter, --output
// json and the TUI all render the same events.
type Event struct {
	Time     time.Time     `json:"time"`
	Type     string        `json:"type"`
	Phase    string        `json:"phase,omitempty"`
	Message  string        `json:"message,omitempty"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"durationNs,omitempty"`
	// Check is the result of a preflight check (EventCheck only).
	Check *preflight.Result `json:"check,omitempty"`
	// Plan is a phase's plan (EventPlan only).
	Plan *PhasePlan `json:"plan,omitempty"`
	// Upgrade is an upgrade's plan (EventPlan of upgrade --dry-run): the
	// same data as tmbox plan --to.
	Upgrade *UpgradePlan `json:"upgrade,omitempty"`
	// Progress counts the phases finished of those the run has
	// (phase-done and phase-skip).
	Progress *Progress `json:"progress,omitempty"`
	// Result is the outcome (EventResult only): succeeded, failed,
	// cancelled, rolled-back, preflight-failed or usage-error.
	Result string `json:"result,omitempty"`
	// ExitCode is the process's exit code (EventResult only).
	ExitCode *int `json:"exitCode,omitempty"`
}

// Progress is how far a run is, in phases.
type Progress struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// Reporter receives events. Implementations must be safe for concurrent use.
type Reporter interface {
	Report(Event)
}

// NopReporter drops every event.
type NopReporter struct{}

// Report implements Reporter.
func (NopReporter) Report(Event) {}

// PlainReporter writes one line per event, for terminals without the TUI
// and for logs.
type PlainReporter struct {
	mu sync.Mutex
	W  io.Writer
}

// Report implements Reporter.
func (r *PlainReporter) Report(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	prefix := ""
	if e.Phase != "" {
		prefix = "[" + e.Phase + "] "
	}
	switch e.Type {
	case EventPhaseStart:
		fmt.Fprintf(r.W, "%s%s\n", prefix, e.Message)
	case EventPhaseDone:
		fmt.Fprintf(r.W, "%sdone in %s%s\n", prefix, e.Duration.Round(time.Millisecond), suffix(e.Message))
	case EventPhaseSkip:
		fmt.Fprintf(r.W, "%sskipped%s\n", prefix, suffix(e.Message))
	case EventPhaseFail:
		fmt.Fprintf(r.W, "%sFAILED after %s: %s\n", prefix, e.Duration.Round(time.Millisecond), e.Error)
	case EventCheck:
		c := e.Check
		fmt.Fprintf(r.W, "%s%-4s %s: %s\n", prefix, c.Status, c.Name, c.Message)
		if c.Remediation != "" && c.Status != preflight.StatusPass {
			fmt.Fprintf(r.W, "%s     fix: %s\n", prefix, c.Remediation)
		}
	case EventResult:
		if e.Error != "" {
			fmt.Fprintf(r.W, "%s: %s\n", e.Result, e.Error)
		} else {
			fmt.Fprintf(r.W, "%s in %s\n", e.Result, e.Duration.Round(time.Millisecond))
		}
	case EventPlan:
		fmt.Fprintf(r.W, "%splan: %s\n", prefix, e.Message)
	case EventWaiting:
		fmt.Fprintf(r.W, "%swaiting: %s\n", prefix, e.Message)
	default:
		fmt.Fprintf(r.W, "%s%s\n", prefix, e.Message)
	}
}

func suffix(s string) string {
	if s == "" {
		return ""
	}
	return ": " + s
}

// JSONReporter writes one JSON object per event and line.
type JSONReporter struct {
	mu sync.Mutex
	W  io.Writer
}

// Report implements Reporter.
func (r *JSONReporter) Report(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_ = json.NewEncoder(r.W).Encode(e)
}
