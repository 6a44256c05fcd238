package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-version"
	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// MaxAssetSize is the largest upstream file VerifyMirror and AddRelease
// read, in bytes (the largest real one is under 1 MiB).
const MaxAssetSize int64 = 64 << 20

// CompiledInIstioHub is the registry path of the images a compiled-in
// Istio runs (pilot and proxyv2): Istio's official hub.
const CompiledInIstioHub = "docker.io/istio"

// MirrorDir is where a component's files live in a mirror directory, as
// ../shared/upstream and tmbox mirror create lay them out:
// DIR/MirrorDir(name)/<version>/<file>. The Knative components sit under
// knative/ ("knative/serving"); the others under their own name.
func MirrorDir(component string) string {
	switch component {
	case KnativeServing:
		return "knative/serving"
	case KnativeEventing:
		return "knative/eventing"
	case NetIstio:
		return "knative/net-istio"
	}
	return component
}

// ImagesFrom returns the images the component's files name, resolved as
// tmbox deploys them (ko:// placeholders and ImageRewrites, see
// ResolveImage), sorted and unique: what the component's Images pin. files
// are the contents of its assets, in order; ImagesIn says where images are
// found.
func (c *Component) ImagesFrom(files [][]byte) ([]string, error) {
	var found []string
	for i, data := range files {
		imgs, err := ImagesIn(data)
		if err != nil {
			if i < len(c.Assets) {
				return nil, fmt.Errorf("%s: %w", c.Assets[i].Path, err)
			}
			return nil, err
		}
		for _, img := range imgs {
			found = append(found, c.ResolveImage(img, ""))
		}
	}
	slices.Sort(found)
	return slices.Compact(found), nil
}

// CompiledInIstioImages lists the images a compiled-in Istio of the given
// version runs: pilot and proxyv2 under CompiledInIstioHub, tagged with the
// version (the installer renders the charts with that hub and tag).
func CompiledInIstioImages(version string) []string {
	return []string{CompiledInIstioHub + "/pilot:" + version, CompiledInIstioHub + "/proxyv2:" + version}
}

// MirrorReport is what VerifyMirror found.
type MirrorReport struct {
	// Dir is the mirror directory.
	Dir string `json:"dir"`
	// Components is how many component versions were checked.
	Components int `json:"components"`
	// Assets is how many asset files were read and compared.
	Assets int `json:"assets"`
	// Mismatches lists every pin the files do not bear out.
	Mismatches []Mismatch `json:"mismatches"`
}

// Mismatch is one pin of a catalog that a mirror's files do not bear out.
type Mismatch struct {
	Component string `json:"component"`
	Version   string `json:"version"`
	// Path is the asset's path, when the mismatch is about one file.
	Path string `json:"path,omitempty"`
	// Problem says what differs.
	Problem string `json:"problem"`
}

// String is the mismatch as verify prints it: "component version: path: problem".
func (m Mismatch) String() string {
	if m.Path != "" {
		return fmt.Sprintf("%s %s: %s: %s", m.Component, m.Version, m.Path, m.Problem)
	}
	return fmt.Sprintf("%s %s: %s", m.Component, m.Version, m.Problem)
}

// VerifyMirror checks the pins of a catalog against the files of a mirror
// directory dir: every asset's size and sha256, and every component's image
// list against the images its files name (ImagesFrom; for a compiled-in
// Istio, CompiledInIstioImages). With releases given only their components
// are checked, otherwise every component of the catalog. Every file is read
// and every mismatch reported; the error is for an unknown release or a
// cancelled context only.
func VerifyMirror(ctx context.Context, c *Catalog, dir string, releases ...string) (*MirrorReport, error) {
	comps := make([]*Component, 0, len(c.Components))
	if len(releases) == 0 {
		for i := range c.Components {
			comps = append(comps, &c.Components[i])
		}
	} else {
		seen := map[*Component]bool{}
		for _, name := range releases {
			r, err := c.Release(name)
			if err != nil {
				return nil, err
			}
			for _, comp := range r.ComponentList() {
				if !seen[comp] {
					seen[comp] = true
					comps = append(comps, comp)
				}
			}
		}
	}
	rep := &MirrorReport{Dir: dir, Mismatches: []Mismatch{}}
	for _, comp := range comps {
		checked, mm, err := verifyComponent(ctx, comp, dir)
		if err != nil {
			return nil, err
		}
		rep.Components++
		rep.Assets += checked
		rep.Mismatches = append(rep.Mismatches, mm...)
	}
	return rep, nil
}

// verifyComponent checks one component's pins against dir. It returns how
// many assets it read and what differs; the error is ctx's.
func verifyComponent(ctx context.Context, comp *Component, dir string) (int, []Mismatch, error) {
	var out []Mismatch
	miss := func(p, format string, args ...any) {
		out = append(out, Mismatch{Component: comp.Name, Version: comp.Version, Path: p, Problem: fmt.Sprintf(format, args...)})
	}
	if comp.Source == SourceCompiledIn {
		compareImages(CompiledInIstioImages(comp.Version), comp.Images, "what a compiled-in Istio "+comp.Version+" runs", func(s string) { miss("", "%s", s) })
		return 0, out, nil
	}
	files := make([][]byte, 0, len(comp.Assets))
	checked := 0
	for _, a := range comp.Assets {
		data, err := readAsset(ctx, dir, a.Path)
		if err != nil {
			if ctx.Err() != nil {
				return 0, nil, ctx.Err()
			}
			miss(a.Path, "%v", err)
			continue
		}
		checked++
		if err := Verify(a, data); err != nil {
			var dm *DigestMismatchError
			if errors.As(err, &dm) {
				miss(a.Path, "the file has size %d, sha256 %s; the catalog pins size %d, sha256 %s", dm.ActualSize, dm.Actual, dm.ExpectedSize, dm.Expected)
			} else {
				miss(a.Path, "%v", err)
			}
			continue
		}
		files = append(files, data)
	}
	if len(files) != len(comp.Assets) {
		return checked, out, nil // images are compared only against the pinned files
	}
	found, err := comp.ImagesFrom(files)
	if err != nil {
		miss("", "%v", err)
		return checked, out, nil
	}
	compareImages(found, comp.Images, "its files", func(s string) { miss("", "%s", s) })
	return checked, out, nil
}

