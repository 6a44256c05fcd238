package installer

import (
	"context"
	"slices"
	"testing"

	"github.com/tmbox/tmbox/installer/apply"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"sigs.k8s.io/yaml"
)

func TestDeletionHold(t *testing.T) {
	tests := []struct {
		name, obj, want string
	}{
		{"nothing holds it", `{kind: ConfigMap, metadata: {name: a}}`, ""},
		{"a CRD whose instances cannot be listed", `
kind: CustomResourceDefinition
metadata: {name: clusterdomainclaims.networking.internal.knative.dev, finalizers: [customresourcecleanup.apiextensions.k8s.io]}
status:
  conditions:
  - {type: Established, status: "True", message: the initial names have been accepted}
  - {type: Terminating, status: "True", reason: InstanceDeletionFailed, message: "could not list instances: storage is (re)initializing"}`,
			" (finalizers customresourcecleanup.apiextensions.k8s.io; Terminating: could not list instances: storage is (re)initializing)"},
		{"a namespace whose content remains", `
kind: Namespace
metadata: {name: knative-serving}
spec: {finalizers: [kubernetes]}
status:
  phase: Terminating
  conditions:
  - {type: NamespaceDeletionDiscoveryFailure, status: "False", message: All resources successfully discovered}
  - {type: NamespaceContentRemaining, status: "True", message: "Some resources are remaining: services.serving.knative.dev has 1 resource instances"}
  - {type: NamespaceFinalizersRemaining, status: "True", message: "Some content in the namespace has finalizers remaining: serving.knative.dev in 1 resource instances"}`,
			" (NamespaceContentRemaining: Some resources are remaining: services.serving.knative.dev has 1 resource instances; NamespaceFinalizersRemaining: Some content in the namespace has finalizers remaining: serving.knative.dev in 1 resource instances)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := deletionHold(fromYAML(t, tt.obj)); got != tt.want {
				t.Errorf("deletionHold:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestListSome(t *testing.T) {
	tests := []struct {
		items []string
		n     int
		want  string
	}{
		{nil, 3, ""},
		{[]string{"a", "b"}, 3, "a, b"},
		{[]string{"a", "b", "c", "d"}, 2, "a, b and 2 more"},
	}
	for _, tt := range tests {
		if got := listSome(tt.items, tt.n); got != tt.want {
			t.Errorf("listSome(%q, %d) = %q, want %q", tt.items, tt.n, got, tt.want)
		}
	}
}

func TestFailedFinalizing(t *testing.T) {
	tests := []struct {
		name, crd string
		want      bool
	}{
		{"failed", `status: {conditions: [{type: Terminating, status: "True", reason: InstanceDeletionFailed}]}`, true},
		{"in progress", `status: {conditions: [{type: Terminating, status: "True", reason: InstanceDeletionInProgress}]}`, false},
		{"not terminating", `status: {conditions: [{type: Established, status: "True"}]}`, false},
		{"terminated", `status: {conditions: [{type: Terminating, status: "False", reason: InstanceDeletionFailed}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failedFinalizing(fromYAML(t, tt.crd)); got != tt.want {
				t.Errorf("failedFinalizing = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNudgeFinalizer: the nudge changes an annotation (what makes the CRD
// finalizer queue the CRD again), nothing else.
func TestNudgeFinalizer(t *testing.T) {
	crd := &unstructured.Unstructured{}
	crd.SetAPIVersion("apiextensions.k8s.io/v1")
	crd.SetKind("CustomResourceDefinition")
	crd.SetName("clusterdomainclaims.networking.internal.knative.dev")
	crd.SetFinalizers([]string{"customresourcecleanup.apiextensions.k8s.io"})
	gvr := apply.CRDResource()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{gvr: "CustomResourceDefinitionList"}, crd)
	client := dyn.Resource(gvr)
	for i := range 2 {
		if err := nudgeFinalizer(context.Background(), client, crd.GetName()); err != nil {
			t.Fatal(err)
		}
		got, err := client.Get(context.Background(), crd.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetAnnotations()[nudgeAnnotation] == "" {
			t.Errorf("nudge %d: no %s annotation: %v", i, nudgeAnnotation, got.GetAnnotations())
		}
		if !slices.Equal(got.GetFinalizers(), crd.GetFinalizers()) {
			t.Errorf("nudge %d changed the finalizers: %v", i, got.GetFinalizers())
		}
	}
}

// fromYAML is an object written as YAML.
func fromYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	var u unstructured.Unstructured
	if err := yaml.Unmarshal([]byte(s), &u.Object); err != nil {
		t.Fatal(err)
	}
	return &u
}
