// Package bundle is the air-gap bundle file: Create writes one (a manifest
// of every entry's size and sha256, an optional ed25519 signature, the
// catalog of the release or releases it carries, their assets and an OCI
// layout of their images), Verify and Extract read one while checking every
// byte against the manifest, Inspect reads only the manifest, and Push
// copies its images to a registry. CreateMirror writes the other air-gap
// artefact, a mirror directory of a release's assets.
package bundle

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/tmbox/tmbox/catalog"
)

// Schema identifies the air-gap bundle format this tmbox writes and
// reads; it is the "schema" of a bundle's manifest.
const Schema = "tmbox.dev/bundle/v1"

// Names of a bundle's tar entries. The manifest is always the first entry,
// the signature (when the bundle is signed) the second; every other entry
// follows sorted by path.
const (
	// ManifestName is the manifest entry: a Manifest as
	// indented JSON.
	ManifestName = "tmbox-bundle.json"
	// SignatureName is the signature entry: the standard base64
	// encoding of the ed25519 signature of the manifest entry's bytes.
	SignatureName = "tmbox-bundle.json.sig"
	// CatalogName is the catalog entry: a catalog holding only the
	// bundle's releases and their components.
	CatalogName = "catalog.yaml"
	// AssetsDir holds the releases' assets laid out as a Mirror
	// reads them (assets/<Asset.Path>); a file several releases share is
	// stored once.
	AssetsDir = "assets"
	// ImagesDir holds the images as an OCI image layout
	// (images/oci-layout, images/index.json, images/blobs/sha256/<hex>).
	ImagesDir = "images"
)

// refNameAnnotation is the OCI annotation naming an image in a layout's
// index.json; a bundle sets it to the image reference as the catalog
// spells it.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Manifest describes an air-gap bundle: the release or releases it
// carries and the size and sha256 of every file and image in it. It is the
// bundle's first entry, and what the signature signs.
//
// Release, Components and KindNodeImage describe the bundle's newest
// release, so a reader of single-release bundles reads a multi-release one
// as a bundle of its newest release; Releases lists every release only when
// there are several (it is omitted for one, so a single-release manifest is
// byte for byte what it was before multi-release bundles existed).
type Manifest struct {
	// Schema is Schema.
	Schema string `json:"schema"`
	// Release is the catalog release the bundle carries, e.g. "1.22"; the
	// newest of Releases when there are several.
	Release string `json:"release"`
	// Components are Release's pinned components, in install order.
	Components []catalog.ComponentRef `json:"components"`
	// KindNodeImage is Release's kind node image (also in Images).
	KindNodeImage string `json:"kindNodeImage"`
	// Releases lists every release of a multi-release bundle, oldest
	// first; the last is Release. Empty for a single-release bundle (see
	// ReleaseEntries).
	Releases []ReleaseEntry `json:"releases,omitempty"`
	// Platforms are the image platforms the bundle holds, e.g.
	// "linux/amd64", sorted.
	Platforms []string `json:"platforms"`
	// Files lists every tar entry except the manifest and the signature,
	// sorted by path.
	Files []File `json:"files"`
	// Images lists every image of every release, each release's kind
	// node image and every add-on's images, sorted by reference, each
	// once; an image ImageOverrides
	// replaces is listed (and stored) as its replacement.
	Images []Image `json:"images"`
	// ImageOverrides are the image overrides the bundle was created with
	// (original reference → replacement pinned by digest): it holds each
	// replacement instead of its original, and an install from it runs
	// the replacements. Omitted when there are none.
	ImageOverrides map[string]string `json:"imageOverrides,omitempty"`
	// Addons are the add-ons (the operator's Helm charts) the bundle
	// carries, sorted by name: each one's chart archive is a file under
	// AddonsDir and its images are among Images. Omitted when there are
	// none.
	Addons []AddonEntry `json:"addons,omitempty"`
}

// ReleaseEntry is one release of a multi-release bundle.
type ReleaseEntry struct {
	// Name is the catalog release, e.g. "1.22".
	Name string `json:"name"`
	// Components are the release's pinned components, in install order.
	Components []catalog.ComponentRef `json:"components"`
	// KindNodeImage is the release's kind node image (also in Images).
	KindNodeImage string `json:"kindNodeImage"`
}

// File is one file of a bundle.
type File struct {
	// Path is the slash-separated path of the tar entry.
	Path string `json:"path"`
	// Size is the entry's size in bytes.
	Size int64 `json:"size"`
	// SHA256 is the lowercase hex sha256 of the entry's bytes.
	SHA256 string `json:"sha256"`
}

