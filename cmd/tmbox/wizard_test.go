package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
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
