package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// floorConcurrency is how many requests the floor client has in flight.
const floorConcurrency = 16

// floorObjects is one release's rendered objects (`tmbox render` output):
// what to apply and what to create (generateName Jobs).
type floorObjects struct {
	apply, create []*unstructured.Unstructured
}

func (f floorObjects) count() int { return len(f.apply) + len(f.create) }

// readRendered decodes the NN-component.yaml and NN-component-create.yaml
// files `tmbox render` writes.
func readRendered(dir string) (floorObjects, error) {
	var out floorObjects
	files, err := filepath.Glob(filepath.Join(dir, "[0-9][0-9]-*.yaml"))
	if err != nil {
		return out, err
	}
	if len(files) == 0 {
		return out, fmt.Errorf("%s: no rendered NN-*.yaml files", dir)
	}
	slices.Sort(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return out, err
		}
		objs, err := decodeAll(data)
		if err != nil {
			return out, fmt.Errorf("%s: %w", f, err)
		}
		if strings.HasSuffix(f, "-create.yaml") {
			out.create = append(out.create, objs...)
		} else {
			out.apply = append(out.apply, objs...)
		}
	}
	return out, nil
}

func decodeAll(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
}

// floorApply is the API server's own time for a release's objects: a bare
// client that server-side applies every object, floorConcurrency at a
// time, namespaces and CRDs first, then (once the CRDs are Established)
// everything else, the generateName Jobs created; no readiness waits, no
// reads beforehand, no client-side rate limit. The time covers discovery
// and every request, not decoding the files.
func floorApply(ctx context.Context, cfg *rest.Config, objs floorObjects) (time.Duration, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = -1, 0 // no client-side throttling
	cfg.WarningHandler = rest.NoWarnings{}
	start := time.Now()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return 0, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return 0, err
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	var first, rest []*unstructured.Unstructured
	var crds []string
	for _, o := range objs.apply {
		gvk := o.GroupVersionKind()
		switch {
		case gvk.Group == "" && gvk.Kind == "Namespace":
			first = append(first, o)
		case gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition":
			first = append(first, o)
			crds = append(crds, o.GetName())
		default:
			rest = append(rest, o)
		}
	}
	send := func(ctx context.Context, o *unstructured.Unstructured, create bool) error {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			mapper.Reset()
			m, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return err
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		if create {
			_, err = ri.Create(ctx, o, metav1.CreateOptions{FieldManager: "floor"})
			return err
		}
		_, err = ri.Apply(ctx, o.GetName(), o, metav1.ApplyOptions{FieldManager: "floor", Force: true})
		return err
	}
	all := func(objs []*unstructured.Unstructured, create bool) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(floorConcurrency)
		for _, o := range objs {
			g.Go(func() error {
				if err := send(gctx, o, create); err != nil {
					return fmt.Errorf("%s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
				}
				return nil
			})
		}
		return g.Wait()
	}
	// A one-item list for the revision to watch the CRDs from: the wait
	// then gets their changes, not every CRD's schema again.
	crdRes := dyn.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	rv, err := crdRes.List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, err
	}
	if err := all(first, false); err != nil {
		return 0, err
	}
	tFirst := time.Since(start)
	if err := established(ctx, crdRes, crds, rv.GetResourceVersion()); err != nil {
		return 0, err
	}
	tEst := time.Since(start)
	mapper.Reset()
	var g errgroup.Group
	g.Go(func() error { return all(rest, false) })
	g.Go(func() error { return all(objs.create, true) })
	if err := g.Wait(); err != nil {
		return 0, err
	}
	d := time.Since(start)
	log("  floor: %d namespaces and CRDs applied at %.2fs, Established at %.2fs, %d more objects and %d creates done at %.2fs",
		len(first), tFirst.Seconds(), tEst.Seconds(), len(rest), len(objs.create), d.Seconds())
	return d, nil
}

// established watches the CRDs from revision since until every named one
// is Established (listing once more if the watch ends early).
func established(ctx context.Context, res dynamic.ResourceInterface, names []string, since string) error {
	if len(names) == 0 {
		return nil
	}
	pending := map[string]bool{}
	for _, n := range names {
		pending[n] = true
	}
	see := func(u *unstructured.Unstructured) {
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				delete(pending, u.GetName())
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		if since == "" {
			list, err := res.List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for i := range list.Items {
				see(&list.Items[i])
			}
			since = list.GetResourceVersion()
		}
		if len(pending) == 0 {
			return nil
		}
		w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: since})
		if err != nil {
			return err
		}
		since = ""
		for ev := range w.ResultChan() {
			if u, ok := ev.Object.(*unstructured.Unstructured); ok && (ev.Type == watch.Added || ev.Type == watch.Modified) {
				see(u)
			}
			if len(pending) == 0 {
				w.Stop()
				return nil
			}
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("waiting for %d CRDs to be Established: %w", len(pending), err)
		}
	}
}
