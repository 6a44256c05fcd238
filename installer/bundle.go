package installer

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/manifests"
)

// validateAirGap checks the bundle and registry options.
func (o Options) validateAirGap() []error {
	var errs []error
	bad := func(setting string, err error) { errs = append(errs, &SettingError{Setting: setting, Err: err}) }
	if o.Registry != "" {
		if err := validRegistry("--registry", o.Registry); err != nil {
			bad("registry", err)
		} else if o.CreateCluster {
			if err := o.validKindRegistry(); err != nil {
				bad("registry", err)
			}
		}
	}
	if o.Bundle == "" {
		if o.Registry != "" {
			bad("registry", errors.New("--registry needs --bundle: tmbox pushes the bundle's images there"))
		}
		if o.RequireSignature || o.BundleKey != "" {
			bad("bundle-key", errors.New("--require-signature and --bundle-key need --bundle"))
		}
		return errs
	}
	if fi, err := os.Stat(o.Bundle); err != nil || !fi.Mode().IsRegular() {
		bad("bundle", fmt.Errorf("--bundle %s is not a readable file", catalog.ShortPath(o.Bundle)))
	}
	if o.Mirror != "" {
		bad("mirror", errors.New("--bundle and --mirror are exclusive: the bundle holds the manifests"))
	}
	if o.CatalogFile != "" {
		bad("catalog", errors.New("--bundle and --catalog are exclusive: the bundle holds its catalog"))
	}
	if o.BundleKey != "" {
		if _, err := o.bundlePublicKey(); err != nil {
			bad("bundle-key", err)
		}
	}
	// A bundle into an existing cluster needs a registry: given, or the
	// one the state recorded (checked once the state is read: feedFromState).
	return errs
}

// validRegistry checks "HOST[:PORT][/PREFIX]" given with flag: the
// catalog's rule for registry hosts, and a port in range.
func validRegistry(flag, r string) error {
	if err := catalog.ValidRegistryHost(r); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	host, _, _ := strings.Cut(r, "/")
	if _, port, err := net.SplitHostPort(host); err == nil {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s %s: port %s is not a number from 1 to 65535", flag, catalog.QuoteShort(r), port)
		}
	}
	return nil
}

// missingFromBundleError says the bundle does not hold the release a run
// needs, with the bundle create that makes one: of the release (an
// install), or of the whole walk from the installed release (an upgrade:
// From).
type missingFromBundleError struct {
	Bundle  string
	Holds   []string
	Release string
	// From is the installed release an upgrade moves from ("": install).
	From string
}

func (e *missingFromBundleError) Error() string { return missingReleaseAdvice(e) }

// missingReleaseAdvice is missingFromBundleError's message.
func missingReleaseAdvice(e *missingFromBundleError) string {
	create := fmt.Sprintf("`tmbox bundle create --release %s`", e.Release)
	if e.From != "" {
		create = fmt.Sprintf("`tmbox bundle create --from %s --to %s`", e.From, e.Release)
	}
	return fmt.Sprintf("bundle %s holds release %s: missing %s (%s makes one that does)", e.Bundle, strings.Join(e.Holds, ", "), e.Release, create)
}

// validKindRegistry checks that the kind cluster tmbox creates can pull
// from Registry: not this host's loopback (inside a node that is the node
// itself), and a host containerd's hosts directory can name.
func (o Options) validKindRegistry() error {
	host, _, _ := strings.Cut(o.Registry, "/")
	if loopbackHost(host) {
		return fmt.Errorf("--registry %s with --create-cluster: %s is this host's loopback, which the kind nodes cannot reach (inside a node it is the node itself); run the registry on an address of this host the nodes reach and give that, e.g. the container bridge's gateway (the address of docker0, often 172.17.0.1) or the host's LAN address",
			catalog.QuoteShort(o.Registry), host)
	}
	if _, err := manifests.KindRegistryHosts(*o.registryMirror(o.kindDefaults().Name)); err != nil {
		return fmt.Errorf("--registry %s with --create-cluster: %w", catalog.QuoteShort(o.Registry), err)
	}
	return nil
}

// loopbackHost reports whether a registry's HOST[:PORT] is localhost or a
// loopback (or unspecified) address.
func loopbackHost(hostport string) bool {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	h = strings.ToLower(strings.Trim(h, "[]"))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && (ip.IsLoopback() || ip.IsUnspecified())
}

