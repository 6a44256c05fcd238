package tui

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/charmbracelet/bubbles/viewport"
)

// fixableChecks fail the inotify check with a fix tmbox can apply.
func fixableChecks() []Check {
	c := passingChecks()
	c[4] = Check{Name: "inotify-limits", Category: "host", Status: StatusFail,
		Message:     "max_user_watches 8192, max_user_instances 128: kind's nodes run out of inotify instances",
		Remediation: "raise fs.inotify.max_user_watches and max_user_instances (tmbox preflight --fix)",
		Fix: &Fix{Description: "raise the inotify limits to kind's recommended values, now and at boot", Changes: []string{
			"write 524288 to /proc/sys/fs/inotify/max_user_watches",
			"write 512 to /proc/sys/fs/inotify/max_user_instances",
			"write /etc/sysctl.d/99-tmbox-inotify.conf",
		}}}
	return c
}

// toPreflight walks to the preflight step with the defaults and waits
// for the checks.
func toPreflight(h *harness) {
	h.t.Helper()
	h.keys("enter", "enter", "enter", "enter", "enter", "enter", "enter")
	h.wantScreen(screenPreflight)
	h.await("preflight", func() bool { return !h.m.pf.running })
}

// TestMirrorField checks the air-gap step's mirror directory: prefilled,
// validated by the Backend under its own field, kept in the answers, and
// shown on the confirm step.
func TestMirrorField(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name    string
		initial string // Options.Initial.Mirror
		typed   string
		want    string // an error on the air-gap step; "" to leave it
		confirm string
	}{
		{"none", "", "", "", "Air gap        no (download from upstream)"},
		{"typed", "", dir, "", "Air gap        mirror " + dir},
		{"prefilled", dir, "", "", "Air gap        mirror " + dir},
		{"not a directory", "", "/nonexistent/mirror", "mirror /nonexistent/mirror is not a directory", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{Backend: newFake(), Initial: Answers{Mirror: c.initial}})
			h.keys("enter", "enter", "enter", "enter")
			h.wantScreen(screenAirGap)
			if c.initial != "" {
				h.wantView("Mirror dir:  " + c.initial)
			}
			h.keys("down", "down", "down")
			if h.m.airFocus != fieldMirror {
				t.Fatalf("air-gap focus %d, want the mirror", h.m.airFocus)
			}
			h.typ(c.typed)
			h.keys("enter")
			if c.want != "" {
				h.wantScreen(screenAirGap)
				h.wantView(c.want)
				return
			}
			h.wantScreen(screenOverlay)
			if got, want := h.m.a.Mirror, c.initial+c.typed; got != want {
				t.Fatalf("mirror %q, want %q", got, want)
			}
			h.keys("enter", "enter")
			h.await("preflight", func() bool { return !h.m.pf.running })
			h.keys("enter")
			h.await("plan", func() bool { return !h.m.planTask.running })
			h.keys("enter")
			h.wantScreen(screenConfirm)
			h.wantView(c.confirm)
		})
	}
	if got := fieldStep(FieldMirror); got != screenAirGap {
		t.Fatalf("the mirror's errors show on %s", got)
	}
}

// TestPreflightIgnore checks that i on a failed check ignores it for the
// run, as --ignore-preflight-errors: the checks run again with it in the
// answers, it is a warning, and the step can be left.
func TestPreflightIgnore(t *testing.T) {
	f := newFake()
	f.checks = failingChecks()
	h := newHarness(t, Options{Backend: f, Plain: true})
	toPreflight(h)
	h.wantView("> FAIL container-engine", "i ignore this check")
	if strings.Contains(h.view(), "f apply fix") {
		t.Fatal("a check without a fix offers one")
	}
	h.keys("i")
	h.await("preflight", func() bool { return !h.m.pf.running })
	if want := []string{"container-engine"}; !slices.Equal(h.m.a.IgnorePreflightErrors, want) {
		t.Fatalf("ignored %q, want %q", h.m.a.IgnorePreflightErrors, want)
	}
	h.wantView("warn container-engine", "(ignored for this run)", "ignoring container-engine for this run", "Press enter to see the plan")
	if f.pfCalls != 2 {
		t.Fatalf("preflight ran %d times, want 2", f.pfCalls)
	}
	h.keys("enter")
	h.await("plan", func() bool { return !h.m.planTask.running })
	h.keys("enter")
	h.wantScreen(screenConfirm)
	h.wantView("Preflight      3 passed, 2 warnings; ignoring container-engine")

	// Initial answers (--ignore-preflight-errors) are kept and not repeated.
	f = newFake()
	f.checks = failingChecks()
	f.checks[0].Status = StatusFail
	h = newHarness(t, Options{Backend: f, Initial: Answers{IgnorePreflightErrors: []string{"os-arch"}}})
	toPreflight(h)
	h.keys("i")
	h.await("preflight", func() bool { return !h.m.pf.running })
	if want := []string{"os-arch", "container-engine"}; !slices.Equal(h.m.a.IgnorePreflightErrors, want) {
		t.Fatalf("ignored %q, want %q", h.m.a.IgnorePreflightErrors, want)
	}
}

