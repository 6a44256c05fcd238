package main

import (
	"context"
	"encoding/json"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
)

// TestIntegrationAirGapUpgrade walks 1.21 → 1.23 air-gapped (issue 17):
// one bundle carries every release; install 1.21 from it into a private
// registry; with the upstream registry stopped, upgrade from the bundle
// without --registry (taken from the state), checking after each hop that
// every pod runs from the private registry at the bundle's digests. A
// bundle lacking the target is refused before any write; --dry-run plans
// the same hops as tmbox plan.
func TestIntegrationAirGapUpgrade(t *testing.T) {
	c := startOwnCluster(t, suite.Cluster(t))
	f := newAirgapReleases(t, "1.21", "1.22", "1.23")
	dir := t.TempDir()
	full, partial := filepath.Join(dir, "walk.bundle"), filepath.Join(dir, "partial.bundle")
	for _, b := range []struct {
		file string
		args []string
	}{{full, []string{"--from", "1.21", "--to", "1.23"}}, {partial, []string{"--release", "1.21,1.22"}}} {
		args := append([]string{"--catalog", f.catalog, "bundle", "create", "--mirror", f.mirror, "--file", b.file}, b.args...)
		if _, errOut, err := run(t, args...); err != nil {
			t.Fatalf("bundle create %v: %v\n%s", b.args, err, errOut)
		}
	}
	out, _, err := run(t, "bundle", "inspect", full, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var inspected struct {
		Releases []struct{ Name string } `json:"releases"`
		Images   []struct{ Ref, Digest string }
	}
	if err := json.Unmarshal([]byte(out), &inspected); err != nil || len(inspected.Releases) != 3 {
		t.Fatalf("inspect: %v %s", err, out)
	}
	digests := map[string]bool{}
	for _, img := range inspected.Images {
		digests[img.Digest] = true
	}
	private := startRegistry(t) + "/mirror"
	state := filepath.Join(dir, "state")
	common := []string{"--kubeconfig", c.Kubeconfig, "--state-dir", state, "--yes", "--timeout", "2m"}
	if _, errOut, err := run(t, append([]string{"install", "--bundle", full, "--release", "1.21", "--registry", private}, common...)...); err != nil {
		t.Fatalf("install 1.21 from the walk bundle: %v\n%s", err, errOut)
	}
	f.stopUpstream()

	cs := kubernetes.NewForConfigOrDie(c.Config)
	fromPrivate := func(release string) {
		t.Helper()
		checked := 0
		for _, comp := range catalog.ComponentNames() {
			pods, err := cs.CoreV1().Pods("tm-"+comp).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pods.Items {
				if p.DeletionTimestamp != nil {
					continue
				}
				for _, ctr := range append(p.Spec.InitContainers, p.Spec.Containers...) {
					checked++
					d := ctr.Image[strings.LastIndex(ctr.Image, "@")+1:]
					if !strings.HasPrefix(ctr.Image, private+"/") || !digests[d] {
						t.Errorf("%s: pod %s/%s runs %s, not %s/…@<bundle digest>", release, p.Namespace, p.Name, ctr.Image, private)
					}
				}
			}
		}
		if checked == 0 {
			t.Fatalf("%s: no pod containers to check", release)
		}
		st, err := (&installer.GetStatus{Config: c.Config}).Run(context.Background())
		if err != nil || st.Release != release {
			t.Fatalf("%s: status %+v %v", release, st, err)
		}
	}
	fromPrivate("1.21")

	t.Run("a bundle without the target is refused before any write", func(t *testing.T) {
		before := clusterVersions(t, c.Config)
		_, _, err := run(t, append([]string{"upgrade", "--to", "1.23", "--bundle", partial}, common...)...)
		if err == nil || !strings.Contains(err.Error(), "missing 1.23") {
			t.Fatalf("upgrade from a 1.21–1.22 bundle: %v, want it refused naming 1.23", err)
		}
		if code := exitCode(context.Background(), err); code != exitUsage {
			t.Errorf("exit code %d, want %d", code, exitUsage)
		}
		if after := clusterVersions(t, c.Config); !maps.Equal(before, after) {
			t.Error("the refused upgrade wrote to the cluster")
		}
	})
	t.Run("dry-run plans the hops tmbox plan plans and writes nothing", func(t *testing.T) {
		before := clusterVersions(t, c.Config)
		out, errOut, err := run(t, append([]string{"upgrade", "--to", "1.23", "--bundle", full, "--dry-run", "-o", "json"}, common...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, errOut)
		}
		var plan *installer.UpgradePlan
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev installer.Event
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("not a JSON event: %s", line)
			}
			if ev.Type == installer.EventPlan && ev.Upgrade != nil {
				plan = ev.Upgrade
			}
		}
		if plan == nil || len(plan.Hops) != 2 {
			t.Fatalf("dry-run plan %+v, want two hops", plan)
		}
		pout, _, err := run(t, "plan", "--kubeconfig", c.Kubeconfig, "--to", "1.23", "--bundle", full, "--state-dir", state, "--details", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var offline installer.UpgradePlan
		if err := json.Unmarshal([]byte(pout), &offline); err != nil {
			t.Fatal(err)
		}
		names := func(p *installer.UpgradePlan) []string {
			var out []string
			for _, h := range p.Hops {
				out = append(out, h.Name())
			}
			return out
		}
		if dj, pj := mustJSON(t, plan), mustJSON(t, &offline); dj != pj {
			t.Errorf("upgrade --dry-run's plan differs from plan --to --details':\n%s\n%s", dj, pj)
		}
		if !slices.Equal(names(plan), names(&offline)) || plan.From != offline.From || plan.To != offline.To {
			t.Errorf("dry-run hops %v (%s→%s), plan --to hops %v (%s→%s)", names(plan), plan.From, plan.To, names(&offline), offline.From, offline.To)
		}
		if after := clusterVersions(t, c.Config); !maps.Equal(before, after) {
			t.Error("upgrade --dry-run wrote to the cluster")
		}
	})
	for _, to := range []string{"1.22", "1.23"} {
		_, errOut, err := run(t, append([]string{"upgrade", "--to", to, "--bundle", full}, common...)...)
		if err != nil {
			t.Fatalf("upgrade --to %s --bundle (registry from the state): %v\n%s", to, err, errOut)
		}
		if !strings.Contains(errOut, "images from "+private) {
			t.Errorf("upgrade --to %s does not say which registry it uses:\n%s", to, errOut)
		}
		fromPrivate(to)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
