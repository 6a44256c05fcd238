package main

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/preflight"
	"github.com/tmbox/tmbox/tui"
)

// tuiOnlyEventTypes are the wizard's event types no installer event maps
// onto.
var tuiOnlyEventTypes = []string{tui.EventLog}

// TestTUIEventCoversEveryType fails when either side adds an event type:
// every installer type has its own case in tuiEvent, and every wizard type
// but its own is made from some installer type.
func TestTUIEventCoversEveryType(t *testing.T) {
	produced := map[string]bool{}
	for _, typ := range installer.EventTypes() {
		ev, show, err := tuiEvent(installer.Event{Type: typ, Message: "m"})
		if err != nil {
			t.Errorf("installer event type %q is not mapped: %v", typ, err)
			continue
		}
		if !show {
			continue
		}
		if !slices.Contains(tui.EventTypes(), ev.Type) {
			t.Errorf("installer event type %q maps onto %q, which the wizard does not know", typ, ev.Type)
		}
		produced[ev.Type] = true
	}
	for _, typ := range tui.EventTypes() {
		if !produced[typ] && !slices.Contains(tuiOnlyEventTypes, typ) {
			t.Errorf("no installer event type maps onto the wizard's %q", typ)
		}
	}
	for _, typ := range []string{"", "no-such-type"} {
		_, show, err := tuiEvent(installer.Event{Type: typ})
		var unknown errUnknownEvent
		if show || !errors.As(err, &unknown) {
			t.Errorf("type %q: show %v, err %v; want an errUnknownEvent", typ, show, err)
		}
	}
}

func TestTUIEvent(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		name string
		in   installer.Event
		want tui.Event
		show bool
	}{
		{
			name: "phase-fail keeps the error and duration",
			in:   installer.Event{Time: at, Type: installer.EventPhaseFail, Phase: "istio", Error: "timed out", Duration: time.Minute},
			want: tui.Event{Time: at, Type: tui.EventPhaseFail, Phase: "istio", Error: "timed out", Duration: time.Minute},
			show: true,
		},
		{
			name: "phase-done",
			in:   installer.Event{Time: at, Type: installer.EventPhaseDone, Phase: "verify", Message: "12 workloads", Duration: time.Second},
			want: tui.Event{Time: at, Type: tui.EventPhaseDone, Phase: "verify", Message: "12 workloads", Duration: time.Second},
			show: true,
		},
		{
			name: "waiting",
			in:   installer.Event{Time: at, Type: installer.EventWaiting, Phase: "istio", Message: "Deployment istiod"},
			want: tui.Event{Time: at, Type: tui.EventWaiting, Phase: "istio", Message: "Deployment istiod"},
			show: true,
		},
		{
			name: "check without a message is described",
			in: installer.Event{Time: at, Type: installer.EventCheck, Phase: "preflight",
				Check: &preflight.Result{Name: "cpu", Status: preflight.StatusPass, Message: "8 CPUs"}},
			want: tui.Event{Time: at, Type: tui.EventCheck, Phase: "preflight", Message: "pass cpu: 8 CPUs"},
			show: true,
		},
		{
			name: "plan goes to the log",
			in:   installer.Event{Time: at, Type: installer.EventPlan, Phase: "istio", Plan: &installer.PhasePlan{Phase: "istio", Summary: "apply Istio"}},
			want: tui.Event{Time: at, Type: tui.EventInfo, Phase: "istio", Message: "plan: apply Istio"},
			show: true,
		},
		{
			name: "result is Run's to return",
			in:   installer.Event{Time: at, Type: installer.EventResult, Result: "succeeded"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, show, err := tuiEvent(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if show != c.show || (show && got != c.want) {
				t.Fatalf("got %+v (show %v), want %+v (show %v)", got, show, c.want, c.show)
			}
		})
	}

	// An event without a time gets one.
	before := time.Now()
	got, _, _ := tuiEvent(installer.Event{Type: installer.EventInfo, Message: "hello"})
	if got.Time.Before(before) {
		t.Fatalf("time %v, want about now", got.Time)
	}
}
