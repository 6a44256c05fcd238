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
	"runtime/trace"
	"slices"
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
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/watch"
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
// sent again, so a re-run that changes nothing writes nothing. An Applier
// is safe for concurrent use: every call shares the same Concurrency
// bound, so components applied side by side do not multiply it.
type Applier struct {
	Dynamic dynamic.Interface
	// Metadata, when set, lists objects' metadata only (cheaper than
	// Dynamic for finding what is already applied).
	Metadata metadata.Interface
	Mapper   meta.ResettableRESTMapper
	Log      *slog.Logger
	// Concurrency bounds parallel requests, across all calls (default 16).
	Concurrency int

	slotsOnce sync.Once
	slots     chan struct{}
}

// ApplyResult counts what an Apply did.
type ApplyResult struct {
	Applied, Unchanged, Created, CreateSkipped int
}

// Add sums two results.
func (r ApplyResult) Add(o ApplyResult) ApplyResult {
	return ApplyResult{Applied: r.Applied + o.Applied, Unchanged: r.Unchanged + o.Unchanged, Created: r.Created + o.Created, CreateSkipped: r.CreateSkipped + o.CreateSkipped}
}

// Apply converges the objects. operation labels generateName objects, which
// are created once per operation: a re-run of the same operation finds them
// and creates nothing. It is ReadLive, ApplyFirst and ApplyRest in a row.
func (a *Applier) Apply(ctx context.Context, objs []*Object, operation string) (ApplyResult, error) {
	live, err := a.ReadLive(ctx, objs)
	if err != nil {
		return ApplyResult{}, err
	}
	res, err := a.ApplyFirst(ctx, objs, live)
	if err != nil {
		return res, err
	}
	rest, err := a.ApplyRest(ctx, objs, live, operation)
	return res.Add(rest), err
}

// First reports whether o goes before everything else: a namespace or a
// CRD (custom resources need their CRD Established, namespaced objects
// their namespace).
func First(o *Object) bool {
	return !o.Create && (o.GetKind() == "Namespace" && o.GroupVersionKind().Group == "" || isCRD(o.Unstructured))
}

// ApplyFirst applies the namespaces and CRDs among objs that live does not
// show unchanged (the other objects are left to ApplyRest) and waits until
// the CRDs it applied are Established; the REST mapper then learns their
// kinds. It is SendFirst and Wave.Wait in a row.
func (a *Applier) ApplyFirst(ctx context.Context, objs []*Object, live *Live) (ApplyResult, error) {
	w, err := a.SendFirst(ctx, objs, live)
	if err != nil {
		return w.Result, err
	}
	return w.Result, w.Wait(ctx)
}

// Wave is the namespaces and CRDs SendFirst applied, their CRDs perhaps
// not Established yet.
type Wave struct {
	a *Applier
	// Result counts the namespaces and CRDs applied and unchanged.
	Result ApplyResult
	// pending are CRDs applied but not seen Established; since is the
	// revision to watch them from.
	pending []string
	since   string
	// defines are the kinds of the CRDs applied (new kinds, or new
	// versions or schemas of known ones); sent says some CRD was.
	defines map[schema.GroupKind]bool
	sent    bool
	live    *Live
	// fresh: no CRD it applies was served before — a first install, or
	// a run that changes no CRD — so no kind changes under a controller.
	fresh bool
}

// SendFirst applies the namespaces and CRDs among objs that live does not
// show unchanged, without waiting for the CRDs to be Established (Wait
// does): objects of kinds already served can go in meanwhile (Early).
// live must have been read for objs: it tells which CRDs update a kind
// that was served.
func (a *Applier) SendFirst(ctx context.Context, objs []*Object, live *Live) (*Wave, error) {
	w := &Wave{a: a, defines: map[schema.GroupKind]bool{}, live: live}
	var first []*Object
	for _, o := range objs {
		if First(o) {
			first = append(first, o)
		}
	}
	todo := live.changed(first, &w.Result)
	if len(todo) == 0 {
		return w, nil
	}
	var crds []string
	w.fresh = true
	for _, o := range todo {
		if isCRD(o.Unstructured) {
			crds = append(crds, o.GetName())
			gk := definedKind(o.Unstructured)
			w.defines[gk] = true
			// Discovery as ReadLive left it: a kind it knows was served
			// before this wave, so its CRD is an update.
			if live.definedServed[gk] {
				w.fresh = false
			}
		}
	}
	// Where a watch for the CRDs' conditions starts: before they are
	// written, so that it misses none of their changes.
	if len(crds) > 0 {
		var err error
		if w.since, err = a.crdRevision(ctx); err != nil {
			return w, err
		}
	}
	var mu sync.Mutex
	established := map[string]bool{}
	region := trace.StartRegion(ctx, "apply namespaces and CRDs")
	err := a.applyAll(ctx, todo, func(o *Object, out *unstructured.Unstructured) {
		if isCRD(o.Unstructured) && out != nil && HasCondition(out, "Established", "True") {
			mu.Lock()
			established[o.GetName()] = true
			mu.Unlock()
		}
	})
	region.End()
	if err != nil {
		return w, err
	}
	w.Result.Applied += len(todo)
	w.sent = len(crds) > 0
	w.pending = slices.DeleteFunc(crds, func(n string) bool { return established[n] })
	return w, nil
}

