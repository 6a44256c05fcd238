package installer

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
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
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/wait"
	"github.com/tmbox/tmbox/internal/fakewatch"
)

// TestComponentNeeds checks the graph's data: known components, levels,
// reasons, and no cycle (a cycle would deadlock a pipeline). A need of
// another's CRDs is met by the run's wave, which waits for no component;
// every other level of a component may wait for its late objects, so for
// its needs (workloads do when the wave updates CRDs).
func TestComponentNeeds(t *testing.T) {
	known := catalog.ComponentNames()
	needs := componentNeeds()
	for comp, ns := range needs {
		if !slices.Contains(known, comp) {
			t.Errorf("needs of unknown component %q", comp)
		}
		for _, n := range ns {
			if !slices.Contains(known, n.on) || n.on == comp {
				t.Errorf("%s needs %q", comp, n.on)
			}
			if !slices.Contains(levels(), n.level) || n.why == "" {
				t.Errorf("%s needs %s: level %v, why %q", comp, n.on, n.level, n.why)
			}
		}
	}
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(c string, path []string)
	visit = func(c string, path []string) {
		switch state[c] {
		case 1:
			t.Fatalf("cycle: %s", strings.Join(append(path, c), " → "))
		case 2:
			return
		}
		state[c] = 1
		for _, n := range needs[c] {
			if n.level != levelCRDs {
				visit(n.on, append(path, c))
			}
		}
		state[c] = 2
	}
	for _, c := range known {
		visit(c, nil)
	}
	if !slices.Contains(hopAlone(), PhaseIstio) {
		t.Error("a hop no longer moves Istio alone first (TestIntegrationRollbackOnlyTouched relies on it)")
	}
}

// fakeKube is a fake API server for the pipeline: server-side apply as
// create-or-replace, CRDs Established and Deployments Available as soon as
// they are written unless gated, and applies of a gated object held until
// the gate opens.
type fakeKube struct {
	t   *testing.T
	dyn *dynamicfake.FakeDynamicClient

	mu sync.Mutex
	// holdCRD, holdDeployments, holdWebhook and holdApply name objects
	// not Established, not Available, without a ready endpoint, or not
	// applied yet; open releases them.
	holdCRD, holdApply, holdWebhook string
	holdDeployments                 []string
	gate                            chan struct{}
	// applied logs every applied object as "namespace/kind/name", in
	// order; opened is its length when the gate opened.
	applied []string
	opened  int
	mapper  *fakeMapper
}

var pipelineBuiltins = map[schema.GroupVersionResource]string{
	{Version: "v1", Resource: "namespaces"}:                                                             "Namespace",
	{Version: "v1", Resource: "configmaps"}:                                                             "ConfigMap",
	{Group: "apps", Version: "v1", Resource: "deployments"}:                                             "Deployment",
	{Group: "batch", Version: "v1", Resource: "jobs"}:                                                   "Job",
	{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}:               "CustomResourceDefinition",
	{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}: "ValidatingWebhookConfiguration",
	{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}:                              "EndpointSlice",
}

var endpointSlicesGVR = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}

// endpointSlice is a ready endpoint of Service ns/name.
func endpointSlice(ns, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"endpoints": []any{map[string]any{"conditions": map[string]any{"ready": true}}}}}
	u.SetAPIVersion("discovery.k8s.io/v1")
	u.SetKind("EndpointSlice")
	u.SetNamespace(ns)
	u.SetName(name + "-1")
	u.SetLabels(map[string]string{"kubernetes.io/service-name": name})
	return u
}

func newFakeKube(t *testing.T) *fakeKube {
	f := &fakeKube{t: t, gate: make(chan struct{})}
	listKinds := map[schema.GroupVersionResource]string{}
	for gvr, kind := range pipelineBuiltins {
		listKinds[gvr] = kind + "List"
	}
	for _, c := range catalog.ComponentNames() {
		listKinds[thingsGVR(c)] = "ThingList"
	}
	f.dyn = dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	f.dyn.PrependReactor("patch", "*", f.apply)
	f.dyn.PrependWatchReactor("*", fakewatch.Reactor(f.dyn.Tracker(), listKinds))
	f.mapper = &fakeMapper{f: f}
	f.mapper.Reset()
	return f
}

