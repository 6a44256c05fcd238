package wait

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"

	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/internal/fakewatch"
)

var (
	deploymentsGVR    = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	statefulSetsGVR   = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}
	daemonSetsGVR     = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	jobsGVR           = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	apiServicesGVR    = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	endpointSlicesGVR = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
)

var listKinds = map[schema.GroupVersionResource]string{
	deploymentsGVR:    "DeploymentList",
	statefulSetsGVR:   "StatefulSetList",
	daemonSetsGVR:     "DaemonSetList",
	jobsGVR:           "JobList",
	apiServicesGVR:    "APIServiceList",
	endpointSlicesGVR: "EndpointSliceList",
}

// newDynamic is a fake dynamic client whose watches behave like an API
// server's (fakewatch).
func newDynamic(t *testing.T, objs ...runtime.Object) *dynamicfake.FakeDynamicClient {
	t.Helper()
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
	dyn.PrependWatchReactor("*", fakewatch.Reactor(dyn.Tracker(), listKinds))
	return dyn
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// obj builds an unstructured object; fields are merged into it.
func obj(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// deployment is a Deployment of one replica selecting app=name, with the
// given status.
func deployment(ns, name string, status map[string]any) *unstructured.Unstructured {
	u := obj("apps/v1", "Deployment", ns, name, map[string]any{
		"spec": map[string]any{
			"replicas": int64(1),
			"selector": map[string]any{"matchLabels": map[string]any{"app": name}},
		},
	})
	u.SetGeneration(1)
	if status != nil {
		u.Object["status"] = status
	}
	return u
}

func availableStatus() map[string]any {
	return map[string]any{
		"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1), "availableReplicas": int64(1),
		"conditions": []any{map[string]any{"type": "Available", "status": "True"}},
	}
}

func stuckStatus() map[string]any {
	return map[string]any{"observedGeneration": int64(1), "replicas": int64(1)}
}

// notes records notify calls.
type notes struct {
	mu    sync.Mutex
	lines []string
}

func (n *notes) notify(object, reason string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lines = append(n.lines, object+": "+reason)
}

func (n *notes) all() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.lines...)
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func TestWaitReadyDeploymentBecomesAvailable(t *testing.T) {
	const ns, name = "knative-serving", "activator"
	// Generation 1 not yet observed: the controller has not seen it.
	d := deployment(ns, name, map[string]any{"observedGeneration": int64(0)})
	dyn := newDynamic(t, d)
	w := &Waiter{Dynamic: dyn, Client: kubefake.NewClientset(), Log: discard(), DiagnoseEvery: time.Hour}

	// Once WaitReady has reported why the Deployment is not ready, the
	// "controller" makes it Available.
	var n notes
	var once sync.Once
	updated := make(chan error, 1)
	notify := func(object, reason string) {
		n.notify(object, reason)
		once.Do(func() {
			go func() {
				ready := deployment(ns, name, availableStatus())
				updated <- dyn.Tracker().Update(deploymentsGVR, ready, ns)
			}()
		})
	}
	start := time.Now()
	err := w.WaitReady(context.Background(), []*apply.Object{{Unstructured: d.DeepCopy(), Component: "serving"}}, "op-1", 3*time.Second, notify)
	if err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("WaitReady took %s after the Deployment became Available", d)
	}
	select {
	case err := <-updated:
		if err != nil {
			t.Fatalf("update status: %v", err)
		}
	default:
		t.Fatal("WaitReady returned before the Deployment became Available")
	}
	if want := "Deployment knative-serving/activator: rollout not yet observed"; !containsLine(n.all(), want) {
		t.Errorf("notify got %q, want a line %q", n.all(), want)
	}
	// It watched (the first list found it not ready).
	watched := false
	for _, a := range dyn.Actions() {
		if a.GetVerb() == "watch" && a.GetResource() == deploymentsGVR {
			watched = true
		}
	}
	if !watched {
		t.Error("WaitReady did not watch the Deployment")
	}
}

