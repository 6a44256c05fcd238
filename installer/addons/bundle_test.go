package addons

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
)

func TestArchive(t *testing.T) {
	tgz, digest := packageChart(t, demoDir)
	tgzBytes, err := os.ReadFile(tgz)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		chart string
		// same: the archive is the chart file's bytes.
		same bool
	}{
		{"a .tgz is stored as read", tgz, true},
		{"a directory is packaged", demoDir, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			load := func() *Loaded {
				got, err := Load(context.Background(), []Addon{{Name: "demo", Chart: tt.chart, Namespace: "tenant"}}, LoadOptions{})
				if err != nil {
					t.Fatal(err)
				}
				return got[0]
			}
			l := load()
			data, err := Archive(l)
			if err != nil {
				t.Fatal(err)
			}
			if tt.same {
				if !bytes.Equal(data, tgzBytes) {
					t.Error("the archive of a .tgz is not its bytes")
				}
				if l.ChartDigest != digest {
					t.Errorf("ChartDigest %s, want %s", l.ChartDigest, digest)
				}
			}
			again, err := Archive(load())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, again) {
				t.Error("the same chart gives different archives")
			}
			ch, err := loader.LoadArchive(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("the archive does not load: %v", err)
			}
			if ch.Name() != "demo" || ch.Metadata.Version != "0.3.1" || len(ch.Templates) != len(l.Chart.Templates) || ch.Schema == nil {
				t.Errorf("the archive holds %s %s with %d templates (schema %v), want demo 0.3.1 with %d", ch.Name(), ch.Metadata.Version, len(ch.Templates), ch.Schema != nil, len(l.Chart.Templates))
			}
		})
	}
}

// bundled writes a chart archive as an extracted bundle holds it and
// describes it.
func bundled(t *testing.T, data []byte, chartDigest string, images ...string) BundledChart {
	t.Helper()
	p := filepath.Join(t.TempDir(), "demo.tgz")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return BundledChart{Archive: p, SHA256: hex.EncodeToString(sum[:]), Chart: "demo", Version: "0.3.1", ChartDigest: chartDigest, Images: images}
}

func TestLoadBundled(t *testing.T) {
	dirLoaded, err := Load(context.Background(), []Addon{{Name: "demo", Chart: demoDir, Namespace: "tenant"}}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	archive, err := Archive(dirLoaded[0])
	if err != nil {
		t.Fatal(err)
	}
	dirDigest := dirLoaded[0].ChartDigest
	defaults, err := Images(dirLoaded[0], "")
	if err != nil {
		t.Fatal(err)
	}
	all := append([]string{"registry.example.com/other/thing:1"}, defaults...)
	missing := filepath.Join(t.TempDir(), "not-on-this-host")
	good := bundled(t, archive, dirDigest, all...)

	t.Run("loaded from the bundle, the chart path never read", func(t *testing.T) {
		got, err := Load(context.Background(), []Addon{{Name: "demo", Chart: missing, Namespace: "tenant"}}, LoadOptions{AirGapped: true, Bundled: map[string]BundledChart{"demo": good}})
		if err != nil {
			t.Fatal(err)
		}
		l := got[0]
		if !l.FromBundle || l.ChartDigest != dirDigest || l.Chart.Name() != "demo" {
			t.Errorf("loaded %+v (digest %s), want demo from the bundle with the directory's digest %s", l.Addon, l.ChartDigest, dirDigest)
		}
		if data, err := Archive(l); err != nil || !bytes.Equal(data, archive) {
			t.Errorf("Archive of a bundled chart is not the bundle's archive (%v)", err)
		}
	})
	t.Run("an oci chart without digest is taken from the bundle", func(t *testing.T) {
		a := Addon{Name: "demo", Chart: "oci://registry.example.com/charts/demo", Version: "0.3.1", Namespace: "tenant"}
		if _, err := Load(context.Background(), []Addon{a}, LoadOptions{AirGapped: true, Bundled: map[string]BundledChart{"demo": good}}); err != nil {
			t.Fatal(err)
		}
	})

	corrupt := good
	corrupt.SHA256 = strings.Repeat("0", 64)
	notChart := bundled(t, []byte("\x1f\x8bnot a chart"), dirDigest, all...)
	fewImages := bundled(t, archive, dirDigest, defaults[1:]...)
	liar := good
	liar.Version = "0.3.0"
	tests := []struct {
		name  string
		addon Addon
		b     BundledChart
		want  string
	}{
		{"declared version differs", Addon{Version: "0.4.0"}, good,
			`addons[0].version: add-on "demo": the bundle carries chart demo version "0.3.1" for this add-on, not "0.4.0"`},
		{"declared digest differs", Addon{Digest: "sha256:" + strings.Repeat("a", 64)}, good,
			`addons[0].digest: add-on "demo": the bundle carries chart demo 0.3.1 with digest ` + dirDigest + `, not sha256:` + strings.Repeat("a", 64) + ` as declared`},
		{"archive altered after extraction", Addon{}, corrupt, `addons[0].chart: add-on "demo": bundled chart ` + corrupt.Archive + `: sha256 `},
		{"not a chart archive", Addon{}, notChart, `addons[0].chart: add-on "demo": bundled chart ` + notChart.Archive + ` is not a chart archive`},
		{"the manifest names another version", Addon{}, liar, `addons[0].chart: add-on "demo": the bundle records chart demo 0.3.0 for this add-on, its archive holds demo 0.3.1`},
		{"values render an image the bundle lacks", Addon{Values: map[string]any{"image": map[string]any{"tag": "9.9"}}}, good,
			`addons[0].values: add-on "demo": with these values chart demo runs image registry.example.com/demo/server:9.9, which the bundle does not hold`},
		{"the bundle lacks a default image", Addon{}, fewImages,
			`addons[0].chart: add-on "demo": with these values chart demo runs image ` + defaults[0] + `, which the bundle does not hold`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.addon
			a.Name, a.Chart, a.Namespace = "demo", missing, "tenant"
			got, err := Load(context.Background(), []Addon{a}, LoadOptions{AirGapped: true, Bundled: map[string]BundledChart{"demo": tt.b}})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if got != nil {
				t.Errorf("got add-ons with an error: %v", got)
			}
		})
	}
}