// compareImages reports the differences between the images derived (what
// source runs: "its files", "a compiled-in Istio 1.30.3") and the pinned
// ones.
func compareImages(derived, pinned []string, source string, report func(string)) {
	for _, img := range derived {
		if !slices.Contains(pinned, img) {
			report(fmt.Sprintf("image %s is in %s but not pinned", img, source))
		}
	}
	for _, img := range pinned {
		if !slices.Contains(derived, img) {
			report(fmt.Sprintf("image %s is pinned but not in %s", img, source))
		}
	}
}

// readAsset reads the regular file at dir/p (a slash path), at most
// MaxAssetSize bytes.
func readAsset(ctx context.Context, dir, p string) ([]byte, error) {
	full := filepath.Join(dir, filepath.FromSlash(p))
	f, err := openRegular(ctx, full)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxAssetSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", full, err)
	}
	if int64(len(data)) > MaxAssetSize {
		return nil, fmt.Errorf("%s is larger than the limit of %s for an asset", full, SizeString(MaxAssetSize))
	}
	return data, nil
}

// HeadComment returns the comment lines at the top of a catalog file,
// before its first key ("" when there are none or data does not parse), as
// Marshal takes them.
func HeadComment(data []byte) string {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil || root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return ""
	}
	parts := []string{}
	if root.HeadComment != "" {
		parts = append(parts, root.HeadComment)
	}
	if m := root.Content[0]; m.Kind == yaml.MappingNode && len(m.Content) > 0 && m.Content[0].HeadComment != "" {
		parts = append(parts, m.Content[0].HeadComment)
	}
	return strings.Join(parts, "\n")
}

// Marshal writes the catalog in the embedded catalog's style: header (the
// comment lines HeadComment returns; "" for none) on top, releases in their
// order, components in the order the releases first use them (install
// order within a release; components no release uses last, in their
// order), release names, versions and Kubernetes constraints quoted, hosts
// on one line. The same catalog always gives the same bytes.
func (c *Catalog) Marshal(header string) ([]byte, error) {
	root := mapping(
		"apiVersion", plain(c.APIVersion),
		"kind", plain(c.Kind),
		"releases", releasesNode(c.Releases),
		"components", componentsNode(c.orderedComponents()),
	)
	if header = strings.TrimSpace(header); header != "" {
		root.Content[0].HeadComment = header
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	enc.CompactSeqIndent()
	if err := enc.Encode(&yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root}}); err != nil {
		return nil, fmt.Errorf("marshal catalog: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("marshal catalog: %w", err)
	}
	return buf.Bytes(), nil
}

// orderedComponents is the components in Marshal's order.
func (c *Catalog) orderedComponents() []Component {
	index := map[string]int{}
	for i := range c.Components {
		k := c.Components[i].Name + "@" + c.Components[i].Version
		if _, dup := index[k]; !dup {
			index[k] = i
		}
	}
	used := make([]bool, len(c.Components))
	out := make([]Component, 0, len(c.Components))
	for _, r := range c.Releases {
		for _, ref := range r.Components {
			if i, ok := index[ref.Name+"@"+ref.Version]; ok && !used[i] {
				used[i] = true
				out = append(out, c.Components[i])
			}
		}
	}
	for i := range c.Components {
		if !used[i] {
			out = append(out, c.Components[i])
		}
	}
	return out
}

func releasesNode(rs []Release) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, r := range rs {
		refs := &yaml.Node{Kind: yaml.SequenceNode}
		for _, ref := range r.Components {
			refs.Content = append(refs.Content, mapping("name", plain(ref.Name), "version", quoted(ref.Version)))
		}
		host := mapping("cpus", intNode(int64(r.Host.CPUs)), "memory", plain(r.Host.Memory), "disk", plain(r.Host.Disk))
		host.Style = yaml.FlowStyle
		seq.Content = append(seq.Content, mapping(
			"name", quoted(r.Name),
			"kindNodeImage", plain(r.KindNodeImage),
			"host", host,
			"components", refs,
		))
	}
	return seq
}

