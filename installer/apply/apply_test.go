package apply

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	metadatafake "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
)

// builtin is a resource the fake cluster serves without a CRD.
type builtin struct {
	gvk        schema.GroupVersionKind
	resource   string
	namespaced bool
}

var builtins = []builtin{
	{schema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, "namespaces", false},
	{schema.GroupVersionKind{Version: "v1", Kind: "ConfigMap"}, "configmaps", true},
	{schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, "deployments", true},
	{schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}, "jobs", true},
	{schema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, "clusterroles", false},
	{schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, "customresourcedefinitions", false},
	{schema.GroupVersionKind{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingWebhookConfiguration"}, "validatingwebhookconfigurations", false},
}

var (
	configMapsGVR = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	jobsGVR       = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	widgetsGVR    = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
)

// testMapper is a resettable REST mapper whose Reset re-runs "discovery":
// the built-in kinds plus the kinds of the CRDs that are Established in
// the fake cluster, as an API server's discovery would serve them.
type testMapper struct {
	discover func() *meta.DefaultRESTMapper
	mu       sync.Mutex
	m        *meta.DefaultRESTMapper
	resets   int
}

var _ meta.ResettableRESTMapper = (*testMapper)(nil)

func (t *testMapper) get() meta.RESTMapper {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m
}

func (t *testMapper) Reset() {
	m := t.discover()
	t.mu.Lock()
	t.m = m
	t.resets++
	t.mu.Unlock()
}

func (t *testMapper) Resets() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.resets
}

func (t *testMapper) KindFor(r schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	return t.get().KindFor(r)
}

func (t *testMapper) KindsFor(r schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	return t.get().KindsFor(r)
}

func (t *testMapper) ResourceFor(r schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	return t.get().ResourceFor(r)
}

func (t *testMapper) ResourcesFor(r schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	return t.get().ResourcesFor(r)
}

func (t *testMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	return t.get().RESTMapping(gk, versions...)
}

func (t *testMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	return t.get().RESTMappings(gk, versions...)
}

func (t *testMapper) ResourceSingularizer(resource string) (string, error) {
	return t.get().ResourceSingularizer(resource)
}

// establish says when the fake cluster marks a CRD Established.
type establish int

const (
	establishOnApply establish = iota
	// establishOnWatch: Established once a client watches CRDs (the
	// API server's controllers, later than the apply's response).
	establishOnWatch
	establishNever
)

// cluster is a fake API server behind a dynamic and a metadata client.
//
// The dynamic fake's default server-side apply (client-go v0.35's plain
// object tracker) is a strategic merge onto an existing object: applying an
// object that does not exist yet fails with NotFound, and generateName is
// ignored on create. The reactors here create-or-replace on apply (keeping
// the live status, as the main resource's endpoint does) and name
// generateName objects, which is what an API server does.
type cluster struct {
	t         *testing.T
	dyn       *dynamicfake.FakeDynamicClient
	mapper    *testMapper
	establish establish
	// failApply, when set, makes the apply of an object fail.
	failApply func(gvr schema.GroupVersionResource, name string) error

	mu    sync.Mutex
	names int
}

func newCluster(t *testing.T, est establish, objs ...runtime.Object) *cluster {
	t.Helper()
	listKinds := map[schema.GroupVersionResource]string{widgetsGVR: "WidgetList"}
	for _, b := range builtins {
		listKinds[b.gvk.GroupVersion().WithResource(b.resource)] = b.gvk.Kind + "List"
	}
	c := &cluster{t: t, establish: est}
	c.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, objs...)
	c.mapper = &testMapper{discover: c.discover}
	c.mapper.m = c.discover()
	c.dyn.PrependReactor("patch", "*", c.apply)
	c.dyn.PrependReactor("create", "*", c.create)
	c.dyn.PrependWatchReactor("customresourcedefinitions", c.watchCRDs)
	return c
}

func (c *cluster) applier() *Applier {
	return &Applier{Dynamic: c.dyn, Mapper: c.mapper, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Concurrency: 4}
}

func (c *cluster) discover() *meta.DefaultRESTMapper {
	m := meta.NewDefaultRESTMapper(nil)
	for _, b := range builtins {
		scope := meta.RESTScopeRoot
		if b.namespaced {
			scope = meta.RESTScopeNamespace
		}
		m.AddSpecific(b.gvk, b.gvk.GroupVersion().WithResource(b.resource), b.gvk.GroupVersion().WithResource(strings.ToLower(b.gvk.Kind)), scope)
	}
	list, err := c.dyn.Tracker().List(CRDResource(), CRDResource().GroupVersion().WithKind("CustomResourceDefinition"), "")
	if err != nil {
		c.t.Errorf("discovery: %v", err)
		return m
	}
	for _, crd := range list.(*unstructured.UnstructuredList).Items {
		if !HasCondition(&crd, "Established", "True") {
			continue
		}
		group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "kind")
		plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
		scope := meta.RESTScopeRoot
		if s, _, _ := unstructured.NestedString(crd.Object, "spec", "scope"); s == "Namespaced" {
			scope = meta.RESTScopeNamespace
		}
		gv := schema.GroupVersion{Group: group, Version: "v1"}
		m.AddSpecific(gv.WithKind(kind), gv.WithResource(plural), gv.WithResource(strings.ToLower(kind)), scope)
	}
	return m
}

