package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tmbox/tmbox/catalog"
)

// AddonsDir holds the add-ons' chart archives: addons/<name>.tgz.
const AddonsDir = "addons"

// maxAddonArchiveSize bounds one add-on chart archive Create takes (the
// add-ons' loader reads at most this much too).
const maxAddonArchiveSize = 32 << 20

// AddonEntry is one add-on (an operator's Helm chart, see
// docs/addons.md) a bundle carries: its chart archive, at Path, and the
// images its rendered templates reference, stored in the OCI layout with
// the releases' images.
type AddonEntry struct {
	// Name is the add-on's name (its Helm release name), a DNS label.
	Name string `json:"name"`
	// Chart and Version are the chart's name and version; AppVersion its
	// app version, when it has one.
	Chart      string `json:"chart"`
	Version    string `json:"version"`
	AppVersion string `json:"appVersion,omitempty"`
	// Path is the chart archive's entry: AddonsDir/<Name>.tgz. Files lists
	// it with its size and sha256 like any other entry.
	Path string `json:"path"`
	// SHA256 is the lowercase hex sha256 of the chart archive (the entry's
	// sha256).
	SHA256 string `json:"sha256"`
	// ChartDigest is sha256:HEX of the chart as the add-on declared it:
	// the archive's for a .tgz or an oci:// chart, the digest of the
	// directory's deterministic archive for a chart directory (the
	// bundle then carries it packaged with Helm). An add-on's digest:
	// setting is checked against it.
	ChartDigest string `json:"chartDigest"`
	// Images are the images the chart's rendered templates reference with
	// the values it was bundled with, sorted, each once; each is among the
	// manifest's Images.
	Images []string `json:"images"`
}

// AddonSource is an add-on Create packs: the caller (tmbox's add-ons
// loader) has loaded the chart and rendered its templates.
type AddonSource struct {
	// Name is the add-on's name, a DNS label unique among the add-ons.
	Name string
	// Chart, Version and AppVersion are the chart's.
	Chart, Version, AppVersion string
	// ChartDigest is the add-on's chart digest (see AddonEntry).
	ChartDigest string
	// Archive is the chart archive (.tgz), at most 32 MiB.
	Archive []byte
	// Images are the images the chart's templates reference.
	Images []string
}

