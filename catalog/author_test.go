package catalog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// istioURL is where net-istio's CI keeps the rendered Istio of a release
// branch: the part of an Istio asset's URL no file says.
func istioURL(commit string) string {
	return "https://raw.githubusercontent.com/knative-extensions/net-istio/" + commit + "/third_party/istio-latest/{file}"
}

// embeddedInputs are the inputs tmbox catalog add-release takes to make
// each embedded release again: its versions and the hand-written parts
// (docs/releases.md, "Adding a Knative release").
func embeddedInputs() map[string]AddRelease {
	return map[string]AddRelease{
		"1.21": {
			Versions:          map[string]string{Istio: "1.28.6", KnativeServing: "1.21.3", NetIstio: "1.21.4", KnativeEventing: "1.21.4", TriggerMesh: "1.27.0", TriggerMeshCore: "1.5.3"},
			KnativeKubernetes: ">= 1.33",
			Kubernetes:        map[string]string{Istio: ">= 1.30, < 1.35"},
			URLs:              map[string]string{Istio: istioURL("4b7e514fef326a70791e751f317bb39c0de1a2be")},
		},
		"1.22": {
			Versions:          map[string]string{Istio: "1.29.2", KnativeServing: "1.22.1", NetIstio: "1.22.1", KnativeEventing: "1.22.2", TriggerMesh: "1.27.0", TriggerMeshCore: "1.5.3"},
			KnativeKubernetes: ">= 1.34",
			Kubernetes:        map[string]string{Istio: ">= 1.31, < 1.36"},
			URLs:              map[string]string{Istio: istioURL("572837849cb1d418e7d8a4e613b9f959a523a573")},
		},
		"1.23": {
			Versions:          map[string]string{Istio: "1.30.3", KnativeServing: "1.23.0", NetIstio: "1.23.0", KnativeEventing: "1.23.0", TriggerMesh: "1.27.0", TriggerMeshCore: "1.5.3"},
			IstioSource:       SourceCompiledIn,
			KnativeKubernetes: ">= 1.34",
			Kubernetes:        map[string]string{Istio: ">= 1.32, < 1.37"},
			CompiledInIstio:   "1.30.0",
		},
	}
}

// without marshals c without the named releases and the component
// versions only they used, keeping the embedded header.
func without(t *testing.T, c *Catalog, names ...string) []byte {
	t.Helper()
	out := Catalog{APIVersion: c.APIVersion, Kind: c.Kind}
	used := map[string]bool{}
	for _, r := range c.Releases {
		if slices.Contains(names, r.Name) {
			continue
		}
		r.resolved = nil
		out.Releases = append(out.Releases, r)
		for _, ref := range r.Components {
			used[ref.Name+"@"+ref.Version] = true
		}
	}
	for _, comp := range c.Components {
		if used[comp.Name+"@"+comp.Version] {
			out.Components = append(out.Components, comp)
		}
	}
	data, err := out.Marshal(HeadComment(embeddedCatalog))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data, "base"); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMarshalEmbedded: Marshal writes the embedded catalog byte for byte