func componentsNode(cs []Component) *yaml.Node {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, c := range cs {
		kv := []any{"name", plain(c.Name), "version", quoted(c.Version)}
		if c.Source != "" {
			kv = append(kv, "source", plain(c.Source))
		}
		kv = append(kv, "kubernetes", quoted(c.Kubernetes))
		if c.Ko != nil {
			kv = append(kv, "ko", mapping("prefix", plain(c.Ko.Prefix), "registry", plain(c.Ko.Registry), "tag", plain(c.Ko.Tag)))
		}
		if len(c.ImageRewrites) > 0 {
			rw := &yaml.Node{Kind: yaml.MappingNode}
			for _, from := range sortedKeys(c.ImageRewrites) {
				rw.Content = append(rw.Content, plain(from), plain(c.ImageRewrites[from]))
			}
			kv = append(kv, "imageRewrites", rw)
		}
		if len(c.Assets) > 0 {
			assets := &yaml.Node{Kind: yaml.SequenceNode}
			for _, a := range c.Assets {
				akv := []any{"name", plain(a.Name), "path", plain(a.Path), "url", plain(a.URL), "size", intNode(a.Size), "sha256", plain(a.SHA256)}
				if a.Optional {
					akv = append(akv, "optional", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
				}
				assets.Content = append(assets.Content, mapping(akv...))
			}
			kv = append(kv, "assets", assets)
		}
		images := &yaml.Node{Kind: yaml.SequenceNode}
		for _, img := range c.Images {
			images.Content = append(images.Content, plain(img))
		}
		kv = append(kv, "images", images)
		seq.Content = append(seq.Content, mapping(kv...))
	}
	return seq
}

// mapping builds a block mapping from alternating keys (strings) and
// value nodes.
func mapping(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, plain(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}

// plain is a string scalar the encoder quotes only when it must.
func plain(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

// quoted is a double-quoted string scalar (versions, which would otherwise
// read as numbers).
func quoted(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
}

func intNode(n int64) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.FormatInt(n, 10)}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func hexSHA256(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// DefaultURLTemplate is where upstream publishes a component's files, as
// a URL template for AddRelease (see AddRelease.URLs): the Knative
// components' GitHub release assets, TriggerMesh's config/ tree at the
// release tag. Istio has none ("" is returned): the rendered files tmbox
// pins come from a net-istio commit that no version names.
func DefaultURLTemplate(component string) string {
	switch component {
	case KnativeServing:
		return "https://github.com/knative/serving/releases/download/knative-v{version}/{name}"
	case KnativeEventing:
		return "https://github.com/knative/eventing/releases/download/knative-v{version}/{name}"
	case NetIstio:
		return "https://github.com/knative-extensions/net-istio/releases/download/knative-v{version}/{name}"
	case TriggerMesh:
		return "https://raw.githubusercontent.com/triggermesh/triggermesh/v{version}/{file}"
	case TriggerMeshCore:
		return "https://raw.githubusercontent.com/triggermesh/triggermesh-core/v{version}/{file}"
	}
	return ""
}

// expandURL fills a URL template: {version} is the component's version,
// {name} the asset's name, {file} its path under the version directory.
func expandURL(template, ver, name, file string) string {
	return strings.NewReplacer("{version}", ver, "{name}", name, "{file}", file).Replace(template)
}

// checkURLTemplate refuses a template that does not make an https URL per
// file.
func checkURLTemplate(t string) error {
	if !strings.Contains(t, "{name}") && !strings.Contains(t, "{file}") {
		return fmt.Errorf("URL template %s names no file: use {name} (the asset's name) or {file} (its path under the version directory)", QuoteShort(t))
	}
	u, err := url.Parse(expandURL(t, "1.0.0", "f.yaml", "config/f.yaml"))
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("URL template %s does not make an https URL", QuoteShort(t))
	}
	return nil
}

// InputError is a problem with one input of AddRelease, named as the
// flag of tmbox catalog add-release that gives it.
type InputError struct {
	// Input is the flag's name ("kubernetes", "knative-serving").
	Input string
	Err   error
}

// Error names the flag: "--kubernetes: …".
func (e *InputError) Error() string { return "--" + e.Input + ": " + e.Err.Error() }

// Unwrap returns the problem.
func (e *InputError) Unwrap() error { return e.Err }

// AddRelease builds a new catalog: a base catalog plus one release whose
// new component versions are derived from their upstream files in a mirror
// directory. Component versions the base already pins are reused as they
// are (and, when their files are in the directory too, checked against
// them). For a new version it computes each asset's size and sha256, the
// apply order, the image list (ImagesFrom, with ko:// resolution) and what
// it can of the rest; what no file says (URLs of Istio's rendered files,
// Kubernetes constraints of a new minor, TriggerMesh's :latest rewrites)
// comes from the fields below. The result is validated as Load does before
// it is returned.
type AddRelease struct {
	// Base is the YAML of the catalog to add to (EmbeddedCatalog, or a
	// --catalog file's bytes); BaseName labels its errors.
	Base     []byte
	BaseName string
	// Name is the new release, a Knative minor ("1.24").
	Name string
	// Dir is a mirror directory with the files of every component version
	// Base does not pin: Dir/MirrorDir(component)/<version>/….
	Dir string
	// Versions maps every component name (ComponentNames) to its version.
	Versions map[string]string
	// IstioSource is SourceManifests, SourceCompiledIn, or "" for
	// manifests when Dir holds the Istio version's files. It matters only
	// when Base does not pin the Istio version.
	IstioSource string
	// KnativeKubernetes is the Kubernetes constraint of the new Knative
	// components (Serving, net-istio, Eventing): knative/pkg's minimum for
	// the minor, e.g. ">= 1.34". Without it, a new version takes the
	// constraint of another version of the same component and minor in
	// Base.
	KnativeKubernetes string
	// Kubernetes maps a component to its constraint (e.g. Istio's
	// supported range ">= 1.32, < 1.37"); it wins over KnativeKubernetes
	// and over Base.
	Kubernetes map[string]string
	// URLs maps a component to the template of its assets' upstream URLs
	// ({version}, {name}: the asset's name, {file}: its path under the
	// version directory). Default: DefaultURLTemplate.
	URLs map[string]string
	// KoRegistries maps a component whose files hold ko:// placeholders to
	// the registry its release pushed them to. Default: the registry of
	// another version of the component in Base.
	KoRegistries map[string]string
	// ImageRewrites maps a component to the rewrites its release process
	// made (image as the files name it → image it was released as).
	ImageRewrites map[string]map[string]string
	// KindNodeImage is the release's kind node image, by digest. Default:
	// the newest Base release's.
	KindNodeImage string
	// Host is what a kind host needs; zero fields take the newest Base
	// release's values.
	Host HostRequirements
	// CompiledInIstio is the Istio version whose charts this tmbox links
	// (a new compiled-in Istio must be of its minor); "" skips the check.
	CompiledInIstio string
}

// AddReleaseResult is the new catalog and how each component got there.
type AddReleaseResult struct {
	// Release is the release added; Releases every release of the new
	// catalog.
	Release  string   `json:"release"`
	Releases []string `json:"releases"`
	// Components says, per component in install order, where it came from.
	Components []ComponentOrigin `json:"components"`
	// Warnings are things to check by hand (":latest" images, files whose
	// labels name another version).
	Warnings []string `json:"warnings,omitempty"`
	// YAML is the new catalog file; Catalog is it parsed.
	YAML    []byte   `json:"-"`
	Catalog *Catalog `json:"-"`
}

// ComponentOrigin says where one component version of a new release came
// from.
type ComponentOrigin struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Reused is set when the base catalog already pinned the version;
	// Checked when, reused, its files in the directory were checked
	// against those pins.
	Reused  bool `json:"reused"`
	Checked bool `json:"checked,omitempty"`
	// Source is the Istio source.
	Source string `json:"source,omitempty"`
	Assets int    `json:"assets"`
	Images int    `json:"images"`
	// Kubernetes is the component's constraint; KubernetesFrom says where
	// it came from: "given", "base" (reused) or the base component it was
	// taken from ("knative-serving 1.23.0").
	Kubernetes     string `json:"kubernetes"`
	KubernetesFrom string `json:"kubernetesFrom"`
}

// addPlan is AddRelease's inputs checked: the base parsed, and per component
// whether it is reused.
type addPlan struct {
	base   *Catalog
	header string
	reused map[string]*Component
	// istioSource is the source of a new Istio.
	istioSource string
}

// Validate checks every input without reading the release's files: the
// base parses, the name is a new Knative minor, every component has a
// version (Serving, Eventing and net-istio of the release's minor), the
// constraints, templates, registries and images given parse and name new
// components, and every new component has a Kubernetes constraint and a
// URL template. It returns every problem, each an *InputError.
func (a *AddRelease) Validate() error {
	_, err := a.plan()
	return err
}

func (a *AddRelease) plan() (*addPlan, error) {
	var errs []error
	bad := func(input string, format string, args ...any) {
		errs = append(errs, &InputError{Input: input, Err: fmt.Errorf(format, args...)})
	}
	name := a.BaseName
	if name == "" {
		name = "base catalog"
	}
	base, err := Parse(a.Base, name)
	if err != nil {
		return nil, &InputError{Input: "catalog", Err: err}
	}
	p := &addPlan{base: base, header: HeadComment(a.Base), reused: map[string]*Component{}}
	switch {
	case a.Name == "":
		bad("name", "missing: name the release after its Knative minor, e.g. \"1.24\"")
	case !ValidReleaseName(a.Name):
		bad("name", "%s is not a Knative minor like \"1.24\"", QuoteShort(a.Name))
	case slices.Contains(base.ReleaseNames(), a.Name):
		bad("name", "release %s is already in %s", a.Name, name)
	}
	relMinor := -1
	if ValidReleaseName(a.Name) {
		relMinor = version.Must(version.NewVersion(a.Name)).Segments()[1]
	}
	for k := range a.Versions {
		if !slices.Contains(ComponentNames(), k) {
			bad(k, "unknown component (known: %s)", strings.Join(ComponentNames(), ", "))
		}
	}
	for _, comp := range ComponentNames() {
		v := a.Versions[comp]
		if v == "" {
			bad(comp, "missing: give the %s version of release %s", comp, a.Name)
			continue
		}
		sv, err := version.NewSemver(v)
		if err != nil || strings.HasPrefix(v, "v") {
			bad(comp, "%s is not a version like 1.2.3", QuoteShort(v))
			continue
		}
		if (comp == KnativeServing || comp == KnativeEventing || comp == NetIstio) && relMinor >= 0 && (sv.Segments()[0] != 1 || sv.Segments()[1] != relMinor) {
			bad(comp, "%s %s does not belong to Knative release %s", comp, v, a.Name)
		}
		if c := findComponent(base, comp, v); c != nil {
			p.reused[comp] = c
		}
	}
	isNew := func(comp string) bool { return a.Versions[comp] != "" && p.reused[comp] == nil }
	checkTarget := func(input, comp string) bool {
		switch {
		case !slices.Contains(ComponentNames(), comp):
			bad(input, "unknown component %s (known: %s)", QuoteShort(comp), strings.Join(ComponentNames(), ", "))
		case p.reused[comp] != nil:
			bad(input, "%s %s is already pinned by %s, and this would change it; edit that catalog's entry instead", comp, a.Versions[comp], name)
		case a.Versions[comp] == "":
			return false // reported above
		default:
			return true
		}
		return false
	}
	if a.Dir == "" {
		bad("from", "missing: the mirror directory holding the release's files")
	} else if fi, err := os.Stat(a.Dir); err != nil {
		bad("from", "%v", err)
	} else if !fi.IsDir() {
		bad("from", "%s is not a directory", ShortPath(a.Dir))
	}

	// Istio's source.
	switch a.IstioSource {
	case "", SourceManifests, SourceCompiledIn:
	default:
		bad("istio-source", "%s: want %s or %s", QuoteShort(a.IstioSource), SourceManifests, SourceCompiledIn)
	}
	if iv := a.Versions[Istio]; iv != "" && p.reused[Istio] == nil {
		p.istioSource = a.IstioSource
		if p.istioSource == "" && a.Dir != "" {
			if fi, err := os.Stat(filepath.Join(a.Dir, MirrorDir(Istio), iv)); err == nil && fi.IsDir() {
				p.istioSource = SourceManifests
			} else {
				bad("istio-source", "istio %s: no files under %s; copy its rendered manifests there, or give --istio-source %s to render it from the charts compiled into tmbox",
					iv, ShortPath(filepath.Join(a.Dir, MirrorDir(Istio), iv)), SourceCompiledIn)
			}
		}
		if p.istioSource == SourceCompiledIn && a.CompiledInIstio != "" {
			if !sameMinor(iv, a.CompiledInIstio) {
				bad("istio", "a compiled-in Istio %s needs the charts of Istio %s; this tmbox links Istio %s's", iv, minorOf(iv), a.CompiledInIstio)
			}
		}
	} else if a.IstioSource != "" && p.reused[Istio] != nil {
		if src := sourceOf(p.reused[Istio]); src != a.IstioSource {
			bad("istio-source", "istio %s is already pinned by %s with source %s", a.Versions[Istio], name, src)
		}
	}

	// Kubernetes constraints.
	if a.KnativeKubernetes != "" {
		if _, err := version.NewConstraint(a.KnativeKubernetes); err != nil {
			bad("kubernetes", "%s is not a version constraint like \">= 1.34\": %v", QuoteShort(a.KnativeKubernetes), err)
		}
		if !isNew(KnativeServing) && !isNew(NetIstio) && !isNew(KnativeEventing) {
			bad("kubernetes", "every Knative component of release %s is already pinned by %s; there is nothing to give a constraint to", a.Name, name)
		}
	}
	for _, comp := range sortedKeys(a.Kubernetes) {
		if !checkTarget("kubernetes", comp) {
			continue
		}
		if _, err := version.NewConstraint(a.Kubernetes[comp]); err != nil {
			bad("kubernetes", "%s=%s is not a version constraint like \">= 1.32, < 1.37\": %v", comp, QuoteShort(a.Kubernetes[comp]), err)
		}
	}
	for _, comp := range ComponentNames() {
		if !isNew(comp) {
			continue
		}
		if _, _, ok := a.kubernetesFor(base, comp); !ok {
			hint := comp + "=CONSTRAINT"
			if comp == KnativeServing || comp == KnativeEventing || comp == NetIstio {
				hint = "CONSTRAINT (knative/pkg's minimum Kubernetes for Knative " + a.Name + ", e.g. \">= 1.34\")"
			} else if comp == Istio {
				hint = "istio=CONSTRAINT (Istio " + minorOf(a.Versions[comp]) + "'s supported Kubernetes range, e.g. \">= 1.32, < 1.37\")"
			}
			bad("kubernetes", "%s %s is new and %s has no other %s %s to take a Kubernetes constraint from: give --kubernetes %s", comp, a.Versions[comp], name, comp, minorOf(a.Versions[comp]), hint)
		}
	}

	// URL templates, ko registries, image rewrites.
	for _, comp := range sortedKeys(a.URLs) {
		if !checkTarget("url", comp) {
			continue
		}
		if err := checkURLTemplate(a.URLs[comp]); err != nil {
			bad("url", "%s: %v", comp, err)
		}
	}
	for _, comp := range ComponentNames() {
		if !isNew(comp) || (comp == Istio && p.istioSource == SourceCompiledIn) || a.URLs[comp] != "" || DefaultURLTemplate(comp) != "" {
			continue
		}
		bad("url", "%s %s is installed from files whose upstream URL tmbox cannot derive: give --url %s=TEMPLATE (e.g. https://raw.githubusercontent.com/knative-extensions/net-istio/<commit>/third_party/istio-latest/{file})", comp, a.Versions[comp], comp)
	}
	for _, comp := range sortedKeys(a.KoRegistries) {
		if !checkTarget("ko-registry", comp) {
			continue
		}
		if err := ValidRegistryHost(a.KoRegistries[comp]); err != nil {
			bad("ko-registry", "%s: %v", comp, err)
		}
	}
	for _, comp := range sortedKeys(a.ImageRewrites) {
		if !checkTarget("image-rewrite", comp) {
			continue
		}
		for _, from := range sortedKeys(a.ImageRewrites[comp]) {
			if strings.TrimSpace(from) == "" {
				bad("image-rewrite", "%s: an empty image to rewrite", comp)
			} else if err := ValidImageRef(a.ImageRewrites[comp][from]); err != nil {
				bad("image-rewrite", "%s: %s → %v", comp, QuoteShort(from), err)
			}
		}
	}

	// Release-level pins.
	if a.KindNodeImage != "" {
		if !DigestPinned(a.KindNodeImage) {
			bad("kind-node-image", "%s is not pinned by digest (@sha256:…)", QuoteShort(a.KindNodeImage))
		} else if err := ValidImageRef(a.KindNodeImage); err != nil {
			bad("kind-node-image", "%v", err)
		}
	}
	if a.Host.CPUs < 0 {
		bad("cpus", "%d is not a positive number of CPUs", a.Host.CPUs)
	}
	for input, val := range map[string]string{"memory": a.Host.Memory, "disk": a.Host.Disk} {
		if val == "" {
			continue
		}
		if q, err := resource.ParseQuantity(val); err != nil || q.Sign() <= 0 {
			bad(input, "%s is not a positive quantity like \"8Gi\"", QuoteShort(val))
		}
	}
	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(x, y error) int {
			var ex, ey *InputError
			errors.As(x, &ex)
			errors.As(y, &ey)
			return strings.Compare(ex.Input, ey.Input)
		})
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// kubernetesFor returns a new component's Kubernetes constraint and where
// it came from: the inputs, else another version of the same minor in base.
func (a *AddRelease) kubernetesFor(base *Catalog, comp string) (string, string, bool) {
	if c := a.Kubernetes[comp]; c != "" {
		return c, "given", true
	}
	if (comp == KnativeServing || comp == KnativeEventing || comp == NetIstio) && a.KnativeKubernetes != "" {
		return a.KnativeKubernetes, "given", true
	}
	v := a.Versions[comp]
	for i := len(base.Components) - 1; i >= 0; i-- {
		c := &base.Components[i]
		if c.Name == comp && sameMinor(c.Version, v) {
			return c.Kubernetes, c.Name + " " + c.Version, true
		}
	}
	return "", "", false
}

// Run validates the inputs, reads the new components' files from Dir,
// derives their entries, and returns the new catalog, parsed back with the
// same strict validation Load applies. It writes nothing.
func (a *AddRelease) Run(ctx context.Context) (*AddReleaseResult, error) {
	p, err := a.plan()
	if err != nil {
		return nil, err
	}
	base := p.base
	newest := base.Latest()
	rel := Release{Name: a.Name, KindNodeImage: a.KindNodeImage, Host: a.Host}
	if rel.KindNodeImage == "" {
		rel.KindNodeImage = newest.KindNodeImage
	}
	if rel.Host.CPUs == 0 {
		rel.Host.CPUs = newest.Host.CPUs
	}
	if rel.Host.Memory == "" {
		rel.Host.Memory = newest.Host.Memory
	}
	if rel.Host.Disk == "" {
		rel.Host.Disk = newest.Host.Disk
	}
	res := &AddReleaseResult{Release: a.Name}
	out := Catalog{APIVersion: base.APIVersion, Kind: base.Kind, Components: slices.Clone(base.Components)}
	for _, comp := range ComponentNames() {
		v := a.Versions[comp]
		rel.Components = append(rel.Components, ComponentRef{Name: comp, Version: v})
		if c := p.reused[comp]; c != nil {
			o := ComponentOrigin{Name: comp, Version: v, Reused: true, Source: istioSourceLabel(c), Assets: len(c.Assets), Images: len(c.Images), Kubernetes: c.Kubernetes, KubernetesFrom: "base"}
			if c.Source != SourceCompiledIn && dirExists(filepath.Join(a.Dir, MirrorDir(comp), v)) {
				_, mm, err := verifyComponent(ctx, c, a.Dir)
				if err != nil {
					return nil, err
				}
				if len(mm) > 0 {
					lines := make([]string, len(mm))
					for i, m := range mm {
						lines[i] = "\n  " + m.String()
					}
					return nil, fmt.Errorf("%s %s is pinned by the base catalog, and its files in %s differ from the pins:%s", comp, v, ShortPath(a.Dir), strings.Join(lines, ""))
				}
				o.Checked = true
			}
			res.Components = append(res.Components, o)
			continue
		}
		c, warnings, err := a.derive(ctx, p, comp, v)
		if err != nil {
			return nil, err
		}
		k8s, from, _ := a.kubernetesFor(base, comp)
		c.Kubernetes = k8s
		out.Components = append(out.Components, *c)
		res.Warnings = append(res.Warnings, warnings...)
		res.Components = append(res.Components, ComponentOrigin{Name: comp, Version: v, Source: istioSourceLabel(c), Assets: len(c.Assets), Images: len(c.Images), Kubernetes: k8s, KubernetesFrom: from})
	}
	for _, r := range base.Releases {
		r.resolved = nil
		r.Components = slices.Clone(r.Components)
		out.Releases = append(out.Releases, r)
	}
	at := len(out.Releases)
	nv := version.Must(version.NewVersion(a.Name))
	for i, r := range out.Releases {
		if version.Must(version.NewVersion(r.Name)).GreaterThan(nv) {
			at = i
			break
		}
	}
	out.Releases = slices.Insert(out.Releases, at, rel)
	if at > 0 {
		if prev := out.Releases[at-1]; minorOf(prev.Name) != "" && nv.Segments()[1]-version.Must(version.NewVersion(prev.Name)).Segments()[1] > 1 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("no release between %s and %s: Knative upgrades one minor at a time, so tmbox refuses the hop %s→%s", prev.Name, a.Name, prev.Name, a.Name))
		}
	}
	data, err := out.Marshal(p.header)
	if err != nil {
		return nil, err
	}
	parsed, err := Parse(data, "the new catalog")
	if err != nil {
		return nil, fmt.Errorf("the catalog with release %s does not validate: %w", a.Name, err)
	}
	res.Releases = parsed.ReleaseNames()
	res.YAML = data
	res.Catalog = parsed
	return res, nil
}

