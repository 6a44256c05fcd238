package installer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/provider"
	"github.com/tmbox/tmbox/installer/wait"
	"github.com/tmbox/tmbox/preflight"
)

// Install converges a cluster to a release. Re-running it is safe: what is
// already in place is verified and left alone, an interrupted phase is
// redone.
type Install struct {
	Options
	// Config, when set, is used instead of Kubeconfig/Context.
	Config *rest.Config
	// Host is what host preflight checks read (default: this machine).
	Host *preflight.Host
	// Provider lays down the cluster when CreateCluster is set (default:
	// kind with the release's node image).
	Provider provider.Provider
}

// Run performs the install. Nothing is written before the preflight checks
// pass and every manifest is fetched and verified.
func (in *Install) Run(ctx context.Context) (*Result, error) {
	err := in.run(ctx)
	if err != nil {
		return nil, err
	}
	return &Result{Release: in.Release}, nil
}

// Plan says what Run would do, phase by phase, and writes nothing.
func (in *Install) Plan(ctx context.Context) (*InstallPlan, error) {
	return nil, errors.New("not implemented yet")
}

// InstallPhases lists an install's phases in run order.
func InstallPhases() []PhaseInfo {
	var out []PhaseInfo
	for _, p := range installPhases(true) {
		out = append(out, PhaseInfo{Name: p.name, Title: p.title})
	}
	return append([]PhaseInfo{{Name: PhasePreflight, Title: "preflight checks"}}, out...)
}

// UpgradePhases lists the phases each hop of an upgrade runs.
func UpgradePhases() []PhaseInfo {
	var out []PhaseInfo
	for _, p := range hopPhases() {
		out = append(out, PhaseInfo{Name: p.name, Title: p.title})
	}
	return out
}

func (in *Install) run(ctx context.Context) error {
	opts := &in.Options
	if err := opts.Validate(); err != nil {
		return err
	}
	// A bundle is verified before anything else reads it.
	var bundle *bundle.Extracted
	if opts.Bundle != "" {
		b, cleanup, err := opts.openBundle(ctx)
		if err != nil {
			return err
		}
		defer cleanup()
		bundle = b
	}
	cat, err := catalog.Load(opts.CatalogFile)
	if err != nil {
		return err
	}
	if opts.Release == "" {
		opts.Release = cat.Latest().Name
	}
	rel, err := cat.Release(opts.Release)
	if err != nil {
		return err
	}
	if opts.IstioOverlay != "" {
		istio, _ := rel.Component(catalog.Istio)
		if istio.Source != catalog.SourceCompiledIn {
			return fmt.Errorf("--istio-overlay applies to the compiled-in Istio; release %s installs Istio %s from its pinned manifests", rel.Name, istio.Version)
		}
		if err := ValidateIstioOverlay(opts.IstioOverlay, istio); err != nil {
			return err
		}
	}
	src, err := opts.source()
	if err != nil {
		return err
	}
	pf := &preflightRun{opts: opts, release: rel, host: in.Host}
	var done []PhaseRecord // preflight and cluster, journaled once the operation begins

	// A kind cluster is created only after the host checks pass; an
	// existing one is checked with the host before anything is written.
	var e *env
	if !opts.CreateCluster {
		if e, err = open(in.Config, opts); err != nil {
			return err
		}
		if err := e.loadDesired(ctx, src, rel); err != nil {
			return err
		}
		pf.env, pf.objects = e, e.desired.unstructured()
	}
	rec, err := pf.phase(ctx, pf.checks())
	if err != nil {
		return err
	}
	done = append(done, rec...)
	if opts.CreateCluster {
		prov := in.Provider
		var kind *provider.Kind
		if prov == nil {
			kind = opts.KindProvider(rel)
			if bundle != nil {
				kind.LoadNodeImage = nodeImageLoader(bundle)
			}
			prov = kind
		}
		start := time.Now()
		if opts.DryRun {
			e2 := Event{Type: EventInfo, Phase: PhaseCluster, Message: "would create or reuse " + prov.Describe() + "; the rest of the plan needs the cluster"}
			opts.Reporter.Report(e2)
			return nil
		}
		opts.Reporter.Report(Event{Time: start, Type: EventPhaseStart, Phase: PhaseCluster, Message: "laying down " + prov.Describe()})
		cfg, err := prov.Ensure(ctx)
		if err != nil {
			opts.Reporter.Report(Event{Time: time.Now(), Type: EventPhaseFail, Phase: PhaseCluster, Error: err.Error(), Duration: time.Since(start)})
			return fmt.Errorf("phase %s: %w", PhaseCluster, err)
		}
		if e, err = connect(cfg, opts); err != nil {
			return err
		}
		e.kind = kind
		if err := e.loadDesired(ctx, src, rel); err != nil {
			return err
		}
		pf.env, pf.objects = e, e.desired.unstructured()
		// The cluster's own checks, now that there is one.
		if _, err := pf.phase(ctx, preflight.ClusterChecks(pf.clusterTarget())); err != nil {
			return err
		}
		opts.Reporter.Report(Event{Time: time.Now(), Type: EventPhaseDone, Phase: PhaseCluster, Message: prov.Describe(), Duration: time.Since(start)})
		now := time.Now()
		done = append(done, PhaseRecord{Name: PhaseCluster, Started: start, Finished: &now, Result: ResultSucceeded})
	}
	e.catalog, e.release, e.bundle = cat, rel, bundle
	if e.state, err = e.store.Load(ctx); err != nil {
		return err
	}
	if e.state.Release != "" && e.state.Release != rel.Name {
		return fmt.Errorf("release %s is installed; move to %s with `tmbox upgrade --to %s`", e.state.Release, rel.Name, rel.Name)
	}
	if cur := e.state.Current(); cur != nil && cur.Kind != "install" {
		return fmt.Errorf("an unfinished %s (%s) is recorded in the cluster; finish it first", cur.Kind, cur.ID)
	}
	phases := installPhases(!opts.CreateCluster)
	if opts.DryRun {
		return runPhases(ctx, e, phases)
	}
	if err := e.beginOperation(ctx, "install", "install-"+rel.Name, "", rel.Name); err != nil {
		return err
	}
	e.op.Phases = append(e.op.Phases, done...)
	err = runPhases(ctx, e, phases)
	if err == nil {
		e.state.Release = rel.Name
		e.state.OptionsDigest = opts.Digest()
	}
	return e.endOperation(ctx, err)
}

