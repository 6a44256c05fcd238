package addons

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"

	"github.com/tmbox/tmbox/catalog"
)

// Size limits of what Load reads.
const (
	// MaxChartArchiveSize is the largest chart archive (.tgz, local or
	// pulled) Load reads, in bytes. (Helm's loader limits what it
	// decompresses on its own.)
	MaxChartArchiveSize int64 = 32 << 20
	// MaxValuesFileSize is the largest values file Load reads, in bytes.
	MaxValuesFileSize int64 = 4 << 20
)

// Loaded is an add-on with its chart and values, as Load read and
// checked them.
type Loaded struct {
	// Addon is the add-on as declared.
	Addon Addon
	// Chart is the chart, as Helm's loader read it. Ensure and Images
	// work on fresh copies of it (Helm changes a chart it installs).
	Chart *chart.Chart
	// Values are the user's values: the values files merged in order,
	// then the inline values (what Helm stores as the release's config;
	// the chart's own values.yaml is not in them).
	Values map[string]any
	// ChartDigest is sha256:HEX of the chart archive's bytes, or, for a
	// chart directory, of a deterministic archive of it: an uncompressed
	// tar of the files Helm loaded (after .helmignore), sorted by path,
	// each as CHART/PATH with mode 0644, owner 0 and time 0. For a chart
	// loaded from a bundle it is the digest the chart had where the
	// bundle was made (BundledChart.ChartDigest), so the release's chart
	// is the same whichever way it arrived.
	ChartDigest string
	// FromBundle reports that the chart was read from an air-gap bundle
	// (LoadOptions.Bundled).
	FromBundle bool

	// archive is the chart archive's bytes as read or pulled (none for a
	// chart directory): what Archive returns.
	archive []byte
}

// LoadOptions says where Load may fetch charts from.
type LoadOptions struct {
	// AirGapped refuses an oci:// chart without a Digest: a bundle must
	// pin what it carries.
	AirGapped bool
	// Registry pulls oci:// charts; nil makes Helm's default client
	// (credentials from Helm's registry config and Docker's) when an
	// oci:// chart is declared.
	Registry *registry.Client
	// Bundled are the charts an air-gap bundle carries, by add-on name.
	// An add-on named here is loaded from the bundle: its chart path is
	// never read and its oci:// reference never pulled; a version or
	// digest it declares must be the bundled chart's, and every image it
	// renders with its values must be one the bundle holds.
	Bundled map[string]BundledChart
}

// BundledChart is an add-on's chart as an air-gap bundle carries it.
type BundledChart struct {
	// Archive is the path of the chart archive (in the extracted,
	// verified bundle).
	Archive string
	// SHA256 is the archive's lowercase hex sha256, checked again as it
	// is read.
	SHA256 string
	// Chart and Version are the chart's name and version as the bundle
	// records them; the archive's Chart.yaml must agree.
	Chart, Version string
	// ChartDigest is the add-on's chart digest where the bundle was made
	// (Loaded.ChartDigest there): a declared digest is checked against
	// it, and it becomes the loaded chart's ChartDigest.
	ChartDigest string
	// Images are the images the bundle holds (any of them, not only the
	// ones bundled for this add-on): the add-on may render no other.
	Images []string
}

// Load validates the add-ons and reads each one's chart (a .tgz or a
// directory with Helm's loader, an oci:// reference pulled with
// opts.Registry) and values files (regular files of at most
// MaxValuesFileSize bytes: a named pipe, device or directory is refused
// without being read), merges the values (files in order, then inline),
// checks them against the chart's values.schema.json (and its
// subcharts') when it has one, and verifies the chart's Digest and
// Version when set. A library chart is refused: it installs nothing.
//
// Errors are *Error naming the add-on (Path addons[i].…, the message
// names the add-on and the file), joined; Locate gives them lines.
func Load(ctx context.Context, addons []Addon, opts LoadOptions) ([]*Loaded, error) {
	if err := Validate(addons); err != nil {
		return nil, err
	}
	var l errorList
	out := make([]*Loaded, 0, len(addons))
	for i, a := range addons {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("load add-ons: %w", err)
		}
		ld, err := loadOne(ctx, i, a, &opts)
		if err != nil {
			l = append(l, err)
			continue
		}
		out = append(out, ld)
	}
	if err := l.Join(); err != nil {
		return nil, err
	}
	return out, nil
}

