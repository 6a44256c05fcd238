package bundle

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/hashicorp/go-version"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/internal/ctxio"
)

// DefaultMaxFileSize is the largest entry a bundle may hold unless
// VerifyOptions.MaxFileSize says otherwise.
const DefaultMaxFileSize int64 = 64 << 30

const (
	// maxManifestSize bounds the manifest entry (a release's manifest
	// is a few hundred KiB).
	maxManifestSize = 16 << 20
	// maxSignatureSize bounds the signature entry (a base64 ed25519
	// signature is 88 bytes).
	maxSignatureSize = 1 << 10
	// maxIndexSize bounds the OCI layout's index.json.
	maxIndexSize = 8 << 20
	// maxLayoutMarkerSize bounds the OCI layout's oci-layout file.
	maxLayoutMarkerSize = 1 << 10
	// blobsPrefix is where the OCI layout's blobs are.
	blobsPrefix = ImagesDir + "/blobs/sha256/"
	// indexName is the OCI layout's index.
	indexName = ImagesDir + "/index.json"
	// layoutMarkerName is the OCI layout's marker file.
	layoutMarkerName = ImagesDir + "/oci-layout"
	// manifestPrefixLen is how many hex digits of the manifest's sha256
	// name an extracted bundle's directory.
	manifestPrefixLen = 16
)

// contentLimit is the size limit of the entries verification reads into
// memory to check their content (see checkContents); 0 for the others.
func contentLimit(p string) int64 {
	switch p {
	case CatalogName:
		return catalog.MaxCatalogSize
	case indexName:
		return maxIndexSize
	case layoutMarkerName:
		return maxLayoutMarkerSize
	}
	return 0
}

// VerifyOptions configures Verify, Extract.
type VerifyOptions struct {
	// PublicKey, when set, must verify the bundle's signature, and an
	// unsigned bundle is refused: giving a key means the bundle must be
	// signed with it.
	PublicKey ed25519.PublicKey
	// RequireSignature refuses unsigned bundles even when no PublicKey is
	// given (a signature is then only checked to be base64 of 64 bytes).
	RequireSignature bool
	// MaxFileSize refuses entries larger than this many bytes (default
	// DefaultMaxFileSize).
	MaxFileSize int64
}

// Error says which entry of a bundle is bad and why.
type Error struct {
	// Entry names the tar entry (or the missing one).
	Entry string
	// Reason says what is wrong with it.
	Reason string
}

// Error returns "bundle entry <Entry>: <Reason>".
func (e *Error) Error() string { return "bundle entry " + e.Entry + ": " + e.Reason }

func bundleErr(entry, format string, args ...any) *Error {
	return &Error{Entry: entry, Reason: fmt.Sprintf(format, args...)}
}

// Extracted is a verified bundle extracted to a directory.
type Extracted struct {
	// Manifest is the bundle's manifest.
	Manifest *Manifest
	// Dir is the extracted bundle: dir/<manifest sha256 prefix>.
	Dir string
	// AssetsDir is the assets mirror: Mirror{Dir: AssetsDir} reads them.
	AssetsDir string
	// LayoutDir is the OCI image layout holding the images.
	LayoutDir string
	// CatalogFile is the catalog holding only the bundle's releases.
	CatalogFile string
	// Catalog is CatalogFile, parsed and checked against the manifest.
	Catalog *catalog.Catalog
	// Signed reports whether the bundle carries a signature. It was
	// checked against VerifyOptions.PublicKey when one was given.
	Signed bool
}

// Verify streams r once, checking the signature (when PublicKey is
// set, the bundle must be signed and the signature must verify against
// it; RequireSignature refuses unsigned bundles; without a key a signature
// must still be base64 of 64 bytes), every entry's size and sha256 against
// the manifest, that every file of the manifest is present exactly once and
// nothing else is, that every OCI blob's name is its sha256, and then
// everything checkContents checks: the catalog parses and holds exactly
// the manifest's releases (each with the manifest's components and kind
// node image) with the manifest's images and assets, and the layout's
// index.json names every image with its stored digest and nothing else. Entries
// that are not regular files, have unsafe paths or claim more than
// MaxFileSize bytes are refused before their content is read. It returns
// the first problem as a *Error naming the entry. Extract runs the same
// checks, so the two agree on every bundle.
func Verify(ctx context.Context, r io.Reader, opts VerifyOptions) (*Manifest, error) {
	res, err := verifyStream(ctx, r, opts, nil)
	if err != nil {
		return nil, err
	}
	return res.manifest, nil
}