func thingsGVR(comp string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: comp + ".example.com", Version: "v1", Resource: "things"}
}

// open opens the gate: the held CRD is Established, the held Deployment
// Available, the held apply goes through.
func (f *fakeKube) open() {
	f.mu.Lock()
	f.opened = len(f.applied)
	holdCRD, holdDeployments, holdWebhook := f.holdCRD, f.holdDeployments, f.holdWebhook
	f.mu.Unlock()
	close(f.gate)
	tr := f.dyn.Tracker()
	if holdCRD != "" {
		if o, err := tr.Get(apply.CRDResource(), "", holdCRD); err == nil {
			u := o.(*unstructured.Unstructured).DeepCopy()
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
			if err := tr.Update(apply.CRDResource(), u, ""); err != nil {
				f.t.Error(err)
			}
		}
	}
	if holdWebhook != "" {
		ns, name, _ := strings.Cut(holdWebhook, "/")
		if err := tr.Create(endpointSlicesGVR, endpointSlice(ns, name), ns); err != nil {
			f.t.Error(err)
		}
	}
	for _, d := range holdDeployments {
		ns, name, _ := strings.Cut(d, "/")
		gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
		if o, err := tr.Get(gvr, ns, name); err == nil {
			u := o.(*unstructured.Unstructured).DeepCopy()
			setAvailable(u)
			if err := tr.Update(gvr, u, ns); err != nil {
				f.t.Error(err)
			}
		}
	}
}

func setAvailable(u *unstructured.Unstructured) {
	u.Object["status"] = map[string]any{"replicas": int64(1), "updatedReplicas": int64(1), "availableReplicas": int64(1),
		"conditions": []any{map[string]any{"type": "Available", "status": "True"}}}
}

func (f *fakeKube) apply(action clienttesting.Action) (bool, runtime.Object, error) {
	pa, ok := action.(clienttesting.PatchActionImpl)
	if !ok || pa.GetPatchType() != types.ApplyPatchType {
		return false, nil, nil
	}
	gvr, ns := pa.GetResource(), pa.GetNamespace()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(pa.GetPatch()); err != nil {
		return true, nil, err
	}
	f.mu.Lock()
	f.applied = append(f.applied, ns+"/"+u.GetKind()+"/"+u.GetName())
	gatedCRD := u.GetName() == f.holdCRD
	gatedDeploy := slices.Contains(f.holdDeployments, ns+"/"+u.GetName()) && u.GetKind() == "Deployment"
	holdWebhook := f.holdWebhook
	f.mu.Unlock()
	tr := f.dyn.Tracker()
	live, err := tr.Get(gvr, ns, u.GetName())
	switch {
	case apierrors.IsNotFound(err):
		switch {
		case u.GetKind() == "CustomResourceDefinition" && !gatedCRD:
			_ = unstructured.SetNestedSlice(u.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
		case u.GetKind() == "Deployment" && !gatedDeploy:
			setAvailable(u)
		case u.GetKind() == "ValidatingWebhookConfiguration":
			// Its Service gets a ready endpoint at once, unless held.
			hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
			for _, h := range hooks {
				svcNS, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "service", "namespace")
				svc, _, _ := unstructured.NestedString(h.(map[string]any), "clientConfig", "service", "name")
				if svcNS+"/"+svc != holdWebhook {
					if err := tr.Create(endpointSlicesGVR, endpointSlice(svcNS, svc), svcNS); err != nil && !apierrors.IsAlreadyExists(err) {
						return true, nil, err
					}
				}
			}
		}
		err = tr.Create(gvr, u, ns)
	case err == nil:
		if st, ok := live.(*unstructured.Unstructured).Object["status"]; ok && !gatedCRD {
			u.Object["status"] = st // a held CRD's update is not Established yet
		}
		err = tr.Update(gvr, u, ns)
	}
	return true, u, err
}

