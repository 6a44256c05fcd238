package installer

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/manifests"
	"github.com/tmbox/tmbox/preflight"
)

// kindControlPlane is what a kind node's own pods request (kube-apiserver
// 250m, controller-manager 200m, scheduler 100m, etcd 100m + 100Mi,
// CoreDNS 2×100m + 2×70Mi, kindnet 100m + 50Mi), rounded up, plus the
// memory the control plane really uses beyond its requests.
const (
	kindControlPlaneMilliCPU = 1000
	kindControlPlaneMemory   = 2 << 30
)

// forEachRelease runs f as a subtest for each release of the embedded
// catalog, with the shared upstream manifests (skipped when absent).
func forEachRelease(t *testing.T, f func(t *testing.T, dir string, rel *catalog.Release)) {
	t.Helper()
	dir := filepath.Join("..", "..", "shared", "upstream")
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("the upstream manifests are not at %s: %v", dir, err)
	}
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range cat.ReleaseNames() {
		rel, err := cat.Release(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(rel.Name, func(t *testing.T) { f(t, dir, rel) })
	}
}

// TestHostRequirementsCoverRequests checks the catalog's host needs of each
// release against its manifests: the sum of the pods' requests plus kind's
// control plane must fit in what the catalog says a kind host needs.
func TestHostRequirementsCoverRequests(t *testing.T) {
	forEachRelease(t, func(t *testing.T, dir string, rel *catalog.Release) {
		d, err := objectsFor(context.Background(), catalog.Mirror{Dir: dir}, rel, catalog.ComponentNames(), renderInputs{kindNodePorts: true})
		if err != nil {
			t.Fatal(err)
		}
		req, err := preflight.WorkloadRequests(d.unstructured(), 1)
		if err != nil {
			t.Fatal(err)
		}
		cpu, mem := req.CPU+kindControlPlaneMilliCPU, req.Memory+kindControlPlaneMemory
		t.Logf("%d pods request %s and %s; with kind's control plane %s and %s; catalog: %d CPUs, %s",
			req.Pods, preflight.FormatCPU(req.CPU), preflight.FormatBytes(req.Memory), preflight.FormatCPU(cpu), preflight.FormatBytes(mem), rel.Host.CPUs, rel.Host.Memory)
		if int64(rel.Host.CPUs)*1000 < cpu {
			t.Errorf("host.cpus %d < %s needed", rel.Host.CPUs, preflight.FormatCPU(cpu))
		}
		if int64(rel.Host.MemoryBytes()) < mem {
			t.Errorf("host.memory %s < %s needed", rel.Host.Memory, preflight.FormatBytes(mem))
		}
	})
}

func TestPinIngressNodePorts(t *testing.T) {
	svc := func(ports ...any) *apply.Object {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Service",
			"metadata": map[string]any{"name": "istio-ingressgateway", "namespace": "istio-system"},
			"spec":     map[string]any{"type": "LoadBalancer", "ports": ports},
		}}
		return &apply.Object{Unstructured: u, Component: catalog.Istio}
	}
	port := func(name string, p int64) any { return map[string]any{"name": name, "port": p} }
	tests := []struct {
		name    string
		objs    []*apply.Object
		wantErr bool
	}{
		{"gateway with 80 and 443", []*apply.Object{svc(port("status-port", 15021), port("http2", 80), port("https", 443))}, false},
		{"no 443", []*apply.Object{svc(port("http2", 80))}, true},
		{"no gateway", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pinIngressNodePorts(tt.objs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			u := tt.objs[0].Unstructured
			if typ, _, _ := unstructured.NestedString(u.Object, "spec", "type"); typ != "NodePort" {
				t.Errorf("type %q", typ)
			}
			ports, _, _ := unstructured.NestedSlice(u.Object, "spec", "ports")
			want := map[int64]any{15021: nil, 80: int64(manifests.IngressHTTPNodePort), 443: int64(manifests.IngressHTTPSNodePort)}
			for _, p := range ports {
				pm := p.(map[string]any)
				if pm["nodePort"] != want[pm["port"].(int64)] {
					t.Errorf("port %v: nodePort %v", pm["port"], pm["nodePort"])
				}
			}
		})
	}
}
