package tui

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

func TestWelcomeQuits(t *testing.T) {
	for _, k := range []string{"q", "esc", "ctrl+c"} {
		h := newHarness(t, Options{Backend: newFake()})
		h.wantView("Istio", "Knative Serving", "TriggerMesh", "preflight → cluster → images", "4 CPUs", "A few minutes", "enter continue")
		h.keys(k)
		if !h.quit {
			t.Fatalf("%s did not quit", k)
		}
		if _, _, err := h.m.Result(); !errors.Is(err, ErrAborted) {
			t.Errorf("%s: err = %v, want ErrAborted", k, err)
		}
	}
}

func TestCtrlCBeforeProgressAborts(t *testing.T) {
	h := newHarness(t, Options{Backend: newFake()})
	h.keys("enter", "enter", "enter")
	h.wantScreen(screenComponents)
	h.keys("ctrl+c")
	if _, _, err := h.m.Result(); !h.quit || !errors.Is(err, ErrAborted) {
		t.Fatalf("quit %v, err %v", h.quit, err)
	}
}

func TestBackAndForth(t *testing.T) {
	h := newHarness(t, Options{Backend: newFake(), Plain: true})
	h.keys("enter")
	h.wantScreen(screenTarget)
	h.keys("esc")
	h.wantScreen(screenWelcome)
	h.keys("tab", "tab")
	h.wantScreen(screenRelease)
	h.keys("shift+tab")
	h.wantScreen(screenTarget)
	h.keys("enter", "enter", "enter")
	h.wantScreen(screenAirGap)
	// tab walks the fields, then leaves the screen
	h.keys("tab", "tab")
	if h.m.airFocus != fieldRegistry {
		t.Fatalf("air-gap focus %d", h.m.airFocus)
	}
	h.keys("shift+tab", "shift+tab", "shift+tab")
	h.wantScreen(screenComponents)
	h.keys("enter", "enter")
	h.wantScreen(screenOverlay)
	h.keys("enter")
	h.wantScreen(screenSettings)
	// tab walks the rows, then leaves the screen; shift+tab before the
	// first row goes back
	h.keys("tab", "tab", "tab", "tab", "tab")
	if h.m.setFocus != setHAReplicas {
		t.Fatalf("settings focus %d", h.m.setFocus)
	}
	h.keys("up", "up", "up", "up", "up", "up", "shift+tab")
	h.wantScreen(screenOverlay)
	h.keys("enter", "enter")
	h.wantScreen(screenPreflight)
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.keys("esc")
	h.wantScreen(screenSettings)
	h.keys("enter")
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.keys("enter")
	h.wantScreen(screenPlan)
	h.await("plan", func() bool { return !h.m.planTask.running })
	h.keys("esc")
	h.wantScreen(screenPreflight)
	h.keys("enter")
	h.await("plan", func() bool { return !h.m.planTask.running })
	h.keys("enter")
	h.wantScreen(screenConfirm)
	h.keys("esc")
	h.wantScreen(screenPlan)
}

