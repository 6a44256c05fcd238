package bundle

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

// Problems CheckImages reports for an image that cannot be pulled. They
// are stable identifiers (the JSON of tmbox images check carries them).
const (
	// ProblemNotFound: the registry has no such repository, tag or
	// digest (HTTP 404, MANIFEST_UNKNOWN, NAME_UNKNOWN).
	ProblemNotFound = "not-found"
	// ProblemUnauthorized: the registry refused the credentials of the
	// Docker keychain, or anonymous access (HTTP 401, 403).
	ProblemUnauthorized = "unauthorized"
	// ProblemUnreachable: the registry could not be reached (DNS,
	// connection, TLS, timeout) or is unavailable (HTTP 429, 5xx).
	ProblemUnreachable = "unreachable"
	// ProblemDigestMismatch: a reference pinned by digest resolved to a
	// manifest with another digest.
	ProblemDigestMismatch = "digest-mismatch"
	// ProblemPlatform: a multi-platform index lacks a requested
	// platform (CheckOptions.Platforms).
	ProblemPlatform = "missing-platform"
	// ProblemInvalid: the reference does not parse.
	ProblemInvalid = "invalid-reference"
	// ProblemOther: any other failure (an unsupported media type, a
	// malformed manifest).
	ProblemOther = "error"
)

// defaultCheckConcurrency is how many images CheckImages resolves at once
// unless told otherwise.
const defaultCheckConcurrency = 8

// defaultCheckTimeout bounds the resolution of one image.
const defaultCheckTimeout = 30 * time.Second

// CheckOptions configure CheckImages.
type CheckOptions struct {
	// RemoteOptions configure the registry requests (transport, auth, …).
	// Nil means the Docker keychain (authn.DefaultKeychain: docker login's
	// config and credential helpers) with tmbox's user agent.
	RemoteOptions []remote.Option
	// Platforms, when set, are platforms ("os/arch[/variant]") every
	// multi-platform index must hold, as bundle create needs them; a
	// single-platform image is taken as it is, as Create stores it.
	Platforms []string
	// Concurrency is how many images are resolved at once (default 8).
	Concurrency int
	// Timeout bounds each image's resolution (default 30s).
	Timeout time.Duration
}

// ImageStatus is what one image reference resolved to in its registry.
type ImageStatus struct {
	// Ref is the image reference checked.
	Ref string `json:"ref"`
	// Digest is the digest of the manifest or index the registry serves
	// for Ref ("" when it cannot be pulled).
	Digest string `json:"digest,omitempty"`
	// MediaType is that manifest's or index's media type.
	MediaType string `json:"mediaType,omitempty"`
	// Platforms are the platforms the image runs on, sorted: an index's
	// manifests', or a single image's config's.
	Platforms []string `json:"platforms,omitempty"`
	// Problem is why the image cannot be pulled, one of the Problem*
	// constants ("" when it can).
	Problem string `json:"problem,omitempty"`
	// Error is the registry's or the network's error.
	Error string `json:"error,omitempty"`
}

// OK reports whether the image can be pulled.
func (s ImageStatus) OK() bool { return s.Problem == "" }

// CheckImages resolves every image reference against its registry,
// concurrently, and says for each what it resolved to (digest, media type,
// platforms) or why it cannot be pulled: not found, unauthorized,
// unreachable, a pinned digest that resolved to another digest, a missing
// platform. The statuses are in refs' order. It downloads manifests and, for
// single-platform images, their configs (to read the platform); no layers.
func CheckImages(ctx context.Context, refs []string, opts CheckOptions) []ImageStatus {
	ropts := opts.RemoteOptions
	if ropts == nil {
		ropts = []remote.Option{remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithUserAgent("tmbox")}
	}
	limit := opts.Concurrency
	if limit <= 0 {
		limit = defaultCheckConcurrency
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultCheckTimeout
	}
	var platforms []v1.Platform
	for _, s := range opts.Platforms {
		if p, err := v1.ParsePlatform(s); err == nil {
			platforms = append(platforms, *p)
		}
	}
	// A short retry: a check says what is there now, and an unreachable
	// registry fails every image on it (its own options win over this).
	ropts = append([]remote.Option{remote.WithRetryBackoff(remote.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Jitter: 0.1, Steps: 2})}, ropts...)
	out := make([]ImageStatus, len(refs))
	var down sync.Map // registry → why it cannot be reached
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i, ref := range refs {
		g.Go(func() error {
			cctx, cancel := context.WithTimeout(gctx, timeout)
			defer cancel()
			out[i] = checkImage(cctx, ref, platforms, append(slices.Clone(ropts), remote.WithContext(cctx)), &down)
			return nil // a failed image is a status, not an error
		})
	}
	_ = g.Wait()
	return out
}