// loadOne loads the i-th add-on; errors are *Error.
func loadOne(ctx context.Context, i int, a Addon, opts *LoadOptions) (*Loaded, error) {
	at := func(name, format string, args ...any) error {
		return &Error{Path: field(i, name), Err: fmt.Errorf("add-on %s: "+format, append([]any{quote(a.Name)}, args...)...)}
	}
	bundled, fromBundle := opts.Bundled[a.Name]
	if fromBundle {
		if a.Version != "" && !sameVersion(a.Version, bundled.Version) {
			return nil, at("version", "the bundle carries chart %s version %s for this add-on, not %s", bundled.Chart, quote(bundled.Version), quote(a.Version))
		}
		if a.Digest != "" && a.Digest != bundled.ChartDigest {
			return nil, at("digest", "the bundle carries chart %s %s with digest %s, not %s as declared", bundled.Chart, bundled.Version, bundled.ChartDigest, a.Digest)
		}
	} else if IsOCI(a.Chart) && opts.AirGapped && a.Digest == "" {
		return nil, at("digest", "missing: in air-gap mode an oci:// chart must be pinned by the sha256 digest of its archive")
	}
	var ch *chart.Chart
	var digest string
	var archive []byte
	var err error
	if fromBundle {
		ch, digest, archive, err = loadBundled(bundled)
	} else {
		ch, digest, archive, err = loadChart(ctx, a, opts)
	}
	if err != nil {
		var de *digestError
		if errors.As(err, &de) {
			return nil, at("digest", "%w", err)
		}
		return nil, at("chart", "%w", err)
	}
	if ch.Metadata.Type == "library" {
		return nil, at("chart", "chart %s is a library chart: it cannot be installed", ch.Name())
	}
	if a.Version != "" && !sameVersion(a.Version, ch.Metadata.Version) {
		return nil, at("version", "chart %s has version %s, not %s", ch.Name(), quote(ch.Metadata.Version), quote(a.Version))
	}
	if fromBundle && (ch.Name() != bundled.Chart || ch.Metadata.Version != bundled.Version) {
		return nil, at("chart", "the bundle records chart %s %s for this add-on, its archive holds %s %s", bundled.Chart, bundled.Version, ch.Name(), ch.Metadata.Version)
	}
	vals := map[string]any{}
	for j, f := range a.ValuesFiles {
		data, err := catalog.ReadLimited(f, MaxValuesFileSize)
		if err != nil {
			return nil, at(fmt.Sprintf("valuesFiles[%d]", j), "%w", err) // names f
		}
		v, err := chartutil.ReadValues(data)
		if err != nil {
			return nil, at(fmt.Sprintf("valuesFiles[%d]", j), "values file %s: %w", f, err)
		}
		vals = mergeValues(vals, v.AsMap())
	}
	if a.Values != nil {
		inline, err := deepCopy(a.Values)
		if err != nil {
			return nil, at("values", "Helm cannot store these values: %w", err)
		}
		vals = mergeValues(vals, inline)
	}
	if ch.Schema != nil || hasSchema(ch) {
		full, err := chartutil.CoalesceValues(ch, vals)
		if err != nil {
			return nil, at(valuesPath(a), "merge with chart %s's values: %w", ch.Name(), err)
		}
		if err := chartutil.ValidateAgainstSchema(ch, full); err != nil {
			return nil, at(valuesPath(a), "values do not match chart %s's values.schema.json: %s", ch.Name(), oneLine(err.Error(), ch.Name()))
		}
	}
	ld := &Loaded{Addon: a, Chart: ch, Values: vals, ChartDigest: digest, FromBundle: fromBundle, archive: archive}
	if fromBundle {
		images, err := Images(ld, "")
		if err != nil {
			return nil, at(valuesPath(a), "%w", err)
		}
		for _, img := range images {
			if !slices.Contains(bundled.Images, img) {
				return nil, at(valuesPath(a), "with these values chart %s runs image %s, which the bundle does not hold (it was bundled with other values: run tmbox bundle create --config again with these)", ch.Name(), img)
			}
		}
	}
	return ld, nil
}

