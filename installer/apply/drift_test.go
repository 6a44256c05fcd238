package apply

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestDriftedFields: a field of tmbox's configuration owned by another
// manager (outside status and subresources) is drift; fields tmbox does
// not set, tmbox's own entries and webhook configurations are not.
func TestDriftedFields(t *testing.T) {
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}, "data": map[string]any{"a": "1", "b": "2"}}}
	deploy := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "d"},
		"spec": map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "x:1"}}}}}}}
	hook := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": map[string]any{"name": "h"}, "webhooks": []any{}}}
	entry := func(manager, subresource, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: manager, Operation: metav1.ManagedFieldsOperationUpdate, Subresource: subresource, FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}
	tests := []struct {
		name    string
		obj     *unstructured.Unstructured
		managed []metav1.ManagedFieldsEntry
		want    int
	}{
		{"edited data key", cm, []metav1.ManagedFieldsEntry{entry("kubectl-edit", "", `{"f:data":{"f:a":{}}}`)}, 1},
		{"added key tmbox does not set", cm, []metav1.ManagedFieldsEntry{entry("kubectl-edit", "", `{"f:data":{"f:z":{}}}`)}, 0},
		{"tmbox's own", cm, []metav1.ManagedFieldsEntry{entry(FieldManager, "", `{"f:data":{"f:a":{}}}`)}, 0},
		{"metadata only", cm, []metav1.ManagedFieldsEntry{entry("kubectl-label", "", `{"f:metadata":{"f:labels":{"f:x":{}}}}`)}, 0},
		{"status subresource", deploy, []metav1.ManagedFieldsEntry{entry("kube-controller-manager", "status", `{"f:status":{"f:replicas":{}}}`)}, 0},
		{"container image by key", deploy, []metav1.ManagedFieldsEntry{entry("kubectl-set", "", `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{"f:image":{}}}}}}}`)}, 1},
		{"other container", deploy, []metav1.ManagedFieldsEntry{entry("kubectl-set", "", `{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"other\"}":{"f:image":{}}}}}}}`)}, 0},
		{"webhook configuration", hook, []metav1.ManagedFieldsEntry{entry("webhook", "", `{"f:webhooks":{}}`)}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := driftedFields(tt.managed, tt.obj); len(got) != tt.want {
				t.Errorf("drifted %v, want %d paths", got, tt.want)
			}
		})
	}
}