// fakeMapper is discovery of the fake: the built-in kinds and the kinds
// of Established CRDs, re-read on Reset.
type fakeMapper struct {
	f  *fakeKube
	mu sync.Mutex
	m  *meta.DefaultRESTMapper
}

func (m *fakeMapper) Reset() {
	dm := meta.NewDefaultRESTMapper(nil)
	for gvr, kind := range pipelineBuiltins {
		scope := meta.RESTScopeNamespace
		if kind == "Namespace" || kind == "CustomResourceDefinition" || kind == "ValidatingWebhookConfiguration" {
			scope = meta.RESTScopeRoot
		}
		dm.AddSpecific(gvr.GroupVersion().WithKind(kind), gvr, gvr.GroupVersion().WithResource(strings.ToLower(kind)), scope)
	}
	list, _ := m.f.dyn.Tracker().List(apply.CRDResource(), apply.CRDResource().GroupVersion().WithKind("CustomResourceDefinition"), "")
	if l, ok := list.(*unstructured.UnstructuredList); ok {
		for _, crd := range l.Items {
			if apply.HasCondition(&crd, "Established", "True") {
				group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
				gv := schema.GroupVersion{Group: group, Version: "v1"}
				dm.AddSpecific(gv.WithKind("Thing"), gv.WithResource("things"), gv.WithResource("thing"), meta.RESTScopeNamespace)
			}
		}
	}
	m.mu.Lock()
	m.m = dm
	m.mu.Unlock()
}

func (m *fakeMapper) get() *meta.DefaultRESTMapper {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m
}

func (m *fakeMapper) KindFor(r schema.GroupVersionResource) (schema.GroupVersionKind, error) {
	return m.get().KindFor(r)
}
func (m *fakeMapper) KindsFor(r schema.GroupVersionResource) ([]schema.GroupVersionKind, error) {
	return m.get().KindsFor(r)
}
func (m *fakeMapper) ResourceFor(r schema.GroupVersionResource) (schema.GroupVersionResource, error) {
	return m.get().ResourceFor(r)
}
func (m *fakeMapper) ResourcesFor(r schema.GroupVersionResource) ([]schema.GroupVersionResource, error) {
	return m.get().ResourcesFor(r)
}
func (m *fakeMapper) RESTMapping(gk schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	return m.get().RESTMapping(gk, versions...)
}
func (m *fakeMapper) RESTMappings(gk schema.GroupKind, versions ...string) ([]*meta.RESTMapping, error) {
	return m.get().RESTMappings(gk, versions...)
}
func (m *fakeMapper) ResourceSingularizer(resource string) (string, error) {
	return m.get().ResourceSingularizer(resource)
}

// gatedDynamic holds the apply of the object named holdApply
// ("namespace/name") until the gate opens.
type gatedDynamic struct {
	dynamic.Interface
	f *fakeKube
}

type gatedResource struct {
	dynamic.NamespaceableResourceInterface
	f *fakeKube
}

// gatedNamespaced is gatedResource in a namespace.
type gatedNamespaced struct {
	dynamic.ResourceInterface
	f  *fakeKube
	ns string
}

func (g gatedDynamic) Resource(r schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return gatedResource{NamespaceableResourceInterface: g.Interface.Resource(r), f: g.f}
}

func (g gatedResource) Namespace(ns string) dynamic.ResourceInterface {
	return gatedNamespaced{ResourceInterface: g.NamespaceableResourceInterface.Namespace(ns), f: g.f, ns: ns}
}

