package installer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
)

// Uninstall removes what tmbox installed, components in reverse order. CRDs
// (and with them users' resources) stay unless Purge.
type Uninstall struct {
	Kubeconfig, Context string
	Config              *rest.Config
	Purge               bool
	// DryRun reports, per component, what would be deleted, as EventPlan
	// events, and deletes nothing.
	DryRun bool
	// WaitForLock is how long to wait for another tmbox holding the
	// cluster's lock (0: refuse at once).
	WaitForLock time.Duration
	// Timeout bounds waiting for namespaces to go (default 5m).
	Timeout  time.Duration
	Reporter Reporter
	// Logger receives debug logs (default: discard).
	Logger *slog.Logger
}

// Run performs the uninstall.
func (u *Uninstall) Run(ctx context.Context) error {
	timeout := u.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	e, err := session(ctx, Options{Reporter: u.Reporter, Logger: u.Logger, Kubeconfig: u.Kubeconfig, Context: u.Context}, u.Config)
	if err != nil {
		return err
	}
	if !u.DryRun {
		if err := e.acquireLock(ctx, "uninstall", u.WaitForLock); err != nil {
			return err
		}
		defer e.releaseLock()
	}
	if e.state, err = e.store.Load(ctx); err != nil {
		return err
	}
	m := e.addonManager()
	added, err := m.List(ctx)
	if err != nil {
		return fmt.Errorf("list add-ons: %w", err)
	}
	names := slices.Clone(catalog.ComponentNames())
	slices.Reverse(names)
	if u.DryRun {
		for _, a := range added {
			e.report(Event{Type: EventPlan, Phase: PhaseAddons, Message: fmt.Sprintf("add-on %s: helm uninstall %s -n %s (revision %d)", a.Name, a.Name, a.Namespace, a.Revision)})
		}
		e.planUninstall(names, u.Purge)
		return nil
	}
	// Add-ons first: they run on the stack.
	for _, a := range added {
		e.report(Event{Type: EventPhaseStart, Phase: PhaseAddons, Message: "removing add-on " + a.Name})
		if err := m.Uninstall(ctx, a.Name, a.Namespace); err != nil {
			return fmt.Errorf("add-on %s: %w", a.Name, err)
		}
		e.report(Event{Type: EventPhaseDone, Phase: PhaseAddons, Message: "add-on " + a.Name + " uninstalled"})
	}
	var namespaces, crds []apply.ObjectKey
	deleted := 0
	for _, name := range names {
		keys := e.state.Inventory[name]
		if len(keys) == 0 {
			continue
		}
		e.report(Event{Type: EventPhaseStart, Phase: name, Message: "removing " + name})
		n := 0
		for _, k := range keys {
			switch k.Kind {
			case "Namespace":
				namespaces = append(namespaces, k)
				continue
			case "CustomResourceDefinition":
				crds = append(crds, k)
				continue
			}
			ok, err := e.deleteObject(ctx, k)
			if err != nil {
				return fmt.Errorf("delete %s: %w", k, err)
			}
			if ok {
				n++
			}
		}
		deleted += n
		e.report(Event{Type: EventPhaseDone, Phase: name, Message: fmt.Sprintf("%d objects deleted", n)})
	}
	// Objects tmbox created rather than applied (post-install Jobs).
	if n, err := e.deleteLabelled(ctx, schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}); err != nil {
		return err
	} else {
		deleted += n
	}
	if u.Purge {
		var crs int
		if crds, crs, err = e.purgeCRDs(ctx); err != nil {
			return err
		}
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("--purge: %d CRDs deleted, with their %d custom resources", len(crds), crs)})
	} else if len(crds) > 0 {
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("kept %d CRDs and the resources of them (use --purge to delete them)", len(crds))})
	}
	for _, k := range namespaces {
		if _, err := e.deleteObject(ctx, k); err != nil {
			return fmt.Errorf("delete %s: %w", k, err)
		}
	}
	if err := e.store.Delete(ctx); err != nil {
		return err
	}
	waitFor := append(slices.Clone(namespaces), apply.ObjectKey{Kind: "Namespace", Name: StateNamespace})
	if u.Purge {
		waitFor = append(waitFor, crds...)
	}
	if err := e.waitGone(ctx, waitFor, timeout); err != nil {
		return err
	}
	e.report(Event{Type: EventInfo, Message: fmt.Sprintf("uninstalled: %d objects and %d namespaces deleted", deleted, len(namespaces))})
	return nil
}