// Extract verifies the bundle file at path (opened with OpenFile) while
// extracting it into a fresh staging directory under dir, and renames that to
// dir/<first 16 hex digits of the manifest's sha256> only when everything
// verified (replacing an earlier extraction of the same bundle). On any
// error the staging directory is removed, so nothing of a bad bundle stays
// in dir. Entries are written through an os.Root, so nothing can land
// outside the staging directory. Besides the bundle's files, the extracted
// directory holds the manifest and its signature. It checks exactly what
// Verify checks.
func Extract(ctx context.Context, path, dir string, opts VerifyOptions) (_ *Extracted, rerr error) {
	f, err := OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("extract bundle: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("extract bundle: %w", err)
	}
	staging, err := os.MkdirTemp(dir, ".staging-")
	if err != nil {
		return nil, fmt.Errorf("extract bundle: %w", err)
	}
	defer func() {
		if rerr != nil {
			os.RemoveAll(staging)
		}
	}()
	if err := os.Chmod(staging, 0o755); err != nil {
		return nil, fmt.Errorf("extract bundle: %w", err)
	}
	root, err := os.OpenRoot(staging)
	if err != nil {
		return nil, fmt.Errorf("extract bundle: %w", err)
	}
	defer root.Close()
	res, err := verifyStream(ctx, f, opts, &rootSink{root: root})
	if err != nil {
		return nil, err
	}
	if err := root.WriteFile(ManifestName, res.manifestBytes, 0o644); err != nil {
		return nil, fmt.Errorf("extract bundle: %w", err)
	}
	if res.sig != nil {
		if err := root.WriteFile(SignatureName, res.sig, 0o644); err != nil {
			return nil, fmt.Errorf("extract bundle: %w", err)
		}
	}
	sum := sha256.Sum256(res.manifestBytes)
	final := filepath.Join(dir, hex.EncodeToString(sum[:])[:manifestPrefixLen])
	if err := os.RemoveAll(final); err != nil {
		return nil, fmt.Errorf("extract bundle: replace %s: %w", final, err)
	}
	if err := os.Rename(staging, final); err != nil {
		return nil, fmt.Errorf("extract bundle: %w", err)
	}
	return &Extracted{
		Manifest:    res.manifest,
		Dir:         final,
		AssetsDir:   filepath.Join(final, AssetsDir),
		LayoutDir:   filepath.Join(final, ImagesDir),
		CatalogFile: filepath.Join(final, CatalogName),
		Catalog:     res.catalog,
		Signed:      res.sig != nil,
	}, nil
}