func TestTarget(t *testing.T) {
	h := newHarness(t, Options{Backend: newFake()})
	h.keys("enter")
	h.wantView("create a kind cluster on this host", "context kind-dev", "context prod (current)")
	if h.m.targetCursor != 2 {
		t.Fatalf("cursor %d, want the current context", h.m.targetCursor)
	}
	h.keys("enter")
	if h.m.a.Target != TargetExisting || h.m.a.Context != "prod" || h.m.a.ClusterName != "" {
		t.Fatalf("answers %+v", h.m.a)
	}

	// Initial answers preselect kind; the name is validated.
	h = newHarness(t, Options{Backend: newFake(), Initial: Answers{Target: TargetKind}})
	h.keys("enter")
	h.wantView("Cluster name: tmbox")
	for _, bad := range []string{"Bad_Name", strings.Repeat("a", 50), "-dev"} {
		h.keys("ctrl+u")
		h.typ(bad)
		h.keys("enter")
		h.wantScreen(screenTarget)
		h.wantView("cluster name")
	}
	h.keys("ctrl+u")
	h.typ("dev")
	h.keys("enter")
	h.wantScreen(screenRelease)
	if h.m.a.Target != TargetKind || h.m.a.ClusterName != "dev" || h.m.a.Context != "" {
		t.Fatalf("answers %+v", h.m.a)
	}

	// No kubeconfig: only kind.
	f := newFake()
	f.contexts, f.current, f.ctxErr = nil, "", errors.New("no kubeconfig at ~/.kube/config")
	h = newHarness(t, Options{Backend: f})
	h.keys("enter", "down", "down")
	h.wantView("no kubeconfig contexts: no kubeconfig at ~/.kube/config")
	h.keys("enter")
	if h.m.a.Target != TargetKind || h.m.a.ClusterName != "tmbox" {
		t.Fatalf("answers %+v", h.m.a)
	}
}

func TestRelease(t *testing.T) {
	h := newHarness(t, Options{Backend: newFake()})
	h.keys("enter", "enter")
	h.wantScreen(screenRelease)
	h.wantView("1.21   Kubernetes >= 1.32, < 1.35", "1.23   Kubernetes >= 1.33, < 1.36   (latest)",
		"Release 1.23 pins:", "istio             1.30.3", "triggermesh-core  1.5.3")
	h.keys("up")
	h.wantView("Release 1.22 pins:", "istio             1.29.2")
	h.keys("enter")
	if h.m.a.Release != "1.22" {
		t.Fatalf("release %q", h.m.a.Release)
	}

	h = newHarness(t, Options{Backend: newFake(), Initial: Answers{Release: "1.21"}})
	h.keys("enter", "enter", "enter")
	if h.m.a.Release != "1.21" {
		t.Fatalf("release %q", h.m.a.Release)
	}

	f := newFake()
	f.relErr = errors.New("catalog: bad yaml")
	h = newHarness(t, Options{Backend: f})
	h.keys("enter", "enter", "enter")
	h.wantScreen(screenRelease)
	h.wantView("cannot list the releases: catalog: bad yaml")
}

func TestComponentsCoreNeedsTriggerMesh(t *testing.T) {
	h := newHarness(t, Options{Backend: newFake()})
	h.keys("enter", "enter", "enter")
	h.wantScreen(screenComponents)
	h.wantView("[x] istio", "required", "[x] knative-eventing", "[x] triggermesh-core")
	h.keys("down", "space")
	h.wantView("[ ] triggermesh ")
	h.keys("enter")
	h.wantScreen(screenComponents)
	h.wantView("triggermesh-core needs triggermesh: select triggermesh")
	h.keys("down", "space", "enter")
	h.wantScreen(screenAirGap)
	want := []string{"istio", "knative-serving", "net-istio", "knative-eventing"}
	if !slices.Equal(h.m.a.Components, want) {
		t.Fatalf("components %q, want %q", h.m.a.Components, want)
	}

	// Initial components are preselected; required ones are always in.
	h = newHarness(t, Options{Backend: newFake(), Initial: Answers{Components: []string{"triggermesh"}}})
	h.keys("enter", "enter", "enter", "enter")
	want = []string{"istio", "knative-serving", "net-istio", "triggermesh"}
	if !slices.Equal(h.m.a.Components, want) {
		t.Fatalf("components %q, want %q", h.m.a.Components, want)
	}
}