// checkImage resolves one reference. A registry the network cannot reach
// is remembered in down, and its later images are not tried again.
func checkImage(ctx context.Context, ref string, platforms []v1.Platform, ropts []remote.Option, down *sync.Map) ImageStatus {
	st := ImageStatus{Ref: ref}
	fail := func(problem string, err error) ImageStatus {
		st.Problem, st.Error = problem, err.Error()
		return st
	}
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return fail(ProblemInvalid, err)
	}
	reg := r.Context().RegistryStr()
	if why, ok := down.Load(reg); ok {
		return fail(ProblemUnreachable, fmt.Errorf("registry %s: %s", reg, why))
	}
	desc, err := remote.Get(r, ropts...)
	if err != nil {
		problem := classify(ctx, err)
		var te *transport.Error
		if problem == ProblemUnreachable && !errors.As(err, &te) && ctx.Err() == nil {
			down.LoadOrStore(reg, err.Error())
		}
		return fail(problem, err)
	}
	st.Digest, st.MediaType = desc.Digest.String(), string(desc.MediaType)
	if d, ok := r.(name.Digest); ok && st.Digest != d.DigestStr() {
		return fail(ProblemDigestMismatch, fmt.Errorf("the registry served %s for a reference pinned to %s", st.Digest, d.DigestStr()))
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return fail(ProblemOther, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return fail(ProblemOther, fmt.Errorf("read index: %w", err))
		}
		for _, m := range im.Manifests {
			if m.Platform != nil && m.MediaType.IsImage() && m.Platform.OS != "unknown" {
				st.Platforms = append(st.Platforms, m.Platform.String())
			}
		}
		for _, p := range platforms {
			if !slices.ContainsFunc(im.Manifests, func(d v1.Descriptor) bool {
				return d.MediaType.IsImage() && d.Platform != nil && d.Platform.Satisfies(p)
			}) {
				st.Platforms = sortedUnique(st.Platforms)
				return fail(ProblemPlatform, fmt.Errorf("the index has no %s manifest", p.String()))
			}
		}
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return fail(ProblemOther, err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return fail(classify(ctx, err), fmt.Errorf("read config: %w", err))
		}
		if p := cfg.Platform(); p != nil && p.OS != "" {
			st.Platforms = []string{p.String()}
		}
	default:
		return fail(ProblemOther, fmt.Errorf("unsupported media type %s", desc.MediaType))
	}
	st.Platforms = sortedUnique(st.Platforms)
	return st
}

// classify names why a registry request failed: the registry's status
// code when it answered, the network otherwise.
func classify(ctx context.Context, err error) string {
	var te *transport.Error
	if errors.As(err, &te) {
		switch {
		case te.StatusCode == http.StatusNotFound:
			return ProblemNotFound
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden:
			return ProblemUnauthorized
		case te.StatusCode == http.StatusTooManyRequests || te.StatusCode >= 500:
			return ProblemUnreachable
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
				return ProblemNotFound
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return ProblemUnauthorized
			}
		}
		return ProblemOther
	}
	// go-containerregistry checks a manifest fetched by digest itself.
	if strings.Contains(err.Error(), "does not match requested digest") {
		return ProblemDigestMismatch
	}
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &ue) || errors.As(err, &oe) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		return ProblemUnreachable
	}
	return ProblemOther
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

// Unavailable returns the statuses of the images that cannot be pulled.
func Unavailable(statuses []ImageStatus) []ImageStatus {
	var out []ImageStatus
	for _, s := range statuses {
		if !s.OK() {
			out = append(out, s)
		}
	}
	return out
}

// ImagesMissingError says that images cannot be pulled: tmbox images check
// found some, or bundle create refused to start (having written nothing).
type ImagesMissingError struct {
	// Missing are the images that cannot be pulled, each with its problem.
	Missing []ImageStatus
	// Total is how many images were checked.
	Total int
}

// Error lists every image that cannot be pulled, and the remedy.
func (e *ImagesMissingError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d images cannot be pulled:", len(e.Missing), e.Total)
	for _, s := range e.Missing {
		fmt.Fprintf(&b, "\n  %s: %s: %s", s.Ref, s.Problem, s.Error) // references the catalog or the overrides validated
	}
	b.WriteString("\nrebuild or mirror them into a registry you control and pass the replacements, pinned by digest, as image overrides (images: in --config, or --image-map FILE; see docs/airgap.md, \"TriggerMesh images today\")")
	return b.String()
}

// checkBundleImages resolves every image a bundle would hold, with the
// options its pulls use, and refuses to start when one cannot be pulled,
// naming all of them: nothing is downloaded or written first.
func checkBundleImages(ctx context.Context, refs []string, platforms []v1.Platform, ropts []remote.Option) error {
	statuses := CheckImages(ctx, refs, CheckOptions{
		// The pulls' options, as they are (nil: anonymous, as pulls are).
		RemoteOptions: append(slices.Clone(ropts), remote.WithContext(ctx)),
		Platforms:     platformStrings(platforms),
	})
	if err := ctx.Err(); err != nil {
		return err
	}
	if missing := Unavailable(statuses); len(missing) > 0 {
		return &ImagesMissingError{Missing: missing, Total: len(refs)}
	}
	return nil
}