// loadDesired fetches, verifies and renders the release's objects.
func (e *env) loadDesired(ctx context.Context, src catalog.Source, rel *catalog.Release) error {
	e.report(Event{Type: EventInfo, Message: fmt.Sprintf("release %s: fetching and verifying manifests from %s", rel.Name, src.Name())})
	d, err := objectsFor(ctx, src, rel, e.opts.Components, e.opts)
	if err != nil {
		return err
	}
	e.desired = d
	return nil
}

// installPhases is the phase list an install runs after preflight (and,
// for a kind cluster, after the cluster phase).
func installPhases(withCluster bool) []phase {
	var out []phase
	if withCluster {
		out = append(out, phase{name: PhaseCluster, title: "using the existing cluster", describe: clusterRun, run: clusterRun})
	}
	return append(out,
		phase{name: PhaseImages, title: "images", describe: imagesDescribe, run: imagesRun},
		componentPhase(PhaseIstio, "installing Istio", catalog.Istio),
		componentPhase(PhaseKnativeServing, "installing Knative Serving and net-istio", catalog.KnativeServing, catalog.NetIstio),
		componentPhase(PhaseKnativeEventing, "installing Knative Eventing", catalog.KnativeEventing),
		componentPhase(PhaseTriggerMesh, "installing TriggerMesh", catalog.TriggerMesh, catalog.TriggerMeshCore),
		phase{name: PhaseVerify, title: "verifying images and health", describe: func(context.Context, *env) (string, error) {
			return "check every managed workload runs the pinned images and is Available", nil
		}, run: verifyRun},
	)
}

func clusterRun(_ context.Context, e *env) (string, error) {
	return "existing cluster at " + e.cfg.Host, nil
}

func imagesRun(ctx context.Context, e *env) (string, error) {
	switch {
	case e.bundle != nil && e.opts.Registry != "":
		return e.pushImages(ctx)
	case e.bundle != nil && e.opts.CreateCluster:
		return e.loadKindImages(ctx)
	}
	return "nothing to load: the cluster pulls the pinned images from their registries", nil
}

func imagesDescribe(_ context.Context, e *env) (string, error) {
	switch {
	case e.bundle != nil && e.opts.Registry != "":
		return fmt.Sprintf("push the bundle's %d images to %s", len(e.bundle.Manifest.Images), e.opts.Registry), nil
	case e.bundle != nil && e.opts.CreateCluster:
		return fmt.Sprintf("load the bundle's %d images into the kind nodes", len(e.bundle.Manifest.Images)), nil
	}
	return "nothing to load: the cluster pulls the pinned images from their registries", nil
}