// (its trailing blank line aside), header comment included.
func TestMarshalEmbedded(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Marshal(HeadComment(embeddedCatalog))
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.TrimRight(embeddedCatalog, "\n")
	if g := bytes.TrimRight(got, "\n"); !bytes.Equal(g, want) {
		gl, wl := strings.Split(string(g), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) && i < len(wl); i++ {
			if gl[i] != wl[i] {
				t.Fatalf("line %d differs:\ngot  %q\nwant %q", i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%d lines, want %d", len(gl), len(wl))
	}
	if !strings.HasPrefix(string(got), "# tmbox release catalog") {
		t.Error("the header comment is lost")
	}
}

// TestAddReleaseRoundTrip: for each embedded release, adding it to the
// embedded catalog without it, from the upstream files, gives back the
// embedded catalog: the same file, the same parsed releases and
// components, and an empty Compare.
func TestAddReleaseRoundTrip(t *testing.T) {
	dir := upstreamDir(t)
	embedded, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range embeddedInputs() {
		t.Run(name, func(t *testing.T) {
			in.Base, in.BaseName, in.Name, in.Dir = without(t, embedded, name), "base", name, dir
			res, err := in.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if d := Compare(embedded, res.Catalog); !d.Empty() {
				t.Errorf("the new catalog differs from the embedded one: %+v", d)
			}
			want, _ := embedded.Release(name)
			got, err := res.Catalog.Release(name)
			if err != nil {
				t.Fatal(err)
			}
			for i, wc := range want.ComponentList() {
				if gc := got.ComponentList()[i]; !reflect.DeepEqual(gc, wc) {
					t.Errorf("%s %s: got %+v\nwant %+v", wc.Name, wc.Version, gc, wc)
				}
			}
			if got.KindNodeImage != want.KindNodeImage || got.Host != want.Host || got.KubernetesRange() != want.KubernetesRange() {
				t.Errorf("release pins %s %+v %s, want %s %+v %s", got.KindNodeImage, got.Host, got.KubernetesRange(), want.KindNodeImage, want.Host, want.KubernetesRange())
			}
			if !bytes.Equal(bytes.TrimRight(res.YAML, "\n"), bytes.TrimRight(embeddedCatalog, "\n")) {
				t.Error("the written file is not the embedded catalog")
			}
			derived := 0
			for _, o := range res.Components {
				if !o.Reused {
					derived++
				} else if !o.Checked {
					t.Errorf("%s %s reused without checking its files in %s", o.Name, o.Version, dir)
				}
			}
			if derived != 4 {
				t.Errorf("%d components derived, want Istio and the three Knative ones: %+v", derived, res.Components)
			}
			if len(res.Warnings) > 0 {
				t.Errorf("warnings for a real release: %q", res.Warnings)
			}
		})
	}
}

// TestAddReleaseDerivesEveryComponent: with a base that pins none of
// release 1.22's versions, every component is derived from its files —
// TriggerMesh's config/ trees included (apply order, ko:// resolution, the
// :latest rewrites given as inputs) — and equals the embedded entry.
func TestAddReleaseDerivesEveryComponent(t *testing.T) {
	dir := upstreamDir(t)
	embedded, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	// A base holding only 1.23, with TriggerMesh at other versions (the
	// same files' entries renamed), so 1.22 shares nothing with it.
	base := Catalog{APIVersion: embedded.APIVersion, Kind: embedded.Kind}
	rel := *embedded.Latest()
	rel.resolved = nil
	rel.Components = slices.Clone(rel.Components)
	for i, ref := range rel.Components {
		comp := *findComponent(embedded, ref.Name, ref.Version)
		switch ref.Name {
		case TriggerMesh:
			comp.Version, comp.ImageRewrites = "1.26.0", nil
		case TriggerMeshCore:
			comp.Version = "1.5.2"
		}
		rel.Components[i].Version = comp.Version
		base.Components = append(base.Components, comp)
	}
	base.Releases = []Release{rel}
	data, err := base.Marshal("")
	if err != nil {
		t.Fatal(err)
	}
	in := embeddedInputs()["1.22"]
	in.Base, in.Name, in.Dir = data, "1.22", dir
	in.Kubernetes[TriggerMesh] = ">= 1.22" // 1.26 is another minor; 1.5.2's is taken for core
	tm := findComponent(embedded, TriggerMesh, "1.27.0")
	in.ImageRewrites = map[string]map[string]string{TriggerMesh: tm.ImageRewrites}
	res, err := in.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := embedded.Release("1.22")
	got, _ := res.Catalog.Release("1.22")
	for i, wc := range want.ComponentList() {
		gc := got.ComponentList()[i]
		if !reflect.DeepEqual(gc, wc) {
			t.Errorf("%s %s differs from the embedded entry", wc.Name, wc.Version)
			d := compareComponent(wc, gc)
			t.Logf("%+v", d)
		}
		if res.Components[i].Reused {
			t.Errorf("%s reused from a base that does not pin it", wc.Name)
		}
	}
	if o := res.Components[5]; o.KubernetesFrom != "triggermesh-core 1.5.2" {
		t.Errorf("triggermesh-core's constraint came from %q, want the base's 1.5.2", o.KubernetesFrom)
	}
	if !slices.Equal(res.Releases, []string{"1.22", "1.23"}) {
		t.Errorf("releases %v", res.Releases)
	}

	// Without the rewrites, the three :latest adapters stay :latest, and
	// the result says so.
	in.ImageRewrites = nil
	res, err = in.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Warnings) != 2 || !strings.Contains(res.Warnings[0]+res.Warnings[1], "gcr.io/triggermesh/xslttransformation-adapter:latest") {
		t.Errorf("warnings %q, want TriggerMesh's and core's :latest images named", res.Warnings)
	}
}

// TestAddReleaseNewMinor: a release the base lacks, its Knative files
// under the new versions' directories, reuses what the base pins and warns
// that the files are labelled with another version.
func TestAddReleaseNewMinor(t *testing.T) {
	up := upstreamDir(t)
	dir := t.TempDir()
	for comp, from := range map[string]string{KnativeServing: "1.23.0", NetIstio: "1.23.0", KnativeEventing: "1.23.0"} {
		to := filepath.Join(dir, MirrorDir(comp), "1.24.0")
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(up, MirrorDir(comp), from), to); err != nil {
			t.Fatal(err)
		}
	}
	in := AddRelease{
		Base: EmbeddedCatalog(), Name: "1.24", Dir: dir,
		Versions:          map[string]string{Istio: "1.30.3", KnativeServing: "1.24.0", NetIstio: "1.24.0", KnativeEventing: "1.24.0", TriggerMesh: "1.27.0", TriggerMeshCore: "1.5.3"},
		KnativeKubernetes: ">= 1.35",
		Host:              HostRequirements{Memory: "12Gi"},
	}
	res, err := in.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Releases, []string{"1.21", "1.22", "1.23", "1.24"}) {
		t.Fatalf("releases %v", res.Releases)
	}
	r, _ := res.Catalog.Release("1.24")
	if r.KubernetesRange() != ">=1.35, <=1.36" || r.Host != (HostRequirements{CPUs: 4, Memory: "12Gi", Disk: "40Gi"}) {
		t.Errorf("range %s host %+v", r.KubernetesRange(), r.Host)
	}
	serving, _ := r.Component(KnativeServing)
	old := findComponent(res.Catalog, KnativeServing, "1.23.0")
	if serving.Assets[0].Path != "knative/serving/1.24.0/1-serving-crds.yaml" || serving.Assets[0].SHA256 != old.Assets[0].SHA256 ||
		serving.Assets[0].URL != "https://github.com/knative/serving/releases/download/knative-v1.24.0/serving-crds.yaml" || !slices.Equal(serving.Images, old.Images) {
		t.Errorf("serving 1.24.0: %+v", serving.Assets[0])
	}
	if len(res.Warnings) != 3 || !strings.Contains(res.Warnings[0], "labelled app.kubernetes.io/version 1.23.0") {
		t.Errorf("warnings %q, want one per Knative component about its 1.23.0 labels", res.Warnings)
	}
	d := Compare(mustLoad(t), res.Catalog)
	if len(d.Releases) != 1 || d.Releases[0].Change != ChangeAdded || d.Releases[0].Name != "1.24" || len(d.Components) != 3 {
		t.Errorf("diff %+v", d)
	}
	if rep, err := VerifyMirror(context.Background(), res.Catalog, dir, "1.24"); err == nil {
		// Istio is compiled in and TriggerMesh's files are not in dir.
		want := len(findComponent(res.Catalog, TriggerMesh, "1.27.0").Assets) + len(findComponent(res.Catalog, TriggerMeshCore, "1.5.3").Assets)
		if n := len(rep.Mismatches); n != want {
			t.Errorf("%d mismatches, want the %d TriggerMesh files missing: %v", n, want, rep.Mismatches[:min(n, 3)])
		}
	} else {
		t.Fatal(err)
	}
}