func (c *cluster) apply(action clienttesting.Action) (bool, runtime.Object, error) {
	pa, ok := action.(clienttesting.PatchActionImpl)
	if !ok || pa.GetPatchType() != types.ApplyPatchType {
		return false, nil, nil
	}
	gvr, ns, name := pa.GetResource(), pa.GetNamespace(), pa.GetName()
	if c.failApply != nil {
		if err := c.failApply(gvr, name); err != nil {
			return true, nil, err
		}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(pa.GetPatch()); err != nil {
		return true, nil, err
	}
	if u.GetName() != name {
		return true, nil, apierrors.NewBadRequest(fmt.Sprintf("name %q in the URL, %q in the body", name, u.GetName()))
	}
	tracker := c.dyn.Tracker()
	live, err := tracker.Get(gvr, ns, name)
	switch {
	case apierrors.IsNotFound(err):
		if gvr == CRDResource() && c.establish == establishOnApply {
			setEstablished(u)
		}
		if err := tracker.Create(gvr, u, ns); err != nil {
			return true, nil, err
		}
	case err != nil:
		return true, nil, err
	default:
		if st, ok := live.(*unstructured.Unstructured).Object["status"]; ok {
			u.Object["status"] = st
		}
		if err := tracker.Update(gvr, u, ns); err != nil {
			return true, nil, err
		}
	}
	return true, u, nil
}

func (c *cluster) create(action clienttesting.Action) (bool, runtime.Object, error) {
	ca, ok := action.(clienttesting.CreateActionImpl)
	if !ok {
		return false, nil, nil
	}
	u := ca.GetObject().(*unstructured.Unstructured).DeepCopy()
	if u.GetName() == "" && u.GetGenerateName() != "" {
		c.mu.Lock()
		c.names++
		u.SetName(fmt.Sprintf("%s%05d", u.GetGenerateName(), c.names))
		c.mu.Unlock()
	}
	if err := c.dyn.Tracker().Create(ca.GetResource(), u, ca.GetNamespace()); err != nil {
		return true, nil, err
	}
	return true, u, nil
}

// watchCRDs starts a CRD watch and, when asked to, then marks every CRD
// Established: the watcher sees it as a change, as from an API server.
func (c *cluster) watchCRDs(action clienttesting.Action) (bool, watch.Interface, error) {
	tracker := c.dyn.Tracker()
	w, err := tracker.Watch(CRDResource(), "")
	if err != nil || c.establish != establishOnWatch {
		return true, w, err
	}
	go func() {
		list, err := tracker.List(CRDResource(), CRDResource().GroupVersion().WithKind("CustomResourceDefinition"), "")
		if err != nil {
			c.t.Error(err)
			return
		}
		for _, crd := range list.(*unstructured.UnstructuredList).Items {
			if !HasCondition(&crd, "Established", "True") {
				setEstablished(&crd)
				if err := tracker.Update(CRDResource(), &crd, ""); err != nil {
					c.t.Error(err)
				}
			}
		}
	}()
	return true, w, nil
}

func setEstablished(u *unstructured.Unstructured) {
	_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
}

// patches are the server-side applies the client sent, in order.
func (c *cluster) patches() []clienttesting.PatchActionImpl {
	var out []clienttesting.PatchActionImpl
	for _, a := range c.dyn.Actions() {
		if pa, ok := a.(clienttesting.PatchActionImpl); ok {
			out = append(out, pa)
		}
	}
	return out
}

// writes are the actions that change something.
func writes(actions []clienttesting.Action) []clienttesting.Action {
	var out []clienttesting.Action
	for _, a := range actions {
		switch a.GetVerb() {
		case "get", "list", "watch":
		default:
			out = append(out, a)
		}
	}
	return out
}

func patchedNames(c *cluster) []string {
	var out []string
	for _, p := range c.patches() {
		out = append(out, p.GetName())
	}
	sort.Strings(out)
	return out
}

func object(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	for k, v := range fields {
		u.Object[k] = v
	}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	u.SetNamespace(ns)
	if name != "" {
		u.SetName(name)
	}
	return u
}

func widgetCRD() *unstructured.Unstructured {
	return object("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "widgets.example.com", map[string]any{
		"spec": map[string]any{
			"group": "example.com", "scope": "Namespaced",
			"names":    map[string]any{"kind": "Widget", "plural": "widgets"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true}},
		},
	})
}

func configMap(ns, name, value string) *unstructured.Unstructured {
	return object("v1", "ConfigMap", ns, name, map[string]any{"data": map[string]any{"k": value}})
}

// prepared is obj as component c of release 1.21.
func prepared(t *testing.T, component string, u *unstructured.Unstructured) *Object {
	t.Helper()
	o := &Object{Unstructured: u, Component: component, Create: u.GetName() == "" && u.GetGenerateName() != ""}
	if err := Prepare(o, "1.21"); err != nil {
		t.Fatal(err)
	}
	return o
}