func touch(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAirGapValidation(t *testing.T) {
	bundle, pub := touch(t, "tmbox.bundle"), touch(t, "tmbox.pub")
	cases := []struct {
		name                  string
		target                int // target cursor: 0 kind, 2 prod
		bundle, key, registry string
		want                  string
	}{
		{"registry without bundle", 0, "", "", "reg.corp:5000/tmbox", "a registry needs a bundle"},
		{"bad registry", 0, bundle, "", "https://reg.corp", "without a scheme"},
		{"bad port", 0, bundle, "", "reg.corp:99999", "port"},
		{"existing needs registry", 2, bundle, "", "", "a bundle into an existing cluster needs a registry"},
		{"missing bundle", 0, "/nonexistent/x.bundle", "", "", "bundle /nonexistent/x.bundle does not exist"},
		{"key without bundle", 0, "", pub, "", "a bundle key needs a bundle"},
		{"ok kind", 0, bundle, pub, "", ""},
		{"ok existing", 2, bundle, "", "reg.corp:5000/tmbox", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{Backend: newFake()})
			h.keys("enter")
			h.m.targetCursor = c.target
			h.keys("enter", "enter", "enter")
			h.wantScreen(screenAirGap)
			h.typ(c.bundle)
			h.keys("down")
			h.typ(c.key)
			h.keys("down")
			h.typ(c.registry)
			h.keys("enter")
			if c.want != "" {
				h.wantScreen(screenAirGap)
				h.wantView(c.want)
				return
			}
			h.wantScreen(screenOverlay)
			if h.m.a.Bundle != c.bundle || h.m.a.BundleKey != c.key || h.m.a.Registry != c.registry {
				t.Fatalf("answers %+v", h.m.a)
			}
		})
	}
}

func TestOverlay(t *testing.T) {
	h := newHarness(t, Options{Backend: newFake()})
	h.keys("enter", "enter", "enter", "enter", "enter")
	h.wantScreen(screenOverlay)
	h.typ("/nonexistent/overlay.yaml")
	h.keys("enter")
	h.wantScreen(screenOverlay)
	h.wantView("Istio overlay /nonexistent/overlay.yaml does not exist")
	ov := touch(t, "overlay.yaml")
	h.keys("ctrl+u")
	h.typ(ov)
	h.keys("enter")
	h.wantScreen(screenSettings)
	if h.m.a.IstioOverlay != ov {
		t.Fatalf("overlay %q", h.m.a.IstioOverlay)
	}
}

// toSettings walks to the settings step with the defaults (target: the
// current context, cursor 2; 0 is kind).
func toSettings(h *harness, target int) {
	h.t.Helper()
	h.keys("enter")
	h.m.targetCursor = target
	h.keys("enter", "enter", "enter", "enter", "enter")
	h.wantScreen(screenSettings)
}

func TestSettings(t *testing.T) {
	cert, key, pull := touch(t, "tls.crt"), touch(t, "tls.key"), touch(t, "config.json")
	type row struct {
		domain, cert, key string
		redirect          bool
		pull, ha          string
	}
	cases := []struct {
		name   string
		target int // 0 kind, 2 prod
		in     row
		want   string // an error the step shows; "" to leave it
	}{
		{"empty", 2, row{}, ""},
		{"everything", 0, row{"apps.example.com", cert, key, true, pull, "3"}, ""},
		{"ha off", 2, row{ha: "0"}, ""},
		{"bad domain", 2, row{domain: "not a domain"}, `domain "not a domain" is not a DNS domain`},
		{"cert without key", 2, row{cert: cert}, "a TLS certificate needs its key"},
		{"key without cert", 2, row{key: key}, "a TLS key needs its certificate"},
		{"redirect without cert", 2, row{redirect: true}, "redirecting HTTP to HTTPS needs a TLS certificate"},
		{"missing cert", 2, row{cert: "/nonexistent/tls.crt", key: key}, "TLS certificate /nonexistent/tls.crt does not exist"},
		{"missing pull secret", 0, row{pull: "/nonexistent/config.json"}, "pull secret /nonexistent/config.json does not exist"},
		{"ha not a number", 2, row{ha: "x"}, `HA replicas "x" is not a whole number`},
		{"ha negative", 2, row{ha: "-1"}, "HA replicas -1: want 1 to 100"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{Backend: newFake()})
			toSettings(h, c.target)
			h.typ(c.in.domain)
			h.keys("down")
			h.typ(c.in.cert)
			h.keys("tab")
			h.typ(c.in.key)
			h.keys("down")
			if c.in.redirect {
				h.keys("space")
			}
			h.keys("x", "x", "down") // x toggles too: twice is no change
			h.typ(c.in.pull)
			h.keys("tab")
			h.typ(c.in.ha)
			h.keys("enter")
			if c.want != "" {
				h.wantScreen(screenSettings)
				h.wantView(c.want)
				return
			}
			h.wantScreen(screenPreflight)
			a := h.m.a
			got := row{a.Domain, a.TLSCert, a.TLSKey, a.TLSRedirectHTTP, a.PullSecret, a.HAReplicas}
			if got != c.in {
				t.Fatalf("answers %+v, want %+v", got, c.in)
			}
		})
	}
}

