package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/preflight"
	"github.com/tmbox/tmbox/tui"
)

// TestIntegrationWizard walks the whole wizard by keystrokes, with the real
// backend, against the real test cluster and the shared upstream mirror:
// welcome → target (the kubeconfig's context) → release 1.21 → components →
// air gap → overlay → settings → preflight → plan → confirm → progress →
// summary, and the stack is installed and healthy.
func TestIntegrationWizard(t *testing.T) {
	shared := suite.Cluster(t)
	c := startOwnCluster(t, shared)
	g := &globalOptions{kubeconfig: c.Kubeconfig}
	b := &wizardBackend{g: g, mode: tui.ModeInstall, base: installer.Options{Mirror: upstreamDir(t), PhaseTimeout: 2 * time.Minute, StateDir: t.TempDir()}}
	b.logFile = filepath.Join(t.TempDir(), "wizard.log")
	m := tui.New(tui.Options{Backend: b, Mode: tui.ModeInstall, Plain: true, LogFile: b.logFile, Initial: initialAnswers(g, b.base)})
	// Tall enough for every preflight check and the line after them.
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 60))
	wait := func(s string, d time.Duration) {
		t.Helper()
		teatest.WaitFor(t, tm.Output(), func(out []byte) bool { return bytes.Contains([]byte(ansi.Strip(string(out))), []byte(s)) },
			teatest.WithDuration(d), teatest.WithCheckInterval(50*time.Millisecond))
	}
	send := func(keys ...tea.KeyType) {
		for _, k := range keys {
			tm.Send(tea.KeyMsg{Type: k})
		}
	}
	wait("step 1 of 10", 5*time.Second)
	send(tea.KeyEnter)
	wait("(current)", 5*time.Second)
	send(tea.KeyEnter)
	wait("Release 1.23 pins", 5*time.Second)
	send(tea.KeyUp, tea.KeyUp, tea.KeyEnter) // 1.21
	wait("Which components of release 1.21", 5*time.Second)
	send(tea.KeyEnter)
	wait("Air gap", 5*time.Second)
	send(tea.KeyEnter)
	wait("Istio overlay (optional)", 5*time.Second)
	send(tea.KeyEnter)
	wait("Settings (optional)", 5*time.Second)
	tm.Type("apps.example.com")
	send(tea.KeyEnter)
	wait("Press enter to see the plan", time.Minute)
	send(tea.KeyEnter)
	wait("The install will run", time.Minute)
	send(tea.KeyEnter)
	wait("Ready to install", 5*time.Second)
	send(tea.KeyEnter)
	wait("Next", 4*time.Minute)
	send(tea.KeyEnter)
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*tui.Model)
	a, sum, err := fm.Result()
	if err != nil {
		t.Fatalf("wizard: %v", err)
	}
	t.Logf("answers %+v; summary: release %s in %s, ingress %s", a, sum.Release, sum.Took.Round(time.Millisecond), sum.Ingress)
	if a.Target != tui.TargetExisting || a.Release != "1.21" || sum.Release != "1.21" || len(sum.Versions) != 6 ||
		a.Domain != "apps.example.com" || sum.Functions != "http://{name}.{namespace}.apps.example.com" {
		t.Errorf("answers %+v, summary %+v", a, sum)
	}
	st, err := (&installer.GetStatus{Config: c.Config}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Release != "1.21" || !st.Healthy {
		t.Errorf("after the wizard: release %q healthy %v", st.Release, st.Healthy)
	}
	if data, err := os.ReadFile(b.logFile); err == nil && strings.Contains(string(data), "panic") {
		t.Errorf("log file has a panic:\n%s", data)
	}

	// What is installed, as the welcome screen asks for it.
	inst, err := b.Installed(context.Background(), tui.Answers{})
	if err != nil || inst == nil || inst.Release != "1.21" || inst.Target != tui.TargetExisting || len(inst.Components) != 6 || inst.Components[0].Name != "istio" {
		t.Fatalf("Installed: %+v, %v", inst, err)
	}

	// tmbox again (an install on a terminal): the wizard shows what is
	// installed and offers to upgrade it to the latest, with its hops.
	b2 := &wizardBackend{g: g, mode: tui.ModeInstall, base: b.base, logFile: b.logFile}
	m2 := tui.New(tui.Options{Backend: b2, Mode: tui.ModeInstall, Plain: true, LogFile: b.logFile, Initial: initialAnswers(g, b2.base)})
	tm = teatest.NewTestModel(t, m2, teatest.WithInitialTermSize(100, 60))
	teatest.WaitFor(t, tm.Output(), func(out []byte) bool {
		s := ansi.Strip(string(out))
		return strings.Contains(s, "Release 1.21 is installed on context") && strings.Contains(s, "This wizard upgrades it to release 1.23")
	}, teatest.WithDuration(30*time.Second), teatest.WithCheckInterval(50*time.Millisecond))
	for step := 2; step <= 8; step++ { // the answers as prefilled, to the preflight step
		send(tea.KeyEnter)
		wait(fmt.Sprintf("step %d of 10", step), 5*time.Second)
	}
	wait("Press enter to see the plan", time.Minute)
	send(tea.KeyEnter)
	wait("1.22→1.23", 2*time.Minute)
	send(tea.KeyCtrlC)
	fm = tm.FinalModel(t, teatest.WithFinalTimeout(10*time.Second)).(*tui.Model)
	a, _, err = fm.Result()
	if !errors.Is(err, tui.ErrAborted) || a.Mode != tui.ModeUpgrade || a.Release != "1.23" || a.Context == "" {
		t.Fatalf("the upgrade offer: answers %+v, err %v", a, err)
	}
}

