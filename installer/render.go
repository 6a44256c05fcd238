package installer

import (
	"bytes"
	"context"

	"github.com/tmbox/tmbox/installer/apply"
	"sigs.k8s.io/yaml"
)

// Render produces the objects a release installs, as tmbox applies them
// (images resolved, image overrides applied, labels set), without a
// cluster: for review, GitOps, or to apply by hand.
type Render struct {
	Options
}

// RenderedComponent is one component's objects.
type RenderedComponent struct {
	// Name and Version identify the component.
	Name, Version string
	// Apply holds the objects to apply (multi-document YAML), namespaces
	// and CRDs first.
	Apply []byte
	// Create holds the objects created once per install (generateName
	// Jobs); kubectl apply cannot apply them, kubectl create can.
	Create []byte
}

// Run fetches, verifies and renders the selected components of the
// release, in install order.
func (r *Render) Run(ctx context.Context) ([]RenderedComponent, error) {
	res, err := resolve(ctx, r.Options, target{})
	if err != nil {
		return nil, err
	}
	defer res.cleanup()
	// The same checks as install: what render shows is what install
	// would apply.
	if err := checkOverlay(res.render.istioOverlay, res.release); err != nil {
		return nil, err
	}
	if err := checkOverrideKeys(res.opts.Images, res.release, false); err != nil {
		return nil, err
	}
	rel := res.release
	d, err := objectsFor(ctx, res.source, rel, res.opts.Components, res.render)
	if err != nil {
		return nil, err
	}
	var out []RenderedComponent
	for _, comp := range rel.ComponentList() {
		objs, ok := d.byComponent[comp.Name]
		if !ok {
			continue
		}
		rc := RenderedComponent{Name: comp.Name, Version: comp.Version}
		var apply, create bytes.Buffer
		for _, o := range orderForApply(objs) {
			data, err := yaml.Marshal(o.Object)
			if err != nil {
				return nil, err
			}
			w := &apply
			if o.Create {
				w = &create
			}
			w.WriteString("---\n")
			w.Write(data)
		}
		rc.Apply, rc.Create = apply.Bytes(), create.Bytes()
		out = append(out, rc)
	}
	return out, nil
}

// orderForApply puts namespaces first, then CRDs, then the rest, keeping
// the manifests' order within each group.
func orderForApply(objs []*apply.Object) []*apply.Object {
	rank := func(o *apply.Object) int {
		switch o.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	var out []*apply.Object
	for r := 0; r <= 2; r++ {
		for _, o := range objs {
			if rank(o) == r {
				out = append(out, o)
			}
		}
	}
	return out
}