// Image is one image stored in a bundle's OCI layout.
type Image struct {
	// Ref is the reference as the catalog and manifests spell it, e.g.
	// docker.io/istio/pilot:1.28.6 or gcr.io/x/y@sha256:….
	Ref string `json:"ref"`
	// Digest is the digest (sha256:…) of the manifest or index stored in
	// the layout for Ref. It differs from a digest in Ref when Ref names a
	// multi-platform index: see Create.
	Digest string `json:"digest"`
	// MediaType is the media type of the stored manifest or index.
	MediaType string `json:"mediaType"`
	// Size is the bytes of the image's blobs (index, manifests, configs and
	// layers), counting layers shared with other images in each image.
	Size int64 `json:"size"`
}

// CreateOptions configures Create.
type CreateOptions struct {
	// Catalog holds the releases; required.
	Catalog *catalog.Catalog
	// Release names the release to bundle when Releases is empty. When
	// Releases is set, Release may be empty, or must be one of them.
	Release string
	// Releases names every release to bundle, in any order (duplicates
	// are ignored); the bundle holds them oldest first. Empty means
	// Release alone.
	Releases []string
	// Source delivers the releases' assets; each is verified against its
	// pin with Fetch. Required.
	Source catalog.Source
	// Platforms are the image platforms to store, as "os/arch[/variant]"
	// (default ["linux/amd64"]).
	Platforms []string
	// RemoteOptions configure image pulls (transport, auth, …).
	RemoteOptions []remote.Option
	// Addons are add-ons to carry: each chart archive is stored as
	// AddonsDir/<name>.tgz and each image is pulled into the layout with
	// the releases' (a layer they share stored once).
	Addons []AddonSource
	// ImageOverrides replace images of the releases (original reference
	// → replacement pinned by digest, see ValidateImageOverrides): the
	// bundle holds each replacement instead of its original, and records
	// the overrides in its manifest. Every original must be an image of a
	// bundled release.
	ImageOverrides map[string]string
	// SignKey signs the manifest; nil writes an unsigned bundle.
	SignKey ed25519.PrivateKey
	// WorkDir is where scratch space is made (default: the system
	// temporary directory). The scratch space is removed on return.
	WorkDir string
	// Logger receives progress at debug and info level (default: discard).
	Logger *slog.Logger
	// Progress, when set, is called after each asset and image and once
	// the bundle is written, with the steps done, the total and what was
	// just done.
	Progress func(done, total int, what string)
}

