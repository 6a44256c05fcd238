package tui

import (
	"slices"
	"strings"
	"testing"

	"github.com/charmbracelet/bubbles/viewport"
)

// TestFieldErrorsBlockTheirStep checks that each field's errors are shown,
// and block, on the step that owns the field, and on no step before it.
func TestFieldErrorsBlockTheirStep(t *testing.T) {
	cases := []struct {
		field string
		want  screen
	}{
		{FieldContext, screenTarget},
		{FieldClusterName, screenTarget},
		{FieldRelease, screenRelease},
		{FieldComponents, screenComponents},
		{FieldBundle, screenAirGap},
		{FieldBundleKey, screenAirGap},
		{FieldRegistry, screenAirGap},
		{FieldIstioOverlay, screenOverlay},
		{FieldDomain, screenSettings},
		{FieldTLSCert, screenSettings},
		{FieldTLSKey, screenSettings},
		{FieldPullSecret, screenSettings},
		{FieldHAReplicas, screenSettings},
		{FieldGeneral, screenSettings},
		{"a-field-the-wizard-does-not-know", screenSettings},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			f := newFake()
			f.invalid = []FieldError{{Field: c.field, Message: "boom: " + c.field}, {Field: c.field, Message: "and bang"}}
			h := newHarness(t, Options{Backend: f})
			h.keys("enter")
			for h.m.screen < c.want {
				s := h.m.screen
				h.keys("enter")
				if len(h.m.errs) > 0 || h.m.screen != s+1 {
					t.Fatalf("leaving %s: screen %s, errors %q", s, h.m.screen, h.m.errs)
				}
			}
			h.keys("enter")
			h.wantScreen(c.want)
			if want := []string{"boom: " + c.field, "and bang"}; !slices.Equal(h.m.errs, want) {
				t.Fatalf("errors %q, want %q", h.m.errs, want)
			}
			h.wantView("boom: "+c.field, "and bang")
			h.keys("enter")
			h.wantScreen(c.want)

			// Fixed: the step is left.
			f.mu.Lock()
			f.invalid = nil
			f.mu.Unlock()
			h.keys("enter")
			if h.m.screen != c.want+1 {
				t.Fatalf("screen %s after the fix, want %s", h.m.screen, c.want+1)
			}
		})
	}
}

// TestEmptyClusterName is the one check the wizard makes itself: nothing
// was typed.
func TestEmptyClusterName(t *testing.T) {
	h := newHarness(t, Options{Backend: newFake(), Initial: Answers{Target: TargetKind}})
	h.keys("enter", "ctrl+u", "enter")
	h.wantScreen(screenTarget)
	h.wantView("enter a cluster name")
}

// TestPhasesFromBackend checks that the welcome and progress screens list
// exactly the Backend's phases, in its order.
func TestPhasesFromBackend(t *testing.T) {
	f := newFake()
	f.block = true
	f.phases = append(slices.Clone(testPhases()), Phase{"extra", "an extra phase"})
	slices.Reverse(f.phases)
	var names []string
	for _, p := range f.phases {
		names = append(names, p.Name)
	}
	h := newHarness(t, Options{Backend: f})
	h.wantView("extra → verify → triggermesh")
	toConfirm(h)
	h.keys("enter")
	h.await("the istio phase", func() bool { return h.m.run.waiting != "" })
	var rows []string
	for _, p := range h.m.run.phases {
		rows = append(rows, p.name)
	}
	if !slices.Equal(rows, names) {
		t.Fatalf("rows %q, want %q", rows, names)
	}
	h.wantView("3/9 phases")
}

// TestRunningPhaseTitle checks that a running phase with nothing to wait
// for shows its title.
func TestRunningPhaseTitle(t *testing.T) {
	for _, c := range []struct {
		name  string
		event Event
		want  string
	}{
		{"listed", Event{Type: EventPhaseStart, Phase: "istio", Message: "applying"}, "istio: installing Istio…"},
		{"unlisted", Event{Type: EventPhaseStart, Phase: "hop", Message: "upgrading to 1.23"}, "hop: upgrading to 1.23…"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := New(Options{Backend: newFake(), Now: fixedNow})
			rs := &runState{vp: viewport.New(0, 0)}
			for _, p := range m.phases {
				rs.phases = append(rs.phases, &phaseState{name: p.Name, title: p.Title, status: phasePending})
			}
			m.run = rs
			rs.apply(m, c.event)
			if v := m.viewProgress(); !strings.Contains(v, c.want) {
				t.Fatalf("view lacks %q:\n%s", c.want, v)
			}
			rs.apply(m, Event{Type: EventWaiting, Phase: c.event.Phase, Message: "pods"})
			if v := m.viewProgress(); strings.Contains(v, c.want) || !strings.Contains(v, "waiting: pods") {
				t.Fatalf("waiting should replace the title:\n%s", v)
			}
		})
	}
}

func TestEventTypesDistinct(t *testing.T) {
	types := EventTypes()
	seen := map[string]bool{}
	for _, ty := range types {
		if ty == "" || seen[ty] {
			t.Errorf("event type %q empty or listed twice", ty)
		}
		seen[ty] = true
	}
	for _, ty := range []string{EventPhaseStart, EventPhaseDone, EventPhaseFail, EventPhaseSkip, EventWaiting, EventProgress, EventInfo, EventCheck, EventLog} {
		if !seen[ty] {
			t.Errorf("EventTypes lacks %q", ty)
		}
	}
}
