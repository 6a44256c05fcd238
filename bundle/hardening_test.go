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
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/tmbox/tmbox/catalog"
)

// rebuildBundle re-tars a bundle after edit changed its files (path →
// content; the manifest and signature entries are not among them) and
// manifest, recomputing every file's size and sha256 in the manifest, as an
// attacker who rebuilds a bundle would: its digests are consistent. It signs
// the manifest with key when key is set.
func rebuildBundle(t testing.TB, data []byte, key ed25519.PrivateKey, edit func(files map[string][]byte, m *Manifest)) []byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	files := map[string][]byte{}
	var m Manifest
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		content, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch hdr.Name {
		case ManifestName:
			if err := json.Unmarshal(content, &m); err != nil {
				t.Fatal(err)
			}
		case SignatureName:
		default:
			files[hdr.Name] = content
		}
	}
	edit(files, &m)
	m.Files = nil
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for p := range files {
			if !yield(p) {
				return
			}
		}
	}) {
		sum := sha256.Sum256(files[p])
		m.Files = append(m.Files, File{Path: p, Size: int64(len(files[p])), SHA256: hex.EncodeToString(sum[:])})
	}
	manifest, err := marshalManifest(&m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	write := func(name string, content []byte) {
		if err := tw.WriteHeader(bundleHeader(name, int64(len(content)))); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(content); err != nil {
			t.Fatal(err)
		}
	}
	write(ManifestName, manifest)
	if key != nil {
		write(SignatureName, []byte(base64.StdEncoding.EncodeToString(ed25519.Sign(key, manifest))))
	}
	for _, f := range m.Files {
		write(f.Path, files[f.Path])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// editIndex rewrites the layout's index.json.
func editIndex(t testing.TB, files map[string][]byte, edit func(im *v1.IndexManifest)) {
	t.Helper()
	im, err := v1.ParseIndexManifest(bytes.NewReader(files[indexName]))
	if err != nil {
		t.Fatal(err)
	}
	edit(im)
	if files[indexName], err = json.Marshal(im); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAndExtractAgree feeds Verify (tmbox bundle verify) and Extract
// (install --bundle) the same bundles, tampered with consistent digests,
// and expects the same verdict, naming the same entry, from both
// (hardening item 3).
func TestVerifyAndExtractAgree(t *testing.T) {
	f := newBundleFixture(t, 256)
	key, _ := GenerateSigningKey()
	pub := key.Public().(ed25519.PublicKey)
	opts := f.options()
	opts.SignKey = key
	_, signed, m := f.create(t, opts)
	var asset string
	for _, file := range m.Files {
		if strings.HasPrefix(file.Path, AssetsDir+"/") {
			asset = file.Path
			break
		}
	}
	tmController := f.host + "/triggermesh/controller:1.0.0"

	tests := []struct {
		name   string
		edit   func(files map[string][]byte, m *Manifest)
		entry  string
		reason string // "" with entry "" = the bundle verifies
	}{
		{"untouched", func(map[string][]byte, *Manifest) {}, "", ""},
		{"catalog names other images", func(files map[string][]byte, _ *Manifest) {
			files[CatalogName] = bytes.ReplaceAll(files[CatalogName], []byte(tmController), []byte(f.host+"/triggermesh/evil:1.0.0"))
		}, ManifestName, "images differ from release 1.30's images in catalog.yaml: the manifest lists " + tmController + ", the catalog does not"},
		{"catalog drops an image the manifest lists", func(files map[string][]byte, _ *Manifest) {
			files[CatalogName] = bytes.Replace(files[CatalogName], []byte("\n      - "+f.host+"/istio/proxyv2:1.0.0"), nil, 1)
		}, ManifestName, "the manifest lists " + f.host + "/istio/proxyv2:1.0.0, the catalog does not"},
		{"catalog does not parse", func(files map[string][]byte, _ *Manifest) {
			files[CatalogName] = []byte("releases: [")
		}, CatalogName, "catalog.yaml"},
		{"catalog holds another release", func(files map[string][]byte, _ *Manifest) {
			c := bytes.Replace(files[CatalogName], []byte(`name: "1.30"`), []byte(`name: "1.31"`), 1)
			files[CatalogName] = bytes.ReplaceAll(c, []byte("version: 1.30.0"), []byte("version: 1.31.0"))
		}, CatalogName, "does not hold exactly release 1.30"},
		{"manifest components differ from the catalog's", func(_ map[string][]byte, m *Manifest) {
			m.Components[0].Version = "9.9.9"
		}, CatalogName, "differs from the manifest's"},
		{"index misses an image", func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) { im.Manifests = im.Manifests[1:] })
		}, indexName, "does not name " + m.Images[0].Ref + " as " + m.Images[0].Digest},
		{"index names an image with another digest", func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) { im.Manifests[0].Digest = im.Manifests[1].Digest })
		}, indexName, "does not name"},
		{"index names an extra image", func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) {
				extra := im.Manifests[0]
				extra.Annotations = map[string]string{refNameAnnotation: "example.com/extra:1.0"}
				im.Manifests = append(im.Manifests, extra)
			})
		}, indexName, "names example.com/extra:1.0, which the manifest does not list"},
		{"index with an unnamed image", func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) {
				im.Manifests = append(im.Manifests, v1.Descriptor{MediaType: im.Manifests[0].MediaType, Digest: im.Manifests[0].Digest, Size: im.Manifests[0].Size})
			})
		}, indexName, "without a " + refNameAnnotation + " annotation"},
		{"index media type", func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) { im.Manifests[0].MediaType = "application/vnd.oci.image.index.v1+json" })
		}, indexName, "media type"},
		{"index size", func(files map[string][]byte, _ *Manifest) {
			editIndex(t, files, func(im *v1.IndexManifest) { im.Manifests[0].Size++ })
		}, indexName, "bytes, its blob has"},
		{"index not JSON", func(files map[string][]byte, _ *Manifest) { files[indexName] = []byte("{") }, indexName, "not an OCI image index"},
		{"oci-layout", func(files map[string][]byte, _ *Manifest) { files[layoutMarkerName] = []byte("{}") }, layoutMarkerName, "not an OCI image layout marker"},
		{"asset the catalog pins differently", func(files map[string][]byte, _ *Manifest) {
			files[asset] = append(files[asset], "# evil\n"...)
		}, asset, "catalog.yaml pins"},
		{"asset missing", func(files map[string][]byte, _ *Manifest) { delete(files, asset) }, asset, "missing: catalog.yaml pins it"},
		{"extra asset", func(files map[string][]byte, _ *Manifest) { files[AssetsDir+"/extra.yaml"] = []byte("kind: Secret\n") }, AssetsDir + "/extra.yaml", "is not an asset of release 1.30"},
		{"extra file", func(files map[string][]byte, _ *Manifest) { files["extra.txt"] = []byte("x") }, "extra.txt", "is not part of a bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Signed by the key (as if the attacker held it): the content
			// checks do not rely on the signature.
			bad := rebuildBundle(t, signed, key, tt.edit)
			vo := VerifyOptions{PublicKey: pub, RequireSignature: true}
			_, verr := Verify(context.Background(), bytes.NewReader(bad), vo)
			path := filepath.Join(t.TempDir(), "bad.tar")
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "extract")
			b, eerr := Extract(context.Background(), path, dir, vo)
			if tt.entry == "" {
				if verr != nil || eerr != nil {
					t.Fatalf("Verify: %v; Extract: %v", verr, eerr)
				}
				if _, err := catalog.Load(b.CatalogFile); err != nil {
					t.Error(err)
				}
				return
			}
			if verr == nil || eerr == nil {
				t.Fatalf("verdicts: Verify %v, Extract %v; want both to refuse", verr, eerr)
			}
			if verr.Error() != eerr.Error() {
				t.Errorf("verdicts differ:\nVerify:  %v\nExtract: %v", verr, eerr)
			}
			checkBundleError(t, "Verify", verr, tt.entry, tt.reason)
			checkBundleError(t, "Extract", eerr, tt.entry, tt.reason)
			assertNothingIn(t, dir)
		})
	}
}

