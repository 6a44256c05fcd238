package tui

import (
	"bytes"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
)

// golden runs the wizard in a tea.Program at 100x30 without colours, sends
// keys (waiting after each step for text to appear), then compares the final
// screen with testdata/TestGolden/<name>.golden (go test -update rewrites it).
type goldenStep struct {
	keys []string // keys; "text:..." types text
	wait string   // text to wait for on the screen afterwards
}

func runGolden(t *testing.T, opts Options, steps []goldenStep) *Model {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	m := New(opts)
	t.Cleanup(m.shutdown)
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 30))
	for _, s := range steps {
		for _, k := range s.keys {
			if text, ok := strings.CutPrefix(k, "text:"); ok {
				tm.Type(text)
			} else {
				tm.Send(key(k))
			}
		}
		if s.wait != "" {
			teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
				return bytes.Contains([]byte(ansi.Strip(string(b))), []byte(s.wait))
			}, teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
		}
	}
	if err := tm.Quit(); err != nil {
		t.Fatal(err)
	}
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	teatest.RequireEqualOutput(t, []byte(fm.View()+"\n"))
	return fm
}

func steps(pairs ...string) []goldenStep {
	var out []goldenStep
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, goldenStep{keys: strings.Fields(pairs[i]), wait: pairs[i+1]})
	}
	return out
}

// Walks from the welcome screen (kind target, cluster "dev").
const (
	toTarget     = "enter"
	toRelease    = "up up ctrl+u text:dev enter"
	toComponents = "enter"
)