// checkContents checks what digests alone cannot; Verify and Extract
// both run it (through verifyStream) once every entry verified, so they
// give the same verdict on every bundle. It returns the parsed catalog.
// It checks that:
//   - the catalog parses and holds exactly the manifest's releases (see
//     ReleaseEntries), each with the manifest's components and kind node
//     image;
//   - the manifest's images are exactly those releases' images plus their
//     kind node images, each image ImageOverrides names replaced by its
//     replacement (every override naming an image of those releases),
//     and the images of the add-ons it carries;
//   - the files are what a bundle holds: the catalog, the add-ons' chart
//     archives under addons/ (see validateAddons), the releases' assets
//     under assets/ (each with the size and sha256 the catalog pins, none
//     missing), and an OCI layout under images/;
//   - the layout's oci-layout is an OCI image layout marker, and its
//     index.json names every image of the manifest with the digest, media
//     type and size stored for it, and names nothing else.
func checkContents(m *Manifest, catalogData, indexData, layoutData []byte) (*catalog.Catalog, error) {
	cat, err := catalog.Parse(catalogData, CatalogName)
	if err != nil {
		return nil, bundleErr(CatalogName, "%v", err)
	}
	names := m.ReleaseNames()
	held := releasesLabel(names)
	if !slices.Equal(cat.ReleaseNames(), names) {
		return nil, bundleErr(CatalogName, "does not hold exactly %s (it holds %s)", held, strings.Join(cat.ReleaseNames(), ", "))
	}
	rels := make([]*catalog.Release, 0, len(names))
	for _, e := range m.ReleaseEntries() {
		rel, _ := cat.Release(e.Name) // the names are equal
		if !slices.Equal(rel.Components, e.Components) || rel.KindNodeImage != e.KindNodeImage {
			return nil, bundleErr(CatalogName, "release %s differs from the manifest's", e.Name)
		}
		rels = append(rels, rel)
	}
	if err := checkOverridesApply(m.ImageOverrides, rels); err != nil {
		return nil, bundleErr(ManifestName, "imageOverrides: %v", err)
	}
	want := withAddonImages(OverrideImages(bundleImageRefs(rels...), m.ImageOverrides), m.Addons)
	got := make([]string, 0, len(m.Images))
	for _, img := range m.Images {
		got = append(got, img.Ref)
	}
	if !slices.Equal(got, want) {
		return nil, bundleErr(ManifestName, "images differ from %s's images in %s: %s", held, CatalogName, firstDifference(got, want))
	}

	assets := map[string]catalog.Asset{}
	pinnedBy := map[string]string{}
	for _, rel := range rels {
		for _, a := range releaseAssets(rel) {
			p := path.Join(AssetsDir, a.Path)
			if prev, dup := assets[p]; dup && (prev.Size != a.Size || prev.SHA256 != a.SHA256) {
				return nil, bundleErr(CatalogName, "pins asset %s twice with different digests (releases %s and %s)", a.Path, pinnedBy[p], rel.Name)
			} else if !dup {
				pinnedBy[p] = rel.Name
			}
			assets[p] = a
		}
	}
	blobSizes := map[string]int64{}
	listed := map[string]bool{}
	for _, f := range m.Files {
		listed[f.Path] = true
		switch {
		case f.Path == CatalogName || f.Path == indexName || f.Path == layoutMarkerName:
		case strings.HasPrefix(f.Path, blobsPrefix): // named after its sha256: see validate
			blobSizes["sha256:"+f.SHA256] = f.Size
		case strings.HasPrefix(f.Path, AddonsDir+"/"): // an add-on's chart archive: see validateAddons
		case strings.HasPrefix(f.Path, AssetsDir+"/"):
			a, ok := assets[f.Path]
			if !ok {
				return nil, bundleErr(f.Path, "is not an asset of %s in %s", held, CatalogName)
			}
			if a.Size != f.Size || a.SHA256 != f.SHA256 {
				return nil, bundleErr(f.Path, "the manifest lists %d bytes with sha256 %s, but %s pins %d bytes with sha256 %s", f.Size, f.SHA256, CatalogName, a.Size, a.SHA256)
			}
		default:
			return nil, bundleErr(f.Path, "is not part of a bundle (%s, assets under %s/, add-on charts under %s/, an OCI layout under %s/)", CatalogName, AssetsDir, AddonsDir, ImagesDir)
		}
	}
	for _, p := range slices.Sorted(maps.Keys(assets)) {
		if !listed[p] {
			return nil, bundleErr(p, "missing: %s pins it for release %s", CatalogName, pinnedBy[p])
		}
	}

	var marker struct {
		ImageLayoutVersion string `json:"imageLayoutVersion"`
	}
	if err := json.Unmarshal(layoutData, &marker); err != nil || marker.ImageLayoutVersion != ociLayoutVersion {
		return nil, bundleErr(layoutMarkerName, "not an OCI image layout marker (want {\"imageLayoutVersion\": %q})", ociLayoutVersion)
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(indexData))
	if err != nil {
		return nil, bundleErr(indexName, "not an OCI image index: %v", err)
	}
	stored := make(map[string]v1.Descriptor, len(idx.Manifests))
	for _, d := range idx.Manifests {
		ref := d.Annotations[refNameAnnotation]
		if ref == "" {
			return nil, bundleErr(indexName, "holds %s without a %s annotation", d.Digest, refNameAnnotation)
		}
		if _, dup := stored[ref]; dup {
			return nil, bundleErr(indexName, "names %s twice", ref)
		}
		stored[ref] = d
	}
	for _, img := range m.Images {
		d, ok := stored[img.Ref]
		if !ok || d.Digest.String() != img.Digest {
			return nil, bundleErr(indexName, "does not name %s as %s", img.Ref, img.Digest)
		}
		if string(d.MediaType) != img.MediaType {
			return nil, bundleErr(indexName, "names %s with media type %s, the manifest says %s", img.Ref, d.MediaType, img.MediaType)
		}
		if d.Size != blobSizes[img.Digest] {
			return nil, bundleErr(indexName, "names %s with %d bytes, its blob has %d", img.Ref, d.Size, blobSizes[img.Digest])
		}
		delete(stored, img.Ref)
	}
	if len(stored) > 0 {
		return nil, bundleErr(indexName, "names %s, which the manifest does not list", slices.Sorted(maps.Keys(stored))[0])
	}
	return cat, nil
}

