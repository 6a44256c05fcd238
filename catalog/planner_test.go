package catalog

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-version"
)

func TestPlan(t *testing.T) {
	embedded, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	gap, err := Parse([]byte(validCatalog("1.21", "1.23")), "gap")
	if err != nil {
		t.Fatal(err)
	}
	istioJump, err := Parse([]byte(strings.ReplaceAll(validCatalog("1.21", "1.22"), `"1.29.0"`, `"1.30.0"`)), "istio-jump")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                string
		catalog             *Catalog
		installed, target   string
		kubernetes          string
		allowDowngrade      bool
		wantHops            []string // hop names; nil with wantErr means no plan
		wantRefused         []string // per hop: substring of Refused ("" = runs)
		wantErr             string
		wantPlanWithRefusal bool
	}{
		{name: "upgrade one minor", catalog: embedded, installed: "1.21", target: "1.22", kubernetes: "1.34.4",
			wantHops: []string{"1.21→1.22"}, wantRefused: []string{""}},
		{name: "skip-minor request becomes two hops", catalog: embedded, installed: "1.21", target: "1.23", kubernetes: "v1.34.4",
			wantHops: []string{"1.21→1.22", "1.22→1.23"}, wantRefused: []string{"", ""}},
		{name: "no-op", catalog: embedded, installed: "1.22", target: "1.22", kubernetes: "1.34.0", wantHops: []string{}},
		{name: "fresh install", catalog: embedded, installed: "", target: "1.23", kubernetes: "1.36.1",
			wantHops: []string{"install 1.23"}, wantRefused: []string{""}},
		{name: "one-minor downgrade allowed", catalog: embedded, installed: "1.23", target: "1.22", kubernetes: "1.34.1", allowDowngrade: true,
			wantHops: []string{"1.23→1.22"}, wantRefused: []string{""}},
		{name: "downgrade without --allow-downgrade", catalog: embedded, installed: "1.23", target: "1.22",
			wantErr: "needs --allow-downgrade"},
		{name: "two-minor downgrade refused", catalog: embedded, installed: "1.23", target: "1.21", allowDowngrade: true,
			wantErr: "one minor at a time (to 1.22)"},
		{name: "Kubernetes too old for both hops", catalog: embedded, installed: "1.21", target: "1.23", kubernetes: "1.33.2",
			wantHops: []string{"1.21→1.22", "1.22→1.23"}, wantRefused: []string{"upgrade Kubernetes to 1.34 or newer first", "release 1.23 needs Kubernetes >=1.34, <=1.36 and the cluster runs 1.33.2: upgrade Kubernetes to 1.34"},
			wantErr: "1.22→1.23: release 1.23 needs", wantPlanWithRefusal: true},
		{name: "Kubernetes too new for the target", catalog: embedded, installed: "", target: "1.21", kubernetes: "1.35.0",
			wantHops: []string{"install 1.21"}, wantRefused: []string{"not support Kubernetes newer than 1.34"}, wantErr: "newer than 1.34", wantPlanWithRefusal: true},
		{name: "unknown Kubernetes is not checked", catalog: embedded, installed: "1.21", target: "1.22",
			wantHops: []string{"1.21→1.22"}, wantRefused: []string{""}},
		{name: "unknown target", catalog: embedded, installed: "1.21", target: "1.24",
			wantErr: `unknown release "1.24"; known releases: 1.21, 1.22, 1.23`},
		{name: "unknown installed", catalog: embedded, installed: "1.19", target: "1.22",
			wantErr: `installed: unknown release "1.19"`},
		{name: "catalog gap refused", catalog: gap, installed: "1.21", target: "1.23",
			wantHops: []string{"1.21→1.23"}, wantRefused: []string{"no release between 1.21 and 1.23"}, wantErr: "one minor per hop", wantPlanWithRefusal: true},
		{name: "Istio more than one minor refused", catalog: istioJump, installed: "1.21", target: "1.22",
			wantHops: []string{"1.21→1.22"}, wantRefused: []string{"Istio would move from 1.28.0 to 1.30.0"}, wantErr: "more than one minor", wantPlanWithRefusal: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kube *version.Version
			if tt.kubernetes != "" {
				var err error
				if kube, err = ParseKubernetesVersion(tt.kubernetes); err != nil {
					t.Fatal(err)
				}
			}
			p, err := tt.catalog.Plan(tt.installed, tt.target, kube, PlanOptions{AllowDowngrade: tt.allowDowngrade})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				var pe *PlanError
				if tt.wantPlanWithRefusal != errors.As(err, &pe) || tt.wantPlanWithRefusal != (p != nil) {
					t.Fatalf("plan %v / PlanError %v: want a refused plan = %v", p, pe, tt.wantPlanWithRefusal)
				}
				if p == nil {
					return
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if len(p.Hops) != len(tt.wantHops) {
				t.Fatalf("hops %+v, want %v", p.Hops, tt.wantHops)
			}
			for i, h := range p.Hops {
				if h.Name() != tt.wantHops[i] {
					t.Errorf("hop %d is %s, want %s", i, h.Name(), tt.wantHops[i])
				}
				if w := tt.wantRefused[i]; (w == "") != (h.Refused == "") || !strings.Contains(h.Refused, w) {
					t.Errorf("hop %s refused %q, want %q", h.Name(), h.Refused, w)
				}
				if len(h.Components) != len(ComponentNames()) {
					t.Errorf("hop %s lists %d components", h.Name(), len(h.Components))
				}
			}
		})
	}
}

