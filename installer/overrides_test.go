package installer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/apply"
)

// pin makes a digest-pinned replacement reference.
func pin(repo string, n int) string {
	return repo + "@sha256:" + strings.Repeat(string(rune('a'+n%6)), 64)
}

// renderedText is every rendered object as JSON lines.
func renderedText(t *testing.T, d *desired) []byte {
	t.Helper()
	var all bytes.Buffer
	for _, u := range d.unstructured() {
		raw, err := json.Marshal(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(raw)
		all.WriteByte('\n')
	}
	return all.Bytes()
}

// appears reports whether ref appears as a whole reference in text.
func appears(text []byte, ref string) bool {
	return !bytes.Equal(apply.RewriteImages(text, map[string]string{ref: "\x00"}), text)
}

// TestOverridesOfRealReleases overrides, in each real release, an image
// named by a container (Knative Serving's controller), by an env value
// (TriggerMesh's adapters, triggermesh-core's memory broker) and by a
// ConfigMap value (Knative's queue-proxy): the rendered objects name the
// replacements everywhere and the originals nowhere; with a private
// registry, the replacements are moved there.
func TestOverridesOfRealReleases(t *testing.T) {
	forEachRelease(t, func(t *testing.T, dir string, rel *catalog.Release) {
		serving, _ := rel.Component(catalog.KnativeServing)
		var controller, queue string
		for _, img := range serving.Images {
			switch {
			case strings.Contains(img, "/serving/cmd/controller@"):
				controller = img
			case strings.Contains(img, "/serving/cmd/queue@"):
				queue = img
			}
		}
		ov := map[string]string{
			controller: pin("registry.corp.example/knative/controller", 1),
			queue:      pin("registry.corp.example/knative/queue", 2),
			"gcr.io/triggermesh/awssqssource-adapter:v1.27.0":   pin("registry.corp.example/tm/awssqssource-adapter", 3),
			"gcr.io/triggermesh/triggermesh-controller:v1.27.0": pin("registry.corp.example/tm/triggermesh-controller", 4),
			"gcr.io/triggermesh/memory-broker:latest":           pin("registry.corp.example/tm/memory-broker", 5),
		}
		if err := CheckImageOverrides(ov, rel); err != nil {
			t.Fatal(err)
		}
		d, err := objectsFor(context.Background(), catalog.Mirror{Dir: dir}, rel, catalog.ComponentNames(), renderInputs{overrides: ov})
		if err != nil {
			t.Fatal(err)
		}
		text := renderedText(t, d)
		for orig, repl := range ov {
			if appears(text, orig) {
				t.Errorf("%s still appears after its override", orig)
			}
			if !appears(text, repl) {
				t.Errorf("the replacement %s appears nowhere", repl)
			}
		}
		// The ConfigMap value and the env value, precisely.
		for _, o := range d.byComponent[catalog.KnativeServing] {
			if o.GetKind() == "ConfigMap" && o.GetName() == "config-deployment" {
				if v, _, _ := unstructuredString(o.Object, "data", "queue-sidecar-image"); v != ov[queue] {
					t.Errorf("config-deployment queue-sidecar-image = %s, want %s", v, ov[queue])
				}
			}
		}
		core := string(renderedTextOf(t, d, catalog.TriggerMeshCore))
		if !strings.Contains(core, `"name":"MEMORYBROKER_BROKER_IMAGE","value":"`+ov["gcr.io/triggermesh/memory-broker:latest"]+`"`) {
			t.Error("triggermesh-core's MEMORYBROKER_BROKER_IMAGE env value does not name the replacement")
		}

		// With a private registry (a bundle that holds the replacements),
		// every replacement is moved there.
		m := &bundle.Manifest{}
		for i, img := range bundle.OverrideImages(rel.Images(), ov) {
			m.Images = append(m.Images, bundle.Image{Ref: img, Digest: "sha256:" + strings.Repeat(string(rune('0'+i%10)), 64)})
		}
		mapping, err := registryMapping(m, "mirror.corp.example:5000/tmbox")
		if err != nil {
			t.Fatal(err)
		}
		d, err = objectsFor(context.Background(), catalog.Mirror{Dir: dir}, rel, catalog.ComponentNames(), renderInputs{overrides: ov, imageMap: mapping})
		if err != nil {
			t.Fatal(err)
		}
		text = renderedText(t, d)
		for orig, repl := range ov {
			if appears(text, orig) || appears(text, repl) {
				t.Errorf("%s or its replacement %s still appears with a private registry", orig, repl)
			}
			if !appears(text, mapping[repl]) {
				t.Errorf("%s: the replacement in the registry, %s, appears nowhere", orig, mapping[repl])
			}
		}
	})
}

func renderedTextOf(t *testing.T, d *desired, comp string) []byte {
	t.Helper()
	var all bytes.Buffer
	for _, o := range d.byComponent[comp] {
		raw, err := json.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		all.Write(raw)
	}
	return all.Bytes()
}

func unstructuredString(obj map[string]any, path ...string) (string, bool, error) {
	var cur any = obj
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return "", false, nil
		}
		cur = m[p]
	}
	s, ok := cur.(string)
	return s, ok, nil
}

