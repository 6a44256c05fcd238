package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/apply"
)

// addReleaseFlags are the flags that make each embedded release again
// with tmbox catalog add-release: its versions and the parts no file says
// (the commands of docs/releases.md, "Adding a Knative release").
func addReleaseFlags(release string) []string {
	const netIstio = "https://raw.githubusercontent.com/knative-extensions/net-istio/%s/third_party/istio-latest/{file}"
	tm := []string{"--triggermesh", "1.27.0", "--triggermesh-core", "1.5.3"}
	switch release {
	case "1.21":
		return append(tm, "--istio", "1.28.6", "--knative-serving", "1.21.3", "--net-istio", "1.21.4", "--knative-eventing", "1.21.4",
			"--kubernetes", ">= 1.33", "--kubernetes", "istio=>= 1.30, < 1.35",
			"--url", "istio="+strings.Replace(netIstio, "%s", "4b7e514fef326a70791e751f317bb39c0de1a2be", 1))
	case "1.22":
		return append(tm, "--istio", "1.29.2", "--knative-serving", "1.22.1", "--net-istio", "1.22.1", "--knative-eventing", "1.22.2",
			"--kubernetes", ">= 1.34", "--kubernetes", "istio=>= 1.31, < 1.36",
			"--url", "istio="+strings.Replace(netIstio, "%s", "572837849cb1d418e7d8a4e613b9f959a523a573", 1))
	case "1.23":
		return append(tm, "--istio", "1.30.3", "--istio-source", "compiled-in", "--knative-serving", "1.23.0", "--net-istio", "1.23.0", "--knative-eventing", "1.23.0",
			"--kubernetes", ">= 1.34", "--kubernetes", "istio=>= 1.32, < 1.37")
	}
	panic("no flags for release " + release)
}

// catalogWithout writes the embedded catalog without release and the
// component versions only it uses, and returns the file.
func catalogWithout(t *testing.T, release string) string {
	t.Helper()
	c, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	out := catalog.Catalog{APIVersion: c.APIVersion, Kind: c.Kind}
	used := map[string]bool{}
	for _, r := range c.Releases {
		if r.Name == release {
			continue
		}
		out.Releases = append(out.Releases, catalog.Release{Name: r.Name, KindNodeImage: r.KindNodeImage, Host: r.Host, Components: r.Components})
		for _, ref := range r.Components {
			used[ref.Name+"@"+ref.Version] = true
		}
	}
	for _, comp := range c.Components {
		if used[comp.Name+"@"+comp.Version] {
			out.Components = append(out.Components, comp)
		}
	}
	data, err := out.Marshal(catalog.HeadComment(catalog.EmbeddedCatalog()))
	if err != nil {
		t.Fatal(err)
	}
	return writeTestFile(t, "without-"+release+".yaml", data)
}

func writeTestFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCatalogAddReleaseRoundTrip (issue 21's round trip): for 1.21, 1.22
// and 1.23, add-release from ../shared/upstream onto the embedded catalog
// without that release writes the embedded catalog again — the same file,
// the same releases and components once loaded, and catalog diff finds no
// difference.
func TestCatalogAddReleaseRoundTrip(t *testing.T) {
	up := upstreamDir(t)
	embeddedFile := writeTestFile(t, "embedded.yaml", catalog.EmbeddedCatalog())
	embedded, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range embedded.ReleaseNames() {
		t.Run(rel, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "catalog.yaml")
			start := time.Now()
			args := append([]string{"--catalog", catalogWithout(t, rel), "catalog", "add-release", "--name", rel, "--from", up, "--file", out, "-o", "json"}, addReleaseFlags(rel)...)
			stdout, stderr, err := run(t, args...)
			if err != nil {
				t.Fatalf("add-release: %v\n%s", err, stderr)
			}
			t.Logf("add-release %s: %s", rel, time.Since(start).Round(time.Millisecond))
			var res struct {
				File       string
				Release    string
				Components []catalog.ComponentOrigin
			}
			if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.File != out || res.Release != rel || len(res.Components) != 6 {
				t.Fatalf("result %v %+v\n%s", err, res, stdout)
			}
			written, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(bytes.TrimRight(written, "\n"), bytes.TrimRight(catalog.EmbeddedCatalog(), "\n")) {
				t.Error("the written catalog is not the embedded catalog.yaml")
			}
			got, err := catalog.Load(out)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.ReleaseNames(), embedded.ReleaseNames()) {
				t.Fatalf("releases %v", got.ReleaseNames())
			}
			for _, name := range embedded.ReleaseNames() {
				gr, _ := got.Release(name)
				wr, _ := embedded.Release(name)
				if !reflect.DeepEqual(gr.ComponentList(), wr.ComponentList()) || gr.Host != wr.Host || gr.KindNodeImage != wr.KindNodeImage || gr.KubernetesRange() != wr.KubernetesRange() {
					t.Errorf("release %s differs once loaded", name)
				}
			}
			stdout, _, err = run(t, "catalog", "diff", embeddedFile, out, "--exit-code", "-o", "json")
			if err != nil {
				t.Errorf("catalog diff: %v\n%s", err, stdout)
			}
			var d catalog.Diff
			if err := json.Unmarshal([]byte(stdout), &d); err != nil || !d.Empty() {
				t.Errorf("diff %v %s", err, stdout)
			}
		})
	}
}

// TestCatalogAddReleaseText: the text report names where each component
// came from and what to run next; warnings go to stderr.
func TestCatalogAddReleaseText(t *testing.T) {
	up := upstreamDir(t)
	dir := t.TempDir()
	for _, c := range []string{catalog.KnativeServing, catalog.NetIstio, catalog.KnativeEventing} {
		to := filepath.Join(dir, catalog.MirrorDir(c), "1.24.0")
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join(up, catalog.MirrorDir(c), "1.23.0"), to); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "c.yaml")
	stdout, stderr, err := run(t, "catalog", "add-release", "--name", "1.24", "--from", dir, "--knative-serving", "1.24.0", "--knative-eventing", "1.24.0", "--net-istio", "1.24.0",
		"--istio", "1.30.3", "--triggermesh", "1.27.0", "--triggermesh-core", "1.5.3", "--kubernetes", ">= 1.34", "--file", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"wrote " + out + ": release 1.24 added (releases 1.21, 1.22, 1.23, 1.24)", "istio             1.30.3   reused from the base catalog",
		`knative-serving   1.24.0   new: 4 files, 8 images; kubernetes ">= 1.34" (given)`, "check it: tmbox catalog verify --catalog " + out + " --mirror " + dir + " --release 1.24"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Count(stderr, "warning: ") != 3 || !strings.Contains(stderr, "labelled app.kubernetes.io/version 1.23.0") {
		t.Errorf("stderr %q, want a warning per Knative component about its 1.23.0 labels", stderr)
	}
	stdout, _, err = run(t, "catalog", "diff", out)
	if err != nil || !strings.Contains(stdout, "release 1.24: added (istio 1.30.3, knative-serving 1.24.0") || !strings.Contains(stdout, "component net-istio 1.24.0: added (1 file, 2 images)") {
		t.Errorf("diff from the embedded catalog: %v\n%s", err, stdout)
	}
}