// Each hop moves every component together to the next release's pins.
func TestPlanComponentVersions(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Plan("1.21", "1.23", nil, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]ComponentChange{
		{{Istio, "1.28.6", "1.29.2"}, {KnativeServing, "1.21.3", "1.22.1"}, {NetIstio, "1.21.4", "1.22.1"}, {KnativeEventing, "1.21.4", "1.22.2"}, {TriggerMesh, "1.27.0", "1.27.0"}, {TriggerMeshCore, "1.5.3", "1.5.3"}},
		{{Istio, "1.29.2", "1.30.3"}, {KnativeServing, "1.22.1", "1.23.0"}, {NetIstio, "1.22.1", "1.23.0"}, {KnativeEventing, "1.22.2", "1.23.0"}, {TriggerMesh, "1.27.0", "1.27.0"}, {TriggerMeshCore, "1.5.3", "1.5.3"}},
	}
	for i, h := range p.Hops {
		for j, ch := range h.Components {
			if ch != want[i][j] {
				t.Errorf("hop %s: %+v, want %+v", h.Name(), ch, want[i][j])
			}
		}
	}
	if p.Hops[0].Components[4].Changed() || !p.Hops[0].Components[0].Changed() {
		t.Error("Changed() is wrong")
	}
}

func TestParseKubernetesVersion(t *testing.T) {
	for in, ok := range map[string]bool{"1.34.2": true, "v1.34.2": true, "v1.34.2+k3s1": true, "v1.34.2-gke.100": true, "1.34": true, "2.0.0": false, "latest": false, "": false} {
		_, err := ParseKubernetesVersion(in)
		if (err == nil) != ok {
			t.Errorf("%q: err %v, want ok=%v", in, err, ok)
		}
	}
}

func TestParseReleaseName(t *testing.T) {
	for _, tc := range []struct {
		name         string
		major, minor int
		ok           bool
	}{
		{"1.22", 1, 22, true},
		{"2.0", 2, 0, true},
		{"1.022", 0, 0, false},
		{"1", 0, 0, false},
		{"v1.22", 0, 0, false},
		{"1.22.1", 0, 0, false},
		{"", 0, 0, false},
	} {
		major, minor, ok := ParseReleaseName(tc.name)
		if major != tc.major || minor != tc.minor || ok != tc.ok {
			t.Errorf("ParseReleaseName(%q) = %d, %d, %v; want %d, %d, %v", tc.name, major, minor, ok, tc.major, tc.minor, tc.ok)
		}
	}
}
