package installer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/internal/configerr"
)

// Image overrides replace images of a release with images the operator
// rebuilt or mirrored (original reference → replacement pinned by digest):
// Options.Images, the config's images: and --image-map. They apply
// wherever a reference appears in the rendered objects (containers, init
// containers, env values, ConfigMap values: the places the --registry
// rewrite reaches), are recorded in the state and kept by every later run
// whose release still has the original, and are checked by the verify
// phase and by status.

// imagesSetting is the setting overrides are reported under.
const imagesSetting = "images"

// maxImageMapSize is the largest --image-map file tmbox reads, in bytes.
const maxImageMapSize = 1 << 20

// validateImages checks the user's overrides (see
// bundle.ValidateImageOverrides): each problem a *SettingError naming the
// original.
func (o Options) validateImages() []error {
	var errs []error
	for _, err := range configerr.Unjoin(bundle.ValidateImageOverrides(o.Images)) {
		if err != nil {
			errs = append(errs, &SettingError{Setting: imagesSetting, Err: err})
		}
	}
	return errs
}

// CheckImageOverrides refuses image overrides that name no image of rel,
// and an override of Istio's proxy image (see checkOverrideKeys); each
// problem is a *SettingError naming the original.
func CheckImageOverrides(overrides map[string]string, rel *catalog.Release) error {
	return checkOverrideKeys(overrides, rel, false)
}

// checkOverrideKeys refuses overrides that name no image of rel (unless
// absentOK), and an override of Istio's proxy image, which Istio's
// injector also composes from the mesh's hub and tag where no reference
// can be rewritten.
func checkOverrideKeys(overrides map[string]string, rel *catalog.Release, absentOK bool) error {
	images := rel.Images()
	istio, _ := rel.Component(catalog.Istio)
	var errs []error
	for _, orig := range slices.Sorted(maps.Keys(overrides)) {
		switch {
		case !slices.Contains(images, orig) && !absentOK:
			errs = append(errs, &SettingError{Setting: imagesSetting, Err: &bundle.OverrideError{Original: orig, Err: fmt.Errorf("release %s has no such image (tmbox images check --release %s lists them)", rel.Name, rel.Name)}})
		case istio != nil && slices.Contains(istio.Images, orig) && strings.Contains(orig, "/proxyv2:"):
			errs = append(errs, &SettingError{Setting: imagesSetting, Err: &bundle.OverrideError{Original: orig, Err: errors.New("Istio's injector composes its proxy image from the mesh's hub and tag, which no override reaches: mirror Istio's images into a registry and install with --bundle --registry instead")}})
		}
	}
	return errors.Join(errs...)
}

// overridesFor is every override that applies to rel, original →
// replacement: the kept ones (the state's, then a bundle's), then the
// ones --triggermesh-registry makes, then the user's, each over the ones
// before; only originals rel has.
func (ri renderInputs) overridesFor(rel *catalog.Release) map[string]string {
	out := map[string]string{}
	if len(ri.keptOverrides) == 0 && len(ri.overrides) == 0 && ri.triggerMeshRegistry == "" {
		return out
	}
	images := rel.Images()
	for orig, repl := range ri.keptOverrides {
		if slices.Contains(images, orig) {
			out[orig] = repl
		}
	}
	maps.Copy(out, triggerMeshOverrides(rel, ri.triggerMeshRegistry))
	for orig, repl := range ri.overrides {
		if slices.Contains(images, orig) {
			out[orig] = repl
		}
	}
	return out
}

// withOverrides folds rel's overrides into the image map: an original
// maps to its replacement, itself moved to the private registry when
// the image map moves it (a bundle stores the replacement).
func (ri renderInputs) withOverrides(rel *catalog.Release) map[string]string {
	ov := ri.overridesFor(rel)
	if len(ov) == 0 {
		return ri.imageMap
	}
	m := maps.Clone(ri.imageMap)
	if m == nil {
		m = map[string]string{}
	}
	for orig, repl := range ov {
		if to, ok := ri.imageMap[repl]; ok {
			repl = to
		}
		m[orig] = repl
	}
	return m
}

// triggerMeshOverrides are the overrides --triggermesh-registry stands
// for in rel: every image of the TriggerMesh components under their ko
// registry (gcr.io/triggermesh), the same path and tag under registry.
func triggerMeshOverrides(rel *catalog.Release, registry string) map[string]string {
	if registry == "" {
		return nil
	}
	out := map[string]string{}
	for _, name := range []string{catalog.TriggerMesh, catalog.TriggerMeshCore} {
		comp, ok := rel.Component(name)
		if !ok || comp.Ko == nil {
			continue
		}
		prefix := strings.TrimSuffix(comp.Ko.Registry, "/") + "/"
		for _, img := range comp.Images {
			if rest, ok := strings.CutPrefix(img, prefix); ok {
				out[img] = strings.TrimSuffix(registry, "/") + "/" + rest
			}
		}
	}
	return out
}