// TestCatalogAddReleaseRefuses: bad flags are usage errors naming the flag,
// and nothing is written.
func TestCatalogAddReleaseRefuses(t *testing.T) {
	up := upstreamDir(t)
	existing := writeTestFile(t, "existing.yaml", []byte("keep me\n"))
	base := catalogWithout(t, "1.22")
	good := append([]string{"--catalog", base, "catalog", "add-release", "--name", "1.22", "--from", up}, addReleaseFlags("1.22")...)
	drop := func(args []string, flag string) []string {
		i := slices.Index(args, flag)
		return slices.Delete(slices.Clone(args), i, i+2)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no --file", good, "--file FILE is required"},
		{"existing --file", append(slices.Clone(good), "--file", existing), "exists: use --force"},
		{"no version", append(drop(good, "--triggermesh-core"), "--file", "F"), "--triggermesh-core: missing"},
		{"no Istio URL", append(drop(good, "--url"), "--file", "F"), "--url: istio 1.29.2 is installed from files whose upstream URL tmbox cannot derive"},
		{"no Knative constraint", append(drop(good, "--kubernetes"), "--file", "F"), "knative/pkg's minimum Kubernetes for Knative 1.22"},
		{"unknown component", append(slices.Clone(good), "--url", "kourier=https://x/{name}", "--file", "F"), `--url "kourier=https://x/{name}": unknown component "kourier"`},
		{"url without component", append(slices.Clone(good), "--url", "https://x/{name}", "--file", "F"), "want COMPONENT=URL"},
		{"rewrite without target", append(slices.Clone(good), "--image-rewrite", "istio=a:latest", "--file", "F"), "want COMPONENT=FROM=TO"},
		{"two Knative constraints", append(slices.Clone(good), "--kubernetes", ">= 1.35", "--file", "F"), "two constraints for the Knative components"},
		{"a reused component's constraint", append(slices.Clone(good), "--kubernetes", "triggermesh=>= 1.30", "--file", "F"), "--kubernetes: triggermesh 1.27.0 is already pinned by " + base},
		{"release already there", []string{"catalog", "add-release", "--name", "1.23", "--from", up, "--file", "F", "--knative-serving", "1.23.0", "--knative-eventing", "1.23.0", "--net-istio", "1.23.0", "--istio", "1.30.3", "--triggermesh", "1.27.0", "--triggermesh-core", "1.5.3"}, "--name: release 1.23 is already in embedded catalog"},
		{"bad -o", append(slices.Clone(good), "-o", "table2", "--file", "F"), "unknown output format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := slices.Clone(tt.args)
			for i, a := range args {
				if a == "F" {
					args[i] = filepath.Join(dir, "out.yaml")
				}
			}
			_, _, err := run(t, args...)
			if code := exitCode(context.Background(), err); code != exitUsage || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("exit %d, error %v; want %d and %q", code, err, exitUsage, tt.want)
			}
			if entries, _ := os.ReadDir(dir); len(entries) > 0 {
				t.Errorf("a refused add-release wrote %s", entries[0].Name())
			}
		})
	}
	if data, _ := os.ReadFile(existing); string(data) != "keep me\n" {
		t.Error("a refused add-release changed the existing --file")
	}
	if _, _, err := run(t, append(slices.Clone(good), "--file", existing, "--force")...); err != nil {
		t.Errorf("--force: %v", err)
	}
	if _, err := catalog.Load(existing); err != nil {
		t.Errorf("--force wrote %v", err)
	}
}