// valuesPath is the setting a schema failure is reported at: the inline
// values when there are some, else the values files, else the chart
// (its own values fail its schema).
func valuesPath(a Addon) string {
	switch {
	case len(a.Values) > 0:
		return "values"
	case len(a.ValuesFiles) > 0:
		return "valuesFiles"
	}
	return "chart"
}

// oneLine flattens Helm's schema report ("CHART:" lines, each followed by
// "- at '/path': problem" lines) into "at '/path': problem; SUBCHART: at
// …" (the top chart, top, is not named again).
func oneLine(report, top string) string {
	var out []string
	chartName := ""
	for _, line := range strings.Split(report, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "- "):
			item := strings.TrimPrefix(line, "- ")
			if chartName != "" && chartName != top {
				item = chartName + ": " + item
			}
			out = append(out, item)
		case strings.HasSuffix(line, ":") && !strings.Contains(line, " "):
			chartName = strings.TrimSuffix(line, ":")
		default:
			out = append(out, line)
		}
	}
	return strings.Join(out, "; ")
}

// hasSchema reports whether a subchart of c has a values schema.
func hasSchema(c *chart.Chart) bool {
	for _, d := range c.Dependencies() {
		if d.Schema != nil || hasSchema(d) {
			return true
		}
	}
	return false
}

// sameVersion compares a declared version with a chart's, as Helm's OCI
// tags do ("+" may be written "_").
func sameVersion(declared, chartVersion string) bool {
	return strings.ReplaceAll(declared, "_", "+") == strings.ReplaceAll(chartVersion, "_", "+")
}

// digestError is a chart that does not match its declared digest.
type digestError struct{ want, got string }

func (e *digestError) Error() string {
	return fmt.Sprintf("the chart's digest is %s, not %s as declared", e.got, e.want)
}

// loadChart reads the add-on's chart, its digest and, unless it is a
// directory, its archive's bytes.
func loadChart(ctx context.Context, a Addon, opts *LoadOptions) (*chart.Chart, string, []byte, error) {
	if IsOCI(a.Chart) {
		data, err := pull(ctx, a, opts)
		if err != nil {
			return nil, "", nil, err
		}
		return loadArchive(a, data, a.Chart+":"+a.Version)
	}
	fi, err := os.Stat(a.Chart)
	if err != nil {
		return nil, "", nil, fmt.Errorf("chart: %w", err) // an *fs.PathError naming the path
	}
	if !fi.IsDir() {
		data, err := catalog.ReadLimited(a.Chart, MaxChartArchiveSize)
		if err != nil {
			return nil, "", nil, fmt.Errorf("chart: %w", err) // names the path
		}
		return loadArchive(a, data, a.Chart)
	}
	ch, err := loader.LoadDir(a.Chart)
	if err != nil {
		return nil, "", nil, fmt.Errorf("chart directory %s: %w", a.Chart, err)
	}
	digest, err := dirDigest(ch)
	if err != nil {
		return nil, "", nil, fmt.Errorf("chart directory %s: %w", a.Chart, err)
	}
	if a.Digest != "" && a.Digest != digest {
		return nil, "", nil, &digestError{want: a.Digest, got: digest}
	}
	return ch, digest, nil, nil
}

