package preflight

import (
	"testing"

	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestWorkloadRequests(t *testing.T) {
	tests := []struct {
		name            string
		doc             string
		nodes           int
		cpu, mem        int64
		pods            int
		largestCPU      int64
		largestMemBytes int64
	}{
		{"deployment default replicas", `
kind: Deployment
spec: {template: {spec: {containers: [{name: a, resources: {requests: {cpu: 100m, memory: 100Mi}}}, {name: b, resources: {requests: {cpu: 50m}}}]}}}`,
			1, 150, 100 << 20, 1, 150, 100 << 20},
		{"replicas and a larger init container", `
kind: StatefulSet
spec: {replicas: 3, template: {spec: {initContainers: [{name: i, resources: {requests: {cpu: "1", memory: 10Mi}}}], containers: [{name: a, resources: {requests: {cpu: 100m, memory: 64Mi}}}]}}}`,
			1, 3000, 3 * 64 << 20, 3, 1000, 64 << 20},
		{"sidecar init container adds", `
kind: Deployment
spec: {template: {spec: {initContainers: [{name: s, restartPolicy: Always, resources: {requests: {cpu: 10m}}}], containers: [{name: a, resources: {requests: {cpu: 100m}}}]}}}`,
			1, 110, 0, 1, 110, 0},
		{"daemonset once per node", `
kind: DaemonSet
spec: {template: {spec: {containers: [{name: a, resources: {requests: {cpu: 20m, memory: 1Mi}}}]}}}`,
			4, 80, 4 << 20, 4, 20, 1 << 20},
		{"zero replicas", `
kind: Deployment
spec: {replicas: 0, template: {spec: {containers: [{name: a, resources: {requests: {cpu: "2"}}}]}}}`,
			1, 0, 0, 0, 0, 0},
		{"not a workload", `
kind: ConfigMap
data: {a: b}`, 1, 0, 0, 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(tt.doc), &u.Object); err != nil {
				t.Fatal(err)
			}
			got, err := WorkloadRequests([]*unstructured.Unstructured{u}, tt.nodes)
			if err != nil {
				t.Fatal(err)
			}
			want := Requests{CPU: tt.cpu, Memory: tt.mem, Pods: tt.pods, LargestCPU: tt.largestCPU, LargestMemory: tt.largestMemBytes}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	for in, want := range map[int64]string{500: "0.5 CPU", 2000: "2 CPU", 2350: "2.35 CPU", 0: "0 CPU"} {
		if got := FormatCPU(in); got != want {
			t.Errorf("FormatCPU(%d) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[int64]string{1 << 30: "1.0 GiB", 3 << 29: "1.5 GiB", 200 << 20: "200 MiB"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