// registryMirror is the containerd mirror of a kind cluster fed by
// Registry: its host, reached with the scheme tmbox pushes there with
// (go-containerregistry's: http for localhost, loopback and RFC 1918
// addresses, https otherwise). The CA (--registry-ca, https only) is added
// once its file is read (withRegistryCA). HostsDir is where the kind
// provider writes the hosts files: StateDir/<cluster>/certs.d.
func (o Options) registryMirror(cluster string) *manifests.RegistryMirror {
	host, _, _ := strings.Cut(o.Registry, "/")
	scheme := "https"
	if reg, err := name.NewRegistry(host); err == nil {
		scheme = reg.Scheme()
	}
	dir := filepath.Join(o.stateDir(), cluster, "certs.d")
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &manifests.RegistryMirror{Endpoint: scheme + "://" + host, Registries: []string{host}, HostsDir: dir}
}

// withRegistryCA adds the registry's CA (the PEM bundle --registry-ca
// read) to a kind config's https registry mirror, for containerd to trust.
func withRegistryCA(kc manifests.KindConfig, ca []byte) manifests.KindConfig {
	if m := kc.RegistryMirror; m != nil && len(ca) > 0 && strings.HasPrefix(m.Endpoint, "https://") {
		mirror := *m
		mirror.CA = ca
		kc.RegistryMirror = &mirror
	}
	return kc
}

// bundlePublicKey reads and parses --bundle-key.
func (o Options) bundlePublicKey() (ed25519.PublicKey, error) {
	k, err := bundle.ReadPublicKeyFile(o.BundleKey)
	if err != nil {
		return nil, fmt.Errorf("--bundle-key %s: %w", o.BundleKey, err)
	}
	return k, nil
}

// openBundle verifies the bundle while extracting it into a fresh work
// directory under the state dir. Nothing is read from a bundle that fails.
func (o Options) openBundle(ctx context.Context) (*bundle.Extracted, func(), error) {
	vo := bundle.VerifyOptions{RequireSignature: o.RequireSignature}
	if o.BundleKey != "" {
		var err error
		if vo.PublicKey, err = o.bundlePublicKey(); err != nil {
			return nil, nil, err
		}
	}
	if err := os.MkdirAll(o.stateDir(), 0o700); err != nil {
		return nil, nil, fmt.Errorf("state dir: %w", err)
	}
	work, err := os.MkdirTemp(o.stateDir(), "bundle-")
	if err != nil {
		return nil, nil, fmt.Errorf("bundle work dir: %w", err)
	}
	cleanup := func() { _ = os.RemoveAll(work) }
	o.Reporter.Report(Event{Time: time.Now(), Type: EventInfo, Phase: PhasePreflight, Message: "verifying bundle " + o.Bundle})
	b, err := bundle.Extract(ctx, o.Bundle, work, vo)
	if err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("bundle %s: %w", o.Bundle, err)
	}
	signed := "unsigned"
	if b.Signed {
		signed = "signed"
		if vo.PublicKey != nil {
			signed = "signature verified"
		}
	}
	o.Reporter.Report(Event{Time: time.Now(), Type: EventInfo, Phase: PhasePreflight, Message: fmt.Sprintf("bundle verified (%s): release %s, %d files, %d images", signed, b.Manifest.Release, len(b.Manifest.Files), len(b.Manifest.Images))})
	return b, cleanup, nil
}

// registryMapping maps every image of the bundle to its reference in the
// private registry, digest kept. Istio's injection values name images by
// hub, so the hubs move too.
func registryMapping(m *bundle.Manifest, registry string) (map[string]string, error) {
	out := map[string]string{}
	for _, img := range m.Images {
		to, err := bundle.RegistryRef(registry, img.Ref, img.Digest)
		if err != nil {
			return nil, err
		}
		out[img.Ref] = to
		if i := strings.LastIndex(img.Ref, "/"); i > 0 && strings.Contains(img.Ref[i:], "proxyv2:") {
			hub := img.Ref[:i]
			if j := strings.LastIndex(to, "/"); j > 0 {
				out[hub] = to[:j]
			}
		}
	}
	return out, nil
}

// mapImage returns the reference an image of the release is installed as
// (its image override, the private registry).
func (e *env) mapImage(ref string) string {
	if to, ok := e.render.forRelease(e.release).imageMap[ref]; ok {
		return to
	}
	return ref
}

// pushImages pushes the bundle's images to the registry.
func (e *env) pushImages(ctx context.Context) (string, error) {
	mapping, err := bundle.Push(ctx, e.bundle, e.opts.Registry, remote.WithUserAgent("tmbox"), remote.WithAuthFromKeychain(authn.DefaultKeychain))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("pushed %d images to %s (digests kept)", len(mapping), e.opts.Registry), nil
}

