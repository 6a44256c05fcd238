package tui

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
)

// t0 is the fake backend's clock: every event and duration is fixed.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func fixedNow() time.Time { return t0.Add(75 * time.Second) }

func testReleases() []Release {
	// The versions are the built-in catalog's (tmbox versions).
	rel := func(name, k8s, istio, kn, tm, tmCore string) Release {
		return Release{Name: name, Kubernetes: k8s, Components: []Component{
			{Name: "istio", Version: istio, Required: true},
			{Name: "knative-serving", Version: kn, Required: true},
			{Name: "net-istio", Version: kn, Required: true},
			{Name: "knative-eventing", Version: kn},
			{Name: "triggermesh", Version: tm},
			{Name: "triggermesh-core", Version: tmCore},
		}}
	}
	return []Release{
		rel("1.21", ">= 1.32, < 1.35", "1.28.6", "1.21.2", "1.27.0", "1.27.0"),
		rel("1.22", ">= 1.33, < 1.36", "1.29.2", "1.22.1", "1.27.1", "1.27.1"),
		rel("1.23", ">= 1.33, < 1.36", "1.30.3", "1.23.0", "1.27.0", "1.5.3"),
	}
}

func passingChecks() []Check {
	return []Check{
		{Name: "os-arch", Category: "host", Status: StatusPass, Message: "linux/amd64"},
		{Name: "cpu", Category: "host", Status: StatusPass, Message: "8 CPUs (need 4)"},
		{Name: "memory", Category: "host", Status: StatusWarn, Message: "7.6 GiB of memory, the release wants 8 GiB: pods may stay Pending", Remediation: "give the host (or the engine's VM) more memory"},
		{Name: "container-engine", Category: "host", Status: StatusPass, Message: "docker 28.1.1"},
		{Name: "inotify-limits", Category: "host", Status: StatusPass, Message: "max_user_watches 524288, max_user_instances 512"},
		{Name: "cluster-reachable", Category: "cluster", Status: StatusSkip, Message: "the kind cluster does not exist yet"},
	}
}

func failingChecks() []Check {
	c := passingChecks()
	c[3] = Check{Name: "container-engine", Category: "host", Status: StatusFail,
		Message:     "docker is installed but its daemon does not answer: Cannot connect to the Docker daemon at unix:///var/run/docker.sock",
		Remediation: "start the daemon (sudo systemctl start docker) or join the docker group"}
	return c
}

func testPlan() []PlanLine {
	return []PlanLine{
		{"preflight", "host checks for a kind cluster"},
		{"cluster", `create kind cluster "dev" (kindest/node v1.34.0, pinned by digest)`},
		{"images", "nothing to load: the nodes pull the pinned images"},
		{"istio", "render Istio 1.30.3 with tmbox's Knative profile and apply it"},
		{"knative-serving", "apply Knative Serving 1.23.0 and net-istio 1.23.0"},
		{"knative-eventing", "apply Knative Eventing 1.23.0, the in-memory channel and the MT channel broker"},
		{"triggermesh", "apply TriggerMesh 1.27.0 and triggermesh-core 1.5.3"},
		{"verify", "check that every managed workload runs the pinned images and is ready"},
	}
}

func testSummary() Summary {
	return Summary{
		Release: "1.23",
		Versions: []Component{
			{Name: "istio", Version: "1.30.3"}, {Name: "knative-serving", Version: "1.23.0"},
			{Name: "net-istio", Version: "1.23.0"}, {Name: "knative-eventing", Version: "1.23.0"},
			{Name: "triggermesh", Version: "1.27.0"}, {Name: "triggermesh-core", Version: "1.5.3"},
		},
		Ingress:   "http://127.0.0.1 (ports 80 and 443 of kind cluster dev)",
		Functions: "http://{name}.{namespace}.127.0.0.1.sslip.io",
		Took:      4*time.Minute + 12*time.Second,
		// As cmd/tmbox's summaryNext writes them for kind cluster dev.
		Next: []string{
			"export KUBECONFIG=/home/me/.local/state/tmbox/dev/kubeconfig",
			"tmbox status",
			"kubectl get pods -A | grep -E '^(NAMESPACE|istio-system|knative-serving|knative-eventing|triggermesh) '",
			"tmbox upgrade --to RELEASE   # tmbox versions lists the releases",
		},
	}
}