func TestApplyOrderAndCRDs(t *testing.T) {
	tests := []struct {
		name      string
		establish establish
		timeout   time.Duration
		wantWatch bool
		wantErr   string
	}{
		{name: "established at once", establish: establishOnApply, timeout: 2 * time.Second},
		{name: "established later", establish: establishOnWatch, timeout: 2 * time.Second, wantWatch: true},
		{name: "never established", establish: establishNever, timeout: 300 * time.Millisecond, wantWatch: true, wantErr: "waiting for 1 CRDs to be Established (e.g. widgets.example.com)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, tt.establish)
			// Namespaces and CRDs last: Apply reorders.
			objs := []*Object{
				prepared(t, "c", configMap("app", "cm", "v")),
				prepared(t, "c", object("example.com/v1", "Widget", "app", "w", map[string]any{"spec": map[string]any{"size": int64(3)}})),
				prepared(t, "c", object("apps/v1", "Deployment", "app", "d", map[string]any{"spec": map[string]any{"replicas": int64(1)}})),
				prepared(t, "c", object("rbac.authorization.k8s.io/v1", "ClusterRole", "", "cr", nil)),
				prepared(t, "c", object("v1", "Namespace", "", "app", nil)),
				prepared(t, "c", widgetCRD()),
			}
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			start := time.Now()
			res, err := c.applier().Apply(ctx, objs, "op-1")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Apply error %v, want one containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Apply error %v does not wrap the context's deadline", err)
				}
				if got := patchedNames(c); !slices.Equal(got, []string{"app", "widgets.example.com"}) {
					t.Errorf("applied %v before the CRDs were Established, want only the namespace and CRD", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if time.Since(start) > time.Second {
				t.Errorf("Apply took %s", time.Since(start))
			}
			if want := (ApplyResult{Applied: 6}); res != want {
				t.Errorf("Apply = %+v, want %+v", res, want)
			}

			// Namespace and CRD first, then (after the wait for
			// Established, when the apply's answer did not show it)
			// everything else. The wait is a watch from a revision read
			// before the CRDs were written, never a list of every CRD.
			actions := c.dyn.Actions()
			revision, lastFirst, firstRest, crdWatch := -1, -1, -1, -1
			for i, a := range actions {
				switch a := a.(type) {
				case clienttesting.ListActionImpl:
					// Lists by label find what is live; the unfiltered
					// one reads the revision, once.
					if a.GetResource() == CRDResource() && a.GetListRestrictions().Labels.Empty() {
						if revision >= 0 {
							t.Errorf("CRDs listed again at action %d (first at %d): want one revision read, no polling", i, revision)
						}
						revision = i
					}
				case clienttesting.WatchActionImpl:
					if a.GetResource() == CRDResource() && crdWatch < 0 {
						crdWatch = i
					}
				case clienttesting.PatchActionImpl:
					if a.GetPatchType() != types.ApplyPatchType {
						t.Errorf("%s patched with %s, want a server-side apply", a.GetName(), a.GetPatchType())
					}
					if a.PatchOptions.FieldManager != FieldManager || a.PatchOptions.Force == nil || !*a.PatchOptions.Force {
						t.Errorf("%s applied with %+v, want field manager %q, forced", a.GetName(), a.PatchOptions, FieldManager)
					}
					switch a.GetResource().Resource {
					case "namespaces", "customresourcedefinitions":
						lastFirst = i
					default:
						if firstRest < 0 {
							firstRest = i
						}
					}
				}
			}
			if lastFirst < 0 || firstRest < 0 || lastFirst > firstRest {
				t.Errorf("namespace/CRD applied last at action %d, other objects first at %d: want namespaces and CRDs first\n%v", lastFirst, firstRest, actions)
			}
			if revision < 0 || revision > lastFirst {
				t.Errorf("CRD revision read at action %d, CRDs applied until %d: want it read before", revision, lastFirst)
			}
			switch {
			case tt.wantWatch && (crdWatch < lastFirst || crdWatch > firstRest):
				t.Errorf("CRDs watched at action %d, applied until %d, other objects applied from %d: want the watch in between", crdWatch, lastFirst, firstRest)
			case !tt.wantWatch && crdWatch >= 0:
				t.Errorf("CRDs watched at action %d although the apply's answer showed them Established", crdWatch)
			}
			if got, want := patchedNames(c), []string{"app", "cm", "cr", "d", "w", "widgets.example.com"}; !slices.Equal(got, want) {
				t.Errorf("applied %v, want %v", got, want)
			}
			// The Widget, whose kind only discovery after the CRD was
			// Established knows, was stored with tmbox's labels.
			w, err := c.dyn.Tracker().Get(widgetsGVR, "app", "w")
			if err != nil {
				t.Fatalf("widget not applied: %v", err)
			}
			if l := w.(*unstructured.Unstructured).GetLabels(); l[LabelManagedBy] != ManagedByValue || l[LabelComponent] != "c" {
				t.Errorf("widget labels %v", l)
			}
			if c.mapper.Resets() == 0 {
				t.Error("the REST mapper was never reset after the CRD was Established")
			}
		})
	}
}