// checkPodRegistry verifies that every pod in the release's namespaces
// runs images from the private registry.
func (e *env) checkPodRegistry(ctx context.Context) ([]string, int, error) {
	namespaces := map[string]bool{}
	for _, objs := range e.desired.byComponent {
		for _, o := range objs {
			if ns := o.GetNamespace(); ns != "" {
				namespaces[ns] = true
			}
		}
	}
	prefix := strings.TrimSuffix(e.opts.Registry, "/") + "/"
	var problems []string
	n := 0
	for ns := range namespaces {
		pods, err := e.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, 0, fmt.Errorf("list pods in %s: %w", ns, err)
		}
		for _, p := range pods.Items {
			for _, c := range append(append(p.Spec.InitContainers, p.Spec.Containers...), ephemeral(p.Spec.EphemeralContainers)...) {
				n++
				if !strings.HasPrefix(c.Image, prefix) {
					problems = append(problems, fmt.Sprintf("pod %s/%s container %s runs %s, not from %s", ns, p.Name, c.Name, c.Image, e.opts.Registry))
				}
			}
		}
	}
	return problems, n, nil
}

func ephemeral(ecs []corev1.EphemeralContainer) []corev1.Container {
	out := make([]corev1.Container, 0, len(ecs))
	for _, ec := range ecs {
		out = append(out, corev1.Container(ec.EphemeralContainerCommon))
	}
	return out
}

// loadKindImages imports the bundle's images into every kind node, named
// by their original references so the manifests need no rewriting.
func (e *env) loadKindImages(ctx context.Context) (string, error) {
	if e.kind == nil {
		return "", errors.New("loading a bundle's images needs the kind provider")
	}
	if err := e.kind.LoadImages(ctx, func(w io.Writer) error { return writeOCIArchive(w, e.bundle.LayoutDir, nil) }); err != nil {
		return "", err
	}
	e.bundleInNodes = true
	return fmt.Sprintf("loaded %d images into the nodes of kind cluster %s", len(e.bundle.Manifest.Images), e.kind.Config.Name), nil
}

// releaseImages are the bundle's images of the release the run moves to
// (e.release), but its kind node image: no pod runs that one, kind creates
// nodes from it.
func (e *env) releaseImages() ([]bundle.Image, error) {
	imgs, err := e.bundle.Manifest.ReleaseImages(e.catalog, e.release.Name)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(imgs, func(img bundle.Image) bool { return img.Ref == e.release.KindNodeImage }), nil
}

// bringReleaseImages brings one upgrade hop's images (releaseImages) from
// the bundle to where the cluster runs them: pushed to the registry,
// skipping those it already holds, or imported into the kind nodes.
func (e *env) bringReleaseImages(ctx context.Context) (string, error) {
	imgs, err := e.releaseImages()
	if err != nil {
		return "", err
	}
	switch {
	case e.opts.Registry != "":
		return e.pushMissing(ctx, imgs)
	case e.kind != nil:
		if err := e.kind.LoadImages(ctx, func(w io.Writer) error { return writeOCIArchive(w, e.bundle.LayoutDir, imgs) }); err != nil {
			return "", err
		}
		return fmt.Sprintf("release %s: imported its %d images into the nodes of kind cluster %s", e.release.Name, len(imgs), e.kind.Config.Name), nil
	}
	return "", errors.New("a bundle's images need a registry (--registry) or the kind cluster tmbox made")
}