func (g gatedResource) Apply(ctx context.Context, name string, obj *unstructured.Unstructured, opts metav1.ApplyOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := g.f.hold(ctx, name); err != nil {
		return nil, err
	}
	return g.NamespaceableResourceInterface.Apply(ctx, name, obj, opts, sub...)
}

func (g gatedNamespaced) Apply(ctx context.Context, name string, obj *unstructured.Unstructured, opts metav1.ApplyOptions, sub ...string) (*unstructured.Unstructured, error) {
	if err := g.f.hold(ctx, g.ns+"/"+name); err != nil {
		return nil, err
	}
	return g.ResourceInterface.Apply(ctx, name, obj, opts, sub...)
}

// hold waits for the gate when key is the held apply.
func (f *fakeKube) hold(ctx context.Context, key string) error {
	f.mu.Lock()
	hold := f.holdApply == key
	f.mu.Unlock()
	if !hold {
		return nil
	}
	select {
	case <-f.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// syntheticRelease is a release's components with small objects each in
// a namespace of its own (t-<component>): a namespace, a CRD of kind
// Thing in group <component>.example.com, a ConfigMap, a Deployment, a
// webhook calling Service <component>-webhook, and for each CRD need a
// Thing of the needed component's group.
func syntheticRelease(t *testing.T) (*catalog.Release, *desired) {
	t.Helper()
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rel, err := cat.Release("1.23")
	if err != nil {
		t.Fatal(err)
	}
	d := &desired{release: rel, byComponent: map[string][]*apply.Object{}, keys: map[apply.ObjectKey]string{}}
	obj := func(apiVersion, kind, ns, name string, fields map[string]any) *unstructured.Unstructured {
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
	for _, c := range catalog.ComponentNames() {
		ns := "t-" + c
		us := []*unstructured.Unstructured{
			obj("v1", "Namespace", "", ns, nil),
			obj("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", "things."+c+".example.com", map[string]any{"spec": map[string]any{
				"group": c + ".example.com", "scope": "Namespaced", "names": map[string]any{"kind": "Thing", "plural": "things"},
				"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true}},
			}}),
			obj("v1", "ConfigMap", ns, "config", map[string]any{"data": map[string]any{"k": c}}),
			obj("apps/v1", "Deployment", ns, c, map[string]any{"spec": map[string]any{"replicas": int64(1), "selector": map[string]any{"matchLabels": map[string]any{"app": c}}}}),
			obj("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "", c+".example.com", map[string]any{"webhooks": []any{map[string]any{
				"name": "validate." + c + ".example.com", "clientConfig": map[string]any{"service": map[string]any{"namespace": ns, "name": c + "-webhook"}},
			}}}),
		}
		for _, n := range componentNeeds()[c] {
			if n.level == levelCRDs {
				us = append(us, obj(n.on+".example.com/v1", "Thing", ns, "uses-"+n.on, nil))
			}
		}
		for _, u := range us {
			o := &apply.Object{Unstructured: u, Component: c}
			if err := apply.Prepare(o, rel.Name); err != nil {
				t.Fatal(err)
			}
			d.byComponent[c] = append(d.byComponent[c], o)
			d.keys[apply.KeyOf(u)] = c
		}
	}
	return rel, d
}

