package addons

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
)

// demoDir is the test chart's directory.
const demoDir = "testdata/charts/demo"

// packageChart packages a chart directory into a .tgz in a temp dir, as
// `helm package` does, and returns its path and digest.
func packageChart(t testing.TB, dir string) (string, string) {
	t.Helper()
	ch, err := loader.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	path, err := chartutil.Save(ch, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return path, "sha256:" + hex.EncodeToString(sum[:])
}

// writeFile writes a file in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadMergesValues(t *testing.T) {
	dir := t.TempDir()
	base := writeFile(t, dir, "base.yaml", "message: from-base\nimage:\n  tag: \"2.0\"\nreplicas: 2\n")
	over := writeFile(t, dir, "over.yaml", "message: from-over\nsidecar:\n  enabled: false\n")
	a := Addon{
		Name: "demo", Chart: demoDir, Namespace: "tenant",
		ValuesFiles: []string{base, over},
		Values:      map[string]any{"message": "inline", "image": map[string]any{"repository": "registry.example.com/x"}},
	}
	got, err := Load(context.Background(), []Addon{a}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := got[0]
	want := map[string]any{
		"message":  "inline",
		"image":    map[string]any{"tag": "2.0", "repository": "registry.example.com/x"},
		"replicas": float64(2),
		"sidecar":  map[string]any{"enabled": false},
	}
	if !valuesEqual(l.Values, want) {
		t.Errorf("values: got %#v, want %#v", l.Values, want)
	}
	if l.Chart.Name() != "demo" || l.Chart.Metadata.Version != "0.3.1" {
		t.Errorf("chart: got %s %s", l.Chart.Name(), l.Chart.Metadata.Version)
	}
	if !validDigest(l.ChartDigest) {
		t.Errorf("digest %q", l.ChartDigest)
	}
	if a.Values["message"] != "inline" || len(a.Values) != 2 {
		t.Error("Load changed the add-on's values")
	}
	again, err := Load(context.Background(), []Addon{a}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].ChartDigest != l.ChartDigest {
		t.Errorf("a directory's digest is not deterministic: %s, then %s", l.ChartDigest, again[0].ChartDigest)
	}
}

func TestLoadArchiveDigest(t *testing.T) {
	tgz, digest := packageChart(t, demoDir)
	tests := []struct {
		name   string
		digest string
		want   string // error substring, "" for none
	}{
		{"no digest", "", ""},
		{"matching digest", digest, ""},
		{"other digest", "sha256:" + strings.Repeat("0", 64), "addons[0].digest: add-on \"demo\": the chart's digest is " + digest + ", not sha256:" + strings.Repeat("0", 64) + " as declared"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(context.Background(), []Addon{{Name: "demo", Chart: tgz, Namespace: "tenant", Digest: tt.digest}}, LoadOptions{})
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("got %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got[0].ChartDigest != digest {
				t.Errorf("ChartDigest %s, want the archive's %s", got[0].ChartDigest, digest)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	corrupt := writeFile(t, dir, "corrupt.tgz", "\x1f\x8bnot really gzip")
	notYAML := writeFile(t, dir, "bad.yaml", "replicas: [1\n")
	badValues := writeFile(t, dir, "many.yaml", "replicas: many\n")
	valuesDir := filepath.Join(dir, "values.d")
	if err := os.Mkdir(valuesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	library := filepath.Join(dir, "lib")
	if err := os.MkdirAll(filepath.Join(library, "templates"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, library, "Chart.yaml", "apiVersion: v2\nname: lib\nversion: 1.0.0\ntype: library\n")
	missing := filepath.Join(dir, "missing.tgz")
	demo := func(mut func(*Addon)) Addon {
		a := Addon{Name: "demo", Chart: demoDir, Namespace: "tenant"}
		mut(&a)
		return a
	}
	tests := []struct {
		name  string
		addon Addon
		opts  LoadOptions
		want  string
	}{
		{"missing chart", demo(func(a *Addon) { a.Chart = missing }),
			LoadOptions{}, `addons[0].chart: add-on "demo": chart: stat ` + missing + `: no such file or directory`},
		{"corrupt archive", demo(func(a *Addon) { a.Chart = corrupt }),
			LoadOptions{}, `addons[0].chart: add-on "demo": chart ` + corrupt + ` is not a chart archive`},
		{"library chart", demo(func(a *Addon) { a.Chart = library }),
			LoadOptions{}, `addons[0].chart: add-on "demo": chart lib is a library chart: it cannot be installed`},
		{"version mismatch", demo(func(a *Addon) { a.Version = "0.3.2" }),
			LoadOptions{}, `addons[0].version: add-on "demo": chart demo has version "0.3.1", not "0.3.2"`},
		{"inline values fail the schema", demo(func(a *Addon) { a.Values = map[string]any{"replicas": 11} }),
			LoadOptions{}, `addons[0].values: add-on "demo": values do not match chart demo's values.schema.json`},
		{"values file fails the schema", demo(func(a *Addon) { a.ValuesFiles = []string{badValues} }),
			LoadOptions{}, `addons[0].valuesFiles: add-on "demo": values do not match chart demo's values.schema.json`},
		{"inline null removes a required value", demo(func(a *Addon) { a.Values = map[string]any{"image": map[string]any{"tag": nil}} }),
			LoadOptions{}, `missing property 'tag'`},
		{"values file missing", demo(func(a *Addon) { a.ValuesFiles = []string{filepath.Join(dir, "nope.yaml")} }),
			LoadOptions{}, `addons[0].valuesFiles[0]: add-on "demo": lstat ` + filepath.Join(dir, "nope.yaml") + `: no such file or directory`},
		{"values file is a directory", demo(func(a *Addon) { a.ValuesFiles = []string{valuesDir} }),
			LoadOptions{}, `addons[0].valuesFiles[0]: add-on "demo": ` + valuesDir + ` is a directory: tmbox reads only regular files`},
		{"values file is not YAML", demo(func(a *Addon) { a.ValuesFiles = []string{notYAML} }),
			LoadOptions{}, `addons[0].valuesFiles[0]: add-on "demo": values file ` + notYAML + `:`},
		{"oci without digest when air-gapped", demo(func(a *Addon) { a.Chart, a.Version = "oci://registry.example.com/charts/redis", "19.0.1" }),
			LoadOptions{AirGapped: true}, `addons[0].digest: add-on "demo": missing: in air-gap mode an oci:// chart must be pinned by the sha256 digest of its archive`},
		{"invalid add-on", demo(func(a *Addon) { a.Namespace = "" }),
			LoadOptions{}, `addons[0].namespace: missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(context.Background(), []Addon{tt.addon}, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if got != nil {
				t.Errorf("got add-ons with an error: %v", got)
			}
			if errs := Errors(err); len(errs) != 1 {
				t.Errorf("want one *Error, got %d: %v", len(errs), err)
			}
		})
	}
}

func TestLoadJoinsErrors(t *testing.T) {
	dir := t.TempDir()
	addons := []Addon{
		{Name: "a", Chart: filepath.Join(dir, "a.tgz"), Namespace: "x"},
		{Name: "b", Chart: demoDir, Namespace: "x"},
		{Name: "c", Chart: filepath.Join(dir, "c"), Namespace: "x"},
	}
	_, err := Load(context.Background(), addons, LoadOptions{})
	errs := Errors(err)
	if len(errs) != 2 || errs[0].Path != "addons[0].chart" || errs[1].Path != "addons[2].chart" {
		t.Fatalf("got %v", err)
	}
}

func TestFreshChart(t *testing.T) {
	got, err := Load(context.Background(), []Addon{{Name: "demo", Chart: demoDir, Namespace: "tenant"}}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := freshChart(got[0].Chart)
	if err != nil {
		t.Fatal(err)
	}
	if c == got[0].Chart || !reflect.DeepEqual(c.Metadata, got[0].Chart.Metadata) || len(c.Templates) != len(got[0].Chart.Templates) || !reflect.DeepEqual(c.Values, got[0].Chart.Values) {
		t.Error("freshChart is not an equal copy")
	}
}

func TestValuesEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b map[string]any
		want bool
	}{
		{"both empty", nil, map[string]any{}, true},
		{"int and float", map[string]any{"n": 5, "m": map[string]any{"x": int64(1000000)}}, map[string]any{"n": 5.0, "m": map[string]any{"x": 1e6}}, true},
		{"different", map[string]any{"n": 5}, map[string]any{"n": 6}, false},
		{"key order", map[string]any{"a": 1, "b": 2}, map[string]any{"b": 2, "a": 1}, true},
		{"null versus absent", map[string]any{"a": nil}, map[string]any{}, false},
	}
	for _, tt := range tests {
		if got := valuesEqual(tt.a, tt.b); got != tt.want {
			t.Errorf("%s: got %v", tt.name, got)
		}
	}
}
