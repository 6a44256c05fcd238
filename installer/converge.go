package installer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/installer/wait"
)

// prune deletes objects of an old inventory that no selected component of
// the release contains any more. CRDs are kept (deleting one deletes every
// custom resource of it); uninstall --purge removes them.
//
// progress receives a line per deleted object.
func (e *env) prune(ctx context.Context, old []apply.ObjectKey, progress func(string)) (int, error) {
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
			progress("pruned " + k.String())
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

// jobsDue reports whether a component's post-install Jobs (its
// generateName objects: Knative's storage-version migration and clean-up)
// run in this operation, and why not when they do not. They carry what an
// older release stored or left behind over to this one, so they run when
// the component was on the cluster at another version (current, "" when
// unknown): an upgrade hop, a downgrade, a run resuming one, a rollback.
// They do not run when the component is new on the cluster (absent:
// nothing stored, nothing left over; Knative's own install instructions
// leave them to upgrades), nor when it is at this version already (the
// operation that put it there ran them).
func (e *env) jobsDue(version, current string, absent bool) (bool, string) {
	switch {
	case e.rollingBack: // back to an older release
		return true, ""
	case absent:
		return false, "new on the cluster, nothing to migrate"
	case current == version:
		return false, "already at " + version
	}
	return true, ""
}

// withoutCreates returns objs without their generateName objects, and how
// many those were.
func withoutCreates(objs []*apply.Object) ([]*apply.Object, int) {
	kept := slices.DeleteFunc(slices.Clone(objs), func(o *apply.Object) bool { return o.Create })
	return kept, len(objs) - len(kept)
}

// pruneOldJobs deletes the post-install Jobs operations other than op
// created for a component: they ran, and they name an older release.
func (e *env) pruneOldJobs(ctx context.Context, component, op string) (int, error) {
	gvr := schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	sel := fmt.Sprintf("%s=%s,%s=%s,%s,%s!=%s", apply.LabelManagedBy, apply.ManagedByValue, apply.LabelComponent, component, apply.LabelOperation, apply.LabelOperation, op)
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

// workloads lists the release's Deployments, DaemonSets and StatefulSets,
// sorted; installedOnly keeps those of components the state records at
// this release (a skipped phase installed nothing of it to verify).
func (e *env) workloads(installedOnly bool) []*apply.Object {
	var workloads []*apply.Object
	for name, objs := range e.desired.byComponent {
		if installedOnly {
			if cs, ok := e.state.Components[name]; !ok || cs.Release != e.release.Name {
				continue
			}
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
	return workloads
}

// verifyRun checks that every managed workload of the components installed
// at this release runs only images the release pins, and is ready.
func verifyRun(ctx context.Context, e *env) (string, error) {
	pinned := map[string]bool{}
	for _, img := range e.release.Images() {
		pinned[e.mapImage(img)] = true
	}
	workloads := e.workloads(true)
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
	// Image overrides: no pod runs an overridden original (overrides.go).
	overridden, replaced, err := e.overrideProblems(ctx)
	if err != nil {
		return "", err
	}
	problems = append(problems, overridden...)
	if n := len(e.render.overridesFor(e.release)); n > 0 {
		suffix += fmt.Sprintf("; %d image override(s): %d pod containers run the replacements", n, replaced)
	}
	if len(problems) > 0 {
		return "", errors.New(strings.Join(problems, "; "))
	}
	if addr := e.probeAddress(); addr != "" {
		status, err := e.waitGatewayAnswers(ctx, addr)
		if err != nil {
			return "", err
		}
		suffix += fmt.Sprintf("; the ingress gateway answers on http://%s/ (%s)", addr, status)
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