func TestGolden(t *testing.T) {
	block := func() *fakeBackend { f := newFake(); f.block = true; return f }
	failPF := func() *fakeBackend { f := newFake(); f.checks = failingChecks(); return f }
	failRun := func() *fakeBackend { f := newFake(); f.failRun = true; return f }
	held := func() *fakeBackend {
		f := block()
		f.release = make(chan struct{})
		return f
	}
	upTo := func(extra ...string) []goldenStep {
		base := []string{
			toTarget, "step 2 of 10",
			toRelease, "step 3 of 10",
			toComponents, "step 4 of 10",
			"enter", "step 5 of 10",
			"enter", "step 6 of 10",
			"enter", "step 7 of 10",
			"enter", "Press enter to see the plan",
			"enter", "will run, in order",
			"enter", "step 10 of 10",
		}
		return steps(append(base, extra...)...)
	}
	toSettingsStep := func(extra ...string) []goldenStep {
		return steps(append([]string{toTarget, "step 2", toRelease, "step 3", toComponents, "step 4", "enter", "step 5", "enter", "step 6", "enter", "step 7"}, extra...)...)
	}
	installed := func() *fakeBackend {
		f := newFake()
		f.installed = &Installation{Where: `context "prod"`, Target: TargetExisting, Context: "prod", Release: "1.22", Healthy: true,
			Components: []Component{{Name: "istio", Version: "1.29.2"}, {Name: "knative-serving", Version: "1.22.1"},
				{Name: "net-istio", Version: "1.22.1"}, {Name: "knative-eventing", Version: "1.22.1"}, {Name: "triggermesh", Version: "1.27.1"}}}
		return f
	}
	fixable := func() *fakeBackend { f := newFake(); f.checks = fixableChecks(); return f }
	offline := func() *fakeBackend {
		f := newFake()
		f.planErr = &FieldError{Field: FieldMirror, Message: "tmbox cannot download the release's manifests: give a mirror directory (air-gap step) or a bundle"}
		return f
	}
	filled := Answers{Domain: "apps.example.com", TLSCert: "testdata/tls.crt", TLSKey: "testdata/tls.key", TLSRedirectHTTP: true,
		PullSecret: "testdata/pull-secret.json", HAReplicas: "3"}
	cases := []struct {
		name    string
		plain   bool
		mode    Mode
		initial Answers
		fake    func() *fakeBackend
		steps   []goldenStep
	}{
		{name: "welcome", plain: true, steps: steps("", "step 1 of 10")},
		{name: "welcome-fancy", steps: steps("", "step 1 of 10")},
		{name: "welcome-upgrade", plain: true, mode: ModeUpgrade, steps: steps("", "step 1 of 10")},
		{name: "target", plain: true, steps: steps(toTarget, "context prod")},
		{name: "target-kind-invalid", plain: true, steps: steps(toTarget, "context prod", "up up ctrl+u text:Dev_1 enter", "cluster name")},
		{name: "release", plain: true, steps: steps(toTarget, "step 2", toRelease, "pins:")},
		{name: "components", plain: true, steps: steps(toTarget, "step 2", toRelease, "step 3", toComponents, "step 4")},
		{name: "components-fancy", steps: steps(toTarget, "step 2", toRelease, "step 3", toComponents, "step 4")},
		{name: "components-invalid", plain: true, steps: steps(toTarget, "step 2", toRelease, "step 3", toComponents, "step 4", "down space enter", "needs triggermesh:")},
		{name: "airgap-invalid", plain: true, steps: steps(toTarget, "step 2", "up enter", "step 3", toComponents, "step 4", "enter", "step 5",
			"text:testdata/test.bundle enter", "needs a registry")},
		{name: "overlay", plain: true, steps: steps(toTarget, "step 2", toRelease, "step 3", toComponents, "step 4", "enter", "step 5", "enter", "step 6", "text:testdata/overlay.yaml", "overlay.yaml")},
		{name: "settings", plain: true, steps: toSettingsStep()},
		{name: "settings-fancy", steps: toSettingsStep("down down down space", "[x]")},
		{name: "settings-existing", plain: true, steps: steps(toTarget, "step 2", "enter", "step 3", toComponents, "step 4", "enter", "step 5", "enter", "step 6", "enter", "step 7")},
		{name: "settings-upgrade", plain: true, mode: ModeUpgrade, steps: toSettingsStep()},
		{name: "settings-filled", plain: true, initial: filled, steps: toSettingsStep()},
		{name: "settings-invalid", plain: true, steps: toSettingsStep("text:apps.example.com down text:testdata/tls.crt tab tab tab tab text:x enter", "not a whole number")},
		{name: "preflight", plain: true, steps: upTo()[:7]},
		{name: "preflight-fancy", steps: upTo()[:7]},
		{name: "preflight-failed", plain: true, fake: failPF, steps: append(upTo()[:6], steps("enter", "Preflight failed", "enter", "1 preflight check failed")...)},
		{name: "plan", plain: true, steps: upTo()[:8]},
		{name: "confirm", plain: true, steps: upTo()},
		{name: "confirm-settings", plain: true, initial: filled, steps: upTo()},
		{name: "confirm-upgrade", plain: true, mode: ModeUpgrade, steps: upTo()},
		{name: "confirm-save", plain: true, steps: upTo("s", "Save to")},
		{name: "progress", plain: true, fake: block, steps: upTo("enter", "waiting:")},
		{name: "progress-log", plain: true, fake: block, steps: upTo("enter", "waiting:", "l", "events")},
		{name: "progress-confirm", plain: true, fake: block, steps: upTo("enter", "waiting:", "ctrl+c", "y/n")},
		{name: "progress-cancelling", plain: true, fake: held, steps: upTo("enter", "waiting:", "ctrl+c y", "safe point")},
		{name: "progress-cancelled", plain: true, fake: block, steps: upTo("enter", "waiting:", "ctrl+c y", "re-run to converge")},
		{name: "progress-upgrade", plain: true, mode: ModeUpgrade, fake: block, steps: upTo("enter", "waiting:")},
		{name: "welcome-installed", plain: true, fake: installed, steps: steps("", "upgrades it to release 1.23")},
		{name: "plan-upgrade-installed", plain: true, fake: installed, steps: steps("", "upgrades it to release 1.23", "enter", "step 2 of 10", "enter", "step 3", "enter", "step 4",
			"enter", "step 5", "enter", "step 6", "enter", "step 7", "enter", "Press enter to see the plan", "enter", "will run, in order")},
		{name: "overlay-release", plain: true, steps: steps(toTarget, "step 2", toRelease, "step 3", "up up enter", "step 4", "enter", "step 5", "enter", "step 6",
			"text:testdata/overlay.yaml enter", "compiled-in")},
		{name: "preflight-fix", plain: true, fake: fixable, steps: append(upTo()[:6], steps("enter", "Preflight failed", "f", "y/n")...)},
		{name: "preflight-ignored", plain: true, fake: failPF, steps: append(upTo()[:6], steps("enter", "Preflight failed", "i", "ignored for this run")...)},
		{name: "plan-offline", plain: true, fake: offline, steps: append(upTo()[:7], steps("enter", "mirror directory.")...)},
		{name: "confirm-mirror", plain: true, initial: Answers{Mirror: "testdata"}, steps: upTo()},
		{name: "summary", plain: true, steps: upTo("enter", "Next")},
		{name: "summary-fancy", steps: upTo("enter", "Next")},
		{name: "summary-error", plain: true, fake: failRun, steps: upTo("enter", "resumes")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mk := newFake
			if c.fake != nil {
				mk = c.fake
			}
			f := mk()
			runGolden(t, Options{Backend: f, Plain: c.plain, Mode: c.mode, Initial: c.initial, LogFile: "/home/me/.local/state/tmbox/logs/tmbox-20260102-030520.log"}, c.steps)
		})
	}
}