// runEvents are what the fake Run reports before it returns (or blocks).
func runEvents(fail bool) []Event {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ev := []Event{
		{Time: at(0), Type: EventPhaseStart, Phase: "preflight", Message: "checking the host"},
		{Time: at(0), Type: EventPhaseDone, Phase: "preflight", Duration: 400 * time.Millisecond},
		{Time: at(1), Type: EventPhaseStart, Phase: "cluster", Message: `creating kind cluster "dev"`},
		{Time: at(20), Type: EventInfo, Phase: "cluster", Message: "control plane ready"},
		{Time: at(43), Type: EventPhaseDone, Phase: "cluster", Duration: 42100 * time.Millisecond},
		{Time: at(43), Type: EventPhaseSkip, Phase: "images", Message: "no bundle"},
		{Time: at(60), Type: EventPhaseStart, Phase: "istio", Message: "applying Istio 1.30.3"},
		{Time: at(70), Type: EventWaiting, Phase: "istio", Message: "Deployment istio-system/istiod: pod istiod-5d8f: ContainerCreating"},
	}
	if fail {
		ev = append(ev, Event{Time: at(100), Type: EventPhaseFail, Phase: "istio", Duration: 40 * time.Second,
			Error: "timed out waiting: Deployment istio-system/istiod: ImagePullBackOff"})
		return ev
	}
	ev = append(ev,
		Event{Time: at(100), Type: EventPhaseDone, Phase: "istio", Duration: 40 * time.Second},
		Event{Time: at(100), Type: EventPhaseStart, Phase: "knative-serving"},
		Event{Time: at(160), Type: EventPhaseDone, Phase: "knative-serving", Duration: time.Minute},
		Event{Time: at(160), Type: EventPhaseStart, Phase: "knative-eventing"},
		Event{Time: at(200), Type: EventPhaseDone, Phase: "knative-eventing", Duration: 40 * time.Second},
		Event{Time: at(200), Type: EventPhaseStart, Phase: "triggermesh"},
		Event{Time: at(240), Type: EventPhaseDone, Phase: "triggermesh", Duration: 40 * time.Second},
		Event{Time: at(240), Type: EventPhaseStart, Phase: "verify"},
		Event{Time: at(252), Type: EventPhaseDone, Phase: "verify", Duration: 12 * time.Second},
	)
	return ev
}

// fakeBackend is a deterministic Backend.
type fakeBackend struct {
	mu sync.Mutex

	contexts []string
	current  string
	ctxErr   error
	releases []Release
	relErr   error
	checks   []Check
	pfErr    error
	pfCalls  int
	plan     []PlanLine
	planErr  error
	phases   []Phase
	invalid  []FieldError // Validate returns these too

	installed *Installation // what Installed returns
	instGate  chan struct{} // when set, Installed waits for it
	instAsked []Answers
	fixErr    error
	fixed     []string // the checks Fix was asked to fix

	failRun bool
	block   bool          // Run blocks after its events until ctx is done
	release chan struct{} // when set, a blocked Run also waits for it after ctx is done
	runCtx  chan error    // receives ctx.Err() when a blocked Run sees ctx done
	ran     []Answers
	saved   map[string]Answers
	saveErr error
}

func newFake() *fakeBackend {
	return &fakeBackend{
		contexts: []string{"kind-dev", "prod"},
		current:  "prod",
		releases: testReleases(),
		checks:   passingChecks(),
		plan:     testPlan(),
		phases:   testPhases(),
		runCtx:   make(chan error, 1),
		saved:    map[string]Answers{},
	}
}