// TestPublicKeyRequiresSignature: a key without a signature is no check, so
// giving a public key refuses an unsigned bundle, or one whose signature
// entry was stripped, even without RequireSignature (hardening item 4).
func TestPublicKeyRequiresSignature(t *testing.T) {
	f := newBundleFixture(t, 256)
	key, _ := GenerateSigningKey()
	pub := key.Public().(ed25519.PublicKey)
	opts := f.options()
	opts.SignKey = key
	_, signed, _ := f.create(t, opts)
	_, unsigned, _ := f.create(t, f.options())
	stripped := rewriteBundle(t, signed, nil)
	for name, data := range map[string][]byte{"unsigned": unsigned, "signature stripped": stripped} {
		t.Run(name, func(t *testing.T) {
			_, verr := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{PublicKey: pub})
			checkBundleError(t, "Verify", verr, SignatureName, "a public key was given, so the bundle must be signed with it")
			path := filepath.Join(t.TempDir(), "b.tar")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			_, eerr := Extract(context.Background(), path, dir, VerifyOptions{PublicKey: pub})
			checkBundleError(t, "Extract", eerr, SignatureName, "a public key was given")
			assertNothingIn(t, dir)
			// Without a key it is accepted, as an unsigned bundle.
			if _, err := Verify(context.Background(), bytes.NewReader(data), VerifyOptions{}); err != nil {
				t.Errorf("without a key: %v", err)
			}
		})
	}
	if _, err := Verify(context.Background(), bytes.NewReader(signed), VerifyOptions{PublicKey: pub}); err != nil {
		t.Errorf("signed with the key: %v", err)
	}
	if _, err := Verify(context.Background(), bytes.NewReader(signed), VerifyOptions{PublicKey: pub[:10]}); err == nil || !strings.Contains(err.Error(), "public key has 10 bytes") {
		t.Errorf("short key: %v", err)
	}
}

