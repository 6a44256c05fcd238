package catalog

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Changes a Diff names.
const (
	ChangeAdded   = "added"
	ChangeRemoved = "removed"
	ChangeChanged = "changed"
)

// Diff is what changed from one catalog to another: releases added,
// removed or pinning other versions, and component versions added, removed
// or pinned differently (fields, assets, images). Releases and components
// the two catalogs pin alike are not listed.
type Diff struct {
	Releases   []ReleaseDiff   `json:"releases"`
	Components []ComponentDiff `json:"components"`
}

// Empty reports whether the two catalogs pin the same releases and
// components.
func (d *Diff) Empty() bool { return len(d.Releases) == 0 && len(d.Components) == 0 }

// ReleaseDiff is one release that differs.
type ReleaseDiff struct {
	Name   string `json:"name"`
	Change string `json:"change"`
	// Components are the component versions that differ; for an added or
	// removed release, all of them (From or To empty).
	Components []VersionChange `json:"components,omitempty"`
	// Fields are the release's other pins that differ (kindNodeImage, host).
	Fields []FieldChange `json:"fields,omitempty"`
}

// VersionChange is a component's version in each catalog ("" when absent).
type VersionChange struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// FieldChange is one value in each catalog.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// ComponentDiff is one component version that differs.
type ComponentDiff struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Change  string `json:"change"`
	// Assets and Images count an added or removed version's pins.
	AssetCount int `json:"assetCount,omitempty"`
	ImageCount int `json:"imageCount,omitempty"`
	// Fields: source, kubernetes, ko, imageRewrites, asset order.
	Fields []FieldChange `json:"fields,omitempty"`
	Assets []AssetChange `json:"assets,omitempty"`
	// ImagesAdded and ImagesRemoved are the image list's changes.
	ImagesAdded   []string `json:"imagesAdded,omitempty"`
	ImagesRemoved []string `json:"imagesRemoved,omitempty"`
}

// AssetChange is one asset (by path) that differs.
type AssetChange struct {
	Path   string        `json:"path"`
	Change string        `json:"change"`
	Fields []FieldChange `json:"fields,omitempty"`
}

// Compare returns what changed from catalog a to catalog b. Releases are
// matched by name, components by name and version; releases come in b's
// order then removed ones, components likewise.
func Compare(a, b *Catalog) *Diff {
	d := &Diff{Releases: []ReleaseDiff{}, Components: []ComponentDiff{}}
	for i := range b.Releases {
		rb := &b.Releases[i]
		ra := findRelease(a, rb.Name)
		if ra == nil {
			rd := ReleaseDiff{Name: rb.Name, Change: ChangeAdded}
			for _, ref := range rb.Components {
				rd.Components = append(rd.Components, VersionChange{Name: ref.Name, To: ref.Version})
			}
			d.Releases = append(d.Releases, rd)
			continue
		}
		rd := ReleaseDiff{Name: rb.Name, Change: ChangeChanged}
		va, vb := refVersions(ra), refVersions(rb)
		for _, name := range unionInOrder(refNames(rb), refNames(ra)) {
			if va[name] != vb[name] {
				rd.Components = append(rd.Components, VersionChange{Name: name, From: va[name], To: vb[name]})
			}
		}
		if !slices.Equal(refNames(ra), refNames(rb)) && len(rd.Components) == 0 {
			rd.Fields = append(rd.Fields, FieldChange{Field: "component order", From: strings.Join(refNames(ra), ", "), To: strings.Join(refNames(rb), ", ")})
		}
		rd.Fields = appendChange(rd.Fields, "kindNodeImage", ra.KindNodeImage, rb.KindNodeImage)
		rd.Fields = appendChange(rd.Fields, "host", hostString(ra.Host), hostString(rb.Host))
		if len(rd.Components) > 0 || len(rd.Fields) > 0 {
			d.Releases = append(d.Releases, rd)
		}
	}
	for i := range a.Releases {
		if findRelease(b, a.Releases[i].Name) == nil {
			rd := ReleaseDiff{Name: a.Releases[i].Name, Change: ChangeRemoved}
			for _, ref := range a.Releases[i].Components {
				rd.Components = append(rd.Components, VersionChange{Name: ref.Name, From: ref.Version})
			}
			d.Releases = append(d.Releases, rd)
		}
	}
	for _, cb := range b.orderedComponents() {
		ca := findComponent(a, cb.Name, cb.Version)
		if ca == nil {
			d.Components = append(d.Components, ComponentDiff{Name: cb.Name, Version: cb.Version, Change: ChangeAdded, AssetCount: len(cb.Assets), ImageCount: len(cb.Images)})
			continue
		}
		if cd := compareComponent(ca, &cb); cd != nil {
			d.Components = append(d.Components, *cd)
		}
	}
	for _, ca := range a.orderedComponents() {
		if findComponent(b, ca.Name, ca.Version) == nil {
			d.Components = append(d.Components, ComponentDiff{Name: ca.Name, Version: ca.Version, Change: ChangeRemoved, AssetCount: len(ca.Assets), ImageCount: len(ca.Images)})
		}
	}
	return d
}