// loadArchive verifies a chart archive's digest and loads it.
func loadArchive(a Addon, data []byte, name string) (*chart.Chart, string, []byte, error) {
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if a.Digest != "" && a.Digest != digest {
		return nil, "", nil, &digestError{want: a.Digest, got: digest}
	}
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, "", nil, fmt.Errorf("chart %s is not a chart archive: %w", name, err)
	}
	return ch, digest, data, nil
}

// loadBundled reads a chart archive a bundle carries, checking its
// sha256; its digest is the one recorded where the bundle was made.
func loadBundled(b BundledChart) (*chart.Chart, string, []byte, error) {
	data, err := catalog.ReadLimited(b.Archive, MaxChartArchiveSize)
	if err != nil {
		return nil, "", nil, fmt.Errorf("bundled chart: %w", err) // names the path
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != b.SHA256 {
		return nil, "", nil, fmt.Errorf("bundled chart %s: sha256 %s, the bundle's manifest says %s", b.Archive, got, b.SHA256)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, "", nil, fmt.Errorf("bundled chart %s is not a chart archive: %w", b.Archive, err)
	}
	return ch, b.ChartDigest, data, nil
}

// pull fetches an oci:// chart archive.
func pull(ctx context.Context, a Addon, opts *LoadOptions) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := opts.Registry
	if c == nil {
		var err error
		if c, err = registry.NewClient(); err != nil {
			return nil, fmt.Errorf("registry client: %w", err)
		}
		opts.Registry = c
	}
	ref := strings.TrimPrefix(a.Chart, ociScheme) + ":" + strings.ReplaceAll(a.Version, "+", "_")
	res, err := c.Pull(ref, registry.PullOptWithChart(true))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", a.Chart+":"+a.Version, err)
	}
	if res.Chart == nil || len(res.Chart.Data) == 0 {
		return nil, fmt.Errorf("pull %s: no chart archive", a.Chart+":"+a.Version)
	}
	if int64(len(res.Chart.Data)) > MaxChartArchiveSize {
		return nil, fmt.Errorf("pull %s: the chart archive is larger than the limit of %s", a.Chart+":"+a.Version, catalog.SizeString(MaxChartArchiveSize))
	}
	return res.Chart.Data, nil
}

// dirDigest is the digest of a deterministic archive of a chart loaded
// from a directory (see Loaded.ChartDigest).
func dirDigest(ch *chart.Chart) (string, error) {
	files := append([]*chart.File(nil), ch.Raw...)
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	h := sha256.New()
	tw := tar.NewWriter(h)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     ch.Name() + "/" + f.Name,
			Mode:     0o644,
			Size:     int64(len(f.Data)),
			Format:   tar.FormatPAX,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return "", err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// freshChart returns a new copy of the loaded chart, re-read from its
// files: Helm's actions change the chart they are given (dependencies
// pruned, values imported).
func freshChart(ch *chart.Chart) (*chart.Chart, error) {
	if len(ch.Raw) == 0 {
		return ch, nil
	}
	files := make([]*loader.BufferedFile, len(ch.Raw))
	for i, f := range ch.Raw {
		files[i] = &loader.BufferedFile{Name: f.Name, Data: f.Data}
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("reload chart %s: %w", ch.Name(), err)
	}
	return c, nil
}

// mergeValues merges src into dst as Helm's -f does: mappings are merged
// key by key, anything else in src replaces dst's. dst is returned.
func mergeValues(dst, src map[string]any) map[string]any {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dst[k] = mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
	return dst
}

// deepCopy copies values through JSON (as Helm stores them), keeping
// integers as integers.
func deepCopy(v map[string]any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	return numbers(out).(map[string]any), nil
}

// numbers turns json.Numbers into int64 (when whole) or float64.
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

// valuesEqual reports whether two sets of values are the same as Helm
// stores them (JSON).
func valuesEqual(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
