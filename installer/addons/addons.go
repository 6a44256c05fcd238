// Package addons installs the operator's own Helm charts — a second
// gateway for a tenant, a Redis for a broker, monitoring — beside the
// platform, with the Helm SDK and Helm's own release storage (Secrets in
// the add-on's namespace), so `helm list -A` and `helm history` show what
// tmbox did.
//
// An Addon is what the InstallConfig declares (addons:): Decode reads the
// list strictly from the config file, Validate checks it on its own, Load
// reads the charts and values files into Loaded add-ons (values merged,
// checked against the chart's values.schema.json, digests verified),
// Images lists the images a chart's templates reference (for air-gap
// bundles), and a Manager installs, upgrades, rolls back, recovers,
// uninstalls and lists the releases in a cluster.
package addons

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tmbox/tmbox/internal/configerr"
	"go.yaml.in/yaml/v3"
)

// Root is the path of the add-ons in an InstallConfig: every Error's Path
// starts with it.
const Root = "addons"

// Defaults of an Addon's optional fields.
const (
	// DefaultTimeout is an add-on's time budget when Timeout is unset.
	DefaultTimeout = 5 * time.Minute
)

// Labels tmbox puts on what it creates for add-ons.
const (
	// LabelManagedBy marks a Helm release (its release labels, stored as
	// the labels of Helm's release Secrets) as an add-on tmbox manages;
	// List selects on it.
	LabelManagedBy = "tmbox.dev/managed-by"
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "tmbox"
	// LabelChartDigest is a release label holding the hex of the chart's
	// sha256 digest (Loaded.ChartDigest), cut to the 63 characters a label
	// value may hold: with the chart's name and version and the release's
	// values it tells an unchanged add-on from a changed one.
	LabelChartDigest = "tmbox.dev/chart-digest"
	// LabelImageMap is a release label holding a digest of the image
	// mapping (Manager.Images) applied to the release's manifests, set
	// only when one applied: with the chart and values it tells an
	// unchanged add-on from one whose images move to another registry.
	LabelImageMap = "tmbox.dev/image-map"
)

// Addon is one declared add-on: an entry of the InstallConfig's addons:
// list. File paths (Chart, ValuesFiles) are kept as written: the caller
// resolves them against the config file's directory.
type Addon struct {
	// Name is the Helm release name: a DNS-1123 label of at most 53
	// characters, unique among the add-ons.
	Name string `json:"name" yaml:"name"`
	// Chart is a local chart archive (.tgz), a chart directory, or an OCI
	// reference oci://REGISTRY/REPOSITORY/CHART (without a tag: Version
	// is the tag).
	Chart string `json:"chart" yaml:"chart"`
	// Version is the chart's version: required for an oci:// chart; for a
	// local chart, when set, the chart's Chart.yaml must have it.
	Version string `json:"version,omitempty" yaml:"version,omitempty"`
	// Digest is sha256:HEX of the chart archive. It is required for an
	// oci:// chart in air-gap mode; when set, the chart is verified
	// against it (for a chart directory: against the digest of its
	// deterministic archive, see Loaded.ChartDigest).
	Digest string `json:"digest,omitempty" yaml:"digest,omitempty"`
	// Namespace is where the release and its Helm storage live; created
	// when missing.
	Namespace string `json:"namespace" yaml:"namespace"`
	// ValuesFiles are YAML values files, merged in order (a later file
	// wins), before Values.
	ValuesFiles []string `json:"valuesFiles,omitempty" yaml:"valuesFiles,omitempty"`
	// Values are inline values, merged over ValuesFiles.
	Values map[string]any `json:"values,omitempty" yaml:"values,omitempty"`
	// Wait makes tmbox wait until the release's workloads are ready and
	// roll a failed upgrade back (default true).
	Wait *bool `json:"wait,omitempty" yaml:"wait,omitempty"`
	// Timeout is the time budget of one Helm action and of the wait for
	// readiness after it (default DefaultTimeout).
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
}

// WaitEnabled reports whether tmbox waits for the add-on to be ready:
// Wait, true when unset.
func (a Addon) WaitEnabled() bool { return a.Wait == nil || *a.Wait }

// Budget returns the add-on's time budget: Timeout, or DefaultTimeout
// when unset.
func (a Addon) Budget() time.Duration {
	if a.Timeout <= 0 {
		return DefaultTimeout
	}
	return time.Duration(a.Timeout)
}

// Duration is a time.Duration written as a Go duration string ("90s",
// "5m") in YAML and JSON.
type Duration time.Duration

// String renders the duration as time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// IsZero reports whether the duration is unset (for omitempty).
func (d Duration) IsZero() bool { return d == 0 }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"90s\" or \"5m\": %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a duration such as 90s or 5m, not %s", n.Line, configerr.Shape(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}

// parseDuration parses a Go duration string.
func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s is not a duration: want one such as 90s or 5m", quote(s))
	}
	return Duration(v), nil
}