// feedOverrides decides the run's image overrides once the state is
// known: the ones the state recorded and a bundle carries are kept (said
// so in an event), the user's lay over them. An install's own overrides
// must name images of its release. With a bundle, every replacement
// pinned by digest must be one of its images: the cluster runs it from
// there.
func (e *env) feedOverrides() error {
	kept := map[string]string{}
	if e.state != nil {
		maps.Copy(kept, e.state.ImageOverrides)
	}
	if e.bundle != nil {
		maps.Copy(kept, e.bundle.Manifest.ImageOverrides)
	}
	e.render.keptOverrides = kept
	// An install refuses an override of an image its release lacks; an
	// upgrade drops it, hop by hop, saying so (reportDroppedOverrides).
	moving := e.state != nil && e.state.Release != "" && e.state.Release != e.release.Name
	if err := checkOverrideKeys(e.opts.Images, e.release, moving); err != nil {
		return err
	}
	if n := len(kept); n > 0 {
		var pairs []string
		for _, orig := range slices.Sorted(maps.Keys(kept)) {
			if _, mine := e.opts.Images[orig]; !mine {
				pairs = append(pairs, orig+" → "+kept[orig])
			}
		}
		if len(pairs) > 0 {
			from := "recorded in the cluster's state"
			if e.bundle != nil && len(e.bundle.Manifest.ImageOverrides) > 0 {
				from = "recorded in the state and the bundle"
			}
			e.report(Event{Type: EventInfo, Message: fmt.Sprintf("keeping %d image override(s) %s: %s", len(pairs), from, strings.Join(pairs, ", "))})
		}
	}
	if e.bundle == nil {
		return nil
	}
	held := map[string]bool{}
	for _, img := range e.bundle.Manifest.Images {
		held[img.Ref] = true
	}
	var errs []error
	for _, name := range e.catalog.ReleaseNames() {
		rel, _ := e.catalog.Release(name)
		for orig, repl := range e.render.overridesFor(rel) {
			if catalog.DigestPinned(repl) && !held[repl] {
				errs = append(errs, &SettingError{Setting: imagesSetting, Err: &bundle.OverrideError{Original: orig, Err: fmt.Errorf("bundle %s does not hold the replacement %s: create the bundle with this override (tmbox bundle create --image-map FILE, or images: in --config)", e.opts.Bundle, repl)}})
			}
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(slices.CompactFunc(errs, func(a, b error) bool { return a.Error() == b.Error() })...)
}

// reportDroppedOverrides says, for an upgrade hop from one release to
// rel, which overrides it drops because rel does not have their original
// image; from is nil for the first hop, which reports every such override
// (a later one only those its start release had).
func (e *env) reportDroppedOverrides(from, rel *catalog.Release) {
	images := rel.Images()
	var had []string
	if from != nil {
		had = from.Images()
	}
	all := maps.Clone(e.render.keptOverrides)
	if all == nil {
		all = map[string]string{}
	}
	maps.Copy(all, e.opts.Images)
	for _, orig := range slices.Sorted(maps.Keys(all)) {
		if !slices.Contains(images, orig) && (from == nil || slices.Contains(had, orig)) {
			e.report(Event{Type: EventInfo, Message: fmt.Sprintf("release %s has no image %s: its override (→ %s) is dropped", rel.Name, orig, all[orig])})
		}
	}
}

// prevRelease is the release of an upgrade's previous hop (nil before the
// first).
func prevRelease(d *desired) *catalog.Release {
	if d == nil {
		return nil
	}
	return d.release
}

// overridesState is what the state records of this run's overrides (nil
// when there are none): the ones that applied to its release.
func (e *env) overridesState() map[string]string {
	ov := e.render.overridesFor(e.release)
	if len(ov) == 0 {
		return nil
	}
	return ov
}

// overrideProblems lists the pod containers in the release's namespaces
// that run an overridden original image instead of its replacement, and
// counts the containers that run a replacement.
func (e *env) overrideProblems(ctx context.Context) ([]string, int, error) {
	ov := e.render.overridesFor(e.release)
	if len(ov) == 0 {
		return nil, 0, nil
	}
	installed := e.render.forRelease(e.release).imageMap
	originals := map[string]string{} // what runs without the override → the override
	replacements := map[string]bool{}
	for orig := range ov {
		pair := orig + " → " + installed[orig]
		originals[orig] = pair
		if to, ok := e.render.imageMap[orig]; ok {
			originals[to] = pair // the original, moved to the registry
		}
		replacements[installed[orig]] = true
	}
	namespaces := map[string]bool{}
	for _, objs := range e.desired.byComponent {
		for _, o := range objs {
			if ns := o.GetNamespace(); ns != "" {
				namespaces[ns] = true
			}
		}
	}
	var problems []string
	running := 0
	for _, ns := range slices.Sorted(maps.Keys(namespaces)) {
		pods, err := e.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, 0, fmt.Errorf("list pods in %s: %w", ns, err)
		}
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range append(append(p.Spec.InitContainers, p.Spec.Containers...), ephemeral(p.Spec.EphemeralContainers)...) {
				if ov, bad := originals[c.Image]; bad {
					problems = append(problems, fmt.Sprintf("pod %s/%s container %s runs %s, which the image override %s replaces", ns, p.Name, c.Name, c.Image, ov))
				} else if replacements[c.Image] {
					running++
				}
			}
		}
	}
	return problems, running, nil
}

