package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/tui"
)

// TestIntegrationWizard walks the whole wizard by keystrokes, with the real
// backend, against the real test cluster and the shared upstream mirror:
// welcome → target (the kubeconfig's context) → release 1.21 → components →
// air gap → overlay → preflight → plan → confirm → progress → summary, and
// the stack is installed and healthy.
func TestIntegrationWizard(t *testing.T) {
	shared := suite.Cluster(t)
	c := startOwnCluster(t, shared)
	g := &globalOptions{kubeconfig: c.Kubeconfig}
	b := &wizardBackend{g: g, mode: tui.ModeInstall, base: installer.Options{Mirror: upstreamDir(t), PhaseTimeout: 2 * time.Minute, StateDir: t.TempDir()}}
	b.logFile = filepath.Join(t.TempDir(), "wizard.log")
	m := tui.New(tui.Options{Backend: b, Mode: tui.ModeInstall, Plain: true, LogFile: b.logFile})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(100, 30))
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
	wait("step 1 of 9", 5*time.Second)
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
	if a.Target != tui.TargetExisting || a.Release != "1.21" || sum.Release != "1.21" || len(sum.Versions) != 6 {
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
	cases := []struct {
		name string
		err  error
		want []tui.FieldError
	}{
		{"none", nil, nil},
		{"plain error", errors.New("bad mirror"), []tui.FieldError{{Field: tui.FieldGeneral, Message: "bad mirror"}}},
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
		{"wrapped", fmt.Errorf("options: %w", setting("registry", "bad registry")), []tui.FieldError{{Field: tui.FieldRegistry, Message: "bad registry"}}},
		{"a setting the wizard has no field for", setting("mirror", "bad mirror"), []tui.FieldError{{Field: tui.FieldGeneral, Message: "bad mirror"}}},
		{"nested joins", errors.Join(errors.Join(setting("bundle", "a"), errors.New("b"))), []tui.FieldError{{Field: tui.FieldBundle, Message: "a"}, {Field: tui.FieldGeneral, Message: "b"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fieldErrors(c.err); !slices.Equal(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
}

// TestWizardValidate asks the installer's own rules through the wizard's
// Validate. While the installer does not name the setting of an error yet,
// FieldGeneral is accepted too (it is shown on the last form step).
func TestWizardValidate(t *testing.T) {
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.yaml")
	if err := os.WriteFile(overlay, []byte("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		a     tui.Answers
		field string // "" for no errors
		text  string
	}{
		{"existing cluster", tui.Answers{Target: tui.TargetExisting, Context: "prod"}, "", ""},
		{"kind cluster", tui.Answers{Target: tui.TargetKind, ClusterName: "dev", IstioOverlay: overlay}, "", ""},
		{"bad cluster name", tui.Answers{Target: tui.TargetKind, ClusterName: "Dev_1"}, tui.FieldClusterName, "cluster name"},
		{"long cluster name", tui.Answers{Target: tui.TargetKind, ClusterName: strings.Repeat("a", 60)}, tui.FieldClusterName, "cluster name"},
		{"core without triggermesh", tui.Answers{Target: tui.TargetExisting, Components: []string{"istio", "knative-serving", "net-istio", "triggermesh-core"}},
			tui.FieldComponents, "triggermesh-core needs triggermesh"},
		{"registry without bundle", tui.Answers{Target: tui.TargetKind, ClusterName: "dev", Registry: "reg.corp:5000/tmbox"}, tui.FieldRegistry, "registry"},
		{"missing bundle", tui.Answers{Target: tui.TargetKind, ClusterName: "dev", Bundle: filepath.Join(dir, "x.bundle")}, tui.FieldBundle, "x.bundle"},
		{"missing overlay", tui.Answers{Target: tui.TargetExisting, IstioOverlay: filepath.Join(dir, "nope.yaml")}, tui.FieldIstioOverlay, "nope.yaml"},
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