// pushMissing pushes the images the registry does not hold yet (looked up
// by digest) and says how many it pushed.
func (e *env) pushMissing(ctx context.Context, imgs []bundle.Image) (string, error) {
	ropts := []remote.Option{remote.WithContext(ctx), remote.WithUserAgent("tmbox"), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
	var missing []bundle.Image
	for _, img := range imgs {
		dst, err := bundle.RegistryRef(e.opts.Registry, img.Ref, img.Digest)
		if err != nil {
			return "", err
		}
		ref, err := name.NewDigest(dst, name.StrictValidation)
		if err != nil {
			return "", fmt.Errorf("image %s on %s: %w", img.Ref, e.opts.Registry, err)
		}
		// Any failure to find it (absent, denied, unreachable) pushes: the
		// push reports a real problem with its cause.
		if d, err := remote.Head(ref, ropts...); err == nil && d.Digest.String() == img.Digest {
			continue
		}
		missing = append(missing, img)
	}
	if len(missing) > 0 {
		if _, err := bundle.PushImages(ctx, e.bundle, e.opts.Registry, missing, ropts[1:]...); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("release %s: pushed %d of its %d images to %s, %d already there (digests kept)", e.release.Name, len(missing), len(imgs), e.opts.Registry, len(imgs)-len(missing)), nil
}

// writeOCIArchive tars an OCI image layout for `ctr images import`, each
// image annotated with the name containerd should give it: every image of
// the layout when only is nil, else those of only (by reference and
// digest) and the blobs they reach.
func writeOCIArchive(w io.Writer, layoutDir string, only []bundle.Image) error {
	raw, err := os.ReadFile(filepath.Join(layoutDir, "index.json"))
	if err != nil {
		return err
	}
	var index map[string]any
	if err := json.Unmarshal(raw, &index); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	manifests, _ := index["manifests"].([]any)
	var kept []any
	var roots []string
	for _, m := range manifests {
		desc, _ := m.(map[string]any)
		ann, _ := desc["annotations"].(map[string]any)
		ref, _ := ann["org.opencontainers.image.ref.name"].(string)
		digest, _ := desc["digest"].(string)
		if only != nil && !slices.ContainsFunc(only, func(img bundle.Image) bool { return img.Ref == ref && img.Digest == digest }) {
			continue
		}
		if ref != "" {
			ann["io.containerd.image.name"] = containerdName(ref)
		}
		kept = append(kept, m)
		roots = append(roots, digest)
	}
	if only != nil && len(kept) != len(only) {
		return fmt.Errorf("image layout %s holds %d of the %d images asked for", layoutDir, len(kept), len(only))
	}
	index["manifests"] = kept
	if raw, err = json.Marshal(index); err != nil {
		return err
	}
	var blobs map[string]bool // nil: every file of the layout
	if only != nil {
		if blobs, err = reachableBlobs(layoutDir, roots); err != nil {
			return err
		}
	}
	tw := tar.NewWriter(w)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	if err := add("index.json", int64(len(raw)), bytes.NewReader(raw)); err != nil {
		return err
	}
	err = filepath.WalkDir(layoutDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(layoutDir, path)
		if err != nil || rel == "index.json" {
			return err
		}
		rel = filepath.ToSlash(rel)
		if blobs != nil && strings.HasPrefix(rel, "blobs/") && !blobs[rel] {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return add(rel, fi.Size(), f)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// reachableBlobs lists the layout's blob paths ("blobs/sha256/<hex>")
// that the given manifests or indexes reach, themselves included.
func reachableBlobs(layoutDir string, roots []string) (map[string]bool, error) {
	out := map[string]bool{}
	var walk func(digest string) error
	walk = func(digest string) error {
		h, err := v1.NewHash(digest)
		if err != nil {
			return fmt.Errorf("image layout: %w", err)
		}
		p := "blobs/" + h.Algorithm + "/" + h.Hex
		if out[p] {
			return nil
		}
		out[p] = true
		raw, err := os.ReadFile(filepath.Join(layoutDir, filepath.FromSlash(p)))
		if err != nil {
			return fmt.Errorf("image layout: %w", err)
		}
		var m struct {
			Manifests []v1.Descriptor `json:"manifests"`
			Config    *v1.Descriptor  `json:"config"`
			Layers    []v1.Descriptor `json:"layers"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("image layout: %s: %w", p, err)
		}
		for _, d := range m.Manifests {
			if err := walk(d.Digest.String()); err != nil {
				return err
			}
		}
		for _, d := range append(m.Layers, derefDescriptor(m.Config)...) {
			out["blobs/"+d.Digest.Algorithm+"/"+d.Digest.Hex] = true
		}
		return nil
	}
	for _, r := range roots {
		if err := walk(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func derefDescriptor(d *v1.Descriptor) []v1.Descriptor {
	if d == nil {
		return nil
	}
	return []v1.Descriptor{*d}
}

// containerdName is the name containerd's CRI looks an image up by: the
// registry spelled out (docker.io for Docker Hub), and for a reference
// with both a tag and a digest, the digest alone (the CRI drops the tag).
func containerdName(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	repo := reg + "/" + r.Context().RepositoryStr()
	if d, ok := r.(name.Digest); ok {
		return repo + "@" + d.DigestStr()
	}
	if i := strings.LastIndex(ref, "@"); i > 0 {
		return repo + ref[i:]
	}
	return repo + ":" + r.Identifier()
}