// overriddenIn lists the images of a live workload's pod template that
// are overridden originals (status reports them).
func overriddenIn(live *unstructured.Unstructured, overrides map[string]string) []string {
	var out []string
	for _, img := range podTemplateImages(live) {
		if repl, ok := overrides[img]; ok {
			out = append(out, fmt.Sprintf("runs %s, which the image override → %s replaces (tmbox install re-applies it)", img, repl))
		}
	}
	sort.Strings(out)
	return out
}

// ReadImageMap reads an --image-map file: a YAML mapping of original
// image references to replacements pinned by digest. Errors name the file,
// the line and the original (see DecodeImageOverrides).
func ReadImageMap(path string) (map[string]string, error) {
	data, err := catalog.ReadLimited(path, maxImageMapSize)
	if err != nil {
		return nil, fmt.Errorf("--image-map: %w", err)
	}
	if len(data) > maxImageMapSize {
		return nil, fmt.Errorf("--image-map %s: %d bytes, more than the limit of %s", catalog.ShortPath(path), len(data), catalog.SizeString(maxImageMapSize))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty image map (want a mapping of original image references to replacements pinned by digest)", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: an image map is one YAML document", path)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty image map", path)
	}
	return DecodeImageOverrides(doc.Content[0], path, "")
}

// DecodeImageOverrides decodes a YAML mapping of original image references
// to replacements (the config's images: section, at path "images", or an
// --image-map file, at path "") strictly: string keys and values, no key
// twice, every pair valid (bundle.ValidateImageOverrides). Every problem is
// a *configerr.Error at its file and line; they are joined.
func DecodeImageOverrides(node *yaml.Node, file, path string) (map[string]string, error) {
	at := func(orig string) string {
		if path == "" {
			return orig
		}
		return path + "[" + orig + "]"
	}
	if node.Kind != yaml.MappingNode {
		where := path
		if where == "" {
			where = "image map"
		}
		return nil, &configerr.Error{File: file, Line: node.Line, Path: where, Err: errors.New("want a mapping of original image references to replacements pinned by digest (REFERENCE@sha256:…)")}
	}
	out := map[string]string{}
	lines := map[string]int{}
	var errs []error
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			errs = append(errs, &configerr.Error{File: file, Line: k.Line, Path: at(catalog.QuoteShort(k.Value)), Err: errors.New("want original: replacement, both plain strings")})
			continue
		}
		if first, dup := lines[k.Value]; dup {
			errs = append(errs, &configerr.Error{File: file, Line: k.Line, Path: at(catalog.QuoteShort(k.Value)), Err: fmt.Errorf("set twice (first at line %d)", first)})
			continue
		}
		lines[k.Value] = k.Line
		out[k.Value] = v.Value
	}
	for _, err := range configerr.Unjoin(bundle.ValidateImageOverrides(out)) {
		var oe *bundle.OverrideError
		if errors.As(err, &oe) {
			errs = append(errs, &configerr.Error{File: file, Line: lines[oe.Original], Path: at(catalog.QuoteShort(oe.Original)), Err: oe.Err})
		}
	}
	if len(errs) > 0 {
		return nil, configerr.Locate(errs, file, nil)
	}
	return out, nil
}
