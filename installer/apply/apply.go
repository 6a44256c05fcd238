// Package apply server-side applies a release's objects as tmbox: object
// keys, the labels and applied-hash annotation that make a re-run write
// nothing, namespaces and CRDs first, bounded concurrency, generateName
// objects created once per operation, and whole-reference image rewriting.
package apply

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
)

// CRDResource is the CustomResourceDefinition resource.
func CRDResource() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
}

// Applier server-side applies objects as tmbox: namespaces and CRDs first,
// then (once the CRDs are Established) everything else, concurrently.
// Objects whose live copy already carries the configuration's hash are not
// sent again, so a re-run that changes nothing writes nothing.
type Applier struct {
	Dynamic dynamic.Interface
	// Metadata, when set, lists objects' metadata only (cheaper than
	// Dynamic for finding what is already applied).
	Metadata metadata.Interface
	Mapper   meta.ResettableRESTMapper
	Log      *slog.Logger
	// Concurrency bounds parallel requests (default 16).
	Concurrency int
}

// ApplyResult counts what an Apply did.
type ApplyResult struct {
	Applied, Unchanged, Created, CreateSkipped int
}

// Apply converges the objects. operation labels generateName objects, which
// are created once per operation: a re-run of the same operation finds them
// and creates nothing.
func (a *Applier) Apply(ctx context.Context, objs []*Object, operation string) (ApplyResult, error) {
	var res ApplyResult
	var first, rest, creates []*Object
	for _, o := range objs {
		switch {
		case o.Create:
			creates = append(creates, o)
		case o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "", isCRD(o.Unstructured):
			first = append(first, o)
		default:
			rest = append(rest, o)
		}
	}
	applied, err := a.applyAll(ctx, first, &res)
	if err != nil {
		return res, err
	}
	var crds []string
	for _, o := range applied {
		if isCRD(o.Unstructured) {
			crds = append(crds, o.GetName())
		}
	}
	if len(crds) > 0 {
		if err := a.waitEstablished(ctx, crds); err != nil {
			return res, err
		}
		a.Mapper.Reset()
	}
	if _, err := a.applyAll(ctx, rest, &res); err != nil {
		return res, err
	}
	for _, o := range creates {
		created, err := a.createOnce(ctx, o, operation)
		if err != nil {
			return res, err
		}
		if created {
			res.Created++
		} else {
			res.CreateSkipped++
		}
	}
	return res, nil
}

// resourceFor maps an object's kind to its resource, re-discovering once
// when the kind is new.
func (a *Applier) resourceFor(u *unstructured.Unstructured) (*meta.RESTMapping, error) {
	gvk := u.GroupVersionKind()
	m, err := a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.Mapper.Reset()
		m, err = a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyOf(u), err)
	}
	return m, nil
}

// Client is the dynamic client of a mapped resource in a namespace (none
// for cluster-scoped resources).
func (a *Applier) Client(m *meta.RESTMapping, ns string) dynamic.ResourceInterface {
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		return a.Dynamic.Resource(m.Resource).Namespace(ns)
	}
	return a.Dynamic.Resource(m.Resource)
}

// LiveHashes lists, per resource, the tmbox objects of the components in
// objs and returns each one's applied-hash annotation.
func (a *Applier) LiveHashes(ctx context.Context, objs []*Object) (map[ObjectKey]string, error) {
	live, err := a.liveMeta(ctx, objs)
	if err != nil {
		return nil, err
	}
	out := make(map[ObjectKey]string, len(live))
	for k, l := range live {
		out[k] = l.hash
	}
	return out, nil
}