// Wait waits until the wave's CRDs are Established and has the REST
// mapper learn their kinds.
func (w *Wave) Wait(ctx context.Context) error {
	if !w.sent {
		return nil
	}
	defer w.a.Mapper.Reset() // new kinds, or new versions of known ones
	if len(w.pending) == 0 {
		return nil
	}
	defer trace.StartRegion(ctx, "CRDs established").End()
	return w.a.waitEstablished(ctx, w.pending, w.since)
}

// Early reports whether o can be applied before the wave's CRDs are
// Established: it is neither a namespace, a CRD nor a generateName
// object, its kind was served when live was read, no CRD of the wave
// defines it, and it takes no part in admission and serves no API
// (webhook configurations, APIServices: those intercept requests for the
// CRDs' kinds). Workloads (Deployments, StatefulSets, DaemonSets, Pods)
// are early only when the wave is fresh — no CRD in it updates one that
// was served (a first install), so no controller sees a kind change; their
// pods then start while the CRDs are being Established, and controllers'
// informers wait for the kinds to be served. When the wave updates CRDs
// (an upgrade), workloads wait for them, so new controllers start on the
// new schemas.
func (w *Wave) Early(o *Object) bool {
	if First(o) || o.Create {
		return false
	}
	gvk := o.GroupVersionKind()
	switch {
	case gvk.Group == "admissionregistration.k8s.io", gvk.Group == "apiregistration.k8s.io":
		return false
	case Workload(o) && !w.fresh:
		return false
	}
	return w.live.served[gvk] && !w.defines[gvk.GroupKind()]
}

// Workload reports whether o runs pods: the pod-spec kinds (Deployments,
// StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Pods).
func Workload(o *Object) bool {
	gvk := o.GroupVersionKind()
	switch gvk.Group {
	case "apps", "batch":
		return true
	case "":
		return gvk.Kind == "Pod" || gvk.Kind == "ReplicationController"
	}
	return false
}

