// Package wait waits until applied objects are ready — workloads, Jobs,
// APIServices, webhook Services — by watching them, and explains what holds
// them back (pod conditions, container states, events). The install's
// verify phase and status share its judgements.
package wait

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tmbox/tmbox/installer/apply"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// Waiter waits until a component's objects are ready, by watching them, and
// explains what holds them back: pod conditions, container states, events.
type Waiter struct {
	Dynamic dynamic.Interface
	Client  kubernetes.Interface
	Log     *slog.Logger
	// DiagnoseEvery is how often pods are inspected while waiting
	// (default 2 s).
	DiagnoseEvery time.Duration
}

// waitable is one thing to wait for.
type waitable struct {
	name string // for messages, e.g. "Deployment knative-serving/activator"
	gvr  schema.GroupVersionResource
	ns   string
	// fieldSel / labelSel select what to watch.
	fieldSel, labelSel string
	// ready judges the watched objects (all of them, for label selectors).
	ready func(items []*unstructured.Unstructured) (bool, string, error)
	// podSelector finds the pods to diagnose, when the object runs pods.
	podSelector func(items []*unstructured.Unstructured) labels.Selector
}

// WaitReady waits until every workload, Job, APIService and webhook service
// among objs is ready, or budget runs out. operation selects the Jobs that
// this operation created. notify (may be nil) receives a line each time the
// reason an object is not ready changes.
func (w *Waiter) WaitReady(ctx context.Context, objs []*apply.Object, operation string, budget time.Duration, notify func(object, reason string)) error {
	items := w.waitables(objs, operation)
	if len(items) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()

	var mu sync.Mutex
	reasons := map[string]string{}
	pending := map[string]*waitable{}
	latest := map[string][]*unstructured.Unstructured{}
	for _, it := range items {
		pending[it.name] = it
	}
	setReason := func(name, reason string) {
		mu.Lock()
		changed := reasons[name] != reason
		reasons[name] = reason
		mu.Unlock()
		if changed && reason != "" && notify != nil {
			notify(name, reason)
		}
	}

	diagDone := make(chan struct{})
	diagCtx, stopDiag := context.WithCancel(ctx)
	go func() {
		defer close(diagDone)
		every := w.DiagnoseEvery
		if every == 0 {
			every = 2 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-diagCtx.Done():
				return
			case <-t.C:
			}
			mu.Lock()
			var todo []*waitable
			snap := map[string][]*unstructured.Unstructured{}
			for name, it := range pending {
				if it.podSelector != nil {
					todo = append(todo, it)
					snap[name] = latest[name]
				}
			}
			mu.Unlock()
			for _, it := range todo {
				if sel := it.podSelector(snap[it.name]); sel != nil {
					if why := w.DiagnosePods(diagCtx, it.ns, sel); why != "" {
						setReason(it.name, why)
					}
				}
			}
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, len(items))
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := w.watchUntil(ctx, it, func(objs []*unstructured.Unstructured, reason string) {
				mu.Lock()
				latest[it.name] = objs
				mu.Unlock()
				if reason != "" {
					mu.Lock()
					podReason := reasons[it.name] != "" && it.podSelector != nil
					mu.Unlock()
					if !podReason {
						setReason(it.name, reason)
					}
				}
			})
			if err == nil {
				mu.Lock()
				delete(pending, it.name)
				mu.Unlock()
				w.Log.Debug("ready", "object", it.name)
				return
			}
			errs <- err
		}()
	}
	wg.Wait()
	stopDiag()
	<-diagDone
	close(errs)
	var fatal []error
	for err := range errs {
		var fe *fatalError
		if errors.As(err, &fe) {
			fatal = append(fatal, fe.err)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	var lines []string
	for name := range pending {
		r := reasons[name]
		if r == "" {
			r = "not ready"
		}
		lines = append(lines, name+": "+r)
	}
	sort.Strings(lines)
	if len(fatal) > 0 {
		return fmt.Errorf("%w (%s)", errors.Join(fatal...), strings.Join(lines, "; "))
	}
	if ctx.Err() != nil && parentDone(ctx) {
		return fmt.Errorf("not ready after %s: %s", budget, strings.Join(lines, "; "))
	}
	return fmt.Errorf("not ready: %s", strings.Join(lines, "; "))
}

// parentDone reports whether ctx ended by its own deadline.
func parentDone(ctx context.Context) bool { return errors.Is(ctx.Err(), context.DeadlineExceeded) }

// fatalError is a failure waiting cannot fix (a failed Job).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// watchUntil watches the waitable until ready says so.
func (w *Waiter) watchUntil(ctx context.Context, it *waitable, seen func([]*unstructured.Unstructured, string)) error {
	res := w.Dynamic.Resource(it.gvr)
	var ri dynamic.ResourceInterface = res
	if it.ns != "" {
		ri = res.Namespace(it.ns)
	}
	lw := &cache.ListWatch{
		ListFunc: func(o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector, o.LabelSelector = it.fieldSel, it.labelSel
			return ri.List(ctx, o)
		},
		WatchFunc: func(o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector, o.LabelSelector = it.fieldSel, it.labelSel
			return ri.Watch(ctx, o)
		},
	}
	// One list first: what is already ready needs no watch (and no wait
	// for an informer's cache to sync, which polls every 100ms).
	if list, err := lw.ListFunc(metav1.ListOptions{}); err == nil {
		if ul, ok := list.(*unstructured.UnstructuredList); ok {
			objs := make([]*unstructured.Unstructured, 0, len(ul.Items))
			for i := range ul.Items {
				objs = append(objs, &ul.Items[i])
			}
			ready, reason, err := it.ready(objs)
			if err != nil {
				return &fatalError{fmt.Errorf("%s: %w", it.name, err)}
			}
			seen(objs, reason)
			if ready {
				return nil
			}
		}
	}
	store := map[string]*unstructured.Unstructured{}
	var fatal error
	_, err := watchtools.UntilWithSync(ctx, lw, &unstructured.Unstructured{}, func(store cache.Store) (bool, error) { return false, nil },
		func(ev watch.Event) (bool, error) {
			u, ok := ev.Object.(*unstructured.Unstructured)
			if !ok {
				return false, nil
			}
			key := u.GetNamespace() + "/" + u.GetName()
			if ev.Type == watch.Deleted {
				delete(store, key)
			} else {
				store[key] = u
			}
			objs := make([]*unstructured.Unstructured, 0, len(store))
			for _, o := range store {
				objs = append(objs, o)
			}
			ready, reason, err := it.ready(objs)
			if err != nil {
				fatal = fmt.Errorf("%s: %w", it.name, err)
				return false, fatal
			}
			seen(objs, reason)
			return ready, nil
		})
	if fatal != nil {
		return &fatalError{fatal}
	}
	return err
}

// waitables turns objects into things to wait for.
func (w *Waiter) waitables(objs []*apply.Object, operation string) []*waitable {
	var out []*waitable
	jobs := map[string]bool{} // namespace/component already covered
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		name := apply.KeyOf(o.Unstructured).Kind + " " + nsName(o.GetNamespace(), o.GetName())
		byName := fields.OneTermEqualSelector("metadata.name", o.GetName()).String()
		switch {
		case gvk.Group == "apps" && (gvk.Kind == "Deployment" || gvk.Kind == "StatefulSet" || gvk.Kind == "DaemonSet"):
			kind := gvk.Kind
			out = append(out, &waitable{
				name: name, gvr: schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: strings.ToLower(kind) + "s"},
				ns: o.GetNamespace(), fieldSel: byName,
				ready:       func(items []*unstructured.Unstructured) (bool, string, error) { return one(items, WorkloadReady(kind)) },
				podSelector: PodSelectorOf,
			})
		case gvk.Group == "batch" && gvk.Kind == "Job" && o.Create:
			k := o.GetNamespace() + "/" + o.Component
			if jobs[k] {
				continue
			}
			jobs[k] = true
			sel := labels.SelectorFromSet(labels.Set{apply.LabelComponent: o.Component, apply.LabelOperation: operation}).String()
			out = append(out, &waitable{
				name: "Jobs " + o.GetNamespace() + "/" + o.Component + " (" + operation + ")", gvr: schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"},
				ns: o.GetNamespace(), labelSel: sel, ready: jobsComplete, podSelector: jobPods,
			})
		case gvk.Group == "apiregistration.k8s.io" && gvk.Kind == "APIService":
			out = append(out, &waitable{
				name: name, gvr: schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"},
				fieldSel: byName,
				ready: func(items []*unstructured.Unstructured) (bool, string, error) {
					return one(items, func(u *unstructured.Unstructured) (bool, string) {
						return apply.HasCondition(u, "Available", "True"), "APIService not Available"
					})
				},
			})
		case gvk.Group == "admissionregistration.k8s.io" && (gvk.Kind == "ValidatingWebhookConfiguration" || gvk.Kind == "MutatingWebhookConfiguration"):
			out = append(out, webhookServices(o.Unstructured)...)
		}
	}
	// One waitable per webhook service.
	seen := map[string]bool{}
	dedup := out[:0]
	for _, it := range out {
		if !seen[it.name] {
			seen[it.name] = true
			dedup = append(dedup, it)
		}
	}
	return dedup
}

