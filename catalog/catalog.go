// Package catalog holds what tmbox installs: the catalog of pinned releases
// (embedded, or replaced with --catalog), the sources that deliver their
// asset bytes verified against sha256 pins, and the planner that turns an
// installed release and a target into lockstep upgrade hops.
package catalog

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/hashicorp/go-version"
	"go.yaml.in/yaml/v3"
)

// SchemaVersion is the catalog schema this tmbox reads.
const SchemaVersion = "tmbox.dev/v1alpha1"

// Component names, in the order a release installs them. They are stable
// identifiers: the CLI, the state in the cluster and --components use them.
const (
	Istio           = "istio"
	KnativeServing  = "knative-serving"
	NetIstio        = "net-istio"
	KnativeEventing = "knative-eventing"
	TriggerMesh     = "triggermesh"
	TriggerMeshCore = "triggermesh-core"
)

// ComponentNames lists every component a release pins, in install order.
func ComponentNames() []string {
	return []string{Istio, KnativeServing, NetIstio, KnativeEventing, TriggerMesh, TriggerMeshCore}
}

// Istio sources.
const (
	// SourceManifests: the component is installed from its assets.
	SourceManifests = "manifests"
	// SourceCompiledIn: Istio rendered in-process from the charts compiled
	// into tmbox; the component has no assets.
	SourceCompiledIn = "compiled-in"
)

//go:embed catalog.yaml
var embeddedCatalog []byte

// Catalog is the set of releases tmbox can install.
type Catalog struct {
	APIVersion string      `yaml:"apiVersion" json:"apiVersion"`
	Kind       string      `yaml:"kind" json:"kind"`
	Releases   []Release   `yaml:"releases" json:"releases"`
	Components []Component `yaml:"components" json:"components"`
}

// Release is one installable, upgradable unit, named after its Knative
// minor ("1.22"). It pins every component together.
type Release struct {
	// Name is the Knative minor, e.g. "1.22".
	Name string `yaml:"name" json:"name"`
	// KindNodeImage is the kind node image, pinned by digest, that tmbox
	// uses when it creates the cluster.
	KindNodeImage string `yaml:"kindNodeImage" json:"kindNodeImage"`
	// Host is what a host running the release in kind needs.
	Host HostRequirements `yaml:"host" json:"host"`
	// Components names each pinned component version, in install order.
	Components []ComponentRef `yaml:"components" json:"components"`

	resolved []*Component
}

// HostRequirements is what a kind host needs for a release: the sum of the
// release's pod requests plus the kind control plane, and disk for the
// node image and every image of the release. Tests check the numbers
// against the manifests.
type HostRequirements struct {
	// CPUs is the number of CPUs.
	CPUs int `yaml:"cpus" json:"cpus"`
	// Memory and Disk are Kubernetes quantities ("8Gi").
	Memory string `yaml:"memory" json:"memory"`
	Disk   string `yaml:"disk" json:"disk"`
}

// MemoryBytes is Memory in bytes (validated on load).
func (h HostRequirements) MemoryBytes() uint64 { return quantityBytes(h.Memory) }

// DiskBytes is Disk in bytes (validated on load).
func (h HostRequirements) DiskBytes() uint64 { return quantityBytes(h.Disk) }

func quantityBytes(s string) uint64 {
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() < 0 {
		return 0
	}
	return uint64(q.Value())
}

// ComponentRef names a component version in the catalog's component list.
type ComponentRef struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version"`
}

// Component is one pinned version of an installable piece.
type Component struct {
	Name    string `yaml:"name" json:"name"`
	Version string `yaml:"version" json:"version"`
	// Source is "manifests" (default) or, for Istio only, "compiled-in".
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
	// Kubernetes is the go-version constraint on the cluster version that
	// this component supports.
	Kubernetes string `yaml:"kubernetes" json:"kubernetes"`
	// Ko describes how the manifests' ko:// image placeholders resolve.
	Ko *KoResolution `yaml:"ko,omitempty" json:"ko,omitempty"`
	// ImageRewrites replaces image references as the upstream release
	// process did (e.g. TriggerMesh's :latest adapters → the release tag).
	ImageRewrites map[string]string `yaml:"imageRewrites,omitempty" json:"imageRewrites,omitempty"`
	// Assets are the manifest files, in apply order.
	Assets []Asset `yaml:"assets,omitempty" json:"assets,omitempty"`
	// Images is every image the component runs or can start, resolved:
	// containers, init containers, env values and ConfigMap values.
	Images []string `yaml:"images" json:"images"`
}

// KoResolution maps ko://<Prefix><name> to <Registry>/<name>:<Tag>.
type KoResolution struct {
	Prefix   string `yaml:"prefix" json:"prefix"`
	Registry string `yaml:"registry" json:"registry"`
	Tag      string `yaml:"tag" json:"tag"`
}