// compareComponent returns how b's entry of a component version differs
// from a's, or nil when they pin the same.
func compareComponent(a, b *Component) *ComponentDiff {
	cd := &ComponentDiff{Name: b.Name, Version: b.Version, Change: ChangeChanged}
	cd.Fields = appendChange(cd.Fields, "source", sourceOf(a), sourceOf(b))
	cd.Fields = appendChange(cd.Fields, "kubernetes", a.Kubernetes, b.Kubernetes)
	cd.Fields = appendChange(cd.Fields, "ko", koString(a.Ko), koString(b.Ko))
	for _, from := range unionInOrder(sortedKeys(b.ImageRewrites), sortedKeys(a.ImageRewrites)) {
		cd.Fields = appendChange(cd.Fields, "imageRewrites["+from+"]", a.ImageRewrites[from], b.ImageRewrites[from])
	}
	pa, pb := assetPaths(a), assetPaths(b)
	for _, p := range unionInOrder(pb, pa) {
		x, y := findAsset(a, p), findAsset(b, p)
		switch {
		case x == nil:
			cd.Assets = append(cd.Assets, AssetChange{Path: p, Change: ChangeAdded})
		case y == nil:
			cd.Assets = append(cd.Assets, AssetChange{Path: p, Change: ChangeRemoved})
		default:
			var fs []FieldChange
			fs = appendChange(fs, "name", x.Name, y.Name)
			fs = appendChange(fs, "url", x.URL, y.URL)
			fs = appendChange(fs, "size", strconv.FormatInt(x.Size, 10), strconv.FormatInt(y.Size, 10))
			fs = appendChange(fs, "sha256", x.SHA256, y.SHA256)
			fs = appendChange(fs, "optional", strconv.FormatBool(x.Optional), strconv.FormatBool(y.Optional))
			if len(fs) > 0 {
				cd.Assets = append(cd.Assets, AssetChange{Path: p, Change: ChangeChanged, Fields: fs})
			}
		}
	}
	if common := intersectInOrder(pa, pb); !slices.Equal(intersectInOrder(pb, pa), common) {
		cd.Fields = append(cd.Fields, FieldChange{Field: "asset order", From: strings.Join(common, ", "), To: strings.Join(intersectInOrder(pb, pa), ", ")})
	}
	for _, img := range b.Images {
		if !slices.Contains(a.Images, img) {
			cd.ImagesAdded = append(cd.ImagesAdded, img)
		}
	}
	for _, img := range a.Images {
		if !slices.Contains(b.Images, img) {
			cd.ImagesRemoved = append(cd.ImagesRemoved, img)
		}
	}
	if len(cd.Fields) == 0 && len(cd.Assets) == 0 && len(cd.ImagesAdded) == 0 && len(cd.ImagesRemoved) == 0 {
		return nil
	}
	return cd
}

func appendChange(fs []FieldChange, field, from, to string) []FieldChange {
	if from == to {
		return fs
	}
	return append(fs, FieldChange{Field: field, From: from, To: to})
}

func findRelease(c *Catalog, name string) *Release {
	for i := range c.Releases {
		if c.Releases[i].Name == name {
			return &c.Releases[i]
		}
	}
	return nil
}

func findAsset(c *Component, p string) *Asset {
	for i := range c.Assets {
		if c.Assets[i].Path == p {
			return &c.Assets[i]
		}
	}
	return nil
}

func refNames(r *Release) []string {
	out := make([]string, len(r.Components))
	for i, ref := range r.Components {
		out[i] = ref.Name
	}
	return out
}

func refVersions(r *Release) map[string]string {
	m := map[string]string{}
	for _, ref := range r.Components {
		m[ref.Name] = ref.Version
	}
	return m
}

func assetPaths(c *Component) []string {
	out := make([]string, len(c.Assets))
	for i, a := range c.Assets {
		out[i] = a.Path
	}
	return out
}

// unionInOrder is first's items, then second's that first lacks.
func unionInOrder(first, second []string) []string {
	out := slices.Clone(first)
	for _, s := range second {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// intersectInOrder is first's items that second has, in first's order.
func intersectInOrder(first, second []string) []string {
	var out []string
	for _, s := range first {
		if slices.Contains(second, s) {
			out = append(out, s)
		}
	}
	return out
}

func hostString(h HostRequirements) string {
	return fmt.Sprintf("cpus %d, memory %s, disk %s", h.CPUs, h.Memory, h.Disk)
}

func koString(k *KoResolution) string {
	if k == nil {
		return ""
	}
	return k.Prefix + " → " + k.Registry + "/…:" + k.Tag
}