// derive makes the catalog entry of a component version the base lacks,
// from its files in Dir (Kubernetes is filled in by the caller).
func (a *AddRelease) derive(ctx context.Context, p *addPlan, comp, ver string) (*Component, []string, error) {
	c := &Component{Name: comp, Version: ver}
	if comp == Istio {
		c.Source = p.istioSource
		if c.Source == SourceCompiledIn {
			c.Images = CompiledInIstioImages(ver)
			return c, nil, nil
		}
	}
	files, err := componentFiles(ctx, a.Dir, comp, ver)
	if err != nil {
		return nil, nil, err
	}
	template := a.URLs[comp]
	if template == "" {
		template = DefaultURLTemplate(comp)
	}
	datas := make([][]byte, len(files))
	var raw []string
	labels := map[string]bool{}
	for i, f := range files {
		c.Assets = append(c.Assets, Asset{
			Name:     f.name,
			Path:     path.Join(MirrorDir(comp), ver, f.rel),
			URL:      expandURL(template, ver, f.name, f.rel),
			Size:     int64(len(f.data)),
			SHA256:   hexSHA256(f.data),
			Optional: f.info.needsCertManager,
		})
		datas[i] = f.data
		imgs, err := ImagesIn(f.data)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s: %s: %w", comp, ver, f.rel, err)
		}
		raw = append(raw, imgs...)
		for _, l := range f.info.versionLabels {
			labels[l] = true
		}
	}
	var warnings []string
	var ko []string
	for _, img := range raw {
		if strings.HasPrefix(img, "ko://") {
			ko = append(ko, img)
		}
	}
	if len(ko) > 0 {
		registry := a.KoRegistries[comp]
		if registry == "" {
			for i := len(p.base.Components) - 1; i >= 0; i-- {
				if b := p.base.Components[i]; b.Name == comp && b.Ko != nil {
					registry = b.Ko.Registry
					break
				}
			}
		}
		if registry == "" {
			return nil, nil, &InputError{Input: "ko-registry", Err: fmt.Errorf("%s %s's files hold ko:// placeholders (%s…) and the base catalog has no other %s to take their registry from: give --ko-registry %s=REGISTRY, where its release pushed the images", comp, ver, ko[0], comp, comp)}
		}
		c.Ko = &KoResolution{Prefix: koPrefix(ko), Registry: registry, Tag: "v" + ver}
	}
	if rw := a.ImageRewrites[comp]; len(rw) > 0 {
		c.ImageRewrites = map[string]string{}
		for from, to := range rw {
			if !slices.Contains(raw, from) {
				return nil, nil, &InputError{Input: "image-rewrite", Err: fmt.Errorf("%s %s: no file names the image %s", comp, ver, QuoteShort(from))}
			}
			c.ImageRewrites[from] = to
		}
	}
	if c.Images, err = c.ImagesFrom(datas); err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", comp, ver, err)
	}
	if len(c.Images) == 0 {
		return nil, nil, fmt.Errorf("%s %s: its files in %s name no image", comp, ver, ShortPath(filepath.Join(a.Dir, MirrorDir(comp), ver)))
	}
	var latest []string
	for _, img := range c.Images {
		if strings.HasSuffix(img, ":latest") {
			latest = append(latest, img)
		}
	}
	if len(latest) > 0 {
		warnings = append(warnings, fmt.Sprintf("%s %s runs images tagged :latest, which upstream may move: %s (if its release pinned them, give --image-rewrite %s=FROM=TO; otherwise mirror them)", comp, ver, strings.Join(latest, ", "), comp))
	}
	delete(labels, "devel")
	if len(labels) > 0 && !labels[ver] && !labels["v"+ver] {
		warnings = append(warnings, fmt.Sprintf("%s %s: its files are labelled app.kubernetes.io/version %s, not %s; check they are that version's", comp, ver, strings.Join(sortedKeys(labels), ", "), ver))
	}
	return c, warnings, nil
}