// TestSettingsDefaults checks what an empty field means, as each step
// shows it: the Backend's default domain on kind (the wizard computes
// none), none elsewhere, the installed settings in upgrade mode.
func TestSettingsDefaults(t *testing.T) {
	cases := []struct {
		name     string
		mode     Mode
		target   int
		settings []string // on the settings step
		confirm  []string // on the confirm step
	}{
		{"kind", ModeInstall, 0,
			[]string{"Domain:        127.0.0.1.sslip.io", "On this kind cluster an empty domain is 127.0.0.1.sslip.io: LISTEN-ADDRESS.sslip.io", "TLS cert file: none", "[ ] redirect HTTP to HTTPS", "HA replicas:   0 (off)"},
			[]string{"Domain         127.0.0.1.sslip.io (the default)", "TLS            none (HTTP only)", "HA replicas    off"}},
		{"existing", ModeInstall, 2,
			[]string{"Domain:        none", "Without a domain, functions are reachable only inside the cluster."},
			[]string{"Domain         none: functions are reachable only inside the cluster"}},
		{"upgrade", ModeUpgrade, 2,
			[]string{"leave a field empty to keep the installed setting", "An empty domain keeps the installed one.", "Domain:        keep the installed one", "Pull secret:   keep the installed one", "HA replicas:   keep the installed setting"},
			[]string{"Domain         keep the installed one", "TLS            keep the installed one", "Pull secret    keep the installed one", "HA replicas    keep the installed setting"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, Options{Backend: newFake(), Mode: c.mode})
			toSettings(h, c.target)
			h.wantView(c.settings...)
			h.keys("enter")
			h.await("preflight", func() bool { return !h.m.pf.running })
			h.keys("enter")
			h.await("plan", func() bool { return !h.m.planTask.running })
			h.keys("enter")
			h.wantScreen(screenConfirm)
			h.wantView(c.confirm...)
		})
	}
}

// TestSettingsInitial checks that initial answers prefill the settings
// step and reach the confirm step.
func TestSettingsInitial(t *testing.T) {
	cert, key, pull := touch(t, "tls.crt"), touch(t, "tls.key"), touch(t, "config.json")
	init := Answers{Domain: "apps.example.com", TLSCert: cert, TLSKey: key, TLSRedirectHTTP: true, PullSecret: pull, HAReplicas: "2"}
	h := newHarness(t, Options{Backend: newFake(), Initial: init})
	toSettings(h, 2)
	h.wantView("Domain:        apps.example.com", "[x] redirect HTTP to HTTPS", "HA replicas:   2")
	h.keys("enter")
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.keys("enter")
	h.await("plan", func() bool { return !h.m.planTask.running })
	h.keys("enter")
	h.wantView("Domain         apps.example.com", "HTTP redirects to HTTPS", "Pull secret    "+pull, "HA replicas    2 replicas of each control plane")
	a := h.m.a
	if a.Domain != init.Domain || a.TLSCert != cert || a.TLSKey != key || !a.TLSRedirectHTTP || a.PullSecret != pull || a.HAReplicas != "2" {
		t.Fatalf("answers %+v", a)
	}
}