func TestApplySkipsUnchanged(t *testing.T) {
	desired := func(t *testing.T) []*Object {
		return []*Object{
			prepared(t, "serving", configMap("knative-serving", "cm-same", "1")),
			prepared(t, "serving", configMap("knative-serving", "cm-stale", "2")),
			prepared(t, "serving", configMap("knative-serving", "cm-new", "3")),
		}
	}
	// live: cm-same as desired; cm-stale as applied by an older
	// configuration; no cm-new.
	live := func(t *testing.T) []*unstructured.Unstructured {
		objs := desired(t)
		stale := objs[1].DeepCopy()
		stale.Object["data"] = map[string]any{"k": "old"}
		a := stale.GetAnnotations()
		a[AnnotationHash] = "0123456789abcdef0123456789abcdef"
		stale.SetAnnotations(a)
		return []*unstructured.Unstructured{objs[0].DeepCopy(), stale}
	}
	for _, source := range []string{"dynamic", "metadata"} {
		t.Run(source, func(t *testing.T) {
			var seed []runtime.Object
			for _, u := range live(t) {
				seed = append(seed, u)
			}
			c := newCluster(t, establishOnApply, seed...)
			a := c.applier()
			var md *metadatafake.FakeMetadataClient
			if source == "metadata" {
				scheme := metadatafake.NewTestScheme()
				metav1.AddMetaToScheme(scheme)
				var partial []runtime.Object
				for _, u := range live(t) {
					partial = append(partial, &metav1.PartialObjectMetadata{
						TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
						ObjectMeta: metav1.ObjectMeta{Name: u.GetName(), Namespace: u.GetNamespace(), Labels: u.GetLabels(), Annotations: u.GetAnnotations()},
					})
				}
				md = metadatafake.NewSimpleMetadataClient(scheme, partial...)
				a.Metadata = md
			}
			res, err := a.Apply(context.Background(), desired(t), "op-1")
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if want := (ApplyResult{Applied: 2, Unchanged: 1}); res != want {
				t.Errorf("Apply = %+v, want %+v", res, want)
			}
			if got, want := patchedNames(c), []string{"cm-new", "cm-stale"}; !slices.Equal(got, want) {
				t.Errorf("applied %v, want %v", got, want)
			}
			stored, err := c.dyn.Tracker().Get(configMapsGVR, "knative-serving", "cm-stale")
			if err != nil {
				t.Fatal(err)
			}
			if got, want := stored.(*unstructured.Unstructured).GetAnnotations()[AnnotationHash], desired(t)[1].GetAnnotations()[AnnotationHash]; got != want {
				t.Errorf("cm-stale hash %q after apply, want %q", got, want)
			}

			if md != nil {
				// The live hashes came from a metadata list, by label.
				for _, act := range c.dyn.Actions() {
					if act.GetVerb() == "list" {
						t.Errorf("dynamic list %v although a metadata client is set", act.GetResource())
					}
				}
				var sels []string
				for _, act := range md.Actions() {
					if la, ok := act.(clienttesting.ListActionImpl); ok {
						sels = append(sels, la.GetListRestrictions().Labels.String())
					}
				}
				if len(sels) != 1 || !strings.Contains(sels[0], LabelManagedBy+"="+ManagedByValue) || !strings.Contains(sels[0], LabelComponent+"=serving") {
					t.Errorf("metadata lists with selectors %q, want one by managed-by and component", sels)
				}
				return
			}

			// A re-run that changes nothing writes nothing.
			before := len(c.dyn.Actions())
			res, err = a.Apply(context.Background(), desired(t), "op-1")
			if err != nil {
				t.Fatalf("second Apply: %v", err)
			}
			if want := (ApplyResult{Unchanged: 3}); res != want {
				t.Errorf("second Apply = %+v, want %+v", res, want)
			}
			if w := writes(c.dyn.Actions()[before:]); len(w) != 0 {
				t.Errorf("second Apply wrote %v", w)
			}
		})
	}
}

func TestApplyCreatesGenerateNameOncePerOperation(t *testing.T) {
	c := newCluster(t, establishOnApply)
	a := c.applier()
	job := func(component string) *Object {
		u := object("batch/v1", "Job", "knative-serving", "", map[string]any{"spec": map[string]any{"backoffLimit": int64(3)}})
		u.SetGenerateName("storage-version-migration-")
		return prepared(t, component, u)
	}
	steps := []struct {
		operation string
		objs      []*Object
		want      ApplyResult
		wantJobs  int // Jobs in the cluster afterwards
	}{
		{"install-1", []*Object{job("serving")}, ApplyResult{Created: 1}, 1},
		{"install-1", []*Object{job("serving")}, ApplyResult{CreateSkipped: 1}, 1},            // a re-run of the same operation
		{"install-1", []*Object{job("eventing")}, ApplyResult{Created: 1}, 2},                 // another component's
		{"upgrade-2", []*Object{job("serving"), job("eventing")}, ApplyResult{Created: 2}, 4}, // a new operation
		{"upgrade-2", []*Object{job("serving"), job("eventing")}, ApplyResult{CreateSkipped: 2}, 4},
	}
	for i, s := range steps {
		before := len(c.dyn.Actions())
		res, err := a.Apply(context.Background(), s.objs, s.operation)
		if err != nil {
			t.Fatalf("step %d: Apply: %v", i, err)
		}
		if res != s.want {
			t.Errorf("step %d (%s): Apply = %+v, want %+v", i, s.operation, res, s.want)
		}
		creates := 0
		for _, act := range c.dyn.Actions()[before:] {
			switch act.GetVerb() {
			case "create":
				creates++
				if o := act.(clienttesting.CreateActionImpl).CreateOptions; o.FieldManager != FieldManager {
					t.Errorf("step %d: created with field manager %q", i, o.FieldManager)
				}
			case "patch":
				t.Errorf("step %d: a generateName object was applied: %v", i, act)
			}
		}
		if creates != s.want.Created {
			t.Errorf("step %d: %d creates, want %d", i, creates, s.want.Created)
		}
		list, err := c.dyn.Resource(jobsGVR).Namespace("knative-serving").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != s.wantJobs {
			t.Errorf("step %d: %d Jobs, want %d", i, len(list.Items), s.wantJobs)
		}
	}
	list, _ := c.dyn.Resource(jobsGVR).Namespace("knative-serving").List(context.Background(), metav1.ListOptions{})
	perOp := map[string]int{}
	for _, j := range list.Items {
		l := j.GetLabels()
		perOp[l[LabelComponent]+"/"+l[LabelOperation]]++
		if j.GetGenerateName() != "storage-version-migration-" || l[LabelManagedBy] != ManagedByValue {
			t.Errorf("Job %s: generateName %q, labels %v", j.GetName(), j.GetGenerateName(), l)
		}
	}
	want := map[string]int{"serving/install-1": 1, "eventing/install-1": 1, "serving/upgrade-2": 1, "eventing/upgrade-2": 1}
	if fmt.Sprint(perOp) != fmt.Sprint(want) {
		t.Errorf("Jobs per component/operation %v, want %v", perOp, want)
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name      string
		failing   int // of 8 ConfigMaps
		wantLines []string
	}{
		{"one", 1, []string{"apply ConfigMap app/cm-0: denied"}},
		{"five", 5, []string{"apply ConfigMap app/cm-0: denied", "apply ConfigMap app/cm-1: denied", "apply ConfigMap app/cm-2: denied", "apply ConfigMap app/cm-3: denied", "apply ConfigMap app/cm-4: denied"}},
		{"six", 6, []string{"apply ConfigMap app/cm-0: denied", "apply ConfigMap app/cm-1: denied", "apply ConfigMap app/cm-2: denied", "apply ConfigMap app/cm-3: denied", "apply ConfigMap app/cm-4: denied", "and 1 more errors"}},
		{"eight", 8, []string{"apply ConfigMap app/cm-0: denied", "apply ConfigMap app/cm-1: denied", "apply ConfigMap app/cm-2: denied", "apply ConfigMap app/cm-3: denied", "apply ConfigMap app/cm-4: denied", "and 3 more errors"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCluster(t, establishOnApply)
			c.failApply = func(_ schema.GroupVersionResource, name string) error {
				var i int
				if _, err := fmt.Sscanf(name, "cm-%d", &i); err == nil && i < tt.failing {
					return errors.New("denied")
				}
				return nil
			}
			var objs []*Object
			for i := 7; i >= 0; i-- {
				objs = append(objs, prepared(t, "c", configMap("app", fmt.Sprintf("cm-%d", i), "v")))
			}
			a := c.applier()
			a.Concurrency = 2
			_, err := a.Apply(context.Background(), objs, "op")
			if err == nil {
				t.Fatal("Apply succeeded although applies failed")
			}
			if got := strings.Split(err.Error(), "\n"); !slices.Equal(got, tt.wantLines) {
				t.Errorf("error lines\n%q\nwant\n%q", got, tt.wantLines)
			}
			// One failure does not stop the others.
			if n := len(c.patches()); n != 8 {
				t.Errorf("%d applies sent, want all 8", n)
			}
		})
	}
}