// ApplyRest applies every object of objs but namespaces and CRDs that live
// does not show unchanged, and creates the generateName objects once per
// operation.
func (a *Applier) ApplyRest(ctx context.Context, objs []*Object, live *Live, operation string) (ApplyResult, error) {
	var rest, creates []*Object
	for _, o := range objs {
		switch {
		case o.Create:
			creates = append(creates, o)
		case !First(o):
			rest = append(rest, o)
		}
	}
	res, err := a.ApplyObjects(ctx, rest, live)
	if err != nil || len(creates) == 0 {
		return res, err
	}
	defer trace.StartRegion(ctx, "create Jobs").End()
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

// ApplyObjects applies the objects of objs that live does not show
// unchanged; namespaces, CRDs and generateName objects among them are
// left out (SendFirst and ApplyRest take those).
func (a *Applier) ApplyObjects(ctx context.Context, objs []*Object, live *Live) (ApplyResult, error) {
	var res ApplyResult
	var plain []*Object
	for _, o := range objs {
		if !First(o) && !o.Create {
			plain = append(plain, o)
		}
	}
	todo := live.changed(plain, &res)
	if len(todo) == 0 {
		return res, nil
	}
	region := trace.StartRegion(ctx, "apply objects")
	err := a.applyAll(ctx, todo, nil)
	region.End()
	if err != nil {
		return res, err
	}
	res.Applied += len(todo)
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
	live, err := a.ReadLive(ctx, objs)
	if err != nil {
		return nil, err
	}
	return live.Hashes(), nil
}

// Drift returns, for each object of objs that is live, the fields of its
// configuration another client changed since tmbox applied it (empty
// when none), and lists the objects that are missing.
func (a *Applier) Drift(ctx context.Context, objs []*Object) (changed map[ObjectKey][]string, missing []ObjectKey, err error) {
	live, err := a.ReadLive(ctx, objs)
	if err != nil {
		return nil, nil, err
	}
	changed = map[ObjectKey][]string{}
	for _, o := range objs {
		if o.Create {
			continue
		}
		k := KeyOf(o.Unstructured)
		l, ok := live.objects[k]
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

// Live is what ReadLive found of a set of objects: the tmbox objects of
// their kinds and components that exist, with their applied hashes and
// field managers. It is read-only, safe to share between concurrent
// applies.
type Live struct {
	objects map[ObjectKey]live
	// served are the kinds the API server served when it was read.
	served map[schema.GroupVersionKind]bool
	// definedServed are the kinds the CRDs among the objects define that
	// the API server served (at any version, by any CRD) when it was read.
	definedServed map[schema.GroupKind]bool
}

// Hashes returns the applied-hash annotation of every live object.
func (l *Live) Hashes() map[ObjectKey]string {
	out := make(map[ObjectKey]string, len(l.objects))
	for k, c := range l.objects {
		out[k] = c.hash
	}
	return out
}

// Absent reports whether nothing of objs was on the cluster when live was
// read: none of them is live as tmbox's, and no kind their CRDs define was
// served, by tmbox's CRDs or anyone's (objs must be among those read).
func (l *Live) Absent(objs []*Object) bool {
	for _, o := range objs {
		if o.Create {
			continue
		}
		if _, ok := l.objects[KeyOf(o.Unstructured)]; ok {
			return false
		}
		if isCRD(o.Unstructured) && l.definedServed[definedKind(o.Unstructured)] {
			return false
		}
	}
	return true
}

// crdVersions are the versions a CRD defines.
func crdVersions(crd *unstructured.Unstructured) []string {
	var versions []string
	vs, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range vs {
		if m, ok := v.(map[string]any); ok {
			if n, ok := m["name"].(string); ok {
				versions = append(versions, n)
			}
		}
	}
	return versions
}

// definedKind is the kind a CRD defines.
func definedKind(crd *unstructured.Unstructured) schema.GroupKind {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
	return schema.GroupKind{Group: group, Kind: kind}
}

// Unchanged reports whether o is live as applied with its configuration,
// no field of it taken over by another client since (that is drift,
// repaired by applying again).
func (l *Live) Unchanged(o *Object) bool {
	if l == nil || o.Create {
		return false
	}
	c, ok := l.objects[KeyOf(o.Unstructured)]
	return ok && c.hash != "" && c.hash == o.GetAnnotations()[AnnotationHash] && len(driftedFields(c.managed, o.Unstructured)) == 0
}

// changed returns the objects of objs that must be sent, counting the
// others as unchanged.
func (l *Live) changed(objs []*Object, res *ApplyResult) []*Object {
	var todo []*Object
	for _, o := range objs {
		if l.Unchanged(o) {
			res.Unchanged++
			continue
		}
		todo = append(todo, o)
	}
	return todo
}

// ReadLive lists the live tmbox objects of objs' kinds and components,
// metadata only: one list per resource, concurrently. A kind the server
// does not serve (its CRD is not there yet) has no live objects; unknown
// kinds make discovery run again once, not once per object.
func (a *Applier) ReadLive(ctx context.Context, objs []*Object) (*Live, error) {
	type listKey struct {
		gvr schema.GroupVersionResource
		gk  schema.GroupKind
	}
	lists := map[listKey]map[string]bool{} // → components
	var unknown []*Object
	mapping := func(o *Object) (*meta.RESTMapping, error) {
		gvk := o.GroupVersionKind()
		return a.Mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	served := map[schema.GroupVersionKind]bool{}
	add := func(o *Object, m *meta.RESTMapping) {
		served[o.GroupVersionKind()] = true
		k := listKey{m.Resource, m.GroupVersionKind.GroupKind()}
		if lists[k] == nil {
			lists[k] = map[string]bool{}
		}
		lists[k][o.Component] = true
	}
	for _, o := range objs {
		if o.Create {
			continue
		}
		m, err := mapping(o)
		if meta.IsNoMatchError(err) {
			unknown = append(unknown, o)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyOf(o.Unstructured), err)
		}
		add(o, m)
	}
	if len(unknown) > 0 {
		a.Mapper.Reset()
		for _, o := range unknown {
			m, err := mapping(o)
			if meta.IsNoMatchError(err) {
				continue // its CRD is not there yet, so neither is the object
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", KeyOf(o.Unstructured), err)
			}
			add(o, m)
		}
	}
	// The kinds the CRDs define, served at any version: discovery as it
	// is now (refreshed above when some kind was unknown).
	definedServed := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if !isCRD(o.Unstructured) {
			continue
		}
		gk := definedKind(o.Unstructured)
		if _, seen := definedServed[gk]; seen {
			continue
		}
		_, err := a.Mapper.RESTMapping(gk, crdVersions(o.Unstructured)...)
		if meta.IsNoMatchError(err) { // served at other versions?
			_, err = a.Mapper.RESTMapping(gk)
		}
		if err != nil && !meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("%s: %w", KeyOf(o.Unstructured), err)
		}
		definedServed[gk] = err == nil
	}
	// Only metadata is needed (the hash is an annotation): CRDs' schemas
	// and ConfigMaps' data stay on the server.
	defer trace.StartRegion(ctx, "read live objects").End()
	var mu sync.Mutex
	found := map[ObjectKey]live{}
	g, gctx := errgroup.WithContext(ctx)
	for k, comps := range lists {
		g.Go(func() error {
			if err := a.acquire(gctx); err != nil {
				return err
			}
			defer a.release()
			sel := componentSelector(comps)
			one := map[ObjectKey]live{}
			if a.Metadata != nil {
				list, err := a.Metadata.Resource(k.gvr).List(gctx, metav1.ListOptions{LabelSelector: sel})
				if apierrors.IsNotFound(err) {
					return nil
				} else if err != nil {
					return fmt.Errorf("list %s: %w", k.gvr.Resource, err)
				}
				for _, it := range list.Items {
					one[ObjectKey{Group: k.gk.Group, Kind: k.gk.Kind, Namespace: it.Namespace, Name: it.Name}] = live{it.Annotations[AnnotationHash], it.ManagedFields}
				}
			} else {
				list, err := a.Dynamic.Resource(k.gvr).List(gctx, metav1.ListOptions{LabelSelector: sel})
				if apierrors.IsNotFound(err) {
					return nil
				} else if err != nil {
					return fmt.Errorf("list %s: %w", k.gvr.Resource, err)
				}
				for i := range list.Items {
					one[KeyOf(&list.Items[i])] = live{list.Items[i].GetAnnotations()[AnnotationHash], list.Items[i].GetManagedFields()}
				}
			}
			mu.Lock()
			maps.Copy(found, one)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return &Live{objects: found, served: served, definedServed: definedServed}, nil
}

// componentSelector selects tmbox's objects of the given components.
func componentSelector(comps map[string]bool) string {
	names := slices.Sorted(maps.Keys(comps))
	sel := labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue})
	if len(names) == 1 {
		return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue, LabelComponent: names[0]}).String()
	}
	req, err := labels.NewRequirement(LabelComponent, selection.In, names)
	if err != nil {
		return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue}).String() // names are component names: valid
	}
	return sel.Add(*req).String()
}