// Asset is one upstream file, pinned by size and sha256.
type Asset struct {
	// Name is the upstream file name.
	Name string `yaml:"name" json:"name"`
	// Path is where the file lives in a mirror directory
	// (component/version/file, as ../shared/upstream is laid out).
	Path string `yaml:"path" json:"path"`
	// URL is where upstream publishes the file.
	URL string `yaml:"url" json:"url"`
	// Size in bytes.
	Size int64 `yaml:"size" json:"size"`
	// SHA256 is the hex digest of the file.
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Optional assets need something tmbox does not install (Eventing's
	// TLS networking needs cert-manager); they are applied only on request.
	Optional bool `yaml:"optional,omitempty" json:"optional,omitempty"`
}

// EmbeddedCatalog returns the YAML of the built-in catalog, e.g. as the
// starting point of a custom --catalog.
func EmbeddedCatalog() []byte { return bytes.Clone(embeddedCatalog) }

// Load returns the catalog in file, or the embedded catalog when file is
// empty. A file larger than MaxCatalogSize is refused without reading all
// of it.
func Load(file string) (*Catalog, error) {
	if file == "" {
		return Parse(embeddedCatalog, "embedded catalog")
	}
	data, err := ReadLimited(file, MaxCatalogSize)
	if err != nil {
		return nil, fmt.Errorf("read catalog: %w", err)
	}
	return Parse(data, file)
}

// Parse decodes and validates a catalog. name labels errors. Unknown keys,
// missing digests, bad constraints, image references and registries that
// do not parse, duplicate or out-of-order releases are refused, each with
// its line and the reason. Data larger than MaxCatalogSize is refused
// before it is decoded.
func Parse(data []byte, name string) (*Catalog, error) {
	if int64(len(data)) > MaxCatalogSize {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit of %s for a catalog", name, len(data), SizeString(MaxCatalogSize))
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var c Catalog
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty catalog", name)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: a catalog is one YAML document", name)
	}
	v := validator{root: &root}
	v.catalog(&c)
	if len(v.errs) > 0 {
		return nil, &ValidationError{File: name, Problems: v.errs}
	}
	return &c, nil
}

// ValidationError lists every problem found in a catalog.
type ValidationError struct {
	File     string
	Problems []Problem
}

// Problem is one validation failure at a line of the catalog.
type Problem struct {
	Line   int
	Path   string
	Reason string
}

// String renders the problem as one line.
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, p.Path, p.Reason)
	}
	return fmt.Sprintf("%s: %s", p.Path, p.Reason)
}

// Error lists the problems found.
func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: invalid catalog:", e.File)
	for _, p := range e.Problems {
		b.WriteString("\n  " + p.String())
	}
	return b.String()
}

// Release returns the named release.
func (c *Catalog) Release(name string) (*Release, error) {
	for i := range c.Releases {
		if c.Releases[i].Name == name {
			return &c.Releases[i], nil
		}
	}
	return nil, fmt.Errorf("unknown release %s; known releases: %s", QuoteShort(name), strings.Join(c.ReleaseNames(), ", "))
}

// ReleaseNames lists the releases, oldest first.
func (c *Catalog) ReleaseNames() []string {
	names := make([]string, len(c.Releases))
	for i, r := range c.Releases {
		names[i] = r.Name
	}
	return names
}

// Latest returns the newest release.
func (c *Catalog) Latest() *Release { return &c.Releases[len(c.Releases)-1] }

