package bundle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/tmbox/tmbox/catalog"
)

// platformPart is an os or architecture of a platform, e.g. "linux",
// "amd64", "386"; platformVariant a variant, e.g. "v7", "v8.2".
var (
	platformPart    = regexp.MustCompile(`^[a-z0-9][a-z0-9_]*$`)
	platformVariant = regexp.MustCompile(`^[a-z0-9][a-z0-9_.]*$`)
)

// ValidPlatform checks s is an image platform "os/arch[/variant]", as
// go-containerregistry's v1.ParsePlatform reads it, with os and arch
// non-empty lower-case identifiers (letters, digits, '_') and the variant,
// when given, one too ('.' allowed after the first character): e.g.
// "linux/amd64", "linux/arm/v7". It is what Create's platforms and a
// manifest's must be.
func ValidPlatform(s string) error {
	p, err := v1.ParsePlatform(s)
	if err != nil {
		return fmt.Errorf("platform %s is not os/arch[/variant]: %w", catalog.QuoteShort(s), err)
	}
	if !platformPart.MatchString(p.OS) || !platformPart.MatchString(p.Architecture) ||
		(p.Variant != "" && !platformVariant.MatchString(p.Variant)) || p.OSVersion != "" || p.String() != s {
		return fmt.Errorf("platform %s is not os/arch[/variant] of lower-case letters, digits and '_' (e.g. linux/amd64, linux/arm/v7)", catalog.QuoteShort(s))
	}
	return nil
}

// parsePlatforms parses "os/arch[/variant]" platforms (see ValidPlatform),
// sorted and unique; none means linux/amd64.
func parsePlatforms(specs []string) ([]v1.Platform, error) {
	if len(specs) == 0 {
		specs = []string{"linux/amd64"}
	}
	var out []v1.Platform
	for _, s := range specs {
		if err := ValidPlatform(s); err != nil {
			return nil, err
		}
		p, _ := v1.ParsePlatform(s) // parsed by ValidPlatform
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b v1.Platform) int { return strings.Compare(a.String(), b.String()) })
	return slices.CompactFunc(out, func(a, b v1.Platform) bool { return a.String() == b.String() }), nil
}

func platformStrings(ps []v1.Platform) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}

// pullImages pulls every ref (sorted) into a new OCI layout at dir, each
// annotated with its ref, and returns what it stored.
func pullImages(ctx context.Context, dir string, refs []string, platforms []v1.Platform, ropts []remote.Option, log *slog.Logger, step func(string)) ([]Image, error) {
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("image layout: %w", err)
	}
	ropts = append(slices.Clone(ropts), remote.WithContext(ctx))
	out := make([]Image, 0, len(refs))
	for _, ref := range refs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := pullImage(lp, ref, platforms, ropts)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		img.Ref = ref
		log.Debug("bundled image", "ref", ref, "digest", img.Digest, "size", img.Size)
		out = append(out, img)
		step("image " + ref)
	}
	return out, nil
}

// pullImage stores one image in the layout and describes it (all but its
// Ref); see Create for how indexes are handled.
func pullImage(lp layout.Path, ref string, platforms []v1.Platform, ropts []remote.Option) (Image, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return Image{}, fmt.Errorf("parse reference: %w", err)
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		return Image{}, fmt.Errorf("pull: %w", err)
	}
	if d, ok := r.(name.Digest); ok && desc.Digest.String() != d.DigestStr() {
		return Image{}, fmt.Errorf("the registry served %s for a reference pinned to %s", desc.Digest, d.DigestStr())
	}
	annotate := layout.WithAnnotations(map[string]string{refNameAnnotation: ref})
	if !desc.MediaType.IsIndex() {
		if !desc.MediaType.IsImage() {
			return Image{}, fmt.Errorf("unsupported media type %s", desc.MediaType)
		}
		img, err := desc.Image()
		if err != nil {
			return Image{}, fmt.Errorf("pull: %w", err)
		}
		return storeImage(lp, img, annotate)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return Image{}, fmt.Errorf("pull: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return Image{}, fmt.Errorf("pull index: %w", err)
	}
	matches := func(d v1.Descriptor, p v1.Platform) bool {
		return d.MediaType.IsImage() && d.Platform != nil && d.Platform.Satisfies(p)
	}
	var children []v1.Descriptor
	for _, p := range platforms {
		i := slices.IndexFunc(im.Manifests, func(d v1.Descriptor) bool { return matches(d, p) })
		if i < 0 {
			return Image{}, fmt.Errorf("the image has no %s manifest", p.String())
		}
		children = append(children, im.Manifests[i])
	}
	if len(platforms) == 1 {
		img, err := idx.Image(children[0].Digest)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: %w", platforms[0].String(), err)
		}
		return storeImage(lp, img, annotate)
	}
	keep := func(d v1.Descriptor) bool {
		return slices.ContainsFunc(platforms, func(p v1.Platform) bool { return matches(d, p) })
	}
	sub := mutate.RemoveManifests(idx, func(d v1.Descriptor) bool { return !keep(d) })
	if err := lp.AppendIndex(sub, annotate); err != nil {
		return Image{}, fmt.Errorf("store index: %w", err)
	}
	digest, err := sub.Digest()
	if err != nil {
		return Image{}, err
	}
	raw, err := sub.RawManifest()
	if err != nil {
		return Image{}, err
	}
	mt, err := sub.MediaType()
	if err != nil {
		return Image{}, err
	}
	size := int64(len(raw))
	subm, err := sub.IndexManifest()
	if err != nil {
		return Image{}, err
	}
	for _, d := range subm.Manifests {
		img, err := sub.Image(d.Digest)
		if err != nil {
			return Image{}, fmt.Errorf("pull %s: %w", d.Digest, err)
		}
		n, err := imageSize(img)
		if err != nil {
			return Image{}, err
		}
		size += n
	}
	return Image{Digest: digest.String(), MediaType: string(mt), Size: size}, nil
}