func TestImageRewrite(t *testing.T) {
	loaded, err := Load(context.Background(), []Addon{{Name: "demo", Chart: demoDir, Namespace: "tenant"}}, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := loaded[0]
	pin := "@sha256:" + strings.Repeat("1", 64)
	m := &Manager{Images: map[string]string{
		"registry.example.com/demo/server:1.4.0":  "reg.local/m/demo/server:1.4.0" + pin,
		"registry.example.com/demo/migrate:1.4.0": "reg.local/m/demo/migrate:1.4.0" + pin, // a hook's
		"registry.example.com/demo/server:1.4":    "reg.local/m/demo/server:1.4" + pin,    // only inside a longer reference
		"docker.io/istio/pilot:1.28.6":            "reg.local/m/istio/pilot:1.28.6" + pin, // the stack's, not the add-on's
	}}
	rw, err := m.rewriteFor(l)
	if err != nil {
		t.Fatal(err)
	}
	want := imageRewrite{
		"registry.example.com/demo/server:1.4.0":  "reg.local/m/demo/server:1.4.0" + pin,
		"registry.example.com/demo/migrate:1.4.0": "reg.local/m/demo/migrate:1.4.0" + pin,
	}
	if len(rw) != len(want) || rw["registry.example.com/demo/server:1.4.0"] != want["registry.example.com/demo/server:1.4.0"] || rw["registry.example.com/demo/migrate:1.4.0"] != want["registry.example.com/demo/migrate:1.4.0"] {
		t.Errorf("rewrite %v, want %v", rw, want)
	}
	if rw.label() != want.label() || len(rw.label()) != 63 {
		t.Errorf("label %q", rw.label())
	}
	manifest, _, err := Render(l, "")
	if err != nil {
		t.Fatal(err)
	}
	out, err := rw.Run(bytes.NewBufferString(manifest))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "image: \"reg.local/m/demo/server:1.4.0"+pin+"\"") || strings.Contains(out.String(), "registry.example.com/demo/server:1.4.0") {
		t.Errorf("post-rendered manifest:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "registry.example.com/demo/sidecar:2.0") {
		t.Error("an image the mapping does not name was changed")
	}
	if again, _ := rw.Run(bytes.NewBuffer(out.Bytes())); again.String() != out.String() {
		t.Error("rewriting a rewritten manifest changes it")
	}
	if none, err := (&Manager{}).rewriteFor(l); err != nil || none != nil || none.label() != "" {
		t.Errorf("no mapping: %v %v", none, err)
	}
}