// componentPhase applies and waits for a group of components.
func componentPhase(name, title string, components ...string) phase {
	selected := func(e *env) []string {
		var out []string
		for _, c := range components {
			if slices.Contains(e.opts.Components, c) {
				out = append(out, c)
			}
		}
		return out
	}
	return phase{
		name: name, title: title,
		describe: func(ctx context.Context, e *env) (string, error) {
			comps := selected(e)
			if len(comps) == 0 {
				return "skip: not selected (--components)", nil
			}
			var parts []string
			for _, c := range comps {
				comp, _ := e.release.Component(c)
				n, unchanged, err := e.applier.Diff(ctx, e.desired.byComponent[c])
				if err != nil {
					return "", err
				}
				parts = append(parts, fmt.Sprintf("%s %s: apply %d objects (%d unchanged)", c, comp.Version, n, unchanged))
			}
			return strings.Join(parts, "; "), nil
		},
		run: func(ctx context.Context, e *env) (string, error) {
			comps := selected(e)
			if len(comps) == 0 {
				return "not selected", nil
			}
			var summary []string
			for _, c := range comps {
				msg, err := e.installComponent(ctx, name, c)
				if err != nil {
					return "", fmt.Errorf("%s: %w", c, err)
				}
				summary = append(summary, msg)
			}
			return strings.Join(summary, "; "), nil
		},
	}
}

// installComponent converges one component: record the inventory, apply,
// wait until ready, prune what the release no longer has.
func (e *env) installComponent(ctx context.Context, phase, name string) (string, error) {
	comp, _ := e.release.Component(name)
	objs := e.desired.byComponent[name]
	if e.state.Inventory == nil {
		e.state.Inventory = map[string][]apply.ObjectKey{}
	}
	old := e.state.Inventory[name]
	var keys []apply.ObjectKey
	for _, o := range objs {
		if !o.Create {
			keys = append(keys, apply.KeyOf(o.Unstructured))
		}
	}
	// Record old ∪ new before writing, so a crash mid-apply leaves
	// nothing untracked (no write when the stored inventory covers it).
	if all := union(old, keys); len(all) != len(old) {
		e.state.Inventory[name] = sortedKeys(all)
		if err := e.saveState(ctx); err != nil {
			return "", err
		}
	}
	t0 := time.Now()
	res, err := e.applier.Apply(ctx, objs, e.jobOp())
	if err != nil {
		return "", err
	}
	t1 := time.Now()
	notify := func(object, reason string) {
		e.report(Event{Type: EventWaiting, Phase: phase, Message: object + ": " + reason})
	}
	if err := e.waiter.WaitReady(ctx, objs, e.jobOp(), e.opts.PhaseTimeout, notify); err != nil {
		return "", err
	}
	pruned, err := e.prune(ctx, old)
	if err != nil {
		return "", err
	}
	jobs, err := e.pruneOldJobs(ctx, name)
	if err != nil {
		return "", err
	}
	pruned += jobs
	e.opts.Logger.Debug("component converged", "component", name, "apply", t1.Sub(t0), "wait+prune", time.Since(t1))
	e.state.Inventory[name] = sortedKeys(keys)
	if e.state.Components == nil {
		e.state.Components = map[string]ComponentState{}
	}
	e.state.Components[name] = ComponentState{Version: comp.Version, Release: e.release.Name}
	// The phase's end record saves this with the journal.
	return fmt.Sprintf("%s %s: %d applied, %d unchanged, %d jobs created, %d pruned", name, comp.Version, res.Applied, res.Unchanged, res.Created, pruned), nil
}

// prune deletes objects of an old inventory that no selected component of
// the release contains any more. CRDs are kept (deleting one deletes every
// custom resource of it); uninstall --purge removes them.
func (e *env) prune(ctx context.Context, old []apply.ObjectKey) (int, error) {
	n := 0
	for _, k := range old {
		if _, still := e.desired.keys[k]; still || k.Kind == "CustomResourceDefinition" {
			continue
		}
		deleted, err := e.deleteObject(ctx, k)
		if err != nil {
			return n, fmt.Errorf("prune %s: %w", k, err)
		}
		if deleted {
			n++
			e.report(Event{Type: EventProgress, Message: "pruned " + k.String()})
		}
	}
	return n, nil
}

// jobOp is the operation label of the Jobs this run creates.
func (e *env) jobOp() string {
	if e.jobOperation != "" {
		return e.jobOperation
	}
	return e.op.ID
}