// addonName is an add-on's name: a DNS-1123 label of at most 53
// characters (a Helm release name).
var addonName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,51}[a-z0-9])?$`)

// addonPath is the entry of an add-on's chart archive.
func addonPath(name string) string { return path.Join(AddonsDir, name+".tgz") }

// prepareAddons checks the add-ons Create packs and returns their
// entries (sorted by name, without their SHA256 until written) and
// archives.
func prepareAddons(srcs []AddonSource) ([]AddonEntry, map[string][]byte, error) {
	entries := make([]AddonEntry, 0, len(srcs))
	archives := make(map[string][]byte, len(srcs))
	for _, s := range srcs {
		what := "add-on " + catalog.QuoteShort(s.Name)
		switch {
		case !addonName.MatchString(s.Name):
			return nil, nil, fmt.Errorf("%s: the name is not a DNS label of at most 53 characters", what)
		case archives[s.Name] != nil:
			return nil, nil, fmt.Errorf("%s: named twice", what)
		case s.Chart == "" || s.Version == "":
			return nil, nil, fmt.Errorf("%s: no chart name or version", what)
		case !validChartDigest(s.ChartDigest):
			return nil, nil, fmt.Errorf("%s: chart digest %s is not sha256:<64 lowercase hex digits>", what, catalog.QuoteShort(s.ChartDigest))
		case len(s.Archive) == 0:
			return nil, nil, fmt.Errorf("%s: no chart archive", what)
		case len(s.Archive) > maxAddonArchiveSize:
			return nil, nil, fmt.Errorf("%s: the chart archive has %d bytes, more than the limit of %s", what, len(s.Archive), catalog.SizeString(maxAddonArchiveSize))
		}
		images := slices.Compact(slices.Sorted(slices.Values(s.Images)))
		for _, img := range images {
			if _, err := name.ParseReference(img, name.WeakValidation); err != nil {
				return nil, nil, fmt.Errorf("%s: image %s: %w", what, catalog.QuoteShort(img), err)
			}
		}
		if images == nil {
			images = []string{}
		}
		archives[s.Name] = s.Archive
		sum := sha256.Sum256(s.Archive)
		entries = append(entries, AddonEntry{
			Name: s.Name, Chart: s.Chart, Version: s.Version, AppVersion: s.AppVersion,
			Path: addonPath(s.Name), SHA256: hex.EncodeToString(sum[:]), ChartDigest: s.ChartDigest, Images: images,
		})
	}
	slices.SortFunc(entries, func(a, b AddonEntry) int { return strings.Compare(a.Name, b.Name) })
	return entries, archives, nil
}

// validChartDigest reports whether s is sha256:<64 lowercase hex digits>.
func validChartDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	return ok && catalog.ValidSHA256(hex)
}

// withAddonImages adds the add-ons' images to refs, sorted, each once.
func withAddonImages(refs []string, addons []AddonEntry) []string {
	out := slices.Clone(refs)
	for _, a := range addons {
		out = append(out, a.Images...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// validateAddons checks the manifest's add-ons: none or a non-empty
// list (so a manifest re-encodes to the same bytes), sorted unique names,
// each with its chart, version, digests, an archive entry Files lists
// with its sha256, and images among the manifest's Images.
func (m *Manifest) validateAddons(files map[string]File) error {
	if m.Addons != nil && len(m.Addons) == 0 {
		return errors.New("addons lists none: a bundle without add-ons omits the list")
	}
	for i, a := range m.Addons {
		what := "add-on " + catalog.QuoteShort(a.Name)
		switch {
		case !addonName.MatchString(a.Name):
			return fmt.Errorf("%s: the name is not a DNS label of at most 53 characters", what)
		case i > 0 && m.Addons[i-1].Name >= a.Name:
			return fmt.Errorf("%s: add-ons are not sorted and unique", what)
		case a.Chart == "" || a.Version == "":
			return fmt.Errorf("%s: no chart name or version", what)
		case a.Path != addonPath(a.Name):
			return fmt.Errorf("%s: path %s, want %s", what, catalog.QuoteShort(a.Path), addonPath(a.Name))
		case !catalog.ValidSHA256(a.SHA256):
			return fmt.Errorf("%s: sha256 %q is not 64 lowercase hex digits", what, a.SHA256)
		case !validChartDigest(a.ChartDigest):
			return fmt.Errorf("%s: chart digest %q is not sha256:<64 lowercase hex digits>", what, a.ChartDigest)
		case a.Images == nil:
			return fmt.Errorf("%s: no image list", what)
		}
		f, ok := files[a.Path]
		if !ok {
			return fmt.Errorf("%s: its chart archive %s is not listed", what, a.Path)
		}
		if f.SHA256 != a.SHA256 {
			return fmt.Errorf("%s: its chart archive %s is listed with sha256 %s, the add-on says %s", what, a.Path, f.SHA256, a.SHA256)
		}
		for j, img := range a.Images {
			if j > 0 && a.Images[j-1] >= img {
				return fmt.Errorf("%s: image %s: images are not sorted and unique", what, img)
			}
			if !slices.ContainsFunc(m.Images, func(s Image) bool { return s.Ref == img }) {
				return fmt.Errorf("%s: image %s is not among the images", what, img)
			}
		}
	}
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, AddonsDir+"/") && !slices.ContainsFunc(m.Addons, func(a AddonEntry) bool { return a.Path == f.Path }) {
			return fmt.Errorf("file %s is not the chart archive of an add-on", f.Path)
		}
	}
	return nil
}

// Addon returns the add-on the bundle carries under name.
func (m *Manifest) Addon(name string) (AddonEntry, bool) {
	i := slices.IndexFunc(m.Addons, func(a AddonEntry) bool { return a.Name == name })
	if i < 0 {
		return AddonEntry{}, false
	}
	return m.Addons[i], true
}

// AddonNames lists the names of the add-ons the bundle carries, sorted.
func (m *Manifest) AddonNames() []string {
	out := make([]string, len(m.Addons))
	for i, a := range m.Addons {
		out[i] = a.Name
	}
	return out
}

// AddonImages returns the stored images of the named add-ons (all of
// them when none is named), sorted by reference, each once, as Images
// lists them: what PushImages pushes for them.
func (m *Manifest) AddonImages(names ...string) ([]Image, error) {
	var refs []string
	for _, a := range m.Addons {
		if len(names) == 0 || slices.Contains(names, a.Name) {
			refs = append(refs, a.Images...)
		}
	}
	for _, n := range names {
		if _, ok := m.Addon(n); !ok {
			return nil, fmt.Errorf("the bundle carries no add-on %s", catalog.QuoteShort(n))
		}
	}
	slices.Sort(refs)
	refs = slices.Compact(refs)
	out := make([]Image, 0, len(refs))
	for _, ref := range refs {
		i := slices.IndexFunc(m.Images, func(img Image) bool { return img.Ref == ref })
		if i < 0 {
			return nil, fmt.Errorf("bundle images of the add-ons: %s is not in the bundle", ref)
		}
		out = append(out, m.Images[i])
	}
	return out, nil
}

// AddonArchive returns the path of the chart archive the extracted bundle
// carries for the add-on name.
func (b *Extracted) AddonArchive(name string) (string, AddonEntry, error) {
	if b == nil || b.Manifest == nil {
		return "", AddonEntry{}, errors.New("no bundle")
	}
	a, ok := b.Manifest.Addon(name)
	if !ok {
		return "", AddonEntry{}, fmt.Errorf("the bundle carries no add-on %s", catalog.QuoteShort(name))
	}
	return filepath.Join(b.Dir, filepath.FromSlash(a.Path)), a, nil
}