// TestWalk goes from welcome to summary by keystrokes in a real program and
// checks the answers and the summary.
func TestWalk(t *testing.T) {
	f := newFake()
	m := New(Options{Backend: f, Now: fixedNow, LogFile: "/tmp/wizard.log"})
	t.Cleanup(m.shutdown)
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 30))
	wait := func(s string) {
		t.Helper()
		teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains([]byte(ansi.Strip(string(b))), []byte(s)) },
			teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
	}
	send := func(keys ...string) {
		for _, k := range keys {
			tm.Send(key(k))
		}
	}
	wait("step 1 of 10")
	send("enter")
	wait("context prod (current)")
	send("up", "up", "ctrl+u")
	tm.Type("dev")
	send("enter")
	wait("Release 1.23 pins")
	send("up", "enter")
	wait("Which components of release 1.22")
	send("down", "down", "space", "enter")
	wait("Air gap")
	tm.Type("testdata/test.bundle")
	send("enter")
	wait("Istio overlay (optional)")
	tm.Type("testdata/overlay.yaml")
	send("enter")
	wait("Settings (optional)")
	tm.Type("apps.example.com")
	send("down")
	tm.Type("testdata/tls.crt")
	send("down")
	tm.Type("testdata/tls.key")
	send("down", "space", "down")
	tm.Type("testdata/pull-secret.json")
	send("down")
	tm.Type("3")
	send("enter")
	wait("Press enter to see the plan")
	send("enter")
	wait("The install will run")
	send("enter")
	wait("Ready to install")
	send("enter")
	wait("Next")
	send("enter")
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second)).(*Model)
	a, s, err := fm.Result()
	if err != nil {
		t.Fatal(err)
	}
	want := Answers{
		Target: TargetKind, ClusterName: "dev", Release: "1.22",
		Components: []string{"istio", "knative-serving", "net-istio", "knative-eventing", "triggermesh"},
		Bundle:     "testdata/test.bundle", IstioOverlay: "testdata/overlay.yaml",
		Domain: "apps.example.com", TLSCert: "testdata/tls.crt", TLSKey: "testdata/tls.key", TLSRedirectHTTP: true,
		PullSecret: "testdata/pull-secret.json", HAReplicas: "3",
	}
	if got := a; got.Target != want.Target || got.ClusterName != want.ClusterName || got.Release != want.Release ||
		strings.Join(got.Components, ",") != strings.Join(want.Components, ",") || got.Bundle != want.Bundle ||
		got.IstioOverlay != want.IstioOverlay || got.Context != "" || got.Registry != "" || got.BundleKey != "" ||
		got.Domain != want.Domain || got.TLSCert != want.TLSCert || got.TLSKey != want.TLSKey || got.TLSRedirectHTTP != want.TLSRedirectHTTP ||
		got.PullSecret != want.PullSecret || got.HAReplicas != want.HAReplicas {
		t.Fatalf("answers\n got %+v\nwant %+v", got, want)
	}
	if len(f.ran) != 1 || f.ran[0].ClusterName != "dev" || f.ran[0].Domain != "apps.example.com" {
		t.Fatalf("Run got %+v", f.ran)
	}
	ws := testSummary()
	if s.Release != ws.Release || s.Took != ws.Took || s.Ingress != ws.Ingress || len(s.Versions) != len(ws.Versions) ||
		s.LogFile != "/tmp/wizard.log" || strings.Join(s.Next, ";") != strings.Join(ws.Next, ";") {
		t.Fatalf("summary %+v", s)
	}
	_ = tea.Quit
}