// linkTree makes dst a tree of symbolic links to every file under src.
func linkTree(t *testing.T, src, dst string, skip func(rel string) bool) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if skip != nil && skip(filepath.ToSlash(rel)) {
			return nil
		}
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.Symlink(p, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCatalogVerify: the embedded catalog matches ../shared/upstream; a
// changed file and a missing one are each named, with exit code 1.
func TestCatalogVerify(t *testing.T) {
	up := upstreamDir(t)
	stdout, _, err := run(t, "catalog", "verify", "--mirror", up)
	if err != nil || !strings.Contains(stdout, "embedded catalog: 14 components, 140 files in "+up+": every size, sha256 and image list matches") {
		t.Fatalf("%v\n%s", err, stdout)
	}
	const changed, missing = "knative/serving/1.23.0/2-serving-core.yaml", "knative/net-istio/1.23.0/net-istio.yaml"
	dir := t.TempDir()
	linkTree(t, up, dir, func(rel string) bool { return rel == changed || rel == missing })
	data, err := os.ReadFile(filepath.Join(up, changed))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, changed), bytes.Replace(data, []byte("queue"), []byte("QUEUE"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = run(t, "catalog", "verify", "--mirror", dir, "--release", "1.23")
	if code := exitCode(context.Background(), err); code != exitError {
		t.Fatalf("exit %d (%v), want %d", code, err, exitError)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "knative-serving 1.23.0: "+changed+": the file has size") || !strings.HasPrefix(lines[1], "net-istio 1.23.0: "+missing+": lstat") {
		t.Errorf("mismatches:\n%s", stdout)
	}
	if !strings.Contains(err.Error(), "2 pins do not match "+dir) {
		t.Errorf("error %v", err)
	}
	stdout, _, _ = run(t, "catalog", "verify", "--mirror", dir, "--release", "1.23", "-o", "json")
	var rep catalog.MirrorReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Mismatches) != 2 || rep.Components != 6 {
		t.Errorf("json report %v %+v", err, rep)
	}
	for _, args := range [][]string{{"catalog", "verify"}, {"catalog", "verify", "--mirror", filepath.Join(dir, "absent")}, {"catalog", "verify", "--mirror", up, "--release", "9.9"}} {
		if _, _, err := run(t, args...); exitCode(context.Background(), err) != exitUsage {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestCatalogDiff: a changed constraint, file digest and image are named,
// --exit-code exits 1 only when the catalogs differ.
func TestCatalogDiff(t *testing.T) {
	text := string(catalog.EmbeddedCatalog())
	c, err := catalog.Load("")
	if err != nil {
		t.Fatal(err)
	}
	serving, _ := c.Latest().Component(catalog.KnativeServing)
	text = strings.Replace(text, "version: \"1.23.0\"\n  kubernetes: \">= 1.34\"", "version: \"1.23.0\"\n  kubernetes: \">= 1.35\"", 1)
	text = strings.Replace(text, serving.Assets[1].SHA256, strings.Repeat("0", 64), 1)
	text = strings.Replace(text, "  - "+serving.Images[0]+"\n", "", 1)
	changed := writeTestFile(t, "changed.yaml", []byte(text))
	stdout, _, err := run(t, "catalog", "diff", changed)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"from embedded catalog to " + changed + ":",
		"component knative-serving 1.23.0: changed",
		`  kubernetes: ">= 1.34" → ">= 1.35"`,
		"  file " + serving.Assets[1].Path + ": changed\n    sha256: " + serving.Assets[1].SHA256 + " → " + strings.Repeat("0", 64),
		"  image removed: " + serving.Images[0],
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("diff lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "release ") {
		t.Errorf("no release changed, but:\n%s", stdout)
	}
	if _, _, err := run(t, "catalog", "diff", changed, "--exit-code"); exitCode(context.Background(), err) != exitError {
		t.Errorf("--exit-code with differences: %v", err)
	}
	if _, _, err := run(t, "--catalog", changed, "catalog", "diff", changed, "--exit-code"); err != nil {
		t.Errorf("--exit-code without differences: %v", err)
	}
	for _, args := range [][]string{{"catalog", "diff"}, {"catalog", "diff", "a", "b", "c"}, {"catalog", "diff", filepath.Join(t.TempDir(), "absent.yaml")}} {
		if _, _, err := run(t, args...); exitCode(context.Background(), err) != exitUsage {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}

// TestIntegrationCatalogNewRelease (issue 21): a catalog written by
// add-release for a release the embedded catalog lacks — 1.24, Knative
// 1.23's files again under 1.24.0, everything else reused — installs its
// predecessor and upgrades to it on the test cluster with --catalog and
// --mirror; the state and status say 1.24, and the objects, the same as
// 1.23's, are not written again (they keep release 1.23's label).
func TestIntegrationCatalogNewRelease(t *testing.T) {
	c := startOwnCluster(t, suite.Cluster(t))
	up := upstreamDir(t)
	mirror := t.TempDir()
	linkTree(t, up, mirror, nil)
	for _, comp := range []string{catalog.KnativeServing, catalog.NetIstio, catalog.KnativeEventing} {
		linkTree(t, filepath.Join(up, catalog.MirrorDir(comp), "1.23.0"), filepath.Join(mirror, catalog.MirrorDir(comp), "1.24.0"), nil)
	}
	cat := filepath.Join(t.TempDir(), "catalog.yaml")
	if _, errOut, err := run(t, "catalog", "add-release", "--name", "1.24", "--from", mirror, "--knative-serving", "1.24.0", "--knative-eventing", "1.24.0", "--net-istio", "1.24.0",
		"--istio", "1.30.3", "--triggermesh", "1.27.0", "--triggermesh-core", "1.5.3", "--kubernetes", ">= 1.34", "--file", cat); err != nil {
		t.Fatalf("add-release: %v\n%s", err, errOut)
	}
	if out, _, err := run(t, "--catalog", cat, "catalog", "verify", "--mirror", mirror, "--release", "1.23,1.24"); err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	state := filepath.Join(t.TempDir(), "state")
	common := []string{"--catalog", cat, "--kubeconfig", c.Kubeconfig, "--mirror", mirror, "--state-dir", state, "--yes", "--timeout", "2m"}
	for _, step := range [][]string{{"install", "--release", "1.23"}, {"upgrade", "--to", "1.24"}} {
		start := time.Now()
		if _, errOut, err := run(t, append(step, common...)...); err != nil {
			t.Fatalf("%v: %v\n%s", step, err, errOut)
		}
		t.Logf("%s: %s", strings.Join(step, " "), time.Since(start).Round(time.Second))
	}
	out, errOut, err := run(t, "--catalog", cat, "status", "--kubeconfig", c.Kubeconfig, "--mirror", mirror, "-o", "json")
	if err != nil {
		t.Fatalf("status: %v\n%s\n%s", err, out, errOut)
	}
	var st installer.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{catalog.Istio: "1.30.3", catalog.KnativeServing: "1.24.0", catalog.NetIstio: "1.24.0", catalog.KnativeEventing: "1.24.0", catalog.TriggerMesh: "1.27.0", catalog.TriggerMeshCore: "1.5.3"}
	if st.Release != "1.24" || !st.Healthy || len(st.Components) != len(want) {
		t.Fatalf("status %+v", st)
	}
	for _, comp := range st.Components {
		if want[comp.Name] != comp.Version || comp.Release != "1.24" || !comp.Healthy || len(comp.Drifted) > 0 {
			t.Errorf("component %+v, want version %s of release 1.24, healthy", comp, want[comp.Name])
		}
	}
	deps, err := kubernetes.NewForConfigOrDie(c.Config).AppsV1().Deployments("knative-serving").List(context.Background(), metav1.ListOptions{})
	if err != nil || len(deps.Items) == 0 {
		t.Fatalf("Serving's Deployments: %v (%d)", err, len(deps.Items))
	}
	for _, d := range deps.Items {
		if r := d.Labels[apply.LabelRelease]; r != "1.23" {
			t.Errorf("Deployment %s is labelled release %q, want 1.23 (1.24's is the same object)", d.Name, r)
		}
	}
	// The embedded catalog does not know the release the cluster runs.
	if _, _, err := run(t, "upgrade", "--to", "1.24", "--kubeconfig", c.Kubeconfig, "--mirror", mirror, "--state-dir", state, "--yes"); err == nil || !strings.Contains(err.Error(), "1.24") {
		t.Errorf("upgrade --to 1.24 with the embedded catalog: %v", err)
	}
}