func TestWaitReadyAlreadyReady(t *testing.T) {
	apiSvc := obj("apiregistration.k8s.io/v1", "APIService", "", "v1beta1.custom.metrics.k8s.io", map[string]any{
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Available", "status": "True"}}},
	})
	slice := obj("discovery.k8s.io/v1", "EndpointSlice", "knative-serving", "webhook-abcde", map[string]any{
		"endpoints": []any{map[string]any{"addresses": []any{"10.0.0.1"}, "conditions": map[string]any{"ready": true}}},
	})
	slice.SetLabels(map[string]string{"kubernetes.io/service-name": "webhook"})
	webhook := obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "validation.webhook.serving.knative.dev", map[string]any{
		"webhooks": []any{
			map[string]any{"name": "a", "clientConfig": map[string]any{"service": map[string]any{"namespace": "knative-serving", "name": "webhook"}}},
			map[string]any{"name": "b", "clientConfig": map[string]any{"service": map[string]any{"namespace": "knative-serving", "name": "webhook"}}},
			map[string]any{"name": "c", "clientConfig": map[string]any{"url": "https://example.com"}},
		},
	})
	d := deployment("knative-serving", "controller", availableStatus())
	dyn := newDynamic(t, apiSvc, slice, d)
	w := &Waiter{Dynamic: dyn, Client: kubefake.NewClientset(), Log: discard()}
	objs := []*apply.Object{
		{Unstructured: apiSvc.DeepCopy(), Component: "c"},
		{Unstructured: webhook, Component: "c"},
		{Unstructured: d.DeepCopy(), Component: "c"},
		{Unstructured: obj("v1", "ConfigMap", "knative-serving", "config", nil), Component: "c"}, // not waited for
	}
	var n notes
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := w.WaitReady(ctx, objs, "op-1", time.Second, n.notify); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	if len(n.all()) != 0 {
		t.Errorf("notify called for ready objects: %q", n.all())
	}
	lists := map[string]int{}
	for _, a := range dyn.Actions() {
		if a.GetVerb() == "watch" {
			t.Errorf("ready objects were watched: %v", a)
		}
		if a.GetVerb() == "list" {
			lists[a.GetResource().Resource]++
		}
	}
	// One list each; the two webhooks calling the same Service are one
	// waitable.
	want := map[string]int{"apiservices": 1, "endpointslices": 1, "deployments": 1}
	if len(lists) != len(want) {
		t.Errorf("lists %v, want %v", lists, want)
	}
	for k, v := range want {
		if lists[k] != v {
			t.Errorf("lists %v, want %v", lists, want)
		}
	}
}