// Create writes the air-gap bundle of one release, or of several, to w
// and returns its manifest. The bundle is an uncompressed tar holding the
// manifest, its signature when opts.SignKey is set, a catalog with only the
// bundled releases, every asset of every release (optional ones included)
// verified against its pin, a file that several releases share stored
// once, and every image of every release plus each release's kind node
// image as one OCI image layout, each image once, so layers shared between
// images (of one release or of several) are stored once. With opts.Addons
// it also holds each add-on's chart archive (AddonsDir/<name>.tgz, in
// Files like every entry) and pulls the add-ons' images into the same
// layout; Manifest.Addons describes them.
//
// Images are pulled with opts.RemoteOptions. A single-platform image is
// stored as the registry serves it (its digest is preserved), whatever
// platforms are requested. For a
// multi-platform index: with one requested platform, the manifest of that
// platform is stored (its digest is upstream's digest for that platform);
// with several, the index is stored with only the requested platforms'
// manifests, which gives it a new digest. Every requested platform must be
// present. A reference pinned by digest must resolve to exactly that digest.
// After the assets are fetched and verified (into scratch space) and
// before any image is pulled or anything is written to w, every image is
// resolved (CheckImages, with opts.RemoteOptions and the requested
// platforms); when one cannot be pulled, Create returns an
// *ImagesMissingError naming all of them.
//
// The output is reproducible: the same catalog, releases, assets, images,
// platforms and key give the same bytes, and a bundle of one release is
// the same whether it was asked for with Release or with a one-element
// Releases. On error, w may hold a partial bundle; callers write to a
// temporary file and rename it when Create succeeds.
func Create(ctx context.Context, w io.Writer, opts CreateOptions) (*Manifest, error) {
	if opts.Catalog == nil {
		return nil, errors.New("create bundle: no catalog")
	}
	if opts.Source == nil {
		return nil, errors.New("create bundle: no asset source")
	}
	if opts.SignKey != nil && len(opts.SignKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("create bundle: signing key has %d bytes, want %d", len(opts.SignKey), ed25519.PrivateKeySize)
	}
	rels, err := bundleReleases(opts.Catalog, opts.Release, opts.Releases)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	platforms, err := parsePlatforms(opts.Platforms)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := errors.Join(ValidateImageOverrides(opts.ImageOverrides), checkOverridesApply(opts.ImageOverrides, rels)); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	images := OverrideImages(bundleImageRefs(rels...), opts.ImageOverrides)
	addons, archives, err := prepareAddons(opts.Addons)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	images = withAddonImages(images, addons)
	scratch, err := os.MkdirTemp(opts.WorkDir, "tmbox-bundle-*")
	if err != nil {
		return nil, fmt.Errorf("create bundle: scratch space: %w", err)
	}
	defer os.RemoveAll(scratch)
	root := filepath.Join(scratch, "bundle")

	assets, err := uniqueAssets(rels)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	total := len(assets) + len(addons) + len(images) + 1
	done := 0
	step := func(what string) {
		done++
		if opts.Progress != nil {
			opts.Progress(done, total, what)
		}
	}

	// Assets, verified against their pins.
	for _, a := range assets {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("create bundle: %w", err)
		}
		if !safeBundlePath(path.Join(AssetsDir, a.Path)) {
			return nil, fmt.Errorf("create bundle: asset path %q is not a clean relative path", a.Path)
		}
		data, err := catalog.Fetch(ctx, opts.Source, a)
		if err != nil {
			return nil, fmt.Errorf("create bundle: asset: %w", err)
		}
		if err := writeScratchFile(root, path.Join(AssetsDir, a.Path), data); err != nil {
			return nil, fmt.Errorf("create bundle: %w", err)
		}
		log.Debug("bundled asset", "path", a.Path, "size", a.Size)
		step("asset " + a.Path)
	}

	// Every image must resolve before any is pulled or anything written to
	// w; the assets (small, local checks first: a bad mirror file is named
	// before any registry is asked) are only in scratch space so far.
	if err := checkBundleImages(ctx, images, platforms, opts.RemoteOptions); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}

	// The add-ons' chart archives.
	for _, a := range addons {
		if err := writeScratchFile(root, a.Path, archives[a.Name]); err != nil {
			return nil, fmt.Errorf("create bundle: %w", err)
		}
		log.Debug("bundled add-on chart", "addon", a.Name, "chart", a.Chart, "version", a.Version, "sha256", a.SHA256)
		step("add-on " + a.Name + " (chart " + a.Chart + " " + a.Version + ")")
	}

	// The releases' catalog.
	names := releaseNames(rels)
	catData, err := opts.Catalog.Subset(names...)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	if err := writeScratchFile(root, CatalogName, catData); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}

	// Images, as an OCI layout.
	pulled, err := pullImages(ctx, filepath.Join(root, ImagesDir), images, platforms, opts.RemoteOptions, log, step)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}

	files, err := hashTree(ctx, root)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	newest := rels[len(rels)-1]
	m := &Manifest{
		Schema:        Schema,
		Release:       newest.Name,
		Components:    slices.Clone(newest.Components),
		KindNodeImage: newest.KindNodeImage,
		Platforms:     platformStrings(platforms),
		Files:         files,
		Images:        pulled,
	}
	if len(addons) > 0 {
		m.Addons = addons
	}
	if len(opts.ImageOverrides) > 0 {
		m.ImageOverrides = maps.Clone(opts.ImageOverrides)
	}
	if len(rels) > 1 {
		for _, r := range rels {
			m.Releases = append(m.Releases, ReleaseEntry{Name: r.Name, Components: slices.Clone(r.Components), KindNodeImage: r.KindNodeImage})
		}
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("create bundle: internal error: %w", err)
	}
	manifest, err := marshalManifest(m)
	if err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	var sig []byte
	if opts.SignKey != nil {
		sig = []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(opts.SignKey, manifest)))
	}
	if err := writeBundleTar(ctx, w, root, manifest, sig, files); err != nil {
		return nil, fmt.Errorf("create bundle: %w", err)
	}
	step("bundle written")
	log.Info("bundle created", "releases", strings.Join(names, ","), "files", len(files), "images", len(pulled), "signed", sig != nil)
	return m, nil
}

// bundleReleases resolves CreateOptions' Release and Releases to catalog
// releases, unique, in catalog order (oldest first: the catalog refuses
// releases out of order).
func bundleReleases(cat *catalog.Catalog, release string, releases []string) ([]*catalog.Release, error) {
	if len(releases) == 0 {
		if release == "" {
			return nil, errors.New("no release named")
		}
		releases = []string{release}
	} else if release != "" && !slices.Contains(releases, release) {
		return nil, fmt.Errorf("release %s is not among the releases %s", catalog.QuoteShort(release), strings.Join(releases, ", "))
	}
	want := map[string]bool{}
	for _, name := range releases {
		if _, err := cat.Release(name); err != nil {
			return nil, err
		}
		want[name] = true
	}
	var out []*catalog.Release
	for i := range cat.Releases {
		if want[cat.Releases[i].Name] {
			out = append(out, &cat.Releases[i])
		}
	}
	return out, nil
}

