package addons

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tmbox/tmbox/catalog"
)

// Limits of the add-ons.
const (
	// MaxNameLength is the longest release name Helm accepts.
	MaxNameLength = 53
	// ociScheme starts an OCI chart reference.
	ociScheme = "oci://"
)

// IsOCI reports whether chart is an OCI reference (oci://…).
func IsOCI(chart string) bool { return strings.HasPrefix(chart, ociScheme) }

// validDigest matches sha256:HEX as Addon.Digest is written.
func validDigest(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validTag is an OCI tag (Helm writes a version's "+" as "_" in tags, and
// accepts either in a version).
func validTag(s string) bool {
	return regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$`).MatchString(s)
}

// Validate checks add-ons on their own: it reads no file and needs no
// cluster (Load reads the charts and values files). It refuses
//
//   - a name that is not a DNS-1123 label of at most 53 characters (a
//     Helm release name), and a name used twice;
//   - a namespace that is missing or not a DNS-1123 label;
//   - a missing chart; a URL other than oci://; an oci:// chart without a registry and repository,
//     with a tag or digest in the reference, or without a version;
//   - a version that is not a valid OCI tag;
//   - a digest that is not sha256: and 64 lowercase hex digits;
//   - an empty values file path;
//   - inline values Helm could not store (not JSON-encodable);
//   - a negative timeout.
//
// Validate is pure. The error is an errors.Join of *Error, in add-on
// order.
func Validate(addons []Addon) error {
	var l errorList
	names := map[string]int{}
	for i, a := range addons {
		switch {
		case a.Name == "":
			l.Add(field(i, "name"), "missing: every add-on needs a name (its Helm release name)")
		default:
			if msgs := validation.IsDNS1123Label(a.Name); len(msgs) > 0 {
				l.Add(field(i, "name"), "%s is not a valid release name: %s", quote(a.Name), strings.Join(msgs, "; "))
			} else if err := chartutil.ValidateReleaseName(a.Name); err != nil {
				l.Add(field(i, "name"), "%s is not a valid release name: at most %d characters", quote(a.Name), MaxNameLength)
			}
			if first, dup := names[a.Name]; dup {
				l.Add(field(i, "name"), "%s is also the name of %s: add-on names must be unique", quote(a.Name), field(first, ""))
			} else {
				names[a.Name] = i
			}
		}
		switch {
		case a.Namespace == "":
			l.Add(field(i, "namespace"), "missing: every add-on needs a namespace")
		default:
			if msgs := validation.IsDNS1123Label(a.Namespace); len(msgs) > 0 {
				l.Add(field(i, "namespace"), "%s is not a namespace name: %s", quote(a.Namespace), strings.Join(msgs, "; "))
			}
		}
		switch {
		case a.Chart == "":
			l.Add(field(i, "chart"), "missing: a chart archive (.tgz), a chart directory or oci://REGISTRY/REPOSITORY/CHART")
		case IsOCI(a.Chart):
			if err := validOCI(a.Chart); err != nil {
				l.Add(field(i, "chart"), "%w", err)
			}
			if a.Version == "" {
				l.Add(field(i, "version"), "missing: an oci:// chart needs the version to pull (its tag)")
			}
		case strings.Contains(a.Chart, "://"):
			l.Add(field(i, "chart"), "%s: tmbox takes a local chart (.tgz or directory) or an oci:// reference, not a chart repository URL", quote(a.Chart))
		}
		if a.Version != "" && !validTag(a.Version) {
			l.Add(field(i, "version"), "%s is not a chart version (letters, digits, '.', '_', '+', '-'; at most 128)", quote(a.Version))
		}
		if a.Digest != "" && !validDigest(a.Digest) {
			l.Add(field(i, "digest"), "%s is not a digest: want sha256: and 64 lowercase hex digits", quote(a.Digest))
		}
		for j, f := range a.ValuesFiles {
			if f == "" {
				l.Add(fmt.Sprintf("%s[%d]", field(i, "valuesFiles"), j), "empty file path")
			}
		}
		if a.Values != nil {
			if _, err := json.Marshal(a.Values); err != nil {
				l.Add(field(i, "values"), "Helm cannot store these values: %v", err)
			}
		}
		if a.Timeout < 0 {
			l.Add(field(i, "timeout"), "%s: want a positive duration", a.Timeout)
		}
	}
	return l.Join()
}

// validOCI checks an oci:// chart reference: a registry host and a
// repository path, no tag or digest (Version is the tag; Digest pins the
// archive).
func validOCI(ref string) error {
	rest := strings.TrimPrefix(ref, ociScheme)
	host, repo, ok := strings.Cut(rest, "/")
	if !ok || repo == "" {
		return fmt.Errorf("%s: want oci://REGISTRY/REPOSITORY/CHART", quote(ref))
	}
	if err := catalog.ValidRegistryHost(host); err != nil {
		return fmt.Errorf("%s: %w", quote(ref), err)
	}
	if strings.ContainsAny(repo, "@:") {
		return fmt.Errorf("%s: leave the tag or digest out of the reference: set version (and digest) instead", quote(ref))
	}
	for _, part := range strings.Split(repo, "/") {
		if !regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`).MatchString(part) {
			return fmt.Errorf("%s: %s is not a repository path component (lowercase letters, digits, separators)", quote(ref), quote(part))
		}
	}
	return nil
}