func TestSummaryFunctions(t *testing.T) {
	cases := []struct {
		name, functions, want string
	}{
		{"domain", "https://{name}.{namespace}.apps.example.com", "Functions  https://{name}.{namespace}.apps.example.com"},
		{"no domain", "", "Functions  reachable only inside the cluster: no domain is set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := New(Options{Backend: newFake(), Now: fixedNow})
			m.summary = testSummary()
			m.summary.Functions = c.functions
			m.screen = screenSummary
			if v := ansi.Strip(m.View()); !strings.Contains(v, c.want) {
				t.Fatalf("summary lacks %q:\n%s", c.want, v)
			}
		})
	}
}

func TestPreflightFailureBlocks(t *testing.T) {
	f := newFake()
	f.checks = failingChecks()
	h := newHarness(t, Options{Backend: f})
	h.keys("enter", "enter", "enter", "enter", "enter", "enter", "enter")
	h.wantScreen(screenPreflight)
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.wantView("container-engine", "daemon does not answer", "fix: start the daemon", "fix: give the host",
		"3 passed, 1 warning, 1 failed, 1 skipped", "Preflight failed")
	h.keys("enter")
	h.wantScreen(screenPreflight)
	h.wantView("1 preflight check failed: fix it and press r to re-run the checks, or press i to ignore it")

	f.setChecks(passingChecks())
	h.keys("r")
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.wantView("Press enter to see the plan")
	h.keys("enter")
	h.wantScreen(screenPlan)
	if f.pfCalls != 2 {
		t.Errorf("preflight ran %d times", f.pfCalls)
	}
	h.await("plan", func() bool { return !h.m.planTask.running })
	h.wantView("knative-eventing  apply Knative Eventing 1.23.0")

	f = newFake()
	f.pfErr = errors.New("cannot read the catalog")
	h = newHarness(t, Options{Backend: f})
	h.keys("enter", "enter", "enter", "enter", "enter", "enter", "enter")
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.keys("enter")
	h.wantScreen(screenPreflight)
	h.wantView("could not run: cannot read the catalog")
}

// toConfirm walks to the confirm screen with the defaults.
func toConfirm(h *harness) {
	h.t.Helper()
	h.keys("enter", "enter", "enter", "enter", "enter", "enter", "enter")
	h.await("preflight", func() bool { return !h.m.pf.running })
	h.keys("enter")
	h.await("plan", func() bool { return !h.m.planTask.running })
	h.keys("enter")
	h.wantScreen(screenConfirm)
}

func TestConfirmSave(t *testing.T) {
	f := newFake()
	h := newHarness(t, Options{Backend: f})
	toConfirm(h)
	h.wantView(`kubeconfig context "prod"`, "Release        1.23", "triggermesh-core", "no (download from upstream)",
		"Domain         none: functions are reachable only inside the cluster", "TLS            none (HTTP only)",
		"Pull secret    none", "HA replicas    off")
	h.keys("s")
	h.wantView("Save to: tmbox-install.yaml", "enter save")
	h.keys("enter")
	h.wantView("saved the answers to tmbox-install.yaml")
	if a, ok := f.saved["tmbox-install.yaml"]; !ok || a.Context != "prod" {
		t.Fatalf("saved %+v", f.saved)
	}
	f.saveErr = errors.New("permission denied")
	h.keys("s", "ctrl+u")
	h.typ("/etc/x.yaml")
	h.keys("enter")
	h.wantView("could not save the answers: permission denied")
	h.wantScreen(screenConfirm)
	h.keys("s", "esc")
	if h.m.saving {
		t.Fatal("esc did not leave the prompt")
	}
}