func TestApplyStopsWhenNamespacesFail(t *testing.T) {
	c := newCluster(t, establishOnApply)
	c.failApply = func(gvr schema.GroupVersionResource, _ string) error {
		if gvr.Resource == "namespaces" {
			return apierrors.NewForbidden(gvr.GroupResource(), "app", errors.New("no"))
		}
		return nil
	}
	objs := []*Object{prepared(t, "c", configMap("app", "cm", "v")), prepared(t, "c", object("v1", "Namespace", "", "app", nil))}
	_, err := c.applier().Apply(context.Background(), objs, "op")
	if err == nil || !strings.Contains(err.Error(), "apply Namespace app") || !apierrors.IsForbidden(err) {
		t.Fatalf("Apply error %v, want the namespace's", err)
	}
	if got := patchedNames(c); !slices.Equal(got, []string{"app"}) {
		t.Errorf("applied %v after the namespace failed", got)
	}
}

func TestDiff(t *testing.T) {
	same := prepared(t, "c", configMap("app", "same", "1"))
	stale := prepared(t, "c", configMap("app", "stale", "2"))
	liveStale := stale.DeepCopy()
	liveStale.SetAnnotations(map[string]string{AnnotationHash: "old"})
	// Live, with the same hash, but not labelled as this component's: not
	// found by the component's list, so applied.
	other := prepared(t, "c", configMap("app", "other", "3"))
	liveOther := other.DeepCopy()
	liveOther.SetLabels(map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: "someone-else"})

	// Neither the live copy nor the desired object has a hash (not
	// prepared): that is no proof they are the same.
	unhashed := &Object{Unstructured: configMap("app", "unhashed", "5"), Component: "c"}
	unhashed.SetLabels(map[string]string{LabelManagedBy: ManagedByValue, LabelComponent: "c"})

	c := newCluster(t, establishOnApply, same.DeepCopy(), liveStale, liveOther, unhashed.DeepCopy())
	job := object("batch/v1", "Job", "app", "", nil)
	job.SetGenerateName("migrate-")
	objs := []*Object{
		same, stale, other, unhashed,
		prepared(t, "c", configMap("app", "new", "4")),
		// Its CRD is not installed: the kind is unknown, so is the object.
		prepared(t, "c", object("example.com/v1", "Widget", "app", "w", nil)),
		prepared(t, "c", job), // generateName objects are not diffed
	}
	apply, unchanged, err := c.applier().Diff(context.Background(), objs)
	if err != nil {
		t.Fatalf("Diff: %v", err)
	}
	if apply != 5 || unchanged != 1 {
		t.Errorf("Diff = %d to apply, %d unchanged; want 5, 1", apply, unchanged)
	}
	if w := writes(c.dyn.Actions()); len(w) != 0 {
		t.Errorf("Diff wrote %v", w)
	}
	if c.mapper.Resets() == 0 {
		t.Error("an unknown kind did not re-run discovery")
	}
}

func TestLiveHashesListErrors(t *testing.T) {
	c := newCluster(t, establishOnApply)
	c.dyn.PrependReactor("list", "configmaps", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(configMapsGVR.GroupResource(), "", errors.New("rbac"))
	})
	c.dyn.PrependReactor("list", "deployments", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "apps", Resource: "deployments"}, "")
	})
	a := c.applier()
	// A resource the server does not serve (NotFound) has nothing live.
	h, err := a.LiveHashes(context.Background(), []*Object{prepared(t, "c", object("apps/v1", "Deployment", "app", "d", nil))})
	if err != nil || len(h) != 0 {
		t.Errorf("LiveHashes = %v, %v; want none, no error", h, err)
	}
	_, err = a.LiveHashes(context.Background(), []*Object{prepared(t, "c", configMap("app", "cm", "v"))})
	if err == nil || !strings.Contains(err.Error(), "list configmaps") || !apierrors.IsForbidden(err) {
		t.Errorf("LiveHashes error %v, want the list's", err)
	}
}