// TestTriggerMeshRegistryShorthand: --triggermesh-registry is the set of
// overrides moving every gcr.io/triggermesh image of the TriggerMesh
// components under the registry, path and tag kept; an explicit override
// of one of them wins.
func TestTriggerMeshRegistryShorthand(t *testing.T) {
	forEachRelease(t, func(t *testing.T, dir string, rel *catalog.Release) {
		const reg = "registry.corp.example/rebuilt"
		ov := triggerMeshOverrides(rel, reg+"/")
		if len(ov) < 60 {
			t.Fatalf("%d TriggerMesh overrides, want every gcr.io/triggermesh image of both components", len(ov))
		}
		for orig, repl := range ov {
			if repl != reg+strings.TrimPrefix(orig, "gcr.io/triggermesh") {
				t.Errorf("%s → %s, want the path and tag under %s", orig, repl, reg)
			}
		}
		explicit := map[string]string{"gcr.io/triggermesh/core-controller:v1.5.3": pin("elsewhere.example/core-controller", 0)}
		d, err := objectsFor(context.Background(), catalog.Mirror{Dir: dir}, rel, catalog.ComponentNames(), renderInputs{triggerMeshRegistry: reg, overrides: explicit})
		if err != nil {
			t.Fatal(err)
		}
		text := renderedText(t, d)
		if bytes.Contains(text, []byte("gcr.io/triggermesh/")) {
			t.Error("a gcr.io/triggermesh reference is left")
		}
		if bytes.Contains(text, []byte("ko://")) {
			t.Error("a ko:// placeholder is left")
		}
		if !appears(text, explicit["gcr.io/triggermesh/core-controller:v1.5.3"]) || appears(text, reg+"/core-controller:v1.5.3") {
			t.Error("the explicit override of core-controller did not win over --triggermesh-registry")
		}
		if !appears(text, reg+"/triggermesh-controller:v1.27.0") {
			t.Error("the TriggerMesh controller is not under the registry")
		}
	})
}

// TestOverridesFor: the state's and a bundle's overrides are kept,
// --triggermesh-registry's lie over them and the user's over those; only
// the originals a release has apply.
func TestOverridesFor(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := cat.Release("1.21")
	ctrl := "gcr.io/triggermesh/triggermesh-controller:v1.27.0"
	hook := "gcr.io/triggermesh/triggermesh-webhook:v1.27.0"
	gone := "example.com/not-in-1.21:1"
	tests := []struct {
		name string
		ri   renderInputs
		want map[string]string
	}{
		{"none", renderInputs{}, map[string]string{}},
		{"kept", renderInputs{keptOverrides: map[string]string{ctrl: pin("kept/ctrl", 0), gone: pin("kept/gone", 0)}}, map[string]string{ctrl: pin("kept/ctrl", 0)}},
		{"user over kept", renderInputs{keptOverrides: map[string]string{ctrl: pin("kept/ctrl", 0), hook: pin("kept/hook", 0)}, overrides: map[string]string{ctrl: pin("user/ctrl", 1)}}, map[string]string{ctrl: pin("user/ctrl", 1), hook: pin("kept/hook", 0)}},
		{"shorthand over kept", renderInputs{keptOverrides: map[string]string{ctrl: pin("kept/ctrl", 0)}, triggerMeshRegistry: "tm.example"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.ri.overridesFor(rel)
			if tt.want == nil { // the shorthand case
				if got[ctrl] != "tm.example/triggermesh-controller:v1.27.0" || got[hook] != "tm.example/triggermesh-webhook:v1.27.0" {
					t.Errorf("shorthand did not lie over the kept override: %v %v", got[ctrl], got[hook])
				}
				return
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			// forRelease folds them into the image map.
			m := tt.ri.forRelease(rel).imageMap
			for orig, repl := range tt.want {
				if m[orig] != repl {
					t.Errorf("image map %s → %s, want %s", orig, m[orig], repl)
				}
			}
			if _, ok := m[gone]; ok {
				t.Errorf("an override of an image 1.21 lacks is in its image map")
			}
		})
	}
}

func TestCheckImageOverrides(t *testing.T) {
	cat, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := cat.Release("1.21")
	tests := []struct {
		name      string
		overrides map[string]string
		absentOK  bool
		want      string // "" accepted
	}{
		{"image of the release", map[string]string{"gcr.io/triggermesh/triggermesh-controller:v1.27.0": pin("r/x", 0)}, false, ""},
		{"no such image", map[string]string{"gcr.io/triggermesh/nothing:v1": pin("r/x", 0)}, false, `image override "gcr.io/triggermesh/nothing:v1": release 1.21 has no such image`},
		{"no such image, upgrade", map[string]string{"gcr.io/triggermesh/nothing:v1": pin("r/x", 0)}, true, ""},
		{"Istio's proxy", map[string]string{"docker.io/istio/proxyv2:1.28.6": pin("r/proxy", 0)}, true, "Istio's injector composes its proxy image"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkOverrideKeys(tt.overrides, rel, tt.absentOK)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *SettingError
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.As(err, &se) || se.Setting != imagesSetting {
				t.Errorf("got %v, want a setting error with %q", err, tt.want)
			}
		})
	}
}