func TestProgressCtrlCCancels(t *testing.T) {
	f := newFake()
	f.block = true
	h := newHarness(t, Options{Backend: f, LogFile: "/tmp/tmbox.log"})
	toConfirm(h)
	h.keys("enter")
	h.wantScreen(screenProgress)
	h.await("the istio phase", func() bool { return h.m.run.waiting != "" })
	h.wantView("preflight", "0.4s", "cluster", "42.1s", "skipped", "15.0s", "[", "3/8 phases",
		"waiting: Deployment istio-system/istiod", "ctrl+c cancel")

	h.keys("l")
	h.wantView("log (8 events", "03:04:48 [images] skipped: no bundle")
	h.keys("l")

	h.keys("ctrl+c")
	h.wantView("cancel the install? y/n")
	h.keys("n")
	if h.m.run.confirm || h.m.run.cancelling {
		t.Fatal("n did not dismiss the question")
	}
	select {
	case <-f.runCtx:
		t.Fatal("Run was cancelled on n")
	default:
	}
	h.keys("ctrl+c", "y")
	if err := <-f.runCtx; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run's ctx: %v", err)
	}
	h.await("the end", func() bool { return h.quit })
	_, _, err := h.m.Result()
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want ErrCancelled and context.Canceled", err)
	}
	// One line, whatever Run returned; the screen left behind says the same.
	if err.Error() != "cancelled by the user; re-run to converge" {
		t.Fatalf("err %q", err)
	}
	h.wantView("■ istio             15.0s     cancelled", "cancelled by the user; re-run to converge")
	if v := h.view(); strings.Contains(v, "waiting:") || strings.Contains(v, "ctrl+c cancel") {
		t.Fatalf("the cancelled run's screen still waits:\n%s", v)
	}
}

// TestCancelHidesRunError checks that a run the user cancelled ends with
// ErrCancelled's line alone, not the error Backend.Run returned (a phase
// cut short), and that the phase it cut short is shown cancelled, not
// failed.
func TestCancelHidesRunError(t *testing.T) {
	b := &cancelBackend{fakeBackend: newFake()}
	b.block = true
	h := newHarness(t, Options{Backend: b, Plain: true})
	toConfirm(h)
	h.keys("enter")
	h.await("the istio phase", func() bool { return h.m.run.waiting != "" })
	h.keys("ctrl+c", "y")
	h.await("the end", func() bool { return h.quit })
	_, _, err := h.m.Result()
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) || err.Error() != ErrCancelled.Error() {
		t.Fatalf("err %q", err)
	}
	v := h.view()
	if strings.Contains(v, "not ready") || strings.Contains(v, "rate limiter") || strings.Contains(v, "FAIL") {
		t.Fatalf("the run's error is shown:\n%s", v)
	}
	h.wantView("stop istio", "cancelled")
}

// cancelBackend's Run fails the running phase when it is cancelled, as
// the installer does, with an error that does not wrap context.Canceled.
type cancelBackend struct{ *fakeBackend }

func (c *cancelBackend) Run(ctx context.Context, a Answers, report func(Event)) (Summary, error) {
	rctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-ctx.Done()
		report(Event{Type: EventPhaseFail, Phase: "istio", Duration: 3 * time.Second,
			Error: "not ready: Deployment istio-system/istiod: client rate limiter Wait returned an error: context canceled"})
		cancel()
	}()
	_, _ = c.fakeBackend.Run(rctx, a, report)
	return Summary{}, errors.New("phase istio: not ready: Deployment istio-system/istiod: 0 of 1 available")
}

func TestRunFailureSummary(t *testing.T) {
	f := newFake()
	f.failRun = true
	h := newHarness(t, Options{Backend: f, LogFile: "/tmp/tmbox.log"})
	toConfirm(h)
	h.keys("enter")
	h.await("the summary", func() bool { return h.m.screen == screenSummary })
	h.wantView("tmbox install failed", "ImagePullBackOff", "The istio phase failed after 40.0s", "The log is at /tmp/tmbox.log")
	h.keys("enter")
	if _, _, err := h.m.Result(); !h.quit || err == nil || !strings.Contains(err.Error(), "ImagePullBackOff") {
		t.Fatalf("quit %v err %v", h.quit, err)
	}
}