// pruneOldJobs deletes the post-install Jobs earlier operations created
// for a component: they ran, and they name an older release.
func (e *env) pruneOldJobs(ctx context.Context, component string) (int, error) {
	gvr := schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	sel := fmt.Sprintf("%s=%s,%s=%s,%s,%s!=%s", apply.LabelManagedBy, apply.ManagedByValue, apply.LabelComponent, component, apply.LabelOperation, apply.LabelOperation, e.jobOp())
	list, err := e.dyn.Resource(gvr).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return 0, fmt.Errorf("list old Jobs: %w", err)
	}
	policy := metav1.DeletePropagationBackground
	for _, j := range list.Items {
		err := e.dyn.Resource(gvr).Namespace(j.GetNamespace()).Delete(ctx, j.GetName(), metav1.DeleteOptions{PropagationPolicy: &policy})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("delete old Job %s/%s: %w", j.GetNamespace(), j.GetName(), err)
		}
	}
	return len(list.Items), nil
}

// deleteObject deletes an object if it exists; the kind may no longer be
// served.
func (e *env) deleteObject(ctx context.Context, k apply.ObjectKey) (bool, error) {
	m, err := e.mapper.RESTMapping(k.GroupKind())
	if err != nil {
		return false, nil // the kind is gone, and so is the object
	}
	policy := metav1.DeletePropagationBackground
	err = e.applier.Client(m, k.Namespace).Delete(ctx, k.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// verifyRun checks that every managed workload of the components installed
// at this release runs only images the release pins, and is ready.
func verifyRun(ctx context.Context, e *env) (string, error) {
	pinned := map[string]bool{}
	for _, img := range e.release.Images() {
		pinned[e.opts.mapImage(img)] = true
	}
	var workloads []*apply.Object
	for name, objs := range e.desired.byComponent {
		if cs, ok := e.state.Components[name]; !ok || cs.Release != e.release.Name {
			continue // its phase was skipped: nothing of this release to verify
		}
		for _, o := range objs {
			gvk := o.GroupVersionKind()
			if gvk.Group == "apps" && (gvk.Kind == "Deployment" || gvk.Kind == "DaemonSet" || gvk.Kind == "StatefulSet") {
				workloads = append(workloads, o)
			}
		}
	}
	sort.Slice(workloads, func(i, j int) bool {
		return apply.KeyOf(workloads[i].Unstructured).String() < apply.KeyOf(workloads[j].Unstructured).String()
	})
	// Read them concurrently, judge them in order.
	lives := make([]*unstructured.Unstructured, len(workloads))
	errs := make([]error, len(workloads))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.applier.Concurrent())
	for i, o := range workloads {
		g.Go(func() error {
			gvk := o.GroupVersionKind()
			m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
			if err != nil {
				return err
			}
			lives[i], errs[i] = e.applier.Client(m, o.GetNamespace()).Get(gctx, o.GetName(), metav1.GetOptions{})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	var problems []string
	count := 0
	for i, o := range workloads {
		if errs[i] != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", apply.KeyOf(o.Unstructured), errs[i]))
			continue
		}
		live := lives[i]
		count++
		for _, img := range podTemplateImages(live) {
			if !pinned[img] && !e.imageAllowed(img) {
				problems = append(problems, fmt.Sprintf("%s runs %s, which release %s does not pin", apply.KeyOf(o.Unstructured), img, e.release.Name))
			}
		}
		if ok, why := wait.WorkloadReady(o.GetKind())(live); !ok {
			problems = append(problems, fmt.Sprintf("%s: %s", apply.KeyOf(o.Unstructured), why))
		}
	}
	suffix := ""
	if e.opts.Registry != "" {
		wrong, containers, err := e.checkPodRegistry(ctx)
		if err != nil {
			return "", err
		}
		problems = append(problems, wrong...)
		suffix = fmt.Sprintf("; all %d pod containers run images from %s", containers, e.opts.Registry)
	}
	if len(problems) > 0 {
		return "", errors.New(strings.Join(problems, "; "))
	}
	return fmt.Sprintf("%d workloads run the pinned images and are ready%s", count, suffix), nil
}

// imageAllowed accepts images resolved to a user's TriggerMesh registry.
func (e *env) imageAllowed(img string) bool {
	return e.opts.TriggerMeshRegistry != "" && strings.HasPrefix(img, strings.TrimSuffix(e.opts.TriggerMeshRegistry, "/")+"/")
}

func podTemplateImages(u *unstructured.Unstructured) []string {
	var out []string
	for _, field := range []string{"initContainers", "containers"} {
		cs, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", field)
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				if img, ok := m["image"].(string); ok {
					out = append(out, img)
				}
			}
		}
	}
	return out
}

func union(a, b []apply.ObjectKey) []apply.ObjectKey {
	seen := map[apply.ObjectKey]bool{}
	var out []apply.ObjectKey
	for _, list := range [][]apply.ObjectKey{a, b} {
		for _, k := range list {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	return out
}