// storeImage appends an image to the layout and describes it.
func storeImage(lp layout.Path, img v1.Image, annotate layout.Option) (Image, error) {
	if err := lp.AppendImage(img, annotate); err != nil {
		return Image{}, fmt.Errorf("store image: %w", err)
	}
	digest, err := img.Digest()
	if err != nil {
		return Image{}, err
	}
	mt, err := img.MediaType()
	if err != nil {
		return Image{}, err
	}
	size, err := imageSize(img)
	if err != nil {
		return Image{}, err
	}
	return Image{Digest: digest.String(), MediaType: string(mt), Size: size}, nil
}

// imageSize is the bytes of an image's manifest, config and layers.
func imageSize(img v1.Image) (int64, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return 0, fmt.Errorf("image size: %w", err)
	}
	m, err := img.Manifest()
	if err != nil {
		return 0, fmt.Errorf("image size: %w", err)
	}
	size := int64(len(raw)) + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	return size, nil
}

// RegistryRef rewrites an image reference onto registry "HOST[:PORT][/PREFIX]":
// HOST[:PORT]/PREFIX/<repository path without the original registry
// host>[:tag]@digest. For example RegistryRef("reg.local:5000/mirror",
// "docker.io/istio/pilot:1.28.6", "sha256:ab…") is
// "reg.local:5000/mirror/istio/pilot:1.28.6@sha256:ab…".
//
// Docker Hub official images keep their "library/" path whichever way they
// are spelled: "busybox:1.28" and "docker.io/library/busybox:1.28" both
// become HOST/PREFIX/library/busybox:1.28@digest. The tag is kept when ref
// spells one. digest is the digest to pin (what a bundle stored for ref);
// when it is empty, the digest in ref is kept, and a ref without one is an
// error. A digest in ref is replaced by a non-empty digest argument, since
// a bundle stores one platform's manifest of a multi-platform index under
// that platform's digest.
func RegistryRef(registry, ref, digest string) (string, error) {
	host, prefix, _ := strings.Cut(strings.TrimSuffix(registry, "/"), "/")
	if host == "" {
		return "", fmt.Errorf("registry %q: want HOST[:PORT][/PREFIX]", registry)
	}
	reg, err := name.NewRegistry(host, name.StrictValidation)
	if err != nil || reg.Name() != host || !registryHost.MatchString(host) {
		return "", fmt.Errorf("registry %q: bad host %q: want HOST[:PORT][/PREFIX]", registry, host)
	}
	if prefix != "" {
		if slices.Contains(strings.Split(prefix, "/"), "") {
			return "", fmt.Errorf("registry %q: bad path prefix %q", registry, prefix)
		}
		if _, err := name.NewRepository(host+"/"+prefix, name.StrictValidation); err != nil {
			return "", fmt.Errorf("registry %q: bad path prefix %q: %w", registry, prefix, err)
		}
	}
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", ref, err)
	}
	if digest == "" {
		d, ok := r.(name.Digest)
		if !ok {
			return "", fmt.Errorf("image %q: no digest to pin", ref)
		}
		digest = d.DigestStr()
	}
	if _, err := v1.NewHash(digest); err != nil {
		return "", fmt.Errorf("image %q: digest %q: %w", ref, digest, err)
	}
	repo := r.Context().RepositoryStr()
	if prefix != "" {
		repo = prefix + "/" + repo
	}
	out := host + "/" + repo
	if tag := explicitTag(ref); tag != "" {
		out += ":" + tag
	}
	out += "@" + digest
	if _, err := name.NewDigest(out, name.StrictValidation); err != nil {
		return "", fmt.Errorf("image %q on %q: %w", ref, registry, err)
	}
	return out, nil
}

