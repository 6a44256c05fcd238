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
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
)

// validateAirGap checks the bundle and registry options.
func (o Options) validateAirGap() []error {
	var errs []error
	bad := func(setting string, err error) { errs = append(errs, &SettingError{Setting: setting, Err: err}) }
	if o.Registry != "" {
		if err := validRegistry("--registry", o.Registry); err != nil {
			bad("registry", err)
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

// mapImage returns the reference an image of the release is installed as.
func (e *env) mapImage(ref string) string {
	if to, ok := e.render.imageMap[ref]; ok {
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
	if err := e.kind.LoadImages(ctx, func(w io.Writer) error { return writeOCIArchive(w, e.bundle.LayoutDir) }); err != nil {
		return "", err
	}
	return fmt.Sprintf("loaded %d images into the nodes of kind cluster %s", len(e.bundle.Manifest.Images), e.kind.Config.Name), nil
}

// writeOCIArchive tars an OCI image layout for `ctr images import`, each
// image annotated with the name containerd should give it.
func writeOCIArchive(w io.Writer, layoutDir string) error {
	raw, err := os.ReadFile(filepath.Join(layoutDir, "index.json"))
	if err != nil {
		return err
	}
	var index map[string]any
	if err := json.Unmarshal(raw, &index); err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	manifests, _ := index["manifests"].([]any)
	for _, m := range manifests {
		desc, _ := m.(map[string]any)
		ann, _ := desc["annotations"].(map[string]any)
		if ref, ok := ann["org.opencontainers.image.ref.name"].(string); ok {
			ann["io.containerd.image.name"] = containerdName(ref)
		}
	}
	if raw, err = json.Marshal(index); err != nil {
		return err
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
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		return add(filepath.ToSlash(rel), fi.Size(), f)
	})
	if err != nil {
		return err
	}
	return tw.Close()
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
