package catalog

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// maxRegistryLength is the longest registry (HOST[:PORT][/PREFIX]) tmbox
// takes: image references under it must stay well within the 255
// characters container runtimes take for a repository name.
const maxRegistryLength = 200

// registryHostPattern is a registry host: a DNS name or IP address, or a
// bracketed IPv6 address, with an optional port. No scheme, no path.
var registryHostPattern = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?$`)

// ValidRegistryHost checks s is an image registry as tmbox takes one:
// "HOST[:PORT][/PREFIX]" with an optional trailing "/", no scheme. HOST
// must parse with go-containerregistry's name.NewRegistry, and
// HOST/PREFIX/name:tag must be a valid repository, so every image
// reference made by putting an image under s parses. The error quotes s
// (a short prefix of it when it is long) and says what is wrong.
//
// It validates a ko registry in the catalog, and is what a
// --triggermesh-registry value should pass (Component.ResolveImage puts
// images under it).
func ValidRegistryHost(s string) error {
	trimmed := strings.TrimSuffix(s, "/")
	host, prefix, _ := strings.Cut(trimmed, "/")
	switch {
	case len(s) > maxRegistryLength:
		return fmt.Errorf("registry %s: longer than %d characters", QuoteShort(s), maxRegistryLength)
	case host == "":
		return fmt.Errorf("registry %s: want HOST[:PORT][/PREFIX]", QuoteShort(s))
	case strings.Contains(s, "://"):
		return fmt.Errorf("registry %s: want HOST[:PORT][/PREFIX] without a scheme", QuoteShort(s))
	case !registryHostPattern.MatchString(host):
		return fmt.Errorf("registry %s: host %s is not HOST[:PORT]", QuoteShort(s), QuoteShort(host))
	}
	if _, err := name.NewRegistry(host, name.StrictValidation); err != nil {
		return fmt.Errorf("registry %s: host %s: %v", QuoteShort(s), QuoteShort(host), err)
	}
	if prefix != "" {
		parts := strings.Split(prefix, "/")
		if slices.Contains(parts, "") {
			return fmt.Errorf("registry %s: path prefix %s has an empty part", QuoteShort(s), QuoteShort(prefix))
		}
		if slices.Contains(parts, "..") || slices.Contains(parts, ".") {
			return fmt.Errorf("registry %s: path prefix %s has a %q part", QuoteShort(s), QuoteShort(prefix), "..")
		}
		if _, err := name.NewRepository(host+"/"+prefix+"/x", name.StrictValidation); err != nil {
			return fmt.Errorf("registry %s: path prefix %s is not a repository path (lower-case letters, digits, '.', '_', '-' and '/')", QuoteShort(s), QuoteShort(prefix))
		}
	}
	return nil
}

// ValidImageRef checks ref parses as an image reference with
// go-containerregistry's name.ParseReference (a tag or digest, the
// registry defaulting to Docker Hub). The error quotes a short prefix of
// ref when it is long.
func ValidImageRef(ref string) error {
	if _, err := name.ParseReference(ref); err != nil {
		if strings.Contains(ref, "://") {
			return fmt.Errorf("image %s is not an image reference: it has a URL scheme", QuoteShort(ref))
		}
		return fmt.Errorf("image %s is not an image reference ([REGISTRY/]REPOSITORY[:TAG][@DIGEST])", QuoteShort(ref))
	}
	return nil
}