// ociLayoutVersion is the imageLayoutVersion of an OCI image layout.
const ociLayoutVersion = "1.0.0"

// firstDifference describes the first element of two sorted lists that
// is in one but not the other.
func firstDifference(got, want []string) string {
	for _, g := range got {
		if !slices.Contains(want, g) {
			return "the manifest lists " + g + ", the catalog does not"
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			return "the catalog names " + w + ", the manifest does not list it"
		}
	}
	return "they are not sorted and unique"
}

// Inspect reads only the first entries of the bundle file at path (opened
// with OpenFile) and
// returns its manifest and whether it is signed. Nothing is verified beyond
// the manifest's form and the signature's encoding; use Verify or
// Extract before trusting the contents.
func Inspect(path string) (*Manifest, bool, error) {
	f, err := OpenFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("inspect bundle: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	m, _, err := readManifest(tr, DefaultMaxFileSize)
	if err != nil {
		return nil, false, err
	}
	hdr, err := tr.Next()
	if err != nil || hdr.Name != SignatureName {
		return m, false, nil
	}
	if _, err := readSignature(tr, hdr, DefaultMaxFileSize); err != nil {
		return nil, false, err
	}
	return m, true, nil
}

// InspectCatalog reads the bundle file at path up to its catalog entry
// and returns the manifest and the parsed catalog, checking the catalog's
// size and sha256 against the manifest. Like Inspect, it verifies nothing
// else (entries before the catalog, assets, are skipped unread): use it to
// show what a bundle holds, e.g. the hops it can serve (Manifest.Hops),
// and Verify or Extract before trusting the contents.
func InspectCatalog(path string) (*Manifest, *catalog.Catalog, error) {
	f, err := OpenFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("inspect bundle: %w", err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	m, _, err := readManifest(tr, DefaultMaxFileSize)
	if err != nil {
		return nil, nil, err
	}
	var want File
	for _, file := range m.Files {
		if file.Path == CatalogName {
			want = file // validate made sure it is listed
		}
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil, bundleErr(CatalogName, "missing from the bundle")
		}
		if err != nil {
			return nil, nil, bundleErr("(entry before "+CatalogName+")", "unreadable tar header: %v", err)
		}
		if hdr.Name != CatalogName {
			continue
		}
		if err := checkHeader(hdr, DefaultMaxFileSize); err != nil {
			return nil, nil, err
		}
		if hdr.Size != want.Size {
			return nil, nil, bundleErr(CatalogName, "has %d bytes, the manifest says %d", hdr.Size, want.Size)
		}
		var buf bytes.Buffer
		if err := copyEntry(tr, &want, nil, make([]byte, 32<<10), &buf); err != nil {
			return nil, nil, err
		}
		cat, err := catalog.Parse(buf.Bytes(), CatalogName)
		if err != nil {
			return nil, nil, bundleErr(CatalogName, "%v", err)
		}
		return m, cat, nil
	}
}

// verifyResult is what a verified stream held.
type verifyResult struct {
	manifest      *Manifest
	manifestBytes []byte
	sig           []byte
	catalog       *catalog.Catalog
}

// sink receives the content of verified-so-far file entries. Whatever it
// wrote is discarded by the caller when verification fails later.
type sink interface {
	create(name string) (io.WriteCloser, error)
}

type rootSink struct{ root *os.Root }

func (s *rootSink) create(name string) (io.WriteCloser, error) {
	if dir := path.Dir(name); dir != "." {
		if err := s.root.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	return s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
}

// verifyStream is Verify, handing file contents to s when set.
func verifyStream(ctx context.Context, r io.Reader, opts VerifyOptions, s sink) (*verifyResult, error) {
	maxSize := opts.MaxFileSize
	if maxSize <= 0 {
		maxSize = DefaultMaxFileSize
	}
	if opts.PublicKey != nil && len(opts.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("verify bundle: public key has %d bytes, want %d", len(opts.PublicKey), ed25519.PublicKeySize)
	}
	tr := tar.NewReader(ctxio.Reader{Ctx: ctx, R: r})
	m, manifestBytes, err := readManifest(tr, maxSize)
	if err != nil {
		return nil, ctxOr(ctx, err)
	}
	res := &verifyResult{manifest: m, manifestBytes: manifestBytes}

	hdr, err := tr.Next()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, ctxOr(ctx, bundleErr("(entry after "+ManifestName+")", "unreadable tar header: %v", err))
	}
	if err == nil && hdr.Name == SignatureName {
		sig, serr := readSignature(tr, hdr, maxSize)
		if serr != nil {
			return nil, ctxOr(ctx, serr)
		}
		if opts.PublicKey != nil {
			if !ed25519.Verify(opts.PublicKey, manifestBytes, sig) {
				return nil, bundleErr(SignatureName, "the signature does not verify %s with the given public key: the manifest or its signature was altered, or another key signed it", ManifestName)
			}
		}
		res.sig = sig
		hdr, err = tr.Next()
	} else if opts.PublicKey != nil {
		return nil, bundleErr(SignatureName, "missing: the bundle is unsigned and a signature is required: a public key was given, so the bundle must be signed with it")
	} else if opts.RequireSignature {
		return nil, bundleErr(SignatureName, "missing: the bundle is unsigned and a signature is required")
	}

	want := make(map[string]*File, len(m.Files))
	for i := range m.Files {
		want[m.Files[i].Path] = &m.Files[i]
	}
	seen := make(map[string]bool, len(m.Files))
	contents := map[string]*bytes.Buffer{}
	buf := make([]byte, copyBufferSize)
	prev := ManifestName
	for ; err == nil; hdr, err = tr.Next() {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("verify bundle: %w", err)
		}
		if err := checkHeader(hdr, maxSize); err != nil {
			return nil, err
		}
		name := hdr.Name
		f, ok := want[name]
		switch {
		case name == ManifestName || name == SignatureName:
			return nil, bundleErr(name, "appears again after the start of the bundle")
		case !ok:
			return nil, bundleErr(name, "is not listed in the manifest")
		case seen[name]:
			return nil, bundleErr(name, "appears twice")
		case hdr.Size != f.Size:
			return nil, bundleErr(name, "has %d bytes, the manifest says %d", hdr.Size, f.Size)
		}
		seen[name] = true
		var keep *bytes.Buffer
		if contentLimit(name) > 0 {
			keep = new(bytes.Buffer)
			contents[name] = keep
		}
		if err := copyEntry(tr, f, s, buf, keep); err != nil {
			return nil, ctxOr(ctx, err)
		}
		prev = name
	}
	if !errors.Is(err, io.EOF) {
		return nil, ctxOr(ctx, bundleErr("(entry after "+prev+")", "unreadable tar header: %v", err))
	}
	for _, f := range m.Files {
		if !seen[f.Path] {
			return nil, bundleErr(f.Path, "missing from the bundle")
		}
	}
	// validate made sure the manifest lists the three, so they were read.
	cat, err := checkContents(m, contents[CatalogName].Bytes(), contents[indexName].Bytes(), contents[layoutMarkerName].Bytes())
	if err != nil {
		return nil, err
	}
	res.catalog = cat
	return res, nil
}