// TestOptionsValidateImages: a replacement without a digest is refused by
// Validate, before anything runs, naming the original.
func TestOptionsValidateImages(t *testing.T) {
	orig := "gcr.io/triggermesh/triggermesh-controller:v1.27.0"
	err := Options{Images: map[string]string{orig: "registry.corp.example/tm/triggermesh-controller:v1.27.0"}}.Validate()
	ses := SettingErrors(err)
	if len(ses) != 1 || ses[0].Setting != imagesSetting || !strings.Contains(err.Error(), orig) || !strings.Contains(err.Error(), "not pinned by digest") {
		t.Errorf("Validate: %v (%+v)", err, ses)
	}
	if err := (Options{Images: map[string]string{orig: pin("registry.corp.example/tm/triggermesh-controller", 0)}}).Validate(); err != nil {
		t.Errorf("a pinned replacement is refused: %v", err)
	}
}

func TestDecodeImageOverrides(t *testing.T) {
	good := pin("reg.example/tm/x", 0)
	tests := []struct {
		name, text string
		want       string // "" accepted
		path       string
	}{
		{"valid", "gcr.io/triggermesh/x:v1.27.0: " + good + "\n", "", "images"},
		{"not pinned", "a/b:1: " + good + "\nc/d:1: reg.example/d:1\n", `m.yaml:2: images["c/d:1"]: replacement "reg.example/d:1" is not pinned by digest`, "images"},
		{"file form", "c/d:1: reg.example/d:1\n", `m.yaml:1: "c/d:1": replacement`, ""},
		{"twice", "a/b:1: " + good + "\na/b:1: " + good + "\n", "m.yaml:2: images[\"a/b:1\"]: set twice (first at line 1)", "images"},
		{"a list", "- a\n- b\n", "m.yaml:1: images: want a mapping", "images"},
		{"a nested value", "a/b:1: {x: y}\n", "m.yaml:1: images[\"a/b:1\"]: want original: replacement", "images"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.text), &doc); err != nil {
				t.Fatal(err)
			}
			m, err := DecodeImageOverrides(doc.Content[0], "m.yaml", tt.path)
			if tt.want == "" {
				if err != nil || len(m) != 1 {
					t.Fatalf("got %v, %v", m, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestReadImageMap(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := pin("reg.example/tm/x", 0)
	m, err := ReadImageMap(write("ok.yaml", "# rebuilt TriggerMesh\ngcr.io/triggermesh/x:v1.27.0: "+good+"\n"))
	if err != nil || m["gcr.io/triggermesh/x:v1.27.0"] != good {
		t.Errorf("got %v, %v", m, err)
	}
	for _, tt := range []struct{ name, text, want string }{
		{"empty", "", "empty image map"},
		{"two documents", "a/b:1: " + good + "\n---\nc/d:1: " + good + "\n", "one YAML document"},
		{"not pinned", "a/b:1: x:1\n", "not-pinned.yaml:1: \"a/b:1\": replacement \"x:1\" is not pinned by digest"},
	} {
		p := write(strings.ReplaceAll(tt.name, " ", "-")+".yaml", tt.text)
		if _, err := ReadImageMap(p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := ReadImageMap(filepath.Join(dir, "absent.yaml")); err == nil || !strings.Contains(err.Error(), "--image-map") {
		t.Errorf("a missing file: %v", err)
	}
}