// TestPreflightSelection checks that up/down choose among the checks the
// step can act on, and i acts on the chosen one.
func TestPreflightSelection(t *testing.T) {
	f := newFake()
	f.checks = failingChecks()
	f.checks[1].Status = StatusFail // cpu
	h := newHarness(t, Options{Backend: f})
	toPreflight(h)
	if c, _ := h.m.selectedCheck(); c.Name != "cpu" {
		t.Fatalf("selected %q, want the first failed check", c.Name)
	}
	h.keys("down")
	if c, _ := h.m.selectedCheck(); c.Name != "container-engine" {
		t.Fatalf("selected %q after down", c.Name)
	}
	h.keys("down") // the last: stays
	if c, _ := h.m.selectedCheck(); c.Name != "container-engine" {
		t.Fatalf("selected %q after down at the last", c.Name)
	}
	h.keys("enter")
	h.wantView("2 preflight checks failed: fix them and press r to re-run the checks, or choose one and press i")
	h.keys("i")
	h.await("preflight", func() bool { return !h.m.pf.running })
	if want := []string{"container-engine"}; !slices.Equal(h.m.a.IgnorePreflightErrors, want) {
		t.Fatalf("ignored %q, want %q", h.m.a.IgnorePreflightErrors, want)
	}
	if c, _ := h.m.selectedCheck(); c.Name != "cpu" {
		t.Fatalf("selected %q after the re-run, want the one still failing", c.Name)
	}
}

// TestPreflightFix checks that f shows the fix's exact changes and asks;
// n changes nothing; y applies it through the Backend and re-runs the
// checks; a fix that fails says so and leaves the checks as they were.
func TestPreflightFix(t *testing.T) {
	f := newFake()
	f.checks = fixableChecks()
	h := newHarness(t, Options{Backend: f})
	toPreflight(h)
	h.wantView("tmbox can raise the inotify limits to kind's recommended values,", "now and at boot (f)",
		"i ignore this check", "f apply fix", "or f to apply its fix")
	h.keys("f")
	h.wantView("Apply the fix of inotify-limits? tmbox will raise the inotify limits",
		"· write 524288 to /proc/sys/fs/inotify/max_user_watches", "· write /etc/sysctl.d/99-tmbox-inotify.conf",
		"apply these changes? y/n", "y apply the fix")
	h.keys("n")
	if h.m.fixAsk || len(f.fixed) != 0 {
		t.Fatalf("n: asking %v, fixed %q", h.m.fixAsk, f.fixed)
	}
	h.wantScreen(screenPreflight)
	h.keys("f", "esc")
	if h.m.fixAsk || len(f.fixed) != 0 {
		t.Fatalf("esc: asking %v, fixed %q", h.m.fixAsk, f.fixed)
	}
	h.wantScreen(screenPreflight)

	calls := f.pfCalls
	h.keys("f", "y")
	h.await("the fix and the checks", func() bool { return !h.m.fixTask.running && !h.m.pf.running })
	if want := []string{"inotify-limits"}; !slices.Equal(f.fixed, want) {
		t.Fatalf("fixed %q, want %q", f.fixed, want)
	}
	if f.pfCalls != calls+1 {
		t.Fatalf("the checks ran %d more times, want 1", f.pfCalls-calls)
	}
	h.wantView("✓ inotify-limits", "applied the fix of inotify-limits", "Press enter to see the plan")
	h.keys("enter")
	h.wantScreen(screenPlan)

	f = newFake()
	f.checks = fixableChecks()
	f.fixErr = errors.New("open /proc/sys/fs/inotify/max_user_watches: permission denied")
	h = newHarness(t, Options{Backend: f})
	toPreflight(h)
	calls = f.pfCalls
	h.keys("f", "y")
	h.await("the fix", func() bool { return !h.m.fixTask.running })
	h.wantView("the fix of inotify-limits failed: open /proc/sys/fs/inotify/max_user_watches: permission denied", "Preflight failed")
	if f.pfCalls != calls {
		t.Fatal("the checks ran again after a failed fix")
	}
}