func nsName(ns, name string) string {
	if ns == "" {
		return name
	}
	return ns + "/" + name
}

// one applies check to the single object of a by-name watch.
func one(items []*unstructured.Unstructured, check func(*unstructured.Unstructured) (bool, string)) (bool, string, error) {
	if len(items) == 0 {
		return false, "does not exist yet", nil
	}
	ok, why := check(items[0])
	if ok {
		return true, "", nil
	}
	return false, why, nil
}

// WorkloadReady is the readiness check of a Deployment, StatefulSet or
// DaemonSet (kind): its controller observed the latest generation, and
// every replica (pod) runs that generation and is available.
func WorkloadReady(kind string) func(u *unstructured.Unstructured) (bool, string) {
	return func(u *unstructured.Unstructured) (bool, string) {
		gen := u.GetGeneration()
		observed, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
		if observed < gen {
			return false, "rollout not yet observed"
		}
		i := func(path ...string) int64 {
			v, _, _ := unstructured.NestedInt64(u.Object, path...)
			return v
		}
		switch kind {
		case "Deployment":
			want := int64(1)
			if r, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); found {
				want = r
			}
			upd, avail, total := i("status", "updatedReplicas"), i("status", "availableReplicas"), i("status", "replicas")
			if upd == want && avail == want && total == want && apply.HasCondition(u, "Available", "True") {
				return true, ""
			}
			return false, fmt.Sprintf("%d of %d replicas updated, %d available", upd, want, avail)
		case "StatefulSet":
			want := int64(1)
			if r, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); found {
				want = r
			}
			ready, upd := i("status", "readyReplicas"), i("status", "updatedReplicas")
			if ready == want && upd == want {
				return true, ""
			}
			return false, fmt.Sprintf("%d of %d replicas ready, %d updated", ready, want, upd)
		default: // DaemonSet
			desired, upd, avail := i("status", "desiredNumberScheduled"), i("status", "updatedNumberScheduled"), i("status", "numberAvailable")
			if upd == desired && avail == desired {
				return true, ""
			}
			return false, fmt.Sprintf("%d of %d pods updated, %d available", upd, desired, avail)
		}
	}
}