// mirrorFile is one upstream file of a component version.
type mirrorFile struct {
	rel  string // slash path under the version directory
	name string // the asset's name
	data []byte
	info fileInfo
	rank [3]int
}

// fileInfo is what the file's objects say about it.
type fileInfo struct {
	objects          int
	kinds            map[string]bool
	onlyTooling      bool // every object is an IstioOperator or a Kustomization
	needsCertManager bool
	versionLabels    []string
}

// numbered is a release asset as knative/operator stores it: an apply-order
// prefix before the upstream name ("2-serving-core.yaml").
var numbered = regexp.MustCompile(`^([0-9]+)-(.+)$`)

// componentFiles reads the files of a component version from dir, in apply
// order, each with its asset name:
//   - files directly in the version directory named N-<name> are release
//     assets (knative/operator's layout): applied in N order, named <name>;
//   - files under config/ are a source tree (TriggerMesh's): named by their
//     path under config/, applied namespaces first, then CRDs, RBAC,
//     ConfigMaps and the rest, each group in path order; samples/ and
//     kustomization/ directories are not part of an install;
//   - other files are named by their base name, in path order.
//
// Only .yaml and .yml files are read; files whose objects are all
// IstioOperator or Kustomization documents (the overlay that rendered
// Istio's manifests) and files with no object are skipped. A file with a
// cert-manager object is optional (tmbox installs no cert-manager).
func componentFiles(ctx context.Context, dir, comp, ver string) ([]mirrorFile, error) {
	root := filepath.Join(dir, MirrorDir(comp), ver)
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	fi, err := os.Stat(root)
	if err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("%s %s is new to the catalog, and %s has none of its files: copy them there (tmbox catalog add-release reads DIR/%s/%s/…)", comp, ver, ShortPath(filepath.Join(dir, MirrorDir(comp), ver)), MirrorDir(comp), ver)
	}
	var files []mirrorFile
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && strings.HasPrefix(rel, "config/") && (d.Name() == "samples" || d.Name() == "kustomization") {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := path.Ext(rel); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		data, err := readAsset(ctx, root, rel)
		if err != nil {
			return err
		}
		info, err := inspectFile(data)
		if err != nil {
			return fmt.Errorf("%s %s: %s: %w", comp, ver, rel, err)
		}
		if info.objects == 0 || info.onlyTooling {
			return nil
		}
		f := mirrorFile{rel: rel, data: data, info: info}
		switch m := numbered.FindStringSubmatch(rel); {
		case m != nil:
			n, _ := strconv.Atoi(m[1])
			f.name, f.rank = m[2], [3]int{0, n}
		case strings.HasPrefix(rel, "config/"):
			f.name, f.rank = strings.TrimPrefix(rel, "config/"), [3]int{1, info.applyGroup()}
		default:
			f.name, f.rank = path.Base(rel), [3]int{2}
		}
		if !SafePath(path.Join(MirrorDir(comp), ver, rel)) {
			return fmt.Errorf("%s %s: %s is not a plain path (letters, digits, '.', '_', '-')", comp, ver, QuoteShort(rel))
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s %s: no manifest under %s", comp, ver, ShortPath(root))
	}
	slices.SortStableFunc(files, func(x, y mirrorFile) int {
		for i := range x.rank {
			if x.rank[i] != y.rank[i] {
				return x.rank[i] - y.rank[i]
			}
		}
		return strings.Compare(x.rel, y.rel)
	})
	return files, nil
}