// registryHost is a registry host: a DNS name or IP address, or a
// bracketed IPv6 address, with an optional port.
var registryHost = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$`)

// explicitTag returns the tag a reference spells, "" when it has none.
func explicitTag(ref string) string {
	base, _, _ := strings.Cut(ref, "@")
	last := base[strings.LastIndex(base, "/")+1:]
	_, tag, _ := strings.Cut(last, ":")
	return tag
}

// Push pushes every image of an extracted bundle's OCI layout to
// registry ("HOST[:PORT][/PREFIX]", see RegistryRef) by digest, and by tag
// too when the original reference has one. Blobs and manifests the registry
// already has are not uploaded again. It returns each original reference
// mapped to its rewritten one (RegistryRef of the stored digest).
func Push(ctx context.Context, b *Extracted, registry string, opts ...remote.Option) (map[string]string, error) {
	if b == nil || b.Manifest == nil {
		return nil, errors.New("push bundle images: no bundle")
	}
	return PushImages(ctx, b, registry, b.Manifest.Images, opts...)
}

// PushImages is Push of some of the bundle's images: e.g. one release's
// (Manifest.ReleaseImages), for one upgrade hop. Every image must be one
// the manifest lists, with its stored digest.
func PushImages(ctx context.Context, b *Extracted, registry string, images []Image, opts ...remote.Option) (map[string]string, error) {
	if b == nil || b.Manifest == nil {
		return nil, errors.New("push bundle images: no bundle")
	}
	lp, err := layout.FromPath(b.LayoutDir)
	if err != nil {
		return nil, fmt.Errorf("push bundle images: %w", err)
	}
	root, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("push bundle images: %w", err)
	}
	stored, err := layoutRefs(lp)
	if err != nil {
		return nil, fmt.Errorf("push bundle images: %w", err)
	}
	ropts := append(slices.Clone(opts), remote.WithContext(ctx))
	out := make(map[string]string, len(images))
	for _, img := range images {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("push bundle images: %w", err)
		}
		if !slices.Contains(b.Manifest.Images, img) {
			return nil, fmt.Errorf("push bundle images: %s (%s) is not an image of the bundle", img.Ref, img.Digest)
		}
		if stored[img.Ref] != img.Digest {
			return nil, fmt.Errorf("push bundle images: %s: the layout does not hold %s", img.Ref, img.Digest)
		}
		dst, err := RegistryRef(registry, img.Ref, img.Digest)
		if err != nil {
			return nil, fmt.Errorf("push bundle images: %w", err)
		}
		if err := pushOne(root, img, dst, ropts); err != nil {
			return nil, fmt.Errorf("push bundle images: %s to %s: %w", img.Ref, dst, err)
		}
		out[img.Ref] = dst
	}
	return out, nil
}

// layoutRefs maps each ref annotation of the layout's index.json to its
// digest.
func layoutRefs(lp layout.Path) (map[string]string, error) {
	root, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("image layout: %w", err)
	}
	im, err := root.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image layout: %w", err)
	}
	out := map[string]string{}
	for _, d := range im.Manifests {
		if ref := d.Annotations[refNameAnnotation]; ref != "" {
			out[ref] = d.Digest.String()
		}
	}
	return out, nil
}

func pushOne(root v1.ImageIndex, img Image, dst string, ropts []remote.Option) error {
	h, err := v1.NewHash(img.Digest)
	if err != nil {
		return err
	}
	var t remote.Taggable
	if types.MediaType(img.MediaType).IsIndex() {
		ii, err := root.ImageIndex(h)
		if err != nil {
			return err
		}
		t = ii
	} else {
		i, err := root.Image(h)
		if err != nil {
			return err
		}
		t = i
	}
	ref, err := name.NewDigest(dst, name.StrictValidation)
	if err != nil {
		return err
	}
	// Push checks which blobs and manifests exist and uploads only the
	// missing ones.
	if err := remote.Push(ref, t, ropts...); err != nil {
		return err
	}
	if tag := explicitTag(dst); tag != "" {
		tr, err := name.NewTag(ref.Context().Name()+":"+tag, name.StrictValidation)
		if err != nil {
			return err
		}
		if err := remote.Tag(tr, t, ropts...); err != nil {
			return fmt.Errorf("tag: %w", err)
		}
	}
	return nil
}