// jobsComplete is ready when every selected Job has completed; a failed Job
// is an error.
func jobsComplete(items []*unstructured.Unstructured) (bool, string, error) {
	if len(items) == 0 {
		return false, "no Jobs yet", nil
	}
	done := 0
	for _, u := range items {
		if apply.HasCondition(u, "Failed", "True") {
			return false, "", fmt.Errorf("Job %s failed", u.GetName())
		}
		if apply.HasCondition(u, "Complete", "True") {
			done++
		}
	}
	if done == len(items) {
		return true, "", nil
	}
	return false, fmt.Sprintf("%d of %d Jobs complete", done, len(items)), nil
}

// PodSelectorOf is the pod selector (spec.selector) of the first workload
// in items, to find its pods when it is not ready; nil when there is none.
func PodSelectorOf(items []*unstructured.Unstructured) labels.Selector {
	if len(items) == 0 {
		return nil
	}
	raw, found, _ := unstructured.NestedMap(items[0].Object, "spec", "selector")
	if !found {
		return nil
	}
	var ls metav1.LabelSelector
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return nil
	}
	return sel
}

// jobPods selects the pods of the given Jobs by the label the Job
// controller puts on them (their templates need not carry tmbox's labels);
// nil when there are no Jobs.
func jobPods(items []*unstructured.Unstructured) labels.Selector {
	if len(items) == 0 {
		return nil
	}
	names := make([]string, 0, len(items))
	for _, u := range items {
		names = append(names, u.GetName())
	}
	req, err := labels.NewRequirement(jobNameLabel, selection.In, names)
	if err != nil {
		return nil
	}
	return labels.NewSelector().Add(*req)
}