// TestIntegrationWizardCancel cancels an install from the wizard (Ctrl-C,
// then y) while a phase applies objects and while a phase waits for them:
// either way the error is ErrCancelled's one line (exit code 130), the
// screen left behind shows no error of the cut-short phase, and the
// cluster's journal records the operation as cancelled.
//
// The journal of a cancel during a wait needs the installer to record
// cancelled when the run's context is cancelled, not only when the error
// wraps context.Canceled (the waiter's "not ready" error does not).
func TestIntegrationWizardCancel(t *testing.T) {
	shared := suite.Cluster(t)
	for _, c := range []struct {
		name string
		at   string // what the screen shows when Ctrl-C is pressed
		// hold keeps Eventing's pods from being created (a ResourceQuota
		// of no pods in its namespace), so that its wait lasts: on kwok
		// every other wait of a first install ends at once.
		hold bool
	}{
		{"while applying", "...  knative-serving", false},
		{"while waiting", "waiting:", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := startOwnCluster(t, shared)
			if c.hold {
				holdPods(t, cl.Config, "knative-eventing")
			}
			g := &globalOptions{kubeconfig: cl.Kubeconfig}
			b := &wizardBackend{g: g, mode: tui.ModeInstall, base: installer.Options{Mirror: upstreamDir(t), PhaseTimeout: 2 * time.Minute, StateDir: t.TempDir()}}
			var log strings.Builder
			b.logger = slog.New(slog.NewTextHandler(&syncBuilder{b: &log}, nil))
			m := tui.New(tui.Options{Backend: b, Mode: tui.ModeInstall, Plain: true, Initial: initialAnswers(g, b.base)})
			tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 60))
			wait := func(s string, d time.Duration) {
				t.Helper()
				teatest.WaitFor(t, tm.Output(), func(out []byte) bool { return bytes.Contains([]byte(ansi.Strip(string(out))), []byte(s)) },
					teatest.WithDuration(d), teatest.WithCheckInterval(20*time.Millisecond))
			}
			wait("step 1 of 10", 5*time.Second)
			for step := 2; step <= 8; step++ { // the answers as prefilled, to the preflight step
				tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
				wait(fmt.Sprintf("step %d of 10", step), 5*time.Second)
			}
			wait("Press enter to see the plan", time.Minute)
			tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
			wait("The install will run", time.Minute)
			tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
			wait("Ready to install", 5*time.Second)
			tm.Send(tea.KeyMsg{Type: tea.KeyEnter})
			wait(c.at, 2*time.Minute)
			tm.Send(tea.KeyMsg{Type: tea.KeyCtrlC})
			tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("y")})
			fm := tm.FinalModel(t, teatest.WithFinalTimeout(2*time.Minute)).(*tui.Model)
			_, _, err := fm.Result()
			if !errors.Is(err, tui.ErrCancelled) || !errors.Is(err, context.Canceled) || err.Error() != "cancelled by the user; re-run to converge" {
				t.Fatalf("err %q", err)
			}
			if _, code := outcome(context.Background(), err); code != exitCancelled {
				t.Fatalf("exit code %d", code)
			}
			if v := ansi.Strip(fm.View()); strings.Contains(v, "not ready") || strings.Contains(v, "rate limiter") || strings.Contains(v, "FAIL") ||
				!strings.Contains(v, "cancelled by the user; re-run to converge") {
				t.Errorf("the screen left behind:\n%s", v)
			}
			if !strings.Contains(log.String(), "the run was cancelled") {
				t.Errorf("the log lacks what the cancel cut short:\n%s", log.String())
			}
			st, err := (&installer.GetStatus{Config: cl.Config}).Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if op := st.LastOperation; op == nil || op.Result != installer.ResultCancelled {
				t.Errorf("the journal records %+v, want the install %s", op, installer.ResultCancelled)
			}
		})
	}
}

// holdPods creates namespace ns with a ResourceQuota of no pods, so that
// its workloads never become ready.
func holdPods(t *testing.T, cfg *rest.Config, ns string) {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-pods", Namespace: ns},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourcePods: resource.MustParse("0")}}}
	if _, err := cs.CoreV1().ResourceQuotas(ns).Create(ctx, q, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationWizardOffline runs the preflight step on an existing
// cluster with no mirror while every pinned URL refuses connections: one
// sentence under the mirror's field instead of each check's download
// errors.
func TestIntegrationWizardOffline(t *testing.T) {
	c := suite.Cluster(t)
	dir := t.TempDir()
	catFile := filepath.Join(dir, "catalog.yaml")
	writeFile(t, catFile, strings.ReplaceAll(string(catalog.EmbeddedCatalog()), "url: https://", "url: https://127.0.0.1:1/"))
	b := &wizardBackend{g: &globalOptions{kubeconfig: c.Kubeconfig, catalogFile: catFile}, mode: tui.ModeInstall,
		base: installer.Options{StateDir: t.TempDir(), CacheDir: t.TempDir()}}
	_, err := b.Preflight(context.Background(), tui.Answers{Target: tui.TargetExisting})
	var fe *tui.FieldError
	if !errors.As(err, &fe) || fe.Field != tui.FieldMirror || fe.Message != offlineMessage {
		t.Fatalf("preflight: %v", err)
	}
	checks, err := b.Preflight(context.Background(), tui.Answers{Target: tui.TargetExisting, Mirror: upstreamDir(t)})
	if err != nil || len(checks) == 0 {
		t.Fatalf("preflight with a mirror: %d checks, %v", len(checks), err)
	}
}

// syncBuilder is a strings.Builder safe for concurrent writes.
type syncBuilder struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncBuilder) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestWizardPhases checks the phases the progress screen lists: the
// installer's, in run order, preflight first for an install, only the
// hop's for an upgrade (the images first when a bundle's are loaded).
func TestWizardPhases(t *testing.T) {
	names := func(infos []installer.PhaseInfo) []string {
		var out []string
		for _, p := range infos {
			out = append(out, p.Name)
		}
		return out
	}
	cases := []struct {
		name string
		mode tui.Mode // the backend's
		a    tui.Answers
		want []string
	}{
		{"install", tui.ModeInstall, tui.Answers{}, installer.PhaseNames()},
		{"upgrade", tui.ModeUpgrade, tui.Answers{}, names(installer.UpgradePhases())},
		{"upgrade from a bundle", tui.ModeUpgrade, tui.Answers{Bundle: "tmbox.bundle"}, append([]string{installer.PhaseImages}, names(installer.UpgradePhases())...)},
		{"an install the wizard made an upgrade", tui.ModeInstall, tui.Answers{Mode: tui.ModeUpgrade}, names(installer.UpgradePhases())},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			titles := map[string]string{}
			for _, p := range installer.InstallPhases() {
				titles[p.Name] = p.Title
			}
			for _, p := range (&wizardBackend{g: &globalOptions{}, mode: c.mode}).Phases(c.a) {
				got = append(got, p.Name)
				if p.Title != titles[p.Name] {
					t.Errorf("phase %s: title %q, want %q", p.Name, p.Title, titles[p.Name])
				}
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("phases %q, want %q", got, c.want)
			}
			if c.want[0] == installer.PhasePreflight || slices.Contains(got, installer.PhasePreflight) {
				if got[0] != installer.PhasePreflight {
					t.Fatalf("preflight is not first: %q", got)
				}
			}
		})
	}
	if up := names(installer.UpgradePhases()); slices.Contains(up, installer.PhasePreflight) || slices.Contains(up, installer.PhaseCluster) {
		t.Fatalf("an upgrade's phases %q include phases a hop does not run", up)
	}
}

