package addons

import (
	"fmt"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"

	"github.com/tmbox/tmbox/installer/apply"
)

// Render renders the add-on's chart client-side, as `helm template`
// does (Helm's install action with DryRun and ClientOnly: no cluster is
// contacted, Kubernetes is Helm's default version), into the release's
// manifest and its hooks' manifests, for a release in namespace ("" is
// the add-on's).
func Render(l *Loaded, namespace string) (manifest string, hooks []string, err error) {
	if namespace == "" {
		namespace = l.Addon.Namespace
	}
	ch, err := freshChart(l.Chart)
	if err != nil {
		return "", nil, err
	}
	vals, err := deepCopy(l.Values)
	if err != nil {
		return "", nil, fmt.Errorf("add-on %s: values: %w", quote(l.Addon.Name), err)
	}
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	in := action.NewInstall(cfg)
	in.DryRun, in.ClientOnly, in.Replace = true, true, true
	in.ReleaseName, in.Namespace = l.Addon.Name, namespace
	rel, err := in.Run(ch, vals)
	if err != nil {
		return "", nil, fmt.Errorf("add-on %s: render chart %s: %w", quote(l.Addon.Name), ch.Name(), err)
	}
	for _, h := range rel.Hooks {
		hooks = append(hooks, h.Manifest)
	}
	return rel.Manifest, hooks, nil
}

// Images renders the add-on's chart client-side (see Render) and lists,
// sorted and once each, the image of every container, init container
// and ephemeral container of every pod template in the release's
// objects and hooks (Pods, workloads, Jobs, CronJobs, and any custom
// resource that embeds a pod spec), for air-gap bundling. Istio's
// injection placeholder "auto" (InjectedImage) is not an image and is
// left out.
func Images(l *Loaded, namespace string) ([]string, error) {
	manifest, hooks, err := Render(l, namespace)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, doc := range append([]string{manifest}, hooks...) {
		objs, err := apply.DecodeManifest([]byte(doc))
		if err != nil {
			what := "manifest"
			if i > 0 {
				what = fmt.Sprintf("hook %d", i)
			}
			return nil, fmt.Errorf("add-on %s: rendered %s: %w", quote(l.Addon.Name), what, err)
		}
		for _, o := range objs {
			collectImages(o.Object, seen)
		}
	}
	out := make([]string, 0, len(seen))
	for img := range seen {
		out = append(out, img)
	}
	sort.Strings(out)
	return out, nil
}

// InjectedImage is the image Istio's gateway charts give the proxy
// container: the sidecar injector replaces it with the mesh's proxy image
// (one of the stack's images) when the pod is created.
const InjectedImage = "auto"

// collectImages adds the images of every container list found anywhere
// under v (a "containers", "initContainers" or "ephemeralContainers" list
// of mappings with an "image").
func collectImages(v any, seen map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == "containers" || k == "initContainers" || k == "ephemeralContainers" {
				if list, ok := e.([]any); ok {
					for _, c := range list {
						if cm, ok := c.(map[string]any); ok {
							if img, ok := cm["image"].(string); ok {
								if img = strings.TrimSpace(img); img != "" && img != InjectedImage {
									seen[img] = true
								}
							}
						}
					}
				}
			}
			collectImages(e, seen)
		}
	case []any:
		for _, e := range x {
			collectImages(e, seen)
		}
	}
}
