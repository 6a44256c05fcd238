package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/tmbox/tmbox/installer"
)

// TestIntegrationDryRunPlan: install --dry-run -o json emits one plan
// event per phase, preflight and cluster included, in run order, each
// carrying structured counts, and writes nothing.
func TestIntegrationDryRunPlan(t *testing.T) {
	c := startOwnCluster(t, suite.Cluster(t))
	before := clusterVersions(t, c.Config)
	out, errOut, err := run(t, "install", "--kubeconfig", c.Kubeconfig, "--release", "1.21", "--mirror", upstreamDir(t), "--dry-run", "--yes", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var plans []installer.PhasePlan
	for i, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var e installer.Event
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("stdout line %d is not JSON: %q", i+1, l)
		}
		if e.Type != installer.EventPlan {
			continue
		}
		if e.Plan == nil || e.Plan.Phase != e.Phase {
			t.Fatalf("plan event without its plan: %s", l)
		}
		plans = append(plans, *e.Plan)
	}
	var names []string
	for _, p := range plans {
		names = append(names, p.Phase)
	}
	if want := installer.PhaseNames(); strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("plan events for phases %v, want one per phase %v", names, want)
	}
	byPhase := map[string]installer.PhasePlan{}
	for _, p := range plans {
		byPhase[p.Phase] = p
	}
	if p := byPhase[installer.PhasePreflight]; p.Checks == 0 || p.Failures != 0 {
		t.Errorf("preflight plan %+v: want checks counted, no failures", p)
	}
	if p := byPhase[installer.PhaseCluster]; !strings.Contains(p.Summary, "existing cluster at") {
		t.Errorf("cluster plan %+v", p)
	}
	for _, name := range []string{installer.PhaseIstio, installer.PhaseKnativeServing, installer.PhaseKnativeEventing, installer.PhaseTriggerMesh} {
		p := byPhase[name]
		if len(p.Components) == 0 {
			t.Errorf("%s plan has no component counts: %+v", name, p)
		}
		for _, d := range p.Components {
			if d.Add == 0 || d.Change != 0 || d.Unchanged != 0 {
				t.Errorf("%s: %+v, want only additions on an empty cluster", name, d)
			}
		}
	}
	if p := byPhase[installer.PhaseVerify]; p.Workloads == 0 {
		t.Errorf("verify plan %+v: want the workloads counted", p)
	}
	// Only tmbox's own entries count (clusterVersions): a cluster this
	// fresh still has its controllers creating objects of their own.
	if b, a := before, clusterVersions(t, c.Config); !maps.Equal(b, a) {
		for k, v := range a {
			if b[k] != v {
				t.Errorf("--dry-run wrote to %s", k)
			}
		}
		for k := range b {
			if _, ok := a[k]; !ok {
				t.Errorf("--dry-run deleted %s", k)
			}
		}
	}
}