// copyEntry hashes an entry's content (handing it to s and keeping it in
// keep when they are set) and checks it against the manifest.
func copyEntry(tr *tar.Reader, f *File, s sink, buf []byte, keep *bytes.Buffer) error {
	h := sha256.New()
	w := &sinkWriter{hash: h}
	if keep != nil {
		w.hash = io.MultiWriter(h, keep)
	}
	if s != nil {
		out, err := s.create(f.Path)
		if err != nil {
			return fmt.Errorf("extract %s: %w", f.Path, err)
		}
		defer out.Close()
		w.out = out
	}
	n, err := io.CopyBuffer(w, tr, buf)
	if w.err != nil {
		return fmt.Errorf("extract %s: %w", f.Path, w.err)
	}
	if err != nil {
		return bundleErr(f.Path, "unreadable after %d of %d bytes: %v", n, f.Size, err)
	}
	if n != f.Size {
		return bundleErr(f.Path, "has %d bytes, the manifest says %d", n, f.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
		return bundleErr(f.Path, "sha256 %s, the manifest says %s", got, f.SHA256)
	}
	if w.out != nil {
		if err := w.out.Close(); err != nil {
			return fmt.Errorf("extract %s: %w", f.Path, err)
		}
	}
	return nil
}

// sinkWriter hashes (and keeps) and, when out is set, writes; it remembers
// a write error so it is not mistaken for a defect of the bundle.
type sinkWriter struct {
	hash io.Writer
	out  io.WriteCloser
	err  error
}

func (w *sinkWriter) Write(p []byte) (int, error) {
	w.hash.Write(p) // neither a hash nor a bytes.Buffer fails
	if w.out != nil {
		if _, err := w.out.Write(p); err != nil {
			w.err = err
			return 0, err
		}
	}
	return len(p), nil
}

// readManifest reads and validates the first entry, the manifest.
func readManifest(tr *tar.Reader, maxSize int64) (*Manifest, []byte, error) {
	hdr, err := tr.Next()
	if errors.Is(err, io.EOF) {
		return nil, nil, bundleErr(ManifestName, "missing: the file is empty or not a tar archive")
	}
	if err != nil {
		return nil, nil, bundleErr(ManifestName, "unreadable tar header (is this a tmbox bundle?): %v", err)
	}
	if err := checkHeader(hdr, maxSize); err != nil {
		return nil, nil, err
	}
	if hdr.Name != ManifestName {
		return nil, nil, bundleErr(hdr.Name, "the first entry must be %s (is this a tmbox bundle?)", ManifestName)
	}
	if hdr.Size > maxManifestSize {
		return nil, nil, bundleErr(ManifestName, "claims %d bytes, more than the limit of %s for a manifest", hdr.Size, catalog.SizeString(maxManifestSize))
	}
	data, err := io.ReadAll(io.LimitReader(tr, maxManifestSize+1))
	if err != nil {
		return nil, nil, bundleErr(ManifestName, "unreadable: %v", err)
	}
	m, err := decodeManifest(data, maxSize)
	if err != nil {
		return nil, nil, bundleErr(ManifestName, "%v", err)
	}
	return m, data, nil
}

// decodeManifest decodes and validates a manifest entry's bytes: strict
// JSON (no unknown fields, nothing after it) of at most maxManifestSize
// bytes, passing validate, listing no file larger than maxSize.
func decodeManifest(data []byte, maxSize int64) (*Manifest, error) {
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("%d bytes, more than the limit of %s for a manifest", len(data), catalog.SizeString(maxManifestSize))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a bundle manifest: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the manifest")
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if f.Size > maxSize {
			return nil, fmt.Errorf("lists %s with %d bytes, more than the limit of %d", f.Path, f.Size, maxSize)
		}
	}
	return &m, nil
}