func TestViewsFitWindow(t *testing.T) {
	for _, size := range [][2]int{{40, 30}, {100, 30}, {60, 16}} {
		for _, plain := range []bool{false, true} {
			for _, block := range []bool{false, true} {
				width, height := size[0], size[1]
				f := newFake()
				f.checks = failingChecks()
				f.block = block
				h := newHarness(t, Options{Backend: f, Plain: plain, LogFile: "/var/log/" + strings.Repeat("very-long-name-", 6) + ".log"})
				h.send(tea.WindowSizeMsg{Width: width, Height: height})
				check := func() {
					t.Helper()
					lines := strings.Split(h.m.View(), "\n")
					if len(lines) > height {
						t.Errorf("%dx%d plain=%v %s: %d lines", width, height, plain, h.m.screen, len(lines))
					}
					for _, l := range lines {
						if w := ansi.StringWidth(l); w > width {
							t.Errorf("%dx%d plain=%v %s: line of %d cells: %q", width, height, plain, h.m.screen, w, ansi.Strip(l))
						}
					}
				}
				check()
				for _, k := range []string{"enter", "down", "enter", "enter", "enter"} {
					h.keys(k)
					check()
				}
				h.typ("/a/very/long/path/to/a/bundle/that/does/not/exist/anywhere/" + strings.Repeat("x", 40))
				h.keys("enter")
				check()
				h.keys("ctrl+u", "enter")
				check()
				h.keys("enter")
				check()
				h.typ("not a domain " + strings.Repeat("y", 80))
				h.keys("enter")
				check()
				h.keys("ctrl+u", "enter")
				h.await("preflight", func() bool { return !h.m.pf.running })
				check()
				f.setChecks(passingChecks())
				h.keys("r")
				h.await("preflight", func() bool { return !h.m.pf.running })
				h.keys("enter")
				h.await("plan", func() bool { return !h.m.planTask.running })
				check()
				h.keys("enter")
				check()
				h.keys("s")
				check()
				h.keys("esc", "enter")
				if block {
					h.await("waiting", func() bool { return h.m.run.waiting != "" })
					check()
					h.keys("l")
					check()
					h.keys("ctrl+c")
					check()
				} else {
					h.await("summary", func() bool { return h.m.screen == screenSummary })
					check()
				}
			}
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestRunReturnsAbortedOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	var out strings.Builder
	_, _, err := Run(ctx, Options{Backend: newFake(), Plain: true}, pr, &syncWriter{b: &out})
	if !errors.Is(err, ErrAborted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestRunWaitsForCancelledRun(t *testing.T) {
	f := newFake()
	f.block = true
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	defer pw.Close()
	// The answers are complete: enter on every screen reaches progress.
	go func() {
		for i := 0; i < int(screenProgress); i++ {
			time.Sleep(150 * time.Millisecond)
			if _, err := pw.Write([]byte("\r")); err != nil {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	var out strings.Builder
	a, _, err := Run(ctx, Options{Backend: f, Plain: true, Initial: Answers{Target: TargetKind, ClusterName: "dev"}}, pr, &syncWriter{b: &out})
	if !errors.Is(err, ErrCancelled) {
		t.Fatalf("err %v; output:\n%s", err, ansi.Strip(out.String()))
	}
	select {
	case err := <-f.runCtx:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run's ctx: %v", err)
		}
	default:
		t.Fatal("Run returned before Backend.Run saw the cancellation")
	}
	if a.ClusterName != "dev" || a.Release != "1.23" {
		t.Fatalf("answers %+v", a)
	}
}