// TestValidPlatform: platforms are os/arch[/variant] of lower-case
// identifiers (hardening item 11).
func TestValidPlatform(t *testing.T) {
	for _, ok := range []string{"linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm64/v8", "linux/386", "linux/ppc64le", "linux/s390x", "windows/amd64"} {
		if err := ValidPlatform(ok); err != nil {
			t.Errorf("ValidPlatform(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"../../x", "..", "linux", "amd64", "linux/", "/amd64", "Linux/amd64", "linux/AMD64", "linux/amd64/", "linux/amd64:10.0", "a/b/c/d", "linux/amd 64", "linux/-x", "linux/arm/.v7", strings.Repeat("x", 1000) + "/../y"} {
		err := ValidPlatform(bad)
		if err == nil {
			t.Errorf("ValidPlatform(%q) = nil, want an error", bad)
			continue
		}
		if len(err.Error()) > 300 {
			t.Errorf("ValidPlatform: an error of %d bytes", len(err.Error()))
		}
	}
}

// fuzzManifest is a small manifest that passes validate.
func fuzzManifest() *Manifest {
	d := strings.Repeat("4", 64)
	blob := strings.Repeat("a", 64)
	sha := strings.Repeat("b", 64)
	kind := "kindest/node:v1.34.0@sha256:" + d
	m := &Manifest{
		Schema: Schema, Release: "1.30", KindNodeImage: kind, Platforms: []string{"linux/amd64", "linux/arm64"},
		Components: []catalog.ComponentRef{{Name: catalog.Istio, Version: "1.37.0"}},
		Files: []File{
			{Path: AssetsDir + "/istio/1.37.0/istio.yaml", Size: 10, SHA256: sha},
			{Path: CatalogName, Size: 100, SHA256: sha},
			{Path: blobsPrefix + blob, Size: 300, SHA256: blob},
			{Path: indexName, Size: 200, SHA256: sha},
			{Path: layoutMarkerName, Size: 30, SHA256: sha},
		},
		Images: []Image{{Ref: kind, Digest: "sha256:" + blob, MediaType: "application/vnd.oci.image.manifest.v1+json", Size: 300}},
	}
	return m
}

// TestManifestLimits: the manifest entry and the entries read into memory
// have size limits, named in the errors (hardening item 16).
func TestManifestLimits(t *testing.T) {
	huge := evilTar(t, nil, &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Size: 17 << 20, Mode: 0o644}, nil)
	_, err := Verify(context.Background(), bytes.NewReader(huge), VerifyOptions{})
	checkBundleError(t, "Verify", err, ManifestName, "more than the limit of 16 MiB")
	for p, limit := range map[string]string{CatalogName: "8 MiB", indexName: "8 MiB", layoutMarkerName: "1 KiB"} {
		m := fuzzManifest()
		i := slices.IndexFunc(m.Files, func(f File) bool { return f.Path == p })
		m.Files[i].Size = 9 << 20
		data, _ := marshalManifest(m)
		if _, err := decodeManifest(data, DefaultMaxFileSize); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "more than the limit of "+limit) {
			t.Errorf("%s of 9 MiB: %v", p, err)
		}
	}
	if _, err := decodeManifest(make([]byte, maxManifestSize+1), DefaultMaxFileSize); err == nil || !strings.Contains(err.Error(), "16 MiB") {
		t.Errorf("oversized manifest: %v", err)
	}
}