// TestStepErrorNamesField checks that a preflight or plan error an
// answer can fix offers to go back to that answer's step, not to retry,
// and that esc goes there with the error shown; other errors offer r.
func TestStepErrorNamesField(t *testing.T) {
	offline := &FieldError{Field: FieldMirror, Message: "tmbox cannot download the release's manifests: give a mirror directory (air-gap step) or a bundle"}
	t.Run("plan", func(t *testing.T) {
		f := newFake()
		f.planErr = offline
		h := newHarness(t, Options{Backend: f})
		toPreflight(h)
		h.keys("enter")
		h.await("plan", func() bool { return !h.m.planTask.running })
		h.wantView("tmbox cannot download the release's manifests: give a mirror directory (air-gap step) or a", "bundle",
			"Press esc to go back and change the mirror directory.", "esc back to change the mirror directory")
		if v := h.view(); strings.Contains(v, "retry") {
			t.Fatalf("the plan offers to retry:\n%s", v)
		}
		h.keys("enter")
		h.wantScreen(screenPlan)
		h.wantView("(esc to go back and change the mirror directory)")
		h.keys("esc")
		h.wantScreen(screenAirGap)
		h.wantView(offline.Message)
		if h.m.airFocus != fieldBundle {
			t.Fatalf("focus %d", h.m.airFocus)
		}
	})
	t.Run("preflight", func(t *testing.T) {
		f := newFake()
		f.pfErr = offline
		h := newHarness(t, Options{Backend: f})
		toPreflight(h)
		h.wantView(offline.Message, "Press esc to go back and change the mirror directory.")
		if v := h.view(); strings.Contains(v, "could not run") || strings.Contains(v, "Press r to retry") {
			t.Fatalf("preflight shows more than the sentence:\n%s", v)
		}
		h.keys("esc")
		h.wantScreen(screenAirGap)
		h.wantView(offline.Message)
	})
	t.Run("wrapped overlay error", func(t *testing.T) {
		f := newFake()
		f.planErr = errors.Join(&FieldError{Field: FieldIstioOverlay, Message: "the overlay is for another Istio"})
		h := newHarness(t, Options{Backend: f})
		toPreflight(h)
		h.keys("enter")
		h.await("plan", func() bool { return !h.m.planTask.running })
		h.wantView("Press esc to go back and change the Istio overlay.")
		h.keys("esc")
		h.wantScreen(screenOverlay)
		h.wantView("the overlay is for another Istio")
	})
	t.Run("an error no answer fixes", func(t *testing.T) {
		f := newFake()
		f.planErr = errors.New("the API server timed out")
		h := newHarness(t, Options{Backend: f})
		toPreflight(h)
		h.keys("enter")
		h.await("plan", func() bool { return !h.m.planTask.running })
		h.wantView("Cannot make the plan: the API server timed out. Press r to retry.", "r retry")
		h.keys("esc")
		h.wantScreen(screenPreflight)
	})
}

// TestUnlistedPhaseRows checks that a phase the Backend did not list gets
// a row when it starts, before the phases still pending (run order), and
// that other events of an unlisted phase add none.
func TestUnlistedPhaseRows(t *testing.T) {
	m := New(Options{Backend: newFake(), Now: fixedNow, Mode: ModeUpgrade})
	rs := &runState{vp: viewport.New(0, 0)}
	for _, p := range m.phases {
		rs.phases = append(rs.phases, &phaseState{name: p.Name, title: p.Title, status: phasePending})
	}
	m.run = rs
	rows := func() []string {
		var out []string
		for _, p := range rs.phases {
			out = append(out, p.name)
		}
		return out
	}
	want := []string{"istio", "knative-serving", "knative-eventing", "triggermesh", "verify"}
	if !slices.Equal(rows(), want) {
		t.Fatalf("an upgrade's rows %q, want %q", rows(), want)
	}
	rs.apply(m, Event{Type: EventInfo, Phase: "preflight", Message: "verifying bundle x.bundle"})
	rs.apply(m, Event{Type: EventCheck, Phase: "cluster", Message: "pass nodes-ready"})
	if !slices.Equal(rows(), want) {
		t.Fatalf("rows %q after events of unlisted phases, want %q", rows(), want)
	}
	rs.apply(m, Event{Type: EventPhaseStart, Phase: "images"})
	rs.apply(m, Event{Type: EventPhaseDone, Phase: "images"})
	rs.apply(m, Event{Type: EventPhaseStart, Phase: "istio"})
	rs.apply(m, Event{Type: EventPhaseStart, Phase: "extra"})
	want = []string{"images", "istio", "extra", "knative-serving", "knative-eventing", "triggermesh", "verify"}
	if !slices.Equal(rows(), want) {
		t.Fatalf("rows %q, want %q", rows(), want)
	}
}

