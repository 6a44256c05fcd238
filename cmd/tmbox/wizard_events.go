package main

import (
	"fmt"
	"time"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/tui"
)

// errUnknownEvent is tuiEvent's error for an installer event type it does
// not map.
type errUnknownEvent struct{ typ string }

// Error says which type.
func (e errUnknownEvent) Error() string {
	return fmt.Sprintf("the wizard does not know installer event type %q", e.typ)
}

// tuiEvent maps an installer event onto the wizard's. show is false for an
// event the wizard has no use for; an unknown type is an error (and not
// shown). Every type in installer.EventTypes has its own case: the test
// fails when either side adds one.
func tuiEvent(e installer.Event) (ev tui.Event, show bool, err error) {
	ev = tui.Event{Time: e.Time, Phase: e.Phase, Message: e.Message, Error: e.Error, Duration: e.Duration}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	switch e.Type {
	case installer.EventPhaseStart:
		ev.Type = tui.EventPhaseStart
	case installer.EventPhaseDone:
		ev.Type = tui.EventPhaseDone
	case installer.EventPhaseSkip:
		ev.Type = tui.EventPhaseSkip
	case installer.EventPhaseFail:
		ev.Type = tui.EventPhaseFail
	case installer.EventProgress:
		ev.Type = tui.EventProgress
	case installer.EventWaiting:
		ev.Type = tui.EventWaiting
	case installer.EventInfo:
		ev.Type = tui.EventInfo
	case installer.EventCheck:
		ev.Type = tui.EventCheck
		if c := e.Check; c != nil && ev.Message == "" {
			ev.Message = fmt.Sprintf("%s %s: %s", c.Status, c.Name, c.Message)
		}
	case installer.EventPlan:
		// A phase's plan, for the log (the plan screen has it from Plan).
		ev.Type = tui.EventInfo
		msg := ev.Message
		if p := e.Plan; p != nil && msg == "" {
			msg = p.Summary
		}
		ev.Message = "plan: " + msg
	case installer.EventResult:
		// The command's outcome: Run's return value is the wizard's.
		return tui.Event{}, false, nil
	default:
		return tui.Event{}, false, errUnknownEvent{e.Type}
	}
	return ev, true, nil
}