// pipelineEnv is an install's session against the fake.
func pipelineEnv(t *testing.T, f *fakeKube, rec Reporter) *env {
	rel, d := syntheticRelease(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := testEnv(Options{Components: catalog.ComponentNames(), PhaseTimeout: 10 * time.Second, Logger: log}, rec)
	e.release, e.desired, e.state, e.jobOperation = rel, d, &State{}, "install-test"
	dyn := gatedDynamic{Interface: f.dyn, f: f}
	kube := kubefake.NewSimpleClientset()
	e.dyn, e.client, e.mapper = dyn, kube, f.mapper
	e.store = &stateStore{Client: kube}
	e.applier = &apply.Applier{Dynamic: dyn, Mapper: f.mapper, Log: log}
	e.waiter = &wait.Waiter{Dynamic: dyn, Client: kube, Log: log, DiagnoseEvery: time.Hour}
	return e
}

func componentPhases() []phase {
	var out []phase
	for _, p := range installPhases() {
		if len(p.components) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// TestPipelineHonoursNeeds holds, for every edge of componentNeeds, the
// needed component below the level needed (its CRD not Established, an
// object of it not applied, or its Deployment not Available) and checks
// that the dependent component writes nothing but its namespace and CRD
// until that level is reached, while the others go on; then the install
// completes.
func TestPipelineHonoursNeeds(t *testing.T) {
	type edge struct {
		comp string
		n    need
	}
	var edges []edge
	for _, c := range catalog.ComponentNames() {
		for _, n := range componentNeeds()[c] {
			edges = append(edges, edge{c, n})
		}
	}
	if len(edges) == 0 {
		t.Fatal("no dependencies to test")
	}
	for _, ed := range edges {
		for _, upgrade := range []bool{false, true} {
			name := fmt.Sprintf("%s needs %s %s", ed.comp, ed.n.on, ed.n.level)
			if upgrade {
				name += " (CRDs updated)"
			}
			t.Run(name, func(t *testing.T) { honoursNeed(t, ed.comp, ed.n, upgrade) })
		}
	}
}

// honoursNeed runs one case of TestPipelineHonoursNeeds; with upgrade,
// every CRD is there already with another schema, so the wave updates
// them: the workloads are late too.
func honoursNeed(t *testing.T, comp string, n need, upgrade bool) {
	ed := struct {
		comp string
		n    need
	}{comp, n}
	{
		{
			f := newFakeKube(t)
			if upgrade {
				preinstallCRDs(t, f)
			}
			on := "t-" + ed.n.on
			switch ed.n.level {
			case levelCRDs:
				f.holdCRD = "things." + ed.n.on + ".example.com"
			case levelWorkloads:
				f.holdApply = on + "/" + ed.n.on // its Deployment
			case levelApplied:
				f.holdApply = on + "/config"
			case levelWebhooks:
				f.holdWebhook = on + "/" + ed.n.on + "-webhook"
			case levelReady:
				f.holdDeployments = []string{on + "/" + ed.n.on}
			}
			e := pipelineEnv(t, f, &syncRecorder{})
			done := make(chan error, 1)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			go func() { done <- (&runner{e: e}).run(ctx, componentPhases()) }()
			// Let everything that can go ahead go ahead.
			settle(t, f, done)
			// What a need gates: webhooks and custom resources (its
			// ConfigMap, and on a first install its Deployment, need only
			// the namespace).
			dependentWrites := func(log []string) []string {
				var out []string
				for _, a := range log {
					late := strings.HasPrefix(a, "t-"+ed.comp+"/Thing/") || a == "/ValidatingWebhookConfiguration/"+ed.comp+".example.com" ||
						upgrade && strings.HasPrefix(a, "t-"+ed.comp+"/Deployment/")
					if late {
						out = append(out, a)
					}
				}
				return out
			}
			f.mu.Lock()
			before := slices.Clone(f.applied)
			f.mu.Unlock()
			if w := dependentWrites(before); len(w) > 0 {
				t.Errorf("%s wrote %v before %s was %s", ed.comp, w, ed.n.on, ed.n.level)
			}
			// What needs only its namespace went in meanwhile.
			if !slices.Contains(before, "t-"+ed.comp+"/ConfigMap/config") {
				t.Errorf("%s's ConfigMap waited for %s too: %v", ed.comp, ed.n.on, before)
			}
			// Not everything stood still: with a CRD held, the wave's
			// namespaces and CRDs went out; otherwise some component
			// wrote its objects.
			progressed := slices.ContainsFunc(before, func(a string) bool {
				return !strings.Contains(a, "/Namespace/") && !strings.Contains(a, "/CustomResourceDefinition/")
			})
			if ed.n.level != levelCRDs && !progressed {
				t.Errorf("nothing but namespaces and CRDs was applied while %s was held: %v", ed.n.on, before)
			}
			f.open()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("install: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("the install did not finish once the gate opened")
			}
			f.mu.Lock()
			after := f.applied[f.opened:]
			f.mu.Unlock()
			if len(dependentWrites(after)) == 0 {
				t.Errorf("%s wrote nothing after %s was %s", ed.comp, ed.n.on, ed.n.level)
			}
			for _, c := range catalog.ComponentNames() {
				if cs := e.state.Components[c]; cs.Release != "1.23" {
					t.Errorf("component %s recorded as %+v", c, cs)
				}
			}
		}
	}
}

// preinstallCRDs puts every synthetic CRD in the fake, Established, with
// another schema than the release's, as an older release left them.
func preinstallCRDs(t *testing.T, f *fakeKube) {
	t.Helper()
	_, d := syntheticRelease(t)
	for _, objs := range d.byComponent {
		for _, o := range objs {
			if o.GetKind() != "CustomResourceDefinition" {
				continue
			}
			old := o.DeepCopy()
			_ = unstructured.SetNestedField(old.Object, "Namespaced-old", "spec", "scope")
			old.SetAnnotations(map[string]string{apply.AnnotationHash: "older-release"})
			_ = unstructured.SetNestedSlice(old.Object, []any{map[string]any{"type": "Established", "status": "True"}}, "status", "conditions")
			if err := f.dyn.Tracker().Create(apply.CRDResource(), old, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	f.mapper.Reset()
}

// settle waits until the fake has seen no apply for a while (or the run
// ended).
func settle(t *testing.T, f *fakeKube, done chan error) {
	t.Helper()
	last, still := -1, 0
	for range 100 {
		select {
		case err := <-done:
			t.Fatalf("the install ended while a dependency was held: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
		f.mu.Lock()
		n := len(f.applied)
		f.mu.Unlock()
		if n == last {
			if still++; still >= 10 {
				return
			}
		} else {
			last, still = n, 0
		}
	}
}

// TestPipelineEvents: the phases report in order, each one's waiting
// lines only after its start, and every component is recorded in the
// state's inventory before anything is written.
func TestPipelineEvents(t *testing.T) {
	f := newFakeKube(t)
	// Istio held: its phase waits; TriggerMesh held too: it waits
	// (and says why) while its phase has not started.
	f.holdDeployments = []string{"t-" + catalog.Istio + "/" + catalog.Istio, "t-" + catalog.TriggerMesh + "/" + catalog.TriggerMesh}
	rec := &syncRecorder{}
	e := pipelineEnv(t, f, rec)
	done := make(chan error, 1)
	go func() { done <- (&runner{e: e}).run(context.Background(), componentPhases()) }()
	settle(t, f, done)
	// Only Istio's phase has started; TriggerMesh's waiting lines are
	// held.
	for _, ev := range rec.all() {
		if ev.Phase != PhaseIstio {
			t.Errorf("event %s of phase %s (%s) while only istio's phase runs", ev.Type, ev.Phase, ev.Message)
		}
	}
	// Every component's objects were recorded in the inventory before
	// the first write (one state write).
	cm, err := e.store.Client.CoreV1().ConfigMaps(StateNamespace).Get(context.Background(), StateConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("no state written before the first apply: %v", err)
	}
	for _, c := range catalog.ComponentNames() {
		if !strings.Contains(cm.Data[stateKey], "t-"+c) {
			t.Errorf("component %s's objects are not in the recorded inventory", c)
		}
	}
	f.open()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var seq []string
	started := map[string]bool{}
	heldShown := false
	for _, ev := range rec.all() {
		switch ev.Type {
		case EventPhaseStart, EventPhaseDone, EventPhaseFail:
			seq = append(seq, ev.Type+"/"+ev.Phase)
			started[ev.Phase] = true
		default:
			if ev.Phase != "" && !started[ev.Phase] {
				t.Errorf("%s event of phase %s before its start: %s", ev.Type, ev.Phase, ev.Message)
			}
			heldShown = heldShown || ev.Type == EventWaiting && ev.Phase == PhaseTriggerMesh
		}
	}
	var want []string
	for _, p := range componentPhases() {
		want = append(want, EventPhaseStart+"/"+p.name, EventPhaseDone+"/"+p.name)
	}
	if !slices.Equal(seq, want) {
		t.Errorf("phase events %v, want %v", seq, want)
	}
	if !heldShown {
		t.Error("TriggerMesh's waiting line, held while its phase had not started, was never reported")
	}
}

// syncRecorder keeps events from several goroutines.
type syncRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *syncRecorder) Report(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *syncRecorder) all() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// TestJobsDue: post-install Jobs carry an older release's stored objects
// over, so they run when the component was on the cluster at another
// version, and in a rollback; not on a first install, nor again at the
// same version.
func TestJobsDue(t *testing.T) {
	for _, tc := range []struct {
		name             string
		rollback, absent bool
		current          string
		want             bool
	}{
		{name: "first install", absent: true, want: false},
		{name: "first install, state of an earlier run", absent: true, current: "1.23.0", want: false},
		{name: "upgrade", current: "1.22.1", want: true},
		{name: "over kept CRDs, no state", current: "", want: true},
		{name: "re-run at the same version", current: "1.23.0", want: false},
		{name: "rollback", rollback: true, current: "1.23.0", want: true},
		{name: "rollback of a component the hop added", rollback: true, absent: true, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{}
			e.rollingBack = tc.rollback
			got, why := e.jobsDue("1.23.0", tc.current, tc.absent)
			if got != tc.want {
				t.Errorf("jobsDue = %v (%s), want %v", got, why, tc.want)
			}
			if !got && why == "" {
				t.Error("no reason given for not running them")
			}
		})
	}
}

// TestPlanCountsDueJobs: the plan counts a post-install Job only where the
// run creates it — not on a cluster yet to be created, yes on a later hop
// (the component was there at the hop's earlier version).
func TestPlanCountsDueJobs(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	desiredOf := func(name string) *desired {
		rel, err := cat.Release(name)
		if err != nil {
			t.Fatal(err)
		}
		job := &unstructured.Unstructured{Object: map[string]any{}}
		job.SetAPIVersion("batch/v1")
		job.SetKind("Job")
		job.SetNamespace("knative-serving")
		job.SetGenerateName("storage-version-migration-serving-")
		o := &apply.Object{Unstructured: job, Component: catalog.KnativeServing, Create: true}
		if err := apply.Prepare(o, rel.Name); err != nil {
			t.Fatal(err)
		}
		return &desired{release: rel, byComponent: map[string][]*apply.Object{catalog.KnativeServing: {o}}, keys: map[apply.ObjectKey]string{}}
	}
	e := testEnv(Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	for _, tc := range []struct {
		name       string
		prev       *desired
		wantAdd    int
		wantDetail string
	}{
		{"a cluster yet to be created", nil, 0, "skip Job knative-serving/storage-version-migration-serving-* (new on the cluster, nothing to migrate)"},
		{"a hop from 1.22", desiredOf("1.22"), 1, "create Job knative-serving/storage-version-migration-serving-*"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			diffs, err := e.diffComponents(context.Background(), []string{catalog.KnativeServing}, false, tc.prev, desiredOf("1.23"), true)
			if err != nil {
				t.Fatal(err)
			}
			if len(diffs) != 1 || diffs[0].Add != tc.wantAdd || !slices.Equal(diffs[0].Details, []string{tc.wantDetail}) {
				t.Errorf("diff = %+v, want %d to add and %q", diffs, tc.wantAdd, tc.wantDetail)
			}
		})
	}
}