func TestFieldErrors(t *testing.T) {
	setting := func(s, msg string) error { return &installer.SettingError{Setting: s, Err: errors.New(msg)} }
	platform := func(path, msg string) error { return &settings.Error{Path: path, Err: errors.New(msg)} }
	withCert := tui.Answers{TLSCert: "tls.crt"}
	cases := []struct {
		name string
		err  error
		want []tui.FieldError
		a    tui.Answers // the answers the errors are about
	}{
		{"none", nil, nil, tui.Answers{}},
		{"plain error", errors.New("bad mirror"), []tui.FieldError{{Field: tui.FieldGeneral, Message: "bad mirror"}}, tui.Answers{}},
		{
			name: "joined, in order",
			err: errors.Join(setting("cluster-name", "bad name"), errors.New("bad mirror"), setting("registry", "bad registry"),
				setting("components", "core needs triggermesh"), setting("bundle", "no bundle"), setting("bundle-key", "no key"),
				setting("istio-overlay", "no overlay"), setting("release", "no release"), setting("context", "no context")),
			want: []tui.FieldError{
				{Field: tui.FieldClusterName, Message: "bad name"}, {Field: tui.FieldGeneral, Message: "bad mirror"},
				{Field: tui.FieldRegistry, Message: "bad registry"}, {Field: tui.FieldComponents, Message: "core needs triggermesh"},
				{Field: tui.FieldBundle, Message: "no bundle"}, {Field: tui.FieldBundleKey, Message: "no key"},
				{Field: tui.FieldIstioOverlay, Message: "no overlay"}, {Field: tui.FieldRelease, Message: "no release"},
				{Field: tui.FieldContext, Message: "no context"},
			},
		},
		{"wrapped", fmt.Errorf("options: %w", setting("registry", "bad registry")), []tui.FieldError{{Field: tui.FieldRegistry, Message: "bad registry"}}, tui.Answers{}},
		{"a setting the wizard has no field for", setting("timeout", "bad timeout"), []tui.FieldError{{Field: tui.FieldGeneral, Message: "bad timeout"}}, tui.Answers{}},
		{"the mirror", setting("mirror", "--mirror /x is not a directory"), []tui.FieldError{{Field: tui.FieldMirror, Message: "--mirror /x is not a directory"}}, tui.Answers{}},
		{"nested joins", errors.Join(errors.Join(setting("bundle", "a"), errors.New("b"))), []tui.FieldError{{Field: tui.FieldBundle, Message: "a"}, {Field: tui.FieldGeneral, Message: "b"}}, tui.Answers{}},
		{
			name: "platform settings, by path",
			err: errors.Join(platform("platform.domain", "bad"), platform("platform.tls.certFile", "no cert"), platform("platform.tls.keyFile", "no key"),
				platform("platform.registry.pullSecret", "not JSON"), platform("platform.highAvailability.replicas", "-1"),
				platform("platform.registry.caFile", "no CA"), platform("platform.workloads.knative-serving/activator.replicas", "-2")),
			want: []tui.FieldError{
				{Field: tui.FieldDomain, Message: "platform.domain: bad"}, {Field: tui.FieldTLSCert, Message: "platform.tls.certFile: no cert"},
				{Field: tui.FieldTLSKey, Message: "platform.tls.keyFile: no key"}, {Field: tui.FieldPullSecret, Message: "platform.registry.pullSecret: not JSON"},
				{Field: tui.FieldHAReplicas, Message: "platform.highAvailability.replicas: -1"},
				{Field: tui.FieldGeneral, Message: "platform.registry.caFile: no CA"},
				{Field: tui.FieldGeneral, Message: "platform.workloads.knative-serving/activator.replicas: -2"},
			},
		},
		{"the TLS pair without a certificate", platform("platform.tls", "keyFile is set but certFile is not"),
			[]tui.FieldError{{Field: tui.FieldTLSCert, Message: "platform.tls: keyFile is set but certFile is not"}}, tui.Answers{TLSKey: "tls.key"}},
		{"the TLS pair with a certificate", platform("platform.tls", "certFile is set but keyFile is not"),
			[]tui.FieldError{{Field: tui.FieldTLSKey, Message: "platform.tls: certFile is set but keyFile is not"}}, withCert},
		{"wrapped platform setting", fmt.Errorf("options: %w", platform("platform.domain", "bad")),
			[]tui.FieldError{{Field: tui.FieldDomain, Message: "options: platform.domain: bad"}}, tui.Answers{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fieldErrors(c.err, c.a); !slices.Equal(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// selfSigned writes a new self-signed certificate and its key as PEM
// files in dir, named NAME.crt and NAME.key.
func selfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "*.apps.example.com"},
		DNSNames:     []string{"*.apps.example.com"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestWizardValidate asks the installer's own rules through the wizard's
// Validate. While the installer does not name the setting of an error yet,
// FieldGeneral is accepted too (it is shown on the last form step); the
// settings step's errors must be on their own field, and only there.
func TestWizardValidate(t *testing.T) {
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.yaml")
	writeFile(t, overlay, "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n")
	cert, key := selfSigned(t, dir, "a")
	_, otherKey := selfSigned(t, dir, "b")
	pull := filepath.Join(dir, "config.json")
	writeFile(t, pull, `{"auths": {"registry.example.com:5000": {"auth": "dXNlcjpwYXNzd29yZA=="}}}`)
	helper := filepath.Join(dir, "helper.json")
	writeFile(t, helper, `{"credsStore": "desktop"}`)
	notJSON := filepath.Join(dir, "config.yaml")
	writeFile(t, notJSON, "auths: {}\n")
	existing := func(a tui.Answers) tui.Answers { a.Target, a.Context = tui.TargetExisting, "prod"; return a }
	cases := []struct {
		name  string
		a     tui.Answers
		field string // "" for no errors
		text  string
		own   bool // the error must be on field, and no other error anywhere
	}{
		{"existing cluster", tui.Answers{Target: tui.TargetExisting, Context: "prod"}, "", "", false},
		{"kind cluster", tui.Answers{Target: tui.TargetKind, ClusterName: "dev", IstioOverlay: overlay}, "", "", false},
		{"bad cluster name", tui.Answers{Target: tui.TargetKind, ClusterName: "Dev_1"}, tui.FieldClusterName, "cluster name", false},
		{"long cluster name", tui.Answers{Target: tui.TargetKind, ClusterName: strings.Repeat("a", 60)}, tui.FieldClusterName, "cluster name", false},
		{"core without triggermesh", tui.Answers{Target: tui.TargetExisting, Components: []string{"istio", "knative-serving", "net-istio", "triggermesh-core"}},
			tui.FieldComponents, "triggermesh-core needs triggermesh", false},
		{"registry without bundle", tui.Answers{Target: tui.TargetKind, ClusterName: "dev", Registry: "reg.corp:5000/tmbox"}, tui.FieldRegistry, "registry", false},
		{"missing bundle", tui.Answers{Target: tui.TargetKind, ClusterName: "dev", Bundle: filepath.Join(dir, "x.bundle")}, tui.FieldBundle, "x.bundle", false},
		{"missing overlay", tui.Answers{Target: tui.TargetExisting, IstioOverlay: filepath.Join(dir, "nope.yaml")}, tui.FieldIstioOverlay, "nope.yaml", false},

		{"every setting", existing(tui.Answers{Domain: "apps.example.com", TLSCert: cert, TLSKey: key, TLSRedirectHTTP: true, PullSecret: pull, HAReplicas: "3"}), "", "", true},
		{"HA off", existing(tui.Answers{HAReplicas: "0"}), "", "", true},
		{"bad domain", existing(tui.Answers{Domain: "Apps_Example"}), tui.FieldDomain, "is not a DNS domain", true},
		{"cert without key", existing(tui.Answers{TLSCert: cert}), tui.FieldTLSKey, "keyFile is not", true},
		{"key without cert", existing(tui.Answers{TLSKey: key}), tui.FieldTLSCert, "certFile is not", true},
		{"redirect without cert", existing(tui.Answers{TLSRedirectHTTP: true}), tui.FieldTLSCert, "needs certFile and keyFile", true},
		{"key not matching its cert", existing(tui.Answers{TLSCert: cert, TLSKey: otherKey}), tui.FieldTLSKey, "does not match", true},
		{"missing cert file", existing(tui.Answers{TLSCert: filepath.Join(dir, "nope.crt"), TLSKey: key}), tui.FieldTLSCert, "nope.crt", true},
		{"missing key file", existing(tui.Answers{TLSCert: cert, TLSKey: filepath.Join(dir, "nope.key")}), tui.FieldTLSKey, "nope.key", true},
		{"pull secret of a credential helper", existing(tui.Answers{PullSecret: helper}), tui.FieldPullSecret, "is not Docker config JSON", true},
		{"pull secret that is not JSON", existing(tui.Answers{PullSecret: notJSON}), tui.FieldPullSecret, "is not Docker config JSON", true},
		{"missing pull secret", existing(tui.Answers{PullSecret: filepath.Join(dir, "nope.json")}), tui.FieldPullSecret, "nope.json", true},
		{"HA replicas not a number", existing(tui.Answers{HAReplicas: "x"}), tui.FieldHAReplicas, "not a whole number", true},
		{"HA replicas negative", existing(tui.Answers{HAReplicas: "-1"}), tui.FieldHAReplicas, "-1", true},
		{"HA replicas too many", existing(tui.Answers{HAReplicas: "1000"}), tui.FieldHAReplicas, "1000", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &wizardBackend{g: &globalOptions{}, mode: tui.ModeInstall}
			got := b.Validate(c.a)
			if c.field == "" {
				if len(got) > 0 {
					t.Fatalf("errors %+v, want none", got)
				}
				return
			}
			if c.own {
				if len(got) != 1 || got[0].Field != c.field || !strings.Contains(got[0].Message, c.text) {
					t.Fatalf("errors %+v, want one under %q with %q", got, c.field, c.text)
				}
				return
			}
			for _, fe := range got {
				if strings.Contains(fe.Message, c.text) {
					if fe.Field != c.field && fe.Field != tui.FieldGeneral {
						t.Fatalf("%q is under %q, want %q", fe.Message, fe.Field, c.field)
					}
					if fe.Field == tui.FieldGeneral {
						t.Logf("%q is under FieldGeneral: the installer does not name its setting (want %q)", fe.Message, c.field)
					}
					return
				}
			}
			t.Fatalf("errors %+v lack %q", got, c.text)
		})
	}
}

// TestWizardPlatform checks how the settings step's answers lay over the
// settings flags, env and config gave.
func TestWizardPlatform(t *testing.T) {
	fromConfig := settings.Settings{
		Domain:           "old.example.com",
		TLS:              &settings.TLS{CertFile: "old.crt", KeyFile: "old.key"},
		Registry:         &settings.Registry{PullSecret: "old.json", CAFile: "ca.pem", SkipTagResolving: []string{"reg.corp"}},
		HighAvailability: &settings.HighAvailability{Replicas: 2},
		Config:           map[string]map[string]settings.Value{"config-autoscaler": {"enable-scale-to-zero": "false"}},
		Gateway:          &settings.Gateway{Type: "ClusterIP"},
	}
	cases := []struct {
		name string
		base settings.Settings
		a    tui.Answers
		want settings.Settings
	}{
		{"nothing", settings.Settings{}, tui.Answers{}, settings.Settings{}},
		{"every answer", settings.Settings{},
			tui.Answers{Domain: " apps.example.com ", TLSCert: "tls.crt", TLSKey: "tls.key", TLSRedirectHTTP: true, PullSecret: "config.json", HAReplicas: "3"},
			settings.Settings{Domain: "apps.example.com", TLS: &settings.TLS{CertFile: "tls.crt", KeyFile: "tls.key", RedirectHTTP: true},
				Registry: &settings.Registry{PullSecret: "config.json"}, HighAvailability: &settings.HighAvailability{Replicas: 3}}},
		{"HA 0 is off", settings.Settings{}, tui.Answers{HAReplicas: "0"}, settings.Settings{}},
		{"HA that does not parse sets nothing", settings.Settings{}, tui.Answers{HAReplicas: "x"}, settings.Settings{}},
		{"the answers replace the config's; its other settings stay", fromConfig,
			tui.Answers{Domain: "apps.example.com", PullSecret: "new.json", HAReplicas: "5"},
			settings.Settings{Domain: "apps.example.com",
				Registry:         &settings.Registry{PullSecret: "new.json", CAFile: "ca.pem", SkipTagResolving: []string{"reg.corp"}},
				HighAvailability: &settings.HighAvailability{Replicas: 5}, Config: fromConfig.Config, Gateway: fromConfig.Gateway}},
		{"a cleared pull secret keeps the config's CA", fromConfig, tui.Answers{},
			settings.Settings{Registry: &settings.Registry{CAFile: "ca.pem", SkipTagResolving: []string{"reg.corp"}}, Config: fromConfig.Config, Gateway: fromConfig.Gateway}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &wizardBackend{g: &globalOptions{}, mode: tui.ModeInstall, base: installer.Options{Platform: c.base}}
			if got := b.options(c.a).Platform; !reflect.DeepEqual(got, c.want) {
				t.Fatalf("platform\n got %s\nwant %s", dump(got), dump(c.want))
			}
		})
	}

	// Prefilled from the same settings, the answers change nothing.
	b := &wizardBackend{g: &globalOptions{}, mode: tui.ModeUpgrade, base: installer.Options{Platform: fromConfig}}
	a := initialAnswers(b.g, b.base)
	if a.Domain != "old.example.com" || a.TLSCert != "old.crt" || a.TLSKey != "old.key" || a.TLSRedirectHTTP || a.PullSecret != "old.json" || a.HAReplicas != "2" {
		t.Fatalf("initial answers %+v", a)
	}
	if got := b.options(a).Platform; !reflect.DeepEqual(got, fromConfig) {
		t.Fatalf("platform from the initial answers\n got %s\nwant %s", dump(got), dump(fromConfig))
	}
	if fromConfig.Registry.PullSecret != "old.json" {
		t.Fatal("options changed the base settings")
	}
}

func dump(s settings.Settings) string {
	data, err := yaml.Marshal(s)
	if err != nil {
		return err.Error()
	}
	return string(data)
}

// TestWizardSaveConfigPlatform saves the settings step's answers and
// reads them back as the config reader does.
func TestWizardSaveConfigPlatform(t *testing.T) {
	cases := []struct {
		name string
		a    tui.Answers
		want *settings.Settings // nil: no platform: section
		keys []string           // in the file
	}{
		{"no settings", tui.Answers{Target: tui.TargetExisting, Context: "prod"}, nil, nil},
		{"every setting", tui.Answers{Target: tui.TargetKind, ClusterName: "dev", Domain: "apps.example.com", TLSCert: "/etc/tls/tls.crt", TLSKey: "/etc/tls/tls.key",
			TLSRedirectHTTP: true, PullSecret: "/etc/docker/config.json", HAReplicas: "3"},
			&settings.Settings{Domain: "apps.example.com", TLS: &settings.TLS{CertFile: "/etc/tls/tls.crt", KeyFile: "/etc/tls/tls.key", RedirectHTTP: true},
				Registry: &settings.Registry{PullSecret: "/etc/docker/config.json"}, HighAvailability: &settings.HighAvailability{Replicas: 3}},
			[]string{"platform:", "domain: apps.example.com", "certFile: /etc/tls/tls.crt", "keyFile: /etc/tls/tls.key", "redirectHTTP: true",
				"pullSecret: /etc/docker/config.json", "replicas: 3"}},
		{"a domain only", tui.Answers{Target: tui.TargetExisting, Context: "prod", Domain: "apps.example.com"}, &settings.Settings{Domain: "apps.example.com"},
			[]string{"platform:", "domain: apps.example.com"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := &globalOptions{}
			b := &wizardBackend{g: g, mode: tui.ModeInstall}
			path := filepath.Join(t.TempDir(), "tmbox-install.yaml")
			if err := b.SaveConfig(path, c.a); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			file, err := readConfig(path, knownConfigKeys(g))
			if err != nil {
				t.Fatalf("%v\n%s", err, data)
			}
			got := file[platformKey].platform
			switch {
			case c.want == nil && got != nil:
				t.Fatalf("platform %s, want none:\n%s", dump(*got), data)
			case c.want != nil && (got == nil || !reflect.DeepEqual(*got, *c.want)):
				t.Fatalf("platform read back from\n%s\nwant %s", data, dump(*c.want))
			}
			for _, k := range c.keys {
				if !strings.Contains(string(data), k) {
					t.Errorf("the config lacks %q:\n%s", k, data)
				}
			}
		})
	}
}

func TestWizardDefaultDomain(t *testing.T) {
	cases := []struct {
		name   string
		listen string
		a      tui.Answers
		want   string
	}{
		{"kind", "", tui.Answers{Target: tui.TargetKind, ClusterName: "dev"}, "127.0.0.1.sslip.io"},
		{"kind on all addresses", "0.0.0.0", tui.Answers{Target: tui.TargetKind, ClusterName: "dev"}, "127.0.0.1.sslip.io"},
		{"kind on a LAN address", "192.168.1.20", tui.Answers{Target: tui.TargetKind, ClusterName: "dev"}, "192.168.1.20.sslip.io"},
		{"kind on IPv6", "fd00::1", tui.Answers{Target: tui.TargetKind, ClusterName: "dev"}, "fd00--1.sslip.io"},
		{"existing cluster", "", tui.Answers{Target: tui.TargetExisting, Context: "prod"}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &wizardBackend{g: &globalOptions{}, mode: tui.ModeInstall}
			b.base.Kind.ListenAddress = c.listen
			if got := b.DefaultDomain(c.a); got != c.want {
				t.Fatalf("DefaultDomain = %q, want %q", got, c.want)
			}
		})
	}
}

func TestPlanLines(t *testing.T) {
	plan := &installer.InstallPlan{Release: "1.23", Target: "kind cluster dev", Phases: []installer.PhasePlan{
		{Phase: installer.PhasePreflight, Skip: "--skip-phases"},
		{Phase: installer.PhaseCluster, Summary: `create kind cluster "dev"`},
		{Phase: installer.PhaseImages, Skip: "no bundle"},
		{Phase: installer.PhaseIstio, Summary: "apply Istio 1.30.8", Components: []installer.ComponentDiff{{Component: "istio", Add: 30}}},
	}}
	cases := []struct {
		name        string
		userSkipped []string
		want        []tui.PlanLine
	}{
		{"the wizard skipped preflight", nil, []tui.PlanLine{
			{Phase: "preflight", Description: "check the host and cluster again, as on the preflight screen, before any change"},
			{Phase: "cluster", Description: `create kind cluster "dev"`},
			{Phase: "images", Description: "skipped: no bundle"},
			{Phase: "istio", Description: "apply Istio 1.30.8"},
		}},
		{"the user skipped preflight", []string{"preflight"}, []tui.PlanLine{
			{Phase: "preflight", Description: "skipped: --skip-phases"},
			{Phase: "cluster", Description: `create kind cluster "dev"`},
			{Phase: "images", Description: "skipped: no bundle"},
			{Phase: "istio", Description: "apply Istio 1.30.8"},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := planLines(plan, c.userSkipped); !slices.Equal(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestRootTakesInstallFlags checks that tmbox alone takes every flag of
// tmbox install (the same flags, not a copy of their list), so that
// tmbox --mirror DIR opens the wizard prefilled.
func TestWizardRootTakesInstallFlags(t *testing.T) {
	root := newRootCmd(io.Discard, io.Discard)
	install, _, err := root.Find([]string{"install"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	install.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "help" {
			return
		}
		n++
		rf := root.Flags().Lookup(f.Name)
		if rf == nil {
			t.Errorf("tmbox takes no --%s", f.Name)
			return
		}
		if rf.Shorthand != f.Shorthand || rf.Usage != f.Usage || rf.DefValue != f.DefValue {
			t.Errorf("--%s differs: %+v, install's %+v", f.Name, rf, f)
		}
	})
	if n < 10 {
		t.Fatalf("install has %d flags?", n)
	}
	dir := t.TempDir()
	if err := root.ParseFlags([]string{"--mirror", dir, "--release", "1.21", "--ignore-preflight-errors", "capacity"}); err != nil {
		t.Fatal(err)
	}
	if v := root.Flags().Lookup("mirror").Value.String(); v != dir {
		t.Fatalf("--mirror %q", v)
	}
}

// TestWizardInitialMirror checks that the flags' mirror and ignored
// checks prefill the wizard and reach the installer's options.
func TestWizardInitialMirror(t *testing.T) {
	g := &globalOptions{}
	o := installer.Options{Mirror: "/srv/tmbox", IgnorePreflightErrors: []string{"capacity"}}
	a := initialAnswers(g, o)
	if a.Mirror != "/srv/tmbox" || !slices.Equal(a.IgnorePreflightErrors, []string{"capacity"}) {
		t.Fatalf("initial answers %+v", a)
	}
	b := &wizardBackend{g: g, mode: tui.ModeInstall, base: o}
	a.IgnorePreflightErrors = append(a.IgnorePreflightErrors, "rbac")
	got := b.options(a)
	if got.Mirror != "/srv/tmbox" || !slices.Equal(got.IgnorePreflightErrors, []string{"capacity", "rbac"}) {
		t.Fatalf("options: mirror %q, ignore %q", got.Mirror, got.IgnorePreflightErrors)
	}
	if !slices.Equal(o.IgnorePreflightErrors, []string{"capacity"}) {
		t.Fatal("options changed the base's list")
	}

	path := filepath.Join(t.TempDir(), "tmbox-install.yaml")
	if err := b.SaveConfig(path, a); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{"mirror: /srv/tmbox", "ignorePreflightErrors:", "- capacity", "- rbac"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("the saved config lacks %q:\n%s", want, data)
		}
	}

	// An install the wizard made an upgrade saves a config for tmbox
	// upgrade: the release is its --to.
	a.Mode, a.Release = tui.ModeUpgrade, "1.23"
	if err := b.SaveConfig(path+".up", a); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path + ".up")
	if !strings.Contains(string(data), "tmbox upgrade --config") || !strings.Contains(string(data), "\nto: \"1.23\"") || strings.Contains(string(data), "release:") {
		t.Errorf("the upgrade's config:\n%s", data)
	}
}

// TestWizardValidateAirGapAndOverlay checks the mirror under its own
// field, and the overlay refused on its own step for a release whose
// Istio is not compiled in, as the plan would refuse it.
func TestWizardValidateAirGapAndOverlay(t *testing.T) {
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.yaml")
	writeFile(t, overlay, "apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n")
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	var manifestsIstio, compiledIn string
	for _, name := range cat.ReleaseNames() {
		rel, _ := cat.Release(name)
		if c, _ := rel.Component(catalog.Istio); c.Source == catalog.SourceCompiledIn {
			compiledIn = name
		} else if manifestsIstio == "" {
			manifestsIstio = name
		}
	}
	if manifestsIstio == "" || compiledIn == "" {
		t.Fatalf("the catalog has no release of each Istio source (%q, %q)", manifestsIstio, compiledIn)
	}
	existing := func(a tui.Answers) tui.Answers { a.Target, a.Context = tui.TargetExisting, "prod"; return a }
	cases := []struct {
		name  string
		mode  tui.Mode
		a     tui.Answers
		field string
		text  string
	}{
		{"a mirror directory", tui.ModeInstall, existing(tui.Answers{Mirror: dir}), "", ""},
		{"a mirror that is not a directory", tui.ModeInstall, existing(tui.Answers{Mirror: overlay}), tui.FieldMirror, "is not a directory"},
		{"a missing mirror", tui.ModeInstall, existing(tui.Answers{Mirror: filepath.Join(dir, "nope")}), tui.FieldMirror, "is not a directory"},
		{"an overlay for compiled-in Istio", tui.ModeInstall, existing(tui.Answers{Release: compiledIn, IstioOverlay: overlay}), "", ""},
		{"an overlay for the latest", tui.ModeInstall, existing(tui.Answers{IstioOverlay: overlay}), "", ""},
		{"an overlay for Istio from manifests", tui.ModeInstall, existing(tui.Answers{Release: manifestsIstio, IstioOverlay: overlay}),
			tui.FieldIstioOverlay, "applies to the compiled-in Istio; release " + manifestsIstio},
		{"an upgrade checks its hops at plan time", tui.ModeUpgrade, existing(tui.Answers{Release: manifestsIstio, IstioOverlay: overlay}), "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &wizardBackend{g: &globalOptions{}, mode: c.mode}
			got := b.Validate(c.a)
			if c.field == "" {
				if len(got) > 0 {
					t.Fatalf("errors %+v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].Field != c.field || !strings.Contains(got[0].Message, c.text) {
				t.Fatalf("errors %+v, want one under %q with %q", got, c.field, c.text)
			}
		})
	}
	// The stand-in gives the installer's error: a setting error naming the
	// overlay (exit code 2 on the command line too).
	var se *installer.SettingError
	if err := checkOverlay(overlay, manifestsIstio, ""); !errors.As(err, &se) || se.Setting != "istio-overlay" {
		t.Fatalf("checkOverlay: %v", err)
	}
}

// TestWizardStepError checks how preflight and plan errors reach the
// wizard: a download failure is one sentence under the mirror's field; a
// setting the wizard asks is under its field; anything else is as it was.
func TestWizardStepError(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	var url string
	for _, c := range cat.Components {
		if len(c.Assets) > 0 {
			url = c.Assets[0].URL
			break
		}
	}
	download := fmt.Errorf("hop 1/1 1.22→1.23: knative-serving 1.23.0: upstream: knative-serving/1.23.0/serving-crds.yaml: download %s: %w", url,
		errors.New("dial tcp: lookup github.com: no such host"))
	plain := errors.New("the API server timed out")
	cases := []struct {
		name  string
		err   error
		field string // "" for the error as it was
		msg   string
	}{
		{"download", download, tui.FieldMirror, offlineMessage},
		{"download, joined", errors.Join(download, download), tui.FieldMirror, offlineMessage},
		{"an overlay setting", &installer.SettingError{Setting: "istio-overlay", Err: errors.New("no overlay for this Istio")}, tui.FieldIstioOverlay, "no overlay for this Istio"},
		{"a mirror setting", &installer.SettingError{Setting: "mirror", Err: errors.New("--mirror x is not a directory")}, tui.FieldMirror, "--mirror x is not a directory"},
		{"a setting the wizard does not ask", &installer.SettingError{Setting: "timeout", Err: errors.New("negative")}, "", "negative"},
		{"an error no answer fixes", plain, "", plain.Error()},
		{"a download of something else", errors.New("download https://example.com/x: 404"), "", "download https://example.com/x: 404"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := &wizardBackend{g: &globalOptions{}, mode: tui.ModeInstall}
			got := b.stepError("plan", c.err, tui.Answers{})
			var fe *tui.FieldError
			switch {
			case c.field == "" && errors.As(got, &fe):
				t.Fatalf("got a field error %+v", fe)
			case c.field == "" && got.Error() != c.msg:
				t.Fatalf("got %q, want %q", got, c.msg)
			case c.field != "" && (!errors.As(got, &fe) || fe.Field != c.field || fe.Message != c.msg):
				t.Fatalf("got %v, want %q under %q", got, c.msg, c.field)
			}
		})
	}
	// A check's message as preflight words it.
	b := &wizardBackend{g: &globalOptions{}}
	msg := "cannot read release 1.23's manifests to sum their requests: " + download.Error()
	if !b.downloadFailed(msg) || b.downloadFailed("cannot read release 1.23's manifests: permission denied") {
		t.Fatal("downloadFailed")
	}
	if strings.Count(offlineMessage, ". ") > 0 || strings.Contains(offlineMessage, "\n") {
		t.Fatalf("the offline message is not one sentence: %q", offlineMessage)
	}
}

// TestWizardRunCancelled checks that a run whose context is cancelled
// returns an error that is context.Canceled (what the wizard and exit
// code 130 need), whatever the installer returned.
func TestWizardRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := &wizardBackend{g: &globalOptions{kubeconfig: filepath.Join(t.TempDir(), "none")}, mode: tui.ModeInstall, base: installer.Options{StateDir: t.TempDir()}}
	_, err := b.Run(ctx, tui.Answers{Target: tui.TargetExisting, Context: "prod"}, func(tui.Event) {})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	// What the wizard returns for it maps to 130 with one line.
	for _, err := range []error{tui.ErrCancelled, fmt.Errorf("x: %w", tui.ErrCancelled)} {
		if _, code := outcome(context.Background(), err); code != exitCancelled {
			t.Fatalf("outcome(%v) = %d", err, code)
		}
	}
	if tui.ErrCancelled.Error() != "cancelled by the user; re-run to converge" {
		t.Fatalf("ErrCancelled %q", tui.ErrCancelled)
	}
}

// TestHopLines checks the upgrade's plan lines: where it starts, then
// each hop and its object changes.
func TestWizardHopLines(t *testing.T) {
	plan := &installer.UpgradePlan{Plan: &catalog.Plan{From: "1.21", To: "1.23", Hops: []catalog.Hop{{From: "1.21", To: "1.22"}, {From: "1.22", To: "1.23"}}},
		Changes: [][]installer.ComponentDiff{{{Component: "istio", Add: 1, Change: 30}}, {{Component: "istio", Change: 31, Prune: 2}}}}
	got := hopLines(plan)
	want := []tui.PlanLine{
		{Description: "release 1.21 is installed; 2 hops to 1.23, each verified, a failed one rolled back (objects: +add ~change -prune =unchanged):"},
		{Phase: "hop 1", Description: "1.21→1.22: istio: +1 ~30 -0 (=0)"},
		{Phase: "hop 2", Description: "1.22→1.23: istio: +0 ~31 -2 (=0)"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got := hopLines(&installer.UpgradePlan{Plan: &catalog.Plan{From: "1.23", To: "1.23"}}); len(got) != 1 || !strings.Contains(got[0].Description, "already installed") {
		t.Fatalf("no hops: %+v", got)
	}
}

// TestWizardFix applies a check's fix as tmbox preflight --fix does, on
// a host whose inotify limits are low, and then the check passes.
func TestWizardFix(t *testing.T) {
	h := newTestHost()
	b := &wizardBackend{g: &globalOptions{}, mode: tui.ModeInstall, host: h.host(), base: installer.Options{StateDir: t.TempDir()}}
	a := tui.Answers{Target: tui.TargetKind, ClusterName: "dev"}
	checks, err := b.Preflight(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(checks, func(c tui.Check) bool { return c.Name == preflight.CheckInotify })
	if i < 0 || checks[i].Status != tui.StatusFail || checks[i].Fix == nil || len(checks[i].Fix.Changes) == 0 {
		t.Fatalf("the inotify check %+v", checks)
	}
	if err := b.Fix(context.Background(), a, "os-arch"); err == nil || !strings.Contains(err.Error(), "no fix") {
		t.Fatalf("fix of a check without one: %v", err)
	}
	if err := b.Fix(context.Background(), a, preflight.CheckInotify); err != nil {
		t.Fatal(err)
	}
	if len(h.written) == 0 {
		t.Fatal("the fix wrote nothing")
	}
	checks, err = b.Preflight(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if c := checks[slices.IndexFunc(checks, func(c tui.Check) bool { return c.Name == preflight.CheckInotify })]; c.Status != tui.StatusPass {
		t.Fatalf("after the fix: %+v", c)
	}
	// Ignoring a failed check for the run makes it a warning.
	a.IgnorePreflightErrors = []string{"memory"}
	h.fs["proc/meminfo"] = &fstest.MapFile{Data: []byte("MemTotal:       1048576 kB\n")}
	checks, err = b.Preflight(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if c := checks[slices.IndexFunc(checks, func(c tui.Check) bool { return c.Name == "memory" })]; c.Status != tui.StatusWarn || !c.Ignored {
		t.Fatalf("an ignored check: %+v", c)
	}
}

// testHost is a host for preflight: Linux with docker, low inotify
// limits, and a WriteFile that writes into its filesystem.
type testHost struct {
	mu      sync.Mutex
	fs      fstest.MapFS
	written map[string]string
}

func newTestHost() *testHost {
	return &testHost{
		fs: fstest.MapFS{
			"etc/os-release":                         {Data: []byte("NAME=\"Ubuntu\"\nPRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\n")},
			"proc/meminfo":                           {Data: []byte("MemTotal:       33554432 kB\n")},
			"sys/fs/cgroup/cgroup.controllers":       {Data: []byte("cpuset cpu io memory pids\n")},
			"proc/sys/fs/inotify/max_user_watches":   {Data: []byte("8192\n")},
			"proc/sys/fs/inotify/max_user_instances": {Data: []byte("128\n")},
		},
		written: map[string]string{},
	}
}

func (h *testHost) host() *preflight.Host {
	return &preflight.Host{
		FS: h.fs, GOOS: "linux", GOARCH: "amd64", NumCPU: 16,
		Getenv: func(string) string { return "" },
		LookPath: func(name string) (string, error) {
			if name == "docker" {
				return "/usr/bin/docker", nil
			}
			return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
		},
		Command: func(_ context.Context, name string, args ...string) ([]byte, error) {
			switch strings.Join(append([]string{name}, args...), " ") {
			case "docker version --format {{.Server.Version}}":
				return []byte("27.3.1\n"), nil
			case "docker info --format {{.DockerRootDir}}":
				return []byte("/var/lib/docker\n"), nil
			}
			return nil, fmt.Errorf("run %s: unexpected in test", name)
		},
		FreeDisk: func(string) (uint64, error) { return 500 << 30, nil },
		PortFree: func(string) error { return nil },
		WriteFile: func(path string, data []byte, _ fs.FileMode) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.written[path] = string(data)
			if p := strings.TrimPrefix(path, "/"); strings.HasPrefix(p, "proc/") {
				h.fs[p] = &fstest.MapFile{Data: data}
			}
			return nil
		},
	}
}

// TestWizardOffline makes a plan with no mirror or bundle while every
// pinned URL refuses connections (a catalog whose URLs point at a closed
// local port, and an empty download cache): the wizard gets one sentence
// under the mirror's field, the download errors go to the log, and with a
// mirror the same plan works.
func TestWizardOffline(t *testing.T) {
	dir := t.TempDir()
	cat := strings.ReplaceAll(string(catalog.EmbeddedCatalog()), "url: https://", "url: https://127.0.0.1:1/")
	catFile := filepath.Join(dir, "catalog.yaml")
	writeFile(t, catFile, cat)
	var log bytes.Buffer
	b := &wizardBackend{g: &globalOptions{catalogFile: catFile}, mode: tui.ModeInstall, host: newTestHost().host(),
		base: installer.Options{StateDir: t.TempDir(), CacheDir: t.TempDir()}}
	b.logger = slog.New(slog.NewTextHandler(&log, nil))
	a := tui.Answers{Target: tui.TargetKind, ClusterName: "dev", Release: "1.21"}
	_, err := b.Plan(context.Background(), a)
	var fe *tui.FieldError
	if !errors.As(err, &fe) || fe.Field != tui.FieldMirror || fe.Message != offlineMessage {
		t.Fatalf("plan: %v", err)
	}
	if !strings.Contains(log.String(), "download https://127.0.0.1:1/") {
		t.Fatalf("the log lacks the download errors:\n%s", log.String())
	}
	if testing.Short() {
		return // rendering from the mirror takes a while
	}
	a.Mirror = upstreamDir(t)
	if _, err := b.Plan(context.Background(), a); err != nil {
		t.Fatalf("plan with a mirror: %v", err)
	}
}
