package catalog

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/hashicorp/go-version"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// validator collects every problem in a decoded catalog, locating each in
// the YAML by its path.
type validator struct {
	root *yaml.Node
	errs []Problem
}

// at records a problem at the node the path names (or the nearest parent
// that exists, when the key is missing).
func (v *validator) at(reason string, p ...any) {
	var b strings.Builder
	for i, seg := range p {
		switch s := seg.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", s)
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, s)
		}
	}
	v.errs = append(v.errs, Problem{Line: lineOf(v.root, p...), Path: b.String(), Reason: reason})
}

// lineOf walks a YAML document by map keys and sequence indexes.
func lineOf(root *yaml.Node, p ...any) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, seg := range p {
		var next *yaml.Node
		switch s := seg.(type) {
		case int:
			if n.Kind == yaml.SequenceNode && s < len(n.Content) {
				next = n.Content[s]
			}
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == s {
						next = n.Content[i+1]
						if next.Kind != yaml.ScalarNode {
							line = n.Content[i].Line // the key's line for a block value
						}
					}
				}
			}
		}
		if next == nil {
			return line
		}
		n = next
		if n.Kind == yaml.ScalarNode || line == 0 || n.Line > line {
			line = n.Line
		}
	}
	return line
}

func (v *validator) catalog(c *Catalog) {
	if c.APIVersion != SchemaVersion {
		v.at(fmt.Sprintf("unsupported schema %q (this tmbox reads %s)", c.APIVersion, SchemaVersion), "apiVersion")
	}
	if c.Kind != "Catalog" {
		v.at(fmt.Sprintf("kind is %q, want Catalog", c.Kind), "kind")
	}
	type key struct{ name, version string }
	components := map[key]*Component{}
	for i := range c.Components {
		comp := &c.Components[i]
		k := key{comp.Name, comp.Version}
		if _, dup := components[k]; dup {
			v.at(fmt.Sprintf("duplicate component %s %s", comp.Name, comp.Version), "components", i)
		}
		components[k] = comp
		v.component(comp, i)
	}
	if len(c.Releases) == 0 {
		v.at("no releases", "releases")
	}
	seen := map[string]bool{}
	var prev *version.Version
	for i := range c.Releases {
		r := &c.Releases[i]
		if !releaseName.MatchString(r.Name) {
			v.at(fmt.Sprintf("release name %q is not a Knative minor like \"1.22\"", r.Name), "releases", i, "name")
			continue
		}
		if seen[r.Name] {
			v.at(fmt.Sprintf("duplicate release %s", r.Name), "releases", i, "name")
			continue
		}
		seen[r.Name] = true
		cur := version.Must(version.NewVersion(r.Name))
		if prev != nil && !cur.GreaterThan(prev) {
			v.at(fmt.Sprintf("release %s is out of order: releases are listed oldest first, and it follows %s", r.Name, prev.Original()), "releases", i, "name")
		}
		prev = cur
		if !digestPinned.MatchString(r.KindNodeImage) {
			v.at(fmt.Sprintf("kind node image %s is not pinned by digest (@sha256:…)", QuoteShort(r.KindNodeImage)), "releases", i, "kindNodeImage")
		} else if err := ValidImageRef(r.KindNodeImage); err != nil {
			v.at("kind node "+err.Error(), "releases", i, "kindNodeImage")
		}
		if r.Host.CPUs <= 0 {
			v.at("host.cpus must be a positive number of CPUs", "releases", i, "host")
		}
		for field, val := range map[string]string{"memory": r.Host.Memory, "disk": r.Host.Disk} {
			if q, err := resource.ParseQuantity(val); err != nil || q.Sign() <= 0 {
				v.at(fmt.Sprintf("host.%s %q is not a positive quantity like \"8Gi\"", field, val), "releases", i, "host")
			}
		}
		r.resolved = r.resolved[:0]
		names := make([]string, 0, len(r.Components))
		for j, ref := range r.Components {
			names = append(names, ref.Name)
			comp, ok := components[key{ref.Name, ref.Version}]
			if !ok {
				v.at(fmt.Sprintf("no component %s %s in the catalog's components", ref.Name, ref.Version), "releases", i, "components", j)
				continue
			}
			r.resolved = append(r.resolved, comp)
			if ref.Name == KnativeServing || ref.Name == KnativeEventing || ref.Name == NetIstio {
				if comp.Minor() != r.minor() {
					v.at(fmt.Sprintf("%s %s does not belong to Knative release %s", ref.Name, ref.Version, r.Name), "releases", i, "components", j, "version")
				}
			}
		}
		if !slices.Equal(names, ComponentNames()) {
			v.at(fmt.Sprintf("a release pins exactly %s, in that order; got %s", strings.Join(ComponentNames(), ", "), strings.Join(names, ", ")), "releases", i, "components")
		}
		if len(r.resolved) == len(r.Components) && r.KubernetesRange() == "" {
			v.at("the components' Kubernetes constraints leave no Kubernetes version", "releases", i, "components")
		}
	}
}