// Component returns the named component of the release.
func (r *Release) Component(name string) (*Component, bool) {
	for _, c := range r.resolved {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// ComponentList returns the release's components in install order.
func (r *Release) ComponentList() []*Component { return slices.Clone(r.resolved) }

// KubernetesConstraints is the release's Kubernetes range: the intersection
// of every component's constraint.
func (r *Release) KubernetesConstraints() version.Constraints {
	var all version.Constraints
	for _, c := range r.resolved {
		cs, _ := version.NewConstraint(c.Kubernetes) // validated on load
		all = append(all, cs...)
	}
	return all
}

// KubernetesRange describes the release's Kubernetes range as the minors it
// allows, e.g. ">=1.33, <=1.34" ("" when no minor in 1.0–1.99 fits).
func (r *Release) KubernetesRange() string {
	lo, hi := r.kubernetesMinors()
	switch {
	case lo < 0:
		return ""
	case hi < 0:
		return fmt.Sprintf(">=1.%d", lo)
	default:
		return fmt.Sprintf(">=1.%d, <=1.%d", lo, hi)
	}
}

// kubernetesMinors returns the lowest and highest 1.x minor whose .0 and
// a high patch satisfy the constraints; hi is -1 when unbounded (1.99 fits).
func (r *Release) kubernetesMinors() (lo, hi int) {
	lo, hi = -1, -1
	cs := r.KubernetesConstraints()
	for m := 0; m < 100; m++ {
		if r.allowsMinor(cs, m) {
			if lo < 0 {
				lo = m
			}
			hi = m
		}
	}
	if hi == 99 {
		hi = -1
	}
	return lo, hi
}

func (r *Release) allowsMinor(cs version.Constraints, minor int) bool {
	for _, patch := range []int{0, 99} {
		v := version.Must(version.NewVersion(fmt.Sprintf("1.%d.%d", minor, patch)))
		if cs.Check(v) {
			return true
		}
	}
	return false
}

// AllowsKubernetes reports whether the release supports cluster version v.
func (r *Release) AllowsKubernetes(v *version.Version) bool {
	return r.KubernetesConstraints().Check(v.Core())
}

// Images is every image of the release, sorted and unique.
func (r *Release) Images() []string {
	var all []string
	for _, c := range r.resolved {
		all = append(all, c.Images...)
	}
	slices.Sort(all)
	return slices.Compact(all)
}

// minor returns the release's Knative minor number.
func (r *Release) minor() int {
	_, n, _ := ParseReleaseName(r.Name)
	return n
}

// ParseReleaseName splits a release name ("1.22", a Knative minor) into
// its major and minor numbers; ok is false when name is not one.
func ParseReleaseName(name string) (major, minor int, ok bool) {
	if !releaseName.MatchString(name) {
		return 0, 0, false
	}
	ma, mi, _ := strings.Cut(name, ".")
	major, _ = strconv.Atoi(ma)
	minor, _ = strconv.Atoi(mi)
	return major, minor, true
}

// Minor returns the minor version number of a component version.
func (c *Component) Minor() int {
	v, err := version.NewVersion(c.Version)
	if err != nil {
		return -1
	}
	return v.Segments()[1]
}

// ResolveImage maps an image reference as written in the component's
// manifests to the one tmbox deploys: ko:// placeholders resolve to the
// component's registry (or registry, when set, for users who rebuilt the
// images) and tag; ImageRewrites apply; anything else is unchanged.
func (c *Component) ResolveImage(ref, registry string) string {
	if c.Ko != nil && strings.HasPrefix(ref, c.Ko.Prefix) {
		if registry == "" {
			registry = c.Ko.Registry
		}
		return strings.TrimSuffix(registry, "/") + "/" + strings.TrimPrefix(ref, c.Ko.Prefix) + ":" + c.Ko.Tag
	}
	if to, ok := c.ImageRewrites[ref]; ok {
		if registry != "" && c.Ko != nil && strings.HasPrefix(to, c.Ko.Registry+"/") {
			return strings.TrimSuffix(registry, "/") + strings.TrimPrefix(to, c.Ko.Registry)
		}
		return to
	}
	return ref
}

var (
	releaseName   = regexp.MustCompile(`^[1-9][0-9]*\.(0|[1-9][0-9]*)$`)
	sha256Hex     = regexp.MustCompile(`^[0-9a-f]{64}$`)
	digestPinned  = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	safeAssetPath = regexp.MustCompile(`^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
)

// ValidReleaseName reports whether s is a release name ("1.23").
func ValidReleaseName(s string) bool { return releaseName.MatchString(s) }

// ValidSHA256 reports whether s is a lowercase hex sha256 digest.
func ValidSHA256(s string) bool { return sha256Hex.MatchString(s) }

// DigestPinned reports whether an image reference ends in a sha256 digest.
func DigestPinned(ref string) bool { return digestPinned.MatchString(ref) }

// SafePath reports whether p is a clean relative slash path of plain
// names (no "..", no empty or absolute parts): an asset's path.
func SafePath(p string) bool {
	return safeAssetPath.MatchString(p) && path.Clean(p) == p && !slices.Contains(strings.Split(p, "/"), "..")
}

// Subset marshals a catalog holding only the named releases and the
// components they reference, and checks that it parses back to the same
// releases (a bundle carries it).
func (c *Catalog) Subset(names ...string) ([]byte, error) {
	sub := Catalog{APIVersion: c.APIVersion, Kind: c.Kind}
	seen := map[string]bool{}
	for _, name := range names {
		r, err := c.Release(name)
		if err != nil {
			return nil, err
		}
		rel := *r
		rel.resolved = nil
		rel.Components = slices.Clone(r.Components)
		sub.Releases = append(sub.Releases, rel)
		for _, comp := range r.ComponentList() {
			key := comp.Name + "@" + comp.Version
			if !seen[key] {
				seen[key] = true
				sub.Components = append(sub.Components, *comp)
			}
		}
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# tmbox bundle catalog: release %s only.\n", strings.Join(names, ", "))
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&sub); err != nil {
		return nil, fmt.Errorf("release catalog: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("release catalog: %w", err)
	}
	back, err := Parse(buf.Bytes(), "bundle catalog")
	if err != nil {
		return nil, fmt.Errorf("release catalog does not re-parse: %w", err)
	}
	if len(back.Releases) != len(names) {
		return nil, fmt.Errorf("release catalog does not re-parse to releases %s", strings.Join(names, ", "))
	}
	for _, name := range names {
		got, err := back.Release(name)
		want, _ := c.Release(name)
		if err != nil || !slices.Equal(got.Images(), want.Images()) {
			return nil, fmt.Errorf("release catalog does not re-parse to release %s", name)
		}
	}
	return buf.Bytes(), nil
}
