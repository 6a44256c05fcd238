package bundle

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tmbox/tmbox/catalog"
)

// OverrideError is one image override that is wrong: an original
// reference → replacement pair of an images: map or --image-map file.
type OverrideError struct {
	// Original is the override's key, the image reference it replaces.
	Original string
	// Err says what is wrong.
	Err error
}

// Error names the override by its original reference.
func (e *OverrideError) Error() string {
	return fmt.Sprintf("image override %s: %v", catalog.QuoteShort(e.Original), e.Err)
}

// Unwrap returns the cause.
func (e *OverrideError) Unwrap() error { return e.Err }

// ValidateImageOverrides checks image overrides (original reference →
// replacement): every original parses as an image reference; every
// replacement parses, is pinned by digest (…@sha256:<64 hex digits>),
// differs from its original and is not itself an original of another
// override (no chains). Each problem is an *OverrideError; they are
// joined in the originals' sorted order.
func ValidateImageOverrides(overrides map[string]string) error {
	var errs []error
	for _, orig := range slices.Sorted(maps.Keys(overrides)) {
		repl := overrides[orig]
		bad := func(format string, args ...any) {
			errs = append(errs, &OverrideError{Original: orig, Err: fmt.Errorf(format, args...)})
		}
		switch {
		case strings.TrimSpace(orig) == "":
			bad("an empty original reference")
		case catalog.ValidImageRef(orig) != nil:
			bad("%v", catalog.ValidImageRef(orig))
		case strings.TrimSpace(repl) == "":
			bad("no replacement: want REFERENCE@sha256:<64 hex digits>")
		case !catalog.DigestPinned(repl):
			bad("replacement %s is not pinned by digest: want REFERENCE@sha256:<64 hex digits> (the digest your registry reports for the image you pushed)", catalog.QuoteShort(repl))
		case catalog.ValidImageRef(repl) != nil:
			bad("replacement: %v", catalog.ValidImageRef(repl))
		case repl == orig:
			bad("the replacement is the original")
		default:
			if _, err := name.NewDigest(repl, name.WeakValidation); err != nil {
				bad("replacement %s: %v", catalog.QuoteShort(repl), err)
			} else if _, chained := overrides[repl]; chained {
				bad("replacement %s is overridden itself: map the original to the final image", catalog.QuoteShort(repl))
			}
		}
	}
	return errors.Join(errs...)
}

// OverrideImages returns refs with every reference overrides names
// replaced by its replacement, sorted and unique.
func OverrideImages(refs []string, overrides map[string]string) []string {
	out := make([]string, 0, len(refs))
	for _, r := range refs {
		if to, ok := overrides[r]; ok {
			r = to
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// checkOverridesApply refuses overrides a bundle of rels cannot carry: an
// original that no release of rels has among its images, or a release's
// kind node image (tmbox creates the node from it; it is not overridable).
func checkOverridesApply(overrides map[string]string, rels []*catalog.Release) error {
	var all []string
	kindImages := map[string]bool{}
	for _, r := range rels {
		all = append(all, r.Images()...)
		kindImages[r.KindNodeImage] = true
	}
	var errs []error
	for _, orig := range slices.Sorted(maps.Keys(overrides)) {
		switch {
		case kindImages[orig]:
			errs = append(errs, &OverrideError{Original: orig, Err: errors.New("the kind node image is not overridable")})
		case !slices.Contains(all, orig):
			errs = append(errs, &OverrideError{Original: orig, Err: fmt.Errorf("%s has no such image (see tmbox images check)", releasesLabel(releaseNames(rels)))})
		}
	}
	return errors.Join(errs...)
}