// applyAll applies objs concurrently; seen (may be nil) receives each
// object the server returned.
func (a *Applier) applyAll(ctx context.Context, objs []*Object, seen func(*Object, *unstructured.Unstructured)) error {
	if len(objs) == 0 {
		return nil
	}
	errs := a.parallel(ctx, objs, func(ctx context.Context, o *Object) error {
		m, err := a.resourceFor(o.Unstructured)
		if err != nil {
			return err
		}
		out, err := a.Client(m, o.GetNamespace()).Apply(ctx, o.GetName(), o.Unstructured, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
		if err != nil {
			return fmt.Errorf("apply %s: %w", KeyOf(o.Unstructured), err)
		}
		if seen != nil {
			seen(o, out)
		}
		a.Log.Debug("applied", "object", KeyOf(o.Unstructured).String())
		return nil
	})
	return errors.Join(errs...)
}

// Concurrent is how many requests run at once.
func (a *Applier) Concurrent() int {
	if a.Concurrency <= 0 {
		return 16
	}
	return a.Concurrency
}

// acquire takes one of the Concurrent request slots every call of this
// Applier shares; release gives it back.
func (a *Applier) acquire(ctx context.Context) error {
	a.slotsOnce.Do(func() { a.slots = make(chan struct{}, a.Concurrent()) })
	select {
	case a.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Applier) release() { <-a.slots }

// parallel runs fn over objs within the shared concurrency bound and
// returns the errors, at most a handful, sorted for stable messages. Every
// object is tried (one failure does not cancel the others), unless ctx
// ends.
func (a *Applier) parallel(ctx context.Context, objs []*Object, fn func(context.Context, *Object) error) []error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for _, o := range objs {
		if a.acquire(ctx) != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer a.release()
			if err := fn(ctx, o); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("and %d more errors", len(errs)-5))
	}
	return errs
}