// applyGroup orders a source tree's files: namespaces, CRDs, RBAC,
// ConfigMaps, the rest.
func (fi fileInfo) applyGroup() int {
	only := func(kinds ...string) bool {
		for k := range fi.kinds {
			if !slices.Contains(kinds, k) {
				return false
			}
		}
		return true
	}
	switch {
	case only("Namespace"):
		return 0
	case only("CustomResourceDefinition"):
		return 1
	case only("ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"):
		return 2
	case only("ConfigMap"):
		return 3
	}
	return 4
}

// inspectFile reads the objects of a manifest file.
func inspectFile(data []byte) (fileInfo, error) {
	info := fileInfo{kinds: map[string]bool{}, onlyTooling: true}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("parse manifest: %w", err)
		}
		if doc == nil {
			continue
		}
		apiVersion, _ := doc["apiVersion"].(string)
		kind, _ := doc["kind"].(string)
		if kind == "" {
			continue
		}
		info.objects++
		info.kinds[kind] = true
		group, _, _ := strings.Cut(apiVersion, "/")
		if !(kind == "IstioOperator" && group == "install.istio.io") && kind != "Kustomization" {
			info.onlyTooling = false
		}
		if group == "cert-manager.io" {
			info.needsCertManager = true
		}
		if md, ok := doc["metadata"].(map[string]any); ok {
			if ls, ok := md["labels"].(map[string]any); ok {
				if v, ok := ls["app.kubernetes.io/version"].(string); ok && v != "" {
					info.versionLabels = append(info.versionLabels, v)
				}
			}
		}
	}
	return info, nil
}

// koPrefix is the ko:// placeholders' common prefix, up to its last '/'
// ("ko://github.com/triggermesh/triggermesh/cmd/").
func koPrefix(refs []string) string {
	prefix := refs[0]
	for _, r := range refs[1:] {
		for !strings.HasPrefix(r, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	return prefix[:strings.LastIndex(prefix, "/")+1]
}

func findComponent(c *Catalog, name, ver string) *Component {
	for i := range c.Components {
		if c.Components[i].Name == name && c.Components[i].Version == ver {
			return &c.Components[i]
		}
	}
	return nil
}

func sourceOf(c *Component) string {
	if c.Source == "" {
		return SourceManifests
	}
	return c.Source
}

func istioSourceLabel(c *Component) string {
	if c.Name != Istio {
		return ""
	}
	return sourceOf(c)
}

// minorOf is "1.30" for "1.30.3" ("" when v is not a version).
func minorOf(v string) string {
	sv, err := version.NewVersion(v)
	if err != nil {
		return ""
	}
	s := sv.Segments()
	return fmt.Sprintf("%d.%d", s[0], s[1])
}

func sameMinor(a, b string) bool { return minorOf(a) != "" && minorOf(a) == minorOf(b) }

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
