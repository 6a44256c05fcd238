package tui

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Optional components the wizard knows a rule about.
const (
	compTriggerMesh     = "triggermesh"
	compTriggerMeshCore = "triggermesh-core"
)

// maxClusterName is kind's limit for a cluster name (the node containers'
// names and hostnames derive from it).
const maxClusterName = 49

// validateClusterName checks a kind cluster name: a lower-case DNS label of
// at most 49 characters.
func validateClusterName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("enter a cluster name")
	case len(s) > maxClusterName:
		return fmt.Errorf("cluster name %q is %d characters long: at most %d", s, len(s), maxClusterName)
	case !isDNSLabel(s, false):
		return fmt.Errorf("cluster name %q: use lower-case letters, digits and '-', starting and ending with a letter or digit", s)
	}
	return nil
}

// isDNSLabel reports whether s is an RFC 1123 label (upper case allowed
// when upper is true).
func isDNSLabel(s string, upper bool) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || upper && c >= 'A' && c <= 'Z'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// validateRegistry checks HOST[:PORT][/PREFIX].
func validateRegistry(s string) error {
	const form = "HOST[:PORT][/PREFIX]"
	if strings.Contains(s, "://") {
		return fmt.Errorf("registry %q: write it without a scheme, as %s", s, form)
	}
	hostport, prefix, hasPrefix := strings.Cut(s, "/")
	host, port := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.Index(hostport, "]")
		if end < 0 {
			return fmt.Errorf("registry %q: unclosed '[' in the host", s)
		}
		host = hostport[1:end]
		rest := hostport[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return fmt.Errorf("registry %q: expected :PORT after the IPv6 address", s)
			}
			port = rest[1:]
			if port == "" {
				return fmt.Errorf("registry %q: empty port", s)
			}
		}
		if host == "" || strings.Trim(host, "0123456789abcdefABCDEF:.") != "" {
			return fmt.Errorf("registry %q: %q is not an IPv6 address", s, host)
		}
	} else {
		if h, p, ok := strings.Cut(hostport, ":"); ok {
			host, port = h, p
			if port == "" {
				return fmt.Errorf("registry %q: empty port", s)
			}
		}
		if host == "" {
			return fmt.Errorf("registry %q: the host is missing (%s)", s, form)
		}
		for _, label := range strings.Split(host, ".") {
			if !isDNSLabel(label, true) {
				return fmt.Errorf("registry %q: %q is not a valid host name", s, host)
			}
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.HasPrefix(port, "+") {
			return fmt.Errorf("registry %q: port %q is not a number from 1 to 65535", s, port)
		}
	}
	if hasPrefix {
		if prefix == "" {
			return fmt.Errorf("registry %q: empty prefix after '/'", s)
		}
		for _, c := range strings.Split(prefix, "/") {
			if !isPathComponent(c) {
				return fmt.Errorf("registry %q: prefix component %q: use lower-case letters, digits and '.', '_', '-' between them", s, c)
			}
		}
	}
	return nil
}

// isPathComponent reports whether s is a valid repository path component.
func isPathComponent(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (!strings.ContainsRune("._-", c) || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// expandPath replaces a leading ~/ with the home directory.
func expandPath(p string) string {
	p = strings.TrimSpace(p)
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	return p
}

// checkFile checks that path names a readable regular file.
func checkFile(what, path string) error {
	fi, err := os.Stat(path)
	switch {
	case os.IsNotExist(err):
		return fmt.Errorf("%s %s does not exist", what, path)
	case err != nil:
		return fmt.Errorf("%s: %v", what, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s %s is not a regular file", what, path)
	}
	return nil
}

// validateAirGap checks the air-gap answers together.
func validateAirGap(a Answers) []error {
	var errs []error
	if a.Bundle != "" {
		if err := checkFile("bundle", a.Bundle); err != nil {
			errs = append(errs, err)
		}
	}
	if a.BundleKey != "" {
		if a.Bundle == "" {
			errs = append(errs, fmt.Errorf("a bundle key needs a bundle"))
		} else if err := checkFile("bundle key", a.BundleKey); err != nil {
			errs = append(errs, err)
		}
	}
	if a.Registry != "" {
		if err := validateRegistry(a.Registry); err != nil {
			errs = append(errs, err)
		}
		if a.Bundle == "" {
			errs = append(errs, fmt.Errorf("a registry needs a bundle: the images to push come from it"))
		}
	}
	if a.Bundle != "" && a.Target == TargetExisting && a.Registry == "" {
		errs = append(errs, fmt.Errorf("a bundle into an existing cluster needs a registry (HOST[:PORT][/PREFIX]) the nodes can pull from"))
	}
	return errs
}

// validateComponents checks the component rules.
func validateComponents(comps []string) error {
	if slices.Contains(comps, compTriggerMeshCore) && !slices.Contains(comps, compTriggerMesh) {
		return fmt.Errorf("triggermesh-core needs triggermesh: select triggermesh or deselect triggermesh-core")
	}
	return nil
}