// crdRevision returns the CRDs' current resourceVersion, from a list of
// one item (metadata only when a metadata client is set): a watch from
// there sees every later change without the whole list, every CRD's
// schema, being sent.
func (a *Applier) crdRevision(ctx context.Context) (string, error) {
	opts := metav1.ListOptions{Limit: 1}
	if a.Metadata != nil {
		list, err := a.Metadata.Resource(CRDResource()).List(ctx, opts)
		if err != nil {
			return "", fmt.Errorf("list CRDs: %w", err)
		}
		return list.ResourceVersion, nil
	}
	list, err := a.Dynamic.Resource(CRDResource()).List(ctx, opts)
	if err != nil {
		return "", fmt.Errorf("list CRDs: %w", err)
	}
	return list.GetResourceVersion(), nil
}

// waitEstablished waits until every named CRD is Established, watching
// CRDs from since (a revision from before they were written). When the
// watch ends or its revision is too old, it lists once and watches again.
func (a *Applier) waitEstablished(ctx context.Context, names []string, since string) error {
	pending := map[string]bool{}
	for _, n := range names {
		pending[n] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	res := a.Dynamic.Resource(CRDResource())
	see := func(u *unstructured.Unstructured) {
		if pending[u.GetName()] && HasCondition(u, "Established", "True") {
			delete(pending, u.GetName())
		}
	}
	fail := func(err error) error {
		return fmt.Errorf("waiting for %d CRDs to be Established (e.g. %s): %w", len(pending), anyKey(pending), err)
	}
	relisted := false
	for len(pending) > 0 {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		if since == "" && relisted {
			list, err := res.List(ctx, metav1.ListOptions{})
			if err != nil {
				return fail(err)
			}
			for i := range list.Items {
				see(&list.Items[i])
			}
			since = list.GetResourceVersion()
			continue
		}
		w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: since, AllowWatchBookmarks: true})
		if err != nil {
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			since, relisted = "", true
			continue
		}
		last, relist := drainCRDs(ctx, w, see, func() bool { return len(pending) == 0 })
		w.Stop()
		switch {
		case relist:
			since, relisted = "", true
		case last != "":
			since = last
		}
	}
	return nil
}

// drainCRDs feeds a CRD watch's objects to see until done says so, the
// watch ends or ctx does; it returns the last revision seen ("" if none),
// or relist when only a new list can tell (the watch reported an error,
// such as its revision having expired).
func drainCRDs(ctx context.Context, w watch.Interface, see func(*unstructured.Unstructured), done func() bool) (last string, relist bool) {
	for {
		select {
		case <-ctx.Done():
			return last, false
		case ev, ok := <-w.ResultChan():
			if !ok {
				return last, false
			}
			switch ev.Type {
			case watch.Error:
				return "", true
			case watch.Added, watch.Modified, watch.Bookmark:
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					continue
				}
				last = u.GetResourceVersion()
				if ev.Type != watch.Bookmark {
					see(u)
				}
				if done() {
					return last, false
				}
			}
		}
	}
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
	c, ok := Condition(u, typ)
	return ok && c["status"] == status
}

// Condition returns an object's status condition of that type (type,
// status, reason, message …), false when it has none.
func Condition(u *unstructured.Unstructured, typ string) (map[string]any, bool) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m, true
		}
	}
	return nil, false
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