func TestPrepare(t *testing.T) {
	base := func() *unstructured.Unstructured {
		u := configMap("knative-serving", "config-network", "v")
		u.SetLabels(map[string]string{"app.kubernetes.io/name": "knative-serving"})
		u.SetAnnotations(map[string]string{"knative.dev/example-checksum": "abc"})
		return u
	}
	hashOf := func(t *testing.T, component, release string, mut func(u *unstructured.Unstructured)) (*Object, string) {
		t.Helper()
		u := base()
		if mut != nil {
			mut(u)
		}
		o := &Object{Unstructured: u, Component: component}
		if err := Prepare(o, release); err != nil {
			t.Fatal(err)
		}
		return o, o.GetAnnotations()[AnnotationHash]
	}

	o, h := hashOf(t, "serving", "1.21", nil)
	if len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Errorf("hash %q, want 32 hex digits", h)
	}
	wantLabels := map[string]string{"app.kubernetes.io/name": "knative-serving", LabelManagedBy: ManagedByValue, LabelComponent: "serving", LabelRelease: "1.21"}
	if got := o.GetLabels(); fmt.Sprint(got) != fmt.Sprint(wantLabels) {
		t.Errorf("labels %v, want %v", got, wantLabels)
	}
	if got := o.GetAnnotations()["knative.dev/example-checksum"]; got != "abc" {
		t.Errorf("other annotation lost: %v", o.GetAnnotations())
	}
	// Preparing again (the hash annotation is there now) changes nothing.
	if err := Prepare(o, "1.21"); err != nil {
		t.Fatal(err)
	}
	if h2 := o.GetAnnotations()[AnnotationHash]; h2 != h {
		t.Errorf("Prepare twice: hash %q then %q", h, h2)
	}

	tests := []struct {
		name      string
		component string
		release   string
		mut       func(u *unstructured.Unstructured)
		changed   bool
	}{
		{"same object", "serving", "1.21", nil, false},
		{"stale hash annotation", "serving", "1.21", func(u *unstructured.Unstructured) {
			a := u.GetAnnotations()
			a[AnnotationHash] = "stale"
			u.SetAnnotations(a)
		}, false},
		{"only a hash annotation", "serving", "1.21", func(u *unstructured.Unstructured) {
			u.SetAnnotations(map[string]string{"knative.dev/example-checksum": "abc", AnnotationHash: "x"})
		}, false},
		{"data", "serving", "1.21", func(u *unstructured.Unstructured) { u.Object["data"] = map[string]any{"k": "w"} }, true},
		{"new field", "serving", "1.21", func(u *unstructured.Unstructured) { u.Object["binaryData"] = map[string]any{"b": "AA=="} }, true},
		{"other annotation", "serving", "1.21", func(u *unstructured.Unstructured) {
			u.SetAnnotations(map[string]string{"knative.dev/example-checksum": "def"})
		}, true},
		{"label", "serving", "1.21", func(u *unstructured.Unstructured) {
			u.SetLabels(map[string]string{"app.kubernetes.io/name": "other"})
		}, true},
		// The same object in another release is not written again.
		{"release", "serving", "1.22", nil, false},
		{"component", "eventing", "1.21", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, got := hashOf(t, tt.component, tt.release, tt.mut)
			if changed := got != h; changed != tt.changed {
				t.Errorf("hash %q vs %q: changed=%v, want %v", got, h, changed, tt.changed)
			}
		})
	}
}

func TestPrepareAggregatedClusterRole(t *testing.T) {
	rules := []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"pods"}, "verbs": []any{"get"}}}
	aggregation := map[string]any{"clusterRoleSelectors": []any{map[string]any{"matchLabels": map[string]any{"duck.knative.dev/addressable": "true"}}}}
	tests := []struct {
		name       string
		apiVersion string
		kind       string
		aggregated bool
		wantRules  bool
	}{
		{"aggregated ClusterRole", "rbac.authorization.k8s.io/v1", "ClusterRole", true, false},
		{"plain ClusterRole", "rbac.authorization.k8s.io/v1", "ClusterRole", false, true},
		{"aggregated kind of another group", "example.com/v1", "ClusterRole", true, true},
		{"Role", "rbac.authorization.k8s.io/v1", "Role", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fields := map[string]any{"rules": rules}
			if tt.aggregated {
				fields["aggregationRule"] = aggregation
			}
			o := &Object{Unstructured: object(tt.apiVersion, tt.kind, "", "addressable-resolver", fields), Component: "eventing"}
			if err := Prepare(o, "1.21"); err != nil {
				t.Fatal(err)
			}
			if _, has := o.Object["rules"]; has != tt.wantRules {
				t.Errorf("rules kept = %v, want %v", has, tt.wantRules)
			}
			if _, has := o.Object["aggregationRule"]; has != tt.aggregated {
				t.Errorf("aggregationRule kept = %v, want %v", has, tt.aggregated)
			}
		})
	}
	// The hash is of what is sent: an aggregated role's rules, which the
	// controller-manager fills in, do not change it.
	hash := func(r []any) string {
		o := &Object{Unstructured: object("rbac.authorization.k8s.io/v1", "ClusterRole", "", "x", map[string]any{"aggregationRule": aggregation, "rules": r}), Component: "eventing"}
		if err := Prepare(o, "1.21"); err != nil {
			t.Fatal(err)
		}
		return o.GetAnnotations()[AnnotationHash]
	}
	if a, b := hash(rules), hash(nil); a != b {
		t.Errorf("aggregated ClusterRole hash depends on its rules: %s vs %s", a, b)
	}
}