// TestInstalledOffersUpgrade checks the welcome screen on a cluster that
// runs a release: what is installed is shown; an older release than the
// one to install makes the wizard an upgrade of that cluster to it, with
// the upgrade's phases, the cluster and the installed components
// preselected; the same release stays an install (it converges).
func TestInstalledOffersUpgrade(t *testing.T) {
	installed := func(rel string) *Installation {
		return &Installation{Where: `context "kind-dev"`, Target: TargetExisting, Context: "kind-dev", Release: rel, Healthy: true,
			Components: []Component{{Name: "istio", Version: "1.29.2"}, {Name: "knative-serving", Version: "1.22.1"},
				{Name: "net-istio", Version: "1.22.1"}, {Name: "knative-eventing", Version: "1.22.1"}}}
	}
	t.Run("older release", func(t *testing.T) {
		f := newFake()
		f.installed = installed("1.22")
		f.block = true
		h := newHarness(t, Options{Backend: f})
		h.await("the installed release", func() bool { return h.m.instApplied })
		h.wantView("tmbox upgrade · step 1 of 10", `Release 1.22 is installed on context "kind-dev" (healthy):`,
			"knative-serving   1.22.1", "This wizard upgrades it to release 1.23", "Each hop runs these phases, in order:",
			"istio → knative-serving → knative-eventing → triggermesh → verify")
		for _, no := range []string{"Docker or Podman", "creates a kind cluster", "preflight →"} {
			if strings.Contains(h.view(), no) {
				t.Errorf("the upgrade's welcome says %q:\n%s", no, h.view())
			}
		}
		if len(f.instAsked) != 1 || f.instAsked[0].Mode != ModeInstall {
			t.Fatalf("Installed asked %+v", f.instAsked)
		}
		h.keys("enter")
		h.wantView("Which cluster should tmbox upgrade?")
		if h.m.targetCursor != 1 {
			t.Fatalf("target cursor %d, want the installed cluster's context", h.m.targetCursor)
		}
		h.keys("enter")
		h.wantView("Which release should tmbox upgrade to?")
		h.keys("enter")
		h.wantView("[ ] triggermesh ", "[x] knative-eventing")
		toConfirmFrom(h, screenComponents)
		h.wantView("Ready to upgrade.", "enter upgrade")
		h.keys("enter")
		h.await("the run", func() bool { return h.m.run != nil && h.m.run.waiting != "" })
		var rows []string
		for _, p := range h.m.run.phases {
			rows = append(rows, p.name)
		}
		if want := []string{"istio", "knative-serving", "knative-eventing", "triggermesh", "verify"}; !slices.Equal(rows, want) {
			t.Fatalf("progress rows %q, want the upgrade's %q", rows, want)
		}
		a := f.ran[0]
		if a.Mode != ModeUpgrade || a.Target != TargetExisting || a.Context != "kind-dev" || a.Release != "1.23" ||
			!slices.Equal(a.Components, []string{"istio", "knative-serving", "net-istio", "knative-eventing"}) {
			t.Fatalf("Run got %+v", a)
		}
	})
	t.Run("the release to install", func(t *testing.T) {
		f := newFake()
		f.installed = installed("1.23")
		h := newHarness(t, Options{Backend: f})
		h.await("the installed release", func() bool { return h.m.instApplied })
		h.wantView("tmbox install · step 1 of 10", `Release 1.23 is installed on context "kind-dev"`, "Installing it again converges it",
			"This wizard installs", "preflight → cluster")
		if h.m.mode() != ModeInstall {
			t.Fatal("the wizard switched to an upgrade")
		}
	})
	t.Run("an upgrade", func(t *testing.T) {
		f := newFake()
		f.installed = installed("1.21")
		h := newHarness(t, Options{Backend: f, Mode: ModeUpgrade})
		h.await("the installed release", func() bool { return h.m.instApplied })
		h.wantView("tmbox upgrade · step 1 of 10", `Release 1.21 is installed on context "kind-dev"`, "upgrades the Istio, Knative and TriggerMesh stack")
	})
	t.Run("nothing installed", func(t *testing.T) {
		h := newHarness(t, Options{Backend: newFake()})
		h.await("the installed release", func() bool { return h.m.instApplied })
		if h.m.mode() != ModeInstall || strings.Contains(h.view(), "is installed") {
			t.Fatalf("mode %s:\n%s", h.m.mode(), h.view())
		}
	})
	t.Run("found after leaving the welcome screen", func(t *testing.T) {
		f := newFake()
		f.installed = installed("1.21")
		f.instGate = make(chan struct{})
		h := newHarness(t, Options{Backend: f})
		h.keys("enter") // before the answer
		h.wantScreen(screenTarget)
		close(f.instGate)
		h.await("the answer", func() bool { return h.m.instDone })
		if h.m.mode() != ModeInstall {
			t.Fatal("the wizard switched mode behind the user's back")
		}
	})
}

// toConfirmFrom walks from step s to the confirm step with enter.
func toConfirmFrom(h *harness, s screen) {
	h.t.Helper()
	for ; s < screenPreflight; s++ {
		h.keys("enter")
	}
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.keys("enter")
	h.await("plan", func() bool { return !h.m.planTask.running })
	h.keys("enter")
	h.wantScreen(screenConfirm)
}
