package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/tmbox/tmbox/bundle"
	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
)

// deleteImages removes images from the fixture's upstream registry (a
// tag, or a digest: pkg/registry keeps them apart).
func deleteImages(t *testing.T, refs ...string) {
	t.Helper()
	for _, ref := range refs {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Delete(r); err != nil {
			t.Fatalf("delete %s: %v", ref, err)
		}
	}
}

// fixtureImage is the one image of the fixture whose reference contains
// part.
func fixtureImage(t *testing.T, images []string, part string) string {
	t.Helper()
	var found []string
	for _, img := range images {
		if strings.Contains(img, part) {
			found = append(found, img)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d fixture images contain %q: %v", len(found), part, found)
	}
	return found[0]
}

// TestImagesCheck (issue 21): against an in-process registry holding all
// but three of a test release's images — a container image, an image
// named only in an env value and a ConfigMap value (pinned by digest),
// and an init container's image — images check lists exactly those three
// as missing and exits 5; bundle create then writes nothing at its output
// path and names all three. Run it with -exec hack/netns-exec (the
// registries are on loopback).
func TestImagesCheck(t *testing.T) {
	f := newAirgapFixture(t)
	missing := []string{
		fixtureImage(t, f.images, "/istio/controller:"),
		fixtureImage(t, f.images, "/istio/adapter@"),
		fixtureImage(t, f.images, "/library/busybox:"),
	}
	deleteImages(t, missing...)
	slices.Sort(missing)

	out, errOut, err := run(t, "--catalog", f.catalog, "images", "check", "--release", "1.30", "-o", "json")
	if code := exitCode(context.Background(), err); code != exitImagesMissing {
		t.Fatalf("exit code %d (%v), want %d\n%s", code, err, exitImagesMissing, errOut)
	}
	var rep imageCheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := append(slices.Clone(f.releaseImages["1.30"]), missing...)
	slices.Sort(want)
	want = slices.Compact(want)
	var refs, unavailable []string
	for _, r := range rep.Images {
		refs = append(refs, r.Ref)
		if !r.OK() {
			unavailable = append(unavailable, r.Ref)
			if r.Problem != bundle.ProblemNotFound {
				t.Errorf("%s: problem %s, want %s", r.Ref, r.Problem, bundle.ProblemNotFound)
			}
			continue
		}
		if !strings.HasPrefix(r.Digest, "sha256:") || len(r.UsedBy) == 0 {
			t.Errorf("%s: %+v: want a digest and its users", r.Ref, r)
		}
	}
	if !slices.Equal(refs, want) {
		t.Errorf("checked %v,\nwant every image of the release and its kind node image %v", refs, want)
	}
	if !slices.Equal(unavailable, missing) || rep.Unavailable != 3 {
		t.Errorf("unavailable %v (%d), want exactly %v", unavailable, rep.Unavailable, missing)
	}

	// The table says the same.
	text, _, err := run(t, "--catalog", f.catalog, "images", "check", "--release", "1.30")
	if err == nil {
		t.Fatal("images check with missing images succeeded")
	}
	for _, ref := range missing {
		if !strings.Contains(text, ref) || !strings.Contains(text, "not-found") {
			t.Errorf("the table does not show %s as not-found:\n%s", ref, text)
		}
	}
	if !strings.Contains(text, fmt.Sprintf("release 1.30: %d images, %d can be pulled, 3 cannot (3 not-found)", len(want), len(want)-3)) {
		t.Errorf("no summary line:\n%s", text)
	}

	// bundle create refuses before writing anything, naming all three.
	dir := t.TempDir()
	file := filepath.Join(dir, "tmbox-1.30.bundle")
	_, errOut, err = run(t, "--catalog", f.catalog, "bundle", "create", "--release", "1.30", "--mirror", f.mirror, "--file", file)
	if code := exitCode(context.Background(), err); code != exitImagesMissing {
		t.Fatalf("bundle create: exit code %d (%v), want %d\n%s", code, err, exitImagesMissing, errOut)
	}
	for _, ref := range missing {
		if !strings.Contains(err.Error(), ref) {
			t.Errorf("bundle create's error does not name %s:\n%v", ref, err)
		}
	}
	if !strings.Contains(err.Error(), "image overrides") {
		t.Errorf("bundle create's error gives no remedy:\n%v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bundle create left %d files in %s", len(entries), dir)
	}

	// With the missing images overridden by images that exist, both pass.
	reg := startRegistry(t)
	overrides := map[string]string{}
	for i, ref := range missing {
		img, err := random.Image(256, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		repl := fmt.Sprintf("%s/rebuilt/image%d@%s", reg, i, d)
		r, err := name.ParseReference(repl)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		overrides[ref] = repl
	}
	var imageMap strings.Builder
	for _, orig := range slices.Sorted(maps.Keys(overrides)) {
		fmt.Fprintf(&imageMap, "%q: %q\n", orig, overrides[orig])
	}
	mapFile := filepath.Join(t.TempDir(), "rebuilt.yaml")
	if err := os.WriteFile(mapFile, []byte(imageMap.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = run(t, "--catalog", f.catalog, "images", "check", "--release", "1.30", "--image-map", mapFile, "-o", "json")
	if err != nil {
		t.Fatalf("images check with overrides: %v\n%s\n%s", err, out, errOut)
	}
	rep = imageCheckReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, r := range rep.Images {
		if orig := r.Overrides; orig != "" {
			seen++
			if overrides[orig] != r.Ref {
				t.Errorf("%s checked for the override of %s, want %s", r.Ref, orig, overrides[orig])
			}
		}
	}
	if seen != 3 || rep.Unavailable != 0 {
		t.Errorf("%d replacements checked, %d unavailable: want 3, 0", seen, rep.Unavailable)
	}
	if _, errOut, err := run(t, "--catalog", f.catalog, "bundle", "create", "--release", "1.30", "--mirror", f.mirror, "--image-map", mapFile, "--file", file); err != nil {
		t.Fatalf("bundle create with overrides: %v\n%s", err, errOut)
	}
	m, _, err := bundle.Inspect(file)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(m.ImageOverrides, overrides) {
		t.Errorf("the bundle records overrides %v, want %v", m.ImageOverrides, overrides)
	}
	for _, img := range m.Images {
		if slices.Contains(missing, img.Ref) {
			t.Errorf("the bundle holds the overridden original %s", img.Ref)
		}
	}
}

// TestImagesCheckRefuses: bad input is a usage error naming the thing.
func TestImagesCheckRefuses(t *testing.T) {
	noEngineHost(t)
	dir := t.TempDir()
	unpinned := filepath.Join(dir, "unpinned.yaml")
	if err := os.WriteFile(unpinned, []byte("gcr.io/triggermesh/triggermesh-controller:v1.27.0: registry.corp.example/tm/triggermesh-controller:v1.27.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent.yaml")
	if err := os.WriteFile(absent, []byte("example.com/nothing:1: registry.corp.example/nothing@sha256:"+strings.Repeat("a", 64)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown release", []string{"images", "check", "--release", "9.99"}, "unknown release"},
		{"bad platform", []string{"images", "check", "--platform", "linux"}, "--platform"},
		{"replacement without a digest", []string{"images", "check", "--image-map", unpinned}, `"gcr.io/triggermesh/triggermesh-controller:v1.27.0": replacement "registry.corp.example/tm/triggermesh-controller:v1.27.0" is not pinned by digest`},
		{"override of no image", []string{"images", "check", "--release", "1.21", "--image-map", absent}, `image override "example.com/nothing:1": release 1.21 has no such image`},
		{"image map missing", []string{"images", "check", "--image-map", filepath.Join(dir, "none.yaml")}, "--image-map"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.args...)
			if code := exitCode(context.Background(), err); code != exitUsage {
				t.Errorf("exit code %d (%v), want %d", code, err, exitUsage)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	// TMBOX_IMAGE_MAP is --image-map.
	t.Setenv("TMBOX_IMAGE_MAP", unpinned)
	if _, _, err := run(t, "images", "check"); err == nil || !strings.Contains(err.Error(), "not pinned by digest") {
		t.Errorf("TMBOX_IMAGE_MAP: %v", err)
	}
}

// TestIntegrationImageOverrides (issue 21): images: overrides of a
// TriggerMesh image named by a container and of one named by an env value
// and a ConfigMap value, to digests in a local registry: a replacement
// without a digest is refused with zero writes; after install the
// Deployment, the env value and the ConfigMap use the replacements and
// the state records them; verify and status fail when the cluster runs an
// original again, and install repairs it; upgrade keeps the overrides (the
// one whose original the next release lacks is dropped, saying so).
func TestIntegrationImageOverrides(t *testing.T) {
	c := startOwnCluster(t, suite.Cluster(t))
	f := newAirgapReleases(t, "1.30", "1.31")
	ctx := context.Background()
	cs := kubernetes.NewForConfigOrDie(c.Config)

	tmMain := fixtureImage(t, f.releaseImages["1.30"], "/triggermesh/controller:")
	tmSide := f.side[catalog.TriggerMesh]
	servingSide := fixtureImage(t, f.releaseImages["1.30"], "/knative-serving/adapter:1.30.0")
	reg := startRegistry(t)
	push := func(repo string) string {
		img, err := random.Image(512, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := img.Digest()
		ref := reg + "/" + repo + "@" + d.String()
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	overrides := map[string]string{
		tmMain:      push("rebuilt/triggermesh/controller"),
		tmSide:      push("rebuilt/triggermesh/adapter"),
		servingSide: push("rebuilt/knative-serving/adapter"),
	}
	dir := t.TempDir()
	config := func(name string, images map[string]string) string {
		var b strings.Builder
		b.WriteString("apiVersion: tmbox.dev/v1alpha1\nkind: InstallConfig\nimages:\n")
		for _, orig := range slices.Sorted(maps.Keys(images)) {
			fmt.Fprintf(&b, "  %q: %q\n", orig, images[orig])
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	common := []string{"--catalog", f.catalog, "--mirror", f.mirror, "--kubeconfig", c.Kubeconfig, "--yes", "--timeout", "2m"}
	installArgs := func(extra ...string) []string {
		return append(append([]string{"install", "--release", "1.30"}, common...), extra...)
	}

	t.Run("a replacement without a digest is refused with zero writes", func(t *testing.T) {
		before := clusterVersions(t, c.Config)
		bad := config("unpinned.yaml", map[string]string{tmMain: reg + "/rebuilt/triggermesh/controller:1.27.0"})
		_, _, err := run(t, installArgs("--config", bad)...)
		if code := exitCode(ctx, err); code != exitUsage {
			t.Errorf("exit code %d (%v), want %d", code, err, exitUsage)
		}
		if err == nil || !strings.Contains(err.Error(), tmMain) || !strings.Contains(err.Error(), "not pinned by digest") {
			t.Errorf("error %v, want it to name %s and the missing digest", err, tmMain)
		}
		if after := clusterVersions(t, c.Config); !maps.Equal(before, after) {
			t.Error("the refused install wrote to the cluster")
		}
		if _, err := cs.CoreV1().Namespaces().Get(ctx, installer.StateNamespace, metav1.GetOptions{}); err == nil {
			t.Error("the refused install wrote tmbox's state")
		}
	})

	cfg := config("overrides.yaml", overrides)
	if _, errOut, err := run(t, installArgs("--config", cfg)...); err != nil {
		t.Fatalf("install with overrides: %v\n%s", err, errOut)
	}
	uses := func(when string) {
		t.Helper()
		d, err := cs.AppsV1().Deployments("tm-triggermesh").Get(ctx, "triggermesh-controller", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctr := d.Spec.Template.Spec.Containers[0]
		if ctr.Image != overrides[tmMain] {
			t.Errorf("%s: the Deployment runs %s, want the replacement %s", when, ctr.Image, overrides[tmMain])
		}
		env := ""
		for _, e := range ctr.Env {
			if e.Name == "ADAPTER_IMAGE" {
				env = e.Value
			}
		}
		if env != overrides[tmSide] {
			t.Errorf("%s: env ADAPTER_IMAGE = %s, want the replacement %s", when, env, overrides[tmSide])
		}
		cm, err := cs.CoreV1().ConfigMaps("tm-triggermesh").Get(ctx, "triggermesh-images", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := cm.Data["adapter-image"]; v != overrides[tmSide] {
			t.Errorf("%s: ConfigMap adapter-image = %s, want the replacement %s", when, v, overrides[tmSide])
		}
	}
	uses("after install")
	d, err := cs.AppsV1().Deployments("tm-knative-serving").Get(ctx, "knative-serving-controller", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Env[0].Value; got != overrides[servingSide] {
		t.Errorf("knative-serving env = %s, want %s", got, overrides[servingSide])
	}
	st := status(t, f, c.Kubeconfig)
	if !maps.Equal(st.ImageOverrides, overrides) || !st.healthy {
		t.Errorf("status: healthy %v (%v), overrides %v, want healthy with %v", st.healthy, st.problems, st.ImageOverrides, overrides)
	}

	t.Run("verify and status fail when the cluster runs the original", func(t *testing.T) {
		d, err := cs.AppsV1().Deployments("tm-triggermesh").Get(ctx, "triggermesh-controller", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		d.Spec.Template.Spec.Containers[0].Image = tmMain
		if _, err := cs.AppsV1().Deployments("tm-triggermesh").Update(ctx, d, metav1.UpdateOptions{FieldManager: "someone-else"}); err != nil {
			t.Fatal(err)
		}
		// Wait for a pod of the patched template (kwok runs it at once).
		deadline := time.Now().Add(time.Minute)
		for running := false; !running; {
			pods, err := cs.CoreV1().Pods("tm-triggermesh").List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			running = slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return p.Spec.Containers[0].Image == tmMain })
			if time.Now().After(deadline) {
				t.Fatal("no pod runs the patched template's image")
			}
			time.Sleep(200 * time.Millisecond)
		}
		// The verify phase alone (no override given again: the state's).
		verifyOnly := installArgs("--skip-phases", "istio,knative-serving,knative-eventing,triggermesh,addons")
		_, errOut, err := run(t, verifyOnly...)
		if err == nil {
			t.Fatalf("verify passed with the original image running:\n%s", errOut)
		}
		t.Logf("verify: %v", err)
		if !strings.Contains(err.Error(), tmMain+", which the image override "+tmMain+" → "+overrides[tmMain]+" replaces") {
			t.Errorf("verify's error does not name the original %s and its override: %v", tmMain, err)
		}
		st := status(t, f, c.Kubeconfig)
		if st.healthy {
			t.Error("status is healthy with the original image running")
		}
		problems := st.problems
		t.Logf("status problems: %v", problems)
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tmMain) && strings.Contains(p, "image override") }) {
			t.Errorf("status does not say the override is not applied: %v", problems)
		}
		// A re-run repairs it (the image field is drift).
		if _, errOut, err := run(t, installArgs()...); err != nil {
			t.Fatalf("re-install: %v\n%s", err, errOut)
		}
		uses("after the repairing install")
	})

	// Upgrade without naming the overrides: the state's are kept.
	_, errOut, err := run(t, append([]string{"upgrade", "--to", "1.31"}, common...)...)
	if err != nil {
		t.Fatalf("upgrade: %v\n%s", err, errOut)
	}
	uses("after upgrade to 1.31")
	if !strings.Contains(errOut, "keeping 3 image override(s)") {
		t.Errorf("the upgrade does not say it keeps the recorded overrides:\n%s", errOut)
	}
	if !strings.Contains(errOut, "release 1.31 has no image "+servingSide+": its override") {
		t.Errorf("the upgrade does not say it drops the override of %s:\n%s", servingSide, errOut)
	}
	st = status(t, f, c.Kubeconfig)
	want := map[string]string{tmMain: overrides[tmMain], tmSide: overrides[tmSide]}
	if st.Release != "1.31" || !st.healthy || !maps.Equal(st.ImageOverrides, want) {
		t.Errorf("after upgrade: release %s healthy %v (%v) overrides %v, want 1.31, healthy, %v", st.Release, st.healthy, st.problems, st.ImageOverrides, want)
	}
}

// overrideStatus is what tmbox status -o json says of a fixture's
// install: its release, image overrides, every component's problems, and
// whether the components are healthy (the fixture has no ingress gateway,
// so the whole status never is).
type overrideStatus struct {
	installer.Status
	healthy  bool
	problems []string
}

// status runs tmbox status -o json, drift checked against the fixture.
func status(t *testing.T, f *airgapFixture, kubeconfig string) overrideStatus {
	t.Helper()
	out, _, _ := run(t, "--catalog", f.catalog, "status", "--kubeconfig", kubeconfig, "--mirror", f.mirror, "-o", "json")
	var st overrideStatus
	if err := json.Unmarshal([]byte(out), &st.Status); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if st.DriftUnchecked != "" {
		t.Errorf("status did not check drift: %s", st.DriftUnchecked)
	}
	st.healthy = len(st.Components) > 0
	for _, c := range st.Components {
		st.healthy = st.healthy && c.Healthy
		st.problems = append(st.problems, c.Problems...)
	}
	return st
}