func TestRewriteObjectImages(t *testing.T) {
	mapping := map[string]string{"gcr.io/knative/activator:v1": "reg.local/knative/activator:v1@sha256:aa"}
	u := object("apps/v1", "Deployment", "knative-serving", "activator", map[string]any{
		"spec": map[string]any{
			"replicas": int64(2),
			"template": map[string]any{"spec": map[string]any{"containers": []any{map[string]any{
				"name": "activator", "image": "gcr.io/knative/activator:v1",
				"env": []any{map[string]any{"name": "IMG", "value": "gcr.io/knative/activator:v1"}, map[string]any{"name": "OTHER", "value": "gcr.io/knative/activator:v1-debug"}},
			}}}},
		},
	})
	if err := RewriteObjectImages(u, mapping); err != nil {
		t.Fatal(err)
	}
	cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	c := cs[0].(map[string]any)
	if c["image"] != "reg.local/knative/activator:v1@sha256:aa" {
		t.Errorf("image %v", c["image"])
	}
	env := c["env"].([]any)
	if v := env[0].(map[string]any)["value"]; v != "reg.local/knative/activator:v1@sha256:aa" {
		t.Errorf("env value %v", v)
	}
	if v := env[1].(map[string]any)["value"]; v != "gcr.io/knative/activator:v1-debug" {
		t.Errorf("a longer reference was rewritten: %v", v)
	}
	// Numbers stay integers (unstructured accessors need int64).
	if r, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas"); !found || err != nil || r != 2 {
		t.Errorf("replicas after rewrite: %v %v %v", r, found, err)
	}

	// Nothing to rewrite: the object is left as it was.
	cm := configMap("ns", "x", "gcr.io/other:v1")
	before := cm.Object
	if err := RewriteObjectImages(cm, mapping); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%p", before) != fmt.Sprintf("%p", cm.Object) {
		t.Error("an object without matching images was replaced")
	}
}