// Drift returns, for each object of objs that is live, the fields of its
// configuration another client changed since tmbox applied it (empty
// when none), and lists the objects that are missing.
func (a *Applier) Drift(ctx context.Context, objs []*Object) (changed map[ObjectKey][]string, missing []ObjectKey, err error) {
	live, err := a.liveMeta(ctx, objs)
	if err != nil {
		return nil, nil, err
	}
	changed = map[ObjectKey][]string{}
	for _, o := range objs {
		if o.Create {
			continue
		}
		k := KeyOf(o.Unstructured)
		l, ok := live[k]
		if !ok {
			missing = append(missing, k)
			continue
		}
		if paths := driftedFields(l.managed, o.Unstructured); len(paths) > 0 {
			changed[k] = paths
		}
	}
	return changed, missing, nil
}

// live is what tmbox reads of a live object: its applied hash and who
// manages which fields.
type live struct {
	hash    string
	managed []metav1.ManagedFieldsEntry
}

// liveMeta lists the live objects' metadata, per resource and component.
func (a *Applier) liveMeta(ctx context.Context, objs []*Object) (map[ObjectKey]live, error) {
	type listKey struct {
		gvr       schema.GroupVersionResource
		gk        schema.GroupKind
		component string
	}
	lists := map[listKey]bool{}
	for _, o := range objs {
		m, err := a.resourceFor(o.Unstructured)
		if meta.IsNoMatchError(errors.Unwrap(err)) {
			continue // its CRD is not there yet, so neither is the object
		}
		if err != nil {
			return nil, err
		}
		lists[listKey{m.Resource, m.GroupVersionKind.GroupKind(), o.Component}] = true
	}
	// Only metadata is needed (the hash is an annotation): CRDs' schemas
	// and ConfigMaps' data stay on the server. The lists run concurrently.
	var mu sync.Mutex
	hashes := map[ObjectKey]live{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(a.Concurrent())
	for k := range lists {
		g.Go(func() error {
			sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue, LabelComponent: k.component}).String()
			found := map[ObjectKey]live{}
			if a.Metadata != nil {
				list, err := a.Metadata.Resource(k.gvr).List(gctx, metav1.ListOptions{LabelSelector: sel})
				if apierrors.IsNotFound(err) {
					return nil
				} else if err != nil {
					return fmt.Errorf("list %s: %w", k.gvr.Resource, err)
				}
				for _, it := range list.Items {
					found[ObjectKey{Group: k.gk.Group, Kind: k.gk.Kind, Namespace: it.Namespace, Name: it.Name}] = live{it.Annotations[AnnotationHash], it.ManagedFields}
				}
			} else {
				list, err := a.Dynamic.Resource(k.gvr).List(gctx, metav1.ListOptions{LabelSelector: sel})
				if apierrors.IsNotFound(err) {
					return nil
				} else if err != nil {
					return fmt.Errorf("list %s: %w", k.gvr.Resource, err)
				}
				for i := range list.Items {
					found[KeyOf(&list.Items[i])] = live{list.Items[i].GetAnnotations()[AnnotationHash], list.Items[i].GetManagedFields()}
				}
			}
			mu.Lock()
			maps.Copy(hashes, found)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return hashes, nil
}

// applyAll applies objs concurrently, skipping those already applied with
// the same configuration, and returns the ones it sent.
func (a *Applier) applyAll(ctx context.Context, objs []*Object, res *ApplyResult) ([]*Object, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	current, err := a.liveMeta(ctx, objs)
	if err != nil {
		return nil, err
	}
	var todo []*Object
	for _, o := range objs {
		l, ok := current[KeyOf(o.Unstructured)]
		// Unchanged: applied with this configuration, and no field of it
		// taken over by another client since (that is drift, repaired).
		if ok && l.hash != "" && l.hash == o.GetAnnotations()[AnnotationHash] && len(driftedFields(l.managed, o.Unstructured)) == 0 {
			res.Unchanged++
			continue
		}
		todo = append(todo, o)
	}
	errs := a.parallel(ctx, todo, func(ctx context.Context, o *Object) error {
		m, err := a.resourceFor(o.Unstructured)
		if err != nil {
			return err
		}
		_, err = a.Client(m, o.GetNamespace()).Apply(ctx, o.GetName(), o.Unstructured, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		if err != nil {
			return fmt.Errorf("apply %s: %w", KeyOf(o.Unstructured), err)
		}
		a.Log.Debug("applied", "object", KeyOf(o.Unstructured).String())
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res.Applied += len(todo)
	return todo, nil
}

// Concurrent is how many requests run at once.
func (a *Applier) Concurrent() int {
	if a.Concurrency <= 0 {
		return 16
	}
	return a.Concurrency
}

// parallel runs fn over objs with bounded concurrency and returns the
// errors, at most a handful, sorted for stable messages. Every object is
// tried (one failure does not cancel the others), unless ctx ends.
func (a *Applier) parallel(ctx context.Context, objs []*Object, fn func(context.Context, *Object) error) []error {
	var mu sync.Mutex
	var errs []error
	var g errgroup.Group
	g.SetLimit(a.Concurrent())
	for _, o := range objs {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := fn(ctx, o); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("and %d more errors", len(errs)-5))
	}
	return errs
}

// waitEstablished waits until every named CRD is Established.
func (a *Applier) waitEstablished(ctx context.Context, names []string) error {
	pending := map[string]bool{}
	for _, n := range names {
		pending[n] = true
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := a.Dynamic.Resource(CRDResource()).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for i := range list.Items {
			if pending[list.Items[i].GetName()] && HasCondition(&list.Items[i], "Established", "True") {
				delete(pending, list.Items[i].GetName())
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %d CRDs to be Established (e.g. %s): %w", len(pending), anyKey(pending), err)
	}
	return nil
}

func anyKey(m map[string]bool) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}

// createOnce creates a generateName object unless one with the same
// generateName, component and operation exists.
func (a *Applier) createOnce(ctx context.Context, o *Object, operation string) (bool, error) {
	m, err := a.resourceFor(o.Unstructured)
	if err != nil {
		return false, err
	}
	u := o.DeepCopy()
	l := u.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	l[LabelOperation] = operation
	u.SetLabels(l)
	c := a.Client(m, u.GetNamespace())
	sel := labels.SelectorFromSet(labels.Set{LabelComponent: o.Component, LabelOperation: operation}).String()
	list, err := c.List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return false, fmt.Errorf("list %s: %w", m.Resource.Resource, err)
	}
	for _, item := range list.Items {
		if item.GetGenerateName() == u.GetGenerateName() {
			return false, nil
		}
	}
	if _, err := c.Create(ctx, u, metav1.CreateOptions{FieldManager: FieldManager}); err != nil {
		return false, fmt.Errorf("create %s%s: %w", u.GetGenerateName(), "*", err)
	}
	return true, nil
}

// isCRD reports whether u is a CustomResourceDefinition of
// apiextensions.k8s.io (not a custom kind that happens to share the name).
func isCRD(u *unstructured.Unstructured) bool {
	gvk := u.GroupVersionKind()
	return gvk.Kind == "CustomResourceDefinition" && gvk.Group == CRDResource().Group
}

// HasCondition reports whether an object has a status condition of that
// type and status.
func HasCondition(u *unstructured.Unstructured, typ, status string) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == typ && m["status"] == status {
			return true
		}
	}
	return false
}

// Diff counts, without writing, how many of objs would be applied and how
// many are unchanged.
func (a *Applier) Diff(ctx context.Context, objs []*Object) (apply, unchanged int, err error) {
	var plain []*Object
	for _, o := range objs {
		if !o.Create {
			plain = append(plain, o)
		}
	}
	live, err := a.LiveHashes(ctx, plain)
	if err != nil {
		return 0, 0, err
	}
	for _, o := range plain {
		if h := live[KeyOf(o.Unstructured)]; h != "" && h == o.GetAnnotations()[AnnotationHash] {
			unchanged++
		} else {
			apply++
		}
	}
	return apply, unchanged, nil
}
