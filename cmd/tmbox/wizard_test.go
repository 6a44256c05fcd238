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
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/settings"
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
	m := tui.New(tui.Options{Backend: b, Mode: tui.ModeInstall, Plain: true, LogFile: b.logFile})
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
}

func TestWizardPhases(t *testing.T) {
	for _, c := range []struct {
		mode tui.Mode
		want []installer.PhaseInfo
	}{
		{tui.ModeInstall, installer.InstallPhases()},
		{tui.ModeUpgrade, installer.UpgradePhases()},
	} {
		got := (&wizardBackend{g: &globalOptions{}, mode: c.mode}).Phases()
		if len(got) != len(c.want) || len(got) == 0 {
			t.Fatalf("%s: phases %+v, want %+v", c.mode, got, c.want)
		}
		for i, p := range got {
			if p.Name != c.want[i].Name || p.Title != c.want[i].Title {
				t.Errorf("%s: phase %d is %+v, want %+v", c.mode, i, p, c.want[i])
			}
		}
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
		{"a setting the wizard has no field for", setting("mirror", "bad mirror"), []tui.FieldError{{Field: tui.FieldGeneral, Message: "bad mirror"}}, tui.Answers{}},
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