// readSignature reads the signature entry: base64 of 64 bytes.
func readSignature(tr *tar.Reader, hdr *tar.Header, maxSize int64) ([]byte, error) {
	if err := checkHeader(hdr, maxSize); err != nil {
		return nil, err
	}
	if hdr.Size > maxSignatureSize {
		return nil, bundleErr(SignatureName, "claims %d bytes, more than a signature has", hdr.Size)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return nil, bundleErr(SignatureName, "unreadable: %v", err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, bundleErr(SignatureName, "not base64: %v", err)
	}
	if len(sig) != ed25519.SignatureSize {
		return nil, bundleErr(SignatureName, "has %d bytes, an ed25519 signature has %d", len(sig), ed25519.SignatureSize)
	}
	return sig, nil
}

// checkHeader refuses anything but a regular file with a safe relative
// path and a size within the limit.
func checkHeader(hdr *tar.Header, maxSize int64) error {
	name := hdr.Name
	switch {
	case name == "":
		return bundleErr("(unnamed)", "an entry without a name")
	case strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`) || (len(name) > 1 && name[1] == ':'):
		return bundleErr(name, "absolute path")
	case slices.Contains(strings.FieldsFunc(name, func(r rune) bool { return r == '/' || r == '\\' }), ".."):
		return bundleErr(name, "path escapes with ..")
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
	case tar.TypeSymlink:
		return bundleErr(name, "symbolic link (to %q): a bundle holds only regular files", hdr.Linkname)
	case tar.TypeLink:
		return bundleErr(name, "hard link (to %q): a bundle holds only regular files", hdr.Linkname)
	case tar.TypeChar:
		return bundleErr(name, "character device: a bundle holds only regular files")
	case tar.TypeBlock:
		return bundleErr(name, "block device: a bundle holds only regular files")
	case tar.TypeFifo:
		return bundleErr(name, "named pipe: a bundle holds only regular files")
	case tar.TypeDir:
		return bundleErr(name, "directory: a bundle holds only regular files")
	default:
		return bundleErr(name, "entry type %q: a bundle holds only regular files", hdr.Typeflag)
	}
	if !safeBundlePath(name) {
		return bundleErr(name, "unsafe path: want a clean relative path of letters, digits, '.', '_' and '-'")
	}
	if hdr.Size < 0 || hdr.Size > maxSize {
		return bundleErr(name, "claims %d bytes, more than the limit of %d", hdr.Size, maxSize)
	}
	return nil
}

// safeBundlePath reports whether p is a clean relative slash path without
// "." or ".." elements, made of portable characters.
func safeBundlePath(p string) bool {
	return catalog.SafePath(p)
}

// validate checks the manifest's form: schema, release, sorted unique safe
// file paths with digests, blobs named after their digest, and images
// whose blobs are in the files.
func (m *Manifest) validate() error {
	if m.Schema != Schema {
		return fmt.Errorf("unsupported schema %q (this tmbox reads %s)", m.Schema, Schema)
	}
	if !catalog.ValidReleaseName(m.Release) {
		return fmt.Errorf("release %q is not a Knative minor like \"1.22\"", m.Release)
	}
	if !catalog.DigestPinned(m.KindNodeImage) {
		return fmt.Errorf("kind node image %q is not pinned by digest", m.KindNodeImage)
	}
	if len(m.Platforms) == 0 {
		return errors.New("no platforms")
	}
	for i, p := range m.Platforms {
		if err := ValidPlatform(p); err != nil {
			return err
		}
		if i > 0 && m.Platforms[i-1] >= p {
			return fmt.Errorf("platform %s: platforms are not sorted and unique", p)
		}
	}
	files := map[string]File{}
	for i, f := range m.Files {
		switch {
		case !safeBundlePath(f.Path) || f.Path == ManifestName || f.Path == SignatureName:
			return fmt.Errorf("file %q: unsafe or reserved path", f.Path)
		case i > 0 && m.Files[i-1].Path >= f.Path:
			return fmt.Errorf("file %s: files are not sorted and unique", f.Path)
		case f.Size < 0:
			return fmt.Errorf("file %s: negative size", f.Path)
		case !catalog.ValidSHA256(f.SHA256):
			return fmt.Errorf("file %s: sha256 %q is not 64 lowercase hex digits", f.Path, f.SHA256)
		}
		if blob, ok := strings.CutPrefix(f.Path, blobsPrefix); ok && blob != f.SHA256 {
			return fmt.Errorf("file %s: an OCI blob must be named after its sha256 %s", f.Path, f.SHA256)
		}
		if limit := contentLimit(f.Path); limit > 0 && f.Size > limit {
			return fmt.Errorf("file %s: %d bytes, more than the limit of %s", f.Path, f.Size, catalog.SizeString(limit))
		}
		files[f.Path] = f
	}
	for _, p := range []string{CatalogName, indexName, layoutMarkerName} {
		if _, ok := files[p]; !ok {
			return fmt.Errorf("file %s is not listed", p)
		}
	}
	if len(m.Images) == 0 {
		return errors.New("no images")
	}
	for i, img := range m.Images {
		hexDigest, ok := strings.CutPrefix(img.Digest, "sha256:")
		switch {
		case img.Ref == "":
			return fmt.Errorf("image %d: no reference", i)
		case i > 0 && m.Images[i-1].Ref >= img.Ref:
			return fmt.Errorf("image %s: images are not sorted and unique", img.Ref)
		case !ok || !catalog.ValidSHA256(hexDigest):
			return fmt.Errorf("image %s: digest %q is not sha256:<64 lowercase hex digits>", img.Ref, img.Digest)
		case img.MediaType == "":
			return fmt.Errorf("image %s: no media type", img.Ref)
		case img.Size < 0:
			return fmt.Errorf("image %s: negative size", img.Ref)
		}
		if _, ok := files[blobsPrefix+hexDigest]; !ok {
			return fmt.Errorf("image %s: blob %s is not listed", img.Ref, img.Digest)
		}
	}
	if !slices.ContainsFunc(m.Images, func(img Image) bool { return img.Ref == m.KindNodeImage }) {
		return fmt.Errorf("kind node image %s is not among the images", m.KindNodeImage)
	}
	if err := ValidateImageOverrides(m.ImageOverrides); err != nil {
		return fmt.Errorf("imageOverrides: %v", err) // not the user's overrides: no *OverrideError
	}
	if err := m.validateAddons(files); err != nil {
		return err
	}
	return m.validateReleases()
}

// validateReleases checks a multi-release manifest's Releases: at least
// two (a single-release manifest omits the list), valid names strictly
// oldest first, kind node images pinned by digest and among the images,
// and the newest equal to Release, Components and KindNodeImage.
func (m *Manifest) validateReleases() error {
	if m.Releases == nil {
		return nil
	}
	if len(m.Releases) < 2 {
		return fmt.Errorf("releases lists %d release(s): a bundle of one release names it in release only", len(m.Releases))
	}
	var prev *version.Version
	for _, e := range m.Releases {
		if !catalog.ValidReleaseName(e.Name) {
			return fmt.Errorf("releases: %s is not a Knative minor like \"1.22\"", catalog.QuoteShort(e.Name))
		}
		v, err := version.NewVersion(e.Name)
		if err != nil {
			return fmt.Errorf("releases: %s: %w", e.Name, err)
		}
		if prev != nil && !v.GreaterThan(prev) {
			return fmt.Errorf("releases: %s follows %s: releases are listed oldest first, each once", e.Name, prev.Original())
		}
		prev = v
		if !catalog.DigestPinned(e.KindNodeImage) {
			return fmt.Errorf("releases: %s: kind node image %s is not pinned by digest", e.Name, catalog.QuoteShort(e.KindNodeImage))
		}
		if !slices.ContainsFunc(m.Images, func(img Image) bool { return img.Ref == e.KindNodeImage }) {
			return fmt.Errorf("releases: %s: kind node image %s is not among the images", e.Name, e.KindNodeImage)
		}
	}
	newest := m.Releases[len(m.Releases)-1]
	if newest.Name != m.Release || !slices.Equal(newest.Components, m.Components) || newest.KindNodeImage != m.KindNodeImage {
		return fmt.Errorf("releases: the newest, %s, is not the manifest's release %s with its components and kind node image", newest.Name, m.Release)
	}
	return nil
}

// ctxOr returns the context's error (wrapped) when it is done, since a
// cancelled read is not the bundle's fault; err otherwise.
func ctxOr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("verify bundle: %w", cerr)
	}
	return err
}