// deleteLabelled deletes every object of a resource labelled as tmbox's.
func (e *env) deleteLabelled(ctx context.Context, gvr schema.GroupVersionResource) (int, error) {
	sel := labels.SelectorFromSet(labels.Set{apply.LabelManagedBy: apply.ManagedByValue}).String()
	list, err := e.dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", gvr.Resource, err)
	}
	policy := metav1.DeletePropagationBackground
	n := 0
	for _, item := range list.Items {
		err := e.dyn.Resource(gvr).Namespace(item.GetNamespace()).Delete(ctx, item.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
		if err != nil && !apierrors.IsNotFound(err) {
			return n, fmt.Errorf("delete %s %s/%s: %w", gvr.Resource, item.GetNamespace(), item.GetName(), err)
		}
		n++
	}
	return n, nil
}

// purgeCRDs deletes tmbox's CRDs, found by label (an earlier uninstall
// without --purge removed the state that listed them). It returns them,
// for waiting, and how many custom resources they held.
//
// Each CRD's custom resources are listed just before it is deleted, from
// the API server's watch cache (resourceVersion 0: the server answers
// "retry after" while that cache starts, and client-go retries). Besides
// counting them, that starts the cache of a resource nobody asked for
// since the API server started (a cluster-scoped one, which no namespace
// deletion lists) and waits until it serves. A CRD deleted while its cache
// is still starting can stay Terminating until the API server's
// five-minute resync: the CRD finalizer fails with "storage is
// (re)initializing", its retry reads a stale copy, gets a conflict and
// drops the CRD (apiextensions-apiserver's crd_finalizer.go). waitGone's
// nudge covers what is left of that.
func (e *env) purgeCRDs(ctx context.Context) ([]apply.ObjectKey, int, error) {
	sel := labels.SelectorFromSet(labels.Set{apply.LabelManagedBy: apply.ManagedByValue}).String()
	list, err := e.dyn.Resource(apply.CRDResource()).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, 0, fmt.Errorf("list customresourcedefinitions: %w", err)
	}
	counts := make([]int, len(list.Items))
	keys := make([]apply.ObjectKey, len(list.Items))
	policy := metav1.DeletePropagationBackground
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range list.Items {
		name := list.Items[i].GetName()
		keys[i] = apply.ObjectKey{Group: apply.CRDResource().Group, Kind: "CustomResourceDefinition", Name: name}
		group, _, _ := unstructured.NestedString(list.Items[i].Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(list.Items[i].Object, "spec", "names", "kind")
		// No mapping: the API server does not serve it (never
		// established), there is nothing to list.
		m, mapErr := e.mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind})
		g.Go(func() error {
			if mapErr == nil {
				crs, err := e.dyn.Resource(m.Resource).List(gctx, metav1.ListOptions{ResourceVersion: "0"})
				if err != nil && !apierrors.IsNotFound(err) {
					return fmt.Errorf("list %s: %w", m.Resource.GroupResource(), err)
				}
				if err == nil {
					counts[i] = len(crs.Items)
				}
			}
			err := e.dyn.Resource(apply.CRDResource()).Delete(gctx, name, metav1.DeleteOptions{PropagationPolicy: &policy})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete customresourcedefinition %s: %w", name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	total := 0
	for _, n := range counts {
		total += n
	}
	return keys, total, nil
}

// waitGone waits until the objects no longer exist. While some remain it
// reports, every waitReportEvery, which and what holds them (a finalizer,
// a CRD's Terminating condition, a namespace's deletion conditions), and
// its timeout error names them the same way.
func (e *env) waitGone(ctx context.Context, keys []apply.ObjectKey, timeout time.Duration) error {
	var left []string
	start, reported := time.Now(), time.Now()
	nudged := map[string]time.Time{}
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		left = left[:0]
		for _, k := range keys {
			m, err := e.mapper.RESTMapping(k.GroupKind())
			if err != nil {
				continue
			}
			client := e.applier.Client(m, k.Namespace)
			obj, err := client.Get(ctx, k.Name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return false, err
			}
			left = append(left, k.String()+deletionHold(obj))
			if k.Kind == "CustomResourceDefinition" && failedFinalizing(obj) && time.Since(nudged[k.Name]) >= nudgeEvery {
				nudged[k.Name] = time.Now()
				if err := nudgeFinalizer(ctx, client, k.Name); err != nil && !apierrors.IsNotFound(err) {
					e.opts.Logger.Debug("nudging the CRD finalizer", "crd", k.Name, "err", err)
				}
			}
		}
		if len(left) > 0 && time.Since(reported) >= waitReportEvery {
			reported = time.Now()
			e.report(Event{Type: EventWaiting, Message: fmt.Sprintf("deletion of %d objects (%s so far): %s", len(left), time.Since(start).Round(time.Second), listSome(left, 5))})
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for deletion of %s: %w", listSome(left, 10), err)
	}
	return nil
}

// waitReportEvery is how often waitGone says what it still waits for.
const waitReportEvery = 10 * time.Second

// nudgeEvery is how often waitGone nudges a CRD whose finalizer failed.
const nudgeEvery = 5 * time.Second

// nudgeAnnotation is what nudgeFinalizer changes.
const nudgeAnnotation = "tmbox.dev/purge-retry"

// failedFinalizing reports whether a CRD's finalizer failed to delete its
// custom resources (Terminating, reason InstanceDeletionFailed).
func failedFinalizing(crd *unstructured.Unstructured) bool {
	c, ok := apply.Condition(crd, "Terminating")
	return ok && c["status"] == "True" && c["reason"] == "InstanceDeletionFailed"
}

// nudgeFinalizer makes the API server's CRD finalizer try a failed CRD
// again. After a failure it may have dropped the CRD (its retry got a
// conflict from a stale copy), and it ignores changes to the Terminating
// condition, its own: a changed annotation queues the CRD again instead of
// the five-minute resync.
func nudgeFinalizer(ctx context.Context, client dynamic.ResourceInterface, name string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, nudgeAnnotation, time.Now().UTC().Format(time.RFC3339Nano))
	_, err := client.Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{FieldManager: apply.FieldManager})
	return err
}