func releaseNames(rels []*catalog.Release) []string {
	out := make([]string, len(rels))
	for i, r := range rels {
		out[i] = r.Name
	}
	return out
}

// releaseAssets lists every asset of the release, optional ones included,
// in install order.
func releaseAssets(r *catalog.Release) []catalog.Asset {
	var out []catalog.Asset
	for _, c := range r.ComponentList() {
		out = append(out, c.Assets...)
	}
	return out
}

// uniqueAssets lists every asset of the releases, optional ones included,
// in release and install order, each path once. A path pinned twice with
// different sizes or digests is an error.
func uniqueAssets(rels []*catalog.Release) ([]catalog.Asset, error) {
	seen := map[string]catalog.Asset{}
	var out []catalog.Asset
	for _, r := range rels {
		for _, a := range releaseAssets(r) {
			if prev, dup := seen[a.Path]; dup {
				if prev.SHA256 != a.SHA256 || prev.Size != a.Size {
					return nil, fmt.Errorf("asset path %s is pinned twice with different digests", a.Path)
				}
				continue
			}
			seen[a.Path] = a
			out = append(out, a)
		}
	}
	return out, nil
}

// bundleImageRefs is every image of the releases plus each one's kind node
// image, sorted and unique.
func bundleImageRefs(rels ...*catalog.Release) []string {
	var refs []string
	for _, r := range rels {
		refs = append(refs, r.Images()...)
		refs = append(refs, r.KindNodeImage)
	}
	slices.Sort(refs)
	return slices.Compact(refs)
}

// writeScratchFile writes data to root/rel, creating directories.
func writeScratchFile(root, rel string, data []byte) error {
	full := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return fmt.Errorf("scratch space: %w", err)
	}
	if err := os.WriteFile(full, data, 0o644); err != nil {
		return fmt.Errorf("scratch space: %w", err)
	}
	return nil
}

// hashTree lists every regular file under root with its size and sha256,
// sorted by path. Anything but regular files and directories is refused.
func hashTree(ctx context.Context, root string) ([]File, error) {
	var files []File
	buf := make([]byte, copyBufferSize)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, f, buf)
		if err != nil {
			return fmt.Errorf("hash %s: %w", p, err)
		}
		files = append(files, File{Path: filepath.ToSlash(rel), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list bundle files: %w", err)
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

// marshalManifest is the manifest entry's bytes: indented JSON in the
// struct's field order, with a final newline.
func marshalManifest(m *Manifest) ([]byte, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal manifest: %w", err)
	}
	return append(data, '\n'), nil
}

// copyBufferSize is the buffer for hashing and copying entries.
const copyBufferSize = 1 << 20

// bundleHeader is the normalised tar header of a bundle entry: a regular
// file, mode 0644, owned by 0:0 without names, modified at the Unix epoch,
// PAX format.
func bundleHeader(name string, size int64) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     0o644,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
}

// writeBundleTar writes the manifest, the signature and every file, in that
// order, each file re-hashed as it is copied so the tar holds exactly what
// the manifest lists.
func writeBundleTar(ctx context.Context, w io.Writer, root string, manifest, sig []byte, files []File) error {
	tw := tar.NewWriter(w)
	writeBytes := func(name string, data []byte) error {
		if err := tw.WriteHeader(bundleHeader(name, int64(len(data)))); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		return nil
	}
	if err := writeBytes(ManifestName, manifest); err != nil {
		return err
	}
	if sig != nil {
		if err := writeBytes(SignatureName, sig); err != nil {
			return err
		}
	}
	buf := make([]byte, copyBufferSize)
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := copyFileEntry(tw, root, f, buf); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write bundle: %w", err)
	}
	return nil
}

func copyFileEntry(tw *tar.Writer, root string, f File, buf []byte) error {
	src, err := os.Open(filepath.Join(root, filepath.FromSlash(f.Path)))
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	defer src.Close()
	if err := tw.WriteHeader(bundleHeader(f.Path, f.Size)); err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(tw, h), io.LimitReader(src, f.Size), buf)
	if err != nil {
		return fmt.Errorf("write %s: %w", f.Path, err)
	}
	if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
		return fmt.Errorf("write %s: the file changed while the bundle was written", f.Path)
	}
	return nil
}