func mustLoad(t *testing.T) *Catalog {
	t.Helper()
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAddReleaseValidate: every bad input is refused before any file is
// read, each naming its input.
func TestAddReleaseValidate(t *testing.T) {
	dir := t.TempDir()
	good := func() AddRelease {
		return AddRelease{
			Base: EmbeddedCatalog(), Name: "1.24", Dir: dir,
			Versions:          map[string]string{Istio: "1.30.3", KnativeServing: "1.24.0", NetIstio: "1.24.0", KnativeEventing: "1.24.0", TriggerMesh: "1.27.0", TriggerMeshCore: "1.5.3"},
			KnativeKubernetes: ">= 1.35",
		}
	}
	if g := good(); g.Validate() != nil {
		t.Fatalf("the good inputs: %v", g.Validate())
	}
	tests := []struct {
		name  string
		mut   func(*AddRelease)
		input string
		want  string
	}{
		{"no name", func(a *AddRelease) { a.Name = "" }, "name", "missing"},
		{"bad name", func(a *AddRelease) { a.Name = "1.24-test" }, "name", "not a Knative minor"},
		{"existing release", func(a *AddRelease) { a.Name = "1.23"; a.Versions[KnativeServing] = "1.23.0" }, "name", "already in"},
		{"missing version", func(a *AddRelease) { delete(a.Versions, TriggerMeshCore) }, "triggermesh-core", "missing"},
		{"unknown component", func(a *AddRelease) { a.Versions["kourier"] = "1.0.0" }, "kourier", "unknown component"},
		{"v-prefixed version", func(a *AddRelease) { a.Versions[TriggerMesh] = "v1.27.0" }, "triggermesh", "not a version"},
		{"serving of another minor", func(a *AddRelease) { a.Versions[KnativeServing] = "1.23.0" }, "knative-serving", "does not belong to Knative release 1.24"},
		{"no dir", func(a *AddRelease) { a.Dir = filepath.Join(dir, "absent") }, "from", "no such file"},
		{"bad constraint", func(a *AddRelease) { a.KnativeKubernetes = "at least 1.35" }, "kubernetes", "not a version constraint"},
		{"constraint for nothing new", func(a *AddRelease) {
			// 1.23's components kept, the release itself dropped: adding it
			// back reuses every one.
			c := mustLoad(t)
			c.Releases = c.Releases[:2]
			a.Base, _ = c.Marshal("")
			a.Name, a.Versions = "1.23", embeddedInputs()["1.23"].Versions
		}, "kubernetes", "nothing to give a constraint to"},
		{"constraint of a reused component", func(a *AddRelease) { a.Kubernetes = map[string]string{Istio: ">= 1.33"} }, "kubernetes", "already pinned"},
		{"new knative without a constraint", func(a *AddRelease) { a.KnativeKubernetes = "" }, "kubernetes", "knative/pkg's minimum"},
		{"new istio without constraint or URL", func(a *AddRelease) { a.Versions[Istio] = "1.31.0"; a.IstioSource = SourceManifests }, "kubernetes", "istio=CONSTRAINT"},
		{"new istio from files without URL", func(a *AddRelease) {
			a.Versions[Istio] = "1.31.0"
			a.IstioSource = SourceManifests
			a.Kubernetes = map[string]string{Istio: ">= 1.33, < 1.38"}
		}, "url", "--url istio=TEMPLATE"},
		{"new istio without files", func(a *AddRelease) { a.Versions[Istio] = "1.31.0"; a.Kubernetes = map[string]string{Istio: ">= 1.33"} }, "istio-source", "--istio-source compiled-in"},
		{"compiled-in of another minor", func(a *AddRelease) {
			a.Versions[Istio] = "1.31.0"
			a.IstioSource = SourceCompiledIn
			a.CompiledInIstio = "1.30.0"
			a.Kubernetes = map[string]string{Istio: ">= 1.33"}
		}, "istio", "links Istio 1.30.0's"},
		{"bad istio source", func(a *AddRelease) { a.IstioSource = "helm" }, "istio-source", "want manifests or compiled-in"},
		{"http URL template", func(a *AddRelease) { a.URLs = map[string]string{KnativeServing: "http://example.com/{name}"} }, "url", "https URL"},
		{"URL template naming no file", func(a *AddRelease) { a.URLs = map[string]string{KnativeServing: "https://example.com/x.yaml"} }, "url", "names no file"},
		{"URL of an unknown component", func(a *AddRelease) { a.URLs = map[string]string{"kourier": "https://example.com/{name}"} }, "url", "unknown component"},
		{"bad ko registry", func(a *AddRelease) { a.KoRegistries = map[string]string{KnativeServing: "https://gcr.io"} }, "ko-registry", "without a scheme"},
		{"rewrite of a reused component", func(a *AddRelease) {
			a.ImageRewrites = map[string]map[string]string{TriggerMesh: {"a:latest": "a:v1"}}
		}, "image-rewrite", "already pinned"},
		{"bad rewrite target", func(a *AddRelease) {
			a.ImageRewrites = map[string]map[string]string{KnativeServing: {"a:latest": "A B"}}
		}, "image-rewrite", "not an image reference"},
		{"kind image by tag", func(a *AddRelease) { a.KindNodeImage = "kindest/node:v1.35.0" }, "kind-node-image", "not pinned by digest"},
		{"bad memory", func(a *AddRelease) { a.Host.Memory = "lots" }, "memory", "not a positive quantity"},
		{"bad base", func(a *AddRelease) { a.Base = []byte("kind: Catalog\n") }, "catalog", "invalid catalog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := good()
			tt.mut(&a)
			err := a.Validate()
			if err == nil {
				t.Fatalf("accepted; want --%s refused with %q", tt.input, tt.want)
			}
			var ie *InputError
			found := false
			for _, e := range flatten(err) {
				if errors.As(e, &ie) && ie.Input == tt.input && strings.Contains(e.Error(), tt.want) {
					found = true
				}
			}
			if !found {
				t.Errorf("error %q does not refuse --%s with %q", err, tt.input, tt.want)
			}
			if _, err := a.Run(context.Background()); err == nil {
				t.Error("Run accepted what Validate refuses")
			}
		})
	}
}