func (v *validator) component(c *Component, i int) {
	if !slices.Contains(ComponentNames(), c.Name) {
		v.at(fmt.Sprintf("unknown component %q (known: %s)", c.Name, strings.Join(ComponentNames(), ", ")), "components", i, "name")
	}
	if _, err := version.NewSemver(c.Version); err != nil {
		v.at(fmt.Sprintf("version %q: %v", c.Version, err), "components", i, "version")
	}
	if strings.TrimSpace(c.Kubernetes) == "" {
		v.at("missing Kubernetes constraint", "components", i, "kubernetes")
	} else if _, err := version.NewConstraint(c.Kubernetes); err != nil {
		v.at(fmt.Sprintf("bad Kubernetes constraint %q: %v", c.Kubernetes, err), "components", i, "kubernetes")
	}
	switch c.Source {
	case "", SourceManifests:
		if len(c.Assets) == 0 {
			v.at("a component installed from manifests needs assets", "components", i)
		}
	case SourceCompiledIn:
		if c.Name != Istio {
			v.at("only istio can be compiled-in", "components", i, "source")
		}
		if len(c.Assets) > 0 {
			v.at("a compiled-in component has no assets", "components", i, "assets")
		}
	default:
		v.at(fmt.Sprintf("unknown source %q (want %s or %s)", c.Source, SourceManifests, SourceCompiledIn), "components", i, "source")
	}
	if c.Ko != nil {
		if c.Ko.Prefix == "" || c.Ko.Registry == "" || c.Ko.Tag == "" {
			v.at("ko needs prefix, registry and tag", "components", i, "ko")
		}
		if c.Ko.Registry != "" {
			if err := ValidRegistryHost(c.Ko.Registry); err != nil {
				v.at(err.Error(), "components", i, "ko", "registry")
			}
		}
		if c.Ko.Tag != "" {
			if _, err := name.NewTag("example.com/image:"+c.Ko.Tag, name.StrictValidation); err != nil {
				v.at(fmt.Sprintf("tag %s is not an image tag (letters, digits, '_', '.', '-', at most 128)", QuoteShort(c.Ko.Tag)), "components", i, "ko", "tag")
			}
		}
	}
	for _, from := range slices.Sorted(maps.Keys(c.ImageRewrites)) {
		if err := ValidImageRef(c.ImageRewrites[from]); err != nil {
			v.at("rewrite target "+err.Error(), "components", i, "imageRewrites", from)
		}
	}
	paths := map[string]bool{}
	for j, a := range c.Assets {
		at := func(reason string, field string) { v.at(reason, "components", i, "assets", j, field) }
		if a.Name == "" {
			at("missing name", "name")
		}
		if !safeAssetPath.MatchString(a.Path) || slices.Contains(strings.Split(a.Path, "/"), "..") || path.Clean(a.Path) != a.Path {
			at(fmt.Sprintf("path %q must be relative, clean and without ..", a.Path), "path")
		} else if paths[a.Path] {
			at(fmt.Sprintf("duplicate asset path %s", a.Path), "path")
		}
		paths[a.Path] = true
		if u, err := url.Parse(a.URL); err != nil || u.Scheme != "https" || u.Host == "" {
			at(fmt.Sprintf("url %q is not an https URL", a.URL), "url")
		}
		if a.Size <= 0 {
			at("missing or non-positive size", "size")
		}
		switch {
		case a.SHA256 == "":
			at("missing sha256 digest", "sha256")
		case !sha256Hex.MatchString(a.SHA256):
			at(fmt.Sprintf("sha256 %q is not 64 lowercase hex digits", a.SHA256), "sha256")
		}
	}
	if len(c.Images) == 0 {
		v.at("missing images", "components", i, "images")
	}
	for j, img := range c.Images {
		if img == "" || strings.HasPrefix(img, "ko://") || strings.ContainsAny(img, " \t{}") {
			v.at(fmt.Sprintf("image %s is not a resolved image reference", QuoteShort(img)), "components", i, "images", j)
		} else if err := ValidImageRef(img); err != nil {
			v.at(err.Error(), "components", i, "images", j)
		}
	}
}
