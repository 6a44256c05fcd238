package installer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/trace"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
	"istio.io/istio/operator/pkg/render"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
	"github.com/tmbox/tmbox/manifests"
)

// desired is everything a release puts in the cluster, per component, with
// each object owned by exactly one component.
type desired struct {
	release     *catalog.Release
	byComponent map[string][]*apply.Object
	keys        map[apply.ObjectKey]string // object → owning component
}

// objectsFor builds the desired objects of the selected components of a
// release. Every asset is fetched and verified before anything is returned,
// so nothing is applied from a source that fails verification. An object
// that two components ship (Eventing's and TriggerMesh's addressable-
// resolver ClusterRole, TriggerMesh's namespace) belongs to the first in
// install order; later ones do not apply it.
func objectsFor(ctx context.Context, src catalog.Source, r *catalog.Release, selected []string, ri renderInputs) (*desired, error) {
	ri = ri.forRelease(r)
	d := &desired{release: r, byComponent: map[string][]*apply.Object{}, keys: map[apply.ObjectKey]string{}}
	// Fetch, verify and decode the components concurrently (decoding YAML
	// is most of a no-op re-run's CPU), then merge them in install order.
	// The compiled-in Istio render is the longest single task (one
	// goroutine, a quarter of a second or more): it gets a core of its own
	// while the fetched components share the others, so that it is not
	// slowed by as many decodes as there are components. Without it, every
	// component is decoded at once, as before.
	comps := r.ComponentList()
	decoded := make([][]*apply.Object, len(comps))
	objects := func(ctx context.Context, i int) func() error {
		return func() error {
			comp := comps[i]
			defer trace.StartRegion(ctx, "objects of "+comp.Name).End()
			objs, err := componentObjects(ctx, src, comp, ri)
			if err != nil {
				return err // componentObjects names the component
			}
			decoded[i] = objs
			return nil
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	var fetched []int
	limit := -1 // errgroup: no limit
	for i, comp := range comps {
		switch {
		case !slices.Contains(selected, comp.Name):
		case comp.Source == catalog.SourceCompiledIn:
			g.Go(objects(gctx, i))
			limit = max(1, runtime.GOMAXPROCS(0)-1)
		default:
			fetched = append(fetched, i)
		}
	}
	g.Go(func() error {
		f, fctx := errgroup.WithContext(gctx)
		f.SetLimit(limit)
		for _, i := range fetched {
			f.Go(objects(fctx, i))
		}
		return f.Wait()
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, comp := range comps {
		if !slices.Contains(selected, comp.Name) {
			continue
		}
		for _, o := range decoded[i] {
			if !o.Create {
				k := apply.KeyOf(o.Unstructured)
				if owner, taken := d.keys[k]; taken && owner != comp.Name {
					continue
				}
				d.keys[k] = comp.Name
			}
			d.byComponent[comp.Name] = append(d.byComponent[comp.Name], o)
		}
	}
	// Rendered charts (the compiled-in Istio) leave their namespace to the
	// installer, as istioctl creates it: add any namespace an object needs
	// that no component declares, owned by the first component needing it.
	for _, comp := range r.ComponentList() {
		for _, o := range d.byComponent[comp.Name] {
			ns := o.GetNamespace()
			k := apply.ObjectKey{Kind: "Namespace", Name: ns}
			if ns == "" || ns == "default" || strings.HasPrefix(ns, "kube-") {
				continue
			}
			if _, declared := d.keys[k]; declared {
				continue
			}
			u := &unstructured.Unstructured{}
			u.SetAPIVersion("v1")
			u.SetKind("Namespace")
			u.SetName(ns)
			d.keys[k] = comp.Name
			d.byComponent[comp.Name] = append([]*apply.Object{{Unstructured: u, Component: comp.Name}}, d.byComponent[comp.Name]...)
		}
	}
	if err := d.applyPlatform(ri.platform); err != nil {
		return nil, err
	}
	if len(ri.imageMap) > 0 {
		for _, objs := range d.byComponent {
			for _, o := range objs {
				if err := apply.RewriteObjectImages(o.Unstructured, ri.imageMap); err != nil {
					return nil, err
				}
			}
		}
	}
	if ri.kindNodePorts {
		if err := pinIngressNodePorts(d.byComponent[catalog.Istio]); err != nil {
			return nil, err
		}
	}
	for _, objs := range d.byComponent {
		for _, o := range objs {
			if err := apply.Prepare(o, r.Name); err != nil {
				return nil, err
			}
		}
	}
	return d, nil
}

// pinIngressNodePorts makes the Istio ingress gateway Service a NodePort
// Service on the node ports the kind config maps host ports 80 and 443 to.
func pinIngressNodePorts(objs []*apply.Object) error {
	for _, o := range objs {
		if o.GetKind() != "Service" || o.GetName() != "istio-ingressgateway" {
			continue
		}
		ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
		pinned := 0
		for i, p := range ports {
			pm, ok := p.(map[string]any)
			if !ok {
				continue
			}
			var port int64
			switch v := pm["port"].(type) {
			case int64:
				port = v
			case float64:
				port = int64(v)
			case int:
				port = int64(v)
			}
			switch port {
			case 80:
				pm["nodePort"] = int64(manifests.IngressHTTPNodePort)
				pinned++
			case 443:
				pm["nodePort"] = int64(manifests.IngressHTTPSNodePort)
				pinned++
			}
			ports[i] = pm
		}
		if pinned != 2 {
			return fmt.Errorf("Service istio-system/istio-ingressgateway has no ports 80 and 443 to map the kind host ports onto")
		}
		if err := unstructured.SetNestedSlice(o.Object, ports, "spec", "ports"); err != nil {
			return err
		}
		return unstructured.SetNestedField(o.Object, "NodePort", "spec", "type")
	}
	return fmt.Errorf("no Service istio-system/istio-ingressgateway to map the kind host ports onto")
}

// componentObjects returns a component's objects, deduplicated (a later
// copy of the same object wins: serving-core repeats serving-crds' CRDs).
func componentObjects(ctx context.Context, src catalog.Source, comp *catalog.Component, ri renderInputs) ([]*apply.Object, error) {
	var docs []*unstructured.Unstructured
	if comp.Source == catalog.SourceCompiledIn {
		var err error
		if docs, err = renderIstio(comp, ri.istioOverlay); err != nil {
			return nil, err
		}
	} else {
		datas, err := catalog.FetchComponent(ctx, src, comp)
		if err != nil {
			return nil, err
		}
		for i, a := range comp.Assets {
			if a.Optional {
				continue
			}
			data, err := apply.ResolveImages(comp, datas[i], ri.triggerMeshRegistry)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %s: %w", comp.Name, comp.Version, a.Name, err)
			}
			objs, err := apply.DecodeManifest(data)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %s: %w", comp.Name, comp.Version, a.Name, err)
			}
			docs = append(docs, objs...)
		}
	}
	index := map[apply.ObjectKey]int{}
	var out []*apply.Object
	for _, u := range docs {
		o := &apply.Object{Unstructured: u, Component: comp.Name, Create: u.GetName() == "" && u.GetGenerateName() != ""}
		if o.Create {
			out = append(out, o)
			continue
		}
		k := apply.KeyOf(u)
		if i, dup := index[k]; dup {
			out[i] = o
			continue
		}
		index[k] = len(out)
		out = append(out, o)
	}
	return out, nil
}

// renderIstio renders the compiled-in Istio charts in-process, as istioctl
// does: tmbox's Knative profile, then the user's overlay (nil: none),
// images pinned to the release. With an overlay, the objects include the
// ConfigMap keeping it (overlayConfigMap).
func renderIstio(comp *catalog.Component, overlay *istioOverlay) ([]*unstructured.Unstructured, error) {
	hub, tag, err := istioHubTag(comp)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tmbox-istio-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	profile := filepath.Join(dir, "tmbox-knative.yaml")
	if err := os.WriteFile(profile, manifests.IstioKnativeProfile(), 0o600); err != nil {
		return nil, err
	}
	files := []string{profile}
	with := ""
	if overlay != nil {
		f := filepath.Join(dir, "overlay.yaml")
		if err := os.WriteFile(f, overlay.data, 0o600); err != nil {
			return nil, err
		}
		files = append(files, f)
		with = " with istio overlay " + overlay.name()
	}
	sets, _, err := render.GenerateManifest(files, []string{"hub=" + hub, "tag=" + tag}, false, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("render Istio %s%s: %w", comp.Version, with, err)
	}
	var out []*unstructured.Unstructured
	for _, set := range sets {
		for _, m := range set.Manifests {
			out = append(out, m.Unstructured)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("render Istio %s: no objects", comp.Version)
	}
	if err := checkPinnedImages(comp, out); err != nil {
		return nil, fmt.Errorf("render Istio %s%s: %w", comp.Version, with, err) // without one, it runs the pins
	}
	if overlay != nil {
		out = append(out, overlayConfigMap(overlay))
	}
	return out, nil
}

// istioHubTag derives the image hub and tag from the pinned pilot image.
func istioHubTag(comp *catalog.Component) (hub, tag string, err error) {
	for _, img := range comp.Images {
		repo, t, ok := strings.Cut(img, ":")
		if ok && strings.HasSuffix(repo, "/pilot") {
			return strings.TrimSuffix(repo, "/pilot"), t, nil
		}
	}
	return "", "", fmt.Errorf("istio %s pins no pilot image", comp.Version)
}

// sortedKeys returns keys in a stable order.
func sortedKeys(keys []apply.ObjectKey) []apply.ObjectKey {
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	return keys
}