// TestIsCRD: only apiextensions.k8s.io's kind is a CRD; a custom kind
// that shares its name is applied with everything else, not waited for.
func TestIsCRD(t *testing.T) {
	tests := []struct {
		apiVersion string
		want       bool
	}{
		{"apiextensions.k8s.io/v1", true},
		{"apiextensions.k8s.io/v1beta1", true},
		{"example.com/v1", false},
		{"v1", false},
	}
	for _, tt := range tests {
		t.Run(tt.apiVersion, func(t *testing.T) {
			if got := isCRD(object(tt.apiVersion, "CustomResourceDefinition", "", "x", nil)); got != tt.want {
				t.Errorf("isCRD = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestApplyCreatesUnlabelled: a generateName object that was never
// prepared (no labels at all) is created, not a panic.
func TestApplyCreatesUnlabelled(t *testing.T) {
	c := newCluster(t, establishOnApply)
	u := object("batch/v1", "Job", "knative-serving", "", nil)
	u.SetGenerateName("migrate-")
	res, err := c.applier().Apply(context.Background(), []*Object{{Unstructured: u, Component: "serving", Create: true}}, "op-1")
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if res.Created != 1 {
		t.Errorf("Apply = %+v, want one created", res)
	}
}

// TestWaitEstablishedRelistsAfterWatchError: a watch that fails (its
// revision expired, say) is followed by one list, which finds the CRD
// Established.
func TestWaitEstablishedRelistsAfterWatchError(t *testing.T) {
	c := newCluster(t, establishNever)
	watches := 0
	c.dyn.PrependWatchReactor("customresourcedefinitions", func(clienttesting.Action) (bool, watch.Interface, error) {
		watches++
		if watches > 1 {
			return false, nil, nil
		}
		tracker := c.dyn.Tracker()
		crd, err := tracker.Get(CRDResource(), "", "widgets.example.com")
		if err != nil {
			t.Error(err)
		} else {
			u := crd.(*unstructured.Unstructured).DeepCopy()
			setEstablished(u)
			if err := tracker.Update(CRDResource(), u, ""); err != nil {
				t.Error(err)
			}
		}
		w := watch.NewFake()
		go w.Error(&metav1.Status{Status: metav1.StatusFailure, Code: 410, Reason: metav1.StatusReasonExpired})
		return true, w, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	objs := []*Object{prepared(t, "c", widgetCRD()), prepared(t, "c", object("example.com/v1", "Widget", "app", "w", nil))}
	if _, err := c.applier().Apply(ctx, objs, "op"); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	lists := 0
	for _, a := range c.dyn.Actions() {
		if la, ok := a.(clienttesting.ListActionImpl); ok && la.GetResource() == CRDResource() && la.GetListRestrictions().Labels.Empty() {
			lists++
		}
	}
	if watches != 1 || lists != 2 { // the revision, then the list after the failed watch
		t.Errorf("%d watches and %d unfiltered CRD lists, want 1 and 2", watches, lists)
	}
}

// countingDynamic counts server-side applies in flight.
type countingDynamic struct {
	dynamic.Interface
	mu            sync.Mutex
	inFlight, max int
}

type countingResource struct {
	dynamic.NamespaceableResourceInterface
	c *countingDynamic
}

type countingNamespaced struct {
	dynamic.ResourceInterface
	c *countingDynamic
}

func (d *countingDynamic) Resource(r schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return countingResource{d.Interface.Resource(r), d}
}

func (r countingResource) Namespace(ns string) dynamic.ResourceInterface {
	return countingNamespaced{r.NamespaceableResourceInterface.Namespace(ns), r.c}
}

func (r countingNamespaced) Apply(ctx context.Context, name string, obj *unstructured.Unstructured, opts metav1.ApplyOptions, sub ...string) (*unstructured.Unstructured, error) {
	r.c.mu.Lock()
	r.c.inFlight++
	r.c.max = max(r.c.max, r.c.inFlight)
	r.c.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	defer func() {
		r.c.mu.Lock()
		r.c.inFlight--
		r.c.mu.Unlock()
	}()
	return r.ResourceInterface.Apply(ctx, name, obj, opts, sub...)
}

// TestApplyConcurrencyIsShared: components applied side by side share one
// Applier's bound.
func TestApplyConcurrencyIsShared(t *testing.T) {
	c := newCluster(t, establishOnApply)
	counting := &countingDynamic{Interface: c.dyn}
	a := c.applier()
	a.Dynamic, a.Concurrency = counting, 3
	var wg sync.WaitGroup
	for comp := range 4 {
		var objs []*Object
		for i := range 6 {
			objs = append(objs, prepared(t, fmt.Sprint("c", comp), configMap("app", fmt.Sprintf("cm-%d-%d", comp, i), "v")))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := a.Apply(context.Background(), objs, "op"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if counting.max > 3 || counting.max < 2 {
		t.Errorf("at most %d applies in flight, want between 2 and the bound of 3", counting.max)
	}
	if n := len(c.patches()); n != 24 {
		t.Errorf("%d applies, want 24", n)
	}
}

// TestWaveEarly: while a wave's CRDs are being Established, only objects
// of kinds already served that neither run pods nor take part in
// admission may go in.
func TestWaveEarly(t *testing.T) {
	gadgetCRD := object("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "gadgets.example.com", map[string]any{
		"spec": map[string]any{
			"group": "example.com", "scope": "Namespaced",
			"names":    map[string]any{"kind": "Gadget", "plural": "gadgets"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true}},
		},
	})
	// Widgets are served already and their CRD is unchanged; the Gadget
	// CRD is new.
	widgets := prepared(t, "c", widgetCRD())
	live := widgets.DeepCopy()
	setEstablished(live)
	c := newCluster(t, establishOnApply, live)
	c.mapper.Reset()
	job := object("batch/v1", "Job", "app", "", nil)
	job.SetGenerateName("migrate-")
	objs := map[string]*Object{
		"namespace":   prepared(t, "c", object("v1", "Namespace", "", "app", nil)),
		"widget CRD":  widgets,
		"gadget CRD":  prepared(t, "c", gadgetCRD),
		"configmap":   prepared(t, "c", configMap("app", "cm", "v")),
		"clusterrole": prepared(t, "c", object("rbac.authorization.k8s.io/v1", "ClusterRole", "", "cr", nil)),
		"deployment":  prepared(t, "c", object("apps/v1", "Deployment", "app", "d", nil)),
		"webhook":     prepared(t, "c", object("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", "v", nil)),
		"widget":      prepared(t, "c", object("example.com/v1", "Widget", "app", "w", nil)),
		"gadget":      prepared(t, "c", object("example.com/v1", "Gadget", "app", "g", nil)),
		"job":         prepared(t, "c", job),
	}
	// A wave with the new Gadget CRD alone is fresh: workloads go early.
	want := map[string]bool{"configmap": true, "clusterrole": true, "widget": true, "deployment": true}
	var all []*Object
	for _, o := range objs {
		all = append(all, o)
	}
	a := c.applier()
	l, err := a.ReadLive(context.Background(), all)
	if err != nil {
		t.Fatal(err)
	}
	w, err := a.SendFirst(context.Background(), all, l)
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range objs {
		if got := w.Early(o); got != want[name] {
			t.Errorf("Early(%s) = %v, want %v", name, got, want[name])
		}
	}
	if got := patchedNames(c); !slices.Equal(got, []string{"app", "gadgets.example.com"}) {
		t.Errorf("SendFirst applied %v, want the namespace and the new CRD", got)
	}
	if err := w.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A changed Widget CRD (an upgrade) makes the wave an update: its
	// Widgets and every workload wait for it.
	changed := widgetCRD()
	_ = unstructured.SetNestedField(changed.Object, "Cluster", "spec", "scope")
	upd := prepared(t, "c", changed)
	all = []*Object{upd, objs["deployment"], objs["configmap"], objs["widget"]}
	if l, err = a.ReadLive(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	if w, err = a.SendFirst(context.Background(), all, l); err != nil {
		t.Fatal(err)
	}
	for name, wantEarly := range map[string]bool{"deployment": false, "configmap": true, "widget": false} {
		if got := w.Early(objs[name]); got != wantEarly {
			t.Errorf("after a CRD update: Early(%s) = %v, want %v", name, got, wantEarly)
		}
	}
}

// TestLiveAbsent: a component is absent only when none of its objects is
// live as tmbox's and no kind its CRDs define is served, by tmbox's CRD
// or anyone's.
func TestLiveAbsent(t *testing.T) {
	foreign := widgetCRD() // served, but not labelled as tmbox's
	setEstablished(foreign)
	ours := prepared(t, "c", widgetCRD()).DeepCopy()
	setEstablished(ours)
	cm := prepared(t, "c", configMap("app", "cm", "v"))
	job := object("batch/v1", "Job", "app", "", nil)
	job.SetGenerateName("migrate-")
	for _, tc := range []struct {
		name string
		live []runtime.Object
		objs []*Object
		want bool
	}{
		{"empty cluster", nil, []*Object{prepared(t, "c", widgetCRD()), cm, prepared(t, "c", job)}, true},
		{"a Job alone is never live", nil, []*Object{prepared(t, "c", job)}, true},
		{"its CRD's kind served by a CRD tmbox did not apply", []runtime.Object{foreign}, []*Object{prepared(t, "c", widgetCRD()), cm}, false},
		{"its CRD live as tmbox's", []runtime.Object{ours}, []*Object{prepared(t, "c", widgetCRD())}, false},
		{"an object live as tmbox's", []runtime.Object{cm.Unstructured.DeepCopy()}, []*Object{cm}, false},
		{"another kind's CRD served", []runtime.Object{foreign}, []*Object{cm}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, establishOnApply, tc.live...)
			l, err := c.applier().ReadLive(context.Background(), tc.objs)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Absent(tc.objs); got != tc.want {
				t.Errorf("Absent = %v, want %v", got, tc.want)
			}
		})
	}
}