func TestWaitReadyNothingToWaitFor(t *testing.T) {
	dyn := newDynamic(t)
	w := &Waiter{Dynamic: dyn, Client: kubefake.NewClientset(), Log: discard()}
	objs := []*apply.Object{{Unstructured: obj("v1", "ConfigMap", "ns", "c", nil)}, {Unstructured: obj("v1", "Service", "ns", "s", nil)}}
	if err := w.WaitReady(context.Background(), objs, "op", time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	if a := dyn.Actions(); len(a) != 0 {
		t.Errorf("actions %v, want none", a)
	}
}

func TestWaitReadyNeverReady(t *testing.T) {
	const ns, name = "knative-serving", "activator"
	pod := func(status corev1.PodStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "activator-7d9f-x2v", Namespace: ns, UID: "u1", Labels: map[string]string{"app": name}}, Status: status}
	}
	tests := []struct {
		name     string
		pods     []runtime.Object
		diagnose time.Duration
		// want is in the error and in a notify line.
		want []string
	}{
		{
			name:     "workload status",
			diagnose: time.Hour,
			want:     []string{"Deployment knative-serving/activator: 0 of 1 replicas updated, 0 available"},
		},
		{
			name:     "no pods",
			diagnose: 10 * time.Millisecond,
			want:     []string{"Deployment knative-serving/activator: no pods created yet"},
		},
		{
			name:     "image pull",
			diagnose: 10 * time.Millisecond,
			pods: []runtime.Object{pod(corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
				Name: "activator", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "gcr.io/x/activator"`}},
			}}})},
			want: []string{"Deployment knative-serving/activator: pod activator-7d9f-x2v: container activator ImagePullBackOff: Back-off pulling image"},
		},
		{
			name:     "unschedulable with event",
			diagnose: 10 * time.Millisecond,
			pods: []runtime.Object{
				pod(corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
					Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/2 nodes are available: 2 Insufficient cpu.",
				}}}),
				&corev1.Event{
					ObjectMeta:     metav1.ObjectMeta{Name: "e1", Namespace: ns},
					InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "activator-7d9f-x2v", UID: "u1"},
					Type:           corev1.EventTypeWarning, Reason: "FailedScheduling", Message: "preemption is not helpful",
				},
			},
			want: []string{"Unschedulable: 0/2 nodes are available: 2 Insufficient cpu.", "(event FailedScheduling: preemption is not helpful)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := deployment(ns, name, stuckStatus())
			w := &Waiter{Dynamic: newDynamic(t, d), Client: kubefake.NewClientset(tt.pods...), Log: discard(), DiagnoseEvery: tt.diagnose}
			var n notes
			const budget = 250 * time.Millisecond
			start := time.Now()
			err := w.WaitReady(context.Background(), []*apply.Object{{Unstructured: d.DeepCopy(), Component: "serving"}}, "op-1", budget, n.notify)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatal("WaitReady returned nil for a Deployment that never becomes Available")
			}
			if elapsed < budget || elapsed > budget+time.Second {
				t.Errorf("WaitReady returned after %s, want about %s", elapsed, budget)
			}
			msg := err.Error()
			if !strings.Contains(msg, "not ready after 250ms") {
				t.Errorf("error %q does not name the budget", msg)
			}
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
				if !containsLine(n.all(), want) {
					t.Errorf("notify got %q, want a line containing %q", n.all(), want)
				}
			}
		})
	}
}

func TestWaitReadyFailedJob(t *testing.T) {
	const ns = "knative-serving"
	job := obj("batch/v1", "Job", ns, "", nil)
	job.SetGenerateName("storage-version-migration-")
	live := obj("batch/v1", "Job", ns, "storage-version-migration-abcde", map[string]any{
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Failed", "status": "True"}}},
	})
	live.SetGenerateName("storage-version-migration-")
	live.SetLabels(map[string]string{apply.LabelComponent: "serving", apply.LabelOperation: "op-1"})
	// A Job of another operation is not this operation's.
	other := obj("batch/v1", "Job", ns, "storage-version-migration-zzzzz", map[string]any{
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Complete", "status": "True"}}},
	})
	other.SetLabels(map[string]string{apply.LabelComponent: "serving", apply.LabelOperation: "op-0"})
	w := &Waiter{Dynamic: newDynamic(t, live, other), Client: kubefake.NewClientset(), Log: discard(), DiagnoseEvery: time.Hour}
	start := time.Now()
	err := w.WaitReady(context.Background(), []*apply.Object{{Unstructured: job, Component: "serving", Create: true}}, "op-1", 5*time.Second, nil)
	if err == nil {
		t.Fatal("WaitReady returned nil for a failed Job")
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("a failed Job is fatal, but WaitReady waited %s", time.Since(start))
	}
	for _, want := range []string{"Job storage-version-migration-abcde failed", "Jobs knative-serving/serving (op-1)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestWorkloadReady(t *testing.T) {
	type status = map[string]any
	avail := []any{map[string]any{"type": "Available", "status": "True"}}
	tests := []struct {
		name     string
		kind     string
		gen      int64
		replicas any // spec.replicas; nil: unset
		status   status
		want     bool
		reason   string
	}{
		{"deployment generation not observed", "Deployment", 2, int64(1), status{"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1), "availableReplicas": int64(1), "conditions": avail}, false, "rollout not yet observed"},
		{"deployment no status", "Deployment", 1, int64(1), nil, false, "rollout not yet observed"},
		{"deployment replicas not updated", "Deployment", 1, int64(3), status{"observedGeneration": int64(1), "replicas": int64(3), "updatedReplicas": int64(2), "availableReplicas": int64(3), "conditions": avail}, false, "2 of 3 replicas updated, 3 available"},
		{"deployment not available", "Deployment", 1, int64(3), status{"observedGeneration": int64(1), "replicas": int64(3), "updatedReplicas": int64(3), "availableReplicas": int64(1), "conditions": avail}, false, "3 of 3 replicas updated, 1 available"},
		{"deployment old replicas still running", "Deployment", 1, int64(3), status{"observedGeneration": int64(1), "replicas": int64(4), "updatedReplicas": int64(3), "availableReplicas": int64(3), "conditions": avail}, false, "3 of 3 replicas updated, 3 available"},
		{"deployment without Available condition", "Deployment", 1, int64(3), status{"observedGeneration": int64(1), "replicas": int64(3), "updatedReplicas": int64(3), "availableReplicas": int64(3)}, false, "3 of 3 replicas updated, 3 available"},
		{"deployment available", "Deployment", 1, int64(3), status{"observedGeneration": int64(1), "replicas": int64(3), "updatedReplicas": int64(3), "availableReplicas": int64(3), "conditions": avail}, true, ""},
		{"deployment default one replica", "Deployment", 1, nil, status{"observedGeneration": int64(1), "replicas": int64(1), "updatedReplicas": int64(1), "availableReplicas": int64(1), "conditions": avail}, true, ""},
		{"deployment scaled to zero", "Deployment", 1, int64(0), status{"observedGeneration": int64(1), "conditions": avail}, true, ""},
		{"statefulset generation not observed", "StatefulSet", 3, int64(1), status{"observedGeneration": int64(2), "readyReplicas": int64(1), "updatedReplicas": int64(1)}, false, "rollout not yet observed"},
		{"statefulset not updated", "StatefulSet", 1, int64(2), status{"observedGeneration": int64(1), "readyReplicas": int64(2), "updatedReplicas": int64(1)}, false, "2 of 2 replicas ready, 1 updated"},
		{"statefulset not ready", "StatefulSet", 1, int64(2), status{"observedGeneration": int64(1), "readyReplicas": int64(0), "updatedReplicas": int64(2)}, false, "0 of 2 replicas ready, 2 updated"},
		{"statefulset ready", "StatefulSet", 1, int64(2), status{"observedGeneration": int64(1), "readyReplicas": int64(2), "updatedReplicas": int64(2)}, true, ""},
		{"statefulset default one replica", "StatefulSet", 1, nil, status{"observedGeneration": int64(1), "readyReplicas": int64(1), "updatedReplicas": int64(1)}, true, ""},
		{"daemonset generation not observed", "DaemonSet", 2, nil, status{"observedGeneration": int64(1), "desiredNumberScheduled": int64(2), "updatedNumberScheduled": int64(2), "numberAvailable": int64(2)}, false, "rollout not yet observed"},
		{"daemonset not updated", "DaemonSet", 1, nil, status{"observedGeneration": int64(1), "desiredNumberScheduled": int64(3), "updatedNumberScheduled": int64(1), "numberAvailable": int64(3)}, false, "1 of 3 pods updated, 3 available"},
		{"daemonset not available", "DaemonSet", 1, nil, status{"observedGeneration": int64(1), "desiredNumberScheduled": int64(3), "updatedNumberScheduled": int64(3), "numberAvailable": int64(2)}, false, "3 of 3 pods updated, 2 available"},
		{"daemonset available", "DaemonSet", 1, nil, status{"observedGeneration": int64(1), "desiredNumberScheduled": int64(3), "updatedNumberScheduled": int64(3), "numberAvailable": int64(3)}, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := obj("apps/v1", tt.kind, "ns", "x", map[string]any{"spec": map[string]any{}})
			u.SetGeneration(tt.gen)
			if tt.replicas != nil {
				u.Object["spec"].(map[string]any)["replicas"] = tt.replicas
			}
			if tt.status != nil {
				u.Object["status"] = tt.status
			}
			got, reason := WorkloadReady(tt.kind)(u)
			if got != tt.want || reason != tt.reason {
				t.Errorf("WorkloadReady(%s) = %v, %q; want %v, %q", tt.kind, got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestPodSelectorOf(t *testing.T) {
	withSelector := func(sel any) []*unstructured.Unstructured {
		u := obj("apps/v1", "Deployment", "ns", "x", map[string]any{"spec": map[string]any{}})
		if sel != nil {
			u.Object["spec"].(map[string]any)["selector"] = sel
		}
		return []*unstructured.Unstructured{u}
	}
	tests := []struct {
		name    string
		items   []*unstructured.Unstructured
		want    string // the selector's String(); "<nil>" for none
		matches map[string]string
		misses  map[string]string
	}{
		{name: "no items", items: nil, want: "<nil>"},
		{name: "no selector", items: withSelector(nil), want: "<nil>"},
		{
			name:    "matchLabels",
			items:   withSelector(map[string]any{"matchLabels": map[string]any{"app": "activator", "role": "x"}}),
			want:    "app=activator,role=x",
			matches: map[string]string{"app": "activator", "role": "x", "pod-template-hash": "abc"},
			misses:  map[string]string{"app": "activator"},
		},
		{
			name: "matchExpressions",
			items: withSelector(map[string]any{"matchExpressions": []any{
				map[string]any{"key": "app", "operator": "In", "values": []any{"a", "b"}},
				map[string]any{"key": "canary", "operator": "DoesNotExist"},
			}}),
			want:    "app in (a,b),!canary",
			matches: map[string]string{"app": "b"},
			misses:  map[string]string{"app": "b", "canary": "1"},
		},
		{
			name:  "invalid operator",
			items: withSelector(map[string]any{"matchExpressions": []any{map[string]any{"key": "app", "operator": "Near", "values": []any{"a"}}}}),
			want:  "<nil>",
		},
		{name: "malformed", items: withSelector(map[string]any{"matchLabels": "app=x"}), want: "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sel := PodSelectorOf(tt.items)
			got := "<nil>"
			if sel != nil {
				got = sel.String()
			}
			if got != tt.want {
				t.Fatalf("PodSelectorOf = %s, want %s", got, tt.want)
			}
			if tt.matches != nil && !sel.Matches(labels.Set(tt.matches)) {
				t.Errorf("%s does not match %v", sel, tt.matches)
			}
			if tt.misses != nil && sel.Matches(labels.Set(tt.misses)) {
				t.Errorf("%s matches %v", sel, tt.misses)
			}
		})
	}
}

func TestDiagnosePods(t *testing.T) {
	const ns = "triggermesh"
	sel := labels.SelectorFromSet(labels.Set{"app": "controller"})
	pod := func(name string, lbls map[string]string, status corev1.PodStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Labels: lbls}, Status: status}
	}
	mine := map[string]string{"app": "controller"}
	running := corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	waiting := func(reason, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: "controller", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
	}
	tests := []struct {
		name string
		objs []runtime.Object
		want string
	}{
		{"no pods", nil, "no pods created yet"},
		{"only other pods", []runtime.Object{pod("other", map[string]string{"app": "webhook"}, corev1.PodStatus{Phase: corev1.PodPending})}, "no pods created yet"},
		{"healthy", []runtime.Object{pod("p", mine, running)}, ""},
		{
			"unschedulable",
			[]runtime.Object{pod("p", mine, corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable, Message: "0/1 nodes are available: 1 node(s) had untolerated taint."}}})},
			"pod p: Unschedulable: 0/1 nodes are available: 1 node(s) had untolerated taint.",
		},
		{
			"image pull backoff",
			[]runtime.Object{pod("p", mine, corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("ImagePullBackOff", `Back-off pulling image "gcr.io/triggermesh/controller:v1"`)}})},
			`pod p: container controller ImagePullBackOff: Back-off pulling image "gcr.io/triggermesh/controller:v1"`,
		},
		{
			"init container crash loop",
			[]runtime.Object{pod("p", mine, corev1.PodStatus{Phase: corev1.PodPending, InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 10s"}}}}})},
			"pod p: container init CrashLoopBackOff: back-off 10s",
		},
		{
			"container creating is just pending",
			[]runtime.Object{pod("p", mine, corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("ContainerCreating", "")}})},
			"pod p: Pending",
		},
		{
			"terminated with an error",
			[]runtime.Object{pod("p", mine, corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "controller", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 2}}}}})},
			"pod p: container controller terminated: Error (exit 2)",
		},
		{
			"not ready",
			[]runtime.Object{pod("p", mine, corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [controller]"}}})},
			"pod p: not Ready: ContainersNotReady containers with unready status: [controller]",
		},
		{
			"first problem pod wins, with its warning event",
			[]runtime.Object{
				pod("a", mine, running),
				pod("b", mine, corev1.PodStatus{Phase: corev1.PodPending}),
				&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: ns}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "b", UID: "uid-b"}, Type: corev1.EventTypeWarning, Reason: "FailedMount", Message: `secret "webhook-certs" not found`},
			},
			`pod b: Pending (event FailedMount: secret "webhook-certs" not found)`,
		},
		{
			"event repeating the reason is not appended",
			[]runtime.Object{
				pod("p", mine, corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{waiting("ErrImagePull", "not found")}}),
				&corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: ns}, InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "p", UID: "uid-p"}, Type: corev1.EventTypeWarning, Reason: "Failed", Message: "not found"},
			},
			"pod p: container controller ErrImagePull: not found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Waiter{Client: kubefake.NewClientset(tt.objs...), Log: discard()}
			if got := w.DiagnosePods(context.Background(), ns, sel); got != tt.want {
				t.Errorf("DiagnosePods = %q\nwant            %q", got, tt.want)
			}
		})
	}
}

// TestWaitReadyJobPodsDiagnosed: a Job's pods carry the Job controller's
// label, not tmbox's, so the reason a Job is stuck is read from the pods
// named by batch.kubernetes.io/job-name (it used to say "no pods created
// yet" while the pods sat Pending).
func TestWaitReadyJobPodsDiagnosed(t *testing.T) {
	const ns = "knative-serving"
	job := obj("batch/v1", "Job", ns, "", nil)
	job.SetGenerateName("storage-version-migration-")
	live := obj("batch/v1", "Job", ns, "storage-version-migration-abcde", map[string]any{"status": map[string]any{"active": int64(1)}})
	live.SetGenerateName("storage-version-migration-")
	live.SetLabels(map[string]string{apply.LabelComponent: "serving", apply.LabelOperation: "op-1"})
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "storage-version-migration-abcde-p1", Namespace: ns, UID: "u1",
			Labels: map[string]string{"batch.kubernetes.io/job-name": "storage-version-migration-abcde"}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
			Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "1 node(s) had untolerated taint",
		}}},
	}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unrelated", Namespace: ns, UID: "u2",
		Labels: map[string]string{"batch.kubernetes.io/job-name": "another-job"}}, Status: corev1.PodStatus{Phase: corev1.PodPending}}
	w := &Waiter{Dynamic: newDynamic(t, live), Client: kubefake.NewClientset(pod, other), Log: discard(), DiagnoseEvery: 10 * time.Millisecond}
	err := w.WaitReady(context.Background(), []*apply.Object{{Unstructured: job, Component: "serving", Create: true}}, "op-1", 250*time.Millisecond, nil)
	if err == nil {
		t.Fatal("WaitReady returned nil for a Job that never completes")
	}
	for _, want := range []string{"pod storage-version-migration-abcde-p1", "Unschedulable: 1 node(s) had untolerated taint"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	for _, bad := range []string{"no pods created yet", "unrelated"} {
		if strings.Contains(err.Error(), bad) {
			t.Errorf("error %q contains %q", err, bad)
		}
	}
}
