package installer

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
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
}

// Run performs the uninstall.
func (u *Uninstall) Run(ctx context.Context) error {
	timeout := u.Timeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	e, err := session(ctx, Options{Reporter: u.Reporter, Kubeconfig: u.Kubeconfig, Context: u.Context}, u.Config)
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
		// By label too: an earlier uninstall without --purge removed the
		// state that listed them.
		n, err := e.deleteLabelled(ctx, apply.CRDResource())
		if err != nil {
			return err
		}
		crds = nil
		for _, name := range e.labelledNames(ctx, apply.CRDResource()) {
			crds = append(crds, apply.ObjectKey{Group: apply.CRDResource().Group, Kind: "CustomResourceDefinition", Name: name})
		}
		e.report(Event{Type: EventInfo, Message: fmt.Sprintf("--purge: %d CRDs deleted, with every custom resource of them", n)})
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

// labelledNames lists the names of a resource's tmbox objects (for waiting
// on their deletion).
func (e *env) labelledNames(ctx context.Context, gvr schema.GroupVersionResource) []string {
	sel := labels.SelectorFromSet(labels.Set{apply.LabelManagedBy: apply.ManagedByValue}).String()
	list, err := e.dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil
	}
	var out []string
	for _, it := range list.Items {
		out = append(out, it.GetName())
	}
	return out
}

// waitGone waits until the objects no longer exist.
func (e *env) waitGone(ctx context.Context, keys []apply.ObjectKey, timeout time.Duration) error {
	var left []string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		left = left[:0]
		for _, k := range keys {
			m, err := e.mapper.RESTMapping(k.GroupKind())
			if err != nil {
				continue
			}
			_, err = e.applier.Client(m, k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
			if err == nil {
				left = append(left, k.String())
			} else if !apierrors.IsNotFound(err) {
				return false, err
			}
		}
		return len(left) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for deletion of %v: %w", left, err)
	}
	return nil
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