func (f *fakeBackend) Contexts() ([]string, string, error) { return f.contexts, f.current, f.ctxErr }
func (f *fakeBackend) Releases() ([]Release, error)        { return f.releases, f.relErr }

// testPhases are the fake's phases: an install's.
func testPhases() []Phase {
	return []Phase{
		{"preflight", "preflight checks"}, {"cluster", "creating the kind cluster"}, {"images", "loading images"},
		{"istio", "installing Istio"}, {"knative-serving", "installing Knative Serving"},
		{"knative-eventing", "installing Knative Eventing"}, {"triggermesh", "installing TriggerMesh"},
		{"verify", "verifying images and health"},
	}
}

// Phases implements Backend: the fake's phases; an upgrade runs the
// component phases and verify (and images first with a bundle).
func (f *fakeBackend) Phases(a Answers) []Phase {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.Mode != ModeUpgrade {
		return f.phases
	}
	var out []Phase
	for _, p := range f.phases {
		if p.Name == "images" && a.Bundle != "" || p.Name != "preflight" && p.Name != "cluster" && p.Name != "images" {
			out = append(out, p)
		}
	}
	return out
}

// Installed implements Backend.
func (f *fakeBackend) Installed(ctx context.Context, a Answers) (*Installation, error) {
	if f.instGate != nil {
		<-f.instGate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.instAsked = append(f.instAsked, a)
	return f.installed, nil
}

// Fix implements Backend: a fixed check passes from then on.
func (f *fakeBackend) Fix(ctx context.Context, a Answers, check string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fixErr != nil {
		return f.fixErr
	}
	f.fixed = append(f.fixed, check)
	return nil
}

// Validate implements Backend with simple rules that give the messages the
// tests look for.
func (f *fakeBackend) Validate(a Answers) []FieldError {
	var out []FieldError
	bad := func(field, format string, args ...any) {
		out = append(out, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if a.Target == TargetKind {
		switch name := a.ClusterName; {
		case len(name) > 49:
			bad(FieldClusterName, "cluster name %q is %d characters long: at most 49", name, len(name))
		case strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-"):
			bad(FieldClusterName, "cluster name %q: use lower-case letters, digits and '-', starting and ending with a letter or digit", name)
		}
	}
	if slices.Contains(a.Components, "triggermesh-core") && !slices.Contains(a.Components, "triggermesh") {
		bad(FieldComponents, "triggermesh-core needs triggermesh: select triggermesh or deselect triggermesh-core")
	}
	file := func(field, what, path string) {
		if _, err := os.Stat(path); err != nil {
			bad(field, "%s %s does not exist", what, path)
		}
	}
	if a.Bundle != "" {
		file(FieldBundle, "bundle", a.Bundle)
	}
	if a.BundleKey != "" {
		if a.Bundle == "" {
			bad(FieldBundleKey, "a bundle key needs a bundle")
		} else {
			file(FieldBundleKey, "bundle key", a.BundleKey)
		}
	}
	if r := a.Registry; r != "" {
		host, _, _ := strings.Cut(r, "/")
		_, port, hasPort := strings.Cut(host, ":")
		n, err := strconv.Atoi(port)
		switch {
		case strings.Contains(r, "://"):
			bad(FieldRegistry, "registry %q: write it without a scheme, as HOST[:PORT][/PREFIX]", r)
		case hasPort && (err != nil || n < 1 || n > 65535):
			bad(FieldRegistry, "registry %q: port %q is not a number from 1 to 65535", r, port)
		}
		if a.Bundle == "" {
			bad(FieldRegistry, "a registry needs a bundle: the images to push come from it")
		}
	}
	if a.Bundle != "" && a.Target == TargetExisting && a.Registry == "" {
		bad(FieldRegistry, "a bundle into an existing cluster needs a registry (HOST[:PORT][/PREFIX]) the nodes can pull from")
	}
	if a.Mirror != "" {
		if fi, err := os.Stat(a.Mirror); err != nil || !fi.IsDir() {
			bad(FieldMirror, "mirror %s is not a directory", a.Mirror)
		}
	}
	if a.IstioOverlay != "" {
		file(FieldIstioOverlay, "Istio overlay", a.IstioOverlay)
		if a.Release == "1.21" {
			bad(FieldIstioOverlay, "--istio-overlay applies to the compiled-in Istio; release 1.21 installs Istio 1.28.6 from its pinned manifests")
		}
	}
	if d := a.Domain; d != "" && (!strings.Contains(d, ".") || strings.Trim(d, "abcdefghijklmnopqrstuvwxyz0123456789-.") != "") {
		bad(FieldDomain, "domain %q is not a DNS domain", d)
	}
	switch {
	case a.TLSCert != "" && a.TLSKey == "":
		bad(FieldTLSKey, "a TLS certificate needs its key")
	case a.TLSKey != "" && a.TLSCert == "":
		bad(FieldTLSCert, "a TLS key needs its certificate")
	case a.TLSRedirectHTTP && a.TLSCert == "":
		bad(FieldTLSCert, "redirecting HTTP to HTTPS needs a TLS certificate")
	case a.TLSCert != "":
		file(FieldTLSCert, "TLS certificate", a.TLSCert)
		file(FieldTLSKey, "TLS key", a.TLSKey)
	}
	if a.PullSecret != "" {
		file(FieldPullSecret, "pull secret", a.PullSecret)
	}
	if r := a.HAReplicas; r != "" {
		if n, err := strconv.Atoi(r); err != nil {
			bad(FieldHAReplicas, "HA replicas %q is not a whole number", r)
		} else if n < 0 || n > 100 {
			bad(FieldHAReplicas, "HA replicas %d: want 1 to 100, or 0 for off", n)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append(out, f.invalid...)
}

// DefaultDomain implements Backend: kind clusters get an sslip.io name.
func (f *fakeBackend) DefaultDomain(a Answers) string {
	if a.Target == TargetKind {
		return "127.0.0.1.sslip.io"
	}
	return ""
}

// Preflight implements Backend: a check the answers ignore is a warning,
// a check Fix fixed passes.
func (f *fakeBackend) Preflight(ctx context.Context, a Answers) ([]Check, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pfCalls++
	var out []Check
	for _, c := range f.checks {
		switch {
		case slices.Contains(f.fixed, c.Name):
			c = Check{Name: c.Name, Category: c.Category, Status: StatusPass, Message: "fixed"}
		case c.Status == StatusFail && slices.Contains(a.IgnorePreflightErrors, c.Name):
			c.Status, c.Ignored = StatusWarn, true
		}
		out = append(out, c)
	}
	return out, f.pfErr
}

func (f *fakeBackend) setChecks(c []Check) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checks = c
}

// Plan implements Backend: an upgrade's plan is its hops, from the
// installed release.
func (f *fakeBackend) Plan(ctx context.Context, a Answers) ([]PlanLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if a.Mode == ModeUpgrade && f.planErr == nil {
		from := "1.21"
		if f.installed != nil {
			from = f.installed.Release
		}
		return []PlanLine{
			{"", fmt.Sprintf("release %s is installed; 1 hop to %s, each verified, a failed one rolled back (objects: +add ~change -prune =unchanged):", from, a.Release)},
			{"hop 1", fmt.Sprintf("%s→%s: istio: +2 ~36 -1 (=0); knative-serving: +0 ~61 -0 (=0); net-istio: +0 ~13 -0 (=0)", from, a.Release)},
		}, nil
	}
	return f.plan, f.planErr
}

func (f *fakeBackend) Run(ctx context.Context, a Answers, report func(Event)) (Summary, error) {
	f.mu.Lock()
	f.ran = append(f.ran, a)
	f.mu.Unlock()
	phases := map[string]bool{}
	for _, p := range f.Phases(a) {
		phases[p.Name] = true
	}
	for _, e := range runEvents(f.failRun || f.block) {
		if f.block && e.Type == EventPhaseFail {
			break
		}
		if phases[e.Phase] { // an upgrade reports only its phases
			report(e)
		}
	}
	if f.block {
		<-ctx.Done()
		f.runCtx <- ctx.Err()
		if f.release != nil {
			select { // held so a test can see the cancelling screen
			case <-f.release:
			case <-time.After(2 * time.Second):
			}
		}
		return Summary{}, ctx.Err()
	}
	if f.failRun {
		return Summary{Release: "1.23"}, errors.New("istio: timed out waiting: Deployment istio-system/istiod: ImagePullBackOff")
	}
	return testSummary(), nil
}

func (f *fakeBackend) SaveConfig(path string, a Answers) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.saveErr != nil {
		return f.saveErr
	}
	f.saved[path] = a
	return nil
}

// key makes a key message: a named key or runes.
func key(s string) tea.KeyMsg {
	named := map[string]tea.KeyType{
		"enter": tea.KeyEnter, "esc": tea.KeyEsc, "tab": tea.KeyTab, "shift+tab": tea.KeyShiftTab,
		"up": tea.KeyUp, "down": tea.KeyDown, "ctrl+c": tea.KeyCtrlC, "space": tea.KeySpace,
		"ctrl+u": tea.KeyCtrlU, "backspace": tea.KeyBackspace,
	}
	if t, ok := named[s]; ok {
		return tea.KeyMsg{Type: t}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

// harness drives a Model as tea.Program would: Update on the test's
// goroutine, commands in their own goroutines.
type harness struct {
	t    *testing.T
	m    *Model
	msgs chan tea.Msg
	quit bool
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Now == nil {
		opts.Now = fixedNow
	}
	h := &harness{t: t, m: New(opts), msgs: make(chan tea.Msg, 1024)}
	t.Cleanup(h.m.shutdown)
	h.send(tea.WindowSizeMsg{Width: 100, Height: 30})
	h.exec(h.m.Init())
	h.await("the contexts and releases", func() bool { return h.m.ctxLoaded && h.m.relLoaded })
	return h
}

func (h *harness) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() { h.msgs <- cmd() }()
}

func (h *harness) send(msg tea.Msg) {
	switch msg := msg.(type) {
	case nil:
		return
	case tea.BatchMsg:
		for _, c := range msg {
			h.exec(c)
		}
		return
	case tea.QuitMsg:
		h.quit = true
		return
	}
	_, cmd := h.m.Update(msg)
	h.exec(cmd)
}

// keys sends keys, then lets pending messages through.
func (h *harness) keys(keys ...string) {
	h.t.Helper()
	for _, k := range keys {
		h.send(key(k))
	}
	h.drain()
}

// typ types text.
func (h *harness) typ(s string) {
	for _, r := range s {
		h.send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
}

// drain handles the messages that arrive within a short while.
func (h *harness) drain() {
	for {
		select {
		case msg := <-h.msgs:
			h.send(msg)
		case <-time.After(20 * time.Millisecond):
			return
		}
	}
}

// await handles messages until cond holds.
func (h *harness) await(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case msg := <-h.msgs:
			h.send(msg)
		case <-deadline:
			h.t.Fatalf("timed out waiting for %s; screen %s:\n%s", what, h.m.screen, h.view())
		}
	}
}

func (h *harness) view() string { return ansi.Strip(h.m.View()) }

func (h *harness) wantScreen(s screen) {
	h.t.Helper()
	if h.m.screen != s {
		h.t.Fatalf("screen = %s, want %s; errors %q\n%s", h.m.screen, s, h.m.errs, h.view())
	}
}

func (h *harness) wantView(subs ...string) {
	h.t.Helper()
	v := h.view()
	for _, s := range subs {
		if !strings.Contains(v, s) {
			h.t.Errorf("view of %s lacks %q:\n%s", h.m.screen, s, v)
		}
	}
}