// flatten lists the errors errors.Join joined.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestVerifyMirrorFindsMismatches: a changed file, a missing one and an
// image list that disagrees with the files are each named.
func TestVerifyMirrorFindsMismatches(t *testing.T) {
	up := upstreamDir(t)
	c := mustLoad(t)
	dir := t.TempDir()
	serving := findComponent(c, KnativeServing, "1.23.0")
	for i, a := range serving.Assets {
		data, err := os.ReadFile(filepath.Join(up, a.Path))
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 1:
			data = append(data, '\n')
		case 3:
			continue // missing
		}
		p := filepath.Join(dir, a.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	netIstio := findComponent(c, NetIstio, "1.23.0")
	for _, a := range netIstio.Assets {
		p := filepath.Join(dir, a.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(up, a.Path), p); err != nil {
			t.Fatal(err)
		}
	}
	netIstio.Images = append(slices.Clone(netIstio.Images[1:]), "example.com/extra:1")
	findComponent(c, Istio, "1.30.3").Images[0] = "docker.io/istio/pilot:1.30.2"
	rep, err := VerifyMirror(context.Background(), c, dir, "1.23")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range rep.Mismatches {
		got = append(got, m.String())
	}
	want := []string{
		"istio 1.30.3: image docker.io/istio/pilot:1.30.3 is in what a compiled-in Istio 1.30.3 runs but not pinned",
		"istio 1.30.3: image docker.io/istio/pilot:1.30.2 is pinned but not in what a compiled-in Istio 1.30.3 runs",
		"knative-serving 1.23.0: knative/serving/1.23.0/2-serving-core.yaml: the file has size",
		"knative-serving 1.23.0: knative/serving/1.23.0/4-serving-post-install-jobs.yaml: lstat",
		"net-istio 1.23.0: image gcr.io/knative-releases/knative.dev/net-istio/cmd/controller@",
		"net-istio 1.23.0: image example.com/extra:1 is pinned but not in its files",
	}
	prefixes := 0
	for _, w := range want {
		for _, g := range got {
			if strings.HasPrefix(g, w) {
				prefixes++
				break
			}
		}
	}
	// Eventing and the TriggerMesh components are absent: every file missing.
	if prefixes != len(want) {
		t.Errorf("mismatches:\n%s\nwant ones starting with:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if rep.Components != 6 || rep.Assets != 4 {
		t.Errorf("checked %d components, %d assets; want 6 and 4 (3 of serving, net-istio's 1)", rep.Components, rep.Assets)
	}
	if _, err := VerifyMirror(context.Background(), c, dir, "1.99"); err == nil {
		t.Error("an unknown release was accepted")
	}
}

// TestCompare: each kind of change is reported once, in place.
func TestCompare(t *testing.T) {
	a := mustLoad(t)
	b := mustLoad(t)
	if d := Compare(a, b); !d.Empty() {
		t.Fatalf("a catalog differs from itself: %+v", d)
	}
	b.Releases = b.Releases[1:] // 1.21 removed, and what only it used
	b.Components = slices.DeleteFunc(b.Components, func(c Component) bool {
		return c.Name != TriggerMesh && c.Name != TriggerMeshCore && findComponent(a, c.Name, c.Version) == a.Releases[0].resolved[slices.Index(ComponentNames(), c.Name)]
	})
	b.Releases[0].Components[1].Version = "1.22.9"         // serving 1.22.1 → 1.22.9 in 1.22
	b.Releases[1].Host.CPUs = 8                            // 1.23's host
	serving := *findComponent(b, KnativeServing, "1.22.1") // … a new component version
	serving.Version = "1.22.9"
	b.Components = append(b.Components, serving)
	ev := findComponent(b, KnativeEventing, "1.23.0")
	ev.Kubernetes = ">= 1.35"
	ev.Assets[1].SHA256 = strings.Repeat("0", 64)
	ev.Assets[0], ev.Assets[2] = ev.Assets[2], ev.Assets[0]
	ev.Images = append(ev.Images[1:], "example.com/new:1")
	d := Compare(a, b)

	rel := map[string]ReleaseDiff{}
	for _, r := range d.Releases {
		rel[r.Name] = r
	}
	if r := rel["1.21"]; r.Change != ChangeRemoved || len(r.Components) != 6 || r.Components[0].From != "1.28.6" {
		t.Errorf("1.21: %+v", r)
	}
	if r := rel["1.22"]; r.Change != ChangeChanged || len(r.Components) != 1 || r.Components[0] != (VersionChange{Name: KnativeServing, From: "1.22.1", To: "1.22.9"}) || len(r.Fields) != 0 {
		t.Errorf("1.22: %+v", r)
	}
	if r := rel["1.23"]; len(r.Fields) != 1 || r.Fields[0].Field != "host" || len(r.Components) != 0 {
		t.Errorf("1.23: %+v", r)
	}
	if len(d.Releases) != 3 {
		t.Errorf("%d release diffs, want 3", len(d.Releases))
	}
	comps := map[string]ComponentDiff{}
	for _, c := range d.Components {
		comps[c.Name+"@"+c.Version+" "+c.Change] = c
	}
	for _, k := range []string{"knative-serving@1.22.9 added", "knative-eventing@1.23.0 changed", "istio@1.28.6 removed", "knative-serving@1.21.3 removed", "net-istio@1.21.4 removed", "knative-eventing@1.21.4 removed"} {
		if _, ok := comps[k]; !ok {
			t.Errorf("no %s in %+v", k, d.Components)
		}
	}
	if len(d.Components) != 6 {
		t.Errorf("%d component diffs, want 6: %+v", len(d.Components), d.Components)
	}
	e := comps["knative-eventing@1.23.0 changed"]
	fields := map[string]bool{}
	for _, f := range e.Fields {
		fields[f.Field] = true
	}
	if !fields["kubernetes"] || !fields["asset order"] || len(e.Fields) != 2 {
		t.Errorf("eventing fields %+v", e.Fields)
	}
	if len(e.Assets) != 1 || e.Assets[0].Fields[0].Field != "sha256" || len(e.ImagesAdded) != 1 || len(e.ImagesRemoved) != 1 {
		t.Errorf("eventing assets %+v images +%v -%v", e.Assets, e.ImagesAdded, e.ImagesRemoved)
	}
}