// FuzzDecodeManifest: the manifest decoder never panics, and what it
// accepts re-encodes to a manifest it accepts again, unchanged.
func FuzzDecodeManifest(f *testing.F) {
	valid, err := marshalManifest(fuzzManifest())
	if err != nil {
		f.Fatal(err)
	}
	if _, err := decodeManifest(valid, DefaultMaxFileSize); err != nil {
		f.Fatalf("the seed manifest is invalid: %v", err)
	}
	multi := fuzzManifest()
	multi.Releases = []ReleaseEntry{
		{Name: "1.29", Components: multi.Components, KindNodeImage: multi.KindNodeImage},
		{Name: "1.30", Components: multi.Components, KindNodeImage: multi.KindNodeImage},
	}
	multiData, err := marshalManifest(multi)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := decodeManifest(multiData, DefaultMaxFileSize); err != nil {
		f.Fatalf("the multi-release seed manifest is invalid: %v", err)
	}
	withAddon := fuzzManifest()
	archive := File{Path: "addons/cache.tgz", Size: 3, SHA256: strings.Repeat("c", 64)}
	withAddon.Files = append(withAddon.Files, archive)
	slices.SortFunc(withAddon.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	withAddon.Addons = []AddonEntry{{Name: "cache", Chart: "redis", Version: "19.0.1", Path: archive.Path, SHA256: archive.SHA256,
		ChartDigest: "sha256:" + archive.SHA256, Images: []string{withAddon.Images[0].Ref}}}
	addonData, err := marshalManifest(withAddon)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := decodeManifest(addonData, DefaultMaxFileSize); err != nil {
		f.Fatalf("the add-on seed manifest is invalid: %v", err)
	}
	f.Add(valid)
	f.Add(multiData)
	f.Add(addonData)
	f.Add(bytes.Replace(addonData, []byte(`"images": [`), []byte(`"images": [], "x": [`), 1))
	f.Add(bytes.Replace(multiData, []byte(`"1.29"`), []byte(`"1.31"`), 1))
	f.Add(append(bytes.Clone(valid), "{}"...))
	f.Add(bytes.Replace(valid, []byte(`"linux/amd64"`), []byte(`"../../x"`), 1))
	f.Add(bytes.Replace(valid, []byte(`"images/index.json"`), []byte(`"images/../index.json"`), 1))
	f.Add([]byte(`{"schema":"tmbox.dev/bundle/v1","files":[{"path":"images/blobs/sha256/x","size":-1}]}`))
	f.Add([]byte("null"))
	f.Add([]byte(""))
	f.Add([]byte(`{"schema": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeManifest(data, 1<<40)
		if err != nil {
			if m != nil {
				t.Fatal("manifest returned with an error")
			}
			return
		}
		again, err := marshalManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeManifest(again, 1<<40)
		if err != nil {
			t.Fatalf("a valid manifest does not re-decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-decoded manifest differs:\n%+v\n%+v", m, m2)
		}
	})
}
