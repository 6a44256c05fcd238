package bundle

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tmbox/tmbox/catalog"
)

// ReleaseEntries lists the bundle's releases, oldest first: Releases for a
// multi-release bundle, or one entry made of Release, Components and
// KindNodeImage for a single-release one.
func (m *Manifest) ReleaseEntries() []ReleaseEntry {
	if len(m.Releases) > 0 {
		return slices.Clone(m.Releases)
	}
	return []ReleaseEntry{{Name: m.Release, Components: m.Components, KindNodeImage: m.KindNodeImage}}
}

// ReleaseNames lists the names of the bundle's releases, oldest first
// ([Release] for a single-release bundle).
func (m *Manifest) ReleaseNames() []string {
	entries := m.ReleaseEntries()
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name
	}
	return out
}

// Holds reports whether the bundle carries release (its catalog entry,
// assets and images).
func (m *Manifest) Holds(release string) bool {
	return slices.Contains(m.ReleaseNames(), release)
}

// Hops lists the upgrade hops the bundle can serve: for each two
// consecutive releases it holds, the hop from the older to the newer when
// cat's planner makes that one hop it does not refuse (Knative one minor,
// Istio at most one minor; the cluster's Kubernetes version is not
// checked). cat is the bundle's catalog (Extracted.Catalog,
// InspectCatalog) or any catalog holding its releases; a pair cat does not
// know, or plans in more than one hop, gives no hop. A single-release
// bundle serves none.
func (m *Manifest) Hops(cat *catalog.Catalog) []catalog.Hop {
	names := m.ReleaseNames()
	hops := []catalog.Hop{}
	for i := 1; i < len(names); i++ {
		p, err := cat.Plan(names[i-1], names[i], nil, catalog.PlanOptions{})
		if err != nil || len(p.Hops) != 1 || p.Hops[0].Refused != "" {
			continue
		}
		hops = append(hops, p.Hops[0])
	}
	return hops
}

// Missing lists the releases a plan needs that the bundle does not hold,
// in the plan's order: the installed release (plan.From, which a failed
// hop rolls back to) and every hop's target. It is empty when the bundle
// can serve the whole plan.
func (m *Manifest) Missing(plan *catalog.Plan) []string {
	var need []string
	if plan.From != "" {
		need = append(need, plan.From)
	}
	for _, h := range plan.Hops {
		if h.From != "" && !slices.Contains(need, h.From) {
			need = append(need, h.From)
		}
		if !slices.Contains(need, h.To) {
			need = append(need, h.To)
		}
	}
	var out []string
	for _, r := range need {
		if !m.Holds(r) {
			out = append(out, r)
		}
	}
	return out
}

// ReleaseImages returns the stored images of one release the bundle
// holds: the release's images and its kind node image, sorted by
// reference, as Images lists them (an overridden image as its
// replacement: ImageOverrides). cat is the bundle's catalog
// (Extracted.Catalog); an image of the release that Images does not list
// is an error (a verified bundle lists all of them).
func (m *Manifest) ReleaseImages(cat *catalog.Catalog, release string) ([]Image, error) {
	if !m.Holds(release) {
		return nil, fmt.Errorf("the bundle does not hold release %s (it holds %s)", catalog.QuoteShort(release), strings.Join(m.ReleaseNames(), ", "))
	}
	rel, err := cat.Release(release)
	if err != nil {
		return nil, fmt.Errorf("bundle images of release %s: %w", release, err)
	}
	refs := OverrideImages(bundleImageRefs(rel), m.ImageOverrides)
	out := make([]Image, 0, len(refs))
	for _, ref := range refs {
		i := slices.IndexFunc(m.Images, func(img Image) bool { return img.Ref == ref })
		if i < 0 {
			return nil, fmt.Errorf("bundle images of release %s: %s is not in the bundle", release, ref)
		}
		out = append(out, m.Images[i])
	}
	return out, nil
}

// releasesLabel is "release 1.23" or "releases 1.21, 1.22, 1.23".
func releasesLabel(names []string) string {
	if len(names) == 1 {
		return "release " + names[0]
	}
	return "releases " + strings.Join(names, ", ")
}