// jobNameLabel is the label the Job controller sets on a Job's pods.
const jobNameLabel = "batch.kubernetes.io/job-name"

// webhookServices waits for a ready endpoint behind every Service a webhook
// configuration calls.
func webhookServices(u *unstructured.Unstructured) []*waitable {
	hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
	var out []*waitable
	for _, h := range hooks {
		m, _ := h.(map[string]any)
		svc, found, _ := unstructured.NestedMap(m, "clientConfig", "service")
		if !found {
			continue
		}
		ns, _ := svc["namespace"].(string)
		name, _ := svc["name"].(string)
		if ns == "" || name == "" {
			continue
		}
		out = append(out, &waitable{
			name: "webhook Service " + ns + "/" + name, gvr: schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"},
			ns: ns, labelSel: "kubernetes.io/service-name=" + name,
			ready: func(items []*unstructured.Unstructured) (bool, string, error) {
				for _, s := range items {
					eps, _, _ := unstructured.NestedSlice(s.Object, "endpoints")
					for _, e := range eps {
						em, _ := e.(map[string]any)
						if ready, found, _ := unstructured.NestedBool(em, "conditions", "ready"); !found || ready {
							return true, "", nil
						}
					}
				}
				return false, "no ready endpoints", nil
			},
		})
	}
	return out
}

// DiagnosePods explains why the selected pods are not ready, from their
// conditions, container states and warning events.
func (w *Waiter) DiagnosePods(ctx context.Context, ns string, sel labels.Selector) string {
	pods, err := w.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return ""
	}
	if len(pods.Items) == 0 {
		return "no pods created yet"
	}
	for _, p := range pods.Items {
		if why := podProblem(&p); why != "" {
			if reason, msg := w.lastWarning(ctx, &p); msg != "" && !strings.Contains(why, msg) {
				why += " (event " + reason + ": " + msg + ")"
			}
			return "pod " + p.Name + ": " + why
		}
	}
	return ""
}

func podProblem(p *corev1.Pod) string {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return c.Reason + ": " + c.Message
		}
	}
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if wt := cs.State.Waiting; wt != nil && wt.Reason != "" && wt.Reason != "ContainerCreating" && wt.Reason != "PodInitializing" {
			return fmt.Sprintf("container %s %s: %s", cs.Name, wt.Reason, wt.Message)
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("container %s terminated: %s (exit %d)", cs.Name, t.Reason, t.ExitCode)
		}
	}
	if p.Status.Phase == corev1.PodPending {
		return "Pending"
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			return "not Ready: " + c.Reason + " " + c.Message
		}
	}
	return ""
}

func (w *Waiter) lastWarning(ctx context.Context, p *corev1.Pod) (reason, message string) {
	sel := fields.Set{"involvedObject.name": p.Name, "involvedObject.uid": string(p.UID), "type": corev1.EventTypeWarning}.AsSelector().String()
	evs, err := w.Client.CoreV1().Events(p.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil || len(evs.Items) == 0 {
		return "", ""
	}
	last := evs.Items[len(evs.Items)-1]
	return last.Reason, last.Message
}
