package testcluster

import (
	"context"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Objects maps every object of the cluster ("resource.group ns/name") to
// what value says of it — except leases, events and nodes, which the
// control plane and kwok rewrite on their own. Tests compare two calls to
// prove that nothing was written.
func Objects(t testing.TB, cfg *rest.Config, value func(*unstructured.Unstructured) string) map[string]string {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{}
	lists, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	out := map[string]string{}
	for _, l := range lists {
		gv, _ := schema.ParseGroupVersion(l.GroupVersion)
		for _, r := range l.APIResources {
			if !slices.Contains(r.Verbs, "list") || strings.Contains(r.Name, "/") || slices.Contains([]string{"leases", "events", "nodes"}, r.Name) {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatalf("list %s: %v", r.Name, err)
			}
			for i := range items.Items {
				it := &items.Items[i]
				out[r.Name+"."+gv.Group+" "+it.GetNamespace()+"/"+it.GetName()] = value(it)
			}
		}
	}
	return out
}