// deletionHold says what keeps an object from going, for messages: its
// finalizers, and the conditions the API server and the namespace
// controller set when deletion is stuck ("" when none).
func deletionHold(obj *unstructured.Unstructured) string {
	var why []string
	if f := obj.GetFinalizers(); len(f) > 0 {
		why = append(why, "finalizers "+strings.Join(f, ","))
	}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		c, _ := c.(map[string]any)
		typ, _ := c["type"].(string)
		status, _ := c["status"].(string)
		msg, _ := c["message"].(string)
		if status == "True" && msg != "" && (typ == "Terminating" || strings.HasPrefix(typ, "Namespace")) {
			why = append(why, typ+": "+msg)
		}
	}
	if len(why) == 0 {
		return ""
	}
	return " (" + strings.Join(why, "; ") + ")"
}

// listSome joins up to n items, saying how many more there are.
func listSome(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:n], ", "), len(items)-n)
}

// planUninstall reports what Run would delete, component by component:
// every inventoried object but the CRDs (kept unless purge).
func (e *env) planUninstall(names []string, purge bool) {
	for _, name := range names {
		keys := e.state.Inventory[name]
		if len(keys) == 0 {
			continue
		}
		d := ComponentDiff{Component: name}
		kept := 0
		for _, k := range keys {
			if k.Kind == "CustomResourceDefinition" && !purge {
				kept++
				continue
			}
			d.Prune++
			d.Details = append(d.Details, "delete "+k.String())
		}
		summary := fmt.Sprintf("%s: %d objects to delete", name, d.Prune)
		if kept > 0 {
			summary += fmt.Sprintf(", %d CRDs kept (--purge deletes them)", kept)
		}
		e.report(Event{Type: EventPlan, Phase: name, Message: summary, Plan: &PhasePlan{Phase: name, Summary: summary, Components: []ComponentDiff{d}}})
	}
}
